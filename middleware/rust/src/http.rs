//! HTTP/1.x helpers on raw payloads.
//!
//! The head is everything before the first `\r\n\r\n`: the start line, then one header per
//! line. A payload without that blank line (cut short) is all head and has no body. Header
//! names match ASCII case-insensitively; nothing but the edited lines ever changes.

const HEAD_END: &[u8] = b"\r\n\r\n";
const CRLF: &[u8] = b"\r\n";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split_lines(head: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = head;
    while let Some(end) = find(rest, CRLF) {
        lines.push(&rest[..end]);
        rest = &rest[end + CRLF.len()..];
    }
    lines.push(rest);
    lines
}

/// The head's lines (start line first), and the body when the head is complete.
fn split_head(payload: &[u8]) -> (Vec<&[u8]>, Option<&[u8]>) {
    match find(payload, HEAD_END) {
        Some(end) => (
            split_lines(&payload[..end]),
            Some(&payload[end + HEAD_END.len()..]),
        ),
        None => (split_lines(payload), None),
    }
}

fn join_head(lines: &[&[u8]], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = lines.join(CRLF);
    if let Some(body) = body {
        out.extend_from_slice(HEAD_END);
        out.extend_from_slice(body);
    }
    out
}

fn header_name(line: &[u8]) -> Option<&[u8]> {
    line.iter()
        .position(|&b| b == b':')
        .map(|colon| &line[..colon])
}

fn is_named(line: &[u8], name: &[u8]) -> bool {
    header_name(line).is_some_and(|n| n.eq_ignore_ascii_case(name))
}

fn trim_spaces(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

fn check_header_text(name: &[u8], value: &[u8]) {
    let breaks = |text: &[u8]| text.iter().any(|&b| b == b'\r' || b == b'\n');
    assert!(
        !name.is_empty() && !breaks(name) && !name.contains(&b':') && !breaks(value),
        "header name/value must not contain CR or LF (or ':' in the name)"
    );
}

/// Value of the first header called `name` (any case), spaces and tabs trimmed.
pub fn get_header(payload: &[u8], name: impl AsRef<[u8]>) -> Option<&[u8]> {
    let (lines, _) = split_head(payload);
    let line = lines[1..].iter().find(|l| is_named(l, name.as_ref()))?;
    let colon = line.iter().position(|&b| b == b':')?;
    Some(trim_spaces(&line[colon + 1..]))
}

/// The payload with header `name` set to `value`.
///
/// The first line whose name matches (any case) becomes `<its name>: <value>`; without one,
/// `<name>: <value>\r\n` is inserted right after the start line. Nothing else changes.
///
/// # Panics
/// If `name` is empty or holds CR, LF or `:`, or `value` holds CR or LF.
pub fn set_header(payload: &[u8], name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Vec<u8> {
    let (name, value) = (name.as_ref(), value.as_ref());
    check_header_text(name, value);
    let (mut lines, body) = split_head(payload);
    let found = (1..lines.len()).find(|&i| is_named(lines[i], name));
    let wire_name = found.and_then(|i| header_name(lines[i])).unwrap_or(name);
    let new_line = [wire_name, b": ", value].concat();
    match found {
        Some(index) => lines[index] = &new_line,
        None => lines.insert(1, &new_line),
    }
    join_head(&lines, body)
}

/// The payload without any header called `name` (any case).
pub fn delete_header(payload: &[u8], name: impl AsRef<[u8]>) -> Vec<u8> {
    let (mut lines, body) = split_head(payload);
    let mut index = 0;
    lines.retain(|line| {
        index += 1;
        index == 1 || !is_named(line, name.as_ref())
    });
    join_head(&lines, body)
}

fn start_line_parts(payload: &[u8]) -> Vec<&[u8]> {
    let end = find(payload, CRLF).unwrap_or(payload.len());
    payload[..end].split(|&b| b == b' ').collect()
}

fn is_response(parts: &[&[u8]]) -> bool {
    parts[0].starts_with(b"HTTP/")
}

/// `GET` for `GET /x HTTP/1.1`; `None` for a response (or a method that is not UTF-8).
pub fn request_method(payload: &[u8]) -> Option<&str> {
    let parts = start_line_parts(payload);
    if is_response(&parts) || parts[0].is_empty() {
        return None;
    }
    std::str::from_utf8(parts[0]).ok()
}

/// `/x?y` for `GET /x?y HTTP/1.1`; `None` for a response or a start line without target.
pub fn request_path(payload: &[u8]) -> Option<&str> {
    let parts = start_line_parts(payload);
    if is_response(&parts) {
        return None;
    }
    std::str::from_utf8(parts.get(1)?).ok()
}

/// `200` for `HTTP/1.1 200 OK`; `None` for a request.
pub fn response_status(payload: &[u8]) -> Option<u16> {
    let parts = start_line_parts(payload);
    if !is_response(&parts) {
        return None;
    }
    std::str::from_utf8(parts.get(1)?).ok()?.parse().ok()
}

/// The bytes after the head's blank line (empty when there is none), not de-chunked.
pub fn body(payload: &[u8]) -> &[u8] {
    split_head(payload).1.unwrap_or_default()
}

/// The payload with a new body and `Content-Length: <len>` set; `Transfer-Encoding` is removed.
pub fn set_body(payload: &[u8], body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let (mut lines, _) = split_head(payload);
    while lines.len() > 1 && lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop(); // a head cut short may end in "\r\n"
    }
    let head = delete_header(&join_head(&lines, None), "Transfer-Encoding");
    let mut out = set_header(&head, "Content-Length", body.len().to_string());
    out.extend_from_slice(HEAD_END);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &[u8] = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    const POST: &[u8] = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n\x00\xff\r\n";

    #[test]
    fn get_header_is_case_insensitive_and_trimmed() {
        let payload = b"GET / HTTP/1.1\r\nhOsT: \t y \r\n\r\n";
        assert_eq!(get_header(payload, "Host"), Some(&b"y"[..]));
        assert_eq!(get_header(GET, "Cookie"), None);
        assert_eq!(
            get_header(b"GET / HTTP/1.1\r\n\r\nHost: body", "Host"),
            None
        );
    }

    #[test]
    fn set_header_replaces_first_match_keeping_its_name() {
        let payload = b"GET / HTTP/1.1\r\nx-a:1\r\nX-A: 2\r\n\r\nbody";
        assert_eq!(
            set_header(payload, "X-A", "new"),
            b"GET / HTTP/1.1\r\nx-a: new\r\nX-A: 2\r\n\r\nbody"
        );
    }

    #[test]
    fn set_header_inserts_after_start_line() {
        assert_eq!(
            set_header(GET, "X-New", "v"),
            b"GET /a?b=c HTTP/1.1\r\nX-New: v\r\nHost: x\r\nAccept: */*\r\n\r\n"
        );
        assert_eq!(
            set_header(b"GET / HTTP/1.1\r\n\r\n", "A", "b"),
            b"GET / HTTP/1.1\r\nA: b\r\n\r\n"
        );
        assert_eq!(
            set_header(b"GET / HTTP/1.1\r\nHost: cut", "A", "b"),
            b"GET / HTTP/1.1\r\nA: b\r\nHost: cut"
        );
    }

    #[test]
    #[should_panic(expected = "must not contain CR or LF")]
    fn set_header_rejects_line_breaks() {
        set_header(GET, "X", "a\r\nEvil: 1");
    }

    #[test]
    fn delete_header_removes_all() {
        let payload = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\na: 3\r\n\r\n";
        assert_eq!(
            delete_header(payload, "A"),
            b"GET / HTTP/1.1\r\nB: 2\r\n\r\n"
        );
    }

    #[test]
    fn start_line() {
        assert_eq!(request_method(GET), Some("GET"));
        assert_eq!(request_path(GET), Some("/a?b=c"));
        assert_eq!(response_status(GET), None);
        let not_found = b"HTTP/1.0 404 Not Found\r\n\r\n";
        assert_eq!(response_status(not_found), Some(404));
        assert_eq!(request_method(not_found), None);
        assert_eq!(request_method(b""), None);
    }

    #[test]
    fn body_and_set_body() {
        assert_eq!(body(POST), b"\x00\xff\r\n");
        assert_eq!(body(b"GET / HTTP/1.1\r\nHost: cut"), b"");
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n";
        assert_eq!(
            set_body(chunked, "xyz"),
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
        );
        assert_eq!(
            set_body(POST, ""),
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
