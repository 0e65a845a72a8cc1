//! Rewriting a captured request for the target, changing only what must change.
//!
//! Everything else is copied byte for byte: the method, the rest of the request line, header
//! names with their case, header order, spacing, line endings and the body. What changes:
//! * the `Host` header's value becomes the target's authority (unless `--http-original-host`);
//!   a request without one gets `Host:` appended to its headers;
//! * the request-target gets the output URL's base path as a prefix (`/users` → `/api/users`);
//!   an absolute-form target (`http://h/p`, a proxy request) is reduced to its origin form first;
//! * `close` and (on HTTP/1.1) `keep-alive` are removed from `Connection` (the line goes when
//!   nothing else is left), and `Proxy-Connection` is removed, so pooled connections stay up;
//! * `Expect: 100-continue` is removed: the body is always sent right after the head.

use crate::form::FormError;
use shadowtap_http1::headers;
use std::fmt;

/// What to change in a request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Edits<'a> {
    /// New `Host` value; `None` keeps the captured one.
    pub host: Option<&'a str>,
    /// Prefix for origin-form request-targets (`/api`); empty for none.
    pub base_path: &'a str,
    /// Replaces the whole request-target (used for redirects); wins over `base_path`.
    pub replace_target: Option<&'a str>,
    /// Turns the request into a bodyless `GET` (a 303 redirect).
    pub into_get: bool,
}

/// Facts about the rewritten request that the exchange needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// A `HEAD` request: its response has no body.
    pub head: bool,
}

/// Why a captured request cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Not a parseable HTTP/1.x request head.
    Unparsable(String),
    /// `CONNECT` opens a tunnel; there is nothing to replay.
    Connect,
    /// The message cannot be converted to the other protocol.
    Form(FormError),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Unparsable(why) => write!(f, "unparsable request: {why}"),
            RequestError::Connect => write!(f, "CONNECT requests are not replayed"),
            RequestError::Form(e) => write!(f, "malformed message: {e}"),
        }
    }
}

/// The head's length if `payload` is a complete, valid request head (httparse, strict: what is
/// replayed must parse at the target too).
fn validate(payload: &[u8]) -> Result<usize, RequestError> {
    let mut storage = [httparse::EMPTY_HEADER; 64];
    let mut large;
    let mut request = httparse::Request::new(&mut storage);
    let parsed = match request.parse(payload) {
        Err(httparse::Error::TooManyHeaders) => {
            large = vec![httparse::EMPTY_HEADER; 1024];
            request = httparse::Request::new(&mut large);
            request.parse(payload)
        }
        other => other,
    };
    match parsed {
        Ok(httparse::Status::Complete(n)) => Ok(n),
        Ok(httparse::Status::Partial) => Err(RequestError::Unparsable("incomplete head".into())),
        Err(e) => Err(RequestError::Unparsable(e.to_string())),
    }
}

/// Writes the rewritten `payload` to `out` (which is cleared first).
pub fn rewrite(
    payload: &[u8],
    edits: &Edits,
    out: &mut Vec<u8>,
) -> Result<RequestInfo, RequestError> {
    let head_len = validate(payload)?;
    // The head parsed strictly; its parts and fields are located by the http1 toolkit.
    let head = &payload[..head_len];
    let unparsable = || RequestError::Unparsable("no request line".into());
    let line = headers::request_line(head).ok_or_else(unparsable)?;
    let method = line.method;
    if method.eq_ignore_ascii_case(b"CONNECT") {
        return Err(RequestError::Connect);
    }
    let http10 = line.version.eq_ignore_ascii_case(b"HTTP/1.0");
    let path = std::str::from_utf8(line.target).map_err(|_| unparsable())?;
    let (target_start, target_end) = (line.target_at.start, line.target_at.end);
    let layout = headers::layout(head);
    let request_line_end = layout.fields_start;
    let newline = layout.newline();

    out.clear();
    out.reserve(payload.len() + 64);
    if edits.into_get {
        // The method need not start the payload: empty lines before the request line are
        // allowed (RFC 9112 §2.2) and kept.
        let method_start = line.method_at.start;
        out.extend_from_slice(&payload[..method_start]);
        out.extend_from_slice(b"GET");
        out.extend_from_slice(&payload[line.method_at.end..target_start]);
    } else {
        out.extend_from_slice(&payload[..target_start]);
    }
    match edits.replace_target {
        Some(target) => out.extend_from_slice(target.as_bytes()),
        None => {
            let origin = origin_form(path);
            if origin.starts_with('/') {
                out.extend_from_slice(edits.base_path.as_bytes());
            }
            out.extend_from_slice(origin.as_bytes());
        }
    }
    out.extend_from_slice(&payload[target_end..request_line_end]);

    let mut cursor = request_line_end;
    let mut saw_host = false;
    for field in headers::fields(head) {
        let (line_start, line_end) = (field.line.start, field.line.end);
        let (value_start, value_end) = (field.value_at.start, field.value_at.end);
        out.extend_from_slice(&payload[cursor..line_start]);
        cursor = line_end;
        let keep_line = if field.is(b"host") {
            saw_host = true;
            if let Some(host) = edits.host {
                out.extend_from_slice(&payload[line_start..value_start]);
                out.extend_from_slice(host.as_bytes());
                out.extend_from_slice(&payload[value_end..line_end]);
                continue;
            }
            true
        } else if field.is(b"connection") {
            let all = headers::list(field.value).count();
            let kept: Vec<&[u8]> = headers::list(field.value)
                .filter(|t| {
                    !t.eq_ignore_ascii_case(b"close")
                        && (http10 || !t.eq_ignore_ascii_case(b"keep-alive"))
                })
                .collect();
            if kept.len() == all {
                true
            } else {
                if !kept.is_empty() {
                    out.extend_from_slice(&payload[line_start..value_start]);
                    out.extend_from_slice(&kept.join(&b", "[..]));
                    out.extend_from_slice(&payload[value_end..line_end]);
                }
                continue;
            }
        } else if field.is(b"proxy-connection") {
            false
        } else if field.is(b"expect") {
            !field.value.eq_ignore_ascii_case(b"100-continue")
        } else if edits.into_get {
            !(field.is(b"content-length") || field.is(b"transfer-encoding"))
        } else {
            true
        };
        if keep_line {
            out.extend_from_slice(&payload[line_start..line_end]);
        }
    }
    if !saw_host {
        if let Some(host) = edits.host {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(newline);
        }
    }
    if edits.into_get {
        out.extend_from_slice(&payload[cursor..head_len]);
    } else {
        out.extend_from_slice(&payload[cursor..]);
    }
    Ok(RequestInfo {
        head: method.eq_ignore_ascii_case(b"HEAD") && !edits.into_get,
    })
}

/// `http://host/p?q` → `/p?q`; `http://host` → `/`; anything else unchanged.
pub(crate) fn origin_form(target: &str) -> &str {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return target;
    };
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_keeps_empty_lines_before_the_request_line() {
        let edits = Edits {
            replace_target: Some("/moved"),
            into_get: true,
            ..Edits::default()
        };
        assert_eq!(
            run(
                "\r\n\nPOST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
                edits
            ),
            "\r\n\nGET /moved HTTP/1.1\r\n\r\n"
        );
    }

    fn run(payload: &str, edits: Edits) -> String {
        let mut out = Vec::new();
        rewrite(payload.as_bytes(), &edits, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn host(h: &str) -> Edits<'_> {
        Edits {
            host: Some(h),
            ..Edits::default()
        }
    }

    #[test]
    fn replaces_host_and_keeps_everything_else() {
        let request = "POST /submit?a=1&b=%20 HTTP/1.1\r\nX-ODD-Case: Yes\r\nhost:orig.example\r\n\
                       content-TYPE:  text/plain\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            run(request, host("127.0.0.1:8080")),
            "POST /submit?a=1&b=%20 HTTP/1.1\r\nX-ODD-Case: Yes\r\nhost:127.0.0.1:8080\r\n\
             content-TYPE:  text/plain\r\nContent-Length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn original_host_changes_nothing() {
        let request = "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
        assert_eq!(run(request, Edits::default()), request);
    }

    #[test]
    fn inserts_missing_host() {
        assert_eq!(
            run("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", host("t:1")),
            "GET / HTTP/1.0\r\nAccept: */*\r\nHost: t:1\r\n\r\n"
        );
        assert_eq!(
            run("GET / HTTP/1.0\n\n", host("t")),
            "GET / HTTP/1.0\nHost: t\n\n"
        );
    }

    #[test]
    fn prefixes_base_path() {
        let edits = Edits {
            host: Some("staging"),
            base_path: "/api",
            ..Edits::default()
        };
        assert_eq!(
            run("GET /users?x=1 HTTP/1.1\r\nHost: prod\r\n\r\n", edits),
            "GET /api/users?x=1 HTTP/1.1\r\nHost: staging\r\n\r\n"
        );
        assert_eq!(
            run("GET http://prod/users?x=1 HTTP/1.1\r\n\r\n", edits),
            "GET /api/users?x=1 HTTP/1.1\r\nHost: staging\r\n\r\n"
        );
        assert_eq!(
            run("OPTIONS * HTTP/1.1\r\nHost: prod\r\n\r\n", edits),
            "OPTIONS * HTTP/1.1\r\nHost: staging\r\n\r\n"
        );
        assert_eq!(origin_form("HTTP://prod"), "/");
        assert_eq!(origin_form("http://prod?q"), "/");
    }

    #[test]
    fn strips_hop_by_hop_connection_handling() {
        let request = "GET / HTTP/1.1\r\nConnection: close\r\nProxy-Connection: keep-alive\r\n\
                       X: 1\r\nConnection: Upgrade, keep-alive\r\nUpgrade: h2c\r\n\r\n";
        assert_eq!(
            run(request, Edits::default()),
            "GET / HTTP/1.1\r\nX: 1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        );
        // HTTP/1.0 needs keep-alive to stay up; it is kept.
        let request = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
        assert_eq!(run(request, Edits::default()), request);
    }

    #[test]
    fn removes_expect_continue() {
        let request = "PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(
            run(request, Edits::default()),
            "PUT /f HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"
        );
    }

    #[test]
    fn body_bytes_are_preserved_exactly() {
        let mut request = b"POST /bin HTTP/1.1\r\nHost: x\r\nContent-Length: 256\r\n\r\n".to_vec();
        request.extend((0..=255u8).collect::<Vec<_>>());
        let mut out = Vec::new();
        rewrite(&request, &host("x"), &mut out).unwrap();
        assert_eq!(out, request);
    }

    #[test]
    fn redirect_into_get() {
        let edits = Edits {
            host: None,
            replace_target: Some("/next"),
            into_get: true,
            ..Edits::default()
        };
        assert_eq!(
            run(
                "POST /old HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX: y\r\n\r\nabc",
                edits
            ),
            "GET /next HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n"
        );
    }

    #[test]
    fn errors() {
        let mut out = Vec::new();
        assert_eq!(
            rewrite(
                b"CONNECT h:443 HTTP/1.1\r\n\r\n",
                &Edits::default(),
                &mut out
            ),
            Err(RequestError::Connect)
        );
        assert!(rewrite(
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            &Edits::default(),
            &mut out
        )
        .is_err());
        assert!(rewrite(b"\x00\x01 garbage", &Edits::default(), &mut out).is_err());
    }

    #[test]
    fn head_is_detected() {
        let mut out = Vec::new();
        let info = rewrite(b"HEAD / HTTP/1.1\r\n\r\n", &Edits::default(), &mut out).unwrap();
        assert!(info.head);
    }
}
