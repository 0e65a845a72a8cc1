//! A worker of a target that may speak HTTP/2 (`h2c://`, `https://` with `auto`, any target
//! with `--output-http-protocol h2`): one thread with a current-thread tokio runtime, its
//! share of the `--output-http-workers` HTTP/2 connections ([`ConnSlot`]s; several only
//! when every message goes over HTTP/2, see `share_threads`) and up to
//! `--output-http-h2-streams` streams in flight on each; a new stream goes to the connection
//! with the fewest.
//!
//! It takes messages from the shared inbox itself, as long as it has a free stream: with
//! streams in flight it looks at the inbox without blocking (again after
//! [`INBOX_POLL`] when it was empty), with none it blocks on it like an HTTP/1.1 worker
//! (and retires the same way). A worker with no free stream counts as busy, so the pool grows
//! and the bounded inbox pushes back as for HTTP/1.1. A message that goes over HTTP/1.1
//! (the https target did not pick `h2`, or it is an HTTP/1 message to an https target with
//! `auto`) is exchanged right there, blocking: that worker's streams wait meanwhile.
//!
//! Each stream has its own `--output-http-timeout`; its outcome is counted and fed back
//! exactly as an HTTP/1.1 exchange's ([`crate::record`]).

use crate::conn::{ExchangeError, Failure, SendError, Session};
use crate::form;
use crate::h2_conn::{exchange, ConnSlot};
use crate::h2_request::{to_h2, H2Edits, H2Request};
use crate::h2_response::render;
use crate::protocol::Wire;
use crate::request::RequestError;
use crate::response::Response;
use crate::{
    copy, count_foreign_redirects, is_request, pace, record, take, Shared, StatusCounters, Taken,
    WORKER_IDLE,
};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use shadowtap_api::{now_ns, Inbox, Message, Reason};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How soon a worker with streams in flight looks at an empty inbox again.
const INBOX_POLL: Duration = Duration::from_millis(1);

/// Runs one worker until it retires or the inbox closes.
pub fn run(shared: &Shared, inbox: &Inbox) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for an output-http worker");
    let claim = Claim::new(shared);
    let slots: Vec<ConnSlot> = (0..claim.count).map(|_| ConnSlot::default()).collect();
    let mut worker = H2Worker {
        shared,
        inbox,
        slots: &slots,
        loads: vec![0; slots.len()],
        session: Session::new(shared.client.clone()),
        running: FuturesUnordered::new(),
        status_counters: StatusCounters::default(),
        idle: true,
        stopped: false,
        panic_label: std::env::var_os("SHADOWTAP_TEST_PANIC")
            .map(|_| format!("{}-worker", shared.label)),
    };
    runtime.block_on(worker.run());
    count_foreign_redirects(shared, &worker.session);
}

type Stream<'a> = Pin<Box<dyn Future<Output = Done<'a>> + 'a>>;

/// The connections a worker runs, taken from the output's `--output-http-workers` and given
/// back when it stops (or dies).
struct Claim<'a> {
    shared: &'a Shared<'a>,
    count: usize,
}

impl<'a> Claim<'a> {
    fn new(shared: &'a Shared<'a>) -> Self {
        let h2 = &shared.client.h2;
        let mut count = 0;
        let _ = shared
            .h2_connections
            .fetch_update(Relaxed, Relaxed, |claimed| {
                count = h2
                    .connections_per_worker
                    .min(h2.connections.saturating_sub(claimed))
                    .max(1);
                Some(claimed + count)
            });
        Claim { shared, count }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.shared.h2_connections.fetch_sub(self.count, Relaxed);
    }
}

struct H2Worker<'a> {
    shared: &'a Shared<'a>,
    inbox: &'a Inbox,
    /// Its connections, and how many streams each carries now.
    slots: &'a [ConnSlot],
    loads: Vec<usize>,
    session: Session,
    running: FuturesUnordered<Stream<'a>>,
    status_counters: StatusCounters,
    /// Counted in `shared.idle` (the worker has a free stream).
    idle: bool,
    /// The worker stopped normally (it is no longer counted as idle or active).
    stopped: bool,
    /// The thread's label, when the test-only panic point is armed (looked up once: the
    /// environment is not read per message).
    panic_label: Option<String>,
}

impl Drop for H2Worker<'_> {
    /// After a panic, a busy worker counts as idle again before its slot is given back (as
    /// an HTTP/1.1 worker's `InHand` does); its streams count themselves ([`Pending`]).
    fn drop(&mut self) {
        if !self.stopped {
            self.set_idle(true);
        }
    }
}

impl<'a> H2Worker<'a> {
    async fn run(&mut self) {
        let streams = self.shared.client.h2.streams * self.slots.len();
        loop {
            while let Some(Some(done)) = self.running.next().now_or_never() {
                self.finish(done);
            }
            if self.running.len() >= streams {
                self.set_idle(false);
                if let Some(done) = self.running.next().await {
                    self.finish(done);
                }
                continue;
            }
            self.set_idle(true);
            if self.running.is_empty() {
                match take(self.shared, self.inbox, WORKER_IDLE) {
                    Taken::Message(msg) => self.start(msg).await,
                    Taken::Nothing => {}
                    Taken::Stop => break,
                }
            } else if let Some(msg) = self.inbox.try_recv() {
                self.start(msg).await;
            } else {
                let done = tokio::select! {
                    done = self.running.next() => done,
                    _ = tokio::time::sleep(INBOX_POLL) => None,
                };
                if let Some(done) = done {
                    self.finish(done);
                }
            }
        }
        self.stopped = true;
    }

    fn set_idle(&mut self, idle: bool) {
        if idle != self.idle {
            if idle {
                self.shared.idle.fetch_add(1, Relaxed);
            } else {
                self.shared.idle.fetch_sub(1, Relaxed);
            }
            self.idle = idle;
        }
    }

    /// Starts `msg` (and its copies).
    async fn start(&mut self, msg: Message) {
        if !is_request(self.shared, &msg) {
            return;
        }
        for n in 0..self.shared.copies {
            let Some(job) = copy(self.shared, &msg, n) else {
                continue;
            };
            if let Some(wait) = pace(self.shared) {
                self.pause(wait).await;
            }
            self.dispatch(Pending::new(self.shared, job));
        }
    }

    /// Waits `wait` while finishing streams.
    async fn pause(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let done = tokio::select! {
                Some(done) = self.running.next(), if !self.running.is_empty() => Some(done),
                _ = tokio::time::sleep_until(until) => None,
            };
            match done {
                Some(done) => self.finish(done),
                None => return,
            }
        }
    }

    fn dispatch(&mut self, pending: Pending<'a>) {
        let shared = self.shared;
        if let Some(label) = &self.panic_label {
            shadowtap_api::test_panic_point(label);
        }
        let msg = pending.message();
        let result = match shared.client.wire_for(&msg.payload) {
            Ok(Wire::Http2) => match h2_request(shared, msg) {
                Ok(request) => {
                    let index = self.least_loaded();
                    self.loads[index] += 1;
                    let stream = stream(shared, &self.slots[index], index, pending, request);
                    return self.running.push(Box::pin(stream));
                }
                Err(e) => Err(e),
            },
            Ok(Wire::Http1) => {
                // The blocking exchange keeps this worker busy: the pool may grow meanwhile.
                self.set_idle(false);
                let started = Instant::now();
                let start_ns = now_ns();
                let result = self.session.send(&msg.payload, shared.settings.keep);
                return self.finish(Done {
                    pending,
                    slot: None,
                    start_ns,
                    rtt: started.elapsed(),
                    result,
                });
            }
            Err(e) => Err(SendError::Exchange(e)),
        };
        self.finish(Done {
            pending,
            slot: None,
            start_ns: now_ns(),
            rtt: Duration::ZERO,
            result,
        });
    }

    /// The connection with the fewest streams.
    fn least_loaded(&self) -> usize {
        (0..self.loads.len())
            .min_by_key(|&i| self.loads[i])
            .unwrap_or(0)
    }

    fn finish(&mut self, done: Done<'a>) {
        let Done {
            pending,
            slot,
            start_ns,
            rtt,
            result,
        } = done;
        if let Some(index) = slot {
            self.loads[index] -= 1;
        }
        let msg = pending.done();
        record(
            self.shared,
            &msg,
            start_ns,
            rtt,
            result,
            &mut self.status_counters,
        );
    }
}

/// A message taken from the inbox and not yet counted: counted as `plugin panicked` if it is
/// dropped before (a panic unwinding the worker).
struct Pending<'a> {
    shared: &'a Shared<'a>,
    msg: Option<Message>,
}

impl<'a> Pending<'a> {
    fn new(shared: &'a Shared<'a>, msg: Message) -> Self {
        Pending {
            shared,
            msg: Some(msg),
        }
    }

    fn message(&self) -> &Message {
        self.msg.as_ref().expect("a pending message")
    }

    /// The message, about to be counted.
    fn done(mut self) -> Message {
        self.msg.take().expect("a pending message")
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.msg.is_some() {
            self.shared.cx.counters().add_drop(Reason::Panicked, 1);
        }
    }
}

/// A finished exchange.
struct Done<'a> {
    pending: Pending<'a>,
    /// The connection it went over (HTTP/2 streams).
    slot: Option<usize>,
    start_ns: i64,
    rtt: Duration,
    result: Result<Response, SendError>,
}

/// The HTTP/2 request of `msg`.
fn h2_request(shared: &Shared, msg: &Message) -> Result<H2Request, SendError> {
    let client = &shared.client;
    let edits = H2Edits {
        scheme: client.target.scheme.h2_scheme(),
        authority: &client.target.authority,
        original_host: client.original_host,
        base_path: &client.target.base_path,
    };
    let malformed = |e| SendError::Request(RequestError::Form(e));
    let parts = form::parse(&msg.payload).map_err(malformed)?;
    if parts.method.eq_ignore_ascii_case(b"CONNECT") {
        return Err(SendError::Request(RequestError::Connect));
    }
    to_h2(&parts, &edits).map_err(malformed)
}

/// One stream: the exchange within `--output-http-timeout`, the response in the capture's
/// form when it is fed back.
async fn stream<'a>(
    shared: &'a Shared<'a>,
    slot: &'a ConnSlot,
    index: usize,
    pending: Pending<'a>,
    request: H2Request,
) -> Done<'a> {
    let started = Instant::now();
    let start_ns = now_ns();
    let client = &shared.client;
    let keep = shared.settings.keep;
    let exchanged =
        tokio::time::timeout(client.timeout, exchange(client, slot, &request, keep)).await;
    let rtt = started.elapsed();
    let result = match exchanged {
        Ok(Ok(answer)) => Ok(Response {
            status: answer.status.as_u16(),
            raw: if shared.settings.track {
                render(answer.status, &answer.headers, &answer.received, keep)
            } else {
                Vec::new()
            },
            reusable: true,
            location: None,
        }),
        Ok(Err(error)) => Err(SendError::Exchange(error)),
        Err(_) => Err(SendError::Exchange(ExchangeError::new(
            Failure::Timeout,
            "timed out",
        ))),
    };
    Done {
        pending,
        slot: Some(index),
        start_ns,
        rtt,
        result,
    }
}
