//! HTTP/1.x framing primitives (RFC 9112): start-line recognition, header-block parsing and
//! body-length rules, and an incremental chunked-body scanner. Stateless helpers; the
//! per-connection state machine lives in the tracker.

use std::mem::MaybeUninit;

use memchr::memchr;

/// Longest request method we accept as a token when resynchronising.
const MAX_METHOD_LEN: usize = 32;
/// Longest chunk-size or trailer line.
const MAX_CHUNK_LINE: usize = 64 * 1024;
/// Most header fields httparse is given room for.
const MAX_HEADERS: usize = 128;

/// Which side of the connection a byte stream comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sends requests.
    Client,
    /// Sends responses.
    Server,
}

/// Whether some bytes begin an HTTP start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A complete, valid start line.
    Yes,
    /// Everything seen so far is a valid prefix of one.
    Maybe,
    /// Not a start line.
    No,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_target_char(b: u8) -> bool {
    b > 0x20 && b != 0x7F
}

/// Matches `literal` at `at`; `None` when the input ends first (a prefix).
fn expect(b: &[u8], at: usize, literal: &[u8]) -> Option<bool> {
    for (k, want) in literal.iter().enumerate() {
        match b.get(at + k) {
            None => return None,
            Some(got) if got != want => return Some(false),
            _ => {}
        }
    }
    Some(true)
}

fn expect_digit(b: &[u8], at: usize) -> Option<bool> {
    b.get(at).map(u8::is_ascii_digit)
}

/// Verdict for `HTTP/1.d` followed by the line end at `at`.
fn version_then_eol(b: &[u8], at: usize) -> Verdict {
    match expect(b, at, b"HTTP/1.") {
        None => return Verdict::Maybe,
        Some(false) => return Verdict::No,
        Some(true) => {}
    }
    match expect_digit(b, at + 7) {
        None => return Verdict::Maybe,
        Some(false) => return Verdict::No,
        Some(true) => {}
    }
    match (b.get(at + 8), b.get(at + 9)) {
        (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => Verdict::Yes,
        (None, _) | (Some(b'\r'), None) => Verdict::Maybe,
        _ => Verdict::No,
    }
}

/// `token SP request-target SP HTTP/1.d CRLF` (bare LF accepted).
pub(crate) fn request_line(b: &[u8]) -> Verdict {
    let method_len = b.iter().take_while(|&&c| is_tchar(c)).count();
    if method_len > MAX_METHOD_LEN {
        return Verdict::No;
    }
    match b.get(method_len) {
        None => return Verdict::Maybe,
        Some(b' ') if method_len > 0 => {}
        _ => return Verdict::No,
    }
    let target_at = method_len + 1;
    let target_len = b[target_at..]
        .iter()
        .take_while(|&&c| is_target_char(c))
        .count();
    let after_target = target_at + target_len;
    match b.get(after_target) {
        None => Verdict::Maybe,
        Some(b' ') if target_len > 0 => version_then_eol(b, after_target + 1),
        _ => Verdict::No,
    }
}

/// `HTTP/1.d SP 3DIGIT` followed by SP, CR or LF.
pub(crate) fn status_line(b: &[u8]) -> Verdict {
    match expect(b, 0, b"HTTP/1.") {
        None => return Verdict::Maybe,
        Some(false) => return Verdict::No,
        Some(true) => {}
    }
    for at in [7, 9, 10, 11] {
        match expect_digit(b, at) {
            None => return Verdict::Maybe,
            Some(false) => return Verdict::No,
            Some(true) => {}
        }
    }
    match (b.get(8), b.get(12)) {
        (Some(b' '), Some(b' ' | b'\r' | b'\n')) => Verdict::Yes,
        (Some(b' '), None) => Verdict::Maybe,
        _ => Verdict::No,
    }
}

/// The start-line verdict for `role`.
pub(crate) fn start_line(role: Role, b: &[u8]) -> Verdict {
    match role {
        Role::Client => request_line(b),
        Role::Server => status_line(b),
    }
}

/// Index just past the blank line ending the header block, searching line ends from `from`.
/// `Err(resume)` when not found yet: resume the next search at `resume`.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Result<usize, usize> {
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
pub(crate) enum Method {
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
pub(crate) struct Head {
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
pub(crate) enum HeadError {
    /// Not parseable as HTTP/1.x.
    Syntax,
    /// Conflicting or invalid Content-Length.
    ContentLength,
}

/// Parses a complete header block (start line through the blank line).
pub(crate) fn parse_head(role: Role, block: &[u8]) -> Result<Head, HeadError> {
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
fn parse_content_length(value: &[u8]) -> Option<u64> {
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

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body: the message ends with its header block.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the sender closes the connection.
    UntilClose,
}

/// How a request's body is delimited (RFC 9112 §6.3).
pub(crate) fn request_body(head: &Head) -> BodyKind {
    match (head.transfer_encoding, head.chunked, head.content_length) {
        (true, true, _) => BodyKind::Chunked,
        (true, false, _) => BodyKind::UntilClose,
        (false, _, Some(0) | None) => BodyKind::Empty,
        (false, _, Some(n)) => BodyKind::Length(n),
    }
}

/// How a response's body is delimited, given the method of the request it answers.
pub(crate) fn response_body(head: &Head, request: Method) -> BodyKind {
    let status = head.status;
    let bodiless = request == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (request == Method::Connect && (200..300).contains(&status));
    if bodiless {
        return BodyKind::Empty;
    }
    match (head.transfer_encoding, head.chunked, head.content_length) {
        (true, true, _) => BodyKind::Chunked,
        (true, false, _) => BodyKind::UntilClose,
        (false, _, Some(0)) => BodyKind::Empty,
        (false, _, Some(n)) => BodyKind::Length(n),
        (false, _, None) => BodyKind::UntilClose,
    }
}

/// Where the chunked scanner stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Expecting a chunk-size line (with optional extensions).
    Size,
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Inside the trailer section, expecting field lines or the final blank line.
    Trailer,
}

/// Result of scanning a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkProgress {
    /// The body (and the message) ends at the scan position.
    Done,
    /// More bytes are needed.
    NeedMore,
    /// Not valid chunked coding.
    Invalid,
}

/// Advances `*pos` through `buf` as far as the chunked coding allows.
pub(crate) fn scan_chunked(state: &mut Chunked, buf: &[u8], pos: &mut usize) -> ChunkProgress {
    loop {
        let rest = buf.get(*pos..).unwrap_or_default();
        match *state {
            Chunked::Size | Chunked::Trailer => {
                let Some(lf) = memchr(b'\n', rest) else {
                    return too_long_or_more(rest.len());
                };
                let line = strip_cr(&rest[..lf]);
                *pos += lf + 1;
                *state = match (*state, chunk_size(line)) {
                    (Chunked::Trailer, _) if line.is_empty() => return ChunkProgress::Done,
                    (Chunked::Trailer, _) => Chunked::Trailer,
                    (_, Some(0)) => Chunked::Trailer,
                    (_, Some(n)) => Chunked::Data(n),
                    (_, None) => return ChunkProgress::Invalid,
                };
            }
            Chunked::Data(left) => {
                let take = left.min(rest.len() as u64);
                *pos += take as usize;
                if take < left {
                    *state = Chunked::Data(left - take);
                    return ChunkProgress::NeedMore;
                }
                *state = Chunked::DataEnd;
            }
            Chunked::DataEnd => match rest {
                [b'\n', ..] => {
                    *pos += 1;
                    *state = Chunked::Size;
                }
                [b'\r', b'\n', ..] => {
                    *pos += 2;
                    *state = Chunked::Size;
                }
                [] | [b'\r'] => return ChunkProgress::NeedMore,
                _ => return ChunkProgress::Invalid,
            },
        }
    }
}

fn too_long_or_more(pending: usize) -> ChunkProgress {
    if pending > MAX_CHUNK_LINE {
        ChunkProgress::Invalid
    } else {
        ChunkProgress::NeedMore
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `1*HEXDIG [BWS ";" ext...]`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    line[..digits].iter().try_fold(0u64, |n, &d| {
        let value = (d as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(request_line(b"GET / HTTP/1.1\r\n"), Verdict::Yes);
        assert_eq!(request_line(b"PURGE /x?y HTTP/1.0\n"), Verdict::Yes);
        assert_eq!(request_line(b"M-SEARCH * HTTP/1.1\r\nHost"), Verdict::Yes);
        assert_eq!(request_line(b"GET /very-long"), Verdict::Maybe);
        assert_eq!(request_line(b"GET / HTTP/1.1\r"), Verdict::Maybe);
        assert_eq!(request_line(b""), Verdict::Maybe);
        assert_eq!(request_line(b"GET / HTTP/2.0\r\n"), Verdict::No);
        assert_eq!(request_line(b"GET  / HTTP/1.1\r\n"), Verdict::No);
        assert_eq!(request_line(b"{\"json\": 1}"), Verdict::No);
        assert_eq!(request_line(b"HTTP/1.1 200 OK\r\n"), Verdict::No);
        assert_eq!(request_line(&[b'A'; 40]), Verdict::No);
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(b"HTTP/1.1 200 OK\r\n"), Verdict::Yes);
        assert_eq!(status_line(b"HTTP/1.0 404\r\n"), Verdict::Yes);
        assert_eq!(status_line(b"HTTP/1.1 20"), Verdict::Maybe);
        assert_eq!(status_line(b"HTTP/1.1 2000"), Verdict::No);
        assert_eq!(status_line(b"HTTP/2 200"), Verdict::No);
        assert_eq!(status_line(b"GET / HTTP/1.1"), Verdict::No);
    }

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

    #[test]
    fn heads_and_body_rules() {
        let head = parse_head(
            Role::Client,
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(request_body(&head.unwrap()), BodyKind::Length(5));
        let head = parse_head(
            Role::Client,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(request_body(&head), BodyKind::Chunked);
        let get = parse_head(Role::Client, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(request_body(&get), BodyKind::Empty);
        let head = parse_head(Role::Client, b"HEAD / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(head.method, Method::Head);
        assert_eq!(
            parse_head(
                Role::Client,
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
            ),
            Err(HeadError::ContentLength)
        );
        assert_eq!(parse_content_length(b"7, 7"), Some(7));
        assert_eq!(parse_content_length(b"-1"), None);

        let ok = parse_head(
            Role::Server,
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        assert_eq!(response_body(&ok, Method::Other), BodyKind::Length(3));
        assert_eq!(response_body(&ok, Method::Head), BodyKind::Empty);
        assert_eq!(response_body(&ok, Method::Connect), BodyKind::Empty);
        let bare = parse_head(Role::Server, b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(response_body(&bare, Method::Other), BodyKind::UntilClose);
        for status in ["100 Continue", "204 No Content", "304 Not Modified"] {
            let raw = format!("HTTP/1.1 {status}\r\nContent-Length: 9\r\n\r\n");
            let head = parse_head(Role::Server, raw.as_bytes()).unwrap();
            assert_eq!(
                response_body(&head, Method::Other),
                BodyKind::Empty,
                "{status}"
            );
        }
        assert_eq!(
            parse_head(Role::Server, b"HTTP/1.1 OK\r\n\r\n"),
            Err(HeadError::Syntax)
        );
    }

    #[test]
    fn chunked_with_extensions_and_trailers_byte_by_byte() {
        let body = b"4;name=value\r\nWiki\r\n5 ; x\r\npedia\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..end {
            let (mut state, mut pos) = (Chunked::Size, 0);
            let first = scan_chunked(&mut state, &body[..split], &mut pos);
            assert_eq!(first, ChunkProgress::NeedMore, "split {split}");
            assert_eq!(
                scan_chunked(&mut state, body, &mut pos),
                ChunkProgress::Done
            );
            assert_eq!(pos, end);
        }
        let (mut state, mut pos) = (Chunked::Size, 0);
        assert_eq!(
            scan_chunked(&mut state, b"zz\r\n", &mut pos),
            ChunkProgress::Invalid
        );
    }
}
