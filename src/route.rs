//! The dispatch steps that pick each message's outputs, after the message steps of
//! [`crate::transform`]: an ordered list built once from the settings ([`Router::new`]).
//! Every message starts with all outputs as its targets; in order:
//!
//! 1. [`Split`] — `--split-output` (with two outputs or more): one output, round-robin; a
//!    response goes where its request went;
//! 2. [`Limits`] — each output's `|N` / `|N%` limit, applied to requests (a response follows
//!    its request's fate); what an output's limit refuses is counted in and dropped as
//!    `rate limited` on that output.
//!
//! The dispatcher then fans the message out (a refcount copy per output) to the targets
//! left, into each one's bounded queue. A message no output was left for is dropped by the
//! emitter as `rate limited`.

use crate::limiter::Limiter;
use shadowtap_api::{Counters, Gate, Limit, Message, Reason};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// An output as the routing steps see it: its `|N` / `|N%` limit, if any, and its counters.
pub type OutputLimit = (Option<Limit>, Arc<Counters>);

/// One routing step.
pub trait RouteStep: Send {
    /// The step's name (for logs and tests).
    fn name(&self) -> &'static str;
    /// Narrows `targets` (output indices, ascending) for `msg`.
    fn select(&mut self, msg: &Message, targets: &mut Vec<usize>);
}

/// The routing steps, in their fixed order (see the module documentation).
pub struct Router {
    outputs: usize,
    steps: Vec<Box<dyn RouteStep>>,
}

impl Router {
    /// The steps for `outputs` (each one's limit and counters, in output order): split when
    /// `split` and there are two outputs or more, limits when any output has one.
    pub fn new(split: bool, outputs: Vec<OutputLimit>) -> Self {
        let count = outputs.len();
        let mut steps: Vec<Box<dyn RouteStep>> = Vec::new();
        if split && count > 1 {
            steps.push(Box::new(Split::new(count)));
        }
        if outputs.iter().any(|(limit, _)| limit.is_some()) {
            steps.push(Box::new(Limits::new(outputs)));
        }
        Router {
            outputs: count,
            steps,
        }
    }

    /// Sets `targets` to the outputs `msg` goes to.
    pub fn select(&mut self, msg: &Message, targets: &mut Vec<usize>) {
        targets.clear();
        targets.extend(0..self.outputs);
        for step in &mut self.steps {
            if targets.is_empty() {
                return;
            }
            step.select(msg, targets);
        }
    }

    /// True when every message goes to every output (no step).
    pub fn is_passthrough(&self) -> bool {
        self.steps.is_empty()
    }

    /// The names of the steps, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.name()).collect()
    }
}

/// `--split-output`: each request to one output, round-robin; responses follow.
pub struct Split {
    outputs: usize,
    next: usize,
    routes: Routes,
}

impl Split {
    /// Splits between `outputs` outputs.
    pub fn new(outputs: usize) -> Self {
        Split {
            outputs: outputs.max(1),
            next: 0,
            routes: Routes::default(),
        }
    }
}

impl RouteStep for Split {
    fn name(&self) -> &'static str {
        "split"
    }

    fn select(&mut self, msg: &Message, targets: &mut Vec<usize>) {
        let is_request = msg.kind().is_request();
        let routed = (!is_request)
            .then(|| self.routes.find(msg.id()))
            .flatten()
            .filter(|&index| index < self.outputs);
        let index = routed.unwrap_or_else(|| {
            let next = self.next;
            self.next = (next + 1) % self.outputs;
            next
        });
        if is_request {
            self.routes.remember(msg.id(), index);
        }
        targets.retain(|&t| t == index);
    }
}

/// Each output's `|N` / `|N%` limit.
pub struct Limits {
    /// Per output: its limiter, if it has a limit, and its counters.
    outputs: Vec<(Option<Limiter>, Arc<Counters>)>,
}

impl Limits {
    /// The limits of `outputs` (in output order).
    pub fn new(outputs: Vec<OutputLimit>) -> Self {
        Limits {
            outputs: outputs
                .into_iter()
                .map(|(limit, counters)| (limit.map(Limiter::new), counters))
                .collect(),
        }
    }
}

impl RouteStep for Limits {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn select(&mut self, msg: &Message, targets: &mut Vec<usize>) {
        targets.retain(|&index| match self.outputs.get_mut(index) {
            Some((Some(limiter), counters)) => {
                let admitted = limiter.admit(msg);
                if !admitted {
                    counters.add_refused(Reason::RateLimited, 1);
                }
                admitted
            }
            _ => true,
        });
    }
}

/// With `--split-output`, which output each recent request went to, so its responses follow.
#[derive(Default)]
struct Routes {
    by_id: HashMap<Box<str>, usize>,
    order: VecDeque<Box<str>>,
}

/// Requests remembered by [`Split`].
const REMEMBERED_ROUTES: usize = 100_000;

impl Routes {
    fn remember(&mut self, id: &str, output: usize) {
        if self.by_id.insert(id.into(), output).is_none() {
            self.order.push_back(id.into());
        }
        if self.order.len() > REMEMBERED_ROUTES {
            if let Some(oldest) = self.order.pop_front() {
                self.by_id.remove(&oldest);
            }
        }
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::{Kind, Ledger, Meta, Role};

    fn msg(kind: Kind, id: &str) -> Message {
        Message::new(Meta::new(kind, id, 1, 0).unwrap(), "x")
    }

    fn outputs(limits: &[Option<Limit>]) -> (Arc<Ledger>, Vec<OutputLimit>) {
        let ledger = Ledger::new();
        let outputs = limits
            .iter()
            .enumerate()
            .map(|(i, &limit)| (limit, ledger.register(format!("out{i}"), Role::Output)))
            .collect();
        (ledger, outputs)
    }

    fn targets(router: &mut Router, msg: &Message) -> Vec<usize> {
        let mut targets = Vec::new();
        router.select(msg, &mut targets);
        targets
    }

    #[test]
    fn steps_are_built_in_their_fixed_order() {
        let (_l, two) = outputs(&[None, None]);
        assert!(Router::new(false, two.clone()).is_passthrough());
        assert_eq!(Router::new(true, two).names(), ["split"]);
        let (_l, one) = outputs(&[None]);
        assert!(Router::new(true, one).is_passthrough(), "split of one");
        let (_l, limited) = outputs(&[None, Some(Limit::PerSecond(1))]);
        assert_eq!(Router::new(true, limited).names(), ["split", "limits"]);
    }

    #[test]
    fn fan_out_targets_every_output() {
        let (_l, three) = outputs(&[None, None, None]);
        let mut router = Router::new(false, three);
        assert_eq!(targets(&mut router, &msg(Kind::Request, "a")), [0, 1, 2]);
    }

    #[test]
    fn split_round_robins_requests_and_responses_follow() {
        let mut split = Split::new(3);
        let mut pick = |m: &Message| {
            let mut targets = vec![0, 1, 2];
            split.select(m, &mut targets);
            targets
        };
        let requests: Vec<Vec<usize>> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| pick(&msg(Kind::Request, id)))
            .collect();
        assert_eq!(requests, [vec![0], vec![1], vec![2], vec![0]]);
        assert_eq!(pick(&msg(Kind::Response, "c")), [2]);
        assert_eq!(pick(&msg(Kind::ReplayedResponse, "b")), [1]);
        // A response whose request is unknown takes the next turn.
        assert_eq!(pick(&msg(Kind::Response, "zz")), [1]);
    }

    #[test]
    fn limits_refuse_on_the_output_and_responses_follow() {
        let (ledger, outs) = outputs(&[None, Some(Limit::PerSecond(1))]);
        let mut router = Router::new(false, outs);
        assert_eq!(targets(&mut router, &msg(Kind::Request, "1")), [0, 1]);
        assert_eq!(targets(&mut router, &msg(Kind::Request, "2")), [0]);
        assert_eq!(targets(&mut router, &msg(Kind::Response, "2")), [0]);
        assert_eq!(targets(&mut router, &msg(Kind::Response, "1")), [0, 1]);
        // The refused request and its response are counted in and dropped on the output.
        let limited = &ledger.snapshot()[1];
        assert_eq!(limited.received, 2);
        assert_eq!(limited.drops, vec![(Reason::RateLimited, 2)]);
    }

    #[test]
    fn split_then_limit_leaves_no_target_when_refused() {
        let (_l, outs) = outputs(&[Some(Limit::Percent(0.0)), None]);
        let mut router = Router::new(true, outs);
        assert!(targets(&mut router, &msg(Kind::Request, "a")).is_empty());
        assert_eq!(targets(&mut router, &msg(Kind::Request, "b")), [1]);
    }

    #[test]
    fn routes_are_bounded() {
        let mut routes = Routes::default();
        for i in 0..REMEMBERED_ROUTES + 5 {
            routes.remember(&i.to_string(), i % 2);
        }
        assert_eq!(routes.find("0"), None);
        assert_eq!(routes.find(&(REMEMBERED_ROUTES + 3).to_string()), Some(1));
    }
}
