//! `output-tcp`: streams messages as `.gor` records (header line, payload, `\n🐵🙈🙉\n`) over
//! persistent TCP (or TLS) connections to a `--input-tcp` peer — shadowtap's or GoReplay's.
//!
//! Flags: `--output-tcp ADDR` (repeatable, `host:port`; `ADDR|N` limits to N requests/s,
//! `ADDR|N%` samples), `--output-tcp-workers N` (connections per address, default 10),
//! `--output-tcp-sticky` (a message goes to connection `fnv32a(id) % workers`, so a request and
//! its responses share a connection and keep their order; otherwise round-robin),
//! `--output-tcp-secure` (TLS, verified against the system's roots),
//! `--output-tcp-skip-verify` (TLS without certificate verification),
//! `--output-tcp-stats` (a line on stderr every 5 s),
//! `--output-tcp-tls-cert PEM` / `--output-tcp-tls-key PEM` (a client certificate, for an
//! input-tcp started with `--input-tcp-tls-client-ca`; implies `--output-tcp-secure`),
//! `--output-tcp-auth-token TOKEN` (or `SHADOWTAP_OUTPUT_TCP_AUTH_TOKEN`, or
//! `--output-tcp-auth-token-file FILE`): each connection starts with the line
//! `AUTH <token>\n`, which an input-tcp with `--input-tcp-auth-token` requires (do not set it
//! towards GoReplay, which would read the line as a bad record).
//!
//! Differences from GoReplay: every kind is forwarded (GoReplay silently drops replayed
//! responses, kind 3); nothing is reordered or lost on reconnect — each connection sends its
//! messages in batches, and a batch whose write fails is sent again, whole and first, on the
//! next connection (so a receiver may see a batch twice, never a gap; a cut record is
//! discarded by the receiver). Before each batch the connection is checked for a close from
//! the peer (shadowtap's input-tcp half-closes when it stops), so a receiver that stops
//! gracefully and comes back loses nothing; one that is killed loses what it had read and
//! not yet passed on. Reconnects back off from 100 ms to 2 s. Once the inputs have ended,
//! a peer that stays unreachable for 10 s (or a second stop signal) makes the output give
//! up: what is left is counted as `output error`. Failures are counted as `error: connect`,
//! `error: write` and `reconnects`.
//!
//! Example: `shadowtap --input-raw :80 --output-tcp replay-host:28020 --output-tcp-sticky`
//! and on replay-host `shadowtap --input-tcp :28020 --output-http http://staging`.
#![deny(missing_docs)]

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use shadowtap_api::values::split_limit;
use shadowtap_api::wire::write_record;
use shadowtap_api::{
    fnv32a, instance_label, register_output, CoreSettings, Counters, Inbox, Message, Output,
    OutputContext, OutputSpec, PluginError, Reason, Shutdown,
};
use shadowtap_listener::Secret;
use std::io::{self, Read, Write};
use std::net::{Shutdown as NetShutdown, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages queued per connection (GoReplay's channel size).
const WORKER_QUEUE: usize = 100;
/// Most messages written in one batch.
const BATCH_MESSAGES: usize = 64;
/// A batch stops growing past this many bytes.
const BATCH_BYTES: usize = 256 << 10;
/// Connect timeout (GoReplay's).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Write timeout: a peer that does not read for this long counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// After the inputs ended, how long an unreachable peer is retried.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);
const STATS_PERIOD: Duration = Duration::from_secs(5);

/// Flags of `output-tcp`.
#[derive(clap::Args, Debug)]
pub struct OutputTcpArgs {
    /// Send every message as a .gor record to this input-tcp peer (host:port; ADDR|N, ADDR|N%)
    #[arg(id = "output-tcp", long = "output-tcp", value_name = "ADDR")]
    pub output_tcp: Vec<String>,
    /// Connections per address
    #[arg(
        id = "output-tcp-workers",
        long = "output-tcp-workers",
        default_value_t = 10,
        value_name = "N"
    )]
    pub output_tcp_workers: usize,
    /// Route by fnv32a(id) % workers so a request and its responses share a connection
    #[arg(id = "output-tcp-sticky", long = "output-tcp-sticky")]
    pub output_tcp_sticky: bool,
    /// Connect with TLS (the certificate is verified against the system's roots)
    #[arg(id = "output-tcp-secure", long = "output-tcp-secure")]
    pub output_tcp_secure: bool,
    /// Connect with TLS without verifying the peer's certificate (implies --output-tcp-secure)
    #[arg(id = "output-tcp-skip-verify", long = "output-tcp-skip-verify")]
    pub output_tcp_skip_verify: bool,
    /// Print queue lengths, messages/s and reconnects to stderr every 5s
    #[arg(id = "output-tcp-stats", long = "output-tcp-stats")]
    pub output_tcp_stats: bool,
    /// PEM file with a client certificate (chain) to present over TLS
    #[arg(
        id = "output-tcp-tls-cert",
        long = "output-tcp-tls-cert",
        value_name = "PEM"
    )]
    pub output_tcp_tls_cert: Option<PathBuf>,
    /// PEM file with the private key of --output-tcp-tls-cert
    #[arg(
        id = "output-tcp-tls-key",
        long = "output-tcp-tls-key",
        value_name = "PEM"
    )]
    pub output_tcp_tls_key: Option<PathBuf>,
    /// Send `AUTH <TOKEN>` as the first line of each connection (for --input-tcp-auth-token)
    #[arg(
        id = "output-tcp-auth-token",
        long = "output-tcp-auth-token",
        env = "SHADOWTAP_OUTPUT_TCP_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub output_tcp_auth_token: Option<String>,
    /// Read --output-tcp-auth-token from FILE
    #[arg(
        id = "output-tcp-auth-token-file",
        long = "output-tcp-auth-token-file",
        value_name = "FILE"
    )]
    pub output_tcp_auth_token_file: Option<PathBuf>,
}

/// TLS settings of one target.
#[derive(Clone)]
struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

struct TcpOutput {
    address: String,
    workers: usize,
    sticky: bool,
    tls: Option<Tls>,
    stats: bool,
    label: String,
    token: Option<Secret>,
}

fn build(args: OutputTcpArgs, _: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    if args.output_tcp.is_empty() {
        return Ok(Vec::new());
    }
    if args.output_tcp_workers == 0 || args.output_tcp_workers > 1024 {
        return Err(PluginError::usage(
            "--output-tcp-workers",
            "must be between 1 and 1024",
        ));
    }
    let token = Secret::load(
        "--output-tcp-auth-token",
        args.output_tcp_auth_token.as_deref(),
        args.output_tcp_auth_token_file.as_deref(),
    )
    .map_err(|e| PluginError::usage("--output-tcp-auth-token", e.to_string()))?;
    let config = client_tls(&args)?;
    args.output_tcp
        .iter()
        .map(|value| {
            let (address, limit) =
                split_limit(value).map_err(|e| PluginError::usage("--output-tcp", e))?;
            let host = host_of(&address).ok_or_else(|| {
                PluginError::usage("--output-tcp", format!("{address:?} is not host:port"))
            })?;
            let tls = match &config {
                Some(config) => Some(Tls {
                    config: config.clone(),
                    name: shadowtap_tls::server_name(host)
                        .map_err(|e| PluginError::usage("--output-tcp", e))?,
                }),
                None => None,
            };
            let label = instance_label("output-tcp", &address);
            let output = TcpOutput {
                address: address.clone(),
                workers: args.output_tcp_workers,
                sticky: args.output_tcp_sticky,
                tls,
                stats: args.output_tcp_stats,
                label: label.clone(),
                token: token.clone(),
            };
            let mut spec = OutputSpec::new(label, Box::new(output));
            spec.limit = limit;
            Ok(spec)
        })
        .collect()
}

/// The TLS client configuration, if TLS is asked for (with a client certificate if given).
fn client_tls(args: &OutputTcpArgs) -> Result<Option<Arc<ClientConfig>>, PluginError> {
    let identity = match (&args.output_tcp_tls_cert, &args.output_tcp_tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(
            shadowtap_tls::load_identity(
                ("--output-tcp-tls-cert", cert),
                ("--output-tcp-tls-key", key),
            )
            .map_err(|e| PluginError::Runtime(e.to_string()))?,
        ),
        (Some(_), None) => {
            return Err(PluginError::usage(
                "--output-tcp-tls-key",
                "required with --output-tcp-tls-cert",
            ))
        }
        (None, Some(_)) => {
            return Err(PluginError::usage(
                "--output-tcp-tls-cert",
                "required with --output-tcp-tls-key",
            ))
        }
    };
    let secure = args.output_tcp_secure || args.output_tcp_skip_verify || identity.is_some();
    if !secure {
        return Ok(None);
    }
    shadowtap_tls::client_config_with_identity(
        args.output_tcp_skip_verify,
        &[],
        "--output-tcp-skip-verify",
        identity,
    )
    .map(Some)
    .map_err(PluginError::Runtime)
}

/// The host of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> Option<&str> {
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(if host.is_empty() { "127.0.0.1" } else { host })
}

register_output! {
    name: "output-tcp",
    about: "Streams .gor records to an input-tcp peer over persistent TCP or TLS connections",
    args: OutputTcpArgs,
    build: build,
}

/// What the workers of one output share.
struct Shared<'a> {
    output: &'a TcpOutput,
    counters: &'a Arc<Counters>,
    shutdown: &'a Shutdown,
    inbox_closed: AtomicBool,
    closed_at: std::sync::Mutex<Option<Instant>>,
    reconnects: Arc<AtomicU64>,
    connect_errors: Arc<AtomicU64>,
    write_errors: Arc<AtomicU64>,
}

impl Output for TcpOutput {
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let counters = cx.counters();
        let shared = Shared {
            output: &self,
            counters,
            shutdown: cx.shutdown(),
            inbox_closed: AtomicBool::new(false),
            closed_at: std::sync::Mutex::new(None),
            reconnects: counters.extra("reconnects"),
            connect_errors: counters.extra("error: connect"),
            write_errors: counters.extra("error: write"),
        };
        let (queues, receivers): (Vec<Sender<Message>>, Vec<Receiver<Message>>) =
            (0..self.workers).map(|_| bounded(WORKER_QUEUE)).unzip();
        let watched: Vec<Receiver<Message>> = receivers.to_vec();
        std::thread::scope(|scope| {
            for (index, rx) in receivers.into_iter().enumerate() {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("{}-{index}", self.label))
                    .spawn_scoped(scope, move || worker(shared, rx))
                    .expect("spawn output-tcp worker");
            }
            let (stop_stats, stop_rx) = bounded::<()>(0);
            if self.stats {
                let (shared, watched, inbox) = (&shared, &watched, &inbox);
                scope.spawn(move || print_stats(shared, watched, inbox, stop_rx));
            }
            let mut next = 0usize;
            while let Some(msg) = inbox.recv() {
                let index = if self.sticky {
                    fnv32a(msg.meta.id_bytes()) as usize % self.workers
                } else {
                    let index = next;
                    next = (next + 1) % self.workers;
                    index
                };
                if queues[index].send(msg).is_err() {
                    counters.add_drop(Reason::OutputError, 1);
                }
            }
            *shared.closed_at.lock().expect("lock") = Some(Instant::now());
            shared.inbox_closed.store(true, Relaxed);
            drop(queues);
            drop(stop_stats);
        });
        Ok(())
    }
}

/// One persistent connection: batches from its queue, resent whole after a failure.
fn worker(shared: &Shared, rx: Receiver<Message>) {
    let mut conn: Option<Connection> = None;
    let mut batch: Vec<Message> = Vec::new();
    let mut bytes: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    let mut backoff = FIRST_BACKOFF;
    loop {
        if batch.is_empty() {
            let Ok(first) = rx.recv() else { break };
            batch.push(first);
            bytes.clear();
            let _ = write_record(&mut bytes, &batch[0]);
            while batch.len() < BATCH_MESSAGES && bytes.len() < BATCH_BYTES {
                let Ok(msg) = rx.try_recv() else { break };
                let _ = write_record(&mut bytes, &msg);
                batch.push(msg);
            }
        }
        if conn.as_mut().is_some_and(|c| c.peer_closed()) {
            tracing::debug!(output = shared.output.label, "peer closed the connection");
            conn = None;
        }
        let Some(live) = conn.as_mut() else {
            match connect(shared, &mut backoff) {
                Some(c) => conn = Some(c),
                None => {
                    give_up(shared, batch.len() as u64, &rx);
                    return;
                }
            }
            continue;
        };
        match live.write_all(&bytes) {
            Ok(()) => {
                shared.counters.add_out(batch.len() as u64);
                batch.clear();
                backoff = FIRST_BACKOFF;
            }
            Err(e) => {
                shared.write_errors.fetch_add(1, Relaxed);
                tracing::warn!(output = shared.output.label, error = %e, "write failed; reconnecting and sending the batch again");
                conn = None;
            }
        }
    }
    if let Some(mut c) = conn {
        c.close();
    }
}

/// Counts the batch in hand and what is still queued as lost.
fn give_up(shared: &Shared, in_hand: u64, rx: &Receiver<Message>) {
    let mut lost = in_hand;
    while rx.recv().is_ok() {
        lost += 1;
    }
    shared.counters.add_drop(Reason::OutputError, lost);
    tracing::error!(
        output = shared.output.label,
        lost,
        "giving up on an unreachable peer"
    );
}

/// Connects, retrying with backoff; `None` when it is time to give up.
fn connect(shared: &Shared, backoff: &mut Duration) -> Option<Connection> {
    let mut first = true;
    loop {
        if !first {
            shared.reconnects.fetch_add(1, Relaxed);
        }
        first = false;
        let output = shared.output;
        match Connection::open(&output.address, output.tls.as_ref(), output.token.as_ref()) {
            Ok(conn) => return Some(conn),
            Err(e) => {
                shared.connect_errors.fetch_add(1, Relaxed);
                tracing::warn!(output = shared.output.label, error = %e, retry_in = ?*backoff, "cannot connect");
            }
        }
        if shared.shutdown.is_triggered() {
            return None;
        }
        if shared.inbox_closed.load(Relaxed) {
            let closed = shared
                .closed_at
                .lock()
                .expect("lock")
                .unwrap_or_else(Instant::now);
            if closed.elapsed() > GIVE_UP_AFTER {
                return None;
            }
        }
        // A stop signal cuts the wait short; the next round then gives up.
        shared.shutdown.sleep(*backoff);
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }
}

/// A plain or TLS connection.
struct Connection {
    socket: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

impl Connection {
    fn open(address: &str, tls: Option<&Tls>, token: Option<&Secret>) -> io::Result<Connection> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
        for addr in address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(socket) => {
                    socket.set_nodelay(true)?;
                    socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
                    socket.set_read_timeout(Some(CONNECT_TIMEOUT))?;
                    let mut conn = Connection { socket, tls: None };
                    if let Some(tls) = tls {
                        let mut client =
                            ClientConnection::new(tls.config.clone(), tls.name.clone())
                                .map_err(io::Error::other)?;
                        while client.is_handshaking() {
                            client.complete_io(&mut conn.socket)?;
                        }
                        conn.tls = Some(Box::new(client));
                    }
                    if let Some(token) = token {
                        conn.write_all(&[b"AUTH ", token.expose(), b"\n"].concat())?;
                    }
                    return Ok(conn);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            None => {
                self.socket.write_all(bytes)?;
                self.socket.flush()
            }
            Some(tls) => {
                let mut stream = rustls::Stream::new(tls.as_mut(), &mut self.socket);
                stream.write_all(bytes)?;
                stream.flush()
            }
        }
    }

    /// True if the peer has closed (or reset) the connection: input-tcp never sends data, so
    /// anything readable on the socket other than TLS housekeeping means it is going away.
    fn peer_closed(&mut self) -> bool {
        if self.socket.set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match &mut self.tls {
            None => {
                let mut probe = [0u8; 1];
                match self.socket.peek(&mut probe) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != io::ErrorKind::WouldBlock,
                }
            }
            Some(tls) => tls_peer_closed(tls, &mut self.socket),
        };
        closed || self.socket.set_nonblocking(false).is_err()
    }

    fn close(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = tls.complete_io(&mut self.socket);
        }
        let _ = self.socket.shutdown(NetShutdown::Write);
    }
}

fn tls_peer_closed(tls: &mut ClientConnection, socket: &mut TcpStream) -> bool {
    loop {
        match tls.read_tls(socket) {
            Ok(0) => return true,
            Ok(_) => {
                if tls.process_new_packets().is_err() {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return true,
        }
    }
    let mut sink = [0u8; 256];
    loop {
        match tls.reader().read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() != io::ErrorKind::WouldBlock,
        }
    }
}

fn print_stats(shared: &Shared, queues: &[Receiver<Message>], inbox: &Inbox, stop: Receiver<()>) {
    let mut last_out = 0;
    let mut last = Instant::now();
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(STATS_PERIOD) {
        let out = shared.counters.snapshot().passed;
        let seconds = last.elapsed().as_secs_f64().max(1e-3);
        let queued: usize = queues.iter().map(|q| q.len()).sum();
        eprintln!(
            "shadowtap: {} inbox {} queued {} sent/s {:.1} reconnects {} connect errors {} write errors {}",
            shared.output.label,
            inbox.len(),
            queued,
            (out - last_out) as f64 / seconds,
            shared.reconnects.load(Relaxed),
            shared.connect_errors.load(Relaxed),
            shared.write_errors.load(Relaxed),
        );
        last_out = out;
        last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::wire::RecordReader;
    use shadowtap_api::{testkit, Kind, Meta};
    use std::io::BufReader;
    use std::net::TcpListener;

    #[test]
    fn conformance() {
        testkit::check_conformance("output-tcp", &[]);
    }

    #[test]
    fn usage_errors_name_the_flag() {
        let err = |flags: &[&str]| testkit::build_error("output-tcp", flags);
        assert!(err(&["--output-tcp", "nohost"]).contains("--output-tcp"));
        assert!(err(&["--output-tcp", "a:1|x"]).contains("--output-tcp"));
        assert!(err(&["--output-tcp", "a:1", "--output-tcp-workers", "0"])
            .contains("--output-tcp-workers"));
    }

    #[test]
    fn sticky_hash_matches_goreplay() {
        assert_eq!(fnv32a(b"1") % 100, 44);
        assert_eq!(host_of(":28020"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:5"), Some("::1"));
    }

    #[test]
    fn streams_records_in_order_on_one_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = RecordReader::new(BufReader::new(stream), 1 << 20);
            let mut got = Vec::new();
            while let Some(record) = reader.next_record().unwrap() {
                got.push(record.message);
            }
            got
        });
        let spec = testkit::build_outputs(
            "output-tcp",
            &["--output-tcp", &address, "--output-tcp-workers", "1"],
        )
        .unwrap()
        .remove(0);
        let messages: Vec<Message> = (0..50)
            .map(|i| {
                let kind = [Kind::Request, Kind::Response, Kind::ReplayedResponse][i % 3];
                Message::new(
                    Meta::new(kind, &format!("id{i}"), i as i64, 0).unwrap(),
                    format!("p{i}\n"),
                )
            })
            .collect();
        let (snapshot, result) = testkit::run_output(spec, messages.clone());
        result.unwrap();
        assert_eq!(snapshot.passed, 50);
        assert_eq!(server.join().unwrap(), messages);
    }
}
