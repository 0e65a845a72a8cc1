//! The request head: how the body is delimited, keep-alive, `Expect`, and the bearer token.

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
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<RequestHead>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let http10 = request.version == Some(0);
    let mut head = RequestHead {
        len,
        body: Body::Length(0),
        close: http10,
        expect_continue: false,
        bearer: None,
    };
    for header in request.headers.iter() {
        apply_header(&mut head, header.name, header.value, http10)?;
    }
    Ok(Some(head))
}

fn apply_header(
    head: &mut RequestHead,
    name: &str,
    value: &[u8],
    http10: bool,
) -> Result<(), httparse::Error> {
    if name.eq_ignore_ascii_case("content-length") {
        if !matches!(head.body, Body::Chunked) {
            let length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(httparse::Error::HeaderValue)?;
            head.body = Body::Length(length);
        }
    } else if name.eq_ignore_ascii_case("transfer-encoding") {
        let chunked = value
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if chunked {
            head.body = Body::Chunked;
        }
    } else if name.eq_ignore_ascii_case("connection") {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                head.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                head.close = false;
            }
        }
    } else if name.eq_ignore_ascii_case("expect") {
        head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
    } else if name.eq_ignore_ascii_case("authorization") {
        head.bearer = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| value[7..].trim_ascii().to_vec());
    }
    Ok(())
}
