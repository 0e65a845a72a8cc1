//! The request head: how the body is delimited, keep-alive, `Expect`, and the bearer token.

use shadowtap_http1::{self as http1, headers::Field, BodyKind, Role};

/// How a request's body is delimited.
pub(crate) enum Body {
    Length(u64),
    Chunked,
}

/// What the connection needs to know of a parsed head.
pub(crate) struct RequestHead {
    /// Bytes of the head, through the blank line.
    pub len: usize,
    pub body: Body,
    pub close: bool,
    pub expect_continue: bool,
    /// The token of `Authorization: Bearer <token>`, if any.
    pub bearer: Option<Vec<u8>>,
}

/// Parses the head at the start of `buf`; `None` while it is incomplete.
///
/// httparse checks the request's syntax and the header count; the body's framing (RFC 9112
/// §6.3) and the fields read here come from the http1 toolkit.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<RequestHead>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let block = &buf[..len];
    let framing =
        http1::parse_head(Role::Client, block).map_err(|_| httparse::Error::HeaderValue)?;
    let body = match http1::request_body(&framing) {
        BodyKind::Empty => Body::Length(0),
        BodyKind::Length(n) => Body::Length(n),
        BodyKind::Chunked => Body::Chunked,
        // A request whose last transfer coding is not chunked has no knowable length
        // (RFC 9112 §6.3: answered with 400).
        BodyKind::UntilClose => return Err(httparse::Error::HeaderValue),
    };
    let http10 = request.version == Some(0);
    let mut head = RequestHead {
        len,
        body,
        close: http10,
        expect_continue: false,
        bearer: None,
    };
    for field in http1::headers::fields(block) {
        apply_field(&mut head, &field, http10);
    }
    Ok(Some(head))
}

fn apply_field(head: &mut RequestHead, field: &Field<'_>, http10: bool) {
    let value = field.value;
    if field.is(b"connection") {
        for token in http1::headers::list(value) {
            if token.eq_ignore_ascii_case(b"close") {
                head.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                head.close = false;
            }
        }
    } else if field.is(b"expect") {
        head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
    } else if field.is(b"authorization") {
        head.bearer = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| value[7..].trim_ascii().to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> Result<Option<RequestHead>, httparse::Error> {
        parse_head(raw)
    }

    #[test]
    fn framing_and_fields() {
        let h = head(
            b"POST / HTTP/1.1\r\nContent-Length: 7, 7\r\nConnection: keep-alive, Close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(matches!(h.body, Body::Length(7)) && h.close);
        let h = head(b"PUT / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nAuthorization: Bearer  t0k \r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.body, Body::Chunked) && !h.close && h.expect_continue);
        assert_eq!(h.bearer.as_deref(), Some(&b"t0k"[..]));
        assert!(head(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"\x00\x01 garbage\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
    }
}
