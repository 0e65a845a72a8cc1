//! `input-tcp`: receives `.gor` records (header line, payload, `\n🐵🙈🙉\n`) from an
//! `--output-tcp` peer — shadowtap's or GoReplay's — and passes them on as they are.
//!
//! Flags: `--input-tcp ADDR` (repeatable; `127.0.0.1:28020`, `:28020` = all interfaces;
//! `ADDR|N` / `ADDR|N%` limit requests), `--input-tcp-secure` (TLS listener) with
//! `--input-tcp-certificate PEM` and `--input-tcp-certificate-key PEM`.
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

use crossbeam_channel::{bounded, Sender};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use shadowtap_api::values::split_limit;
use shadowtap_api::wire::{RecordError, RecordReader};
use shadowtap_api::{
    instance_label, register_input, CoreSettings, Counters, Input, InputContext, InputSpec,
    Message, PluginError, Reason, Shutdown,
};
use std::io::{self, BufReader, Read};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often blocked accepts and reads look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);
/// After stop, a connection idle this long is closed.
const DRAIN_IDLE: Duration = Duration::from_millis(300);
/// After stop, connections are closed after this long at most.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Connections served at once per listener.
const MAX_CONNECTIONS: usize = 1024;

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
}

struct TcpInput {
    listener: TcpListener,
    address: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
}

fn parse_address(value: &str) -> String {
    if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, PluginError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            PluginError::usage(
                "--input-tcp-certificate",
                format!("{}: {e}", cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(PluginError::usage(
            "--input-tcp-certificate",
            format!("{}: no certificate found", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        PluginError::usage(
            "--input-tcp-certificate-key",
            format!("{}: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PluginError::Runtime(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| PluginError::usage("--input-tcp-certificate-key", e.to_string()))?;
    Ok(Arc::new(config))
}

fn build(args: InputTcpArgs, _: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    if args.input_tcp.is_empty() {
        return Ok(Vec::new());
    }
    let tls = if args.input_tcp_secure {
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
        Some(server_config(cert, key)?)
    } else {
        None
    };
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
            tracing::info!(address = %local, tls = tls.is_some(), "input-tcp listening");
            Ok(InputSpec {
                label: instance_label("input-tcp", &address),
                plugin: Box::new(TcpInput {
                    listener,
                    address: local,
                    tls: tls.clone(),
                }),
                live: true,
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
        let active = Arc::new(AtomicUsize::new(0));
        tracing::debug!(address = %self.address, "input-tcp accepting");
        while !cx.is_stopping() {
            self.accept_all(&tx, &active, &cx);
            if cx.forward_ready(&rx, POLL).is_err() {
                return Ok(());
            }
        }
        // Connections already established (waiting in the backlog) are drained too.
        self.accept_all(&tx, &active, &cx);
        drop(self.listener);
        drop(tx);
        // Connections drain (see the crate docs); pass on what they hand over.
        cx.forward_until(&rx, Instant::now() + DRAIN_MAX + Duration::from_secs(1));
        Ok(())
    }
}

impl TcpInput {
    fn accept_all(&self, tx: &Sender<Message>, active: &Arc<AtomicUsize>, cx: &InputContext) {
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "input-tcp: accept failed");
                    return;
                }
            };
            if active.load(Relaxed) >= MAX_CONNECTIONS {
                cx.counters()
                    .extra("connections refused (limit)")
                    .fetch_add(1, Relaxed);
                continue;
            }
            cx.counters().extra("connections").fetch_add(1, Relaxed);
            active.fetch_add(1, Relaxed);
            let connection = Connection {
                tx: tx.clone(),
                shutdown: cx.shutdown().clone(),
                counters: cx.counters().clone(),
                cap: cx.settings().copy_buffer_size,
                tls: self.tls.clone(),
            };
            let active = active.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("input-tcp {peer}"))
                .spawn(move || {
                    if let Err(e) = connection.serve(stream) {
                        tracing::debug!(%peer, error = %e, "input-tcp connection ended");
                    }
                    active.fetch_sub(1, Relaxed);
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "input-tcp: cannot start a connection thread");
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
    tls: Option<Arc<ServerConfig>>,
}

impl Connection {
    fn serve(self, stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(POLL))?;
        let raw = stream.try_clone()?;
        let inner: Box<dyn Read + Send> = match &self.tls {
            None => Box::new(stream),
            Some(config) => {
                let conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
                Box::new(StreamOwned::new(conn, stream))
            }
        };
        let patient = Patient {
            inner,
            raw,
            shutdown: self.shutdown.clone(),
            last_data: Instant::now(),
            draining_since: None,
        };
        let mut reader = RecordReader::new(BufReader::with_capacity(64 << 10, patient), self.cap);
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
                Ok(None) => return Ok(()),
                Err(RecordError::BadHeader { record, source }) => {
                    self.malformed(&format!("record {record}: {source}"));
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

    fn malformed(&self, what: &str) {
        self.counters.add_in(1);
        self.counters.add_drop(Reason::Malformed, 1);
        tracing::warn!("input-tcp: {what}; skipped");
    }
}

/// Reads through the poll timeouts, and ends the stream gracefully after a stop.
struct Patient {
    inner: Box<dyn Read + Send>,
    raw: TcpStream,
    shutdown: Shutdown,
    last_data: Instant,
    draining_since: Option<Instant>,
}

impl Read for Patient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let draining = self.draining();
            if let Some(since) = draining {
                let idle = self.last_data.max(since).elapsed();
                if idle >= DRAIN_IDLE || since.elapsed() >= DRAIN_MAX {
                    return Ok(0);
                }
            }
            match self.inner.read(buf) {
                Ok(n) => {
                    self.last_data = Instant::now();
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Patient {
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
    }
}
