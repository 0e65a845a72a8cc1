//! Reading one HTTP/1.x response off a connection with the http1 toolkit: the head, then the
//! body framed by the rules of RFC 9112 §6.3 — no body for `HEAD`, 1xx, 204 and 304; `chunked`
//! (with trailers, found by the toolkit's chunked scanner); `Content-Length`; otherwise until
//! the connection closes. Interim 1xx
//! responses (`100 Continue`, `103 Early Hints`) are skipped. The bytes are kept verbatim
//! (up to a limit) for `--output-http-track-response`.

use shadowtap_http1::{self as http1, headers, BodyKind, ChunkProgress, Chunked, Method, Role};
use std::fmt;
use std::io::{self, Read};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 << 10;

/// One complete response.
#[derive(Debug)]
pub struct Response {
    /// Status code of the final response.
    pub status: u16,
    /// The response as received (interim responses included), cut at the keep limit.
    pub raw: Vec<u8>,
    /// The connection can carry another request.
    pub reusable: bool,
    /// The `Location` header, for redirects.
    pub location: Option<String>,
}

/// Why a response could not be read.
#[derive(Debug)]
pub enum ResponseError {
    /// The socket failed (timeouts included).
    Io(io::Error),
    /// The peer closed the connection before the response was complete.
    Closed,
    /// Not a valid HTTP/1.x response.
    Bad(String),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Io(e) => write!(f, "{e}"),
            ResponseError::Closed => {
                write!(f, "connection closed before the response was complete")
            }
            ResponseError::Bad(why) => write!(f, "bad response: {why}"),
        }
    }
}

impl From<io::Error> for ResponseError {
    fn from(e: io::Error) -> Self {
        ResponseError::Io(e)
    }
}

/// A connection's read buffer and response parser.
#[derive(Debug)]
pub struct ResponseReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    received_any: bool,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader {
            buf: vec![0; 16 << 10],
            start: 0,
            end: 0,
            received_any: false,
        }
    }
}

fn record(raw: &mut Vec<u8>, bytes: &[u8], keep: usize) {
    let room = keep.saturating_sub(raw.len());
    raw.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl ResponseReader {
    /// Starts a new exchange (clears [`ResponseReader::received_any`]).
    pub fn begin(&mut self) {
        self.received_any = self.start < self.end;
    }

    /// True if any byte of the current response has arrived (then a retry is unsafe).
    pub fn received_any(&self) -> bool {
        self.received_any
    }

    /// Reads into the buffer; returns the number of bytes read (0 at EOF).
    fn fill(&mut self, r: &mut impl Read) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        loop {
            match r.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    if n > 0 {
                        self.received_any = true;
                    }
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn fill_or_closed(&mut self, r: &mut impl Read) -> Result<(), ResponseError> {
        match self.fill(r)? {
            0 => Err(ResponseError::Closed),
            _ => Ok(()),
        }
    }

    /// Reads one response to a request (`head_request`: it was a HEAD), keeping at most
    /// `keep` bytes of it.
    pub fn read(
        &mut self,
        r: &mut impl Read,
        head_request: bool,
        keep: usize,
    ) -> Result<Response, ResponseError> {
        let mut raw = Vec::new();
        loop {
            let head = self.read_head(r)?;
            record(&mut raw, &self.buf[self.start..self.start + head.len], keep);
            self.start += head.len;
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            let request = if head_request {
                Method::Head
            } else {
                Method::Other
            };
            let framing = http1::response_body(&head.framing, request);
            let mut reusable = head.keep_alive && head.status != 101;
            match framing {
                BodyKind::Empty => {}
                BodyKind::Length(n) => self.copy(r, n, &mut raw, keep)?,
                BodyKind::Chunked => self.chunked(r, &mut raw, keep)?,
                BodyKind::UntilClose => {
                    reusable = false;
                    loop {
                        record(&mut raw, &self.buf[self.start..self.end], keep);
                        self.start = self.end;
                        if self.fill(r)? == 0 {
                            break;
                        }
                    }
                }
            }
            if self.start != self.end {
                // Bytes beyond the response: the connection is out of step.
                reusable = false;
                self.start = self.end;
            }
            return Ok(Response {
                status: head.status,
                raw,
                reusable,
                location: head.location,
            });
        }
    }

    fn read_head(&mut self, r: &mut impl Read) -> Result<Head, ResponseError> {
        // Where to resume the search for the head's end, relative to `start`.
        let mut resume = 0;
        loop {
            if self.start < self.end {
                let pending = &self.buf[self.start..self.end];
                if http1::status_line(pending) == http1::Verdict::No {
                    return Err(ResponseError::Bad("not an HTTP/1.x status line".into()));
                }
                match http1::find_head_end(pending, resume) {
                    Ok(len) => return parse_head(&pending[..len]),
                    Err(at) => resume = at,
                }
                if pending.len() > MAX_HEAD {
                    return Err(ResponseError::Bad("response head too large".into()));
                }
            }
            self.fill_or_closed(r)?;
        }
    }

    fn copy(
        &mut self,
        r: &mut impl Read,
        mut n: u64,
        raw: &mut Vec<u8>,
        keep: usize,
    ) -> Result<(), ResponseError> {
        while n > 0 {
            if self.start == self.end {
                self.fill_or_closed(r)?;
            }
            let take = ((self.end - self.start) as u64).min(n) as usize;
            record(raw, &self.buf[self.start..self.start + take], keep);
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Copies a chunked body, as received, through its last trailer line.
    fn chunked(
        &mut self,
        r: &mut impl Read,
        raw: &mut Vec<u8>,
        keep: usize,
    ) -> Result<(), ResponseError> {
        let mut state = Chunked::Size;
        loop {
            let mut pos = self.start;
            let progress = http1::scan_chunked(&mut state, &self.buf[..self.end], &mut pos);
            record(raw, &self.buf[self.start..pos], keep);
            self.start = pos;
            match progress {
                ChunkProgress::Done => return Ok(()),
                ChunkProgress::NeedMore => self.fill_or_closed(r)?,
                ChunkProgress::Invalid => {
                    return Err(ResponseError::Bad("invalid chunked coding".into()))
                }
            }
        }
    }
}

struct Head {
    len: usize,
    status: u16,
    keep_alive: bool,
    framing: http1::Head,
    location: Option<String>,
}

/// Reads a complete response head (through its blank line).
fn parse_head(block: &[u8]) -> Result<Head, ResponseError> {
    let framing = http1::parse_head(Role::Server, block).map_err(|e| {
        ResponseError::Bad(match e {
            http1::HeadError::Syntax => "response head does not parse".into(),
            http1::HeadError::ContentLength => "invalid or conflicting Content-Length".into(),
        })
    })?;
    let http10 =
        headers::status_line(block).is_some_and(|l| l.version.eq_ignore_ascii_case(b"HTTP/1.0"));
    let mut keep_alive = !http10;
    for field in headers::find_all(block, b"connection") {
        for token in headers::list(field.value) {
            if token.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                keep_alive = true;
            }
        }
    }
    let location =
        headers::value(block, b"location").map(|v| String::from_utf8_lossy(v).into_owned());
    Ok(Head {
        len: block.len(),
        status: framing.status,
        keep_alive,
        framing,
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, like a slow network.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn read_all(bytes: &[u8], head: bool) -> Result<Response, ResponseError> {
        for step in [1, 3, 7, 4096] {
            let mut reader = ResponseReader::default();
            let result = reader.read(&mut Trickle(bytes, step), head, usize::MAX);
            if step == 4096 {
                return result;
            }
            if let Ok(response) = &result {
                let again = ResponseReader::default()
                    .read(&mut Trickle(bytes, 4096), head, usize::MAX)
                    .unwrap();
                assert_eq!(response.raw, again.raw);
            }
        }
        unreachable!()
    }

    #[test]
    fn content_length() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let response = read_all(bytes, false).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.raw, bytes);
        assert!(response.reusable);
    }

    #[test]
    fn chunked_with_trailers() {
        let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                      5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let response = read_all(bytes, false).unwrap();
        assert_eq!(response.raw, &bytes[..]);
        assert!(response.reusable);
    }

    #[test]
    fn close_delimited() {
        let bytes = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
        let response = read_all(bytes, false).unwrap();
        assert_eq!(response.raw, &bytes[..]);
        assert!(!response.reusable);
    }

    #[test]
    fn no_body_cases() {
        for bytes in [
            &b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"[..],
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        ] {
            let response = read_all(bytes, false).unwrap();
            assert!(response.reusable);
            assert_eq!(response.raw, bytes);
        }
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let response = read_all(bytes, true).unwrap();
        assert!(response.reusable);
    }

    #[test]
    fn interim_responses_are_skipped() {
        let bytes =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let response = read_all(bytes, false).unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.raw, &bytes[..]);
    }

    #[test]
    fn connection_reuse_rules() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(!read_all(close, false).unwrap().reusable);
        let http10 = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!read_all(http10, false).unwrap().reusable);
        let http10_ka = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert!(read_all(http10_ka, false).unwrap().reusable);
        let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n";
        let response = read_all(switching, false).unwrap();
        assert_eq!(response.status, 101);
        assert!(!response.reusable);
    }

    #[test]
    fn redirect_location() {
        let bytes = b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            read_all(bytes, false).unwrap().location.as_deref(),
            Some("/next")
        );
    }

    #[test]
    fn keep_limit_cuts_the_copy_only() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let mut reader = ResponseReader::default();
        let response = reader.read(&mut &bytes[..], false, 10).unwrap();
        assert_eq!(response.raw, &bytes[..10]);
        assert!(response.reusable);
    }

    #[test]
    fn truncated_and_bad() {
        let mut reader = ResponseReader::default();
        let err = reader
            .read(
                &mut &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhe"[..],
                false,
                99,
            )
            .unwrap_err();
        assert!(matches!(err, ResponseError::Closed));
        assert!(reader.received_any());
        let mut reader = ResponseReader::default();
        let err = reader.read(&mut &b""[..], false, 99).unwrap_err();
        assert!(matches!(err, ResponseError::Closed));
        assert!(!reader.received_any());
        let err = ResponseReader::default()
            .read(&mut &b"SSH-2.0-OpenSSH\r\n\r\n"[..], false, 99)
            .unwrap_err();
        assert!(matches!(err, ResponseError::Bad(_)));
        let err = ResponseReader::default()
            .read(
                &mut &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
                false,
                99,
            )
            .unwrap_err();
        assert!(matches!(err, ResponseError::Bad(_)));
    }

    #[test]
    fn hostile_responses() {
        let bad = |bytes: &[u8]| {
            let result = ResponseReader::default().read(&mut &bytes[..], false, 99);
            assert!(
                matches!(result, Err(ResponseError::Bad(_))),
                "{bytes:?}: {result:?}"
            );
        };
        bad(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n");
        bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX");
        bad(b"\x00HTTP/1.1 200 OK\r\n\r\n");
        // A chunk-size line that never ends, and a head that never ends, are cut at their caps.
        let mut endless = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1".to_vec();
        endless.extend(std::iter::repeat_n(b'0', 1 << 20));
        bad(&endless);
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.extend(std::iter::repeat_n(b'x', 1 << 20));
        bad(&head);
        // A huge stated chunk is read as it arrives, never allocated.
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\nab";
        let err = ResponseReader::default()
            .read(&mut &huge[..], false, 99)
            .unwrap_err();
        assert!(matches!(err, ResponseError::Closed));
        // Bare-LF lines frame as CRLF ones do.
        let lf = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nab\n0\n\n";
        let response = read_all(lf, false).unwrap();
        assert_eq!(response.raw, &lf[..]);
        assert!(response.reusable);
    }
}
