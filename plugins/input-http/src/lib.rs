//! `input-http`: an HTTP/1.1 listener that records every request it receives, so services
//! can push traffic to shadowtap.
//!
//! Each request is emitted exactly as received (request line, headers, body — chunked bodies
//! stay chunked) as a kind-1 message with a random 24-hex id, the time it was complete, and
//! latency -1; then it is answered `200 OK` with an empty body (GoReplay answered `OK\n` and
//! re-serialised the request). Keep-alive and pipelining work; `Expect: 100-continue` gets its
//! `100 Continue`; HTTP/1.0 and `Connection: close` requests are answered with
//! `Connection: close`. A body larger than `--copy-buffer-size` is kept only up to that size
//! (counted as truncated).
//!
//! Back-pressure instead of loss: the request is answered only once the pipeline accepted it
//! (`emit`, blocking), so a slow output slows the clients down rather than dropping their
//! requests (declared `Backpressure::Wait`, which the engine obeys up to the outputs).
//!
//! Flags: `--input-http ADDR` (repeatable; `127.0.0.1:8080`, `:8080` = all interfaces).
//! One thread per connection.
//!
//! Caps on what a client sends, each checked before anything is kept: request line and headers
//! 64 KiB and 128 headers (else `431`), a chunk-size line 4 KiB with its extensions (else `400`), the trailer
//! block 64 KiB (else `431`); each is counted as one message dropped `oversized` and the
//! connection is closed. The request as a whole (chunk lines included) is kept up to `--copy-buffer-size`
//! and the rest read and discarded (counted truncated). A request that does not parse gets
//! `400` and is counted `malformed` — so does one whose body length cannot be known (RFC 9112
//! §6.3: conflicting or invalid `Content-Length`, a last transfer coding other than `chunked`;
//! the framing rules are the http1 toolkit's); one left unfinished at close or idle timeout
//! `incomplete`.
//!
//! Limits (see `shadowtap-listener`): `--input-http-max-connections N` (default 256; more get
//! `503`, counted `connection limit`), `--input-http-max-memory SIZE` (default 512mb; each
//! connection reserves twice `--copy-buffer-size` plus 144 KiB; one the budget cannot cover
//! gets `503`, counted `memory budget`), `--input-http-idle-timeout DURATION` (default 60s,
//! `0` = never). `--input-http-auth-token TOKEN` (or `SHADOWTAP_INPUT_HTTP_AUTH_TOKEN`, or
//! `--input-http-auth-token-file FILE`) requires `Authorization: Bearer <token>` on every
//! request, compared in constant time; others get `401` and are counted `unauthorized`.
//! Warnings a client can provoke name its address, once, then one "N more like this" line per
//! 10 s; a token never appears in them.
//!
//! Example: `shadowtap --input-http :28019 --output-file pushed.gor`, then
//! `curl -d 'a=1' http://localhost:28019/submit`.
#![deny(missing_docs)]

mod connection;
mod head;

#[doc(hidden)]
pub mod fuzzing;

use connection::Connection;
use crossbeam_channel::{bounded, Sender};
use shadowtap_api::values::{duration_value, size_value};
use shadowtap_api::{
    catch_panic, instance_label, register_input, CoreSettings, Input, InputContext, InputSpec,
    Message, PluginError,
};
use shadowtap_listener::{refuse, Admission, Secret, Warnings};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often blocked accept and reads look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);
/// Largest request head (request line and headers) accepted; also the trailer block's cap.
const MAX_HEAD: usize = 64 << 10;
/// Largest chunk-size line accepted (with its extensions).
const MAX_CHUNK_LINE: usize = 4 << 10;
/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 16 << 10;
/// Warnings a client can provoke: one line per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// How long queued requests may still be handed on after shutdown began.
const DRAIN: Duration = Duration::from_secs(2);

/// Flags of `input-http`.
#[derive(clap::Args, Debug)]
pub struct InputHttpArgs {
    /// Listen for HTTP requests on ADDR (e.g. :8080) and record each one; answers 200
    #[arg(id = "input-http", long = "input-http", value_name = "ADDR")]
    pub input_http: Vec<String>,
    /// Require `Authorization: Bearer <TOKEN>` on every request (others get 401)
    #[arg(
        id = "input-http-auth-token",
        long = "input-http-auth-token",
        env = "SHADOWTAP_INPUT_HTTP_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub input_http_auth_token: Option<String>,
    /// Read --input-http-auth-token from FILE
    #[arg(
        id = "input-http-auth-token-file",
        long = "input-http-auth-token-file",
        value_name = "FILE"
    )]
    pub input_http_auth_token_file: Option<PathBuf>,
    /// Connections served at once per listener; more get 503
    #[arg(
        id = "input-http-max-connections",
        long = "input-http-max-connections",
        default_value_t = 256,
        value_name = "N"
    )]
    pub input_http_max_connections: usize,
    /// Memory all connections of a listener may reserve (each: 2 x --copy-buffer-size + 144kb)
    #[arg(
        id = "input-http-max-memory",
        long = "input-http-max-memory",
        value_parser = size_value,
        default_value = "512mb",
        value_name = "SIZE"
    )]
    pub input_http_max_memory: u64,
    /// Close a connection that sent nothing for this long (0 = never)
    #[arg(
        id = "input-http-idle-timeout",
        long = "input-http-idle-timeout",
        value_parser = duration_value,
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub input_http_idle_timeout: Duration,
}

/// What every connection of a listener shares.
struct Policy {
    token: Option<Secret>,
    idle_timeout: Option<Duration>,
    max_connections: usize,
    max_memory: u64,
}

struct HttpInput {
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

/// The memory one connection reserves: a request (head, body, trailers) growing to its cap
/// and the read buffer.
fn connection_cost(cap: usize) -> u64 {
    (2 * (cap + 2 * MAX_HEAD) + READ_CHUNK) as u64
}

fn policy(args: &InputHttpArgs, settings: &CoreSettings) -> Result<Policy, PluginError> {
    let cost = connection_cost(settings.copy_buffer_size);
    Admission::check_budget(args.input_http_max_memory, cost)
        .map_err(|e| PluginError::usage("--input-http-max-memory", e))?;
    let token = Secret::load(
        "--input-http-auth-token",
        args.input_http_auth_token.as_deref(),
        args.input_http_auth_token_file.as_deref(),
    )
    .map_err(|e| PluginError::usage("--input-http-auth-token", e.to_string()))?;
    if args.input_http_max_connections == 0 {
        return Err(PluginError::usage(
            "--input-http-max-connections",
            "must be at least 1",
        ));
    }
    Ok(Policy {
        token,
        idle_timeout: Some(args.input_http_idle_timeout).filter(|t| !t.is_zero()),
        max_connections: args.input_http_max_connections,
        max_memory: args.input_http_max_memory,
    })
}

fn build(args: InputHttpArgs, settings: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    if args.input_http.is_empty() {
        return Ok(Vec::new());
    }
    let policy = Arc::new(policy(&args, settings)?);
    args.input_http
        .iter()
        .map(|value| {
            let address = parse_address(value);
            let listener = TcpListener::bind(&address)
                .map_err(|e| PluginError::io(format!("--input-http: listening on {value}"), e))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| PluginError::io("--input-http: configuring the listener", e))?;
            let address = listener
                .local_addr()
                .map_err(|e| PluginError::io("--input-http", e))?;
            tracing::info!(%address, "input-http listening");
            Ok(InputSpec {
                label: instance_label("input-http", value),
                plugin: Box::new(HttpInput {
                    listener,
                    address,
                    policy: policy.clone(),
                }),
                backpressure: shadowtap_api::Backpressure::Wait,
                limit: None,
            })
        })
        .collect()
}

register_input! {
    name: "input-http",
    about: "Listens for HTTP requests, records each one and answers 200",
    args: InputHttpArgs,
    build: build,
}

impl Input for HttpInput {
    fn run(self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        let (tx, rx) = bounded::<Message>(256);
        let cap = cx.settings().copy_buffer_size;
        let listener = Listener {
            admission: Admission::new(self.policy.max_connections, self.policy.max_memory),
            cost: connection_cost(cap),
            warnings: Arc::new(Warnings::new("input-http", WARN_INTERVAL)),
            cap,
        };
        tracing::debug!(address = %self.address, "input-http accepting");
        while !cx.is_stopping() {
            self.accept_all(&listener, &tx, &cx);
            if cx.forward_ready(&rx, POLL).is_err() {
                return Ok(());
            }
        }
        drop(self.listener);
        drop(tx);
        // Connections notice the shutdown within POLL; pass on what they still hand over.
        cx.forward_until(&rx, Instant::now() + DRAIN);
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

impl HttpInput {
    fn accept_all(&self, listener: &Listener, tx: &Sender<Message>, cx: &InputContext) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
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
                    let _ = stream.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
            };
            let connection = Connection {
                stream,
                peer,
                tx: tx.clone(),
                shutdown: cx.shutdown().clone(),
                counters: cx.counters().clone(),
                warnings: listener.warnings.clone(),
                cap: listener.cap,
                token: self.policy.token.clone(),
                idle_timeout: self.policy.idle_timeout,
                _ticket: ticket,
            };
            let counters = cx.counters().clone();
            let spawned = std::thread::Builder::new()
                .name(format!("input-http {peer}"))
                .spawn(move || {
                    // A panic ends this connection only, counted as an error (exit 1).
                    if let Some(Err(e)) = catch_panic(&counters, || connection.serve()) {
                        tracing::debug!(%peer, error = %e, "input-http connection ended");
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

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::testkit;
    use shadowtap_api::{Kind, Ledger, Role, Shutdown};
    use std::io::BufRead;
    use std::net::TcpStream;

    #[test]
    fn conformance() {
        testkit::check_conformance("input-http", &[]);
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address(":8080"), "0.0.0.0:8080");
        assert_eq!(parse_address("127.0.0.1:1"), "127.0.0.1:1");
        let err = testkit::build_error("input-http", &["--input-http", "nonsense"]);
        assert!(err.contains("--input-http"), "{err}");
    }

    #[test]
    fn records_requests_exactly_and_answers() {
        // Bind our own port first to know it, then hand it to the plugin.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let spec = testkit::build_inputs("input-http", &["--input-http", &address])
            .unwrap()
            .remove(0);
        let ledger = Ledger::new();
        let counters = ledger.register(spec.label.clone(), Role::Input);
        let (trigger, shutdown) = Shutdown::new();
        let (tx, rx) = crossbeam_channel::unbounded();
        let cx = InputContext::new(tx, counters.clone(), shutdown, None, CoreSettings::new(90));
        let input = spec.plugin;
        let handle = std::thread::spawn(move || input.run(cx).unwrap());

        let mut client = TcpStream::connect(&address).unwrap();
        let first =
            "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Odd-CASE: v\r\nContent-Length: 3\r\n\r\nabc";
        let second = "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n";
        let third = "GET /big HTTP/1.0\r\nContent-Length: 100\r\n\r\n";
        client.write_all(first.as_bytes()).unwrap();
        client.write_all(second.as_bytes()).unwrap();
        client.write_all(third.as_bytes()).unwrap();
        client.write_all(&[b'z'; 100]).unwrap();
        let mut reader = io::BufReader::new(client);
        let mut statuses = 0;
        let mut closed = false;
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 0 {
            statuses += line.starts_with("HTTP/1.1 200 OK") as usize;
            closed |= line.starts_with("Connection: close");
            line.clear();
        }
        assert_eq!(statuses, 3);
        assert!(closed, "HTTP/1.0 gets Connection: close");

        let mut got: Vec<Message> = Vec::new();
        while got.len() < 3 {
            got.extend(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        }
        assert_eq!(got[0].payload, first.as_bytes());
        assert_eq!(got[1].payload, second.as_bytes());
        assert_eq!(got[2].payload.len(), 90, "cut at the copy buffer size");
        assert_eq!(got[0].kind(), Kind::Request);
        assert_eq!(got[0].id().len(), 24);
        assert_eq!(got[0].meta.latency(), Some(-1));
        assert_ne!(got[0].id(), got[1].id());

        trigger.trigger();
        handle.join().unwrap();
        assert_eq!(counters.snapshot().passed, 3);
        assert_eq!(counters.snapshot().truncated, 1);
    }
}
