//! gRPC facts of a message in HTTP/1.1 form, for messages that carry no capture facts (read
//! from a `.gor` file, Kafka or a middleware): the call from a request's path, the status from
//! the trailer block (or the headers of a trailers-only response), the length-prefixed
//! messages from the body (counted as the HTTP/2 decoder counts them) and `grpc-encoding`.
//! Also the split of such a payload into head, body and trailer block.

use serde::Serialize;
use shadowtap_api::{GrpcFacts, Kind};
use shadowtap_http1::headers;
use std::borrow::Cow;

/// A payload cut into its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// Start line and header fields, through the blank line.
    pub head: &'a [u8],
    /// The body (de-chunked when it was chunked).
    pub body: Cow<'a, [u8]>,
    /// Trailer field lines after the body (`name: value\r\n`…), possibly empty.
    pub trailers: &'a [u8],
}

/// Splits an HTTP/1.1-form payload; `None` when its head is incomplete.
///
/// The body is `Content-Length` bytes (as many as are there), or the chunked body. Without
/// either, an `HTTP/2` message (whose form always has `content-length` when it has a body) has
/// no body and what follows the head is its trailer block; an HTTP/1 body runs to the end.
pub fn split(payload: &[u8]) -> Option<Parts<'_>> {
    let layout = headers::layout(payload);
    if !layout.complete {
        return None;
    }
    let head = &payload[..layout.head_end];
    let rest = &payload[layout.head_end..];
    if headers::is_chunked(head) {
        return Some(match shadowtap_http1::dechunk(rest, rest.len()) {
            Ok(dechunked) => Parts {
                head,
                body: Cow::Owned(dechunked.data),
                trailers: &rest[dechunked.trailers],
            },
            Err(_) => Parts {
                head,
                body: Cow::Borrowed(rest),
                trailers: &[],
            },
        });
    }
    let length = headers::value(head, b"content-length").and_then(|v| {
        std::str::from_utf8(v.trim_ascii())
            .ok()?
            .parse::<u64>()
            .ok()
    });
    let body_len = match length {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(rest.len()),
        None if is_http2(payload) => 0,
        None => rest.len(),
    };
    let (body, trailers) = rest.split_at(body_len);
    Some(Parts {
        head,
        body: Cow::Borrowed(body),
        trailers,
    })
}

/// `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`… of the start line, as `1.0`, `1.1`, `2`.
pub fn http_version(payload: &[u8]) -> Option<String> {
    let version = match headers::request_line(payload) {
        Some(line) => line.version,
        None => headers::status_line(payload)?.version,
    };
    let number = version
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case(b"HTTP/"))
        .map(|_| &version[5..])?;
    let number = match number {
        b"2.0" => b"2".as_slice(),
        other => other,
    };
    let printable = !number.is_empty()
        && number.len() <= 8
        && number.iter().all(|b| b.is_ascii_digit() || *b == b'.');
    printable.then(|| String::from_utf8_lossy(number).into_owned())
}

fn is_http2(payload: &[u8]) -> bool {
    http_version(payload).as_deref() == Some("2")
}

/// The gRPC facts of `payload` when its content type is `application/grpc*`. A response
/// names no call (its request's path is not in it).
pub fn grpc_facts_of(kind: Kind, payload: &[u8]) -> Option<GrpcFacts> {
    let parts = split(payload)?;
    if !is_grpc_head(parts.head) {
        return None;
    }
    let mut facts = GrpcFacts {
        encoding: headers::value(parts.head, b"grpc-encoding")
            .map(|v| String::from_utf8_lossy(v.trim_ascii()).into_owned()),
        ..GrpcFacts::default()
    };
    if kind == Kind::Request {
        let line = headers::request_line(payload)?;
        (facts.service, facts.method) =
            shadowtap_h2::service_method(&String::from_utf8_lossy(line.target));
    } else {
        facts.status = trailer_value(parts.trailers, b"grpc-status")
            .or_else(|| headers::value(parts.head, b"grpc-status"))
            .and_then(|v| std::str::from_utf8(v.trim_ascii()).ok()?.parse().ok());
    }
    let mut counts = shadowtap_h2::GrpcInfo::default();
    shadowtap_h2::count_grpc_messages(&parts.body, &mut counts);
    facts.message_count = counts.message_count;
    facts.compressed_messages = counts.compressed_messages;
    Some(facts)
}

/// Whether a head's content type is gRPC's (`application/grpc*`).
pub fn is_grpc_head(head: &[u8]) -> bool {
    headers::value(head, b"content-type")
        .is_some_and(|v| shadowtap_h2::is_grpc_content_type(v.trim_ascii()))
}

/// The value of field `name` (any case) in a trailer block.
fn trailer_value<'a>(block: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    block.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(name)
            .then(|| line[colon + 1..].trim_ascii())
    })
}

/// The `grpc` object of a record.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct GrpcRecord {
    /// `package.Service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `Method`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `grpc-status` (responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// Length-prefixed messages in the body.
    pub message_count: usize,
    /// `grpc-encoding`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Messages with the compressed flag.
    pub compressed_messages: usize,
    /// With `--grpc-descriptor-set`: each message as proto3 JSON (`null` for one that did not
    /// decode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<serde_json::Value>>,
    /// With `--grpc-descriptor-set`: why (the first) decoding failed, and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_error: Option<String>,
}

impl GrpcRecord {
    /// The record of `facts` (without decoded messages).
    pub fn of(facts: &GrpcFacts) -> GrpcRecord {
        let known = |s: &str| (!s.is_empty()).then(|| s.to_string());
        GrpcRecord {
            service: known(&facts.service),
            method: known(&facts.method),
            status: facts.status,
            message_count: facts.message_count,
            encoding: facts.encoding.clone(),
            compressed_messages: facts.compressed_messages,
            messages: None,
            decode_error: None,
        }
    }
}

/// A gRPC body of `messages` (compressed flag, bytes), for tests.
#[cfg(test)]
pub(crate) fn framed(messages: &[(bool, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (compressed, data) in messages {
        body.push(u8::from(*compressed));
        body.extend((data.len() as u32).to_be_bytes());
        body.extend_from_slice(data);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(head: &str, body: &[u8], trailers: &str) -> Vec<u8> {
        let mut out = head.as_bytes().to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(trailers.as_bytes());
        out
    }

    #[test]
    fn versions_come_from_the_start_line() {
        assert_eq!(
            http_version(b"GET / HTTP/1.1\r\n\r\n").as_deref(),
            Some("1.1")
        );
        assert_eq!(
            http_version(b"GET / HTTP/1.0\r\n\r\n").as_deref(),
            Some("1.0")
        );
        assert_eq!(http_version(b"HTTP/2 200\r\n\r\n").as_deref(), Some("2"));
        assert_eq!(
            http_version(b"GET / HTTP/2.0\r\n\r\n").as_deref(),
            Some("2")
        );
        assert_eq!(http_version(b"GET /\r\n"), None);
        assert_eq!(http_version(b"\x00\x01binary"), None);
    }

    #[test]
    fn a_request_names_its_call_and_counts_its_messages() {
        let body = framed(&[(false, b"\x0a\x01a"), (true, b"zz")]);
        let head = format!(
            "POST /pkg.Echo/Unary HTTP/2\r\ncontent-type: application/grpc\r\ngrpc-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let facts = grpc_facts_of(Kind::Request, &payload(&head, &body, "")).unwrap();
        assert_eq!(
            facts,
            GrpcFacts {
                service: "pkg.Echo".into(),
                method: "Unary".into(),
                status: None,
                message_count: 2,
                encoding: Some("gzip".into()),
                compressed_messages: 1,
            }
        );
    }

    #[test]
    fn a_response_status_comes_from_the_trailers_or_a_trailers_only_head() {
        let body = framed(&[(false, b"")]);
        let head = format!(
            "HTTP/2 200\r\ncontent-type: application/grpc+proto\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let full = payload(&head, &body, "grpc-status: 0\r\ngrpc-message: \r\n\r\n");
        let facts = grpc_facts_of(Kind::Response, &full).unwrap();
        assert_eq!((facts.status, facts.message_count), (Some(0), 1));
        assert!(facts.service.is_empty());
        let only = b"HTTP/2 200\r\ncontent-type: application/grpc\r\ngrpc-status: 5\r\n\r\n";
        let facts = grpc_facts_of(Kind::Response, only).unwrap();
        assert_eq!((facts.status, facts.message_count), (Some(5), 0));
        let empty_body_trailers =
            b"HTTP/2 200\r\ncontent-type: application/grpc\r\n\r\ngrpc-status: 13\r\n\r\n";
        let facts = grpc_facts_of(Kind::Response, empty_body_trailers).unwrap();
        assert_eq!((facts.status, facts.message_count), (Some(13), 0));
    }

    #[test]
    fn other_content_types_and_cut_heads_have_no_grpc_facts() {
        assert_eq!(
            grpc_facts_of(
                Kind::Request,
                b"POST /a/b HTTP/2\r\ncontent-type: application/json\r\n\r\n"
            ),
            None
        );
        assert_eq!(
            grpc_facts_of(Kind::Request, b"POST /a/b HTTP/2\r\ncontent-type: applic"),
            None
        );
    }

    #[test]
    fn http1_bodies_run_to_the_end_or_are_dechunked() {
        let plain = split(b"HTTP/1.1 200 OK\r\n\r\nabc").unwrap();
        assert_eq!((&plain.body[..], plain.trailers), (&b"abc"[..], &b""[..]));
        let chunked = split(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(&chunked.body[..], b"abc");
        assert_eq!(trailer_value(chunked.trailers, b"X"), Some(&b"1"[..]));
    }
}
