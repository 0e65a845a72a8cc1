//! HTTP/1.x start lines (RFC 9112 §3, §4): whether bytes begin a request or status line.

/// Longest request method we accept as a token when resynchronising.
const MAX_METHOD_LEN: usize = 32;

/// Which side of the connection a byte stream comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends requests.
    Client,
    /// Sends responses.
    Server,
}

/// Whether some bytes begin an HTTP start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
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
pub fn request_line(b: &[u8]) -> Verdict {
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
pub fn status_line(b: &[u8]) -> Verdict {
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

/// What a tolerant reader accepted that a strict one rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Leniency {
    /// A status line with lowercase `http/`, extra spaces or a status of more than 3 digits.
    pub status_line: bool,
    /// `HTTP/1.x` with x > 1 (RFC 9110 §2.5: processed as HTTP/1.1).
    pub version_above_1_1: bool,
    /// Lines ended by a bare LF.
    pub bare_lf: bool,
    /// Lines ended by a bare CR.
    pub bare_cr: bool,
    /// A NUL byte in the header block.
    pub nul: bool,
    /// A folded header line (obs-fold).
    pub obs_fold: bool,
    /// Conflicting Content-Length values.
    pub conflicting_length: bool,
}

impl Leniency {
    /// Nothing was lenient.
    pub fn is_strict(&self) -> bool {
        *self == Leniency::default()
    }
}

/// Longest status code a tolerant reader takes (`HTTP/1.1 2000` has four digits).
const MAX_STATUS_DIGITS: usize = 5;
/// Most spaces a tolerant reader skips between status-line fields.
const MAX_SPACES: usize = 16;

/// A status line as a tolerant reader parses it: the status and what was lenient, or the
/// verdict when the bytes are not (or not yet) one.
pub fn lenient_status_line(b: &[u8]) -> Result<(u16, Leniency), Verdict> {
    let mut leniency = Leniency::default();
    match b.get(..5) {
        None if b"HTTP/"[..b.len()].eq_ignore_ascii_case(b) => return Err(Verdict::Maybe),
        Some(name) if name.eq_ignore_ascii_case(b"HTTP/") => {
            leniency.status_line = name != b"HTTP/";
        }
        _ => return Err(Verdict::No),
    }
    let mut at = 5;
    match (b.get(at), b.get(at + 1)) {
        (None, _) | (Some(b'1'), None) => return Err(Verdict::Maybe),
        (Some(b'1'), Some(b'.')) => at += 2,
        _ => return Err(Verdict::No),
    }
    let minor_digits = count(b, at, u8::is_ascii_digit);
    if minor_digits == 0 {
        return Err(if at >= b.len() {
            Verdict::Maybe
        } else {
            Verdict::No
        });
    }
    leniency.version_above_1_1 = minor_digits > 1 || b[at] > b'1';
    at += minor_digits;
    let spaces = count(b, at, |&c| c == b' ' || c == b'\t');
    leniency.status_line |= spaces > 1 || b.get(at) == Some(&b'\t');
    if spaces == 0 || spaces > MAX_SPACES {
        return Err(if at + spaces >= b.len() && spaces <= MAX_SPACES {
            Verdict::Maybe
        } else {
            Verdict::No
        });
    }
    at += spaces;
    let digits = count(b, at, u8::is_ascii_digit);
    if !(3..=MAX_STATUS_DIGITS).contains(&digits) {
        let more = at + digits >= b.len() && digits < 3;
        return Err(if more { Verdict::Maybe } else { Verdict::No });
    }
    leniency.status_line |= digits > 3;
    match b.get(at + digits) {
        None => return Err(Verdict::Maybe),
        Some(b' ' | b'\t' | b'\r' | b'\n') => {}
        Some(_) => return Err(Verdict::No),
    }
    let status = b[at..at + digits]
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    Ok((u16::try_from(status).unwrap_or(u16::MAX), leniency))
}

/// The lenient status-line verdict (see [`lenient_status_line`]).
pub fn lenient_status_verdict(b: &[u8]) -> Verdict {
    match lenient_status_line(b) {
        Ok(_) => Verdict::Yes,
        Err(verdict) => verdict,
    }
}

fn count(b: &[u8], from: usize, pred: impl Fn(&u8) -> bool) -> usize {
    b.get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| pred(c))
        .count()
}

/// The start-line verdict for `role`.
pub fn start_line(role: Role, b: &[u8]) -> Verdict {
    match role {
        Role::Client => request_line(b),
        Role::Server => status_line(b),
    }
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
    fn lenient_status_lines() {
        let strict = Leniency::default();
        assert_eq!(
            lenient_status_line(b"HTTP/1.1 200 OK\r\n"),
            Ok((200, strict))
        );
        let (status, l) = lenient_status_line(b"http/1.1 200 OK\r\n").unwrap();
        assert_eq!(status, 200);
        assert!(l.status_line && !l.version_above_1_1);
        let (_, l) = lenient_status_line(b"HTTP/1.10 200 OK\r\n").unwrap();
        assert!(l.version_above_1_1 && !l.status_line);
        let (_, l) = lenient_status_line(b"HTTP/1.2 404\n").unwrap();
        assert!(l.version_above_1_1);
        let (status, l) = lenient_status_line(b"HTTP/1.1  200 OK\r\n").unwrap();
        assert_eq!(status, 200);
        assert!(l.status_line);
        let (status, l) = lenient_status_line(b"HTTP/1.1 2000 OK\r\n").unwrap();
        assert_eq!(status, 2000);
        assert!(l.status_line);
        assert_eq!(
            lenient_status_line(b"HTTP/1.1 2000000 OK"),
            Err(Verdict::No)
        );
        assert_eq!(lenient_status_line(b"htt"), Err(Verdict::Maybe));
        assert_eq!(lenient_status_line(b"HTTP/1.1 20"), Err(Verdict::Maybe));
        assert_eq!(lenient_status_line(b"HTTP/1.1   "), Err(Verdict::Maybe));
        assert_eq!(lenient_status_line(b"HTTP/2 200 OK"), Err(Verdict::No));
        assert_eq!(lenient_status_line(b"HTTP/1.1 OK"), Err(Verdict::No));
        assert_eq!(lenient_status_line(b"GET / HTTP/1.1"), Err(Verdict::No));
        assert_eq!(lenient_status_line(b""), Err(Verdict::Maybe));
    }

    #[test]
    fn every_prefix_of_a_lenient_status_line_is_maybe() {
        let line = b"http/1.10   2000 Fine\r\n";
        for cut in 0..13 {
            assert_eq!(
                lenient_status_line(&line[..cut]),
                Err(Verdict::Maybe),
                "{cut}"
            );
        }
        assert!(lenient_status_line(line).is_ok());
    }
}
