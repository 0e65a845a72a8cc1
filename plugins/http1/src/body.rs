//! HTTP/1.x body length rules (RFC 9112 §6.3).

use crate::head::{Head, Method};

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
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
pub fn request_body(head: &Head) -> BodyKind {
    match (head.transfer_encoding, head.chunked, head.content_length) {
        (true, true, _) => BodyKind::Chunked,
        (true, false, _) => BodyKind::UntilClose,
        (false, _, Some(0) | None) => BodyKind::Empty,
        (false, _, Some(n)) => BodyKind::Length(n),
    }
}

/// How a response's body is delimited, given the method of the request it answers.
pub fn response_body(head: &Head, request: Method) -> BodyKind {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{parse_content_length, parse_head, HeadError};
    use crate::start_line::Role;

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
}
