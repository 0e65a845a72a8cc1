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
//! One thread per connection, at most 1024 connections per listener (more get `503`).
//!
//! Example: `shadowtap --input-http :28019 --output-file pushed.gor`, then
//! `curl -d 'a=1' http://localhost:28019/submit`.
#![deny(missing_docs)]

use crossbeam_channel::{bounded, Sender};
use shadowtap_api::{
    instance_label, now_ns, random_id, register_input, CoreSettings, Counters, Input, InputContext,
    InputSpec, Kind, Message, Meta, PluginError, Shutdown,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often blocked accept and reads look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);
/// Connections served at once per listener.
const MAX_CONNECTIONS: usize = 1024;
/// Largest request head accepted.
const MAX_HEAD: usize = 64 << 10;
/// How long queued requests may still be handed on after shutdown began.
const DRAIN: Duration = Duration::from_secs(2);

/// Flags of `input-http`.
#[derive(clap::Args, Debug)]
pub struct InputHttpArgs {
    /// Listen for HTTP requests on ADDR (e.g. :8080) and record each one; answers 200
    #[arg(id = "input-http", long = "input-http", value_name = "ADDR")]
    pub input_http: Vec<String>,
}

struct HttpInput {
    listener: TcpListener,
    address: SocketAddr,
}

fn parse_address(value: &str) -> String {
    if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    }
}

fn build(args: InputHttpArgs, _: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
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
                plugin: Box::new(HttpInput { listener, address }),
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
        let active = Arc::new(AtomicUsize::new(0));
        let cap = cx.settings().copy_buffer_size;
        tracing::debug!(address = %self.address, "input-http accepting");
        while !cx.is_stopping() {
            accept_all(&self.listener, &tx, &active, &cx, cap);
            if cx.forward_ready(&rx, POLL).is_err() {
                return Ok(());
            }
        }
        drop(self.listener);
        drop(tx);
        // Connections notice the shutdown within POLL; pass on what they still hand over.
        cx.forward_until(&rx, Instant::now() + DRAIN);
        Ok(())
    }
}

fn accept_all(
    listener: &TcpListener,
    tx: &Sender<Message>,
    active: &Arc<AtomicUsize>,
    cx: &InputContext,
    cap: usize,
) {
    loop {
        let (mut stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                tracing::warn!(error = %e, "input-http: accept failed");
                return;
            }
        };
        if active.load(Relaxed) >= MAX_CONNECTIONS {
            cx.counters()
                .extra("connections refused (limit)")
                .fetch_add(1, Relaxed);
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            continue;
        }
        active.fetch_add(1, Relaxed);
        let connection = Connection {
            stream,
            tx: tx.clone(),
            shutdown: cx.shutdown().clone(),
            counters: cx.counters().clone(),
            cap,
        };
        let active = active.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("input-http {peer}"))
            .spawn(move || {
                if let Err(e) = connection.serve() {
                    tracing::debug!(%peer, error = %e, "input-http connection ended");
                }
                active.fetch_sub(1, Relaxed);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "input-http: cannot start a connection thread");
        }
    }
}

/// One client connection.
struct Connection {
    stream: TcpStream,
    tx: Sender<Message>,
    shutdown: Shutdown,
    counters: Arc<Counters>,
    cap: usize,
}

/// How a request's body is delimited.
enum Body {
    Length(u64),
    Chunked,
}

struct RequestHead {
    len: usize,
    body: Body,
    close: bool,
    expect_continue: bool,
}

impl Connection {
    fn serve(mut self) -> io::Result<()> {
        self.stream.set_nonblocking(false)?;
        self.stream.set_read_timeout(Some(POLL))?;
        self.stream.set_nodelay(true)?;
        let mut buf = Vec::with_capacity(8 << 10);
        loop {
            let head = loop {
                if !buf.is_empty() {
                    match parse_head(&buf) {
                        Ok(Some(head)) => break head,
                        Ok(None) if buf.len() > MAX_HEAD => {
                            return self.reject("431 Request Header Fields Too Large")
                        }
                        Ok(None) => {}
                        Err(_) => return self.reject("400 Bad Request"),
                    }
                }
                if self.read_more(&mut buf)? == 0 {
                    return Ok(());
                }
            };
            if head.expect_continue && buf.len() == head.len {
                self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            let mut request = buf.drain(..head.len).collect::<Vec<u8>>();
            let truncated = match head.body {
                Body::Length(n) => self.copy_body(&mut buf, &mut request, n)?,
                Body::Chunked => self.chunked_body(&mut buf, &mut request)?,
            };
            if truncated {
                self.counters.add_truncated(1);
            }
            let meta =
                Meta::new(Kind::Request, &random_id(), now_ns(), -1).expect("random ids are hex");
            if self.tx.send(Message::new(meta, request)).is_err() {
                return self.reject("503 Service Unavailable");
            }
            let answer: &[u8] = if head.close {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            };
            self.stream.write_all(answer)?;
            if head.close {
                return Ok(());
            }
        }
    }

    fn reject(&mut self, status: &str) -> io::Result<()> {
        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        self.stream.write_all(answer.as_bytes())
    }

    /// Reads more bytes into `buf`; 0 at EOF or shutdown. Waits while the client is idle.
    fn read_more(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            if self.shutdown.is_triggered() {
                return Ok(0);
            }
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
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

    fn need(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if self.read_more(buf)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a request",
            ));
        }
        Ok(())
    }

    /// Moves `n` body bytes from the connection to `request` (beyond the cap they are read
    /// and discarded); true if some were discarded.
    fn copy_body(
        &mut self,
        buf: &mut Vec<u8>,
        request: &mut Vec<u8>,
        mut n: u64,
    ) -> io::Result<bool> {
        let mut truncated = false;
        while n > 0 {
            if buf.is_empty() {
                self.need(buf)?;
            }
            let take = (buf.len() as u64).min(n) as usize;
            let room = self.cap.saturating_sub(request.len()).min(take);
            request.extend_from_slice(&buf[..room]);
            truncated |= room < take;
            buf.drain(..take);
            n -= take as u64;
        }
        Ok(truncated)
    }

    /// Moves one line (through `\n`) to `request`; returns its content without the line end.
    fn line(&mut self, buf: &mut Vec<u8>, request: &mut Vec<u8>) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                request.extend_from_slice(&line);
                let content = line.strip_suffix(b"\n").unwrap_or(&line);
                return Ok(content.strip_suffix(b"\r").unwrap_or(content).to_vec());
            }
            if buf.len() > 8 << 10 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk line too long",
                ));
            }
            self.need(buf)?;
        }
    }

    /// Moves a chunked body, as received, to `request`.
    fn chunked_body(&mut self, buf: &mut Vec<u8>, request: &mut Vec<u8>) -> io::Result<bool> {
        let mut truncated = false;
        loop {
            let line = self.line(buf, request)?;
            let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                while !self.line(buf, request)?.is_empty() {}
                return Ok(truncated);
            }
            truncated |= self.copy_body(buf, request, size)?;
            if !self.line(buf, request)?.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunk end"));
            }
        }
    }
}

fn parse_head(buf: &[u8]) -> Result<Option<RequestHead>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let http10 = request.version == Some(0);
    let mut close = http10;
    let mut length = 0;
    let mut chunked = false;
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(httparse::Error::HeaderValue)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = header.value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    Ok(Some(RequestHead {
        len,
        body: if chunked {
            Body::Chunked
        } else {
            Body::Length(length)
        },
        close,
        expect_continue,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::testkit;
    use shadowtap_api::{Ledger, Role};
    use std::io::BufRead;

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
