//! Passive HTTP/2 decoding of captured connections (RFC 9113, HPACK RFC 7541), pure: no I/O,
//! no threads, no clock.
//!
//! The caller feeds the in-order reassembled (and, for `h2`, decrypted) bytes of each
//! direction of one connection into an [`H2Connection`], each piece with an opaque tag `M`
//! (a segment id, a timestamp), and gets [`H2Event`]s back through a callback: one
//! [`H2Message`] per request, response (interim 1xx responses included) and pushed response,
//! in HTTP/1.1 form so that the HTTP/1 tools work on it, and [`H2Event::Problem`]s.
//!
//! ```
//! use shadowtap_h2::{H2Connection, H2Event, H2Limits, Side};
//! let mut conn: H2Connection<u32> = H2Connection::new(H2Limits::default());
//! conn.feed(Side::Client, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1, &mut |event| match event {
//!     H2Event::Message(m) => println!("{:?} stream {}", m.side, m.stream_id),
//!     H2Event::Problem { failure, .. } => println!("{}", failure.reason()),
//! });
//! conn.finish(&mut |_| {});
//! ```
//!
//! * [`H2Connection::new`] expects the client preface first; [`H2Connection::upgraded`] is
//!   for `Upgrade: h2c` (stream 1's request was the HTTP/1.1 one); [`H2Connection::mid_stream`]
//!   is for a capture that started mid-connection: frame boundaries are found by a bounded
//!   heuristic scan and header blocks decode as far as the static table, literals and the
//!   dynamic entries added since allow ([`H2Message::hpack_unknown`] marks the rest).
//! * [`H2Connection::gap`] reports lost bytes. A hole that ends inside the frame being
//!   received (its header buffered) loses that frame only: the next boundary is known. Any
//!   other hole ends that side's open messages incomplete, makes its HPACK state unknown and
//!   decoding resynchronises on the next plausible frame header (confirmed by the one after).
//!   Unlike `TlsSession::gap`, it takes the event callback (the messages it ends).
//! * Memory: the unparsed bytes of one frame per direction (≤ `max_frame_bytes`), one header
//!   block per direction (≤ `max_header_block`), and per open stream (≤ `max_streams`) two
//!   messages of ≤ `max_message_bytes` body each; [`H2Connection::buffered_bytes`] says how
//!   much is held. Nothing is allocated by a claimed length.
//! * Each direction has its own HPACK decoder, fed every header block (PUSH_PROMISE too) in
//!   wire order. The dynamic-table limit of the decoder of direction X is the
//!   SETTINGS_HEADER_TABLE_SIZE the *receiver* of X advertised, applied once X acknowledges
//!   it (capped at 1 MiB).
//!
//! Payload form: a request is `METHOD PATH HTTP/2\r\n`, then `host: <:authority>\r\n` when
//! present, then the regular fields in captured order and case (split `cookie` fields
//! joined with `"; "` at the first one's place), a `content-length` with the kept body size
//! when the body is not empty and none was sent, `\r\n`, the body (padding removed), and
//! only when trailers exist the trailer fields followed by `\r\n`. A response starts with
//! `HTTP/2 STATUS\r\n`. `:scheme` is not in the payload but in [`H2Message::scheme`] (with
//! `:authority` in `host:`, replay has both); other pseudo-headers are dropped. A field
//! that could not be decoded (unknown HPACK state) is left out and a missing `:method`,
//! `:path` or `:status` is written as `-`. A pushed response has the promised stream id; the
//! promised request is not emitted.
#![deny(missing_docs)]

mod connection;
mod form;
mod frame;
mod grpc;
mod hpack;
mod message;

#[cfg(test)]
mod testenc;
#[cfg(test)]
mod tests;

pub use connection::H2Connection;
pub use form::{write_form, FormStart};
pub use grpc::{
    count_grpc_messages, grpc_frames, is_grpc_content_type, service_method, GrpcFrame, GrpcFrames,
};

/// The client connection preface (RFC 9113 §3.4).
pub const CLIENT_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bytes sent by the client (the side that sent the preface).
    Client,
    /// Bytes sent by the server.
    Server,
}

impl Side {
    pub(crate) fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    pub(crate) fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// Memory bounds of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H2Limits {
    /// The largest frame length accepted (a longer one stops the direction).
    pub max_frame_bytes: usize,
    /// The largest header block (HEADERS/PUSH_PROMISE plus CONTINUATIONs).
    pub max_header_block: usize,
    /// Streams open at once; HEADERS opening one more are reported and ignored.
    pub max_streams: usize,
    /// Body bytes kept per message; beyond it the message is marked truncated.
    pub max_message_bytes: usize,
}

impl Default for H2Limits {
    fn default() -> Self {
        H2Limits {
            max_frame_bytes: 16 << 20,
            max_header_block: 256 << 10,
            max_streams: 1000,
            max_message_bytes: 1 << 20,
        }
    }
}

/// One decoded request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H2Message<M> {
    /// Who sent it.
    pub side: Side,
    /// Its stream (the promised stream for a pushed response).
    pub stream_id: u32,
    /// The HTTP/1.1 form (see the crate documentation).
    pub payload: Vec<u8>,
    /// The tag of the segment carrying the first byte of its first frame.
    pub first: M,
    /// The tag of the segment carrying the last byte of its last frame.
    pub last: M,
    /// Body bytes beyond [`H2Limits::max_message_bytes`] were dropped.
    pub truncated: bool,
    /// It did not end with END_STREAM (RST_STREAM, GOAWAY, lost bytes, connection end).
    pub incomplete: bool,
    /// Some header fields could not be decoded (the HPACK state was unknown).
    pub hpack_unknown: bool,
    /// The request's `:scheme` (for a response: its request's).
    pub scheme: Option<String>,
    /// gRPC facts, when the content type is `application/grpc*`.
    pub grpc: Option<GrpcInfo>,
}

/// gRPC facts about one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcInfo {
    /// `pkg.Service` from `:path` `/pkg.Service/Method`.
    pub service: String,
    /// `Method` from `:path`.
    pub method: String,
    /// `grpc-status` (trailers, or the headers of a trailers-only response).
    pub status: Option<u32>,
    /// Length-prefixed messages seen in the body (counted when their prefix is complete).
    pub message_count: usize,
    /// `grpc-encoding`.
    pub encoding: Option<String>,
    /// Messages with the compressed flag set.
    pub compressed_messages: usize,
}

/// Why decoding of a stream or a direction stopped. `Display` is [`H2Failure::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum H2Failure {
    /// The client did not start with the connection preface (direction stopped).
    #[error("h2: bad preface")]
    BadPreface,
    /// A frame longer than [`H2Limits::max_frame_bytes`] (direction stopped).
    ///
    /// After a resynchronisation (mid-connection start, gap) this and the other
    /// direction-stopping failures make the direction resynchronise again instead, reported
    /// once until the next gap.
    #[error("h2: frame too large")]
    FrameTooLarge,
    /// A frame whose length, padding or stream id breaks RFC 9113 §6 (direction stopped
    /// when it carries a header block, whose loss puts HPACK out of step; the frame skipped
    /// otherwise).
    #[error("h2: malformed frame")]
    MalformedFrame,
    /// A header block failed to decode, or was longer than [`H2Limits::max_header_block`]
    /// (direction stopped).
    #[error("h2: hpack error")]
    HpackError,
    /// A frame other than CONTINUATION in the middle of a header block (direction stopped).
    #[error("h2: continuation expected")]
    ContinuationExpected,
    /// A frame that is not allowed on its stream in its state (the frame is ignored).
    #[error("h2: protocol error")]
    ProtocolError,
    /// A stream beyond [`H2Limits::max_streams`] (the stream is ignored).
    #[error("h2: too many streams")]
    TooManyStreams,
    /// A WINDOW_UPDATE with a zero increment.
    #[error("h2: flow control")]
    FlowControl,
    /// RST_STREAM on an open stream: its open messages were emitted incomplete.
    #[error("h2: stream reset")]
    StreamReset,
    /// GOAWAY with an error code, or abandoning streams: the peer's streams above its last
    /// stream id were emitted incomplete (a graceful NO_ERROR GOAWAY is not reported).
    #[error("h2: goaway")]
    GoAway,
    /// A header field referenced dynamic-table state that was never seen (reported once per
    /// direction after each loss of state).
    #[error("h2: hpack state unknown")]
    HpackStateUnknown,
}

impl H2Failure {
    /// A fixed reason string, for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            H2Failure::BadPreface => "h2: bad preface",
            H2Failure::FrameTooLarge => "h2: frame too large",
            H2Failure::MalformedFrame => "h2: malformed frame",
            H2Failure::HpackError => "h2: hpack error",
            H2Failure::ContinuationExpected => "h2: continuation expected",
            H2Failure::ProtocolError => "h2: protocol error",
            H2Failure::TooManyStreams => "h2: too many streams",
            H2Failure::FlowControl => "h2: flow control",
            H2Failure::StreamReset => "h2: stream reset",
            H2Failure::GoAway => "h2: goaway",
            H2Failure::HpackStateUnknown => "h2: hpack state unknown",
        }
    }
}

/// What a connection reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum H2Event<M> {
    /// A request or response, complete or not.
    Message(H2Message<M>),
    /// Something went wrong on one stream (`stream_id`) or one direction (`None`).
    Problem {
        /// What.
        failure: H2Failure,
        /// The stream it concerns, if any.
        stream_id: Option<u32>,
    },
}

/// Whether `data` (the first client bytes) starts with the complete client preface.
pub fn is_client_preface(data: &[u8]) -> bool {
    preface_verdict(data) == Some(true)
}

/// `Some(true)`: `data` starts with the client preface; `None`: `data` is a shorter prefix
/// of it (undecided); `Some(false)`: it is not HTTP/2 prior knowledge.
pub fn preface_verdict(data: &[u8]) -> Option<bool> {
    let n = data.len().min(CLIENT_PREFACE.len());
    if data[..n] != CLIENT_PREFACE[..n] {
        Some(false)
    } else if n == CLIENT_PREFACE.len() {
        Some(true)
    } else {
        None
    }
}

/// Whether `data`, bytes of a connection whose start was not captured, begins with an HTTP/2
/// frame header confirmed by the next one (or by `data` ending where that frame ends): the
/// test for handing such a connection to [`H2Connection::mid_stream`]. HTTP/1 text never
/// passes (its first three bytes read as a length above the maximum frame size).
pub fn begins_with_frame(data: &[u8]) -> bool {
    frame::resync(data) == frame::Resync::Found(0)
}

/// Fuzz entry point for the HPACK path: a stream of `len byte, header block…` decoded by this
/// crate's decoder and by loona-hpack's, which must agree block by block.
#[cfg(feature = "fuzzing")]
pub fn fuzz_hpack(data: &[u8]) {
    hpack::fuzz_differential(data);
}

/// Fuzz entry point: a list of `op len bytes…` chunks (`op` bit 0: side, bit 1: a gap of
/// `len` bytes instead of data, bit 2 of the first op: start mid-connection).
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_connection(data: &[u8]) {
    std::hint::black_box(fuzz_connection_messages(data));
}

/// [`fuzz_connection`], returning how many messages came out (for checking seeds).
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_connection_messages(data: &[u8]) -> usize {
    let limits = H2Limits {
        max_frame_bytes: 1 << 16,
        max_header_block: 8 << 10,
        max_streams: 16,
        max_message_bytes: 4 << 10,
    };
    let mut conn = match data.first() {
        Some(op) if op & 4 != 0 => H2Connection::mid_stream(limits),
        _ => H2Connection::new(limits),
    };
    let mut messages = 0;
    let mut sink = |event: H2Event<usize>| {
        if let H2Event::Message(m) = event {
            assert!(m.first <= m.last);
            messages += 1;
        }
    };
    let mut chunks = data;
    let mut index = 0usize;
    while let [op, len, tail @ ..] = chunks {
        let side = if op & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        let len = usize::from(*len);
        if op & 2 != 0 {
            conn.gap(side, len as u64, &mut sink);
            chunks = tail;
        } else {
            let (bytes, tail) = tail.split_at(len.min(tail.len()));
            conn.feed(side, bytes, index, &mut sink);
            chunks = tail;
        }
        let _ = conn.buffered_bytes();
        index += 1;
    }
    conn.finish(&mut sink);
    messages
}
