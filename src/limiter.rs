//! The `addr|N` and `addr|N%` rate limits, applied to requests only: a response is dropped
//! exactly when its request was.

use rand::Rng;
use shadowtap_api::{Gate, Kind, Limit, Message};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Ids remembered so that responses follow their request's fate.
const REMEMBERED_IDS: usize = 100_000;

/// A bounded set of recent ids (oldest forgotten first).
#[derive(Debug, Default)]
pub struct RecentIds {
    set: HashSet<Box<str>>,
    order: VecDeque<Box<str>>,
}

impl RecentIds {
    /// Remembers `id`.
    pub fn insert(&mut self, id: &str) {
        if self.set.insert(id.into()) {
            self.order.push_back(id.into());
        }
        if self.order.len() > REMEMBERED_IDS {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }

    /// True if `id` is remembered.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

/// One `|N` or `|N%` limit.
#[derive(Debug)]
pub struct Limiter {
    limit: Limit,
    window_start: Instant,
    passed_in_window: u64,
    dropped: RecentIds,
}

impl Limiter {
    /// A limiter for `limit`.
    pub fn new(limit: Limit) -> Self {
        Limiter {
            limit,
            window_start: Instant::now(),
            passed_in_window: 0,
            dropped: RecentIds::default(),
        }
    }

    fn admit_request(&mut self) -> bool {
        match self.limit {
            Limit::Percent(p) => p >= 100.0 || rand::rng().random_range(0.0..100.0) < p,
            Limit::PerSecond(n) => {
                let now = Instant::now();
                if now.duration_since(self.window_start) >= Duration::from_secs(1) {
                    self.window_start = now;
                    self.passed_in_window = 0;
                }
                self.passed_in_window += 1;
                self.passed_in_window <= n
            }
        }
    }
}

impl Gate for Limiter {
    fn admit(&mut self, msg: &Message) -> bool {
        if msg.kind() != Kind::Request {
            return !self.dropped.contains(msg.id());
        }
        let admitted = self.admit_request();
        if !admitted {
            self.dropped.insert(msg.id());
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::Meta;

    fn msg(kind: Kind, id: &str) -> Message {
        Message::new(Meta::new(kind, id, 0, 0).unwrap(), "x")
    }

    #[test]
    fn absolute_limit_passes_n_per_second_and_their_responses() {
        let mut limiter = Limiter::new(Limit::PerSecond(2));
        let passed: Vec<bool> = (0..4)
            .map(|i| limiter.admit(&msg(Kind::Request, &i.to_string())))
            .collect();
        assert_eq!(passed, [true, true, false, false]);
        assert!(limiter.admit(&msg(Kind::Response, "0")));
        assert!(!limiter.admit(&msg(Kind::Response, "3")));
    }

    #[test]
    fn percentages_sample() {
        let mut none = Limiter::new(Limit::Percent(0.0));
        let mut all = Limiter::new(Limit::Percent(100.0));
        let mut half = Limiter::new(Limit::Percent(50.0));
        let n = 2000;
        assert_eq!(
            (0..n)
                .filter(|i| none.admit(&msg(Kind::Request, &i.to_string())))
                .count(),
            0
        );
        assert_eq!(
            (0..n)
                .filter(|i| all.admit(&msg(Kind::Request, &i.to_string())))
                .count(),
            n
        );
        let sampled = (0..n)
            .filter(|i| half.admit(&msg(Kind::Request, &i.to_string())))
            .count();
        assert!((800..1200).contains(&sampled), "{sampled}");
    }

    #[test]
    fn recent_ids_are_bounded() {
        let mut ids = RecentIds::default();
        for i in 0..REMEMBERED_IDS + 10 {
            ids.insert(&i.to_string());
        }
        assert!(!ids.contains("0"));
        assert!(ids.contains(&(REMEMBERED_IDS + 9).to_string()));
    }
}
