//! A captured request in its HTTP/1.1 form split into parts, for sending it over the other
//! protocol: an HTTP/1.x request as captured, or an HTTP/2 one as the capture writes it
//! (`GET /p HTTP/2`, see the `shadowtap-h2` crate documentation: fields, a `content-length`
//! when there is a body, the body, then the trailers as a field block).
//!
//! Parsing is strict (what is sent must parse at the target): the start line, a field block
//! of `name: value` lines, the body framed by `Content-Length` or decoded from `chunked` (with
//! the http1 toolkit; its trailers become the message's trailers), and after a
//! `Content-Length` body nothing or exactly one trailer block. [`to_http1`] writes an
//! HTTP/2-form request as HTTP/1.1 (its trailers are lost).

use bytes::Bytes;
use shadowtap_http1::{self as http1, headers, DechunkError};

/// Most fields accepted in a head or a trailer block.
const MAX_FIELDS: usize = 1024;

/// Which protocol the start line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    Http1,
    /// `HTTP/2`.
    Http2,
}

/// Why a message cannot be converted, each counted as `error: form <what>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The first line is not `METHOD TARGET VERSION`.
    #[error("no request line")]
    StartLine,
    /// A version other than HTTP/1.0, HTTP/1.1 and HTTP/2.
    #[error("unsupported version {0:?}")]
    Version(String),
    /// The field block does not parse (or is not complete).
    #[error("the header fields do not parse: {0}")]
    Fields(String),
    /// An invalid or conflicting `Content-Length`.
    #[error("invalid or conflicting content-length")]
    ContentLength,
    /// A transfer coding other than a final `chunked`.
    #[error("a transfer-encoding other than chunked")]
    TransferEncoding,
    /// Fewer body bytes than `Content-Length` says.
    #[error("content-length {declared} but {present} body bytes")]
    ShortBody {
        /// The stated length.
        declared: u64,
        /// The bytes there are.
        present: usize,
    },
    /// The chunked body does not decode.
    #[error("chunked body: {0}")]
    Chunked(DechunkError),
    /// Bytes after the body that are not one trailer block.
    #[error("the bytes after the body are not a trailer block")]
    Trailers,
    /// A field name HTTP/2 cannot carry.
    #[error("field name {0:?} is not valid in HTTP/2")]
    FieldName(String),
    /// A field value HTTP/2 cannot carry.
    #[error("the value of field {0:?} is not valid in HTTP/2")]
    FieldValue(String),
    /// The method, path or authority is not valid in HTTP/2.
    #[error("invalid {0} for HTTP/2")]
    Target(&'static str),
}

impl FormError {
    /// The extra counter's name.
    pub fn counter(&self) -> &'static str {
        match self {
            FormError::StartLine => "error: form start line",
            FormError::Version(_) => "error: form version",
            FormError::Fields(_) => "error: form fields",
            FormError::ContentLength => "error: form content-length",
            FormError::TransferEncoding => "error: form transfer-encoding",
            FormError::ShortBody { .. } => "error: form body shorter than content-length",
            FormError::Chunked(_) => "error: form chunked body",
            FormError::Trailers => "error: form trailers",
            FormError::FieldName(_) => "error: form field name",
            FormError::FieldValue(_) => "error: form field value",
            FormError::Target(_) => "error: form target",
        }
    }
}

/// A request split into its parts; names and values borrow the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// The method.
    pub method: &'a [u8],
    /// The request-target as captured.
    pub target: &'a [u8],
    /// The start line's protocol.
    pub version: Version,
    /// Header fields in order, names as captured.
    pub fields: Vec<(&'a [u8], &'a [u8])>,
    /// The body, de-chunked.
    pub body: Bytes,
    /// Trailer fields (after an HTTP/2-form body, or a chunked body's trailer section).
    pub trailers: Vec<(&'a [u8], &'a [u8])>,
}

impl Parts<'_> {
    /// True for a `Content-Length` field that does not state the (de-chunked) body's length.
    pub fn stale_length(&self, name: &[u8], value: &[u8]) -> bool {
        name.eq_ignore_ascii_case(b"content-length")
            && content_length(value) != Some(self.body.len() as u64)
    }

    /// The first value of field `name` (any case).
    pub fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// True if the start line of `payload` names HTTP/2 (`GET / HTTP/2`), cheaply.
pub fn is_h2_form(payload: &[u8]) -> bool {
    let line_end = memchr_lf(payload).unwrap_or(payload.len());
    let line = payload[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&payload[..line_end]);
    line.len() > 7 && line[line.len() - 7..].eq_ignore_ascii_case(b" HTTP/2")
}

fn memchr_lf(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Splits `payload` (a request in HTTP/1.1 form) into its parts.
pub fn parse(payload: &Bytes) -> Result<Parts<'_>, FormError> {
    let bytes: &[u8] = payload;
    let line = headers::request_line(bytes).ok_or(FormError::StartLine)?;
    let version = match line.version {
        v if v.eq_ignore_ascii_case(b"HTTP/2") || v.eq_ignore_ascii_case(b"HTTP/2.0") => {
            Version::Http2
        }
        v if v.eq_ignore_ascii_case(b"HTTP/1.1") || v.eq_ignore_ascii_case(b"HTTP/1.0") => {
            Version::Http1
        }
        v => return Err(FormError::Version(String::from_utf8_lossy(v).into_owned())),
    };
    let fields_start = headers::layout(bytes).fields_start;
    let (fields, head_end) = field_block(bytes, fields_start)?;
    let (body, body_end, mut trailers) = body(payload, &fields, head_end)?;
    let rest = &bytes[body_end..];
    if !rest.is_empty() {
        if !trailers.is_empty() {
            return Err(FormError::Trailers);
        }
        let (block, end) = field_block(bytes, body_end).map_err(|_| FormError::Trailers)?;
        if end != bytes.len() {
            return Err(FormError::Trailers);
        }
        trailers = block;
    }
    Ok(Parts {
        method: line.method,
        target: line.target,
        version,
        fields,
        body,
        trailers,
    })
}

type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

/// The fields of the block starting at `at` (through its blank line) and where it ends.
///
/// Each line is `token ":" OWS value OWS` ending in CRLF or LF; the value may hold any byte
/// but CR and LF (gRPC true-binary metadata has NULs), which httparse would refuse. Folded
/// lines and lines without a colon are errors.
fn field_block(bytes: &[u8], at: usize) -> Result<(Fields<'_>, usize), FormError> {
    let mut fields = Vec::new();
    let mut cursor = at;
    loop {
        let rest = &bytes[cursor..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return Err(FormError::Fields("incomplete".into()));
        };
        let line = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
        cursor += lf + 1;
        if line.is_empty() {
            return Ok((fields, cursor));
        }
        if fields.len() == MAX_FIELDS {
            return Err(FormError::Fields(format!("more than {MAX_FIELDS} fields")));
        }
        fields.push(field_line(line)?);
    }
}

fn field_line(line: &[u8]) -> Result<(&[u8], &[u8]), FormError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| FormError::Fields("a line without a colon".into()))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(FormError::Fields(format!(
            "invalid field name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    let value = line[colon + 1..].trim_ascii_start();
    let trimmed = value.len()
        - value
            .iter()
            .rev()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
    Ok((name, &value[..trimmed]))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The body after the head ending at `head_end`: its bytes, where it ends in the payload, and
/// the trailers of a chunked body.
fn body<'a>(
    payload: &'a Bytes,
    fields: &Fields<'a>,
    head_end: usize,
) -> Result<(Bytes, usize, Fields<'a>), FormError> {
    let bytes: &'a [u8] = payload;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for (name, value) in fields {
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(value).ok_or(FormError::ContentLength)?;
            if length.is_some_and(|seen| seen != n) {
                return Err(FormError::ContentLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = headers::list(value)
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                return Err(FormError::TransferEncoding);
            }
        }
    }
    let rest = &bytes[head_end..];
    if chunked {
        let decoded = http1::dechunk(rest, rest.len()).map_err(FormError::Chunked)?;
        let trailers = if decoded.trailers.is_empty() {
            Vec::new()
        } else {
            let at = head_end + decoded.trailers.start;
            // The trailer lines plus the blank line that ends them form a field block.
            field_block(&bytes[..head_end + decoded.end], at)?.0
        };
        return Ok((Bytes::from(decoded.data), head_end + decoded.end, trailers));
    }
    let declared = length.unwrap_or(0);
    if declared > rest.len() as u64 {
        return Err(FormError::ShortBody {
            declared,
            present: rest.len(),
        });
    }
    let end = head_end + declared as usize;
    Ok((payload.slice(head_end..end), end, Vec::new()))
}

/// `1*DIGIT` (a list of equal values too, RFC 9110 §8.6).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut result = None;
    for part in value.split(|&b| b == b',') {
        let digits = part.trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 19 {
            return None;
        }
        let n = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if result.is_some_and(|r| r != n) {
            return None;
        }
        result = Some(n);
    }
    result
}

/// Writes an HTTP/2-form request as HTTP/1.1 to `out` (cleared first): the same method,
/// target, fields and body, `HTTP/1.1` as the version, a `Content-Length` for the body;
/// `Transfer-Encoding` fields, a `Content-Length` that is not the body's and the trailers
/// are left out.
pub fn to_http1(parts: &Parts, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(parts.body.len() + 256);
    out.extend_from_slice(parts.method);
    out.push(b' ');
    out.extend_from_slice(parts.target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    for (name, value) in &parts.fields {
        if name.eq_ignore_ascii_case(b"transfer-encoding") || parts.stale_length(name, value) {
            continue;
        }
        had_length |= name.eq_ignore_ascii_case(b"content-length");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !had_length && !parts.body.is_empty() {
        out.extend_from_slice(format!("content-length: {}\r\n", parts.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&parts.body);
}

/// The payload as HTTP/1.1: HTTP/1 messages as they are, HTTP/2-form ones converted.
pub fn as_http1<'p>(payload: &'p Bytes, scratch: &'p mut Vec<u8>) -> Result<&'p [u8], FormError> {
    if !is_h2_form(payload) {
        return Ok(payload);
    }
    to_http1(&parse(payload)?, scratch);
    Ok(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &'static [u8]) -> Parts<'static> {
        parse(Box::leak(Box::new(Bytes::from_static(text)))).unwrap()
    }

    fn error(text: &'static [u8]) -> FormError {
        parse(Box::leak(Box::new(Bytes::from_static(text)))).unwrap_err()
    }

    #[test]
    fn an_h2_form_splits_into_fields_body_and_trailers() {
        let p = parts(
            b"POST /svc/M HTTP/2\r\nhost: a:1\r\ncontent-type: application/grpc\r\n\
              content-length: 6\r\n\r\n\0\0\0\0\x01xgrpc-timeout: 1S\r\n\r\n",
        );
        assert_eq!(p.version, Version::Http2);
        assert_eq!((p.method, p.target), (&b"POST"[..], &b"/svc/M"[..]));
        assert_eq!(p.field(b"HOST"), Some(&b"a:1"[..]));
        assert_eq!(&p.body[..], b"\0\0\0\0\x01x");
        assert_eq!(p.trailers, vec![(&b"grpc-timeout"[..], &b"1S"[..])]);
    }

    #[test]
    fn an_http1_chunked_body_is_decoded_with_its_trailers() {
        let p = parts(
            b"PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\nX-Sum: 9\r\n\r\n",
        );
        assert_eq!(p.version, Version::Http1);
        assert_eq!(&p.body[..], b"hello");
        assert_eq!(p.trailers, vec![(&b"X-Sum"[..], &b"9"[..])]);
        assert!(is_h2_form(b"GET / HTTP/2\r\n\r\n"));
        assert!(!is_h2_form(b"GET /HTTP/2 HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn malformed_forms_are_typed_errors() {
        assert_eq!(error(b"\x01\x02 nonsense"), FormError::StartLine);
        assert!(matches!(
            error(b"GET / HTTP/3\r\n\r\n"),
            FormError::Version(_)
        ));
        assert!(matches!(
            error(b"GET / HTTP/2\r\ngarbage without colon\r\n\r\n"),
            FormError::Fields(_)
        ));
        assert_eq!(
            error(b"POST / HTTP/2\r\ncontent-length: 10\r\n\r\nabc"),
            FormError::ShortBody {
                declared: 10,
                present: 3
            }
        );
        assert_eq!(
            error(b"POST / HTTP/2\r\ncontent-length: 1\r\n\r\nabc"),
            FormError::Trailers
        );
        assert_eq!(
            error(b"POST / HTTP/2\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab"),
            FormError::ContentLength
        );
        assert_eq!(
            error(b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n"),
            FormError::TransferEncoding
        );
        assert!(matches!(
            error(b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
            FormError::Chunked(_)
        ));
        assert_eq!(
            error(b"GET / HTTP/2\r\nx: 1\r\n"),
            FormError::Fields("incomplete".into())
        );
    }

    #[test]
    fn an_h2_form_becomes_http1_without_its_trailers() {
        let payload = Bytes::from_static(
            b"POST /p HTTP/2\r\nhost: a\r\nx-y: 1\r\ncontent-length: 2\r\n\r\nabx: 1\r\n\r\n",
        );
        let mut scratch = Vec::new();
        assert_eq!(
            as_http1(&payload, &mut scratch).unwrap(),
            b"POST /p HTTP/1.1\r\nhost: a\r\nx-y: 1\r\ncontent-length: 2\r\n\r\nab"
        );
        let http1 = Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(as_http1(&http1, &mut scratch).unwrap(), &http1[..]);
    }
}
