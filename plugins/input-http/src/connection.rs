//! One client connection: reads requests within their caps, records and answers them.

use crate::head::{parse_head, Body, RequestHead};
use crate::{MAX_CHUNK_LINE, MAX_HEAD, POLL, READ_CHUNK};
use crossbeam_channel::Sender;
use shadowtap_api::{now_ns, random_id, Counters, Kind, Message, Meta, Reason, Shutdown};
use shadowtap_listener::{Secret, Ticket, Warnings};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client that does not read its answers for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After an error answer, how long (and how much) the client's data is still read.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 1 << 20;

/// Why a request was not recorded.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The connection ended (closed, idle, or the run stopping) inside a request.
    #[error("connection ended inside a request {0}")]
    Incomplete(&'static str),
    /// A part of the request is longer than its cap.
    #[error("{what}")]
    Oversized {
        status: &'static str,
        what: &'static str,
    },
    /// The request does not parse.
    #[error("{0}")]
    Malformed(&'static str),
    /// No or a wrong bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One client connection.
pub(crate) struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub tx: Sender<Message>,
    pub shutdown: Shutdown,
    pub counters: Arc<Counters>,
    pub warnings: Arc<Warnings>,
    pub cap: usize,
    pub token: Option<Secret>,
    pub idle_timeout: Option<Duration>,
    /// Holds the connection's place and memory until it ends.
    pub _ticket: Ticket,
}

/// The read side: what was read and not used yet, and when the client last sent something.
struct Input {
    /// Bytes read; those before `used` are consumed (dropped when more is read, so taking
    /// many small lines does not move the rest each time).
    buf: Vec<u8>,
    used: usize,
    last_data: Instant,
    idled: bool,
}

impl Input {
    /// The bytes read and not consumed yet.
    fn data(&self) -> &[u8] {
        &self.buf[self.used..]
    }

    /// Consumes `n` bytes, returning them.
    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.used;
        self.used += n;
        &self.buf[start..self.used]
    }

    fn append(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.used);
        self.used = 0;
        self.buf.extend_from_slice(bytes);
    }
}

impl Connection {
    pub fn serve(mut self) -> io::Result<()> {
        self.stream.set_nonblocking(false)?;
        self.stream.set_read_timeout(Some(POLL))?;
        self.stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        self.stream.set_nodelay(true)?;
        let mut input = Input {
            buf: Vec::with_capacity(READ_CHUNK),
            used: 0,
            last_data: Instant::now(),
            idled: false,
        };
        loop {
            match self.request(&mut input) {
                Ok(Some(false)) => {}
                Ok(Some(true)) => return Ok(()),
                Ok(None) => {
                    if input.idled {
                        self.counters
                            .extra("connections closed (idle)")
                            .fetch_add(1, Relaxed);
                    }
                    return Ok(());
                }
                Err(failure) => return self.fail(failure, input.idled),
            }
        }
    }

    /// Reads, records and answers one request; `None` if the connection ended before one
    /// began, else whether the connection is to close.
    fn request(&mut self, input: &mut Input) -> Result<Option<bool>, Failure> {
        let Some(head) = self.read_head(input)? else {
            return Ok(None);
        };
        if let Some(token) = &self.token {
            if !head.bearer.as_deref().is_some_and(|b| token.matches(b)) {
                return Err(Failure::Unauthorized);
            }
        }
        if head.expect_continue && input.data().len() == head.len {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut request = input.take(head.len).to_vec();
        let limit = self.cap.max(head.len);
        let truncated = match head.body {
            Body::Length(n) => self.copy_body(input, &mut request, limit, n)?,
            Body::Chunked => self.chunked_body(input, &mut request, limit)?,
        };
        if truncated {
            self.counters.add_truncated(1);
        }
        let meta =
            Meta::new(Kind::Request, &random_id(), now_ns(), -1).expect("random ids are hex");
        if self.tx.send(Message::new(meta, request)).is_err() {
            self.reject("503 Service Unavailable")?;
            return Ok(Some(true));
        }
        let answer: &[u8] = if head.close {
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        };
        self.stream.write_all(answer)?;
        Ok(Some(head.close))
    }

    fn read_head(&mut self, input: &mut Input) -> Result<Option<RequestHead>, Failure> {
        loop {
            if !input.data().is_empty() {
                match parse_head(input.data()) {
                    Ok(Some(head)) if head.len <= MAX_HEAD => return Ok(Some(head)),
                    Ok(None) if input.data().len() <= MAX_HEAD => {}
                    Ok(_) => {
                        return Err(Failure::Oversized {
                            status: "431 Request Header Fields Too Large",
                            what: "request line and headers over 64 KiB",
                        })
                    }
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(Failure::Oversized {
                            status: "431 Request Header Fields Too Large",
                            what: "more than 128 headers",
                        })
                    }
                    Err(_) => return Err(Failure::Malformed("request head does not parse")),
                }
            }
            if self.read_more(input)? == 0 {
                return match input.data().is_empty() {
                    true => Ok(None),
                    false => Err(Failure::Incomplete("head")),
                };
            }
        }
    }

    /// Counts, answers and warns about a request that was not recorded.
    fn fail(&mut self, failure: Failure, idled: bool) -> io::Result<()> {
        let (reason, status) = match failure {
            Failure::Io(e) => return Err(e),
            Failure::Incomplete(_) => (Reason::Incomplete, None),
            Failure::Oversized { status, .. } => (Reason::Oversized, Some(status)),
            Failure::Malformed(_) => (Reason::Malformed, Some("400 Bad Request")),
            Failure::Unauthorized => (Reason::Unauthorized, Some("401 Unauthorized")),
        };
        self.counters.add_refused(reason, 1);
        let peer = self.peer;
        let when = if idled { " (idle timeout)" } else { "" };
        self.warnings
            .warn(|| format!("{peer}: {}: {failure}{when}", reason.as_str()));
        match status {
            Some(status) => {
                self.reject(status)?;
                self.linger();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Closes gently after an error answer: the client may still be sending, and closing
    /// with unread data would reset the connection and could destroy the answer in flight.
    fn linger(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        let mut chunk = [0u8; READ_CHUNK];
        while Instant::now() < deadline && discarded < LINGER_BYTES {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    }

    fn reject(&mut self, status: &str) -> io::Result<()> {
        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        self.stream.write_all(answer.as_bytes())
    }

    /// Reads more bytes into the input; 0 at EOF, shutdown or idle timeout.
    fn read_more(&mut self, input: &mut Input) -> io::Result<usize> {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            if self.shutdown.is_triggered() {
                return Ok(0);
            }
            if self
                .idle_timeout
                .is_some_and(|limit| input.last_data.elapsed() >= limit)
            {
                input.idled = true;
                return Ok(0);
            }
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    input.append(&chunk[..n]);
                    input.last_data = Instant::now();
                    return Ok(n);
                }
                Err(e) if shadowtap_listener::is_poll_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn need(&mut self, input: &mut Input) -> Result<(), Failure> {
        match self.read_more(input)? {
            0 => Err(Failure::Incomplete("body")),
            _ => Ok(()),
        }
    }

    /// Moves `n` body bytes from the connection to `request`, which keeps at most `limit`
    /// bytes (the rest is read and discarded); true if some were discarded.
    fn copy_body(
        &mut self,
        input: &mut Input,
        request: &mut Vec<u8>,
        limit: usize,
        mut n: u64,
    ) -> Result<bool, Failure> {
        let mut truncated = false;
        while n > 0 {
            if input.data().is_empty() {
                self.need(input)?;
            }
            let take = (input.data().len() as u64).min(n) as usize;
            truncated |= keep(request, input.take(take), limit);
            n -= take as u64;
        }
        Ok(truncated)
    }

    /// Takes one line (through `\n`, at most `max` bytes) from the input; appends it to
    /// `request` within `limit`; returns its content without the line end, and whether it
    /// was cut from the request.
    fn line(
        &mut self,
        input: &mut Input,
        request: &mut Vec<u8>,
        limit: usize,
        max: usize,
    ) -> Result<Option<(Vec<u8>, bool)>, Failure> {
        let mut scanned = 0;
        loop {
            let data = input.data();
            let window = &data[scanned..data.len().min(max)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                let line = input.take(scanned + i + 1);
                let cut = keep(request, line, limit);
                let content = line.strip_suffix(b"\n").unwrap_or(line);
                let content = content.strip_suffix(b"\r").unwrap_or(content);
                return Ok(Some((content.to_vec(), cut)));
            }
            scanned += window.len();
            if scanned >= max {
                return Ok(None);
            }
            self.need(input)?;
        }
    }

    /// Moves a chunked body, as received, to `request` (within `limit`).
    fn chunked_body(
        &mut self,
        input: &mut Input,
        request: &mut Vec<u8>,
        limit: usize,
    ) -> Result<bool, Failure> {
        let mut truncated = false;
        loop {
            let (line, cut) =
                self.line(input, request, limit, MAX_CHUNK_LINE)?
                    .ok_or(Failure::Oversized {
                        status: "400 Bad Request",
                        what: "chunk-size line over 4 KiB",
                    })?;
            truncated |= cut;
            let size =
                shadowtap_http1::chunk_size(&line).ok_or(Failure::Malformed("bad chunk size"))?;
            if size == 0 {
                return Ok(self.trailers(input, request, limit)? | truncated);
            }
            truncated |= self.copy_body(input, request, limit, size)?;
            let (end, cut) = self
                .line(input, request, limit, 2)?
                .ok_or(Failure::Malformed("bad chunk end"))?;
            if !end.is_empty() {
                return Err(Failure::Malformed("bad chunk end"));
            }
            truncated |= cut;
        }
    }

    /// Moves the trailer block (at most 64 KiB) through its blank line to `request`.
    fn trailers(
        &mut self,
        input: &mut Input,
        request: &mut Vec<u8>,
        limit: usize,
    ) -> Result<bool, Failure> {
        let oversized = Failure::Oversized {
            status: "431 Request Header Fields Too Large",
            what: "trailer block over 64 KiB",
        };
        let mut used = 0;
        let mut truncated = false;
        loop {
            let Some((line, cut)) = self.line(input, request, limit, MAX_HEAD - used)? else {
                return Err(oversized);
            };
            // The line, its `\r\n` and nothing else was taken from the input.
            used += line.len() + 2;
            truncated |= cut;
            if line.is_empty() {
                return Ok(truncated);
            }
            if used >= MAX_HEAD {
                return Err(oversized);
            }
        }
    }
}

/// Appends what fits of `bytes` to `request` within `limit`; true if some did not fit.
fn keep(request: &mut Vec<u8>, bytes: &[u8], limit: usize) -> bool {
    let room = limit.saturating_sub(request.len()).min(bytes.len());
    request.extend_from_slice(&bytes[..room]);
    room < bytes.len()
}
