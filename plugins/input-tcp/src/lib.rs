//! `input-tcp`: receives `.gor` records (header line, payload, `\n🐵🙈🙉\n`) from an
//! `--output-tcp` peer — shadowtap's or GoReplay's — and passes them on as they are.
//!
//! Flags: `--input-tcp ADDR` (repeatable; `127.0.0.1:28020`, `:28020` = all interfaces;
//! `ADDR|N` / `ADDR|N%` limit requests), `--input-tcp-secure` (TLS listener) with
//! `--input-tcp-certificate PEM` and `--input-tcp-certificate-key PEM`;
//! `--input-tcp-tls-client-ca PEM` then requires every peer to present a client certificate
//! signed by that CA (`--output-tcp-tls-cert`/`--output-tcp-tls-key` on the sender).
//!
//! Shared token: with `--input-tcp-auth-token TOKEN` (or `SHADOWTAP_INPUT_TCP_AUTH_TOKEN`, or
//! `--input-tcp-auth-token-file FILE`), a connection's first line must be `AUTH <token>\n`
//! (at most 4 KiB; `--output-tcp-auth-token` sends it) before its records; the token is
//! compared in constant time. Without a token nothing changes (GoReplay peers keep working).
//! A peer that fails (wrong or missing token, or no valid client certificate) is closed and
//! counted as one message dropped `unauthorized`; the warning names its address, never a token.
//!
//! Limits against any peer (see `shadowtap-listener`): `--input-tcp-max-connections N`
//! (default 256) and `--input-tcp-max-memory SIZE` (default 512mb; each connection reserves
//! its read buffers plus twice `--copy-buffer-size`, a connection the budget cannot cover is
//! refused and counted `memory budget`, one over the limit `connection limit`);
//! `--input-tcp-idle-timeout DURATION` (default 60s, `0` = never) closes a connection that
//! sent nothing for that long (a record it left unfinished is counted `incomplete`).
//! Warnings a peer can provoke (malformed records, refusals) are written once, then as one
//! "N more like this" line per 10 s.
//!
//! One thread per connection. Records are read in bounded memory: a payload longer than
//! `--copy-buffer-size` is cut (counted as truncated), a bad header line is counted as
//! `malformed` and skipped, a record cut off by the end of the connection is counted as
//! `malformed`. Every kind is passed on (GoReplay's output-tcp never sends kind 3; shadowtap's
//! does). Unlike GoReplay's input-tcp, no `\n` is added to each payload, so a chain
//! shadowtap → shadowtap → file reproduces the input bytes exactly, and payloads are never
//! aliased between messages. Messages are handed on with `emit` (waiting when the pipeline is
//! full, which slows the sender through TCP back-pressure); the input counts as live.
//!
//! On stop, the listener closes and each connection is half-closed (the peer's output-tcp sees
//! it before its next write and reconnects elsewhere or later), then read until the peer
//! closes or is idle for 300 ms (at most 2 s), so a graceful restart loses nothing.
//!
//! Example: `shadowtap --input-tcp :28020 --output-http http://staging`; the capturing side
//! runs `shadowtap --input-raw :80 --output-tcp replayer:28020`.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod fuzzing;

use crossbeam_channel::{bounded, Sender};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use shadowtap_api::values::{duration_value, size_value, split_limit};
use shadowtap_api::wire::{RecordError, RecordReader};
use shadowtap_api::{
    catch_panic, instance_label, register_input, CoreSettings, Counters, Input, InputContext,
    InputSpec, Message, PluginError, Reason, Shutdown,
};
use shadowtap_listener::{refuse, Admission, Secret, Ticket, Warnings};
use std::io::{self, BufRead, BufReader, Read};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often blocked accepts and reads look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);
/// After stop, a connection idle this long is closed.
const DRAIN_IDLE: Duration = Duration::from_millis(300);
/// After stop, connections are closed after this long at most.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// The read buffer of a connection.
const READ_BUFFER: usize = 64 << 10;
/// What TLS buffers may add to a connection's memory.
const TLS_BUFFERS: usize = 64 << 10;
/// Longest `AUTH <token>` line.
const MAX_AUTH_LINE: u64 = 4 << 10;
/// Warnings a peer can provoke: one line per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Flags of `input-tcp`.
#[derive(clap::Args, Debug)]
pub struct InputTcpArgs {
    /// Listen on ADDR (e.g. :28020) for .gor records sent by --output-tcp
    #[arg(id = "input-tcp", long = "input-tcp", value_name = "ADDR")]
    pub input_tcp: Vec<String>,
    /// Accept TLS connections (needs --input-tcp-certificate and --input-tcp-certificate-key)
    #[arg(id = "input-tcp-secure", long = "input-tcp-secure")]
    pub input_tcp_secure: bool,
    /// PEM file with the server certificate (chain) for --input-tcp-secure
    #[arg(
        id = "input-tcp-certificate",
        long = "input-tcp-certificate",
        value_name = "PEM"
    )]
    pub input_tcp_certificate: Option<PathBuf>,
    /// PEM file with the private key for --input-tcp-secure
    #[arg(
        id = "input-tcp-certificate-key",
        long = "input-tcp-certificate-key",
        value_name = "PEM"
    )]
    pub input_tcp_certificate_key: Option<PathBuf>,
    /// PEM file with the CA that must have signed every peer's client certificate (with --input-tcp-secure)
    #[arg(
        id = "input-tcp-tls-client-ca",
        long = "input-tcp-tls-client-ca",
        value_name = "PEM"
    )]
    pub input_tcp_tls_client_ca: Option<PathBuf>,
    /// Require each connection to start with the line `AUTH <TOKEN>`
    #[arg(
        id = "input-tcp-auth-token",
        long = "input-tcp-auth-token",
        env = "SHADOWTAP_INPUT_TCP_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub input_tcp_auth_token: Option<String>,
    /// Read --input-tcp-auth-token from FILE
    #[arg(
        id = "input-tcp-auth-token-file",
        long = "input-tcp-auth-token-file",
        value_name = "FILE"
    )]
    pub input_tcp_auth_token_file: Option<PathBuf>,
    /// Connections served at once per listener; more are refused
    #[arg(
        id = "input-tcp-max-connections",
        long = "input-tcp-max-connections",
        default_value_t = 256,
        value_name = "N"
    )]
    pub input_tcp_max_connections: usize,
    /// Memory all connections of a listener may reserve (each: 2 x --copy-buffer-size + 128kb)
    #[arg(
        id = "input-tcp-max-memory",
        long = "input-tcp-max-memory",
        value_parser = size_value,
        default_value = "512mb",
        value_name = "SIZE"
    )]
    pub input_tcp_max_memory: u64,
    /// Close a connection that sent nothing for this long (0 = never)
    #[arg(
        id = "input-tcp-idle-timeout",
        long = "input-tcp-idle-timeout",
        value_parser = duration_value,
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub input_tcp_idle_timeout: Duration,
}

/// What every connection of a listener shares.
struct Policy {
    tls: Option<Arc<ServerConfig>>,
    client_ca: bool,
    token: Option<Secret>,
    idle_timeout: Option<Duration>,
    max_memory: u64,
    max_connections: usize,
}

struct TcpInput {
    listener: TcpListener,
    address: SocketAddr,
    policy: Arc<Policy>,
}

fn parse_address(value: &str) -> String {
    if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    }
}

fn tls_config(args: &InputTcpArgs) -> Result<Option<Arc<ServerConfig>>, PluginError> {
    if !args.input_tcp_secure {
        if args.input_tcp_tls_client_ca.is_some() {
            return Err(PluginError::usage(
                "--input-tcp-tls-client-ca",
                "needs --input-tcp-secure",
            ));
        }
        return Ok(None);
    }
    let cert = args.input_tcp_certificate.as_deref().ok_or_else(|| {
        PluginError::usage(
            "--input-tcp-certificate",
            "required with --input-tcp-secure",
        )
    })?;
    let key = args.input_tcp_certificate_key.as_deref().ok_or_else(|| {
        PluginError::usage(
            "--input-tcp-certificate-key",
            "required with --input-tcp-secure",
        )
    })?;
    let tls_error = |e: shadowtap_tls::TlsError| PluginError::Runtime(e.to_string());
    let identity = shadowtap_tls::load_identity(
        ("--input-tcp-certificate", cert),
        ("--input-tcp-certificate-key", key),
    )
    .map_err(tls_error)?;
    let client_ca = args
        .input_tcp_tls_client_ca
        .as_deref()
        .map(|ca| ("--input-tcp-tls-client-ca", ca));
    shadowtap_tls::server_config(identity, "--input-tcp-certificate-key", client_ca)
        .map(Some)
        .map_err(tls_error)
}

/// The memory one connection reserves: its buffers and a record growing to its cap.
fn connection_cost(cap: usize) -> u64 {
    (2 * cap + READ_BUFFER + TLS_BUFFERS) as u64
}

fn policy(args: &InputTcpArgs, settings: &CoreSettings) -> Result<Policy, PluginError> {
    let cost = connection_cost(settings.copy_buffer_size);
    Admission::check_budget(args.input_tcp_max_memory, cost)
        .map_err(|e| PluginError::usage("--input-tcp-max-memory", e))?;
    let token = Secret::load(
        "--input-tcp-auth-token",
        args.input_tcp_auth_token.as_deref(),
        args.input_tcp_auth_token_file.as_deref(),
    )
    .map_err(|e| PluginError::usage("--input-tcp-auth-token", e.to_string()))?;
    if args.input_tcp_max_connections == 0 {
        return Err(PluginError::usage(
            "--input-tcp-max-connections",
            "must be at least 1",
        ));
    }
    Ok(Policy {
        tls: tls_config(args)?,
        client_ca: args.input_tcp_tls_client_ca.is_some(),
        token,
        idle_timeout: Some(args.input_tcp_idle_timeout).filter(|t| !t.is_zero()),
        max_memory: args.input_tcp_max_memory,
        max_connections: args.input_tcp_max_connections,
    })
}

fn build(args: InputTcpArgs, settings: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    if args.input_tcp.is_empty() {
        return Ok(Vec::new());
    }
    let policy = Arc::new(policy(&args, settings)?);
    args.input_tcp
        .iter()
        .map(|value| {
            let (address, limit) =
                split_limit(value).map_err(|e| PluginError::usage("--input-tcp", e))?;
            let bind = parse_address(&address);
            let listener = TcpListener::bind(&bind)
                .map_err(|e| PluginError::io(format!("--input-tcp: listening on {address}"), e))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| PluginError::io("--input-tcp: configuring the listener", e))?;
            let local = listener
                .local_addr()
                .map_err(|e| PluginError::io("--input-tcp", e))?;
            tracing::info!(address = %local, tls = policy.tls.is_some(), "input-tcp listening");
            Ok(InputSpec {
                label: instance_label("input-tcp", &address),
                plugin: Box::new(TcpInput {
                    listener,
                    address: local,
                    policy: policy.clone(),
                }),
                backpressure: shadowtap_api::Backpressure::Wait,
                limit,
            })
        })
        .collect()
}

register_input! {
    name: "input-tcp",
    about: "Receives .gor records from output-tcp peers over TCP or TLS",
    args: InputTcpArgs,
    build: build,
}

impl Input for TcpInput {
    fn run(self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        let (tx, rx) = bounded::<Message>(256);
        let cap = cx.settings().copy_buffer_size;
        let listener = Listener {
            admission: Admission::new(self.policy.max_connections, self.policy.max_memory),
            cost: connection_cost(cap),
            warnings: Arc::new(Warnings::new("input-tcp", WARN_INTERVAL)),
            cap,
        };
        tracing::debug!(address = %self.address, "input-tcp accepting");
        while !cx.is_stopping() {
            self.accept_all(&listener, &tx, &cx);
            if cx.forward_ready(&rx, POLL).is_err() {
                return Ok(());
            }
        }
        // Connections already established (waiting in the backlog) are drained too.
        self.accept_all(&listener, &tx, &cx);
        drop(self.listener);
        drop(tx);
        // Connections drain (see the crate docs); pass on what they hand over.
        cx.forward_until(&rx, Instant::now() + DRAIN_MAX + Duration::from_secs(1));
        listener.warnings.finish();
        Ok(())
    }
}

/// The state of one listener's run that its accept loop needs.
struct Listener {
    admission: Admission,
    /// The memory one connection reserves.
    cost: u64,
    warnings: Arc<Warnings>,
    cap: usize,
}

impl TcpInput {
    fn accept_all(&self, listener: &Listener, tx: &Sender<Message>, cx: &InputContext) {
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    listener.warnings.warn(|| format!("accept failed: {e}"));
                    return;
                }
            };
            let ticket = match listener.admission.admit(listener.cost) {
                Ok(ticket) => ticket,
                Err(refusal) => {
                    refuse(cx.counters(), &listener.warnings, peer, refusal);
                    continue;
                }
            };
            cx.counters().extra("connections").fetch_add(1, Relaxed);
            let connection = Connection {
                tx: tx.clone(),
                shutdown: cx.shutdown().clone(),
                counters: cx.counters().clone(),
                cap: listener.cap,
                policy: self.policy.clone(),
                warnings: listener.warnings.clone(),
                peer,
                _ticket: ticket,
            };
            let counters = cx.counters().clone();
            let spawned = std::thread::Builder::new()
                .name(format!("input-tcp {peer}"))
                .spawn(move || {
                    // A panic ends this connection only, counted as an error (exit 1).
                    if let Some(Err(e)) = catch_panic(&counters, || connection.serve(stream)) {
                        tracing::debug!(%peer, error = %e, "input-tcp connection ended");
                    }
                });
            if let Err(e) = spawned {
                listener
                    .warnings
                    .warn(|| format!("cannot start a connection thread: {e}"));
            }
        }
    }
}

/// One peer connection.
struct Connection {
    tx: Sender<Message>,
    shutdown: Shutdown,
    counters: Arc<Counters>,
    cap: usize,
    policy: Arc<Policy>,
    warnings: Arc<Warnings>,
    peer: SocketAddr,
    /// Holds the connection's place and memory until it ends.
    _ticket: Ticket,
}

impl Connection {
    fn serve(self, stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(POLL))?;
        let raw = stream.try_clone()?;
        let idled = Arc::new(AtomicBool::new(false));
        let mut patient = Patient {
            inner: Box::new(stream.try_clone()?),
            raw,
            shutdown: self.shutdown.clone(),
            last_data: Instant::now(),
            received: 0,
            draining_since: None,
            idle_timeout: self.policy.idle_timeout,
            idled: idled.clone(),
        };
        if let Some(config) = &self.policy.tls {
            let mut tls = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
            if let Err(e) = handshake(&mut tls, &mut patient) {
                return self.handshake_failed(e, patient.received == 0);
            }
            patient.inner = Box::new(StreamOwned::new(tls, stream));
        }
        let mut input = BufReader::with_capacity(READ_BUFFER, patient);
        if let Some(token) = &self.policy.token {
            match authenticate(&mut input, token)? {
                Auth::Passed => {}
                Auth::Failed => {
                    self.unauthorized("missing or wrong AUTH token");
                    return Ok(());
                }
                Auth::Silent => return Ok(()),
            }
        }
        self.read_records(RecordReader::new(input, self.cap), &idled)
    }

    fn read_records(
        &self,
        mut reader: RecordReader<BufReader<Patient>>,
        idled: &AtomicBool,
    ) -> io::Result<()> {
        loop {
            match reader.next_record() {
                Ok(Some(record)) => {
                    if record.truncated_bytes > 0 {
                        self.counters.add_truncated(1);
                    }
                    if self.tx.send(record.message).is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => {
                    self.ended(idled);
                    return Ok(());
                }
                Err(RecordError::BadHeader { record, source }) => {
                    self.malformed(&format!("record {record}: {source}"));
                }
                Err(RecordError::Unterminated { record, bytes }) if idled.load(Relaxed) => {
                    self.ended(idled);
                    self.dropped(
                        Reason::Incomplete,
                        &format!("record {record}: idle timeout inside a record ({bytes} bytes)"),
                    );
                    return Ok(());
                }
                Err(RecordError::Unterminated { record, bytes }) => {
                    self.malformed(&format!(
                        "record {record}: connection closed inside a record ({bytes} bytes)"
                    ));
                    return Ok(());
                }
                Err(RecordError::Io { source, .. }) => return Err(source),
                Err(oversized @ RecordError::Oversized { .. }) => {
                    self.malformed(&oversized.to_string())
                }
            }
        }
    }

    fn ended(&self, idled: &AtomicBool) {
        if idled.load(Relaxed) {
            self.counters
                .extra("connections closed (idle)")
                .fetch_add(1, Relaxed);
            tracing::debug!(peer = %self.peer, "input-tcp: idle connection closed");
        }
    }

    fn handshake_failed(&self, error: io::Error, silent: bool) -> io::Result<()> {
        if silent {
            return Ok(());
        }
        if self.policy.client_ca {
            self.unauthorized(&format!("TLS handshake failed: {error}"));
        } else {
            self.counters
                .extra("tls handshakes failed")
                .fetch_add(1, Relaxed);
            let peer = self.peer;
            self.warnings
                .warn(|| format!("{peer}: TLS handshake failed: {error}"));
        }
        Ok(())
    }

    fn unauthorized(&self, what: &str) {
        self.dropped(Reason::Unauthorized, &format!("unauthorized: {what}"));
    }

    fn malformed(&self, what: &str) {
        self.dropped(Reason::Malformed, &format!("{what}; skipped"));
    }

    fn dropped(&self, reason: Reason, what: &str) {
        self.counters.add_refused(reason, 1);
        let peer = self.peer;
        self.warnings.warn(|| format!("{peer}: {what}"));
    }
}

/// Completes a TLS handshake through `io`'s patience (idle timeout, shutdown).
fn handshake(tls: &mut ServerConnection, io: &mut Patient) -> io::Result<()> {
    while tls.is_handshaking() {
        match tls.complete_io(io) {
            Ok((0, 0)) if tls.wants_read() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the handshake",
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How a connection's `AUTH` line went.
enum Auth {
    Passed,
    Failed,
    /// The peer closed without sending anything (a port probe): nothing to count.
    Silent,
}

/// Reads the `AUTH <token>` line (bounded) and checks the token in constant time.
fn authenticate(input: &mut impl BufRead, token: &Secret) -> io::Result<Auth> {
    let mut line = Vec::new();
    input.take(MAX_AUTH_LINE).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(Auth::Silent);
    }
    let presented = line
        .strip_suffix(b"\n")
        .and_then(|line| line.strip_prefix(b"AUTH "))
        .map(|token| token.strip_suffix(b"\r").unwrap_or(token));
    Ok(match presented {
        Some(presented) if token.matches(presented) => Auth::Passed,
        _ => Auth::Failed,
    })
}

/// Reads through the poll timeouts, ends the stream gracefully after a stop, and ends it
/// when the peer was idle for the idle timeout.
struct Patient {
    inner: Box<dyn Read + Send>,
    raw: TcpStream,
    shutdown: Shutdown,
    last_data: Instant,
    /// Bytes read so far.
    received: u64,
    draining_since: Option<Instant>,
    idle_timeout: Option<Duration>,
    /// Set when the stream ended because of the idle timeout.
    idled: Arc<AtomicBool>,
}

impl Read for Patient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.should_end() {
                return Ok(0);
            }
            match self.inner.read(buf) {
                Ok(n) => {
                    self.last_data = Instant::now();
                    self.received += n as u64;
                    return Ok(n);
                }
                Err(e) if shadowtap_listener::is_poll_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl io::Write for Patient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.raw.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.raw.flush()
    }
}

impl Patient {
    /// Whether the stream should end now: drained after a stop, or idle too long.
    fn should_end(&mut self) -> bool {
        if let Some(since) = self.draining() {
            let idle = self.last_data.max(since).elapsed();
            return idle >= DRAIN_IDLE || since.elapsed() >= DRAIN_MAX;
        }
        let idle = self
            .idle_timeout
            .is_some_and(|limit| self.last_data.elapsed() >= limit);
        if idle {
            self.idled.store(true, Relaxed);
        }
        idle
    }

    /// Once the run is stopping: when draining began (the peer is told at once).
    fn draining(&mut self) -> Option<Instant> {
        if self.draining_since.is_none() && self.shutdown.is_triggered() {
            // Tell the peer we are going: it stops writing to this connection.
            let _ = self.raw.shutdown(NetShutdown::Write);
            self.draining_since = Some(Instant::now());
        }
        self.draining_since
    }
}

#[cfg(test)]
mod tests {
    use shadowtap_api::testkit;

    #[test]
    fn conformance() {
        testkit::check_conformance("input-tcp", &[]);
    }

    #[test]
    fn usage_errors_name_the_flag() {
        let err = |flags: &[&str]| testkit::build_error("input-tcp", flags);
        assert!(err(&["--input-tcp", "127.0.0.1:0", "--input-tcp-secure"])
            .contains("--input-tcp-certificate"));
        assert!(err(&[
            "--input-tcp",
            "127.0.0.1:0",
            "--input-tcp-secure",
            "--input-tcp-certificate",
            "/nonexistent.pem",
            "--input-tcp-certificate-key",
            "/nonexistent.pem"
        ])
        .contains("--input-tcp-certificate"));
        assert!(err(&["--input-tcp", "127.0.0.1:0|x"]).contains("--input-tcp"));
        assert!(err(&[
            "--input-tcp",
            "127.0.0.1:0",
            "--input-tcp-max-memory",
            "1kb"
        ])
        .contains("--input-tcp-max-memory"));
        assert!(err(&[
            "--input-tcp",
            "127.0.0.1:0",
            "--input-tcp-tls-client-ca",
            "/ca.pem"
        ])
        .contains("--input-tcp-secure"));
    }
}
