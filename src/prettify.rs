//! `--prettify-http`: makes HTTP messages (requests and responses) readable — a chunked body
//! is joined (`Transfer-Encoding` removed) and a gzip body is decoded (`Content-Encoding`
//! removed), with `Content-Length` set to the new body's length. Anything that is not an HTTP
//! message with such a body, or whose body does not decode, passes unchanged.
//!
//! With `--grpc-descriptor-set`, a gRPC message's body becomes its messages as proto3 JSON, one
//! line each (`Content-Type: application/x-ndjson`, `grpc-encoding` removed, trailers kept
//! after the body); one that does not decode passes unchanged, counted `grpc decode: <reason>`.

use bytes::Bytes;
use shadowtap_api::{Counters, Message};
use shadowtap_http1::headers::{self, Place};
use shadowtap_http1::{dechunk, DechunkError};
use shadowtap_record::grpc::split;
use shadowtap_record::Recorder;
use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// `--prettify-http`, with the run's gRPC descriptor set (if any).
#[derive(Clone, Debug, Default)]
pub struct Prettifier {
    grpc: Arc<Recorder>,
}

impl Prettifier {
    /// Decodes gRPC bodies with `grpc` when it has a descriptor set.
    pub fn new(grpc: Recorder) -> Self {
        Prettifier {
            grpc: Arc::new(grpc),
        }
    }

    /// Prettifies `msg` in place; a message left as it was for a reason is counted on
    /// `counters` (`prettify: undecodable`, `prettify: too large`, `grpc decode: …`).
    pub fn apply(&self, msg: &mut Message, limit: usize, counters: &Counters) {
        if self.grpc.decodes() {
            if let Some(payload) = grpc_as_json_lines(&self.grpc, msg, counters) {
                msg.payload = payload;
                return;
            }
        }
        apply(msg, limit, counters);
    }
}

/// A gRPC message's payload with its messages as JSON lines (`None`: not gRPC, no message,
/// or a message did not decode).
fn grpc_as_json_lines(recorder: &Recorder, msg: &Message, counters: &Counters) -> Option<Bytes> {
    let grpc = recorder.grpc(msg, counters)?;
    if grpc.decode_error.is_some() {
        return None;
    }
    let messages = grpc.messages.filter(|m| !m.is_empty())?;
    let parts = split(&msg.payload)?;
    let mut body = Vec::new();
    for message in messages {
        body.extend(message.to_string().into_bytes());
        body.push(b'\n');
    }
    let mut out = parts.head.to_vec();
    headers::remove(&mut out, b"content-length");
    headers::remove(&mut out, b"grpc-encoding");
    headers::set(
        &mut out,
        b"content-type",
        b"application/x-ndjson",
        Place::First,
    )
    .ok()?;
    let length = body.len().to_string();
    headers::add(&mut out, b"content-length", length.as_bytes(), Place::Last).ok()?;
    out.extend_from_slice(&body);
    out.extend_from_slice(parts.trailers);
    Some(Bytes::from(out))
}

/// Prettifies `msg` in place; a message left as it was for a reason is counted on `counters`
/// (`prettify: undecodable`, `prettify: too large`).
pub fn apply(msg: &mut Message, limit: usize, counters: &Counters) {
    match prettify(&msg.payload, limit) {
        Ok(Some(payload)) => msg.payload = payload,
        Ok(None) => {}
        Err(Skipped::Undecodable) => {
            counters
                .extra("prettify: undecodable")
                .fetch_add(1, Relaxed);
        }
        Err(Skipped::TooLarge) => {
            counters.extra("prettify: too large").fetch_add(1, Relaxed);
        }
    }
}

/// Why a message was left as it was.
#[derive(Debug, PartialEq, Eq)]
pub enum Skipped {
    /// The chunked encoding or the gzip stream is broken (or incomplete).
    Undecodable,
    /// The decoded body would be larger than the limit.
    TooLarge,
}

/// Prettifies `payload`; `Ok(None)` when there is nothing to do.
pub fn prettify(payload: &Bytes, limit: usize) -> Result<Option<Bytes>, Skipped> {
    let layout = headers::layout(payload);
    let is_http = headers::request_line(payload).is_some_and(|l| !l.version.is_empty())
        || headers::status_line(payload).is_some();
    if !layout.complete || !is_http {
        return Ok(None);
    }
    let head = &payload[..layout.head_end];
    let chunked = headers::is_chunked(head);
    let gzip =
        headers::value(head, b"content-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"gzip"));
    if !chunked && !gzip {
        return Ok(None);
    }
    let rest = &payload[layout.head_end..];
    let mut body: Vec<u8> = if chunked {
        dechunk(rest, limit)
            .map_err(|e| match e {
                DechunkError::TooLarge { .. } => Skipped::TooLarge,
                _ => Skipped::Undecodable,
            })?
            .data
    } else {
        rest.to_vec()
    };
    if gzip {
        body = gunzip(&body, limit)?;
    }
    let mut out = Vec::with_capacity(head.len() + body.len() + 24);
    out.extend_from_slice(head);
    headers::remove(&mut out, b"content-length");
    if chunked {
        headers::remove(&mut out, b"transfer-encoding");
    }
    if gzip {
        headers::remove(&mut out, b"content-encoding");
    }
    let length = body.len().to_string();
    headers::add(&mut out, b"Content-Length", length.as_bytes(), Place::Last)
        .expect("a valid field");
    out.extend_from_slice(&body);
    Ok(Some(Bytes::from(out)))
}

fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Skipped> {
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(body);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| Skipped::Undecodable)?;
    if out.len() > limit {
        return Err(Skipped::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn run(p: &[u8]) -> Result<Option<String>, Skipped> {
        prettify(&Bytes::copy_from_slice(p), 1 << 20)
            .map(|o| o.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    #[test]
    fn dechunks() {
        let p = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n5\r\nhello\r\n6;e=1\r\n world\r\n0\r\n\r\n";
        assert_eq!(
            run(p).unwrap().unwrap(),
            "HTTP/1.1 200 OK\r\nX: y\r\nContent-Length: 11\r\n\r\nhello world"
        );
        assert_eq!(
            run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
            Err(Skipped::Undecodable)
        );
    }

    #[test]
    fn gunzips() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"plain text").unwrap();
        let body = gz.finish().unwrap();
        let mut p = format!(
            "POST /x HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        p.extend_from_slice(&body);
        assert_eq!(
            run(&p).unwrap().unwrap(),
            "POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nplain text"
        );
        assert_eq!(prettify(&Bytes::from(p), 5), Err(Skipped::TooLarge));
    }

    #[test]
    fn bare_lf_heads_and_oversized_chunks() {
        let p = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nX: y\n\n3\nabc\n0\n\n";
        assert_eq!(
            run(p).unwrap().unwrap(),
            "HTTP/1.1 200 OK\nX: y\nContent-Length: 3\n\nabc"
        );
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\nab";
        assert_eq!(run(huge), Err(Skipped::Undecodable));
        let big = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n";
        assert_eq!(
            prettify(&Bytes::copy_from_slice(big), 5),
            Err(Skipped::TooLarge)
        );
    }

    fn grpc_prettifier() -> Prettifier {
        let set = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/h2/descriptor_set.pb"
        );
        let descriptors = shadowtap_record::GrpcDescriptors::load(std::path::Path::new(set));
        Prettifier::new(Recorder::new(Some(Arc::new(descriptors.unwrap())), 1 << 20))
    }

    fn grpc_request(path: &str, body: &[u8]) -> Message {
        let mut payload = format!(
            "POST {path} HTTP/2\r\ncontent-type: application/grpc\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        payload.extend_from_slice(body);
        let meta = shadowtap_api::Meta::new(shadowtap_api::Kind::Request, "a", 1, 0).unwrap();
        Message::new(meta, payload)
    }

    #[test]
    fn grpc_bodies_become_json_lines_or_stay_when_they_do_not_decode() {
        let counters =
            shadowtap_api::Ledger::new().register("emitter", shadowtap_api::Role::Engine);
        let note = b"\x00\x00\x00\x00\x04\x0a\x02hi";
        let mut good = grpc_request("/shadowtap.fixture.Echo/Unary", note);
        grpc_prettifier().apply(&mut good, 1 << 20, &counters);
        assert_eq!(
            String::from_utf8_lossy(&good.payload),
            "POST /shadowtap.fixture.Echo/Unary HTTP/2\r\ncontent-type: application/x-ndjson\r\ncontent-length: 32\r\n\r\n{\"blob\":\"\",\"seq\":0,\"text\":\"hi\"}\n"
        );
        let mut unknown = grpc_request("/shadowtap.fixture.Echo/Gone", note);
        let before = unknown.payload.clone();
        grpc_prettifier().apply(&mut unknown, 1 << 20, &counters);
        assert_eq!(unknown.payload, before);
        let extra = counters.snapshot().extra;
        assert_eq!(extra, [("grpc decode: unknown method".to_string(), 1)]);
    }

    #[test]
    fn plain_messages_pass() {
        assert_eq!(run(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(None));
        assert_eq!(run(b"not http"), Ok(None));
    }
}
