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
}
