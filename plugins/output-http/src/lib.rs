//! `output-http`: replays captured requests to an HTTP or HTTPS target, byte for byte over
//! HTTP/1.1, and over HTTP/2 (gRPC included) with many streams per connection.
//!
//! Unlike GoReplay, which re-serialises every request through Go's HTTP client (canonical
//! header case, added `User-Agent`/`Accept-Encoding`, transparent gzip), an HTTP/1 request is
//! sent **as captured** — method, target, header order and case, body bytes — over pooled
//! keep-alive connections. Only these change (see `request.rs`): the `Host` value (the
//! target's `host[:port]`, unless `--http-original-host`), the request-target gets the output
//! URL's base path as a prefix (`http://staging/api` + `/users?x=1` → `/api/users?x=1`;
//! GoReplay replaces the whole URL), `Connection: close`/`keep-alive` and `Proxy-Connection`
//! are removed so the pooled connection stays up, and `Expect: 100-continue` is removed (the
//! body follows the head at once; an interim `100 Continue` is skipped anyway). `CONNECT`
//! requests are not replayed (counted as malformed with `error: connect request`).
//!
//! Flags: `--output-http URL` (repeatable, each with its own workers and connections;
//! `http://`, `https://`, `h2c://` or scheme-less `host:port` = http; `URL|N` limits to N
//! requests/s and `URL|N%` samples N % — above 100 % every request is sent N/100 times,
//! rounded, the copies under the ids `<id>-1`, `<id>-2`…), `--output-http-workers N` (max,
//! default 16; the number of connections, one per worker thread except to HTTP/2-only
//! targets, below), `--output-http-workers-min N` (default 1; the pool grows
//! when all workers are busy and shrinks after 2 s idle), `--output-http-queue-len N`
//! (default 1000), `--output-http-timeout D` (whole exchange incl. connect and one retry,
//! default 5s; per stream over HTTP/2), `--output-http-redirects N` (follow up to N
//! same-origin redirects, default 0; HTTP/1.1 only), `--output-http-skip-verify`,
//! `--http-original-host`, `--output-http-track-response` (replayed responses re-enter the
//! pipeline as kind 3 messages with the request's id, start time and round-trip time, and a
//! fifth field `target=NAME` (and `copies=N` when amplified); a request whose replay failed
//! comes back as a kind 3 message with no payload and `target=NAME error=REASON`, e.g.
//! `error=timeout`),
//! `--output-http-name NAME` (one per `--output-http`, in order; default the URL),
//! `--output-http-stats` (a line on stderr every 5 s), `--output-http-rate N` (pace to N
//! requests/s without dropping; the queue absorbs bursts), `--output-http-protocol
//! h1|h2|auto` (default auto, below), `--output-http-h2-streams N` (concurrent streams per
//! HTTP/2 connection, default 100, and never more than the server's
//! SETTINGS_MAX_CONCURRENT_STREAMS), `--output-http-elasticsearch URL` (rejected: that is
//! `--output-es`).
//!
//! HTTP/2. A captured HTTP/2 message is in HTTP/1.1 form (`GET /p HTTP/2`, see the
//! `shadowtap-h2` crate). Which protocol carries a message (`protocol.rs`): with `auto`,
//! `h2c://host:port[/base]` is HTTP/2 with prior knowledge for every message; `https://`
//! sends HTTP/2-form messages over HTTP/2 when the server picks `h2` by ALPN (asked once, on
//! a first connection that offers `h2` and `http/1.1`) and over HTTP/1.1 otherwise, and
//! HTTP/1 messages over HTTP/1.1 as always; `http://` is HTTP/1.1 for everything, so an
//! HTTP/2-form message is converted to HTTP/1.1 there: its trailers are **lost** (so gRPC,
//! which needs trailers and HTTP/2, does not work over it) and `te: trailers` is sent as
//! captured. `h2` sends everything over HTTP/2 (prior knowledge on `http://`, ALPN offering
//! only `h2` on `https://`), converting HTTP/1 messages: connection-specific fields dropped,
//! `chunked` bodies decoded (their trailers sent as HTTP/2 trailers). `h1` sends everything
//! over HTTP/1.1 (an error with `h2c://`).
//!
//! What goes on the wire for HTTP/2 (`h2_request.rs`): `:method` and `:path` (with the base
//! path prefix) from the start line, `:scheme` of the target, `:authority` = the target's
//! `host[:port]` (or the captured `host` with `--http-original-host`), the regular fields
//! in captured order with lowercase names, without the connection-specific ones
//! (`Connection` and what it names, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`,
//! `Upgrade`, `HTTP2-Settings`, `Host`, `Expect: 100-continue`; `TE` only as `te: trailers`),
//! gRPC `-bin` metadata in true-binary form sent base64-encoded, no `content-length` on gRPC
//! calls (the form adds one, gRPC clients send none); the body (as many bytes as
//! `content-length` says) in DATA frames, then the trailers block after the body in a
//! HEADERS frame. gRPC calls therefore keep their length-prefixed messages, `grpc-timeout`
//! and trailers. A message that is not a valid HTTP/1.1 form is not sent and is counted as
//! malformed under `error: form <what>` (`start line`, `version`, `fields`, `content-length`,
//! `transfer-encoding`, `body shorter than content-length`, `chunked body`, `trailers`,
//! `field name`, `field value`, `target`). A target that may get HTTP/2 has workers that are
//! threads with a current-thread tokio runtime and the `h2` crate (`h2_worker.rs`), each
//! connection carrying up to `--output-http-h2-streams` streams; a worker takes messages
//! from the queue while it has a free stream, so the pool and the bounded queue push back as
//! for HTTP/1.1. When every message goes over HTTP/2 (`h2c://`, `--output-http-protocol
//! h2`) the `--output-http-workers` connections are spread over at most one worker thread
//! per core (the pool's bounds and the `--output-http-stats` count are then threads); with
//! `https://` and `auto` each worker has one connection, and an HTTP/1.1 exchange blocks
//! its worker's HTTP/2 streams meanwhile. A replayed HTTP/2 response (kind 3) is in
//! the capture's form: `HTTP/2 STATUS`, the fields lowercase in received order (repeated
//! names together), a `content-length` when there is a body and none was sent, the body, the
//! trailers block.
//!
//! Connections: over HTTP/1.1 one keep-alive connection per worker (so the pool is sized by
//! the worker count). A request that fails before any byte of its response arrived (a stale pooled
//! connection closed by the server) is retried once on a fresh connection — this may repeat a
//! non-idempotent request that the server received but never answered. Over HTTP/2 a stream
//! is retried only when it was certainly not processed: one that could not be opened (the
//! connection had closed or sent GOAWAY) moves to a new connection, one above a graceful
//! GOAWAY's last stream id is retried once on a new connection, one refused with
//! REFUSED_STREAM is retried once; so after a GOAWAY nothing is lost as long as a connection
//! takes as many streams as are in flight. A reset stream fails alone: the connection's other
//! streams go on. Failures are counted per reason as `error:
//! refused|timeout|reset|closed|tls|bad response|dns|connect`, and over HTTP/2 also `error: h2
//! refused stream|h2 reset|h2 goaway|h2 protocol`, plus an `output error` drop, and logged at
//! most once a second. Responses and kind 2/3 messages are not sent (counted as `ignored
//! responses`).
//!
//! Examples: `shadowtap --input-file 'requests.gor|200%' --output-http 'https://staging:8443/api'
//! --output-http-workers 32 --output-http-track-response --output-file replies.gor`;
//! `shadowtap --input-file grpc.gor --output-http h2c://127.0.0.1:50051 --output-http-workers 4
//! --output-http-h2-streams 50 --output-http-track-response --output-file replies.gor`.
#![deny(missing_docs)]

mod conn;
mod form;
mod h2_conn;
mod h2_request;
mod h2_response;
mod h2_worker;
mod protocol;
mod request;
mod response;
mod target;

#[doc(hidden)]
pub mod fuzzing;

use conn::{Client, H2Settings, SendError, Session};
use crossbeam_channel::{bounded, RecvTimeoutError};
use protocol::Protocol;
use response::Response;

use request::RequestError;
use shadowtap_api::values::{duration_value, split_limit};
use shadowtap_api::{
    catch_panic, instance_label, now_ns, register_output, CoreSettings, Inbox, Kind, Limit,
    Message, Meta, Next, Output, OutputContext, OutputSpec, PluginError, RatePacer, Reason,
    Throttle,
};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use target::{Scheme, Target};

/// Default maximum workers (GoReplay's default is unlimited).
const DEFAULT_WORKERS: i64 = 16;
/// Default concurrent streams per HTTP/2 connection.
const DEFAULT_H2_STREAMS: usize = 100;
/// Hard cap on `--output-http-h2-streams`.
const MAX_H2_STREAMS: usize = 1 << 16;
/// Hard cap on workers per output.
const MAX_WORKERS: i64 = 4096;
/// Idle time after which surplus workers (above the minimum) exit.
const WORKER_IDLE: Duration = Duration::from_secs(2);
/// How often the pool is checked for growth.
const SUPERVISE: Duration = Duration::from_millis(5);
/// Period of `--output-http-stats` lines.
const STATS_PERIOD: Duration = Duration::from_secs(5);
/// Latency samples kept per stats period.
const MAX_SAMPLES: usize = 1 << 20;

/// Flags of `output-http`.
#[derive(clap::Args, Debug)]
pub struct OutputHttpArgs {
    /// Replay requests to this URL (http://, https:// or host:port); URL|N or URL|N% limits, N% > 100 sends copies
    #[arg(id = "output-http", long = "output-http", value_name = "URL")]
    pub output_http: Vec<String>,
    /// Maximum workers (= keep-alive connections) per target; 0 = default
    #[arg(
        id = "output-http-workers",
        long = "output-http-workers",
        default_value_t = DEFAULT_WORKERS,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub output_http_workers: i64,
    /// Minimum (and initial) workers per target; more start when all are busy
    #[arg(
        id = "output-http-workers-min",
        long = "output-http-workers-min",
        default_value_t = 1,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub output_http_workers_min: i64,
    /// Requests queued per target before back-pressure (or drops for live inputs)
    #[arg(
        id = "output-http-queue-len",
        long = "output-http-queue-len",
        default_value_t = 1000,
        value_name = "N"
    )]
    pub output_http_queue_len: usize,
    /// Time limit of one request: connect, send, response (and one retry)
    #[arg(id = "output-http-timeout", long = "output-http-timeout", value_parser = duration_value, default_value = "5s", value_name = "DURATION")]
    pub output_http_timeout: Duration,
    /// Follow up to N redirects to the same target (0 = return the 3xx as is)
    #[arg(
        id = "output-http-redirects",
        long = "output-http-redirects",
        default_value_t = 0,
        value_name = "N"
    )]
    pub output_http_redirects: u32,
    /// Do not verify the TLS certificate of https targets
    #[arg(id = "output-http-skip-verify", long = "output-http-skip-verify")]
    pub output_http_skip_verify: bool,
    /// Keep the captured Host header instead of the target's host:port
    #[arg(id = "http-original-host", long = "http-original-host")]
    pub http_original_host: bool,
    /// Send replayed responses back into the pipeline as kind 3 messages
    #[arg(id = "output-http-track-response", long = "output-http-track-response")]
    pub output_http_track_response: bool,
    /// Name of the --output-http target in the same position, in its replayed responses (kind 3 field target=NAME; default the URL)
    #[arg(
        id = "output-http-name",
        long = "output-http-name",
        value_name = "NAME"
    )]
    pub output_http_name: Vec<String>,
    /// Print queue length, requests/s and latency percentiles to stderr every 5s
    #[arg(id = "output-http-stats", long = "output-http-stats")]
    pub output_http_stats: bool,
    /// Pace requests to N per second without dropping (0 = as fast as possible)
    #[arg(
        id = "output-http-rate",
        long = "output-http-rate",
        default_value_t = 0.0,
        value_name = "N"
    )]
    pub output_http_rate: f64,
    /// HTTP/1.1 or HTTP/2: auto = HTTP/2 messages over HTTP/2 where the target allows it (h2c://, https:// with ALPN h2)
    #[arg(
        id = "output-http-protocol",
        long = "output-http-protocol",
        value_enum,
        default_value = "auto",
        value_name = "h1|h2|auto"
    )]
    pub output_http_protocol: Protocol,
    /// Concurrent HTTP/2 streams per connection (capped by the server's SETTINGS_MAX_CONCURRENT_STREAMS)
    #[arg(
        id = "output-http-h2-streams",
        long = "output-http-h2-streams",
        default_value_t = DEFAULT_H2_STREAMS,
        value_name = "N"
    )]
    pub output_http_h2_streams: usize,
    /// GoReplay's Elasticsearch export; not part of output-http: use --output-es
    #[arg(
        id = "output-http-elasticsearch",
        long = "output-http-elasticsearch",
        value_name = "URL"
    )]
    pub output_http_elasticsearch: Option<String>,
}

/// Settings shared by every target of one command line.
#[derive(Clone, Debug)]
struct Settings {
    workers_min: usize,
    workers_max: usize,
    track: bool,
    keep: usize,
    stats: bool,
    rate: Option<f64>,
}

struct HttpOutput {
    client: Arc<Client>,
    settings: Settings,
    copies: u32,
    label: String,
    /// `--output-http-name`, written as `target=NAME` on its replayed responses.
    name: String,
}

fn build(args: OutputHttpArgs, core: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    if args.output_http_elasticsearch.is_some() {
        return Err(PluginError::usage(
            "--output-http-elasticsearch",
            "the Elasticsearch export is the output-es plugin: use --output-es URL",
        ));
    }
    if args.output_http.is_empty() {
        return Ok(Vec::new());
    }
    let workers_max = match args.output_http_workers {
        n if n <= 0 => DEFAULT_WORKERS,
        n if n > MAX_WORKERS => {
            return Err(PluginError::usage(
                "--output-http-workers",
                format!("at most {MAX_WORKERS} workers per target"),
            ))
        }
        n => n,
    } as usize;
    let workers_min = args.output_http_workers_min.max(1) as usize;
    if workers_min > workers_max {
        return Err(PluginError::usage(
            "--output-http-workers-min",
            format!("{workers_min} is more than --output-http-workers {workers_max}"),
        ));
    }
    if args.output_http_timeout.is_zero() {
        return Err(PluginError::usage(
            "--output-http-timeout",
            "must be more than 0",
        ));
    }
    if args.output_http_queue_len == 0 {
        return Err(PluginError::usage(
            "--output-http-queue-len",
            "must be at least 1",
        ));
    }
    let streams = args.output_http_h2_streams;
    if streams == 0 || streams > MAX_H2_STREAMS {
        return Err(PluginError::usage(
            "--output-http-h2-streams",
            format!("must be 1 to {MAX_H2_STREAMS}"),
        ));
    }
    let protocol = args.output_http_protocol;
    let rate = args.output_http_rate;
    if !rate.is_finite() || rate < 0.0 {
        return Err(PluginError::usage(
            "--output-http-rate",
            "must be a number of requests per second ≥ 0",
        ));
    }
    let settings = Settings {
        workers_min,
        workers_max,
        track: args.output_http_track_response,
        keep: if args.output_http_track_response {
            core.copy_buffer_size
        } else {
            0
        },
        stats: args.output_http_stats,
        rate: (rate > 0.0).then_some(rate),
    };
    let names = target_names(&args)?;
    let mut tls_config = None;
    let mut h2_tls_config = None;
    args.output_http
        .iter()
        .zip(names)
        .map(|(value, name)| {
            let (url, limit) =
                split_limit(value).map_err(|e| PluginError::usage("--output-http", e))?;
            let target = Target::parse(&url).map_err(|e| PluginError::usage("--output-http", e))?;
            protocol::check(protocol, target.scheme)
                .map_err(|e| PluginError::usage("--output-http-protocol", e))?;
            let tls = match target.scheme {
                Scheme::Http | Scheme::H2c => None,
                Scheme::Https => {
                    if tls_config.is_none() {
                        tls_config = Some(
                            shadowtap_tls::client_config(
                                args.output_http_skip_verify,
                                &[b"http/1.1"],
                                "--output-http-skip-verify",
                            )
                            .map_err(PluginError::Runtime)?,
                        );
                    }
                    let name = shadowtap_tls::server_name(&target.host)
                        .map_err(|e| PluginError::usage("--output-http", e))?;
                    Some((tls_config.clone().expect("just set"), name))
                }
            };
            let (limit, copies) = match limit {
                Some(Limit::Percent(p)) if p > 100.0 => (None, (p / 100.0).round() as u32),
                other => (other, 1),
            };
            let h2_tls = if tls.is_some() && protocol != Protocol::H1 {
                if h2_tls_config.is_none() {
                    h2_tls_config = Some(
                        shadowtap_tls::client_config(
                            args.output_http_skip_verify,
                            protocol::h2_alpn(protocol),
                            "--output-http-skip-verify",
                        )
                        .map_err(PluginError::Runtime)?,
                    );
                }
                h2_tls_config.clone()
            } else {
                None
            };
            let client = Client::new(
                target,
                tls,
                args.output_http_timeout,
                args.output_http_redirects,
                // `--http-set-header "Host: …"` implies it (the engine says so in `core`).
                args.http_original_host || core.original_host,
            )
            .with_h2(H2Settings {
                protocol,
                streams,
                tls: h2_tls,
                connections: 1,
                connections_per_worker: 1,
            });
            let label = instance_label("output-http", &url);
            let (client, output_settings) = share_threads(client, &settings);
            let output = HttpOutput {
                client: Arc::new(client),
                settings: output_settings,
                copies,
                label: label.clone(),
                name,
            };
            let mut spec = OutputSpec::new(label, Box::new(output));
            spec.limit = limit;
            spec.queue_len = args.output_http_queue_len;
            spec.feedback = settings.track;
            // Its workers take requests from the inbox side by side.
            spec.shared_inbox = true;
            Ok(spec)
        })
        .collect()
}

/// The name of each `--output-http`, in order: its `--output-http-name`, or its URL.
fn target_names(args: &OutputHttpArgs) -> Result<Vec<String>, PluginError> {
    if args.output_http_name.len() > args.output_http.len() {
        return Err(PluginError::usage(
            "--output-http-name",
            format!(
                "{} names for {} --output-http targets (one name per target, in order)",
                args.output_http_name.len(),
                args.output_http.len()
            ),
        ));
    }
    let mut names = args.output_http_name.clone();
    for url in &args.output_http[names.len()..] {
        names.push(split_limit(url).map_or_else(|_| url.clone(), |(url, _)| url));
    }
    for name in &names {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PluginError::usage(
                "--output-http-name",
                format!("{name:?}: a name is printable ASCII without spaces"),
            ));
        }
    }
    Ok(names)
}

/// An HTTP/2-only target's workers are threads of several connections each: the
/// `--output-http-workers` connections are spread over at most one thread per core (ten
/// runtimes on two cores spend their time switching; one thread per core reads many
/// sockets per wakeup). The pool's bounds become thread counts. A target that may also get
/// HTTP/1.1 exchanges (`https://` with `auto`) keeps one connection per worker thread, since
/// each HTTP/1.1 exchange blocks its thread.
fn share_threads(client: Client, settings: &Settings) -> (Client, Settings) {
    let mut settings = settings.clone();
    if !client.only_h2() {
        return (client, settings);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let connections = settings.workers_max;
    let per_thread = connections.div_ceil(connections.min(cores));
    settings.workers_max = connections.div_ceil(per_thread);
    settings.workers_min = settings
        .workers_min
        .div_ceil(per_thread)
        .min(settings.workers_max);
    let mut h2 = client.h2.clone();
    h2.connections = connections;
    h2.connections_per_worker = per_thread;
    (client.with_h2(h2), settings)
}

register_output! {
    name: "output-http",
    about: "Replays requests byte for byte to an HTTP(S) target over keep-alive connections",
    args: OutputHttpArgs,
    build: build,
}

/// State shared by the dispatcher, the workers and the stats printer of one output.
struct Shared<'a> {
    cx: &'a OutputContext,
    client: Arc<Client>,
    settings: &'a Settings,
    label: &'a str,
    /// The target's `--output-http-name`.
    name: &'a str,
    active: AtomicUsize,
    idle: AtomicUsize,
    sent: AtomicU64,
    failed: AtomicU64,
    samples: Mutex<Vec<u32>>,
    warnings: Throttle,
    ignored: Arc<AtomicU64>,
    /// Set once a worker found the inbox closed: no worker is started or replaced after.
    closed: AtomicBool,
    amplified: Option<Arc<AtomicU64>>,
    copies: u32,
    pacer: Option<Mutex<RatePacer>>,
    /// HTTP/2 connections claimed by the running workers (at most `--output-http-workers`).
    h2_connections: AtomicUsize,
}

impl Output for HttpOutput {
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let shared = Shared {
            cx: &cx,
            client: self.client.clone(),
            settings: &self.settings,
            label: &self.label,
            name: &self.name,
            active: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            warnings: Throttle::default(),
            ignored: cx.counters().extra("ignored responses"),
            closed: AtomicBool::new(false),
            amplified: (self.copies > 1).then(|| cx.counters().extra("amplified copies")),
            copies: self.copies,
            pacer: self
                .settings
                .rate
                .map(|rate| Mutex::new(RatePacer::new(rate))),
            h2_connections: AtomicUsize::new(0),
        };
        let (stop_stats, stats_stop_rx) = bounded::<()>(0);
        // Workers take requests straight from the inbox (one channel hop less); this thread
        // only grows the pool while every worker is busy and requests are waiting.
        std::thread::scope(|scope| {
            let spawn_worker = || {
                shared.active.fetch_add(1, Relaxed);
                shared.idle.fetch_add(1, Relaxed);
                let (shared, inbox) = (&shared, &inbox);
                std::thread::Builder::new()
                    .name(format!("{}-worker", self.label))
                    .spawn_scoped(scope, move || {
                        // A dead worker gives its slot back (the request it held is counted
                        // by its `InHand` guard), so the supervisor replaces it.
                        let body = || {
                            if shared.client.may_use_h2() {
                                h2_worker::run(shared, inbox);
                            } else {
                                worker(shared, inbox);
                            }
                        };
                        if catch_panic(shared.cx.counters(), body).is_none() {
                            shared.idle.fetch_sub(1, Relaxed);
                            shared.active.fetch_sub(1, Relaxed);
                        }
                    })
                    .expect("spawn output-http worker");
            };
            for _ in 0..self.settings.workers_min {
                spawn_worker();
            }
            if self.settings.stats {
                let (shared, inbox) = (&shared, &inbox);
                scope.spawn(move || print_stats(shared, inbox, stats_stop_rx));
            }
            while shared.active.load(Relaxed) > 0 || !shared.closed.load(Relaxed) {
                std::thread::sleep(SUPERVISE);
                let active = shared.active.load(Relaxed);
                let busy = shared.idle.load(Relaxed) == 0 && !inbox.is_empty();
                let replace = active < self.settings.workers_min;
                if !shared.closed.load(Relaxed)
                    && (replace || (busy && active < self.settings.workers_max))
                {
                    spawn_worker();
                }
            }
            drop(stop_stats);
        });
        Ok(())
    }
}

/// A worker of an HTTP/1.1-only target: one blocking exchange at a time.
fn worker(shared: &Shared, inbox: &Inbox) {
    let mut session = Session::new(shared.client.clone());
    let mut status_counters = StatusCounters::default();
    loop {
        let msg = match take(shared, inbox, WORKER_IDLE) {
            Taken::Message(msg) => msg,
            Taken::Nothing => continue,
            Taken::Stop => break,
        };
        if !is_request(shared, &msg) {
            continue;
        }
        shared.idle.fetch_sub(1, Relaxed);
        let in_hand = InHand(shared);
        for n in 0..shared.copies {
            let Some(job) = copy(shared, &msg, n) else {
                continue;
            };
            if let Some(wait) = pace(shared) {
                std::thread::sleep(wait);
            }
            replay_http1(shared, &mut session, &job, &mut status_counters);
        }
        std::mem::forget(in_hand);
        shared.idle.fetch_add(1, Relaxed);
    }
    count_foreign_redirects(shared, &session);
}

/// What a worker's wait on the inbox gave.
enum Taken {
    Message(Message),
    /// Nothing came in time (and the worker stays).
    Nothing,
    /// The worker retires (idle above the minimum) or the inbox closed: it is no longer
    /// counted as active or idle.
    Stop,
}

/// Waits at most `wait` for a message; an idle worker is counted idle.
fn take(shared: &Shared, inbox: &Inbox, wait: Duration) -> Taken {
    match inbox.recv_timeout(wait) {
        Next::Message(msg) => Taken::Message(msg),
        Next::Timeout => {
            let min = shared.settings.workers_min;
            let retire = shared
                .active
                .fetch_update(Relaxed, Relaxed, |n| (n > min).then(|| n - 1))
                .is_ok();
            if retire {
                shared.idle.fetch_sub(1, Relaxed);
                Taken::Stop
            } else {
                Taken::Nothing
            }
        }
        Next::Closed => {
            shared.closed.store(true, Relaxed);
            shared.active.fetch_sub(1, Relaxed);
            shared.idle.fetch_sub(1, Relaxed);
            Taken::Stop
        }
    }
}

/// True for a request; anything else is counted as not for this output.
fn is_request(shared: &Shared, msg: &Message) -> bool {
    if msg.kind() == Kind::Request {
        return true;
    }
    shared.ignored.fetch_add(1, Relaxed);
    shared.cx.counters().add_drop(Reason::NotForOutput, 1);
    false
}

/// Copy `n` of `msg` (0 is `msg` itself; the others, for `|N%` above 100 %, are messages of
/// their own under the ids `<id>-n`: counted in once, then out or dropped).
fn copy(shared: &Shared, msg: &Message, n: u32) -> Option<Message> {
    if n == 0 {
        return Some(msg.clone());
    }
    let counters = shared.cx.counters();
    if let Some(counter) = &shared.amplified {
        counter.fetch_add(1, Relaxed);
    }
    counters.add_in(1);
    match msg.meta.with_id(&format!("{}-{n}", msg.id())) {
        Ok(meta) => Some(Message::new(meta, msg.payload.clone())),
        Err(e) => {
            counters.add_drop(Reason::Malformed, 1);
            warn(shared, msg, &format!("copy not replayed: {e}"));
            None
        }
    }
}

/// How long to wait before the next request under `--output-http-rate`.
fn pace(shared: &Shared) -> Option<Duration> {
    let pacer = shared.pacer.as_ref()?;
    let wait = pacer.lock().expect("pacer lock").reserve();
    (!wait.is_zero()).then_some(wait)
}

fn count_foreign_redirects(shared: &Shared, session: &Session) {
    if session.foreign_redirects > 0 {
        shared
            .cx
            .counters()
            .extra("redirects to other hosts not followed")
            .fetch_add(session.foreign_redirects, Relaxed);
    }
}

/// A request a worker is replaying. Dropped only when the worker panics (it is forgotten
/// once the request is done): the request is counted as `plugin panicked` and the worker
/// counts as idle again, as if it had finished it, before its slot is given back.
struct InHand<'a, 'b>(&'a Shared<'b>);

impl Drop for InHand<'_, '_> {
    fn drop(&mut self) {
        self.0.cx.counters().add_drop(Reason::Panicked, 1);
        self.0.idle.fetch_add(1, Relaxed);
    }
}

/// Per status class (1xx…5xx) counters, looked up once per worker.
type StatusCounters = [Option<Arc<AtomicU64>>; 6];

/// Replays `msg` over HTTP/1.1 (an HTTP/2-form message converted) and counts the outcome.
fn replay_http1(
    shared: &Shared,
    session: &mut Session,
    msg: &Message,
    status_counters: &mut StatusCounters,
) {
    shadowtap_api::test_panic_point(&format!("{}-worker", shared.label));
    let started = Instant::now();
    let start_ns = now_ns();
    let result = session.send(&msg.payload, shared.settings.keep);
    record(
        shared,
        msg,
        start_ns,
        started.elapsed(),
        result,
        status_counters,
    );
}

/// Counts the outcome of one replayed request and feeds its response back.
fn record(
    shared: &Shared,
    msg: &Message,
    start_ns: i64,
    rtt: Duration,
    result: Result<Response, SendError>,
    status_counters: &mut StatusCounters,
) {
    let counters = shared.cx.counters();
    match result {
        Ok(response) => {
            counters.add_out(1);
            shared.sent.fetch_add(1, Relaxed);
            let class = (response.status / 100).min(5) as usize;
            status_counters[class]
                .get_or_insert_with(|| counters.extra(&format!("status {class}xx")))
                .fetch_add(1, Relaxed);
            if shared.settings.stats {
                let mut samples = shared.samples.lock().expect("samples lock");
                if samples.len() < MAX_SAMPLES {
                    samples.push(rtt.as_micros().min(u32::MAX as u128) as u32);
                }
            }
            if shared.settings.track {
                feed_back_response(shared, msg, start_ns, rtt, response.raw);
            }
        }
        Err(SendError::Request(error)) => {
            counters.add_drop(Reason::Malformed, 1);
            let name = match &error {
                RequestError::Connect => "error: connect request",
                RequestError::Unparsable(_) => "error: unparsable request",
                RequestError::Form(e) => e.counter(),
            };
            counters.extra(name).fetch_add(1, Relaxed);
            warn(shared, msg, &error.to_string());
            if shared.settings.track {
                feed_back_failure(shared, msg, start_ns, rtt, name);
            }
        }
        Err(SendError::Exchange(error)) => {
            counters.add_drop(Reason::OutputError, 1);
            shared.failed.fetch_add(1, Relaxed);
            let name = error.failure.counter();
            counters.extra(name).fetch_add(1, Relaxed);
            warn(shared, msg, &error.to_string());
            if shared.settings.track {
                feed_back_failure(shared, msg, start_ns, rtt, name);
            }
        }
    }
}

/// Sends the replayed response back into the pipeline as a kind 3 message with the request's
/// id and `target=NAME`; one that cannot be is counted (by the context) and warned about.
fn feed_back_response(shared: &Shared, msg: &Message, start_ns: i64, rtt: Duration, raw: Vec<u8>) {
    let meta = replayed_meta(shared, msg, start_ns, rtt, None);
    feed_back(shared, msg, meta, raw);
}

/// Sends back, in place of a response, a kind 3 message with no payload whose line says why
/// there is none: `target=NAME error=timeout` (the counter's name, `-` for spaces), so that
/// a comparison of responses, live or from a recorded file, can tell a failed replay from a
/// lost one.
fn feed_back_failure(shared: &Shared, msg: &Message, start_ns: i64, rtt: Duration, counter: &str) {
    let reason = counter
        .strip_prefix("error: ")
        .unwrap_or(counter)
        .replace(' ', "-");
    let meta = replayed_meta(shared, msg, start_ns, rtt, Some(&reason));
    feed_back(shared, msg, meta, Vec::new());
}

/// The kind 3 line of a replay of `msg`: `target=NAME`, with `|N%` amplification `copies=N`
/// (how many answers to expect), and `error=REASON` for one that failed.
fn replayed_meta(
    shared: &Shared,
    msg: &Message,
    start_ns: i64,
    rtt: Duration,
    error: Option<&str>,
) -> Result<Meta, shadowtap_api::MetaError> {
    let copies = shared.copies.to_string();
    let mut fields = vec![("target", shared.name)];
    if shared.copies > 1 {
        fields.push(("copies", &copies));
    }
    if let Some(reason) = error {
        fields.push(("error", reason));
    }
    Meta::new(
        Kind::ReplayedResponse,
        msg.id(),
        start_ns,
        rtt.as_nanos() as i64,
    )?
    .with_fields(&fields)
}

fn feed_back(
    shared: &Shared,
    msg: &Message,
    meta: Result<Meta, shadowtap_api::MetaError>,
    payload: Vec<u8>,
) {
    let meta = match meta {
        Ok(meta) => meta,
        Err(e) => return warn(shared, msg, &format!("response not fed back: {e}")),
    };
    if shared.cx.feed_back(Message::new(meta, payload)).is_err() {
        warn(
            shared,
            msg,
            "response not fed back: the pipeline has stopped",
        );
    }
}

fn warn(shared: &Shared, msg: &Message, what: &str) {
    if let Some(held_back) = shared.warnings.allow() {
        tracing::warn!(
            output = shared.label,
            id = msg.id(),
            held_back,
            "request not replayed: {what}"
        );
    }
}

fn print_stats(shared: &Shared, inbox: &Inbox, stop: crossbeam_channel::Receiver<()>) {
    let mut last = Instant::now();
    let mut last_sent = 0;
    let mut last_failed = 0;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(STATS_PERIOD) {
        let now = Instant::now();
        let sent = shared.sent.load(Relaxed);
        let failed = shared.failed.load(Relaxed);
        let seconds = now.duration_since(last).as_secs_f64().max(1e-3);
        let mut samples = std::mem::take(&mut *shared.samples.lock().expect("samples lock"));
        samples.sort_unstable();
        let pick = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let index = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[index] as f64 / 1000.0
        };
        eprintln!(
            "shadowtap: {} queue {} workers {} rps {:.1} failed/s {:.1} latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
            shared.label,
            inbox.len(),
            shared.active.load(Relaxed),
            (sent - last_sent) as f64 / seconds,
            (failed - last_failed) as f64 / seconds,
            pick(0.5),
            pick(0.9),
            pick(0.99),
            pick(1.0),
        );
        last = now;
        last_sent = sent;
        last_failed = failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::testkit;
    use std::io::{BufRead, BufReader, Read as _, Write as _};
    use std::net::TcpListener;

    #[test]
    fn conformance() {
        testkit::check_conformance("output-http", &["http-"]);
    }

    fn build_err(flags: &[&str]) -> String {
        testkit::build_error("output-http", flags)
    }

    #[test]
    fn usage_errors_name_the_flag() {
        assert!(build_err(&["--output-http", "ftp://x"]).contains("--output-http"));
        assert!(build_err(&["--output-http", "http://x|abc"]).contains("--output-http"));
        assert!(build_err(&[
            "--output-http",
            "x:1",
            "--output-http-workers",
            "2",
            "--output-http-workers-min",
            "3"
        ])
        .contains("--output-http-workers-min"));
        assert!(
            build_err(&["--output-http", "x:1", "--output-http-timeout", "0"])
                .contains("--output-http-timeout")
        );
        assert!(
            build_err(&["--output-http-elasticsearch", "http://es:9200/idx"])
                .contains("--output-es")
        );
    }

    #[test]
    fn limits_and_amplification() {
        let specs = testkit::build_outputs(
            "output-http",
            &[
                "--output-http",
                "http://a:1|50%",
                "--output-http",
                "b:2|300%",
                "--output-http",
                "b:3|10",
                "--output-http-track-response",
                "--output-http-queue-len",
                "7",
            ],
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].limit, Some(Limit::Percent(50.0)));
        assert_eq!(specs[1].limit, None);
        assert_eq!(specs[2].limit, Some(Limit::PerSecond(10)));
        assert!(specs.iter().all(|s| s.feedback && s.queue_len == 7));
        assert_eq!(specs[0].label, "output-http[http://a:1]");
    }

    /// A tiny server that answers `n` requests on one connection and returns what it read.
    fn echo_server(n: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut seen = Vec::new();
            for _ in 0..n {
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                head.push_str(&String::from_utf8(body).unwrap());
                seen.push(head);
                writer
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
            }
            seen
        });
        (address, handle)
    }

    #[test]
    fn replays_on_one_keep_alive_connection_and_counts() {
        let (address, server) = echo_server(3);
        let spec = testkit::build_outputs(
            "output-http",
            &[
                "--output-http",
                &format!("{address}/base"),
                "--output-http-workers",
                "1",
            ],
        )
        .unwrap()
        .remove(0);
        let request = |i: usize| {
            Message::new(
                Meta::new(Kind::Request, &format!("id{i}"), 0, 0).unwrap(),
                format!("POST /p{i}?q HTTP/1.1\r\nhost: prod\r\nConnection: close\r\nContent-Length: 3\r\nX-Odd: A\r\n\r\nb{i:02}"),
            )
        };
        let response = Message::new(
            Meta::new(Kind::Response, "id0", 0, 0).unwrap(),
            "HTTP/1.1 200 OK\r\n\r\n",
        );
        let messages = vec![request(0), response, request(1), request(2)];
        let (snapshot, result) = testkit::run_output(spec, messages);
        result.unwrap();
        let seen = server.join().unwrap();
        assert_eq!(
            seen[1],
            format!("POST /base/p1?q HTTP/1.1\r\nhost: {address}\r\nContent-Length: 3\r\nX-Odd: A\r\n\r\nb01")
        );
        assert_eq!(snapshot.passed, 3);
        assert!(snapshot
            .extra
            .contains(&("ignored responses".to_string(), 1)));
    }

    #[test]
    fn refused_target_counts_failures_quickly() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spec = testkit::build_outputs(
            "output-http",
            &["--output-http", &format!("127.0.0.1:{port}")],
        )
        .unwrap()
        .remove(0);
        let messages = (0..5)
            .map(|i| {
                Message::new(
                    Meta::new(Kind::Request, &format!("id{i}"), 0, 0).unwrap(),
                    "GET / HTTP/1.1\r\n\r\n",
                )
            })
            .collect();
        let started = Instant::now();
        let (snapshot, result) = testkit::run_output(spec, messages);
        result.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(snapshot.dropped(), 5);
        assert!(snapshot.extra.contains(&("error: refused".to_string(), 5)));
    }
}
