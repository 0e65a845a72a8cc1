//! A replayed HTTP/2 response in the HTTP/1.1 form the capture gives HTTP/2 messages
//! (`shadowtap_h2::write_form`): `HTTP/2 STATUS`, the fields lowercase in the order the
//! `h2` crate's header map gives them (by first appearance, repeated names together), a
//! `content-length` when there is a body and none was sent, the body, the trailers block.

use http::HeaderMap;
use shadowtap_h2::{write_form, FormStart};

/// What was received of one response.
#[derive(Debug, Default)]
pub struct Received {
    /// Body bytes kept (at most the keep limit).
    pub body: Vec<u8>,
    /// The trailing HEADERS frame, if one came.
    pub trailers: Option<HeaderMap>,
}

/// The HTTP/1.1 form of a response, cut at `keep` bytes.
pub fn render(
    status: http::StatusCode,
    headers: &HeaderMap,
    received: &Received,
    keep: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity((received.body.len() + 256).min(keep));
    let trailers = received.trailers.as_ref().map(pairs);
    write_form(
        &mut out,
        FormStart::Response {
            status: status.as_str().as_bytes(),
        },
        pairs(headers),
        &received.body,
        trailers,
    );
    out.truncate(keep);
    out
}

/// `(name, value)` pairs of a header map, in its order.
fn pairs(map: &HeaderMap) -> Vec<(&[u8], &[u8])> {
    map.iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::{parse, Version};
    use bytes::Bytes;

    fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in fields {
            map.append(*n, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_grpc_response_renders_with_its_trailers() {
        let received = Received {
            body: b"\0\0\0\0\x02ok".to_vec(),
            trailers: Some(map(&[("grpc-status", "0"), ("x-trailer", "done")])),
        };
        let headers = map(&[("content-type", "application/grpc"), ("x-served-by", "f")]);
        let form = render(http::StatusCode::OK, &headers, &received, usize::MAX);
        assert_eq!(
            form,
            b"HTTP/2 200\r\ncontent-type: application/grpc\r\nx-served-by: f\r\n\
              content-length: 7\r\n\r\n\0\0\0\0\x02okgrpc-status: 0\r\nx-trailer: done\r\n\r\n"
        );
        assert_eq!(
            render(http::StatusCode::OK, &headers, &received, 10).len(),
            10
        );
    }

    /// The other direction: a request in the form, converted for HTTP/2, rendered back by the
    /// same writer the capture's rules follow, is the same form.
    #[test]
    fn a_request_form_survives_conversion_and_rendering() {
        use crate::h2_request::{to_h2, H2Edits};
        let original: &'static [u8] = b"POST /a?b=1 HTTP/2\r\nhost: t:1\r\nx-a: 1\r\nx-b: 2\r\n\
              content-length: 3\r\n\r\nxyzgrpc-x: 1\r\n\r\n";
        let payload = Bytes::from_static(original);
        let parts = parse(&payload).unwrap();
        assert_eq!(parts.version, Version::Http2);
        let edits = H2Edits {
            scheme: "http",
            authority: "t:1",
            original_host: false,
            base_path: "",
        };
        let request = to_h2(&parts, &edits).unwrap();
        let pairs = |map: &HeaderMap| {
            map.iter()
                .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect::<Vec<_>>()
        };
        let fields = pairs(request.head.headers());
        let trailers = request.trailers.as_ref().map(pairs).unwrap();
        let mut out = Vec::new();
        let uri = request.head.uri();
        write_form(
            &mut out,
            FormStart::Request {
                method: request.head.method().as_str().as_bytes(),
                path: uri.path_and_query().unwrap().as_str().as_bytes(),
                authority: uri.authority().map(|a| a.as_str().as_bytes()),
            },
            fields.iter().map(|(n, v)| (&n[..], &v[..])),
            &request.body,
            Some(trailers.iter().map(|(n, v)| (&n[..], &v[..]))),
        );
        assert_eq!(out, original);
    }
}
