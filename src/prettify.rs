//! `--prettify-http`: makes HTTP messages (requests and responses) readable — a chunked body
//! is joined (`Transfer-Encoding` removed) and a gzip body is decoded (`Content-Encoding`
//! removed), with `Content-Length` set to the new body's length. Anything that is not an HTTP
//! message with such a body, or whose body does not decode, passes unchanged.

use bytes::Bytes;
use shadowtap_api::{Counters, Message};
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
    let Some(head_end) = head_end(payload) else {
        return Ok(None);
    };
    let head = &payload[..head_end];
    if !looks_like_http(head) {
        return Ok(None);
    }
    let chunked = header(head, b"transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked"));
    let gzip = header(head, b"content-encoding")
        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"gzip"));
    if !chunked && !gzip {
        return Ok(None);
    }
    let mut body: Vec<u8> = if chunked {
        dechunk(&payload[head_end..], limit)?
    } else {
        payload[head_end..].to_vec()
    };
    if gzip {
        body = gunzip(&body, limit)?;
    }
    let mut out = Vec::with_capacity(head.len() + body.len() + 24);
    let mut lines = head.split_inclusive(|&b| b == b'\n');
    if let Some(first) = lines.next() {
        out.extend_from_slice(first);
    }
    for line in lines {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        let name = name.trim_ascii();
        if line.trim_ascii().is_empty() {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            out.extend_from_slice(line);
            continue;
        }
        let drop = name.eq_ignore_ascii_case(b"content-length")
            || (chunked && name.eq_ignore_ascii_case(b"transfer-encoding"))
            || (gzip && name.eq_ignore_ascii_case(b"content-encoding"));
        if !drop {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&body);
    Ok(Some(Bytes::from(out)))
}

fn looks_like_http(head: &[u8]) -> bool {
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    first.starts_with(b"HTTP/") || first.windows(6).any(|w| w == b" HTTP/")
}

/// Offset just after the blank line ending the head.
fn head_end(p: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < p.len() {
        let end = p[at..].iter().position(|&b| b == b'\n')? + at + 1;
        let line = &p[at..end];
        if at > 0 && (line == b"\r\n" || line == b"\n") {
            return Some(end);
        }
        at = end;
    }
    None
}

fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(name)
            .then(|| line[colon + 1..].trim_ascii())
    })
}

/// Joins the chunks of a chunked body (extensions and trailers are dropped).
fn dechunk(mut body: &[u8], limit: usize) -> Result<Vec<u8>, Skipped> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(Skipped::Undecodable)?;
        let size_text = body[..line_end]
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default();
        let size_text = std::str::from_utf8(size_text)
            .map_err(|_| Skipped::Undecodable)?
            .trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Skipped::Undecodable)?;
        body = &body[line_end + 1..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err(Skipped::Undecodable);
        }
        if out.len() + size > limit {
            return Err(Skipped::TooLarge);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size..];
        body = body
            .strip_prefix(b"\r\n")
            .or_else(|| body.strip_prefix(b"\n"))
            .ok_or(Skipped::Undecodable)?;
    }
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
    fn plain_messages_pass() {
        assert_eq!(run(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(None));
        assert_eq!(run(b"not http"), Ok(None));
    }
}
