//! The HTTP/2 part of the protocol layer: a connection whose client sends the HTTP/2 preface
//! at a message boundary (h2c with prior knowledge, or h2 inside decrypted TLS), or whose
//! server answers `Upgrade: h2c` with `101`, is decoded by
//! [`shadowtap_h2`], and each stream's request and response become messages in HTTP/1.1 form.
//!
//! Decisions worth knowing:
//! * **Ids**: a stream's request and response share GoReplay's id built from the client's
//!   address, the server port and the Ack of the preface's segment plus the stream id, so
//!   streams of one connection never share an id.
//! * **Holes** lose the frames they fall in; the decoder resynchronises on the next frame
//!   header (see [`shadowtap_h2::H2Connection::gap`]).
//! * Decoding problems are counted under [`DropReason::Http2`] with the decoder's reason.

use std::collections::HashMap;

use bytes::Bytes;
use shadowtap_h2::{
    begins_with_frame, H2Connection, H2Event, H2Limits, H2Message, Side, CLIENT_PREFACE,
};

use crate::connection::Direction;
use crate::event::{DropReason, Event, HttpMessage, MessageKind};
use crate::fxhash::FxBuildHasher;
use crate::http1::{ChunkMeta, Phase};
use crate::ids::{id_bytes, MessageId};
use crate::tls::TlsConn;
use shadowtap_http1::Role;

pub use shadowtap_h2::H2Failure;

/// Requests whose response has not come yet, per connection, beyond which the oldest start
/// times are forgotten (their responses then report no latency).
const MAX_OPEN_REQUESTS: usize = 4096;

/// A connection's HTTP/2 state.
pub(crate) struct H2Conn {
    decoder: H2Connection<ChunkMeta>,
    /// The Ack of the segment carrying the preface: the base of the connection's stream ids.
    id_base: u32,
    /// Capture time of each open stream's request.
    request_start: HashMap<u32, i64, FxBuildHasher>,
    /// The decoder's events of one call, emitted after it returns (kept for its capacity).
    events: Vec<H2Event<ChunkMeta>>,
}

impl std::fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Conn")
            .field("id_base", &self.id_base)
            .field("open_requests", &self.request_start.len())
            .finish()
    }
}

impl H2Conn {
    /// The state of a connection decoded by `decoder`; without response tracking the
    /// tracker never feeds the server's bytes, so the decoder is told not to wait for them.
    fn boxed(decoder: H2Connection<ChunkMeta>, id_base: u32, responses: bool) -> Box<H2Conn> {
        let decoder = if responses {
            decoder
        } else {
            decoder.requests_only()
        };
        Box::new(H2Conn {
            decoder,
            id_base,
            request_start: HashMap::default(),
            events: Vec::new(),
        })
    }

    /// Bytes the decoder holds (partial frames, message bodies in progress).
    pub fn buffered(&self) -> usize {
        self.decoder.buffered_bytes()
    }
}

/// Whether `data` begins with an HTTP/2 SETTINGS frame on stream 0 (RFC 9113 §6.5: its
/// length a multiple of 6, type 4, no flags but ACK).
fn is_settings_frame(data: &[u8]) -> bool {
    let [l0, l1, l2, kind, flags, s0, s1, s2, s3, ..] = *data else {
        return false;
    };
    let len = u32::from_be_bytes([0, l0, l1, l2]);
    kind == 4
        && flags & !1 == 0
        && [s0, s1, s2, s3] == [0; 4]
        && len.is_multiple_of(6)
        && len <= 16_384
}

/// The application protocol a TLS connection's server selected by ALPN, once known.
fn selected_alpn(tls: &TlsConn) -> Option<&str> {
    let info = tls.facts.as_deref()?;
    info.alpn_selected.then_some(info.alpn.as_deref()).flatten()
}

impl Direction<'_, '_> {
    /// A cheap first look for [`Direction::begins_h2`] on every plaintext chunk: HTTP/2 can
    /// begin only at a message boundary, with the preface's `P`, or inside TLS unless the
    /// server selected another protocol by ALPN.
    #[inline]
    pub(crate) fn may_open_h2(&self, data: &[u8]) -> bool {
        self.half.msg.is_none()
            && match self.conn.tls.as_deref() {
                None => data.first() == Some(&b'P'),
                Some(tls) => selected_alpn(tls).is_none_or(|alpn| alpn == "h2"),
            }
    }

    /// Starts HTTP/2 decoding at a message boundary when the client's bytes are the preface,
    /// or the server's first bytes are a SETTINGS frame (inside TLS 1.3 a server may send its
    /// SETTINGS before the client's preface has arrived), or at once inside TLS whose server
    /// selected `h2` by ALPN (the decoder then reports a missing preface itself).
    #[cold]
    pub(crate) fn begins_h2(&mut self, data: &[u8], meta: ChunkMeta) -> bool {
        let at_boundary = self.half.buf.is_empty() && self.half.msg.is_none();
        let alpn_h2 = self.conn.tls.as_deref().and_then(selected_alpn) == Some("h2");
        let opens = match self.role() {
            Some(Role::Client) => alpn_h2 || data.starts_with(CLIENT_PREFACE),
            Some(Role::Server) => alpn_h2 || (self.conn.tls.is_some() && is_settings_frame(data)),
            None => false,
        };
        if !(at_boundary && opens) {
            return false;
        }
        self.start_h2(H2Connection::new, meta.ack);
        self.half.phase = Phase::Idle;
        true
    }

    /// Bytes of a connection never seen as HTTP/1 (its start not captured, or lost in a hole)
    /// that begin with HTTP/2 frames: decoding starts mid-connection, both HPACK tables unknown
    /// until literals with indexing rebuild them. Frames do not tell client from server: with
    /// no SYN and no server port configured, the side with the higher (ephemeral) port is
    /// taken for the client.
    #[cold]
    pub(crate) fn begins_h2_mid_stream(&mut self, data: &[u8], ack: u32) -> bool {
        let plain = self.conn.tls.is_none();
        if self.conn.http1 || !plain || !begins_with_frame(data) {
            return false;
        }
        if self.conn.client.is_none() {
            let [a, b] = self.conn.addrs.map(|addr| addr.port());
            if a == b {
                return false;
            }
            self.conn.client = Some(usize::from(b > a));
        }
        self.start_h2(H2Connection::mid_stream, ack);
        true
    }

    /// The server answered `Upgrade: h2c` with `101`: the connection goes on as HTTP/2, stream 1
    /// being the upgraded request (whose id word is `request_word`).
    pub(crate) fn begin_upgraded_h2(&mut self, request_word: u32) {
        self.start_h2(H2Connection::upgraded, request_word.wrapping_sub(1));
    }

    /// The connection goes on as HTTP/2, decoded by the decoder `constructor` makes with this
    /// tracker's limits, its stream ids counted from `id_base`.
    fn start_h2(&mut self, constructor: fn(H2Limits) -> H2Connection<ChunkMeta>, id_base: u32) {
        let decoder = constructor(self.h2_limits());
        let responses = self.ctx.cfg.track_responses;
        self.conn.h2 = Some(H2Conn::boxed(decoder, id_base, responses));
    }

    /// The decoder's limits: bodies kept as far as the tracker keeps a message.
    fn h2_limits(&self) -> H2Limits {
        H2Limits {
            max_message_bytes: self.ctx.message_limit,
            ..H2Limits::default()
        }
    }

    fn h2_side(&self) -> Side {
        match self.role() {
            Some(Role::Server) => Side::Server,
            _ => Side::Client,
        }
    }

    /// Decodes in-order bytes of this direction of an HTTP/2 connection.
    pub(crate) fn feed_h2(&mut self, data: &[u8], meta: ChunkMeta) {
        let side = self.h2_side();
        self.with_h2(|decoder, out| decoder.feed(side, data, meta, out));
    }

    /// `len` bytes of this direction are lost (`None`: how many is unknown).
    pub(crate) fn h2_gap(&mut self, len: Option<u32>) {
        let side = self.h2_side();
        let len = len.map_or(u64::MAX, u64::from);
        self.with_h2(|decoder, out| decoder.gap(side, len, out));
    }

    /// The connection ended: streams still open are emitted incomplete.
    pub(crate) fn finish_h2(&mut self) {
        self.with_h2(|decoder, out| decoder.finish(out));
    }

    fn with_h2(
        &mut self,
        step: impl FnOnce(&mut H2Connection<ChunkMeta>, &mut dyn FnMut(H2Event<ChunkMeta>)),
    ) {
        let Some(h2) = self.conn.h2.as_mut() else {
            return;
        };
        let mut events = std::mem::take(&mut h2.events);
        step(&mut h2.decoder, &mut |event| events.push(event));
        for event in events.drain(..) {
            match event {
                H2Event::Message(message) => self.emit_h2(message),
                H2Event::Problem { failure, .. } => self.ctx.drop_one(DropReason::Http2(failure)),
            }
        }
        if let Some(h2) = self.conn.h2.as_mut() {
            h2.events = events;
        }
    }

    fn emit_h2(&mut self, message: H2Message<ChunkMeta>) {
        let kind = match message.side {
            Side::Client => MessageKind::Request,
            Side::Server => MessageKind::Response,
        };
        if kind == MessageKind::Response && !self.ctx.cfg.track_responses {
            return;
        }
        if message.incomplete && !self.ctx.cfg.allow_incomplete {
            self.ctx.drop_one(DropReason::Incomplete);
            return;
        }
        let client = self.conn.client.unwrap_or(0);
        let (src, dst) = match kind {
            MessageKind::Request => (client, 1 - client),
            MessageKind::Response => (1 - client, client),
        };
        let Some(h2) = self.conn.h2.as_mut() else {
            return;
        };
        let start_ns = message.first.ts_ns;
        let end_ns = message.last.ts_ns;
        let latency_ns = match kind {
            MessageKind::Request => {
                if self.ctx.cfg.track_responses && h2.request_start.len() < MAX_OPEN_REQUESTS {
                    h2.request_start.insert(message.stream_id, start_ns);
                }
                end_ns - start_ns
            }
            MessageKind::Response => h2
                .request_start
                .remove(&message.stream_id)
                .map_or(end_ns - start_ns, |request| start_ns - request),
        };
        let number = h2.id_base.wrapping_add(message.stream_id);
        let id = id_bytes(
            self.conn.addrs[client],
            self.conn.addrs[1 - client].port(),
            number,
        );
        (self.ctx.out)(Event::Message(HttpMessage {
            kind,
            id: MessageId::of(&id),
            start_ns,
            end_ns,
            latency_ns,
            src: self.conn.addrs[src],
            dst: self.conn.addrs[dst],
            payload: Bytes::from(message.payload),
            truncated: message.truncated,
            incomplete: message.incomplete,
            missing_bytes: 0,
            tls: self.conn.tls.as_ref().and_then(|t| t.facts.clone()),
            h2: Some(Box::new(crate::event::H2Info {
                stream_id: message.stream_id,
                hpack_unknown: message.hpack_unknown,
                grpc: message.grpc,
            })),
        }));
    }
}
