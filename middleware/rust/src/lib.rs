//! Helpers for writing shadowtap (and GoReplay) middlewares; the only dependency is shadowtap's
//! HTTP/1 toolkit (`shadowtap-http1`), for the header edits.
//!
//! A middleware reads one message per line on stdin — the lowercase hex of
//! `<header line>\n<payload>` — and writes the messages it wants to pass on, in the same
//! encoding, to stdout. A message it does not write is dropped.
//!
//! ```no_run
//! use shadowtap_middleware::{run, REQUEST};
//!
//! fn main() -> std::io::Result<()> {
//!     run(|mut msg| {
//!         if msg.kind() == REQUEST {
//!             msg.set_header("X-Shadow", "1");
//!         }
//!         Some(msg) // None drops the message
//!     })
//! }
//! ```
//!
//! A [`Message`] keeps its header line byte-exact; [`Message::kind`], [`Message::id`],
//! [`Message::timestamp`] and [`Message::latency`] are views of it, and the setters rewrite
//! one field only. The HTTP helpers in [`http`] work on any payload.
#![deny(missing_docs)]

pub mod http;

use std::fmt;
use std::io::{self, BufRead, BufWriter, Write};
use std::ops::Range;

/// Kind 1: a request.
pub const REQUEST: u8 = 1;
/// Kind 2: the response captured from the original server.
pub const RESPONSE: u8 = 2;
/// Kind 3: the response to a replayed request.
pub const REPLAYED_RESPONSE: u8 = 3;

/// Why a line or header line does not follow the middleware protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line holds no hex digits.
    Empty,
    /// An odd number of hex digits.
    OddLength(usize),
    /// A byte that is not a hex digit, at a 1-based column.
    NotHex {
        /// 1-based column in the line.
        column: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The decoded bytes hold no `\n` ending a header line.
    NoHeaderLine,
    /// The header line is not `<kind digit> <id> <timestamp> [<latency>] [...]`.
    BadHeaderLine(String),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Empty => write!(f, "empty line"),
            LineError::OddLength(n) => write!(f, "odd number of hex digits ({n})"),
            LineError::NotHex { column, byte } => {
                write!(f, "byte {byte:#04x} at column {column} is not a hex digit")
            }
            LineError::NoHeaderLine => write!(f, "no header line (no newline in the message)"),
            LineError::BadHeaderLine(why) => write!(f, "bad header line: {why}"),
        }
    }
}

impl std::error::Error for LineError {}

/// One message: a GoReplay header line and a payload (usually a raw HTTP/1.x message).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    header_line: Vec<u8>,
    kind: u8,
    id: Range<usize>,
    timestamp: i64,
    latency: Option<i64>,
    /// The payload bytes, exactly as on the wire.
    pub payload: Vec<u8>,
}

impl Message {
    /// A message with a fresh header line `<kind> <id> <timestamp> [<latency>]`.
    ///
    /// # Panics
    /// If `kind` is not a single digit or `id` is empty, not ASCII, or has a space.
    pub fn new(
        kind: u8,
        id: &str,
        timestamp: i64,
        latency: Option<i64>,
        payload: impl Into<Vec<u8>>,
    ) -> Message {
        assert_token(id.as_bytes());
        let mut line = format!("{kind} {id} {timestamp}");
        if let Some(latency) = latency {
            line.push_str(&format!(" {latency}"));
        }
        Message::from_parts(line, payload).expect("kind is a digit, id a token without spaces")
    }

    /// Pairs a header line (without its `\n`) with a payload, checking the line.
    pub fn from_parts(
        header_line: impl Into<Vec<u8>>,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Message, LineError> {
        let mut msg = Message {
            header_line: Vec::new(),
            kind: 0,
            id: 0..0,
            timestamp: 0,
            latency: None,
            payload: payload.into(),
        };
        msg.set_header_line(header_line)?;
        Ok(msg)
    }

    /// The header line exactly as received, without its `\n`.
    pub fn header_line(&self) -> &[u8] {
        &self.header_line
    }

    /// Replaces the header line (without its `\n`) if it is valid; otherwise nothing changes.
    pub fn set_header_line(&mut self, header_line: impl Into<Vec<u8>>) -> Result<(), LineError> {
        let header_line = header_line.into();
        let parsed = parse_header_line(&header_line).map_err(LineError::BadHeaderLine)?;
        self.header_line = header_line;
        self.kind = parsed.kind;
        self.id = parsed.id;
        self.timestamp = parsed.timestamp;
        self.latency = parsed.latency;
        Ok(())
    }

    /// 1 = request, 2 = original response, 3 = replayed response (any digit is kept).
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// True for requests (kind 1).
    pub fn is_request(&self) -> bool {
        self.kind == REQUEST
    }

    /// The id token that ties a request to its responses.
    pub fn id(&self) -> &str {
        std::str::from_utf8(&self.header_line[self.id.clone()]).expect("checked ASCII")
    }

    /// Nanoseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Nanoseconds, or `None` when the header line has only 3 fields.
    pub fn latency(&self) -> Option<i64> {
        self.latency
    }

    /// Sets the kind field.
    ///
    /// # Panics
    /// If `kind` is not a single digit (0–9).
    pub fn set_kind(&mut self, kind: u8) {
        self.set_field(0, kind.to_string().as_bytes());
    }

    /// Sets the id field.
    ///
    /// # Panics
    /// If `id` is empty, not ASCII, or has a space.
    pub fn set_id(&mut self, id: &str) {
        self.set_field(1, id.as_bytes());
    }

    /// Sets the timestamp field.
    pub fn set_timestamp(&mut self, timestamp: i64) {
        self.set_field(2, timestamp.to_string().as_bytes());
    }

    /// Sets the latency field, appending it to a 3-field header line.
    pub fn set_latency(&mut self, latency: i64) {
        self.set_field(3, latency.to_string().as_bytes());
    }

    fn set_field(&mut self, index: usize, value: &[u8]) {
        assert_token(value);
        let (text, cr) = split_cr(&self.header_line);
        let mut fields: Vec<&[u8]> = text.split(|&b| b == b' ').collect();
        if index == fields.len() {
            fields.push(b"");
        }
        fields[index] = value;
        let mut line = fields.join(&b' ');
        line.extend_from_slice(cr);
        self.set_header_line(line).unwrap_or_else(|err| {
            panic!("field {index} {:?}: {err}", String::from_utf8_lossy(value))
        });
    }

    /// Value of the first HTTP header called `name` (any case), spaces trimmed.
    pub fn get_header(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        http::get_header(&self.payload, name)
    }

    /// Replaces the first `name` header's value, or inserts it after the start line
    /// (see [`http::set_header`]).
    pub fn set_header(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.payload = http::set_header(&self.payload, name, value);
    }

    /// Removes every `name` header; returns true if there was one.
    pub fn delete_header(&mut self, name: impl AsRef<[u8]>) -> bool {
        let kept = http::delete_header(&self.payload, name);
        let changed = kept != self.payload;
        self.payload = kept;
        changed
    }

    /// The request method (`GET`), or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        http::request_method(&self.payload)
    }

    /// The request target (`/a?b=c`), or `None` for a response.
    pub fn path(&self) -> Option<&str> {
        http::request_path(&self.payload)
    }

    /// The response status code (`200`), or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        http::response_status(&self.payload)
    }

    /// The bytes after the HTTP head, as on the wire (not de-chunked).
    pub fn body(&self) -> &[u8] {
        http::body(&self.payload)
    }

    /// Replaces the body and sets `Content-Length` (dropping `Transfer-Encoding`).
    pub fn set_body(&mut self, body: impl AsRef<[u8]>) {
        self.payload = http::set_body(&self.payload, body);
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.payload[..self.payload.len().min(64)];
        f.debug_struct("Message")
            .field("header_line", &String::from_utf8_lossy(&self.header_line))
            .field("payload", &String::from_utf8_lossy(shown))
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

struct HeaderLine {
    kind: u8,
    id: Range<usize>,
    timestamp: i64,
    latency: Option<i64>,
}

/// The same rules shadowtap applies: ASCII, fields split on single spaces, at least 3
/// non-empty fields, a one-digit kind, integer timestamp and (if present) latency.
fn parse_header_line(line: &[u8]) -> Result<HeaderLine, String> {
    let (text, _) = split_cr(line);
    if text.contains(&b'\n') {
        return Err("header line contains a newline".into());
    }
    if !text.is_ascii() {
        return Err("header line is not ASCII".into());
    }
    let fields: Vec<&[u8]> = text.split(|&b| b == b' ').collect();
    if fields.len() < 3 || fields[..3].iter().any(|f| f.is_empty()) {
        return Err("needs at least 3 fields: <kind> <id> <timestamp>".into());
    }
    let &[kind] = fields[0] else {
        return Err(format!("kind {:?} is not a single digit", lossy(fields[0])));
    };
    if !kind.is_ascii_digit() {
        return Err(format!("kind {:?} is not a single digit", lossy(fields[0])));
    }
    let latency = match fields.get(3) {
        Some(f) if !f.is_empty() => Some(parse_integer("latency", f)?),
        _ => None,
    };
    Ok(HeaderLine {
        kind: kind - b'0',
        id: 2..2 + fields[1].len(),
        timestamp: parse_integer("timestamp", fields[2])?,
        latency,
    })
}

fn parse_integer(name: &str, field: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{name} {:?} is not a 64-bit integer", lossy(field)))
}

/// A space would silently shift the fields after it.
fn assert_token(value: &[u8]) {
    assert!(
        !value.is_empty() && !value.contains(&b' '),
        "header line field {:?} must be non-empty and without spaces",
        lossy(value)
    );
}

/// The line without a trailing `\r`, and that `\r` (kept when a field is rewritten).
fn split_cr(line: &[u8]) -> (&[u8], &[u8]) {
    match line.strip_suffix(b"\r") {
        Some(text) => (text, b"\r"),
        None => (line, b""),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes one protocol line (with or without `\n` / `\r\n`; either hex case).
pub fn decode_line(line: &[u8]) -> Result<Message, LineError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(LineError::Empty);
    }
    if line.len() % 2 != 0 {
        return Err(LineError::OddLength(line.len()));
    }
    let mut raw = Vec::with_capacity(line.len() / 2);
    for (i, pair) in line.chunks_exact(2).enumerate() {
        let digit = |offset: usize| {
            hex_value(pair[offset]).ok_or(LineError::NotHex {
                column: 2 * i + offset + 1,
                byte: pair[offset],
            })
        };
        raw.push(digit(0)? << 4 | digit(1)?);
    }
    let newline = raw
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(LineError::NoHeaderLine)?;
    let payload = raw.split_off(newline + 1);
    raw.truncate(newline);
    Message::from_parts(raw, payload)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The protocol line for a message: lowercase hex of `header line \n payload`, then `\n`.
pub fn encode_line(msg: &Message) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = msg.header_line.iter().chain(b"\n").chain(&msg.payload);
    let mut line = Vec::with_capacity((msg.header_line.len() + 1 + msg.payload.len()) * 2 + 1);
    for &b in bytes {
        line.push(HEX[usize::from(b >> 4)]);
        line.push(HEX[usize::from(b & 15)]);
    }
    line.push(b'\n');
    line
}

/// Runs `handler` on every message from stdin and writes what it returns to stdout.
///
/// See [`run_with`]; returns at the end of stdin, or quietly when stdout's reader is gone.
pub fn run(handler: impl FnMut(Message) -> Option<Message>) -> io::Result<()> {
    match run_with(io::stdin().lock(), io::stdout().lock(), handler) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Runs `handler` on every line of `input`, writing each message it returns (`None` drops)
/// to `output` and flushing after every line. Undecodable lines are reported on stderr and
/// skipped; blank lines are ignored.
pub fn run_with(
    mut input: impl BufRead,
    output: impl Write,
    mut handler: impl FnMut(Message) -> Option<Message>,
) -> io::Result<()> {
    let mut output = BufWriter::new(output);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return output.flush();
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let msg = match decode_line(&line) {
            Ok(msg) => msg,
            Err(err) => {
                eprintln!("shadowtap-middleware: line {number} skipped: {err}");
                continue;
            }
        };
        if let Some(out) = handler(msg) {
            output.write_all(&encode_line(&out))?;
            output.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &[u8] = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n\x00\xff\r\n";

    fn line_of(raw: &[u8]) -> Vec<u8> {
        let mut line: Vec<u8> = raw
            .iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect();
        line.push(b'\n');
        line
    }

    fn with_header_line(header_line: &[u8], payload: &[u8]) -> Vec<u8> {
        [header_line, b"\n", payload].concat()
    }

    #[test]
    fn round_trip_is_byte_exact() {
        let line = line_of(&with_header_line(b"1 abc 1700000000123456789 0", POST));
        let msg = decode_line(&line).unwrap();
        assert_eq!(msg.kind(), REQUEST);
        assert_eq!(msg.id(), "abc");
        assert_eq!(msg.timestamp(), 1_700_000_000_123_456_789);
        assert_eq!(msg.latency(), Some(0));
        assert_eq!(msg.payload, POST);
        assert_eq!(encode_line(&msg), line);
    }

    #[test]
    fn accepts_upper_case_and_crlf() {
        let mut line = line_of(b"2 a 5 6\nHTTP/1.1 200 OK\r\n\r\n").to_ascii_uppercase();
        line.insert(line.len() - 1, b'\r');
        assert_eq!(decode_line(&line).unwrap().status(), Some(200));
    }

    #[test]
    fn three_and_extra_fields() {
        let mut msg = decode_line(&line_of(b"1 a 5\n")).unwrap();
        assert_eq!(msg.latency(), None);
        msg.set_latency(9);
        assert_eq!(msg.header_line(), b"1 a 5 9");
        let mut msg = decode_line(&line_of(b"3 a 5 6 extra x\r\n")).unwrap();
        msg.set_id("b");
        msg.set_kind(2);
        assert_eq!(msg.header_line(), b"2 b 5 6 extra x\r");
    }

    #[test]
    fn bad_lines_say_why() {
        assert_eq!(decode_line(b"\n"), Err(LineError::Empty));
        assert_eq!(decode_line(b"abc"), Err(LineError::OddLength(3)));
        assert_eq!(
            decode_line(b"4g"),
            Err(LineError::NotHex {
                column: 2,
                byte: b'g'
            })
        );
        assert_eq!(decode_line(b"4142"), Err(LineError::NoHeaderLine));
        for bad in [
            &b"x a 1\n"[..],
            b"1 a b\n",
            b"1 a\n",
            b"1  1 2\n",
            b"1 a 99999999999999999999\n",
            b"12 a 1\n",
        ] {
            assert!(
                matches!(decode_line(&line_of(bad)), Err(LineError::BadHeaderLine(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn new_builds_goreplay_lines() {
        assert_eq!(
            Message::new(1, "abc", 10, Some(20), "").header_line(),
            b"1 abc 10 20"
        );
        assert_eq!(
            Message::new(2, "abc", 10, None, "").header_line(),
            b"2 abc 10"
        );
    }

    #[test]
    #[should_panic(expected = "without spaces")]
    fn ids_with_spaces_are_refused() {
        Message::new(1, "a", 1, None, "").set_id("b 2");
    }

    #[test]
    fn bad_header_line_keeps_message() {
        let mut msg = Message::new(1, "a", 1, None, "payload");
        assert!(msg.set_header_line("nope").is_err());
        assert_eq!(msg, Message::new(1, "a", 1, None, "payload"));
    }

    #[test]
    fn run_emits_drops_and_skips() {
        let kept = line_of(&with_header_line(b"1 a 1 0", b"GET / HTTP/1.1\r\n\r\n"));
        let dropped = line_of(&with_header_line(b"2 a 1 0", b"HTTP/1.1 200 OK\r\n\r\n"));
        let input = [&kept[..], b"\n", b"zz\n", &dropped].concat();
        let mut output = Vec::new();
        run_with(&input[..], &mut output, |m| m.is_request().then_some(m)).unwrap();
        assert_eq!(output, kept);
    }
}
