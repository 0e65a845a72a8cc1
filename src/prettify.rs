//! `--prettify-http`: makes HTTP messages (requests and responses) readable — a chunked body
//! is joined (`Transfer-Encoding` removed) and a gzip body is decoded (`Content-Encoding`
//! removed), with `Content-Length` set to the new body's length. Anything that is not an HTTP
//! message with such a body, or whose body does not decode, passes unchanged.

use bytes::Bytes;
use shadowtap_api::{Counters, Message};
use shadowtap_http1::headers::{self, Place};
use shadowtap_http1::{dechunk, DechunkError};
use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;

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

    #[test]
    fn plain_messages_pass() {
        assert_eq!(run(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(None));
        assert_eq!(run(b"not http"), Ok(None));
    }
}
