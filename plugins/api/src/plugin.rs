//! The plugin traits and what the engine hands them: a context for inputs, an inbox and a
//! context for outputs, and the shutdown signal they all watch.

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

/// Decides per message whether an input may pass it on (the engine's `|N` limiter).
pub trait Gate: Send {
    /// True to pass `msg` on.
    fn admit(&mut self, msg: &Message) -> bool;
}

/// Returned when the pipeline no longer accepts messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct Stopped;

/// What an input uses to hand messages to the engine.
pub struct InputContext {
    sender: Sender<Message>,
    counters: Arc<Counters>,
    shutdown: Shutdown,
    gate: Option<Box<dyn Gate>>,
    settings: CoreSettings,
}

impl InputContext {
    /// Built by the engine (and the testkit).
    pub fn new(
        sender: Sender<Message>,
        counters: Arc<Counters>,
        shutdown: Shutdown,
        gate: Option<Box<dyn Gate>>,
        settings: CoreSettings,
    ) -> Self {
        InputContext {
            sender,
            counters,
            shutdown,
            gate,
            settings,
        }
    }

    /// Passes a message on, waiting while the pipeline is full (for replayable sources).
    pub fn emit(&mut self, msg: Message) -> Result<(), Stopped> {
        if !self.admit(&msg) {
            return Ok(());
        }
        self.sender.send(msg).map_err(|_| Stopped)?;
        self.counters.add_out(1);
        Ok(())
    }

    /// Passes several messages on, waiting while the pipeline is full; stops at the first
    /// that cannot be passed on.
    pub fn emit_all(&mut self, messages: impl IntoIterator<Item = Message>) -> Result<(), Stopped> {
        messages.into_iter().try_for_each(|msg| self.emit(msg))
    }

    /// Passes a message on without waiting (for live capture): when the pipeline is full the
    /// message is dropped and counted. Returns false if it was not passed on.
    pub fn offer(&mut self, msg: Message) -> bool {
        if !self.admit(&msg) {
            return false;
        }
        match self.sender.try_send(msg) {
            Ok(()) => {
                self.counters.add_out(1);
                true
            }
            Err(TrySendError::Full(_)) => {
                self.counters.add_drop(Reason::QueueFull, 1);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    fn admit(&mut self, msg: &Message) -> bool {
        self.counters.add_in(1);
        let admitted = self.gate.as_mut().is_none_or(|gate| gate.admit(msg));
        if !admitted {
            self.counters.add_drop(Reason::RateLimited, 1);
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

/// An output's queue of messages.
pub struct Inbox {
    receiver: Receiver<Message>,
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
    pub fn new(receiver: Receiver<Message>) -> Self {
        Inbox { receiver }
    }

    /// The next message, or `None` once the inbox is closed and empty.
    pub fn recv(&self) -> Option<Message> {
        self.receiver.recv().ok()
    }

    /// The next message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Next {
        match self.receiver.recv_timeout(timeout) {
            Ok(msg) => Next::Message(msg),
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// A message if one is ready now.
    pub fn try_recv(&self) -> Option<Message> {
        self.receiver.try_recv().ok()
    }

    /// Messages waiting in the queue.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
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
    /// Only outputs registered with feedback enabled have a channel; others get `Err`.
    pub fn feed_back(&self, msg: Message) -> Result<(), Stopped> {
        match &self.feedback {
            Some(tx) => tx.send(msg).map_err(|_| Stopped),
            None => Err(Stopped),
        }
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
    matches: Option<std::sync::Arc<clap::ArgMatches>>,
}

impl CoreSettings {
    /// Settings with the given copy-buffer size.
    pub fn new(copy_buffer_size: usize) -> Self {
        CoreSettings {
            copy_buffer_size,
            matches: None,
        }
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

/// One configured input instance, as a plugin's factory returns it.
pub struct InputSpec {
    /// Label in logs and the ledger, e.g. `input-file[requests.gor]`.
    pub label: String,
    /// The instance.
    pub plugin: Box<dyn Input>,
    /// True for live sources (capture, listeners): they drop rather than wait when full.
    pub live: bool,
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
    /// Capacity of its queue.
    pub queue_len: usize,
    /// True if it sends messages back (replayed responses).
    pub feedback: bool,
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
