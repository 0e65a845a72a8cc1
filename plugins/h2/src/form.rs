//! Writing an HTTP/2 message in its HTTP/1.1 form (the crate documentation's "payload form"),
//! from parts a caller already has: for replayed responses, which come from an HTTP/2 client
//! library rather than from this crate's decoder.
//!
//! The rules are the decoder's: the start line, `host:` from `:authority` (a `host` field is
//! then left out), the fields in the order given, `name: value`, a `content-length` with the
//! body's size when the body is not empty and none was given, the blank line, the body, and
//! only when there are trailers the trailer fields followed by a blank line.

/// The first line of a message and what belongs to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormStart<'a> {
    /// `METHOD PATH HTTP/2`, then `host: AUTHORITY` when there is one.
    Request {
        /// `:method`.
        method: &'a [u8],
        /// `:path`.
        path: &'a [u8],
        /// `:authority`.
        authority: Option<&'a [u8]>,
    },
    /// `HTTP/2 STATUS`.
    Response {
        /// `:status` (three digits).
        status: &'a [u8],
    },
}

/// Appends the HTTP/1.1 form of a message to `out`: `fields` and `trailers` are
/// `(name, value)` pairs in the order to write them.
pub fn write_form<'f, 't>(
    out: &mut Vec<u8>,
    start: FormStart<'_>,
    fields: impl IntoIterator<Item = (&'f [u8], &'f [u8])>,
    body: &[u8],
    trailers: Option<impl IntoIterator<Item = (&'t [u8], &'t [u8])>>,
) {
    let mut skip_host = false;
    match start {
        FormStart::Request {
            method,
            path,
            authority,
        } => {
            out.extend_from_slice(method);
            out.push(b' ');
            out.extend_from_slice(path);
            out.extend_from_slice(b" HTTP/2\r\n");
            if let Some(authority) = authority {
                write_field(out, b"host", authority);
                skip_host = true;
            }
        }
        FormStart::Response { status } => {
            out.extend_from_slice(b"HTTP/2 ");
            out.extend_from_slice(status);
            out.extend_from_slice(b"\r\n");
        }
    }
    let mut had_content_length = false;
    for (name, value) in fields {
        if skip_host && name.eq_ignore_ascii_case(b"host") {
            continue;
        }
        had_content_length |= name.eq_ignore_ascii_case(b"content-length");
        write_field(out, name, value);
    }
    if !had_content_length && !body.is_empty() {
        write_field(out, b"content-length", body.len().to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    if let Some(trailers) = trailers {
        for (name, value) in trailers {
            write_field(out, name, value);
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_TRAILERS: Option<[(&[u8], &[u8]); 0]> = None;

    fn form<'f, 't>(
        start: FormStart<'_>,
        fields: &[(&'f [u8], &'f [u8])],
        body: &[u8],
        trailers: Option<&[(&'t [u8], &'t [u8])]>,
    ) -> String {
        let mut out = Vec::new();
        write_form(
            &mut out,
            start,
            fields.iter().copied(),
            body,
            trailers.map(|t| t.iter().copied()),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_response_with_a_body_gets_a_content_length() {
        let start = FormStart::Response { status: b"200" };
        assert_eq!(
            form(start, &[(b"server", b"nginx")], b"hello", None),
            "HTTP/2 200\r\nserver: nginx\r\ncontent-length: 5\r\n\r\nhello"
        );
        assert_eq!(
            form(start, &[(b"content-length", b"9")], b"", None),
            "HTTP/2 200\r\ncontent-length: 9\r\n\r\n",
            "a HEAD answer keeps what was sent"
        );
        let mut out = Vec::new();
        write_form(&mut out, start, [], b"", NO_TRAILERS);
        assert_eq!(out, b"HTTP/2 200\r\n\r\n");
    }

    #[test]
    fn trailers_follow_the_body_as_a_field_block() {
        let start = FormStart::Response { status: b"200" };
        assert_eq!(
            form(
                start,
                &[(b"content-type", b"application/grpc")],
                b"\0\0\0\0\x01x",
                Some(&[(b"grpc-status", b"0"), (b"grpc-message", b"")])
            ),
            "HTTP/2 200\r\ncontent-type: application/grpc\r\ncontent-length: 6\r\n\r\n\
             \0\0\0\0\x01xgrpc-status: 0\r\ngrpc-message: \r\n\r\n"
        );
    }

    #[test]
    fn a_request_takes_host_from_the_authority() {
        let start = FormStart::Request {
            method: b"POST",
            path: b"/p?q=1",
            authority: Some(b"example:8080"),
        };
        assert_eq!(
            form(start, &[(b"host", b"other"), (b"x-a", b"1")], b"ab", None),
            "POST /p?q=1 HTTP/2\r\nhost: example:8080\r\nx-a: 1\r\ncontent-length: 2\r\n\r\nab"
        );
    }
}
