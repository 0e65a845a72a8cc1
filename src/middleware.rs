//! The middleware bridge: every message goes to a child process as one hex line on its
//! stdin; every valid hex line it prints comes back as a message. Its stderr is passed
//! through prefixed with `[middleware]`. If it exits, in-flight messages are counted as lost
//! and it is restarted with backoff (or the run fails, with `--middleware-restart=false`).
//!
//! Replayed responses (kind 3, fed back by outputs such as output-http with
//! `--output-http-track-response`) go through the middleware too, on a second input
//! ([`FeedbackRoute`]) that is served first. The engine hands them over without ever waiting
//! (a full route drops and counts), so the cycle outputs → middleware → dispatch → outputs
//! cannot deadlock as GoReplay's can. Shutdown: when the inputs have ended and every message
//! they produced has come back out of the child (or the child has been silent for
//! [`QUIET`], [`SILENT_START`] if it never printed), the route's `ingress_done` is signalled so that the engine can let the
//! feeding-back outputs finish; the child's stdin is closed once their responses are in.

use crossbeam_channel::{never, select, Receiver, Sender, TryRecvError};
use shadowtap_api::wire::{self, decode_hex_line, encode_hex_line};
use shadowtap_api::{catch_panic, Batch, Counters, Message, Reason, Shutdown, Throttle};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How the middleware is run.
#[derive(Clone, Debug)]
pub struct MiddlewareConfig {
    /// The command as given, for messages.
    pub command: String,
    /// The command split into program and arguments.
    pub argv: Vec<String>,
    /// Restart after an exit (otherwise the run fails).
    pub restart: bool,
    /// Largest payload passed on (`--copy-buffer-size`).
    pub copy_buffer_size: usize,
    /// De-chunk and gunzip messages (and decode gRPC ones with a descriptor set) before they
    /// reach the child (`--prettify-http`).
    pub prettify: Option<crate::prettify::Prettifier>,
}

/// The second input of the middleware: replayed responses from outputs.
pub struct FeedbackRoute {
    /// Replayed responses to pass through the child.
    pub messages: Receiver<Message>,
    /// Dropped (disconnected) once the inputs have ended and what they sent has come back.
    pub ingress_done: Sender<()>,
}

/// After the inputs end, how long a child may stay silent before the messages it still
/// holds are taken as dropped (so that the run can end).
pub const QUIET: Duration = Duration::from_secs(1);
/// [`QUIET`] for a child that has not printed anything yet.
pub const SILENT_START: Duration = Duration::from_secs(10);

impl MiddlewareConfig {
    /// Splits `command` with shell quoting rules (no shell is run).
    pub fn parse(command: &str, restart: bool, copy_buffer_size: usize) -> Result<Self, String> {
        let argv =
            shell_words::split(command).map_err(|e| format!("cannot split {command:?}: {e}"))?;
        if argv.is_empty() {
            return Err("the command is empty".into());
        }
        Ok(MiddlewareConfig {
            command: command.to_string(),
            argv,
            restart,
            copy_buffer_size,
            prettify: None,
        })
    }

    fn spawn(&self) -> io::Result<Child> {
        Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    /// Longest line accepted back: a full payload and header in hex, with room to spare,
    /// and never more than [`wire::MAX_HEX_LINE`].
    fn max_line(&self) -> usize {
        self.copy_buffer_size
            .saturating_add(64 << 10)
            .saturating_mul(2)
            .saturating_add(2)
            .min(wire::MAX_HEX_LINE)
    }
}

/// Messages written to the child and not yet seen again: from the inputs and fed back.
struct Tracking {
    ingress: InFlight,
    feedback: InFlight,
    last_output: Instant,
    /// The child has printed a message (it is up and answering).
    printed: bool,
    /// True while the reader waits to hand a message on to dispatch.
    handing_on: bool,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            ingress: InFlight::default(),
            feedback: InFlight::default(),
            last_output: Instant::now(),
            printed: false,
            handing_on: false,
        }
    }
}

impl Tracking {
    fn remove(&mut self, key: &(u8, Box<str>)) -> bool {
        self.last_output = Instant::now();
        self.printed = true;
        self.ingress.remove(key) || self.feedback.remove(key)
    }

    fn take_all(&mut self) -> u64 {
        self.ingress.take_all() + self.feedback.take_all()
    }
}

/// Messages written to the child and not yet seen again, keyed by kind and id.
#[derive(Default)]
struct InFlight {
    pending: HashMap<(u8, Box<str>), u32>,
    total: u64,
}

/// Beyond this many unanswered messages, they are all counted as dropped by the middleware.
const MAX_IN_FLIGHT: u64 = 1_000_000;

impl InFlight {
    fn add(&mut self, msg: &Message, counters: &Counters) {
        if self.total >= MAX_IN_FLIGHT {
            counters.add_drop(Reason::MiddlewareDropped, self.take_all());
        }
        *self.pending.entry(key(msg)).or_default() += 1;
        self.total += 1;
    }

    /// True if `msg` answers a message we sent.
    fn remove(&mut self, key: &(u8, Box<str>)) -> bool {
        let Some(count) = self.pending.get_mut(key) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.pending.remove(key);
        }
        self.total -= 1;
        true
    }

    fn take_all(&mut self) -> u64 {
        self.pending.clear();
        std::mem::take(&mut self.total)
    }
}

fn key(msg: &Message) -> (u8, Box<str>) {
    (msg.kind().as_byte(), msg.id().into())
}

/// The running bridge.
pub struct Middleware {
    supervisor: JoinHandle<Result<(), String>>,
}

impl Middleware {
    /// Starts the child (failing now if it cannot start) and the threads around it:
    /// messages are read from `ingress` and what the child prints is sent to `egress`.
    /// With a `feedback` route, replayed responses pass through the child too.
    pub fn start(
        config: MiddlewareConfig,
        ingress: Receiver<Batch>,
        feedback: Option<FeedbackRoute>,
        egress: Sender<Batch>,
        counters: Arc<Counters>,
        shutdown: Shutdown,
    ) -> io::Result<Middleware> {
        let first = config.spawn()?;
        let label = counters.label().to_string();
        let supervisor = thread::Builder::new().name(label).spawn(move || {
            let panic_counters = counters.clone();
            let (feedback, ingress_done) = match feedback {
                Some(route) => (Some(route.messages), Some(route.ingress_done)),
                None => (None, None),
            };
            let supervisor = Supervisor {
                config,
                ingress,
                ingress_held: RefCell::new(Vec::new().into_iter()),
                feedback,
                egress,
                counters,
                shutdown,
                ingress_open: Cell::new(true),
                feedback_open: Cell::new(true),
                ingress_closed_at: Cell::new(None),
                ingress_done: Cell::new(ingress_done),
            };
            catch_panic(&panic_counters, move || supervisor.run(first))
                .unwrap_or_else(|| Err("the middleware bridge panicked".into()))
        })?;
        Ok(Middleware { supervisor })
    }

    /// Waits until input has ended and the child has finished.
    pub fn join(self) -> Result<(), String> {
        self.supervisor
            .join()
            .unwrap_or_else(|_| Err("the middleware supervisor panicked".into()))
    }
}

/// How feeding one child ended.
enum Feed {
    /// Input ended: stdin was closed.
    InputEnded,
    /// The child stopped reading or printing.
    ChildGone,
}

struct Supervisor {
    config: MiddlewareConfig,
    ingress: Receiver<Batch>,
    /// The rest of the batch last taken from `ingress`.
    ingress_held: RefCell<std::vec::IntoIter<Message>>,
    feedback: Option<Receiver<Message>>,
    egress: Sender<Batch>,
    counters: Arc<Counters>,
    shutdown: Shutdown,
    ingress_open: Cell<bool>,
    feedback_open: Cell<bool>,
    ingress_closed_at: Cell<Option<Instant>>,
    ingress_done: Cell<Option<Sender<()>>>,
}

/// Where the next message for the child came from.
enum Pick {
    /// Boxed: a message is far larger than the other variants.
    Message(Box<Message>, Origin),
    End,
    Gone,
}

#[derive(Clone, Copy)]
enum Origin {
    Ingress,
    Feedback,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const HEALTHY_RUN: Duration = Duration::from_secs(10);
const EXIT_GRACE: Duration = Duration::from_secs(10);

impl Supervisor {
    fn run(self, first: Child) -> Result<(), String> {
        let mut backoff = FIRST_BACKOFF;
        let mut child = first;
        loop {
            let started = Instant::now();
            match self.serve(&mut child) {
                Feed::InputEnded => return Ok(()),
                Feed::ChildGone if !self.config.restart => {
                    self.drain_after_failure();
                    return Err(format!(
                        "middleware {:?} exited and --middleware-restart=false",
                        self.config.command
                    ));
                }
                Feed::ChildGone => {}
            }
            if started.elapsed() > HEALTHY_RUN {
                backoff = FIRST_BACKOFF;
            }
            child = self.respawn(&mut backoff)?;
        }
    }

    fn respawn(&self, backoff: &mut Duration) -> Result<Child, String> {
        loop {
            tracing::warn!(
                "[middleware] restarting {:?} in {:?}",
                self.config.command,
                backoff
            );
            thread::sleep(*backoff);
            *backoff = (*backoff * 2).min(MAX_BACKOFF);
            match self.config.spawn() {
                Ok(child) => return Ok(child),
                Err(e) => {
                    tracing::error!("[middleware] cannot start {:?}: {e}", self.config.command)
                }
            }
        }
    }

    /// Runs one child until input ends or the child goes away.
    fn serve(&self, child: &mut Child) -> Feed {
        let in_flight = Arc::new(Mutex::new(Tracking::default()));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (gone_tx, gone_rx) = crossbeam_channel::bounded::<()>(0);
        let reader = self.spawn_reader(stdout, in_flight.clone(), gone_tx);
        let counters = self.counters.clone();
        let stderr_pass = thread::Builder::new()
            .name(format!("{}-stderr", self.counters.label()))
            .spawn(move || {
                catch_panic(&counters, || pass_stderr(stderr));
            })
            .expect("spawn middleware stderr thread");
        let feed = self.feed(stdin, &gone_rx, &in_flight);
        let ending = match feed {
            Feed::InputEnded => wait_with_grace(child),
            Feed::ChildGone => {
                let _ = child.kill();
                Ending::Failed(describe(child.wait()))
            }
        };
        let _ = reader.join();
        let _ = stderr_pass.join();
        let unanswered = in_flight.lock().expect("in-flight lock").take_all();
        match (&feed, ending) {
            (Feed::InputEnded, Ending::Clean(status)) => {
                self.counters
                    .add_drop(Reason::MiddlewareDropped, unanswered);
                tracing::debug!("[middleware] finished: {status}");
            }
            // A child that holds nothing when it is killed lost nothing (e.g. node kept alive
            // by a library's timer): not an error.
            (Feed::InputEnded, Ending::KilledAtGrace(_)) if unanswered == 0 => {
                tracing::warn!(
                    "[middleware] {:?} still running {EXIT_GRACE:?} after its input ended, \
                     with no message in flight; killed it",
                    self.config.command
                );
            }
            (_, Ending::Clean(status) | Ending::KilledAtGrace(status) | Ending::Failed(status)) => {
                self.counters.add_drop(Reason::MiddlewareLost, unanswered);
                self.counters.add_error();
                tracing::error!(
                    "[middleware] {:?} exited ({status}); {unanswered} in-flight message(s) lost",
                    self.config.command
                );
            }
        }
        feed
    }

    /// Writes messages to the child's stdin until input ends or the child goes away.
    fn feed(&self, stdin: ChildStdin, gone: &Receiver<()>, in_flight: &Mutex<Tracking>) -> Feed {
        let mut writer = BufWriter::with_capacity(256 << 10, stdin);
        let mut line = Vec::new();
        loop {
            let (msg, origin) = match self.pick(&mut writer, gone, in_flight) {
                Pick::Message(msg, origin) => (*msg, origin),
                Pick::End => return finish_feed(writer),
                Pick::Gone => return Feed::ChildGone,
            };
            let msg = self.prepared(msg);
            line.clear();
            encode_hex_line(&msg, &mut line);
            {
                let mut tracking = in_flight.lock().expect("in-flight lock");
                match origin {
                    Origin::Ingress => tracking.ingress.add(&msg, &self.counters),
                    Origin::Feedback => tracking.feedback.add(&msg, &self.counters),
                }
            }
            self.counters.add_in(1);
            if writer.write_all(&line).is_err() {
                return Feed::ChildGone;
            }
        }
    }

    /// The next message for the child: replayed responses first, then input.
    fn pick(
        &self,
        writer: &mut BufWriter<ChildStdin>,
        gone: &Receiver<()>,
        in_flight: &Mutex<Tracking>,
    ) -> Pick {
        let closed = never();
        loop {
            if let Some(feedback) = self.feedback.as_ref().filter(|_| self.feedback_open.get()) {
                match feedback.try_recv() {
                    Ok(msg) => return Pick::Message(Box::new(msg), Origin::Feedback),
                    Err(TryRecvError::Disconnected) => self.feedback_open.set(false),
                    Err(TryRecvError::Empty) => {}
                }
            }
            if self.ingress_open.get() {
                if let Some(msg) = self.ingress_held.borrow_mut().next() {
                    return Pick::Message(Box::new(msg), Origin::Ingress);
                }
                match self.ingress.try_recv() {
                    Ok(batch) => {
                        *self.ingress_held.borrow_mut() = batch.into_iter();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => self.close_ingress(),
                    Err(TryRecvError::Empty) => {}
                }
            }
            let feedback_open = self.feedback.is_some() && self.feedback_open.get();
            if !self.ingress_open.get() && !feedback_open {
                return Pick::End;
            }
            self.check_ingress_done(in_flight);
            if writer.flush().is_err() {
                return Pick::Gone;
            }
            let ingress = if self.ingress_open.get() {
                &self.ingress
            } else {
                &closed
            };
            let no_feedback = never();
            let feedback = match &self.feedback {
                Some(rx) if feedback_open => rx,
                _ => &no_feedback,
            };
            select! {
                recv(ingress) -> batch => match batch {
                    Ok(batch) => *self.ingress_held.borrow_mut() = batch.into_iter(),
                    Err(_) => self.close_ingress(),
                },
                recv(feedback) -> msg => match msg {
                    Ok(msg) => return Pick::Message(Box::new(msg), Origin::Feedback),
                    Err(_) => self.feedback_open.set(false),
                },
                recv(gone) -> _ => return Pick::Gone,
                default(Duration::from_millis(50)) => {}
            }
        }
    }

    fn close_ingress(&self) {
        self.ingress_open.set(false);
        if self.ingress_closed_at.get().is_none() {
            self.ingress_closed_at.set(Some(Instant::now()));
        }
    }

    /// After input ended: tells the engine once what the inputs sent has come back.
    fn check_ingress_done(&self, in_flight: &Mutex<Tracking>) {
        let Some(closed_at) = self.ingress_closed_at.get() else {
            return;
        };
        let Some(done) = self.ingress_done.take() else {
            return;
        };
        let tracking = in_flight.lock().expect("in-flight lock");
        let quiet_since = tracking.last_output.max(closed_at);
        // A child that has printed nothing yet may still be starting (an interpreter on a
        // loaded machine): it gets longer before its silence means it dropped everything.
        let quiet = if tracking.printed {
            QUIET
        } else {
            SILENT_START
        };
        let all_back = tracking.ingress.total == 0 || quiet_since.elapsed() >= quiet;
        // Dispatch must also have taken everything the child printed.
        if !(all_back && !tracking.handing_on && self.egress.is_empty()) {
            self.ingress_done.set(Some(done));
        }
    }

    fn prepared(&self, mut msg: Message) -> Message {
        if let Some(prettifier) = &self.config.prettify {
            prettifier.apply(&mut msg, self.config.copy_buffer_size, &self.counters);
        }
        if msg.truncate_payload(self.config.copy_buffer_size) {
            self.counters.add_truncated(1);
        }
        msg
    }

    fn spawn_reader(
        &self,
        stdout: impl Read + Send + 'static,
        in_flight: Arc<Mutex<Tracking>>,
        gone: Sender<()>,
    ) -> JoinHandle<()> {
        let reader = LineReader {
            egress: self.egress.clone(),
            counters: self.counters.clone(),
            in_flight,
            max_line: self.config.max_line(),
            copy_buffer_size: self.config.copy_buffer_size,
            warnings: Throttle::default(),
        };
        let name = format!("{}-reader", self.counters.label());
        thread::Builder::new()
            .name(name)
            .spawn(move || {
                let counters = reader.counters.clone();
                catch_panic(&counters, || reader.run(stdout));
                drop(gone);
            })
            .expect("spawn middleware reader")
    }

    /// With restarts off, nothing consumes input any more: count what is left as lost.
    /// (Replayed responses still coming are dropped by the engine when the route closes.)
    fn drain_after_failure(&self) {
        self.ingress_done.take();
        let held = self.ingress_held.borrow_mut().len() as u64;
        self.count_lost(held);
        while let Ok(batch) = self.ingress.recv_timeout(Duration::from_millis(100)) {
            self.count_lost(batch.len() as u64);
        }
        if !self.shutdown.is_triggered() {
            for batch in self.ingress.iter() {
                self.count_lost(batch.len() as u64);
            }
        }
    }

    /// Messages that reach the bridge but never the child: in, and lost.
    fn count_lost(&self, count: u64) {
        self.counters.add_refused(Reason::MiddlewareLost, count);
    }
}

fn finish_feed(mut writer: BufWriter<ChildStdin>) -> Feed {
    let _ = writer.flush();
    drop(writer);
    Feed::InputEnded
}

/// How a child ended, with its exit status in words.
enum Ending {
    /// It exited with status 0.
    Clean(String),
    /// It was still running [`EXIT_GRACE`] after its stdin closed and was killed.
    KilledAtGrace(String),
    /// It exited with an error status or could not be waited for.
    Failed(String),
}

/// Waits for a child whose stdin was closed, killing it if it lingers past [`EXIT_GRACE`].
fn wait_with_grace(child: &mut Child) -> Ending {
    let deadline = Instant::now() + EXIT_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ending::Clean(status.to_string()),
            Ok(Some(status)) => return Ending::Failed(status.to_string()),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                return Ending::KilledAtGrace(describe(child.wait()));
            }
            Err(e) => return Ending::Failed(e.to_string()),
        }
    }
}

fn describe(status: io::Result<std::process::ExitStatus>) -> String {
    status
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e.to_string())
}

fn pass_stderr(stderr: impl Read) {
    let mut lines = BufReader::new(stderr);
    let mut line = Vec::new();
    while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        let text = String::from_utf8_lossy(&line);
        eprintln!("[middleware] {}", text.trim_end_matches(['\n', '\r']));
        line.clear();
    }
}

/// Reads the child's stdout, one hex line per message.
struct LineReader {
    egress: Sender<Batch>,
    counters: Arc<Counters>,
    in_flight: Arc<Mutex<Tracking>>,
    max_line: usize,
    copy_buffer_size: usize,
    warnings: Throttle,
}

impl LineReader {
    fn run(&self, stdout: impl Read) {
        let mut input = BufReader::with_capacity(1 << 20, stdout);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let outcome = read_capped_line(&mut input, &mut line, self.max_line);
            match outcome {
                Ok(LineRead::End) | Err(_) => return,
                Ok(LineRead::TooLong(len)) => {
                    number += 1;
                    self.oversized(&line, number, len);
                }
                Ok(LineRead::Line) => {
                    number += 1;
                    if !self.pass_on(&line, number) {
                        return;
                    }
                }
            }
        }
    }

    /// Decodes and forwards one line; false when the pipeline has stopped.
    fn pass_on(&self, line: &[u8], number: u64) -> bool {
        let mut msg = match decode_hex_line(line) {
            Ok(msg) => msg,
            Err(e) => {
                self.reject(number, &format!("{e}; skipped"));
                return true;
            }
        };
        if msg.truncate_payload(self.copy_buffer_size) {
            self.counters.add_truncated(1);
        }
        let key = key(&msg);
        {
            let mut tracking = self.in_flight.lock().expect("in-flight lock");
            tracking.last_output = Instant::now();
            tracking.printed = true;
            tracking.handing_on = true;
        }
        let sent = self.egress.send(vec![msg]).is_ok();
        // Still "in flight" until handed on, so that the end of input is not signalled while
        // a message is on its way to dispatch.
        let mut tracking = self.in_flight.lock().expect("in-flight lock");
        tracking.handing_on = false;
        if !tracking.remove(&key) {
            // A message of the middleware's own: it comes in here.
            self.counters.add_in(1);
            self.counters
                .extra("added by middleware")
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if sent {
            self.counters.add_out(1);
        } else {
            self.counters.add_drop(Reason::Shutdown, 1);
        }
        sent
    }

    /// Counts a line over the cap as an `oversized` drop: of the message it answers (its
    /// header is in the kept prefix), else of a line counted in here; logged with its number.
    fn oversized(&self, prefix: &[u8], number: u64, len: usize) {
        let header_hex = &prefix[..prefix.len().min(HEADER_HEX_PREFIX) & !1];
        let answered = decode_hex_line(header_hex).ok().is_some_and(|msg| {
            let mut tracking = self.in_flight.lock().expect("in-flight lock");
            tracking.remove(&key(&msg))
        });
        if !answered {
            self.counters.add_in(1);
        }
        self.counters.add_drop(Reason::Oversized, 1);
        if let Some(held_back) = self.warnings.allow() {
            tracing::warn!(
                "[middleware] output line {number}: longer than {} bytes ({len}); skipped, \
                 counted oversized ({held_back} similar warnings held back)",
                self.max_line
            );
        }
    }

    /// A line that is not a message: counted in and dropped as malformed (the message it may
    /// have answered stays in flight, and is counted when the middleware ends).
    fn reject(&self, number: u64, why: &str) {
        self.counters.add_refused(Reason::Malformed, 1);
        self.counters
            .extra("malformed lines")
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(held_back) = self.warnings.allow() {
            let more = if held_back > 0 {
                format!(" ({held_back} similar warnings held back)")
            } else {
                String::new()
            };
            tracing::warn!("[middleware] output line {number}: {why}{more}");
        }
    }
}

/// Hex digits of an oversized line decoded to find the message it answers (its header line).
const HEADER_HEX_PREFIX: usize = 16 << 10;

enum LineRead {
    Line,
    TooLong(usize),
    End,
}

/// Reads one `\n`-terminated line into `line`, keeping at most `max` bytes (the rest of an
/// overlong line is consumed and discarded, never buffered). A last line without `\n` counts
/// as a line.
fn read_capped_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    let mut total = 0usize;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(match total {
                0 => LineRead::End,
                n if n > max => LineRead::TooLong(n),
                _ => LineRead::Line,
            });
        }
        let (chunk, done) = match memchr_newline(available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&available[..chunk.min(room)]);
        total += chunk;
        input.consume(chunk);
        if done {
            return Ok(if total > max {
                LineRead::TooLong(total)
            } else {
                LineRead::Line
            });
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_with_quotes() {
        let config = MiddlewareConfig::parse("python3 -c 'print(\"a b\")'", true, 10).unwrap();
        assert_eq!(config.argv, ["python3", "-c", "print(\"a b\")"]);
        assert!(MiddlewareConfig::parse("echo 'open", true, 10).is_err());
        assert!(MiddlewareConfig::parse("  ", true, 10).is_err());
    }

    #[test]
    fn capped_lines() {
        let mut input = &b"short\nthis line is too long\nlast"[..];
        let mut line = Vec::new();
        assert!(matches!(
            read_capped_line(&mut input, &mut line, 10).unwrap(),
            LineRead::Line
        ));
        assert_eq!(line, b"short\n");
        line.clear();
        assert!(matches!(
            read_capped_line(&mut input, &mut line, 10).unwrap(),
            LineRead::TooLong(22)
        ));
        line.clear();
        assert!(matches!(
            read_capped_line(&mut input, &mut line, 10).unwrap(),
            LineRead::Line
        ));
        assert_eq!(line, b"last");
        line.clear();
        assert!(matches!(
            read_capped_line(&mut input, &mut line, 10).unwrap(),
            LineRead::End
        ));
    }
}
