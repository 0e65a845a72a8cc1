//! The unit that flows through shadowtap: a header line and a payload.

use crate::meta::{Kind, Meta, MetaError};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where a captured message travelled: its sender and its receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// The sender's address and port.
    pub src: SocketAddr,
    /// The receiver's address and port.
    pub dst: SocketAddr,
}

/// The TLS session a decrypted message travelled in (never any key material).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsFacts {
    /// `1.2` or `1.3`.
    pub version: &'static str,
    /// The cipher suite's IANA name, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    /// The server name the client asked for (SNI), when it sent one.
    pub sni: Option<Box<str>>,
    /// The application protocol (ALPN) agreed, or the client's first offer when the agreed one
    /// is not known.
    pub alpn: Option<Box<str>>,
}

/// The HTTP/2 stream a captured message was decoded from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct H2Facts {
    /// The stream id (a pushed response has the promised stream's).
    pub stream_id: u32,
    /// Some header fields could not be decoded: the capture lacked the HPACK state.
    pub hpack_unknown: bool,
    /// For gRPC (content type `application/grpc*`): what the decoder saw of the call.
    pub grpc: Option<GrpcFacts>,
}

/// gRPC facts of one message: its call and its length-prefixed messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GrpcFacts {
    /// `package.Service` from the path `/package.Service/Method` (empty when unknown).
    pub service: String,
    /// `Method` from the path (empty when unknown).
    pub method: String,
    /// `grpc-status` (from the trailers, or the headers of a trailers-only response).
    pub status: Option<u32>,
    /// Length-prefixed messages in the body (counted when their 5-byte prefix is complete).
    pub message_count: usize,
    /// `grpc-encoding`.
    pub encoding: Option<String>,
    /// Messages with the compressed flag set.
    pub compressed_messages: usize,
}

/// One request or response: GoReplay's header line plus the raw payload.
///
/// Cloning is a reference-count bump, so fanning out to many outputs copies nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The parsed header line.
    pub meta: Meta,
    /// The payload, usually an HTTP/1.x message exactly as it was on the wire.
    pub payload: Bytes,
    /// Addresses, for messages from packet capture (not part of the `.gor` format).
    pub endpoints: Option<Endpoints>,
    /// For messages decrypted from captured TLS: the session's facts (not part of `.gor`).
    pub tls: Option<Arc<TlsFacts>>,
    /// For messages decoded from a captured HTTP/2 stream: its facts (not part of `.gor`).
    pub h2: Option<Arc<H2Facts>>,
}

impl Message {
    /// Pairs a header with a payload.
    pub fn new(meta: Meta, payload: impl Into<Bytes>) -> Message {
        Message {
            meta,
            payload: payload.into(),
            endpoints: None,
            tls: None,
            h2: None,
        }
    }

    /// The same message with the addresses it was captured between.
    pub fn with_endpoints(mut self, endpoints: Endpoints) -> Message {
        self.endpoints = Some(endpoints);
        self
    }

    /// The same message marked as decrypted from the TLS session `facts`.
    pub fn with_tls(mut self, facts: Arc<TlsFacts>) -> Message {
        self.tls = Some(facts);
        self
    }

    /// The same message marked as decoded from the HTTP/2 stream `facts` describe.
    pub fn with_h2(mut self, facts: Arc<H2Facts>) -> Message {
        self.h2 = Some(facts);
        self
    }

    /// Splits `header line \n payload` as GoReplay stores messages (the line up to the first `\n`).
    pub fn from_bytes(bytes: Bytes) -> Result<Message, MetaError> {
        let end = memchr::memchr(b'\n', &bytes).ok_or(MetaError::NoHeaderLine)?;
        let meta = Meta::parse(bytes.slice(..=end))?;
        Ok(Message {
            meta,
            payload: bytes.slice(end + 1..),
            endpoints: None,
            tls: None,
            h2: None,
        })
    }

    /// The kind from the header line.
    pub fn kind(&self) -> Kind {
        self.meta.kind()
    }

    /// The id from the header line.
    pub fn id(&self) -> &str {
        self.meta.id()
    }

    /// Header line and payload, concatenated (GoReplay's Kafka raw value).
    pub fn to_raw(&self) -> Vec<u8> {
        let line = self.meta.line();
        let mut out = Vec::with_capacity(line.len() + self.payload.len());
        out.extend_from_slice(&line);
        out.extend_from_slice(&self.payload);
        out
    }

    /// Cuts the payload to `limit` bytes; returns true when something was cut.
    pub fn truncate_payload(&mut self, limit: usize) -> bool {
        if self.payload.len() > limit {
            self.payload.truncate(limit);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_newline() {
        let msg = Message::from_bytes(Bytes::from("1 a 2 3\nGET / HTTP/1.1\r\n\r\n")).unwrap();
        assert_eq!(msg.id(), "a");
        assert_eq!(&msg.payload[..], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(msg.to_raw(), b"1 a 2 3\nGET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn no_newline_is_an_error() {
        assert_eq!(
            Message::from_bytes(Bytes::from("1 a 2")),
            Err(MetaError::NoHeaderLine)
        );
    }

    #[test]
    fn truncation_reports() {
        let mut msg = Message::new(Meta::new(Kind::Request, "a", 1, 0).unwrap(), "hello");
        assert!(!msg.truncate_payload(5));
        assert!(msg.truncate_payload(2));
        assert_eq!(&msg.payload[..], b"he");
    }
}
