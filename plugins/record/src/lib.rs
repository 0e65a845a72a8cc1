//! `shadowtap-record`: renders a message as the structured JSON record researchers asked for,
//! one object per HTTP message. Shared by `--output-stdout-format json` and the Kafka and
//! Elasticsearch outputs.
//!
//! Fields: `ip_version`, `src_ip`, `dst_ip`, `src_port`, `dst_port` (for captured traffic),
//! `time` (RFC 3339 with nanoseconds, UTC), `kind` (`request`, `response`,
//! `replayed_response`), `id`, `http_version` (`1.0`, `1.1`, `2`: from the start line, so
//! messages read back from `.gor` files have it too); for messages decoded from a captured
//! HTTP/2 stream `stream_id` (and `hpack_unknown: true` when some header fields could not be
//! decoded); for requests `method`, `host`, `uri`, `user_agent`, `referer` and the parsed user
//! agent (`os_name`, `os_version`, `device_type`, `browser_name`, `browser_version`); for
//! responses `status_code`, `server`, `content_encoding`, `cache_control`, `latency_ns`; for
//! both `pragma`, `connection`, `content_type`, `content_length`, and `headers` with every
//! other header (lower-case names, repeated headers joined with `, `); for gRPC (content type
//! `application/grpc*`) `grpc` with `service`, `method`, `status` (`grpc-status`),
//! `message_count`, `encoding` (`grpc-encoding`) and `compressed_messages`; for messages
//! decrypted from captured TLS, `tls` with `version`, `cipher`, `sni` and `alpn`. Absent values
//! are left out.
//!
//! gRPC facts come from the capture (HTTP/2 decoder) when the message has them, and are
//! otherwise derived from the payload in its HTTP/1.1 form ([`grpc::grpc_facts_of`]): a
//! request's call from its path, a response's status from its trailer block or headers.
//!
//! With `--grpc-descriptor-set FILE` (a FileDescriptorSet from `protoc --include_imports
//! --descriptor_set_out=FILE`), a [`Recorder`] adds `grpc.messages`: each length-prefixed
//! message as proto3 JSON (default values shown, `bytes` in base64), decoded with the method's
//! input type (requests) or output type (responses), gzip and deflate messages inflated first,
//! within `--copy-buffer-size` decoded bytes per body. A failure (unknown service or method, a
//! response whose request was not seen, a claimed length beyond the limit, a cut message, bad
//! compression, bytes that are not the type) leaves `null` for that message and sets
//! `grpc.decode_error` to the first one, e.g. `message 1: cut short, 3 of 9 bytes`; it is
//! counted on the output under `grpc decode: <reason>`. Example:
//!
//! ```text
//! shadowtap --input-pcap grpc.pcap:50051 --input-raw-track-response \
//!     --grpc-descriptor-set api.pb --output-stdout --output-stdout-format json
//! ```
#![deny(missing_docs)]

pub mod descriptors;
pub mod goreplay_json;
pub mod grpc;
mod recorder;

pub use descriptors::{DescriptorSetError, GrpcDecodeError, GrpcDescriptors};
pub use grpc::GrpcRecord;
pub use recorder::{descriptors_of, GrpcRecordArgs, Recorder, RECENT_CALLS};

use serde::Serialize;
use shadowtap_api::{Kind, Message, TlsFacts};
use shadowtap_http1::headers;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One HTTP message as a flat, searchable record.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Record {
    /// 4 or 6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    /// Sender address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<String>,
    /// Receiver address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<String>,
    /// Sender port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Receiver port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// When the message's first byte was seen (RFC 3339, nanoseconds, UTC).
    pub time: String,
    /// `request`, `response` or `replayed_response`.
    pub kind: &'static str,
    /// The message id (a response shares its request's id).
    pub id: String,
    /// `1.0`, `1.1` or `2`, from the start line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    /// The HTTP/2 stream of a message decoded from a captured HTTP/2 connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u32>,
    /// True when some header fields of an HTTP/2 message could not be decoded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hpack_unknown: bool,
    /// Request method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Host header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Request target as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// User-Agent header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Referer header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referer: Option<String>,
    /// Operating system from the user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    /// Operating system version from the user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// `pc`, `smartphone`, `mobilephone`, `crawler`, `appliance` or `misc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// Browser (or crawler) name from the user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser_name: Option<String>,
    /// Browser version from the user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    /// Response status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Server header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Content-Encoding header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// Cache-Control header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Responses: nanoseconds from the request's first byte to the response's first byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<i64>,
    /// Pragma header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pragma: Option<String>,
    /// Connection header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Content-Type header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Content-Length header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
    /// Every other header, lower-case name → value.
    pub headers: BTreeMap<String, String>,
    /// gRPC facts (and, with a descriptor set, the messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcRecord>,
    /// The TLS session of a decrypted message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsRecord>,
}

/// The `tls` object of a record: the session a decrypted message travelled in.
#[derive(Debug, Serialize, PartialEq)]
pub struct TlsRecord {
    /// `1.2` or `1.3`.
    pub version: &'static str,
    /// IANA cipher suite name.
    pub cipher: &'static str,
    /// Server name indication sent by the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Application protocol (ALPN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
}

impl TlsRecord {
    fn of(facts: &TlsFacts) -> TlsRecord {
        TlsRecord {
            version: facts.version,
            cipher: facts.cipher,
            sni: facts.sni.as_deref().map(str::to_string),
            alpn: facts.alpn.as_deref().map(str::to_string),
        }
    }
}

/// Most header fields a record takes (the rest of a hostile head is ignored).
const MAX_HEADERS: usize = 128;

impl Record {
    /// The record of `msg` (a payload that is not HTTP gives the header-line fields only).
    pub fn from_message(msg: &Message) -> Record {
        let mut record = Record {
            time: rfc3339(msg.meta.timestamp()),
            kind: kind_name(msg.kind()),
            id: msg.id().to_string(),
            tls: msg.tls.as_deref().map(TlsRecord::of),
            http_version: grpc::http_version(&msg.payload),
            stream_id: msg.h2.as_ref().map(|h2| h2.stream_id),
            hpack_unknown: msg.h2.as_ref().is_some_and(|h2| h2.hpack_unknown),
            grpc: grpc_record_of(msg),
            ..Record::default()
        };
        if let Some(ends) = msg.endpoints {
            record.ip_version = Some(if ends.src.is_ipv4() { 4 } else { 6 });
            record.src_ip = Some(ends.src.ip().to_string());
            record.dst_ip = Some(ends.dst.ip().to_string());
            record.src_port = Some(ends.src.port());
            record.dst_port = Some(ends.dst.port());
        }
        let payload = &msg.payload[..];
        if msg.kind() == Kind::Request {
            if let Some(line) = headers::request_line(payload) {
                record.method = Some(String::from_utf8_lossy(line.method).into_owned());
                record.uri = Some(String::from_utf8_lossy(line.target).into_owned());
                record.absorb_headers(payload);
                record.parse_user_agent();
            }
        } else {
            if let Some(line) = headers::status_line(payload) {
                record.status_code = Some(line.status);
                record.absorb_headers(payload);
            }
            record.latency_ns = msg.meta.latency().filter(|l| *l >= 0);
        }
        record
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records always serialise")
    }

    fn absorb_headers(&mut self, payload: &[u8]) {
        for field in headers::fields(payload).take(MAX_HEADERS) {
            let value = String::from_utf8_lossy(&field.value_unfolded()).into_owned();
            let name = String::from_utf8_lossy(field.name).to_ascii_lowercase();
            let slot = match name.as_str() {
                "host" => &mut self.host,
                "user-agent" => &mut self.user_agent,
                "referer" => &mut self.referer,
                "server" => &mut self.server,
                "content-encoding" => &mut self.content_encoding,
                "cache-control" => &mut self.cache_control,
                "pragma" => &mut self.pragma,
                "connection" => &mut self.connection,
                "content-type" => &mut self.content_type,
                "content-length" => {
                    self.content_length = self.content_length.or(value.parse().ok());
                    continue;
                }
                _ => {
                    self.headers
                        .entry(name)
                        .and_modify(|v| {
                            v.push_str(", ");
                            v.push_str(&value);
                        })
                        .or_insert(value);
                    continue;
                }
            };
            slot.get_or_insert(value);
        }
    }

    fn parse_user_agent(&mut self) {
        static PARSER: OnceLock<woothee::parser::Parser> = OnceLock::new();
        let Some(agent) = self.user_agent.as_deref() else {
            return;
        };
        let Some(parsed) = PARSER
            .get_or_init(woothee::parser::Parser::new)
            .parse(agent)
        else {
            return;
        };
        let known = |s: &str| {
            (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_string())
        };
        self.os_name = known(parsed.os);
        self.os_version = known(&parsed.os_version);
        self.device_type = known(parsed.category);
        self.browser_name = known(parsed.name);
        self.browser_version = known(parsed.version);
    }
}

/// The `grpc` object of a message: its capture facts, or for a message without them the facts
/// derived from its payload.
fn grpc_record_of(msg: &Message) -> Option<GrpcRecord> {
    match &msg.h2 {
        Some(h2) => h2.grpc.as_ref().map(GrpcRecord::of),
        None => grpc::grpc_facts_of(msg.kind(), &msg.payload)
            .as_ref()
            .map(GrpcRecord::of),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Request => "request",
        Kind::Response => "response",
        Kind::ReplayedResponse => "replayed_response",
        Kind::Other(_) => "other",
    }
}

/// Nanoseconds since the epoch as RFC 3339 UTC with nanoseconds.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::{Endpoints, GrpcFacts, H2Facts, Meta};

    const FIREFOX: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0";

    #[test]
    fn decrypted_messages_carry_their_tls_session() {
        let facts = TlsFacts {
            version: "1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
            sni: Some("shop.example".into()),
            alpn: None,
        };
        let msg = Message::new(
            Meta::new(Kind::Request, "abc", 1, 0).unwrap(),
            "GET / HTTP/1.1\r\n\r\n",
        )
        .with_tls(std::sync::Arc::new(facts));
        let json = Record::from_message(&msg).to_json();
        assert!(
            json.ends_with(
                r#""tls":{"version":"1.3","cipher":"TLS_AES_128_GCM_SHA256","sni":"shop.example"}}"#
            ),
            "{json}"
        );
    }

    #[test]
    fn http2_messages_carry_their_stream_and_grpc_facts() {
        let facts = H2Facts {
            stream_id: 9,
            hpack_unknown: false,
            grpc: Some(GrpcFacts {
                service: "pkg.Echo".into(),
                method: "Unary".into(),
                status: Some(5),
                message_count: 0,
                encoding: None,
                compressed_messages: 0,
            }),
        };
        let msg = Message::new(
            Meta::new(Kind::Response, "abc", 1, 0).unwrap(),
            "HTTP/2 200\r\ncontent-type: application/grpc\r\ngrpc-status: 5\r\n\r\n",
        )
        .with_h2(std::sync::Arc::new(facts));
        let json = Record::from_message(&msg).to_json();
        assert!(
            json.contains(r#""id":"abc","http_version":"2","stream_id":9,"status_code":200"#),
            "{json}"
        );
        assert!(
            json.ends_with(r#""grpc":{"service":"pkg.Echo","method":"Unary","status":5,"message_count":0,"compressed_messages":0}}"#),
            "{json}"
        );
        let http1 = Message::new(
            Meta::new(Kind::Request, "abc", 1, 0).unwrap(),
            "GET / HTTP/1.1\r\n\r\n",
        );
        let record = Record::from_message(&http1);
        assert_eq!(record.http_version.as_deref(), Some("1.1"));
        assert!(record.stream_id.is_none() && record.grpc.is_none());
    }

    #[test]
    fn request_record_has_parsed_fields() {
        let payload = format!("GET /a?b=1 HTTP/1.1\r\nHost: shop\r\nUser-Agent: {FIREFOX}\r\nReferer: http://x/\r\nAccept: */*\r\nX-Two: 1\r\nx-two: 2\r\n\r\n");
        let msg = Message::new(
            Meta::new(Kind::Request, "abc", 1_700_000_000_123_456_789, 0).unwrap(),
            payload,
        )
        .with_endpoints(Endpoints {
            src: "10.0.0.1:5000".parse().unwrap(),
            dst: "10.0.0.2:80".parse().unwrap(),
        });
        let record = Record::from_message(&msg);
        assert_eq!(record.time, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(record.ip_version, Some(4));
        assert_eq!(record.method.as_deref(), Some("GET"));
        assert_eq!(record.uri.as_deref(), Some("/a?b=1"));
        assert_eq!(record.host.as_deref(), Some("shop"));
        assert_eq!(record.browser_name.as_deref(), Some("Firefox"));
        assert_eq!(record.os_name.as_deref(), Some("Windows 10"));
        assert_eq!(record.device_type.as_deref(), Some("pc"));
        assert_eq!(
            record.headers.get("x-two").map(String::as_str),
            Some("1, 2")
        );
        assert_eq!(
            record.headers.get("accept").map(String::as_str),
            Some("*/*")
        );
        let json = record.to_json();
        assert!(
            json.starts_with("{\"ip_version\":4,\"src_ip\":\"10.0.0.1\""),
            "{json}"
        );
    }

    #[test]
    fn response_record_has_status_and_latency() {
        let msg = Message::new(
            Meta::new(Kind::Response, "abc", 5, 1234).unwrap(),
            "HTTP/1.1 404 Not Found\r\nServer: nginx\r\nContent-Length: 9\r\nContent-Type: text/html\r\n\r\nnot found",
        );
        let record = Record::from_message(&msg);
        assert_eq!(record.kind, "response");
        assert_eq!(record.status_code, Some(404));
        assert_eq!(record.server.as_deref(), Some("nginx"));
        assert_eq!(record.content_length, Some(9));
        assert_eq!(record.latency_ns, Some(1234));
        assert!(record.src_ip.is_none());
    }

    #[test]
    fn tolerant_heads() {
        let msg = Message::new(
            Meta::new(Kind::Response, "abc", 5, 1).unwrap(),
            "http/1.1 200 OK\nServer: a\n  b\nX-Cut: yes",
        );
        let record = Record::from_message(&msg);
        assert_eq!(record.status_code, Some(200));
        assert_eq!(record.server.as_deref(), Some("a b"));
        assert_eq!(record.headers.get("x-cut").map(String::as_str), Some("yes"));
    }

    #[test]
    fn non_http_payloads_keep_the_header_fields() {
        let msg = Message::new(
            Meta::new(Kind::Request, "z", 0, 0).unwrap(),
            "\x00\x01binary",
        );
        let record = Record::from_message(&msg);
        assert_eq!(record.id, "z");
        assert!(record.method.is_none());
    }
}
