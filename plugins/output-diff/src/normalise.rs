//! Undoing transport noise before two messages are compared: the head is read tolerantly, the
//! body is de-chunked and decoded (`Content-Encoding` gzip, deflate, br, in the order they
//! were applied), and every step keeps at most the copy-buffer size. A body that cannot be
//! undone is compared as it came, with the problem kept for the ledger.

use shadowtap_http1::headers::{self, fields, layout};
use shadowtap_http1::{dechunk, DechunkError};
use std::io::Read;

/// What a body is compared as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/json`, `*+json`: structurally.
    Json,
    /// `text/*`, HTML, XML, JavaScript, form data: line by line.
    Text,
    /// Anything else: by size and hash.
    Other,
}

/// Why a body was compared as it came instead of undone.
#[derive(Debug, thiserror::Error)]
pub enum BodyProblem {
    /// The chunked framing is broken.
    #[error("chunked body: {0:?}")]
    Chunked(DechunkError),
    /// A content coding failed to decode.
    #[error("{coding} body does not decode: {source}")]
    Decode {
        /// The coding.
        coding: &'static str,
        /// What the decoder said.
        source: std::io::Error,
    },
    /// The decoded body is larger than the copy-buffer size.
    #[error("decoded body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A content coding shadowtap does not decode.
    #[error("unknown content coding {0:?}")]
    UnknownCoding(String),
}

/// One header field: its name as sent, lower-cased, and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderField {
    /// The name as on the wire.
    pub name: String,
    /// The name, ASCII lower-cased.
    pub lower: String,
    /// The value (obs-folds joined, invalid UTF-8 replaced).
    pub value: String,
}

/// A message with transport noise undone.
#[derive(Debug)]
pub struct Normalised {
    /// The start line as it came.
    pub start_line: String,
    /// The status code (responses), 0 when there is none.
    pub status: u16,
    /// Every header field, in order.
    pub fields: Vec<HeaderField>,
    /// The body: de-chunked and decoded where it could be.
    pub body: Vec<u8>,
    /// What the body is compared as (from `Content-Type`).
    pub media: Media,
    /// Why the body is as it came, if it is.
    pub problem: Option<BodyProblem>,
}

/// Header fields that only frame or carry the message: never compared.
pub const TRANSPORT_FIELDS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "connection",
    "keep-alive",
];

impl Normalised {
    /// Reads `raw` (a response or request with its head) keeping at most `limit` body bytes.
    pub fn new(raw: &[u8], limit: usize) -> Normalised {
        let at = layout(raw);
        let start_line = String::from_utf8_lossy(&raw[at.start_line.clone()]).into_owned();
        let status = headers::status_line(raw).map_or(0, |line| line.status);
        let fields: Vec<HeaderField> = fields(&raw[..at.head_end])
            .map(|f| {
                let name = String::from_utf8_lossy(f.name).into_owned();
                HeaderField {
                    lower: name.to_ascii_lowercase(),
                    name,
                    value: String::from_utf8_lossy(&f.value_unfolded()).into_owned(),
                }
            })
            .collect();
        let media = media_of(&fields);
        let (body, problem) = undo_transport(&raw[at.head_end..], &fields, limit);
        Normalised {
            start_line,
            status,
            fields,
            body,
            media,
            problem,
        }
    }
}

fn media_of(fields: &[HeaderField]) -> Media {
    let Some(value) = fields.iter().find(|f| f.lower == "content-type") else {
        return Media::Other;
    };
    let essence = value
        .value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Media::Json
    } else if essence.starts_with("text/")
        || essence.ends_with("+xml")
        || essence.ends_with("/xml")
        || essence.ends_with("javascript")
        || essence == "application/x-www-form-urlencoded"
    {
        Media::Text
    } else {
        Media::Other
    }
}

/// The body framed by `fields`, de-chunked and decoded; on a problem, the bytes as far as they
/// were undone.
fn undo_transport(
    rest: &[u8],
    fields: &[HeaderField],
    limit: usize,
) -> (Vec<u8>, Option<BodyProblem>) {
    let chunked = fields
        .iter()
        .filter(|f| f.lower == "transfer-encoding")
        .any(|f| f.value.to_ascii_lowercase().contains("chunked"));
    let framed = if chunked {
        match dechunk(rest, limit) {
            Ok(body) => body.data,
            Err(e) => return (clip(rest, limit), Some(BodyProblem::Chunked(e))),
        }
    } else {
        let length = fields
            .iter()
            .find(|f| f.lower == "content-length")
            .and_then(|f| f.value.trim().parse::<usize>().ok());
        clip(&rest[..length.unwrap_or(rest.len()).min(rest.len())], limit)
    };
    let codings: Vec<String> = fields
        .iter()
        .filter(|f| f.lower == "content-encoding")
        .flat_map(|f| {
            headers::list(f.value.as_bytes())
                .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    let mut body = framed;
    for coding in codings.iter().rev() {
        match decode(coding, &body, limit) {
            Ok(decoded) => body = decoded,
            Err(problem) => return (body, Some(problem)),
        }
    }
    (body, None)
}

fn clip(bytes: &[u8], limit: usize) -> Vec<u8> {
    bytes[..bytes.len().min(limit)].to_vec()
}

/// Decodes one content coding, reading at most `limit + 1` bytes of output.
fn decode(coding: &str, body: &[u8], limit: usize) -> Result<Vec<u8>, BodyProblem> {
    match coding {
        "gzip" | "x-gzip" => read_limited("gzip", flate2::read::MultiGzDecoder::new(body), limit),
        "deflate" => read_limited("deflate", flate2::read::ZlibDecoder::new(body), limit).or_else(
            // Some servers send raw deflate under this name.
            |_| read_limited("deflate", flate2::read::DeflateDecoder::new(body), limit),
        ),
        "br" => read_limited(
            "br",
            brotli_decompressor::Decompressor::new(body, 4096),
            limit,
        ),
        other => Err(BodyProblem::UnknownCoding(other.to_string())),
    }
}

fn read_limited(
    coding: &'static str,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, BodyProblem> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| BodyProblem::Decode { coding, source })?;
    if out.len() > limit {
        return Err(BodyProblem::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn response(head: &str, body: &[u8]) -> Vec<u8> {
        let mut raw = head.as_bytes().to_vec();
        raw.extend_from_slice(body);
        raw
    }

    #[test]
    fn chunked_gzip_json_is_undone() {
        let zipped = gzip(br#"{"a":1}"#);
        let mut chunked = format!("{:x}\r\n", zipped.len()).into_bytes();
        chunked.extend_from_slice(&zipped);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let raw = response(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n",
            &chunked,
        );
        let n = Normalised::new(&raw, 1 << 20);
        assert_eq!(n.status, 200);
        assert_eq!(n.media, Media::Json);
        assert_eq!(n.body, br#"{"a":1}"#);
        assert!(n.problem.is_none());
    }

    #[test]
    fn brotli_and_deflate_bodies_are_decoded() {
        let plain = b"hello hello hello";
        let raw = response(
            "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n",
            &brotli_stored(plain),
        );
        assert_eq!(Normalised::new(&raw, 1024).body, plain);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(plain).unwrap();
        let raw = response(
            "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n\r\n",
            &z.finish().unwrap(),
        );
        assert_eq!(Normalised::new(&raw, 1024).body, plain);
    }

    /// `data` as a brotli stream of one uncompressed meta-block (RFC 7932 §9.2): any decoder
    /// reads it, and no encoder is needed.
    fn brotli_stored(data: &[u8]) -> Vec<u8> {
        // Bits, LSB first: WBITS (0 = 16), ISLAST=0, MNIBBLES=4 (00), MLEN-1 (16 bits),
        // ISUNCOMPRESSED=1, pad to a byte, the data; then ISLAST=1, ISLASTEMPTY=1.
        let mut bits: Vec<bool> = Vec::new();
        let push = |bits: &mut Vec<bool>, value: u32, n: u32| {
            for i in 0..n {
                bits.push(value >> i & 1 == 1);
            }
        };
        push(&mut bits, 0, 1);
        push(&mut bits, 0, 1);
        push(&mut bits, 0, 2);
        push(&mut bits, data.len() as u32 - 1, 16);
        push(&mut bits, 1, 1);
        while !bits.len().is_multiple_of(8) {
            bits.push(false);
        }
        let mut out: Vec<u8> = bits
            .chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, &on)| b | (u8::from(on) << i))
            })
            .collect();
        out.extend_from_slice(data);
        out.push(0b11);
        out
    }

    #[test]
    fn hostile_bodies_are_kept_as_they_came_with_the_problem() {
        let raw = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"zz\r\nabc",
        );
        let n = Normalised::new(&raw, 1024);
        assert!(matches!(n.problem, Some(BodyProblem::Chunked(_))));
        assert_eq!(n.body, b"zz\r\nabc");
        let raw = response(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
            b"not gzip",
        );
        assert!(matches!(
            Normalised::new(&raw, 1024).problem,
            Some(BodyProblem::Decode { coding: "gzip", .. })
        ));
        // A gzip bomb stops at the limit.
        let bomb = gzip(&vec![b'a'; 1 << 20]);
        let raw = response("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n", &bomb);
        let n = Normalised::new(&raw, 4096);
        assert!(matches!(
            n.problem,
            Some(BodyProblem::TooLarge { limit: 4096 })
        ));
        assert!(n.body.len() <= 4096 || n.body == bomb);
        let raw = response("HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\n\r\n", b"x");
        assert!(matches!(
            Normalised::new(&raw, 1024).problem,
            Some(BodyProblem::UnknownCoding(_))
        ));
        // A Content-Length larger than the body, garbage, nothing at all.
        let raw = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            b"ab",
        );
        assert_eq!(Normalised::new(&raw, 1024).body, b"ab");
        for garbage in [&b""[..], b"\xff\xfe\r\n\r\n", b"HTTP/1.1 200"] {
            let _ = Normalised::new(garbage, 16);
        }
    }

    #[test]
    fn media_types_choose_the_comparison() {
        let of = |ct: &str| {
            Normalised::new(
                format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\n\r\n").as_bytes(),
                1,
            )
            .media
        };
        assert_eq!(of("application/problem+json"), Media::Json);
        assert_eq!(of("text/html; charset=utf-8"), Media::Text);
        assert_eq!(of("image/png"), Media::Other);
    }
}
