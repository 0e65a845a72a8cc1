//! A request's parts ([`crate::form`]) as an HTTP/2 request: pseudo-header fields, regular
//! fields, the body and a trailers block.
//!
//! * `:method` and `:path` from the start line; the path gets the output URL's base path as a
//!   prefix (an absolute-form target is reduced to its origin form first), as for HTTP/1;
//! * `:scheme` is the target's (`http` for h2c, `https`); `:authority` is the target's
//!   `host[:port]`, or with `--http-original-host` the captured `Host` (`host:` of the
//!   HTTP/2 form);
//! * regular fields keep their order, names lowercased; connection-specific ones are dropped
//!   (RFC 9113 §8.2.2): `Connection` and the fields it names, `Keep-Alive`,
//!   `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, `HTTP2-Settings`, `Host` (it is the
//!   authority), `Expect: 100-continue`, and `TE` unless it is `trailers`;
//! * a gRPC `-bin` field in true-binary form (a leading NUL byte, as a peer that advertised
//!   true-binary metadata sends it and the capture keeps it) is sent base64-encoded, the form
//!   every gRPC peer accepts;
//! * a gRPC call (`content-type: application/grpc…`) is sent without `content-length`: the
//!   HTTP/1.1 form adds one to every body, gRPC clients send none, and a gRPC server would
//!   show it to the application as metadata;
//! * the trailers go in a HEADERS frame after the body, filtered the same way.

use crate::form::{FormError, Parts};
use crate::request::origin_form;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use shadowtap_h2::is_grpc_content_type;

/// What the target decides about a request.
#[derive(Clone, Copy, Debug)]
pub struct H2Edits<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The target's `host[:port]`.
    pub authority: &'a str,
    /// Keep the captured `Host` as `:authority`.
    pub original_host: bool,
    /// Prefix for origin-form targets (`/api`), empty for none.
    pub base_path: &'a str,
}

/// An HTTP/2 request ready for the `h2` crate.
#[derive(Debug)]
pub struct H2Request {
    /// Pseudo-header and regular fields.
    pub head: Request<()>,
    /// DATA content.
    pub body: Bytes,
    /// The trailing HEADERS frame's fields.
    pub trailers: Option<HeaderMap>,
}

impl H2Request {
    /// The same request again (for a retry; the body is shared).
    pub fn duplicate(&self) -> H2Request {
        let mut head = Request::new(());
        *head.method_mut() = self.head.method().clone();
        *head.uri_mut() = self.head.uri().clone();
        *head.headers_mut() = self.head.headers().clone();
        H2Request {
            head,
            body: self.body.clone(),
            trailers: self.trailers.clone(),
        }
    }
}

/// Builds the HTTP/2 request of `parts`.
pub fn to_h2(parts: &Parts, edits: &H2Edits) -> Result<H2Request, FormError> {
    let method = Method::from_bytes(parts.method).map_err(|_| FormError::Target("method"))?;
    let authority = match parts.field(b"host") {
        Some(host) if edits.original_host => host,
        _ => edits.authority.as_bytes(),
    };
    let uri = uri(edits, authority, parts.target)?;
    let mut head = Request::new(());
    *head.method_mut() = method;
    *head.uri_mut() = uri;
    *head.headers_mut() = header_map(parts, &parts.fields, true)?;
    let trailers = if parts.trailers.is_empty() {
        None
    } else {
        Some(header_map(parts, &parts.trailers, false)?)
    };
    Ok(H2Request {
        head,
        body: parts.body.clone(),
        trailers,
    })
}

fn uri(edits: &H2Edits, authority: &[u8], target: &[u8]) -> Result<Uri, FormError> {
    let target = std::str::from_utf8(target).map_err(|_| FormError::Target("path"))?;
    let origin = origin_form(target);
    let path = if origin.starts_with('/') {
        format!("{}{origin}", edits.base_path)
    } else {
        origin.to_string()
    };
    let authority =
        http::uri::Authority::try_from(authority).map_err(|_| FormError::Target("authority"))?;
    let path =
        http::uri::PathAndQuery::try_from(path.as_str()).map_err(|_| FormError::Target("path"))?;
    Uri::builder()
        .scheme(edits.scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| FormError::Target("path"))
}

/// Field names never sent in HTTP/2 (RFC 9113 §8.2.2), besides those `Connection` names.
const CONNECTION_SPECIFIC: [&[u8]; 7] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"http2-settings",
    b"host",
];

fn is_dropped(name: &[u8], value: &[u8], nominated: &[&[u8]]) -> bool {
    CONNECTION_SPECIFIC
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        || nominated.iter().any(|n| name.eq_ignore_ascii_case(n))
        || (name.eq_ignore_ascii_case(b"te")
            && !value.trim_ascii().eq_ignore_ascii_case(b"trailers"))
        || (name.eq_ignore_ascii_case(b"expect")
            && value.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
}

/// The fields as a header map, connection-specific ones dropped (in a head, also the ones its
/// `Connection` names, a `Content-Length` that is not the de-chunked body's, and a gRPC
/// call's `content-length`, which the HTTP/1.1 form adds and gRPC clients never send).
fn header_map(
    parts: &Parts,
    fields: &[(&[u8], &[u8])],
    head: bool,
) -> Result<HeaderMap, FormError> {
    let nominated: Vec<&[u8]> = if head {
        fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
            .flat_map(|(_, v)| shadowtap_http1::headers::list(v))
            .collect()
    } else {
        Vec::new()
    };
    let grpc = parts
        .field(b"content-type")
        .is_some_and(is_grpc_content_type);
    let mut map = HeaderMap::with_capacity(fields.len());
    for &(name, value) in fields {
        let length_dropped = head
            && (parts.stale_length(name, value)
                || (grpc && name.eq_ignore_ascii_case(b"content-length")));
        if is_dropped(name, value, &nominated) || length_dropped {
            continue;
        }
        let shown = || String::from_utf8_lossy(name).into_owned();
        let header = HeaderName::from_bytes(name).map_err(|_| FormError::FieldName(shown()))?;
        let value = field_value(&header, value).ok_or_else(|| FormError::FieldValue(shown()))?;
        map.append(header, value);
    }
    Ok(map)
}

fn field_value(name: &HeaderName, value: &[u8]) -> Option<HeaderValue> {
    match value.strip_prefix(b"\0") {
        Some(binary) if name.as_str().ends_with("-bin") => {
            let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(binary);
            HeaderValue::from_str(&encoded).ok()
        }
        _ => HeaderValue::from_bytes(value).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::parse;

    const EDITS: H2Edits = H2Edits {
        scheme: "http",
        authority: "127.0.0.1:8080",
        original_host: false,
        base_path: "",
    };

    fn convert(payload: &'static [u8], edits: &H2Edits) -> Result<H2Request, FormError> {
        let payload = Box::leak(Box::new(Bytes::from_static(payload)));
        to_h2(&parse(payload).unwrap(), edits)
    }

    fn names(map: &HeaderMap) -> Vec<String> {
        map.iter()
            .map(|(n, v)| format!("{n}={}", String::from_utf8_lossy(v.as_bytes())))
            .collect()
    }

    #[test]
    fn an_h2_form_grpc_call_keeps_its_framing_and_trailers() {
        let request = convert(
            b"POST /pkg.Svc/Call HTTP/2\r\nhost: prod:50051\r\ncontent-type: application/grpc\r\n\
              te: trailers\r\ngrpc-timeout: 5S\r\nx-trace-bin: \0\x00\x01\xfe\r\n\
              content-length: 6\r\n\r\n\0\0\0\0\x01zx-end: 1\r\n\r\n",
            &EDITS,
        )
        .unwrap();
        assert_eq!(request.head.method(), Method::POST);
        assert_eq!(
            request.head.uri().to_string(),
            "http://127.0.0.1:8080/pkg.Svc/Call"
        );
        assert_eq!(
            names(request.head.headers()),
            [
                "content-type=application/grpc",
                "te=trailers",
                "grpc-timeout=5S",
                "x-trace-bin=AAH+"
            ]
        );
        assert_eq!(&request.body[..], b"\0\0\0\0\x01z");
        assert_eq!(names(request.trailers.as_ref().unwrap()), ["x-end=1"]);
    }

    #[test]
    fn an_http1_request_loses_its_connection_specific_fields() {
        let request = convert(
            b"PUT /up?x=1 HTTP/1.1\r\nHost: prod\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
              Keep-Alive: 5\r\nTE: gzip\r\nUpgrade: h2c\r\nExpect: 100-continue\r\n\
              Transfer-Encoding: chunked\r\nContent-Length: 9\r\nX-Keep: Yes\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\n",
            &H2Edits {
                base_path: "/api",
                ..EDITS
            },
        )
        .unwrap();
        assert_eq!(
            request.head.uri().to_string(),
            "http://127.0.0.1:8080/api/up?x=1"
        );
        assert_eq!(names(request.head.headers()), ["x-keep=Yes"]);
        assert_eq!(&request.body[..], b"abc");
        assert_eq!(names(request.trailers.as_ref().unwrap()), ["x-sum=3"]);
    }

    #[test]
    fn original_host_and_absolute_targets() {
        let edits = H2Edits {
            scheme: "https",
            original_host: true,
            ..EDITS
        };
        let request = convert(
            b"GET http://elsewhere/a?b HTTP/1.1\r\nHost: shop\r\n\r\n",
            &edits,
        )
        .unwrap();
        assert_eq!(request.head.uri().to_string(), "https://shop/a?b");
        let request = convert(b"GET /a HTTP/2\r\n\r\n", &edits).unwrap();
        assert_eq!(request.head.uri().to_string(), "https://127.0.0.1:8080/a");
        assert!(request.trailers.is_none() && request.body.is_empty());
    }

    #[test]
    fn values_http2_cannot_carry_are_typed_errors() {
        assert_eq!(
            convert(b"GET / HTTP/2\r\nx-a: \x01\r\n\r\n", &EDITS).unwrap_err(),
            FormError::FieldValue("x-a".into())
        );
        assert_eq!(
            convert(
                b"GET / HTTP/2\r\nhost: a b\r\n\r\n",
                &H2Edits {
                    original_host: true,
                    ..EDITS
                }
            )
            .unwrap_err(),
            FormError::Target("authority")
        );
    }
}
