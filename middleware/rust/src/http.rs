//! HTTP/1.x helpers on raw payloads, on top of shadowtap's HTTP/1 toolkit
//! ([`shadowtap_http1::headers`]).
//!
//! The head is the start line, then one header per line, through the first blank line; lines
//! end in CRLF or a bare LF, and a line starting with a space or tab continues the header
//! above it. A payload without that blank line (cut short) is all head and has no body. Header
//! names match ASCII case-insensitively; nothing but the edited lines ever changes.

use shadowtap_http1::headers::{self, Place};

fn check_header_text(name: &[u8], value: &[u8]) {
    assert!(
        headers::check_field(name, value).is_ok(),
        "header name/value must not contain CR or LF (or NUL in the value; the name must be \
         a token, without ':' or spaces)"
    );
}

/// Value of the first header called `name` (any case), spaces and tabs trimmed.
pub fn get_header(payload: &[u8], name: impl AsRef<[u8]>) -> Option<&[u8]> {
    headers::value(payload, name.as_ref())
}

/// The payload with header `name` set to `value`.
///
/// The value of the first header whose name matches (any case) is replaced — its name, the
/// spaces around the value and the line end stay; without one, `<name>: <value>` is inserted
/// right after the start line. Nothing else changes.
///
/// # Panics
/// If `name` is empty or not a token (it holds CR, LF, `:`, a space...), or `value` holds CR,
/// LF or NUL.
pub fn set_header(payload: &[u8], name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Vec<u8> {
    let (name, value) = (name.as_ref(), value.as_ref());
    check_header_text(name, value);
    let mut out = payload.to_vec();
    headers::set(&mut out, name, value, Place::First).expect("checked");
    out
}

/// The payload without any header called `name` (any case).
pub fn delete_header(payload: &[u8], name: impl AsRef<[u8]>) -> Vec<u8> {
    let mut out = payload.to_vec();
    headers::remove(&mut out, name.as_ref());
    out
}

/// `GET` for `GET /x HTTP/1.1`; `None` for a response (or a method that is not UTF-8).
pub fn request_method(payload: &[u8]) -> Option<&str> {
    std::str::from_utf8(headers::request_line(payload)?.method).ok()
}

/// `/x?y` for `GET /x?y HTTP/1.1`; `None` for a response or a start line without target.
pub fn request_path(payload: &[u8]) -> Option<&str> {
    std::str::from_utf8(headers::request_line(payload)?.target).ok()
}

/// `200` for `HTTP/1.1 200 OK`; `None` for a request.
pub fn response_status(payload: &[u8]) -> Option<u16> {
    headers::status_line(payload).map(|s| s.status)
}

/// The bytes after the head's blank line (empty when there is none), not de-chunked.
pub fn body(payload: &[u8]) -> &[u8] {
    &payload[headers::layout(payload).head_end..]
}

/// The payload with a new body and `Content-Length: <len>` set; `Transfer-Encoding` is removed.
pub fn set_body(payload: &[u8], body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let layout = headers::layout(payload);
    let mut out = payload[..layout.head_end].to_vec();
    headers::remove(&mut out, b"Transfer-Encoding");
    let length = body.len().to_string();
    headers::set(&mut out, b"Content-Length", length.as_bytes(), Place::First).expect("valid");
    if !layout.complete {
        // A head cut short gets its blank line.
        if !out.ends_with(b"\n") {
            out.extend_from_slice(layout.newline());
        }
        out.extend_from_slice(layout.newline());
    }
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
    fn bare_lf_and_folded_heads() {
        let payload = b"GET / HTTP/1.1\nX: a\n b\nY: 1\n\nbody";
        assert_eq!(get_header(payload, "y"), Some(&b"1"[..]));
        assert_eq!(
            set_header(payload, "X", "new"),
            b"GET / HTTP/1.1\nX: new\nY: 1\n\nbody"
        );
        assert_eq!(delete_header(payload, "x"), b"GET / HTTP/1.1\nY: 1\n\nbody");
        assert_eq!(body(payload), b"body");
        assert_eq!(
            set_body(b"GET / HTTP/1.1\nHost: cut", "ab"),
            b"GET / HTTP/1.1\nContent-Length: 2\nHost: cut\n\nab"
        );
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
