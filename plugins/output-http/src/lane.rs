//! A lane: one HTTP/2 connection carrying up to `--output-http-h2-streams` streams at once,
//! driven by a current-thread tokio runtime on a thread of its own. The worker that owns it
//! converts messages and hands them over through a channel of one slot, so a worker waits
//! (and the pool grows, and the bounded inbox pushes back) while its lane is full.
//!
//! Each stream has its own `--output-http-timeout`; its outcome is counted and fed back
//! exactly as an HTTP/1.1 exchange's is ([`crate::record`]).

use crate::conn::{ExchangeError, Failure, SendError};
use crate::h2_conn::{exchange, ConnSlot};
use crate::h2_request::H2Request;
use crate::h2_response::render;
use crate::response::Response;
use crate::{record, Shared, StatusCounters};
use futures_util::stream::{FuturesUnordered, StreamExt};
use shadowtap_api::{catch_panic, now_ns, Message, Reason};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;
use tokio::sync::mpsc;

/// A message and its HTTP/2 request.
pub struct Job {
    /// The captured request (its id and the kind 3 response's meta).
    pub msg: Message,
    /// What is sent.
    pub request: H2Request,
}

/// The worker's end of a lane.
pub struct Lane<'scope> {
    jobs: mpsc::Sender<Box<Job>>,
    /// Jobs handed over and not yet counted (counted as panicked if the lane dies).
    outstanding: Arc<AtomicUsize>,
    _thread: ScopedJoinHandle<'scope, ()>,
}

impl<'scope> Lane<'scope> {
    /// Starts a lane thread in `scope`.
    pub fn spawn<'env>(scope: &'scope Scope<'scope, 'env>, shared: &'env Shared<'env>) -> Self {
        let (jobs, receiver) = mpsc::channel(1);
        let outstanding = Arc::new(AtomicUsize::new(0));
        let held = outstanding.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{}-h2", shared.label))
            .spawn_scoped(scope, move || {
                let counters = shared.cx.counters();
                if catch_panic(counters, || run(shared, receiver, &held)).is_none() {
                    counters.add_drop(Reason::Panicked, held.swap(0, Relaxed) as u64);
                }
            })
            .expect("spawn output-http h2 lane");
        Lane {
            jobs,
            outstanding,
            _thread: thread,
        }
    }

    /// Hands `job` over, waiting while the lane is full; `Err` gives it back when the lane
    /// has died.
    pub fn submit(&self, job: Box<Job>) -> Result<(), Box<Job>> {
        self.outstanding.fetch_add(1, Relaxed);
        self.jobs.blocking_send(job).map_err(|e| {
            self.outstanding.fetch_sub(1, Relaxed);
            e.0
        })
    }
}

fn run(shared: &Shared, jobs: mpsc::Receiver<Box<Job>>, outstanding: &AtomicUsize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for output-http's HTTP/2 lane");
    runtime.block_on(drive(shared, jobs, outstanding));
}

/// A finished stream.
struct Done {
    msg: Message,
    start_ns: i64,
    started: Instant,
    result: Result<Response, SendError>,
}

async fn drive(shared: &Shared<'_>, mut jobs: mpsc::Receiver<Box<Job>>, outstanding: &AtomicUsize) {
    let slot = ConnSlot::default();
    let streams = shared.client.h2.streams;
    let mut running = FuturesUnordered::new();
    let mut status_counters = StatusCounters::default();
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            Some(done) = running.next(), if !running.is_empty() => {
                let Done { msg, start_ns, started, result } = done;
                record(shared, &msg, start_ns, started.elapsed(), result, &mut status_counters);
                outstanding.fetch_sub(1, Relaxed);
            }
            job = jobs.recv(), if open && running.len() < streams => match job {
                Some(job) => running.push(stream(shared, &slot, job)),
                None => open = false,
            },
            else => break,
        }
    }
}

async fn stream(shared: &Shared<'_>, slot: &ConnSlot, job: Box<Job>) -> Done {
    let started = Instant::now();
    let start_ns = now_ns();
    let client = &shared.client;
    let keep = shared.settings.keep;
    let exchanged =
        tokio::time::timeout(client.timeout, exchange(client, slot, &job.request, keep)).await;
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
        msg: job.msg,
        start_ns,
        started,
        result,
    }
}
