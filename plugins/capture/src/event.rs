//! What the tracker reports: messages, discards under a [`DropReason`], and recoveries from
//! malformed or damaged input under a [`Recovery`].

use std::net::SocketAddr;

use std::sync::Arc;

use bytes::Bytes;

use crate::ids::MessageId;
use crate::tls::TlsInfo;

/// Why the tracker discarded a message, a segment or a run of bytes ([`Event::Dropped`]).
///
/// Every discard is reported under one of these; the capture worker maps each to a ledger
/// reason with an exhaustive `match`, so a new variant cannot go uncounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A data segment whose ports are not among the configured server ports.
    OutsidePorts,
    /// A message that could not be completed (expired, hole, closed or reset mid-message).
    Incomplete,
    /// A message lost because its flow was evicted from a full flow table.
    FlowTableFull,
    /// A run of bytes that never formed a message, skipped up to the next message boundary.
    Garbage,
    /// A message lost because the tracker's buffer budget was exhausted.
    BufferFull,
    /// A data segment of a connection after an honoured RST (until a new SYN).
    AfterReset,
    /// An RST whose sequence number is not the next expected one (ignored, RFC 5961 §3), or
    /// data beyond the sender's FIN.
    OutOfWindow,
    /// A data segment (or the rest of a buffered one) inside a CONNECT or Upgrade tunnel.
    Tunnel,
    /// A segment refused because its flow already holds the most out-of-order segments.
    SegmentLimit,
    /// A TLS connection whose key never appeared within the key wait.
    TlsNoKey,
    /// A TLS connection captured without its handshake.
    TlsNoHandshake,
    /// A TLS connection with a cipher suite that is not decrypted (its number).
    TlsUnsupportedSuite(u16),
    /// A TLS record that failed authentication (wrong key, corrupted record).
    TlsDecryptFailed,
    /// A TLS connection that could not resynchronise after a lost segment.
    TlsLostSegment,
    /// A TLS 1.2 renegotiation.
    TlsRenegotiation,
    /// TLS records or handshake messages that do not parse.
    TlsMalformed,
    /// TLS records beyond the per-connection budget held while waiting for a key.
    TlsBufferFull,
    /// An HTTP/2 frame, header block or stream the decoder could not take (its reason).
    Http2(crate::h2::H2Failure),
}

impl DropReason {
    /// A short human label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::OutsidePorts => "outside ports",
            DropReason::Incomplete => "incomplete",
            DropReason::FlowTableFull => "flow table full",
            DropReason::Garbage => "garbage",
            DropReason::BufferFull => "buffer full",
            DropReason::AfterReset => "after reset",
            DropReason::OutOfWindow => "out of window",
            DropReason::Tunnel => "tunnel",
            DropReason::SegmentLimit => "segment limit",
            DropReason::TlsNoKey => "tls: no key",
            DropReason::TlsNoHandshake => "tls: no handshake",
            DropReason::TlsUnsupportedSuite(_) => "tls: unsupported suite",
            DropReason::TlsDecryptFailed => "tls: decrypt failed",
            DropReason::TlsLostSegment => "tls: lost segment",
            DropReason::TlsRenegotiation => "tls: renegotiation",
            DropReason::TlsMalformed => "tls: malformed",
            DropReason::TlsBufferFull => "tls: buffer full",
            DropReason::Http2(failure) => failure.reason(),
        }
    }
}

/// The [`DropReason`]s under their historical constant names.
pub mod reason {
    use super::DropReason;

    /// [`DropReason::OutsidePorts`].
    pub const OUTSIDE_PORTS: DropReason = DropReason::OutsidePorts;
    /// [`DropReason::Incomplete`].
    pub const INCOMPLETE: DropReason = DropReason::Incomplete;
    /// [`DropReason::FlowTableFull`].
    pub const FLOW_TABLE_FULL: DropReason = DropReason::FlowTableFull;
    /// [`DropReason::Garbage`].
    pub const GARBAGE: DropReason = DropReason::Garbage;
    /// [`DropReason::BufferFull`].
    pub const BUFFER_FULL: DropReason = DropReason::BufferFull;
    /// [`DropReason::AfterReset`].
    pub const AFTER_RESET: DropReason = DropReason::AfterReset;
    /// [`DropReason::OutOfWindow`].
    pub const OUT_OF_WINDOW: DropReason = DropReason::OutOfWindow;
    /// [`DropReason::Tunnel`].
    pub const TUNNEL: DropReason = DropReason::Tunnel;
    /// [`DropReason::SegmentLimit`].
    pub const SEGMENT_LIMIT: DropReason = DropReason::SegmentLimit;
}

/// A tolerant recovery: input a strict reader would lose, delivered anyway ([`Event::Recovered`]).
///
/// The capture worker counts each as the ledger figure `recovered: <kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recovery {
    /// A status line a strict parser rejects: lowercase `http/`, extra spaces, a status code
    /// of more than three digits, no reason phrase separator.
    LenientStatusLine,
    /// `HTTP/1.x` with x > 1, processed as HTTP/1.1 (RFC 9110 §2.5).
    VersionAboveOneOne,
    /// Lines ended by a bare LF.
    BareLf,
    /// Lines ended by a bare CR.
    BareCr,
    /// A NUL byte inside the header block.
    NulInHeader,
    /// A header folded onto the next line (obs-fold).
    ObsFold,
    /// Junk bytes before a status line, skipped.
    LeadingJunk,
    /// A response without a status line: HTTP/0.9, its body runs until the close.
    Http09,
    /// An invalid chunk-size line: the rest of the body runs until the close.
    InvalidChunkSize,
    /// Conflicting Content-Length values: the body runs until the close.
    ConflictingContentLength,
    /// A message delivered across a hole in its body (marked incomplete, hole size known).
    HoleInBody,
    /// A gap swallowed whole responses; pairing resumed with the request the next one answers.
    PairingAfterGap,
}

impl Recovery {
    /// The kebab-case name used in the ledger figure `recovered: <name>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::LenientStatusLine => "lenient-status-line",
            Recovery::VersionAboveOneOne => "version-above-1-1",
            Recovery::BareLf => "bare-lf",
            Recovery::BareCr => "bare-cr",
            Recovery::NulInHeader => "nul-in-header",
            Recovery::ObsFold => "obs-fold",
            Recovery::LeadingJunk => "leading-junk",
            Recovery::Http09 => "http09",
            Recovery::InvalidChunkSize => "invalid-chunk-size",
            Recovery::ConflictingContentLength => "conflicting-content-length",
            Recovery::HoleInBody => "hole-in-body",
            Recovery::PairingAfterGap => "pairing-after-gap",
        }
    }
}

/// Request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}

/// One reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMessage {
    /// Request or response.
    pub kind: MessageKind,
    /// 24 lowercase hex digits; a response has the id of the request it answers.
    pub id: MessageId,
    /// Capture time of the packet carrying the first byte.
    pub start_ns: i64,
    /// Capture time of the last packet that contributed.
    pub end_ns: i64,
    /// Responses: first response byte − first request byte (or `end − start` when the request
    /// was not seen). Requests: `end − start`.
    pub latency_ns: i64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The exact bytes sent: start line, headers and body.
    pub payload: Bytes,
    /// The payload was cut at `max_message_bytes`.
    pub truncated: bool,
    /// The message could not be completed (see the module docs).
    pub incomplete: bool,
    /// Bytes missing from the payload: holes in the stream the message was delivered across.
    pub missing_bytes: u64,
    /// The TLS session the message was decrypted from.
    pub tls: Option<Arc<TlsInfo>>,
    /// The HTTP/2 stream the message was decoded from (boxed: HTTP/1 messages pay a pointer).
    pub h2: Option<Box<H2Info>>,
}

/// What the HTTP/2 decoder knows of a message besides its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Info {
    /// The stream id (a pushed response has the promised stream's).
    pub stream_id: u32,
    /// Some header fields could not be decoded (unknown HPACK state).
    pub hpack_unknown: bool,
    /// gRPC facts, when the content type is `application/grpc*`.
    pub grpc: Option<shadowtap_h2::GrpcInfo>,
}

/// What the tracker reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A reassembled message.
    Message(HttpMessage),
    /// Messages (or runs of bytes) that will never be emitted.
    Dropped {
        /// Why.
        reason: DropReason,
        /// How many.
        count: u64,
    },
    /// Input a strict reader would have lost, delivered anyway.
    Recovered {
        /// Which kind of recovery.
        kind: Recovery,
        /// How many times.
        count: u64,
    },
}

/// Counters that are not messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Flows evicted because the table was full.
    pub flows_evicted: u64,
    /// Flows removed after being idle for `expire_ns`.
    pub flows_expired: u64,
    /// Holes given up on.
    pub holes_skipped: u64,
    /// CONNECT requests seen (their 2xx responses turn connections into tunnels).
    pub connect_requests: u64,
}
