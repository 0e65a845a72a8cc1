//! The plugin traits and what the engine hands them: a context for inputs, an inbox and a
//! context for outputs, and the shutdown signal they all watch.
//!
//! Messages cross threads in [`Batch`]es: one channel operation (and at most one wake-up) per
//! batch instead of per message is what lets capture keep up on a single core. Inputs that
//! produce messages in bursts [`push`](InputContext::push) them and
//! [`flush`](InputContext::flush) when they pause; [`emit`](InputContext::emit) and
//! [`offer`](InputContext::offer) hand one message on at once. Outputs read one message at a
//! time from their [`Inbox`] (or a batch at a time with [`Inbox::recv_batch`]).

use crate::ledger::{Counters, Reason};
use crate::message::Message;
use crate::values::Limit;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of messages. `run` pushes messages until its source ends or shutdown begins.
pub trait Input: Send + 'static {
    /// Produces messages into `cx` until EOF (return `Ok`) or [`InputContext::is_stopping`].
    fn run(self: Box<Self>, cx: InputContext) -> Result<(), PluginError>;
}

/// A destination of messages. `run` consumes its inbox until it closes, then flushes.
pub trait Output: Send + 'static {
    /// Consumes `inbox` until it is closed, then flushes and returns.
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError>;
}

/// Why a plugin could not be built or could not run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A flag has a bad value (exit status 2).
    #[error("{flag}: {message}")]
    Usage {
        /// The flag, e.g. `--input-file`.
        flag: String,
        /// What is wrong with its value.
        message: String,
    },
    /// An I/O failure with what was being done (exit status 1).
    #[error("{context}: {source}")]
    Io {
        /// What failed, naming the path or address.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// Any other runtime failure (exit status 1).
    #[error("{0}")]
    Runtime(String),
}

impl PluginError {
    /// A usage error for `flag`.
    pub fn usage(flag: &str, message: impl Into<String>) -> Self {
        PluginError::Usage {
            flag: flag.to_string(),
            message: message.into(),
        }
    }

    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PluginError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The engine's shutdown signal as plugins see it: a flag plus a channel that wakes sleepers.
#[derive(Clone, Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    wake: Receiver<()>,
}

/// The engine's side of [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    flag: Arc<AtomicBool>,
    wake: Mutex<Option<Sender<()>>>,
}

impl Shutdown {
    /// A new signal and the trigger that fires it.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded(0);
        (
            ShutdownTrigger {
                flag: flag.clone(),
                wake: Mutex::new(Some(tx)),
            },
            Shutdown { flag, wake: rx },
        )
    }

    /// True once shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Sleeps for `duration`; returns false early if shutdown begins.
    pub fn sleep(&self, duration: Duration) -> bool {
        if self.is_triggered() {
            return false;
        }
        matches!(
            self.wake.recv_timeout(duration),
            Err(RecvTimeoutError::Timeout)
        )
    }

    /// Sleeps until `deadline`; returns false early if shutdown begins.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }

    /// A channel that disconnects at shutdown, for `select!`.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.wake
    }
}

impl ShutdownTrigger {
    /// Begins shutdown (idempotent).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.wake.lock().expect("shutdown lock").take();
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// Runs `f` (a plugin thread's body), catching a panic so that it cannot hang the run: the
/// panic hook has already logged it once with the thread's name (the plugin's label), so
/// this only counts an error on `counters`. `None` when `f` panicked.
pub fn catch_panic<T>(counters: &Counters, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            counters.add_error();
            None
        }
    }
}

/// Test-only: panics when the environment variable `SHADOWTAP_TEST_PANIC` is set and
/// `label` starts with its value. Called at the start of every plugin thread and in
/// output-http's workers, so that the integration tests can prove that a panicking plugin
/// ends the run (exit 1) instead of hanging it. Not a feature: do not set it otherwise.
#[doc(hidden)]
pub fn test_panic_point(label: &str) {
    if let Some(prefix) = std::env::var_os("SHADOWTAP_TEST_PANIC") {
        if !prefix.is_empty() && label.starts_with(&*prefix.to_string_lossy()) {
            panic!("SHADOWTAP_TEST_PANIC={}", prefix.to_string_lossy());
        }
    }
}

/// Decides per message whether an input may pass it on (the engine's `|N` limiter).
pub trait Gate: Send {
    /// True to pass `msg` on.
    fn admit(&mut self, msg: &Message) -> bool;
}

/// Returned when the pipeline no longer accepts messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct Stopped;

/// Messages handed between threads together.
pub type Batch = Vec<Message>;

/// The largest [`Batch`] an input builds with [`InputContext::push`].
pub const BATCH_MAX: usize = 256;

/// What an input uses to hand messages to the engine.
pub struct InputContext {
    sender: Sender<Batch>,
    pending: Batch,
    backpressure: Backpressure,
    /// The size of the last batch sent: a new batch reserves that much (a full batch at high
    /// rates, a few messages at low ones, so that queued batches do not hold idle capacity).
    last_batch_len: usize,
    counters: Arc<Counters>,
    shutdown: Shutdown,
    gate: Option<Box<dyn Gate>>,
    settings: CoreSettings,
}

impl InputContext {
    /// Built by the engine (and the testkit).
    pub fn new(
        sender: Sender<Batch>,
        counters: Arc<Counters>,
        shutdown: Shutdown,
        gate: Option<Box<dyn Gate>>,
        settings: CoreSettings,
    ) -> Self {
        InputContext {
            sender,
            pending: Vec::new(),
            backpressure: Backpressure::Wait,
            last_batch_len: 1,
            counters,
            shutdown,
            gate,
            settings,
        }
    }

    /// The same context, obeying `backpressure` (the input's declaration) when full.
    pub fn with_backpressure(mut self, backpressure: Backpressure) -> Self {
        self.backpressure = backpressure;
        self
    }

    /// Passes a message on; when the pipeline is full it waits (or, for an input declared
    /// [`Backpressure::Drop`], drops and counts).
    pub fn emit(&mut self, msg: Message) -> Result<(), Stopped> {
        if self.admit(&msg) {
            self.pending.push(msg);
        }
        self.send_pending()
    }

    /// Adds a message to the batch being built; the batch is passed on (as
    /// [`InputContext::emit`] does) when it holds [`BATCH_MAX`] messages or at
    /// [`InputContext::flush`]. Call `flush` before the input pauses (sleeps, waits, ends).
    pub fn push(&mut self, msg: Message) -> Result<(), Stopped> {
        self.add_to_batch(msg);
        if self.pending.len() >= BATCH_MAX {
            return self.send_pending();
        }
        Ok(())
    }

    /// [`InputContext::push`] for sources that have no use for [`Stopped`] (live capture).
    pub fn push_or_drop(&mut self, msg: Message) {
        let _ = self.push(msg);
    }

    /// Passes on the batch built by `push`, obeying the declared back-pressure.
    pub fn flush(&mut self) -> Result<(), Stopped> {
        self.send_pending()
    }

    fn send_pending(&mut self) -> Result<(), Stopped> {
        match self.backpressure {
            Backpressure::Wait => self.send_waiting(),
            Backpressure::Drop => {
                self.send_or_drop();
                Ok(())
            }
        }
    }

    fn add_to_batch(&mut self, msg: Message) {
        if self.admit(&msg) {
            if self.pending.capacity() == 0 {
                self.pending
                    .reserve_exact(self.last_batch_len.clamp(1, BATCH_MAX));
            }
            self.pending.push(msg);
        }
    }

    fn send_waiting(&mut self) -> Result<(), Stopped> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = self.take_pending();
        let count = batch.len() as u64;
        match self.sender.send(batch) {
            Ok(()) => {
                self.counters.add_out(count);
                Ok(())
            }
            Err(_) => {
                self.counters.add_drop(Reason::Shutdown, count);
                Err(Stopped)
            }
        }
    }

    /// The batch to send; its messages are counted in here, once per batch rather than per
    /// message (an atomic add per message costs a capture thread more than its parsing).
    fn take_pending(&mut self) -> Batch {
        self.last_batch_len = self.pending.len();
        self.counters.add_in(self.pending.len() as u64);
        std::mem::take(&mut self.pending)
    }

    /// Sends the pending batch if there is room; false if it was not passed on.
    fn send_or_drop(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let batch = self.take_pending();
        let count = batch.len() as u64;
        match self.sender.try_send(batch) {
            Ok(()) => {
                self.counters.add_out(count);
                true
            }
            Err(TrySendError::Full(_)) => {
                self.counters.add_drop(Reason::QueueFull, count);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.add_drop(Reason::Shutdown, count);
                false
            }
        }
    }

    /// For inputs whose own threads (one per connection, say) send messages to `rx`: waits up
    /// to `timeout` for one, then passes it on with whatever else is ready, as one batch,
    /// waiting while the pipeline is full.
    pub fn forward_ready(
        &mut self,
        rx: &Receiver<Message>,
        timeout: Duration,
    ) -> Result<(), Stopped> {
        let Ok(first) = rx.recv_timeout(timeout) else {
            return Ok(());
        };
        for msg in std::iter::once(first).chain(rx.try_iter().take(BATCH_MAX)) {
            self.push(msg)?;
        }
        self.flush()
    }

    /// Passes on what the input's threads still send to `rx`, until all of them have hung up
    /// or `deadline` passes; what is still in `rx` then (or cannot be passed on) is counted in
    /// and dropped as `unsent at shutdown`, so the ledger stays exact.
    pub fn forward_until(&mut self, rx: &Receiver<Message>, deadline: Instant) {
        while let Ok(msg) = rx.recv_deadline(deadline) {
            if self.emit(msg).is_err() {
                break;
            }
        }
        self.drop_unsent(rx);
    }

    /// Counts in and drops (`unsent at shutdown`) every message left in `rx`.
    pub fn drop_unsent(&mut self, rx: &Receiver<Message>) {
        let left = rx.try_iter().count() as u64;
        if left > 0 {
            self.counters.add_refused(Reason::Shutdown, left);
        }
    }

    /// Passes a message on at once when the pipeline has room; when it is full the message
    /// is dropped and counted (or, for an input declared [`Backpressure::Wait`], waited for).
    /// Returns false if it was not passed on.
    pub fn offer(&mut self, msg: Message) -> bool {
        if !self.admit(&msg) {
            return false;
        }
        self.pending.push(msg);
        match self.backpressure {
            Backpressure::Wait => self.send_waiting().is_ok(),
            Backpressure::Drop => self.send_or_drop(),
        }
    }

    /// Whether the gate lets `msg` into the pending batch (where it is counted in when the
    /// batch is sent); a message turned away is counted in and dropped at once.
    fn admit(&mut self, msg: &Message) -> bool {
        let admitted = self.gate.as_mut().is_none_or(|gate| gate.admit(msg));
        if !admitted {
            self.counters.add_refused(Reason::RateLimited, 1);
        }
        admitted
    }

    /// This input's counters (for drops and extra counters).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The shutdown signal.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// True once the input should stop producing.
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_triggered()
    }

    /// The run's core settings.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }
}

impl Drop for InputContext {
    /// An input that ends passes on what it has built.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// An output's queue of messages. Several threads of one output may share it (`&Inbox`);
/// such an output sets [`OutputSpec::shared_inbox`] so that no thread holds messages back.
pub struct Inbox {
    receiver: Receiver<Batch>,
    current: Mutex<std::vec::IntoIter<Message>>,
    unread: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// The result of waiting on an [`Inbox`] with a timeout.
#[derive(Debug)]
pub enum Next {
    /// A message arrived.
    Message(Message),
    /// Nothing arrived in time.
    Timeout,
    /// The inbox is closed and empty: flush and return.
    Closed,
}

impl Inbox {
    /// Wraps a receiver (used by the engine and the testkit).
    pub fn new(receiver: Receiver<Batch>) -> Self {
        Inbox {
            receiver,
            current: Mutex::new(Vec::new().into_iter()),
            unread: None,
        }
    }

    /// The same inbox; when dropped, the messages it took from the queue but did not hand
    /// out are added to `unread` (so that the engine can count them).
    pub fn counting_unread(mut self, unread: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.unread = Some(unread);
        self
    }

    /// The next message, or `None` once the inbox is closed and empty.
    pub fn recv(&self) -> Option<Message> {
        self.next_from(|| self.receiver.recv()).ok()
    }

    /// The next message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        match self.next_from(|| self.receiver.recv_deadline(deadline)) {
            Ok(msg) => Next::Message(msg),
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// A message if one is ready now.
    pub fn try_recv(&self) -> Option<Message> {
        self.next_from(|| self.receiver.try_recv()).ok()
    }

    /// The next message in hand, else from the batches `next_batch` yields (until it fails).
    fn next_from<E>(&self, mut next_batch: impl FnMut() -> Result<Batch, E>) -> Result<Message, E> {
        loop {
            if let Some(msg) = self.take_current() {
                return Ok(msg);
            }
            if let Some(msg) = self.start_batch(next_batch()?) {
                return Ok(msg);
            }
        }
    }

    /// All messages of the next batch (at least one), or `None` once the inbox is closed and
    /// empty.
    pub fn recv_batch(&self) -> Option<Batch> {
        let rest: Batch = self.current.lock().expect("inbox lock").by_ref().collect();
        if !rest.is_empty() {
            return Some(rest);
        }
        loop {
            let batch = self.receiver.recv().ok()?;
            if !batch.is_empty() {
                return Some(batch);
            }
        }
    }

    fn take_current(&self) -> Option<Message> {
        self.current.lock().expect("inbox lock").next()
    }

    /// Hands out the first message of `batch` and keeps the rest.
    fn start_batch(&self, batch: Batch) -> Option<Message> {
        let mut messages = batch.into_iter();
        let first = messages.next();
        let mut current = self.current.lock().expect("inbox lock");
        if current.len() == 0 {
            *current = messages;
        } else {
            // Another thread started a batch meanwhile: keep both, in order.
            let mut both: Batch = current.by_ref().collect();
            both.extend(messages);
            *current = both.into_iter();
        }
        first
    }

    /// Messages waiting: those in hand plus the queued batches (each counted once).
    pub fn len(&self) -> usize {
        self.current.lock().expect("inbox lock").len() + self.receiver.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let left = self.current.get_mut().map_or(0, |current| current.len());
        if let Some(unread) = &self.unread {
            unread.fetch_add(left as u64, Ordering::Relaxed);
        }
    }
}

impl Iterator for Inbox {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        self.recv()
    }
}

/// What an output uses besides its inbox.
pub struct OutputContext {
    counters: Arc<Counters>,
    shutdown: Shutdown,
    feedback: Option<Sender<Message>>,
    settings: CoreSettings,
    stopper: Option<Arc<ShutdownTrigger>>,
}

impl OutputContext {
    /// Built by the engine (and the testkit).
    pub fn new(
        counters: Arc<Counters>,
        shutdown: Shutdown,
        feedback: Option<Sender<Message>>,
        settings: CoreSettings,
    ) -> Self {
        OutputContext {
            counters,
            shutdown,
            feedback,
            settings,
            stopper: None,
        }
    }

    /// Lets this output end the whole run (see [`OutputContext::stop_run`]).
    pub fn with_stopper(mut self, stopper: Arc<ShutdownTrigger>) -> Self {
        self.stopper = Some(stopper);
        self
    }

    /// Ends the run gracefully, as SIGTERM would: inputs stop, queues drain. For an output
    /// whose destination is gone for good (stdout closed by `| head`).
    pub fn stop_run(&self) {
        if let Some(stopper) = &self.stopper {
            stopper.trigger();
        }
    }

    /// This output's counters: call `add_out` per message delivered, `add_drop` per failure.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The shutdown signal (outputs normally just drain their inbox).
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Sends a message produced by this output (a replayed response) back into the pipeline.
    /// Only outputs registered with feedback enabled have a channel; others get `Err`. A
    /// message that cannot be fed back is counted as `responses not fed back` on this output.
    pub fn feed_back(&self, msg: Message) -> Result<(), Stopped> {
        let sent = match &self.feedback {
            Some(tx) => tx.send(msg).map_err(|_| Stopped),
            None => Err(Stopped),
        };
        if sent.is_err() {
            self.counters
                .extra("responses not fed back")
                .fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// The run's core settings.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }
}

/// Settings of the engine that plugins may read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CoreSettings {
    /// Largest payload passed on, in bytes (`--copy-buffer-size`).
    pub copy_buffer_size: usize,
    /// Replaying outputs keep each request's own `Host` header instead of writing their
    /// target's: true when the modifiers set it (`--http-set-header "Host: …"`, which, as in
    /// GoReplay, implies output-http's `--http-original-host`).
    pub original_host: bool,
    matches: Option<std::sync::Arc<clap::ArgMatches>>,
}

impl CoreSettings {
    /// Settings with the given copy-buffer size.
    pub fn new(copy_buffer_size: usize) -> Self {
        CoreSettings {
            copy_buffer_size,
            original_host: false,
            matches: None,
        }
    }

    /// The same settings with [`CoreSettings::original_host`] set to `keep`.
    pub fn with_original_host(mut self, keep: bool) -> Self {
        self.original_host = keep;
        self
    }

    /// The same settings, able to answer [`CoreSettings::shared_args`] from `matches`.
    pub fn with_matches(mut self, matches: clap::ArgMatches) -> Self {
        self.matches = Some(std::sync::Arc::new(matches));
        self
    }

    /// A group of flags shared by several plugins (registered with
    /// [`register_shared_args!`](crate::register_shared_args)), parsed from the command line.
    pub fn shared_args<T: clap::FromArgMatches>(&self) -> Result<T, PluginError> {
        let empty = clap::ArgMatches::default();
        let matches = self.matches.as_deref().unwrap_or(&empty);
        T::from_arg_matches(matches).map_err(|e| PluginError::usage("shadowtap", e.to_string()))
    }
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings::new(5 << 20)
    }
}

/// What happens to an input's messages when the pipeline (or an output's queue) is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backpressure {
    /// Wait for room: nothing is lost, the source is slowed down (files, Kafka, listeners
    /// whose clients are slowed by TCP flow control or by the answer coming late).
    #[default]
    Wait,
    /// Drop and count (`queue full`): for live capture, which cannot slow the traffic.
    Drop,
}

/// One configured input instance, as a plugin's factory returns it.
pub struct InputSpec {
    /// Label in logs and the ledger, e.g. `input-file[requests.gor]`.
    pub label: String,
    /// The instance.
    pub plugin: Box<dyn Input>,
    /// What this input and the engine do when the pipeline is full (the one declaration:
    /// [`InputContext`] and the emitter both obey it).
    pub backpressure: Backpressure,
    /// An `|N` / `|N%` limit the engine applies to its requests.
    pub limit: Option<Limit>,
}

/// One configured output instance, as a plugin's factory returns it.
pub struct OutputSpec {
    /// Label in logs and the ledger, e.g. `output-file[out.gor]`.
    pub label: String,
    /// The instance.
    pub plugin: Box<dyn Output>,
    /// An `|N` / `|N%` limit the engine applies to requests sent to it.
    pub limit: Option<Limit>,
    /// Capacity of its queue, in batches of up to [`BATCH_MAX`] messages (a batch holds as
    /// many messages as arrived together, so at low rates each holds one).
    pub queue_len: usize,
    /// True if it sends messages back (replayed responses).
    pub feedback: bool,
    /// True if several of its threads read the inbox at once: it then gets one message per
    /// batch, so that no thread holds messages another idle thread could take.
    pub shared_inbox: bool,
}

impl OutputSpec {
    /// An output with the default queue (1000 messages) and no limit or feedback.
    pub fn new(label: impl Into<String>, plugin: Box<dyn Output>) -> Self {
        OutputSpec {
            label: label.into(),
            plugin,
            limit: None,
            queue_len: 1000,
            feedback: false,
            shared_inbox: false,
        }
    }
}

/// `name[value]`, the label of one instance.
pub fn instance_label(name: &str, value: &str) -> String {
    if value.is_empty() {
        name.to_string()
    } else {
        format!("{name}[{value}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;
    use crate::ledger::Role;
    use crate::meta::{Kind, Meta};

    fn message(i: usize) -> Message {
        Message::new(
            Meta::new(Kind::Request, &format!("id{i}"), 1, 0).unwrap(),
            "x",
        )
    }

    fn context(backpressure: Backpressure) -> (InputContext, Receiver<Batch>, Arc<Counters>) {
        let counters = Ledger::new().register("input-test", Role::Input);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (_trigger, shutdown) = Shutdown::new();
        let settings = CoreSettings::default();
        let cx = InputContext::new(tx, counters.clone(), shutdown, None, settings)
            .with_backpressure(backpressure);
        (cx, rx, counters)
    }

    #[test]
    fn a_drop_declaration_drops_and_counts_when_full() {
        let (mut cx, rx, counters) = context(Backpressure::Drop);
        for i in 0..3 {
            cx.emit(message(i)).unwrap();
            cx.push_or_drop(message(i));
            cx.flush().unwrap();
        }
        let now = counters.snapshot();
        assert_eq!((now.received, now.passed), (6, 1));
        assert_eq!(now.drops, vec![(Reason::QueueFull, 5)]);
        drop(rx);
    }

    #[test]
    fn a_wait_declaration_waits_and_what_a_closed_pipeline_refuses_is_counted() {
        let (mut cx, rx, counters) = context(Backpressure::Wait);
        let reader = std::thread::spawn(move || rx.iter().take(3).map(|b| b.len()).sum::<usize>());
        for i in 0..3 {
            cx.emit(message(i)).unwrap();
        }
        assert_eq!(reader.join().unwrap(), 3);
        assert_eq!(cx.emit(message(9)), Err(Stopped));
        let now = counters.snapshot();
        assert_eq!((now.received, now.passed), (4, 3));
        assert_eq!(now.drops, vec![(Reason::Shutdown, 1)]);
    }

    #[test]
    fn forward_until_counts_what_it_leaves_behind() {
        let (mut cx, rx, counters) = context(Backpressure::Wait);
        drop(rx);
        let (tx, from_threads) = crossbeam_channel::unbounded();
        for i in 0..4 {
            tx.send(message(i)).unwrap();
        }
        cx.forward_until(&from_threads, Instant::now() + Duration::from_millis(50));
        let now = counters.snapshot();
        assert_eq!(now.received, 4);
        assert_eq!(now.dropped(), 4);
    }

    fn inbox_of(batches: &[usize]) -> (Inbox, Sender<Batch>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut next = 0;
        for &size in batches {
            tx.send((next..next + size).map(message).collect()).unwrap();
            next += size;
        }
        (Inbox::new(rx), tx)
    }

    fn ids(messages: impl IntoIterator<Item = Message>) -> Vec<String> {
        messages.into_iter().map(|m| m.id().to_string()).collect()
    }

    #[test]
    fn an_inbox_hands_out_messages_in_order_across_batches() {
        let (inbox, tx) = inbox_of(&[1, 3, 0, 2]);
        drop(tx);
        assert_eq!(inbox.len(), 6 - 2, "in hand plus queued batches");
        assert_eq!(ids(inbox), ["id0", "id1", "id2", "id3", "id4", "id5"]);
    }

    #[test]
    fn recv_timeout_times_out_while_open_then_reports_closed() {
        let (inbox, tx) = inbox_of(&[1]);
        assert!(
            matches!(inbox.recv_timeout(Duration::from_millis(5)), Next::Message(m) if m.id() == "id0")
        );
        assert!(matches!(
            inbox.recv_timeout(Duration::from_millis(5)),
            Next::Timeout
        ));
        assert!(inbox.try_recv().is_none());
        drop(tx);
        assert!(matches!(
            inbox.recv_timeout(Duration::from_millis(5)),
            Next::Closed
        ));
        assert!(inbox.recv().is_none());
    }

    #[test]
    fn recv_batch_returns_what_is_in_hand_first() {
        let (inbox, tx) = inbox_of(&[3, 2]);
        tx.send(Vec::new()).unwrap();
        drop(tx);
        assert_eq!(ids(inbox.try_recv()), ["id0"]);
        assert_eq!(ids(inbox.recv_batch().unwrap()), ["id1", "id2"]);
        assert_eq!(ids(inbox.recv_batch().unwrap()), ["id3", "id4"]);
        assert!(inbox.recv_batch().is_none(), "an empty batch is skipped");
        assert!(inbox.is_empty());
    }

    #[test]
    fn threads_sharing_an_inbox_lose_and_repeat_nothing() {
        let (inbox, tx) = inbox_of(&[7; 50]);
        drop(tx);
        let taken: Vec<String> = std::thread::scope(|scope| {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        while let Some(msg) = inbox.recv() {
                            mine.push(msg.id().to_string());
                        }
                        mine
                    })
                })
                .collect();
            readers
                .into_iter()
                .flat_map(|r| r.join().unwrap())
                .collect()
        });
        let mut sorted = taken.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!((taken.len(), sorted.len()), (350, 350));
    }

    #[test]
    fn a_dropped_inbox_counts_what_it_held_unread() {
        let unread = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (inbox, tx) = inbox_of(&[3, 4]);
        let inbox = inbox.counting_unread(unread.clone());
        assert!(inbox.recv().is_some());
        drop(inbox);
        // Two in hand; the queued batch is the engine's to count (it drains the queue).
        assert_eq!(unread.load(Ordering::Relaxed), 2);
        drop(tx);
    }
}
