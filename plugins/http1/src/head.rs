//! HTTP/1.x header blocks: where a block ends, and what it says about framing (RFC 9112 §5, §6).

use std::mem::MaybeUninit;

use crate::start_line::Role;

/// Most header fields httparse is given room for.
const MAX_HEADERS: usize = 128;

/// Index just past the blank line ending the header block, searching line ends from `from`.
/// `Err(resume)` when not found yet: resume the next search at `resume`.
pub fn find_head_end(buf: &[u8], from: usize) -> Result<usize, usize> {
    let resume = buf.len().saturating_sub(2).max(from.min(buf.len()));
    let from = from.min(buf.len());
    // One iterator over all line ends: a fresh `memchr` call per header line costs more
    // than the search itself in a short head.
    for offset in memchr::memchr_iter(b'\n', &buf[from..]) {
        let lf = from + offset;
        match (buf.get(lf + 1), buf.get(lf + 2)) {
            (Some(b'\n'), _) => return Ok(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Ok(lf + 3),
            (None, _) | (Some(b'\r'), None) => return Err(lf),
            _ => {}
        }
    }
    Err(resume)
}

/// Request methods whose answers frame differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Responses to HEAD have no body.
    Head,
    /// A 2xx answer to CONNECT turns the connection into a tunnel.
    Connect,
    /// Anything else.
    #[default]
    Other,
}

/// What the header block says about framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    /// Request method (requests only).
    pub method: Method,
    /// Status code (responses only).
    pub status: u16,
    /// `Content-Length`, when present and valid.
    pub content_length: Option<u64>,
    /// A `Transfer-Encoding` header is present.
    pub transfer_encoding: bool,
    /// The final transfer coding is `chunked`.
    pub chunked: bool,
}

/// Why a header block cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not parseable as HTTP/1.x.
    Syntax,
    /// Conflicting or invalid Content-Length.
    ContentLength,
}

/// Parses a complete header block (start line through the blank line).
pub fn parse_head(role: Role, block: &[u8]) -> Result<Head, HeadError> {
    // Uninitialised header slots: initialising 128 of them per message showed in profiles.
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut head = Head::default();
    let headers: &[httparse::Header<'_>] = match role {
        Role::Client => {
            let mut req = httparse::Request::new(&mut []);
            let parsed = httparse::ParserConfig::default()
                .ignore_invalid_headers_in_requests(true)
                .parse_request_with_uninit_headers(&mut req, block, &mut storage);
            if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
                return Err(HeadError::Syntax);
            }
            head.method = match req.method {
                Some(m) if m.eq_ignore_ascii_case("HEAD") => Method::Head,
                Some(m) if m.eq_ignore_ascii_case("CONNECT") => Method::Connect,
                _ => Method::Other,
            };
            req.headers
        }
        Role::Server => {
            let mut res = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default()
                .allow_obsolete_multiline_headers_in_responses(true)
                .allow_spaces_after_header_name_in_responses(true)
                .ignore_invalid_headers_in_responses(true)
                .parse_response_with_uninit_headers(&mut res, block, &mut storage);
            if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
                return Err(HeadError::Syntax);
            }
            head.status = res.code.unwrap_or(0);
            res.headers
        }
    };
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(header.value).ok_or(HeadError::ContentLength)?;
            if head.content_length.is_some_and(|seen| seen != length) {
                return Err(HeadError::ContentLength);
            }
            head.content_length = Some(length);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            head.transfer_encoding = true;
            head.chunked = last_coding_is_chunked(header.value);
        }
    }
    Ok(head)
}

/// `1*DIGIT`, or a comma-separated list of equal values (RFC 9110 §8.6).
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    let mut result = None;
    for part in value.split(|&b| b == b',') {
        let digits = part.trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        if result.is_some_and(|r| r != n) {
            return None;
        }
        result = Some(n);
    }
    result
}

fn last_coding_is_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_incrementally() {
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(find_head_end(full, 0), Ok(27));
        let mut from = 0;
        for len in 1..27 {
            match find_head_end(&full[..len], from) {
                Err(resume) => from = resume,
                Ok(end) => panic!("found {end} at {len}"),
            }
        }
        assert_eq!(find_head_end(&full[..27], from), Ok(27));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\n", 0), Ok(16));
    }

    #[test]
    fn head_end_is_the_first_lf_before_crlf_or_lf() {
        // The definition, one line end at a time.
        let reference = |buf: &[u8]| {
            (0..buf.len()).find_map(|i| match (buf[i], buf.get(i + 1), buf.get(i + 2)) {
                (b'\n', Some(b'\n'), _) => Some(i + 2),
                (b'\n', Some(b'\r'), Some(b'\n')) => Some(i + 3),
                _ => None,
            })
        };
        let alphabet = [b'a', b'\r', b'\n'];
        for n in 0..3usize.pow(7) {
            let buf: Vec<u8> = (0..7).map(|k| alphabet[n / 3usize.pow(k) % 3]).collect();
            assert_eq!(find_head_end(&buf, 0).ok(), reference(&buf), "{buf:?}");
            for cut in 0..buf.len() {
                if let Err(resume) = find_head_end(&buf[..cut], 0) {
                    assert_eq!(find_head_end(&buf, resume).ok(), reference(&buf), "{buf:?}");
                }
            }
        }
    }
}
