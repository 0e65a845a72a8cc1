//! GoReplay's `KafkaMessage` JSON (kafka.go, output_kafka.go, input_kafka.go).
//!
//! Encoding reproduces GoReplay byte for byte: keys in the order `Req_URL`, `Req_Type`, `Req_ID`,
//! `Req_Ts`, `Req_Method`, `Req_Body` (left out when empty), `Req_Headers` (left out when empty;
//! canonical MIME names sorted as Go sorts map keys, repeated headers joined with `", "`), and Go's
//! `encoding/json` string escaping (`<`, `>`, `&`, U+2028, U+2029 as `\u003c`…, other control
//! characters as `\u00XX` except `\n`, `\r`, `\t`; invalid UTF-8 as `\ufffd`). The URL, method,
//! body and headers are found with GoReplay's `proto` rules: a request title needs one of the nine
//! standard methods and `HTTP/1.0` or `1.1`; a response title `HTTP/1.x` and a known status code;
//! headers are read with `net/textproto` rules and any malformed line yields no headers at all.
//!
//! Decoding rebuilds the message as GoReplay's `Dump()` does: `"<type> <id> <ts>\n<method> <url>
//! HTTP/1.1\r\n"`, the headers, an empty line and the body. The format is lossy by design (no status
//! line for responses, no header order or case, no latency): use the raw format to round-trip.

use bytes::Bytes;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use shadowtap_api::{Message, Meta, MetaError};
use std::collections::BTreeMap;
use std::fmt;

const METHODS: [&[u8]; 9] = [
    b"CONNECT", b"DELETE", b"GET", b"HEAD", b"OPTIONS", b"PATCH", b"POST", b"PUT", b"TRACE",
];

/// Status codes Go's `http.StatusText` knows (GoReplay accepts only these in a response title).
const STATUS_CODES: &[u16] = &[
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
];

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_http1_version(v: &[u8]) -> bool {
    v == b"HTTP/1.0" || v == b"HTTP/1.1"
}

/// GoReplay's `proto.HasRequestTitle`.
pub fn has_request_title(p: &[u8]) -> bool {
    if p.len() < 16 {
        return false;
    }
    let Some(title_len) = find(p, b"\r\n") else {
        return false;
    };
    let title = &p[..title_len];
    if title.iter().filter(|&&b| b == b' ').count() != 2 {
        return false;
    }
    let method = method(p).unwrap_or_default();
    if !METHODS.contains(&method) {
        return false;
    }
    let rest = &p[method.len() + 1..];
    let Some(path) = rest.iter().position(|&b| b == b' ') else {
        return false;
    };
    let start = path + method.len() + 2;
    start <= title_len && is_http1_version(&p[start..title_len])
}

/// GoReplay's `proto.HasResponseTitle`.
pub fn has_response_title(p: &[u8]) -> bool {
    if p.len() < 14 || find(p, b"\r\n").is_none() {
        return false;
    }
    if !is_http1_version(&p[..8]) || p[8] != b' ' {
        return false;
    }
    let digits = &p[9..12];
    if !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let status = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if status == 0 || !STATUS_CODES.contains(&status) {
        return false;
    }
    p[12] == b' ' || p[12] == b'\r'
}

/// GoReplay's `proto.Method`: the bytes before the first space.
pub fn method(p: &[u8]) -> Option<&[u8]> {
    p.iter().position(|&b| b == b' ').map(|end| &p[..end])
}

/// GoReplay's `proto.Path`: the request target, for payloads with a request title.
pub fn path(p: &[u8]) -> Option<&[u8]> {
    if !has_request_title(p) {
        return None;
    }
    let start = p.iter().position(|&b| b == b' ')? + 1;
    let end = p[start..].iter().position(|&b| b == b' ')?;
    Some(&p[start..start + end])
}

/// GoReplay's `proto.Body`: the bytes after the first empty line (none if nothing follows it).
pub fn body(p: &[u8]) -> Option<&[u8]> {
    let pos = find(p, b"\r\n\r\n")? + 4;
    (p.len() > pos).then(|| &p[pos..])
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn canonical_key(key: &[u8]) -> Option<String> {
    if !key.iter().all(|&b| is_token_byte(b)) {
        return None;
    }
    let mut upper = true;
    Some(
        key.iter()
            .map(|&b| {
                let c = if upper {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                };
                upper = b == b'-';
                c as char
            })
            .collect(),
    )
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

/// GoReplay's `proto.ParseHeaders` (Go's `textproto.ReadMIMEHeader`): canonical names with
/// their values in order; `None` when the block is malformed (GoReplay then has no headers).
pub fn parse_headers(p: &[u8]) -> Option<BTreeMap<String, Vec<String>>> {
    let mut p = p;
    if has_request_title(p) || has_response_title(p) {
        let start = find(p, b"\r\n")? + 2;
        if start > p.len().saturating_sub(1) {
            return None;
        }
        p = &p[start..];
    }
    if let Some(end) = find(p, b"\r\n\r\n") {
        p = &p[..end + 4];
    }
    if matches!(p.first(), Some(b' ' | b'\t')) {
        return None;
    }
    // Split into lines (without their \r\n or \n), joining continuation lines.
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = p;
    let mut terminated = false;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => return None, // EOF before the empty line: Go returns an error
        };
        rest = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            terminated = true;
            break;
        }
        match (line[0], lines.last_mut()) {
            (b' ' | b'\t', Some(last)) => {
                last.push(b' ');
                last.extend_from_slice(trim(line));
            }
            _ => lines.push(trim(line).to_vec()),
        }
    }
    if !terminated {
        return None;
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in &lines {
        let colon = line.iter().position(|&b| b == b':')?;
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return None;
        }
        if key.is_empty() {
            continue;
        }
        let key = canonical_key(key)?;
        let value = String::from_utf8_lossy(trim(value)).into_owned();
        headers.entry(key).or_default().push(value);
    }
    Some(headers)
}

/// Appends `s` as a JSON string the way Go's `encoding/json` writes it (HTML-safe).
pub fn write_go_string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut chunks = s.utf8_chunks();
    for chunk in chunks.by_ref() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                    let n = c as u32;
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[((n >> shift) & 0xf) as usize]);
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// The header-line fields as GoReplay's `payloadMeta` splits them (`\n` removed, nothing else).
fn meta_fields(line: &[u8]) -> Vec<&[u8]> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.split(|&b| b == b' ').collect()
}

/// Appends a message as GoReplay's `KafkaMessage` JSON to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    let p = &msg.payload[..];
    let line = msg.meta.line();
    let fields = meta_fields(&line);
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();
    out.reserve(p.len() + 128);
    out.extend_from_slice(b"{\"Req_URL\":");
    write_go_string(out, path(p).unwrap_or_default());
    out.extend_from_slice(b",\"Req_Type\":");
    write_go_string(out, field(0));
    out.extend_from_slice(b",\"Req_ID\":");
    write_go_string(out, field(1));
    out.extend_from_slice(b",\"Req_Ts\":");
    write_go_string(out, field(2));
    out.extend_from_slice(b",\"Req_Method\":");
    write_go_string(out, method(p).unwrap_or_default());
    if let Some(body) = body(p) {
        out.extend_from_slice(b",\"Req_Body\":");
        write_go_string(out, body);
    }
    if let Some(headers) = parse_headers(p).filter(|h| !h.is_empty()) {
        out.extend_from_slice(b",\"Req_Headers\":{");
        for (i, (name, values)) in headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_go_string(out, name.as_bytes());
            out.push(b':');
            write_go_string(out, values.join(", ").as_bytes());
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// A decoded `KafkaMessage` (missing fields are empty, as with Go's `json.Unmarshal`).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct KafkaMessage {
    /// Request target.
    #[serde(rename = "Req_URL")]
    pub url: String,
    /// Kind digit.
    #[serde(rename = "Req_Type")]
    pub kind: String,
    /// Message id.
    #[serde(rename = "Req_ID")]
    pub id: String,
    /// Timestamp (ns).
    #[serde(rename = "Req_Ts")]
    pub ts: String,
    /// Method (or `HTTP/1.x` for responses).
    #[serde(rename = "Req_Method")]
    pub method: String,
    /// Body.
    #[serde(rename = "Req_Body")]
    pub body: String,
    /// Headers in document order.
    #[serde(rename = "Req_Headers", deserialize_with = "ordered_map")]
    pub headers: Vec<(String, String)>,
}

fn ordered_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Ordered;
    impl<'de> Visitor<'de> for Ordered {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of header names to strings")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry::<String, String>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Ordered)
}

/// Why a Kafka JSON message could not be turned into a message.
#[derive(Debug)]
pub enum DecodeError {
    /// Not JSON of the expected shape.
    Json(serde_json::Error),
    /// The `Req_Type`/`Req_ID`/`Req_Ts` fields do not form a header line.
    Meta(MetaError),
}

impl std::error::Error for DecodeError {}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "not a GoReplay Kafka JSON message: {e}"),
            DecodeError::Meta(e) => write!(f, "bad Req_Type/Req_ID/Req_Ts: {e}"),
        }
    }
}

/// Decodes GoReplay's `KafkaMessage` JSON into a message, as GoReplay's `Dump()` rebuilds it.
pub fn decode(value: &[u8]) -> Result<Message, DecodeError> {
    let m: KafkaMessage = serde_json::from_slice(value).map_err(DecodeError::Json)?;
    // The id alone first: a space or newline in it would otherwise shift the other fields
    // or add a line to the header written back.
    shadowtap_api::valid_id(m.id.as_bytes()).map_err(DecodeError::Meta)?;
    let meta = Meta::parse(Bytes::from(format!("{} {} {}\n", m.kind, m.id, m.ts)))
        .map_err(DecodeError::Meta)?;
    let mut payload = Vec::with_capacity(64 + m.url.len() + m.body.len());
    payload.extend_from_slice(m.method.as_bytes());
    payload.push(b' ');
    payload.extend_from_slice(m.url.as_bytes());
    payload.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &m.headers {
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(b": ");
        payload.extend_from_slice(value.as_bytes());
        payload.extend_from_slice(b"\r\n");
    }
    payload.extend_from_slice(b"\r\n");
    payload.extend_from_slice(m.body.as_bytes());
    Ok(Message::new(meta, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(meta: &str, payload: &[u8]) -> Message {
        Message::new(
            Meta::parse(Bytes::from(meta.to_string())).unwrap(),
            payload.to_vec(),
        )
    }

    fn encoded(meta: &str, payload: &[u8]) -> String {
        let mut out = Vec::new();
        encode(&msg(meta, payload), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn goreplay_test_vector_is_byte_exact() {
        // output_kafka_test.go: "HTTP1.1" is not a valid version, so no URL and (as the
        // title is then read as a header line without a colon) no headers.
        assert_eq!(
            encoded("1 2 3\n", b"GET / HTTP1.1\r\nHeader: 1\r\n\r\n"),
            r#"{"Req_URL":"","Req_Type":"1","Req_ID":"2","Req_Ts":"3","Req_Method":"GET"}"#
        );
    }

    #[test]
    fn request_with_headers_and_body() {
        let payload = b"POST /a?b=<1>&c HTTP/1.1\r\nhost: x\r\nX-FOO-bar:  a \r\nx-foo-bar: b\r\nContent-Length: 4\r\n\r\n\"\xe2\x80\xa8\x01";
        assert_eq!(
            encoded("1 abc 1700000000000000000 5\n", payload),
            concat!(
                r#"{"Req_URL":"/a?b=\u003c1\u003e\u0026c","Req_Type":"1","Req_ID":"abc","Req_Ts":"1700000000000000000","Req_Method":"POST","#,
                r#""Req_Body":"\"\u2028\u0001","Req_Headers":{"Content-Length":"4","Host":"x","X-Foo-Bar":"a, b"}}"#
            )
        );
    }

    #[test]
    fn response_and_invalid_utf8() {
        assert_eq!(
            encoded(
                "2 abc 7 1\n",
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok\xff"
            ),
            r#"{"Req_URL":"","Req_Type":"2","Req_ID":"abc","Req_Ts":"7","Req_Method":"HTTP/1.1","Req_Body":"ok\ufffd","Req_Headers":{"Content-Type":"text/plain"}}"#
        );
        // A malformed header line drops every header, as in GoReplay.
        assert_eq!(
            encoded(
                "1 a 1\n",
                b"GET / HTTP/1.1\r\nGood: 1\r\nBad header\r\n\r\n"
            ),
            r#"{"Req_URL":"/","Req_Type":"1","Req_ID":"a","Req_Ts":"1","Req_Method":"GET"}"#
        );
    }

    #[test]
    fn titles_follow_goreplay() {
        assert!(has_request_title(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!has_request_title(b"FOO / HTTP/1.1\r\n\r\n"));
        assert!(!has_request_title(b"GET / HTTP/2.0\r\n\r\n"));
        assert!(has_response_title(b"HTTP/1.0 404 Not Found\r\n"));
        assert!(!has_response_title(b"HTTP/1.1 299 Odd\r\n\r\n"));
    }

    #[test]
    fn decode_rebuilds_like_dump() {
        let json = br#"{"Req_URL":"/x","Req_Type":"1","Req_ID":"id1","Req_Ts":"42","Req_Method":"POST","Req_Body":"hi","Req_Headers":{"Host":"h","A":"b"}}"#;
        let m = decode(json).unwrap();
        assert_eq!(&*m.meta.line(), b"1 id1 42\n");
        assert_eq!(
            &m.payload[..],
            b"POST /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\nhi"
        );
        let mut encoded = Vec::new();
        encode(&m, &mut encoded);
        let again = decode(&encoded).unwrap();
        assert_eq!(again.payload.len(), m.payload.len());
        assert!(decode(b"not json").is_err());
        assert!(decode(br#"{"Req_Type":"","Req_ID":"a","Req_Ts":"1"}"#).is_err());
        for id in [r"a\nb", r"a 5", r"a\tb", ""] {
            let json = format!(r#"{{"Req_Type":"1","Req_ID":"{id}","Req_Ts":"1"}}"#);
            assert!(
                matches!(
                    decode(json.as_bytes()),
                    Err(DecodeError::Meta(MetaError::BadId { .. }))
                ),
                "{id:?}"
            );
        }
    }
}
