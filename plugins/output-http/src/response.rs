//! Reading one HTTP/1.x response off a connection: the head with `httparse`, then the body
//! framed by the rules of RFC 9112 §6.3 — no body for `HEAD`, 1xx, 204 and 304; `chunked`
//! (with trailers); `Content-Length`; otherwise until the connection closes. Interim 1xx
//! responses (`100 Continue`, `103 Early Hints`) are skipped. The bytes are kept verbatim
//! (up to a limit) for `--output-http-track-response`.

use std::fmt;
use std::io::{self, Read};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 << 10;
/// Largest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 << 10;

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

enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
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
            let framing = if head_request
                || (100..200).contains(&head.status)
                || head.status == 204
                || head.status == 304
            {
                Framing::None
            } else {
                head.framing
            };
            let mut reusable = head.keep_alive && head.status != 101;
            match framing {
                Framing::None => {}
                Framing::Length(n) => self.copy(r, n, &mut raw, keep)?,
                Framing::Chunked => self.chunked(r, &mut raw, keep)?,
                Framing::UntilClose => {
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
        loop {
            if self.start < self.end {
                if let Some(head) = parse_head(&self.buf[self.start..self.end])? {
                    return Ok(head);
                }
                if self.end - self.start > MAX_HEAD {
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

    /// One line (through `\n`), recorded; returns its length without the line ending.
    fn line(
        &mut self,
        r: &mut impl Read,
        raw: &mut Vec<u8>,
        keep: usize,
    ) -> Result<(usize, usize), ResponseError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line_start = self.start;
                record(raw, &pending[..=i], keep);
                self.start += i + 1;
                let mut content = i;
                if content > 0 && self.buf[line_start + content - 1] == b'\r' {
                    content -= 1;
                }
                return Ok((line_start, content));
            }
            if pending.len() > MAX_LINE {
                return Err(ResponseError::Bad("chunk line too long".into()));
            }
            self.fill_or_closed(r)?;
        }
    }

    fn chunked(
        &mut self,
        r: &mut impl Read,
        raw: &mut Vec<u8>,
        keep: usize,
    ) -> Result<(), ResponseError> {
        loop {
            let (at, len) = self.line(r, raw, keep)?;
            let line = &self.buf[at..at + len];
            let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
            let size_text = std::str::from_utf8(size_text)
                .map_err(|_| ResponseError::Bad("bad chunk size".into()))?
                .trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| ResponseError::Bad(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailer section, ended by an empty line.
                loop {
                    let (_, len) = self.line(r, raw, keep)?;
                    if len == 0 {
                        return Ok(());
                    }
                }
            }
            self.copy(r, size, raw, keep)?;
            let (_, len) = self.line(r, raw, keep)?;
            if len != 0 {
                return Err(ResponseError::Bad("chunk data longer than its size".into()));
            }
        }
    }
}

struct Head {
    len: usize,
    status: u16,
    keep_alive: bool,
    framing: Framing,
    location: Option<String>,
}

fn parse_head(bytes: &[u8]) -> Result<Option<Head>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ResponseError::Bad(e.to_string())),
    };
    let status = response.code.unwrap_or_default();
    let http11 = response.version == Some(1);
    let mut keep_alive = http11;
    let mut length = None;
    let mut transfer_encoding: Option<bool> = None;
    let mut location = None;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ResponseError::Bad("invalid Content-Length".into()))?;
            if length.is_some_and(|l| l != value) {
                return Err(ResponseError::Bad("conflicting Content-Length".into()));
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default();
            transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("location") {
            location = Some(String::from_utf8_lossy(header.value).into_owned());
        }
    }
    let framing = match (transfer_encoding, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::UntilClose,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::UntilClose,
    };
    Ok(Some(Head {
        len,
        status,
        keep_alive,
        framing,
        location,
    }))
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
}
