//! HTTP/1.x header blocks: where a block ends, and what it says about framing (RFC 9112 §5, §6).

use std::mem::MaybeUninit;

use crate::start_line::{lenient_status_line, request_line, Leniency, Role, Verdict};

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
    /// What a tolerant parse accepted that a strict one rejects.
    pub leniency: Leniency,
}

/// Why a header block cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not parseable as HTTP/1.x.
    Syntax,
    /// Conflicting or invalid Content-Length.
    ContentLength,
}

/// Parses a complete header block (start line through the blank line); folded response
/// header lines (obs-fold) are accepted.
pub fn parse_head(role: Role, block: &[u8]) -> Result<Head, HeadError> {
    parse(role, block, true)
}

/// [`parse_head`] that also rejects obs-fold and invalid field lines (instead of skipping them),
/// for callers that want every unusual block to go through [`parse_head_tolerant`], which
/// reports what it accepted.
pub fn parse_head_unfolded(role: Role, block: &[u8]) -> Result<Head, HeadError> {
    parse(role, block, false)
}

#[inline(always)]
fn parse(role: Role, block: &[u8], lenient: bool) -> Result<Head, HeadError> {
    // Uninitialised header slots: initialising 128 of them per message showed in profiles.
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut head = Head::default();
    let headers: &[httparse::Header<'_>] = match role {
        Role::Client => {
            let mut req = httparse::Request::new(&mut []);
            let parsed = httparse::ParserConfig::default()
                .ignore_invalid_headers_in_requests(lenient)
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
                .allow_obsolete_multiline_headers_in_responses(lenient)
                .allow_spaces_after_header_name_in_responses(true)
                .ignore_invalid_headers_in_responses(lenient)
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

/// Index just past a header block whose lines end with a bare CR (`\r\r`), searching from
/// `from`; `Err(resume)` when not found yet.
pub fn find_bare_cr_head_end(buf: &[u8], from: usize) -> Result<usize, usize> {
    let from = from.min(buf.len());
    match memchr::memmem::find(&buf[from..], b"\r\r") {
        Some(at) => Ok(from + at + 2),
        None => Err(buf.len().saturating_sub(1).max(from)),
    }
}

/// Whether the first line of `buf` ends with a bare CR (a CR not followed by LF); `None`
/// while the line is not complete.
pub fn first_line_ends_bare_cr(buf: &[u8]) -> Option<bool> {
    let end = memchr::memchr2(b'\r', b'\n', buf)?;
    match (buf[end], buf.get(end + 1)) {
        (b'\n', _) => Some(false),
        (_, None) => None,
        (_, Some(&next)) => Some(next != b'\n'),
    }
}

/// Whether a header block's last line end (the blank line) is a bare LF: the O(1) sign of a
/// block written with bare-LF line ends.
pub fn ends_with_bare_lf(block: &[u8]) -> bool {
    matches!(block, [.., b'\n', b'\n'])
}

/// What a header block did unusually: bare-LF line ends, NUL bytes, folded lines (one pass
/// over the block's line ends).
pub fn head_quirks(block: &[u8]) -> Leniency {
    let mut quirks = Leniency {
        nul: memchr::memchr(0, block).is_some(),
        ..Leniency::default()
    };
    for lf in memchr::memchr_iter(b'\n', block) {
        if lf == 0 || block[lf - 1] != b'\r' {
            quirks.bare_lf = true;
        }
        if matches!(block.get(lf + 1), Some(b' ' | b'\t')) {
            quirks.obs_fold = true;
        }
    }
    quirks
}

/// Parses a header block the way a tolerant reader (a browser, Wireshark) does, for blocks
/// [`parse_head`] rejects: a lenient status line, lines ended by LF, CR or CRLF, NUL bytes,
/// obs-fold, field lines without a colon (ignored), and conflicting Content-Length values
/// (reported in [`Leniency::conflicting_length`] instead of an error). Fails only when the
/// start line is not one of `role`'s.
pub fn parse_head_tolerant(role: Role, block: &[u8]) -> Result<Head, HeadError> {
    let bare_cr = first_line_ends_bare_cr(block) == Some(true);
    let mut lines = block
        .split(|&b| if bare_cr { b == b'\r' } else { b == b'\n' })
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let start = lines.next().unwrap_or_default();
    let mut head = Head::default();
    match role {
        Role::Server => {
            let (status, leniency) = lenient_status_line(start).map_err(|_| HeadError::Syntax)?;
            head.status = status;
            head.leniency = leniency;
        }
        Role::Client => {
            let mut line = start.to_vec();
            line.push(b'\n');
            if request_line(&line) != Verdict::Yes {
                return Err(HeadError::Syntax);
            }
            head.method = method_of(start);
        }
    }
    let quirks = head_quirks(block);
    head.leniency.bare_cr = bare_cr;
    head.leniency.bare_lf = !bare_cr && quirks.bare_lf;
    head.leniency.nul = quirks.nul;
    for line in lines.take_while(|line| !line.is_empty()) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            head.leniency.obs_fold = true;
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            match (parse_content_length(value), head.content_length) {
                (Some(n), Some(seen)) if n != seen => head.leniency.conflicting_length = true,
                (Some(n), _) => head.content_length = Some(n),
                (None, _) => head.leniency.conflicting_length = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            head.transfer_encoding = true;
            head.chunked = last_coding_is_chunked(value);
        }
    }
    Ok(head)
}

fn method_of(request_line: &[u8]) -> Method {
    let method = request_line
        .split(|&b| b == b' ')
        .next()
        .unwrap_or_default();
    if method.eq_ignore_ascii_case(b"HEAD") {
        Method::Head
    } else if method.eq_ignore_ascii_case(b"CONNECT") {
        Method::Connect
    } else {
        Method::Other
    }
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

    #[test]
    fn tolerant_heads_recover_what_strict_parsing_rejects() {
        let head = parse_head_tolerant(
            Role::Server,
            b"http/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        assert_eq!((head.status, head.content_length), (200, Some(5)));
        assert!(head.leniency.status_line);
        let cr = b"HTTP/1.1 200 OK\rContent-Length: 2\r\r";
        assert_eq!(first_line_ends_bare_cr(cr), Some(true));
        assert_eq!(find_bare_cr_head_end(cr, 0), Ok(cr.len()));
        let head = parse_head_tolerant(Role::Server, cr).unwrap();
        assert_eq!(head.content_length, Some(2));
        assert!(head.leniency.bare_cr && !head.leniency.bare_lf);
        let nul = b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 1\r\n\r\n";
        let head = parse_head_tolerant(Role::Server, nul).unwrap();
        assert!(head.leniency.nul);
        assert_eq!(head.content_length, Some(1));
        let conflict = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n";
        assert_eq!(
            parse_head(Role::Server, conflict),
            Err(HeadError::ContentLength)
        );
        let head = parse_head_tolerant(Role::Server, conflict).unwrap();
        assert!(head.leniency.conflicting_length);
        let folded = b"HTTP/1.1 200 OK\nX-Long: a\n b\nTransfer-Encoding: chunked\n\n";
        let head = parse_head_tolerant(Role::Server, folded).unwrap();
        assert!(head.leniency.obs_fold && head.leniency.bare_lf && head.chunked);
        assert_eq!(
            parse_head_tolerant(Role::Server, b"<html>\r\n\r\n"),
            Err(HeadError::Syntax)
        );
        let request =
            parse_head_tolerant(Role::Client, b"HEAD / HTTP/1.1\r\nX: \0\r\n\r\n").unwrap();
        assert_eq!(request.method, Method::Head);
    }

    #[test]
    fn quirks_of_strict_heads() {
        assert!(head_quirks(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n").is_strict());
        assert!(head_quirks(b"HTTP/1.1 200 OK\nA: b\n\n").bare_lf);
        assert!(head_quirks(b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n").obs_fold);
    }

    #[test]
    fn tolerant_parsing_of_garbage_never_panics() {
        let mut seed = 7u64;
        for len in 0..400 {
            let block: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let alphabet = b"HTTP/1.1 200\r\n: \0\tContent-Length9";
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            for role in [Role::Client, Role::Server] {
                let _ = parse_head_tolerant(role, &block);
            }
            let _ = head_quirks(&block);
            let _ = find_bare_cr_head_end(&block, len / 2);
        }
    }
}
