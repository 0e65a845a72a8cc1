//! The emitter: every input → (middleware) → dispatch → every output's bounded queue.
//!
//! Threads and channels, no async. Inputs send batches of messages into one bounded ingress
//! channel, obeying their one back-pressure declaration (`InputSpec::backpressure`: `Wait`
//! when it is full, or `Drop` and count). The dispatch thread copies each message to every
//! output's queue (or one, round-robin, with `--split-output`), a batch in, one batch per
//! output out. When every input is declared `Drop` (live capture), dispatch never waits on a
//! full output queue: it drops into the ledger, so a dead output stalls nothing. When all
//! inputs have ended, queues drain and the run ends.
//!
//! The ledger is exact: the emitter counts a message out when it reached at least one
//! output's queue, else dropped with the reason; each output counts in everything offered to
//! it, then out or dropped. Every plugin thread runs under `catch_panic`: a panic is logged
//! once, counted (`plugin panicked` for what the thread held) and fails the run (exit 1).
//!
//! Dispatch runs two ordered lists of steps, built once from the settings: the message
//! steps of [`crate::transform`] (the copy-buffer cut, `--prettify-http`, the `--http-*`
//! modifiers; a step that drops counts its reason on the emitter), then the routing steps of
//! [`crate::route`] (`--split-output`, each output's `|N` / `|N%` limit), and fans each
//! message out to the outputs left. Replayed responses fed back by outputs go through the
//! middleware when there is one (see `middleware.rs`), else straight into dispatch.

use crate::limiter::Limiter;
use crate::middleware::{FeedbackRoute, Middleware, MiddlewareConfig};
use crate::modifier::Modifier;
use crate::route::Router;
use crate::transform::{TransformSettings, Transforms, Verdict};
use crossbeam_channel::{bounded, never, select, Receiver, SendTimeoutError, Sender, TrySendError};
use shadowtap_api::{
    catch_panic, test_panic_point, Backpressure, Batch, CoreSettings, Counters, Gate, Inbox,
    InputContext, InputSpec, Ledger, Limit, Message, OutputContext, OutputSpec, Reason, Role,
    Shutdown, ShutdownTrigger,
};
use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Capacity of the channels between inputs, middleware and dispatch, in batches (inputs
/// that hand on one message at a time make one-message batches).
const INGRESS_CAPACITY: usize = 256;
/// Capacity of the channels that carry replayed responses, in messages.
const FEEDBACK_CAPACITY: usize = 4096;

/// Everything a run needs.
pub struct Pipeline {
    /// Configured inputs.
    pub inputs: Vec<InputSpec>,
    /// Configured outputs.
    pub outputs: Vec<OutputSpec>,
    /// The middleware, if any.
    pub middleware: Option<MiddlewareConfig>,
    /// Send each message to one output, round-robin.
    pub split_output: bool,
    /// Settings plugins see.
    pub settings: CoreSettings,
    /// The `--http-*` filters and rewrites.
    pub modifier: Option<Modifier>,
    /// `--prettify-http`, with the run's gRPC descriptor set.
    pub prettify: Option<crate::prettify::Prettifier>,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Fatal errors (a plugin failed, the middleware could not be kept alive).
    pub failures: Vec<String>,
    /// A configuration problem found when starting (nothing ran).
    pub usage_error: Option<String>,
}

/// What to do when an output's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FullQueue {
    Wait,
    Drop,
    /// Replayed responses: an output that does not feed back is waited for (it drains on its
    /// own, so waiting cannot deadlock, and a comparison of responses loses none); one that
    /// feeds back is not (its workers may be waiting for room to feed back).
    Feedback,
}

/// Runs the pipeline until every input has ended (or shutdown) and every output has drained.
pub fn run(
    pipeline: Pipeline,
    ledger: &Arc<Ledger>,
    trigger: &Arc<ShutdownTrigger>,
    shutdown: &Shutdown,
) -> Outcome {
    let mut outcome = Outcome::default();
    let all_drop = pipeline
        .inputs
        .iter()
        .all(|i| i.backpressure == Backpressure::Drop);
    let policy = if !pipeline.inputs.is_empty() && all_drop {
        FullQueue::Drop
    } else {
        FullQueue::Wait
    };
    let (ingress_tx, ingress_rx) = bounded::<Batch>(INGRESS_CAPACITY);
    let (feedback_tx, feedback_rx) = bounded::<Message>(FEEDBACK_CAPACITY);
    let any_feedback = pipeline.outputs.iter().any(|o| o.feedback);
    // With a middleware, replayed responses go through it: a forwarder hands them on without
    // ever waiting, and the middleware says when the inputs' messages are all back out.
    let mut feedback_done = never::<()>();
    let mut route_ends = None;
    let mut forwarder: Option<JoinHandle<()>> = None;
    let (messages, middleware) = match pipeline.middleware {
        Some(config) => {
            let route = any_feedback.then(|| {
                let (route_tx, route_rx) = bounded::<Message>(FEEDBACK_CAPACITY);
                let (done_tx, done_rx) = bounded::<()>(0);
                feedback_done = done_rx;
                route_ends = Some((route_tx, feedback_rx.clone()));
                FeedbackRoute {
                    messages: route_rx,
                    ingress_done: done_tx,
                }
            });
            match start_middleware(config, ingress_rx, route, ledger, shutdown) {
                Ok((rx, mw, counters)) => {
                    if let Some((route_tx, from_outputs)) = route_ends.take() {
                        forwarder = Some(forward_feedback(from_outputs, route_tx, counters));
                    }
                    (rx, Some(mw))
                }
                Err(e) => {
                    outcome.usage_error = Some(e);
                    return outcome;
                }
            }
        }
        None => (ingress_rx, None),
    };
    let outputs: Vec<RunningOutput> = pipeline
        .outputs
        .into_iter()
        .map(|spec| {
            let feedback = spec.feedback.then(|| feedback_tx.clone());
            start_output(
                spec,
                ledger,
                trigger,
                shutdown,
                feedback,
                &pipeline.settings,
            )
        })
        .collect();
    drop(feedback_tx);
    let inputs: Vec<JoinHandle<Option<String>>> = pipeline
        .inputs
        .into_iter()
        .map(|spec| {
            start_input(
                spec,
                ingress_tx.clone(),
                ledger,
                shutdown,
                &pipeline.settings,
            )
        })
        .collect();
    drop(ingress_tx);

    let emitter_counters = ledger.register("emitter", Role::Engine);
    let transforms = Transforms::new(TransformSettings {
        copy_buffer_size: pipeline.settings.copy_buffer_size,
        prettify: pipeline.prettify,
        modifier: pipeline.modifier,
    });
    let mut dispatch = Dispatch::new(
        outputs,
        transforms,
        pipeline.split_output,
        policy,
        emitter_counters,
    );
    let feedback_rx = match (any_feedback, &forwarder) {
        (false, _) => never(),
        (true, None) => feedback_rx,
        // Replayed responses reach dispatch through the middleware: nothing comes here.
        (true, Some(_)) => bounded(0).1,
    };
    dispatch.run(&messages, &feedback_rx, &feedback_done);

    if let Some(mw) = middleware {
        if let Err(e) = mw.join() {
            trigger.trigger();
            outcome.failures.push(e);
        }
    }
    outcome.failures.extend(
        inputs
            .into_iter()
            .filter_map(|h| h.join().unwrap_or(Some("an input thread died".into()))),
    );
    outcome.failures.extend(dispatch.finish(&feedback_rx));
    if let Some(handle) = forwarder {
        let _ = handle.join();
    }
    outcome
}

fn start_middleware(
    config: MiddlewareConfig,
    ingress: Receiver<Batch>,
    feedback: Option<FeedbackRoute>,
    ledger: &Arc<Ledger>,
    shutdown: &Shutdown,
) -> Result<(Receiver<Batch>, Middleware, Arc<Counters>), String> {
    let counters = ledger.register(format!("middleware[{}]", config.command), Role::Engine);
    let (egress_tx, egress_rx) = bounded(INGRESS_CAPACITY);
    let command = config.command.clone();
    Middleware::start(
        config,
        ingress,
        feedback,
        egress_tx,
        counters.clone(),
        shutdown.clone(),
    )
    .map(|mw| (egress_rx, mw, counters))
    .map_err(|e| format!("--middleware: cannot start {command:?}: {e}"))
}

/// Hands replayed responses from outputs to the middleware without ever waiting: when its
/// route is full they are dropped (`queue full` on the middleware's counters), so an output
/// feeding back never blocks on the middleware, which may be waiting on dispatch.
fn forward_feedback(
    from_outputs: Receiver<Message>,
    to_middleware: Sender<Message>,
    counters: Arc<Counters>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("feedback".into())
        .spawn(move || {
            catch_panic(&counters.clone(), || {
                for msg in from_outputs.iter() {
                    match to_middleware.try_send(msg) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => counters.add_refused(Reason::QueueFull, 1),
                        Err(TrySendError::Disconnected(_)) => {
                            counters.add_refused(Reason::MiddlewareLost, 1)
                        }
                    }
                }
            });
        })
        .expect("spawn feedback thread")
}

fn start_input(
    spec: InputSpec,
    ingress: Sender<Batch>,
    ledger: &Arc<Ledger>,
    shutdown: &Shutdown,
    settings: &CoreSettings,
) -> JoinHandle<Option<String>> {
    let counters = ledger.register(spec.label.clone(), Role::Input);
    let gate = spec
        .limit
        .map(|l| Box::new(Limiter::new(l)) as Box<dyn Gate>);
    let cx = InputContext::new(
        ingress,
        counters.clone(),
        shutdown.clone(),
        gate,
        settings.clone(),
    )
    .with_backpressure(spec.backpressure);
    let label = spec.label;
    let plugin = spec.plugin;
    thread::Builder::new()
        .name(label.clone())
        .spawn(move || {
            match catch_panic(&counters, || {
                test_panic_point(&label);
                plugin.run(cx)
            }) {
                None => Some(format!("{label} panicked")),
                Some(result) => result.err().map(|e| {
                    counters.add_error();
                    tracing::error!("{label}: {e}");
                    format!("{label}: {e}")
                }),
            }
        })
        .expect("spawn input thread")
}

/// An output's thread and the sending side of its queue.
struct RunningOutput {
    label: String,
    queue: Option<Sender<Batch>>,
    counters: Arc<Counters>,
    limit: Option<Limit>,
    feedback: bool,
    shared_inbox: bool,
    thread: JoinHandle<Option<String>>,
    /// The batch being built for it, and the position of each message in the batch that
    /// dispatch is working through.
    pending: Batch,
    pending_from: Vec<usize>,
}

fn start_output(
    spec: OutputSpec,
    ledger: &Arc<Ledger>,
    trigger: &Arc<ShutdownTrigger>,
    shutdown: &Shutdown,
    feedback: Option<Sender<Message>>,
    settings: &CoreSettings,
) -> RunningOutput {
    let counters = ledger.register(spec.label.clone(), Role::Output);
    let (tx, rx) = bounded::<Batch>(spec.queue_len.max(1));
    let cx = OutputContext::new(
        counters.clone(),
        shutdown.clone(),
        feedback,
        settings.clone(),
    )
    .with_stopper(trigger.clone());
    let label = spec.label.clone();
    let plugin = spec.plugin;
    let thread_counters = counters.clone();
    let thread = thread::Builder::new()
        .name(label.clone())
        .spawn(move || {
            let unread = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let inbox = Inbox::new(rx.clone()).counting_unread(unread.clone());
            let result = catch_panic(&thread_counters, || {
                test_panic_point(&label);
                plugin.run(inbox, cx)
            });
            let (failure, reason) = match result {
                None => (Some(format!("{label} panicked")), Reason::Panicked),
                Some(Ok(())) => (None, Reason::Shutdown),
                Some(Err(e)) => {
                    thread_counters.add_error();
                    tracing::error!("{label}: {e}");
                    (Some(format!("{label}: {e}")), Reason::OutputError)
                }
            };
            let unread = unread.load(std::sync::atomic::Ordering::Relaxed);
            let queued: u64 = rx.iter().map(|batch| batch.len() as u64).sum();
            if unread + queued > 0 {
                thread_counters.add_drop(reason, unread + queued);
            }
            if failure.is_some() {
                // What it neither delivered nor dropped was in its hands.
                thread_counters.settle(reason);
            }
            failure
        })
        .expect("spawn output thread");
    RunningOutput {
        label: spec.label,
        queue: Some(tx),
        counters,
        limit: spec.limit,
        feedback: spec.feedback,
        shared_inbox: spec.shared_inbox,
        thread,
        pending: Vec::new(),
        pending_from: Vec::new(),
    }
}

/// Copies messages into output queues: each message through the message steps, then the
/// routing steps, then into the queue of every output left.
struct Dispatch {
    outputs: Vec<RunningOutput>,
    transforms: Transforms,
    router: Router,
    /// The outputs of the message being routed (reused).
    targets: Vec<usize>,
    policy: FullQueue,
    counters: Arc<Counters>,
    pending_feedback: VecDeque<Message>,
}

impl Dispatch {
    fn new(
        outputs: Vec<RunningOutput>,
        transforms: Transforms,
        split: bool,
        policy: FullQueue,
        counters: Arc<Counters>,
    ) -> Self {
        let router = Router::new(
            split,
            outputs
                .iter()
                .map(|o| (o.limit, o.counters.clone()))
                .collect(),
        );
        Dispatch {
            outputs,
            transforms,
            router,
            targets: Vec::new(),
            policy,
            counters,
            pending_feedback: VecDeque::new(),
        }
    }

    /// Dispatches until `messages` closes, serving replayed responses from `feedback` too.
    /// When `feedback_done` disconnects (the middleware has passed on everything the inputs
    /// sent), the queues of outputs that feed back are closed so that they can finish.
    fn run(
        &mut self,
        messages: &Receiver<Batch>,
        feedback: &Receiver<Message>,
        feedback_done: &Receiver<()>,
    ) {
        if !self.outputs.iter().any(|o| o.feedback) {
            // Nothing can come back: a plain receive loop, without select's bookkeeping.
            for batch in messages.iter() {
                self.dispatch(batch, self.policy, feedback);
            }
            return;
        }
        let waiting = never();
        let mut feedback_done = feedback_done;
        loop {
            self.dispatch_pending_feedback(feedback);
            select! {
                recv(messages) -> batch => match batch {
                    Ok(batch) => self.dispatch(batch, self.policy, feedback),
                    Err(_) => return,
                },
                recv(feedback) -> msg => if let Ok(msg) = msg {
                    self.dispatch(vec![msg], FullQueue::Feedback, feedback);
                },
                recv(feedback_done) -> _ => {
                    // The middleware sent the inputs' last messages before saying so, but
                    // select may pick this first: they still go to every output.
                    while let Ok(batch) = messages.try_recv() {
                        self.dispatch(batch, self.policy, feedback);
                    }
                    for output in self.outputs.iter_mut().filter(|o| o.feedback) {
                        output.queue = None;
                    }
                    feedback_done = &waiting;
                },
            }
        }
    }

    fn dispatch_pending_feedback(&mut self, feedback: &Receiver<Message>) {
        while !self.pending_feedback.is_empty() {
            let batch: Batch = self.pending_feedback.drain(..).collect();
            self.dispatch(batch, FullQueue::Feedback, feedback);
        }
    }

    /// Input has ended: let outputs that feed back finish first while their replayed
    /// responses still reach the others, then close every queue and wait for the outputs.
    fn finish(mut self, feedback: &Receiver<Message>) -> Vec<String> {
        let mut feeding_back = false;
        for output in self.outputs.iter_mut().filter(|o| o.feedback) {
            output.queue = None;
            feeding_back = true;
        }
        self.dispatch_pending_feedback(feedback);
        while feeding_back {
            match feedback.recv() {
                Ok(msg) => self.dispatch(vec![msg], FullQueue::Feedback, feedback),
                Err(_) => feeding_back = false,
            }
        }
        let mut failures = Vec::new();
        for output in self.outputs {
            drop(output.queue);
            match output.thread.join() {
                Ok(failure) => failures.extend(failure),
                Err(_) => failures.push(format!("{} panicked", output.label)),
            }
        }
        failures
    }

    /// Routes each message of `batch` to its outputs' batches, then queues those batches.
    /// The emitter counts a message out when it reached at least one output's queue, else
    /// dropped with the reason it missed the last one for.
    fn dispatch(&mut self, mut batch: Batch, policy: FullQueue, feedback: &Receiver<Message>) {
        self.counters.add_in(batch.len() as u64);
        batch.retain_mut(|msg| self.prepare(msg));
        if batch.is_empty() {
            return;
        }
        if let Some(index) = self.sole_output() {
            // The common case: the batch goes on as it is, without a copy per message.
            let count = batch.len() as u64;
            match self.queue(index, batch, policy, feedback) {
                Ok(()) => self.counters.add_out(count),
                Err(reason) => self.counters.add_drop(reason, count),
            }
            return;
        }
        let mut delivered = vec![Err(Reason::RateLimited); batch.len()];
        for (position, msg) in batch.into_iter().enumerate() {
            self.route(position, msg);
        }
        for index in 0..self.outputs.len() {
            self.queue_pending(index, policy, feedback, &mut delivered);
        }
        let out = delivered.iter().filter(|d| d.is_ok()).count();
        if out > 0 {
            self.counters.add_out(out as u64);
        }
        for missed in delivered.into_iter().filter_map(Result::err) {
            self.counters.add_drop(missed, 1);
        }
    }

    /// The only output, when it takes every message as it comes (no routing step, one
    /// reader).
    fn sole_output(&self) -> Option<usize> {
        match &self.outputs[..] {
            [only] if self.router.is_passthrough() && !only.shared_inbox => Some(0),
            _ => None,
        }
    }

    /// Runs the message steps; false (the drop counted) when one dropped `msg`.
    fn prepare(&mut self, msg: &mut Message) -> bool {
        match self.transforms.apply(msg, &self.counters) {
            Verdict::Pass => true,
            Verdict::Drop(reason) => {
                self.counters.add_drop(reason, 1);
                false
            }
        }
    }

    /// Adds `msg` to the batch of every output the routing steps leave it.
    fn route(&mut self, position: usize, msg: Message) {
        let mut targets = std::mem::take(&mut self.targets);
        self.router.select(&msg, &mut targets);
        if let Some((&last, rest)) = targets.split_last() {
            for &index in rest {
                let output = &mut self.outputs[index];
                output.pending.push(msg.clone());
                output.pending_from.push(position);
            }
            let output = &mut self.outputs[last];
            output.pending.push(msg);
            output.pending_from.push(position);
        }
        self.targets = targets;
    }

    /// Queues output `index`'s batch (one message per batch for a shared inbox), marking
    /// in `delivered` the positions of what was queued (or why it was not).
    fn queue_pending(
        &mut self,
        index: usize,
        policy: FullQueue,
        feedback: &Receiver<Message>,
        delivered: &mut [Result<(), Reason>],
    ) {
        let output = &mut self.outputs[index];
        if output.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut output.pending);
        let from = std::mem::take(&mut output.pending_from);
        let mut mark = |position: usize, result: Result<(), Reason>| {
            if delivered[position].is_err() {
                delivered[position] = result;
            }
        };
        if output.shared_inbox {
            for (msg, &position) in pending.into_iter().zip(&from) {
                mark(position, self.queue(index, vec![msg], policy, feedback));
            }
        } else {
            let result = self.queue(index, pending, policy, feedback);
            from.iter().for_each(|&position| mark(position, result));
        }
    }

    /// Queues `batch` for output `index`, which counts it in (and, when it could not be
    /// queued, dropped with the reason returned).
    fn queue(
        &mut self,
        index: usize,
        batch: Batch,
        policy: FullQueue,
        feedback: &Receiver<Message>,
    ) -> Result<(), Reason> {
        let count = batch.len() as u64;
        let output = &mut self.outputs[index];
        output.counters.add_in(count);
        let policy = match policy {
            FullQueue::Feedback if output.feedback => FullQueue::Drop,
            other => other,
        };
        let result = match &output.queue {
            // An output that feeds back is closed once the inputs' messages are all in it:
            // what comes after is its own replayed responses, which it does not take.
            None if output.feedback => Err(Reason::NotForOutput),
            None => Err(Reason::Shutdown),
            Some(queue) => match queue.try_send(batch) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) if policy == FullQueue::Drop => Err(Reason::QueueFull),
                // Not while collecting replayed responses (they would pile up unbounded): the
                // output drains on its own, and the replaying outputs wait for room meanwhile.
                Err(TrySendError::Full(batch)) if policy == FullQueue::Feedback => {
                    queue.send(batch).map_err(|_| Reason::OutputError)
                }
                Err(TrySendError::Full(batch)) => {
                    let queue = queue.clone();
                    self.send_waiting(&queue, batch, feedback)
                        .then_some(())
                        .ok_or(Reason::OutputError)
                }
                Err(TrySendError::Disconnected(_)) => Err(Reason::OutputError),
            },
        };
        if let Err(reason) = result {
            self.outputs[index].counters.add_drop(reason, count);
        }
        result
    }

    /// Waits for room in `queue`, meanwhile collecting replayed responses so that an output
    /// waiting to feed back can never deadlock against dispatch waiting on it.
    fn send_waiting(
        &mut self,
        queue: &Sender<Batch>,
        mut batch: Batch,
        feedback: &Receiver<Message>,
    ) -> bool {
        loop {
            match queue.send_timeout(batch, Duration::from_millis(20)) {
                Ok(()) => return true,
                Err(SendTimeoutError::Disconnected(_)) => return false,
                Err(SendTimeoutError::Timeout(back)) => {
                    batch = back;
                    self.pending_feedback.extend(feedback.try_iter());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::TransformSettings;
    use shadowtap_api::ledger::Snapshot;
    use shadowtap_api::testkit::{self, request, response, FakeOutput, Received};
    use shadowtap_api::Kind;
    use std::time::Instant;

    /// A dispatcher over `outputs` (already started) with the plain steps.
    struct Harness {
        ledger: Arc<Ledger>,
        trigger: Arc<ShutdownTrigger>,
        shutdown: Shutdown,
        feedback_tx: Option<Sender<Message>>,
        feedback_rx: Receiver<Message>,
        outputs: Vec<RunningOutput>,
    }

    impl Harness {
        fn new() -> Self {
            let (trigger, shutdown) = Shutdown::new();
            let (feedback_tx, feedback_rx) = bounded(FEEDBACK_CAPACITY);
            Harness {
                ledger: Ledger::new(),
                trigger: Arc::new(trigger),
                shutdown,
                feedback_tx: Some(feedback_tx),
                feedback_rx,
                outputs: Vec::new(),
            }
        }

        fn output(&mut self, spec: OutputSpec) -> &mut Self {
            let feedback = spec.feedback.then(|| self.feedback_tx.clone()).flatten();
            let settings = CoreSettings::default();
            self.outputs.push(start_output(
                spec,
                &self.ledger,
                &self.trigger,
                &self.shutdown,
                feedback,
                &settings,
            ));
            self
        }

        fn dispatch(&mut self, split: bool, policy: FullQueue) -> Dispatch {
            self.dispatch_with(split, policy, None)
        }

        fn dispatch_with(
            &mut self,
            split: bool,
            policy: FullQueue,
            modifier: Option<Modifier>,
        ) -> Dispatch {
            self.feedback_tx = None;
            let transforms = Transforms::new(TransformSettings {
                copy_buffer_size: 1 << 20,
                prettify: None,
                modifier,
            });
            let counters = self.ledger.register("emitter", Role::Engine);
            Dispatch::new(
                std::mem::take(&mut self.outputs),
                transforms,
                split,
                policy,
                counters,
            )
        }

        /// Ends the run as `emitter::run` does, then checks that the ledger balances.
        fn finish(&self, dispatch: Dispatch) -> Vec<Snapshot> {
            assert_eq!(dispatch.finish(&self.feedback_rx), Vec::<String>::new());
            testkit::assert_ledger_balances(&self.ledger.summary_json("summary"));
            self.ledger.snapshot()
        }
    }

    fn requests(range: std::ops::Range<usize>) -> Batch {
        range.map(|i| request(&format!("r{i}"))).collect()
    }

    fn snapshot<'a>(all: &'a [Snapshot], label: &str) -> &'a Snapshot {
        all.iter().find(|s| s.label == label).expect("registered")
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("r{i}")).collect()
    }

    #[test]
    fn order_is_kept_across_batches_to_one_and_to_several_outputs() {
        for outputs in [1, 3] {
            let mut h = Harness::new();
            let received: Vec<Received> = (0..outputs)
                .map(|i| {
                    let (output, received) = FakeOutput::new();
                    h.output(output.spec(&format!("out{i}"), 4));
                    received
                })
                .collect();
            let mut dispatch = h.dispatch(false, FullQueue::Wait);
            let never = never();
            let mut next = 0;
            for size in [1, 5, 2, 7, 1, 4] {
                dispatch.dispatch(requests(next..next + size), FullQueue::Wait, &never);
                next += size;
            }
            let all = h.finish(dispatch);
            for r in &received {
                assert_eq!(r.ids(), ids(0..20), "{outputs} outputs");
            }
            let emitter = snapshot(&all, "emitter");
            assert_eq!((emitter.received, emitter.passed), (20, 20));
        }
    }

    #[test]
    fn drop_policy_drops_into_the_ledger_when_a_queue_is_full() {
        let mut h = Harness::new();
        let (output, received, release) = FakeOutput::held();
        h.output(output.spec("held", 1));
        let mut dispatch = h.dispatch(false, FullQueue::Drop);
        for i in 0..3 {
            dispatch.dispatch(requests(i..i + 1), FullQueue::Drop, &never());
        }
        release.release();
        let all = h.finish(dispatch);
        assert_eq!(received.ids(), ["r0"]);
        let held = snapshot(&all, "held");
        assert_eq!((held.received, held.passed), (3, 1));
        assert_eq!(held.drops, vec![(Reason::QueueFull, 2)]);
        let emitter = snapshot(&all, "emitter");
        assert_eq!(emitter.drops, vec![(Reason::QueueFull, 2)]);
    }

    #[test]
    fn wait_policy_waits_for_room_and_loses_nothing() {
        let mut h = Harness::new();
        let (output, received, release) = FakeOutput::held();
        h.output(output.spec("held", 1));
        let mut dispatch = h.dispatch(false, FullQueue::Wait);
        let started = Instant::now();
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            release.release();
        });
        for i in 0..3 {
            dispatch.dispatch(requests(i..i + 1), FullQueue::Wait, &never());
        }
        assert!(started.elapsed() >= Duration::from_millis(90));
        releaser.join().unwrap();
        let all = h.finish(dispatch);
        assert_eq!(received.ids(), ids(0..3));
        assert_eq!(snapshot(&all, "held").dropped(), 0);
        assert_eq!(snapshot(&all, "emitter").passed, 3);
    }

    #[test]
    fn fan_out_reaches_every_output_while_one_is_full() {
        let mut h = Harness::new();
        let (free, free_received) = FakeOutput::new();
        let (held, held_received, release) = FakeOutput::held();
        h.output(free.spec("free", 100));
        h.output(held.spec("held", 1));
        let mut dispatch = h.dispatch(false, FullQueue::Drop);
        for i in 0..4 {
            dispatch.dispatch(requests(i..i + 1), FullQueue::Drop, &never());
        }
        release.release();
        let all = h.finish(dispatch);
        assert_eq!(free_received.ids(), ids(0..4));
        assert_eq!(held_received.ids(), ["r0"]);
        assert_eq!(snapshot(&all, "held").drops, vec![(Reason::QueueFull, 3)]);
        // Each message reached one output at least: out for the emitter.
        let emitter = snapshot(&all, "emitter");
        assert_eq!((emitter.passed, emitter.dropped()), (4, 0));
    }

    #[test]
    fn a_message_no_output_takes_is_dropped_with_the_last_reason() {
        let mut h = Harness::new();
        let (a, _, release_a) = FakeOutput::held();
        let (b, _, release_b) = FakeOutput::held();
        h.output(a.spec("a", 1));
        h.output(b.spec("b", 1));
        let mut dispatch = h.dispatch(false, FullQueue::Drop);
        dispatch.dispatch(requests(0..2), FullQueue::Drop, &never());
        dispatch.dispatch(requests(2..3), FullQueue::Drop, &never());
        drop((release_a, release_b));
        let all = h.finish(dispatch);
        let emitter = snapshot(&all, "emitter");
        assert_eq!(
            (emitter.passed, emitter.drops.clone()),
            (2, vec![(Reason::QueueFull, 1)])
        );
    }

    #[test]
    fn split_sends_each_request_to_one_output_and_responses_follow() {
        let mut h = Harness::new();
        let (a, a_received) = FakeOutput::new();
        let (b, b_received) = FakeOutput::new();
        h.output(a.spec("a", 10));
        h.output(b.spec("b", 10));
        let mut dispatch = h.dispatch(true, FullQueue::Wait);
        let batch = vec![
            request("1"),
            request("2"),
            response("2"),
            request("3"),
            response("1"),
            response("3"),
        ];
        dispatch.dispatch(batch, FullQueue::Wait, &never());
        let all = h.finish(dispatch);
        let kinds = |r: &Received| -> Vec<(String, bool)> {
            r.messages()
                .iter()
                .map(|m| (m.id().to_string(), m.kind().is_request()))
                .collect()
        };
        let pair = |id: &str, request: bool| (id.to_string(), request);
        assert_eq!(
            kinds(&a_received),
            [
                pair("1", true),
                pair("3", true),
                pair("1", false),
                pair("3", false)
            ]
        );
        assert_eq!(kinds(&b_received), [pair("2", true), pair("2", false)]);
        assert_eq!(snapshot(&all, "emitter").passed, 6);
    }

    #[test]
    fn limits_and_filters_count_their_reasons() {
        let mut h = Harness::new();
        let (open, open_received) = FakeOutput::new();
        let (closed, closed_received) = FakeOutput::new();
        h.output(open.spec("open", 10));
        let mut spec = closed.spec("closed", 10);
        spec.limit = Some(shadowtap_api::Limit::Percent(0.0));
        h.output(spec);
        let modifier = {
            use clap::Parser;
            let core =
                crate::cli::CoreArgs::try_parse_from(["shadowtap", "--http-disallow-url", "/r1$"])
                    .unwrap();
            Modifier::new(core.modifiers)
        };
        let mut dispatch = h.dispatch_with(false, FullQueue::Wait, modifier);
        let mut batch = requests(0..3);
        batch.push(response("r1"));
        dispatch.dispatch(batch, FullQueue::Wait, &never());
        let all = h.finish(dispatch);
        assert_eq!(open_received.ids(), ["r0", "r2"]);
        assert!(closed_received.is_empty());
        let closed = snapshot(&all, "closed");
        assert_eq!(closed.drops, vec![(Reason::RateLimited, 2)]);
        let emitter = snapshot(&all, "emitter");
        assert_eq!(emitter.drops, vec![(Reason::Filtered, 2)]);
        assert_eq!(emitter.passed, 2);
    }

    #[test]
    fn replayed_responses_wait_for_a_full_output_that_does_not_feed_back() {
        let mut h = Harness::new();
        let (replayer, _) = FakeOutput::new();
        let (slow, slow_received, release) = FakeOutput::held();
        h.output(replayer.feeding_back().spec("replayer", 16));
        h.output(slow.spec("slow", 1));
        let mut dispatch = h.dispatch(false, FullQueue::Wait);
        let feedback = h.feedback_rx.clone();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            release.release();
        });
        for i in 0..5 {
            dispatch.dispatch(requests(i..i + 1), FullQueue::Wait, &feedback);
        }
        let all = h.finish(dispatch);
        releaser.join().unwrap();
        let replayed = slow_received
            .messages()
            .into_iter()
            .filter(|m| m.kind() == Kind::ReplayedResponse)
            .count();
        assert_eq!(replayed, 5, "none dropped for a full queue");
        let slow = snapshot(&all, "slow");
        assert!(slow.drops.is_empty(), "{:?}", slow.drops);
        assert_eq!(slow.passed, 10);
    }

    #[test]
    fn drain_at_eof_delivers_what_is_queued_and_replayed_responses() {
        let mut h = Harness::new();
        let (replayer, replayer_received, release) = FakeOutput::held();
        let (recorder, recorder_received) = FakeOutput::new();
        h.output(replayer.feeding_back().spec("replayer", 16));
        h.output(recorder.spec("recorder", 16));
        let mut dispatch = h.dispatch(false, FullQueue::Wait);
        let feedback = h.feedback_rx.clone();
        for i in 0..5 {
            dispatch.dispatch(requests(i..i + 1), FullQueue::Wait, &feedback);
        }
        // Everything is still queued for the replayer when the input ends.
        release.release();
        let all = h.finish(dispatch);
        assert_eq!(replayer_received.ids(), ids(0..5));
        let replayed: Vec<Message> = recorder_received
            .messages()
            .into_iter()
            .filter(|m| m.kind() == Kind::ReplayedResponse)
            .collect();
        assert_eq!(replayed.len(), 5);
        assert_eq!(recorder_received.len(), 10);
        // Its own replayed responses are offered to it too, and not for it.
        let replayer = snapshot(&all, "replayer");
        assert_eq!(replayer.drops, vec![(Reason::NotForOutput, 5)]);
        assert_eq!(snapshot(&all, "emitter").passed, 10);
    }
}
