//! What the tracker keeps per connection: the connection's own state ([`Conn`]), each
//! direction's stream and framing state ([`Half`]), and [`Direction`], the one view every
//! per-direction operation works on (a connection, one of its halves, which side that is, and
//! the tracker's context).

use std::net::SocketAddr;

use bytes::BytesMut;

use crate::config::TrackerConfig;
use crate::decode::Packet;
use crate::event::{DropReason, Event, Recovery, TrackerStats};
use crate::flows::FlowKey;
use crate::h2::H2Conn;
use crate::http1::{MessageState, Phase};
use crate::ids::id_bytes;
use crate::pairing::{Awaiting, Pairing};
use crate::stream::Reassembler;
use crate::tls::TlsConn;
use shadowtap_http1::{Method, Role};

/// Buffers grow by at least this much, so small messages share allocations.
const MIN_RESERVE: usize = 4096;

/// One direction of a connection: its reassembly and the bytes the framer walks.
#[derive(Debug)]
pub(crate) struct Half {
    pub reasm: Reassembler,
    pub buf: BytesMut,
    pub pos: usize,
    pub head_scan: usize,
    /// The header block in progress ends its lines with a bare CR.
    pub bare_cr: bool,
    pub start_line_ok: bool,
    pub truncated_prefix: Option<BytesMut>,
    pub phase: Phase,
    pub msg: Option<MessageState>,
    pub skip_counted: bool,
    pub fin_seq: Option<u32>,
    pub closed: bool,
    /// No byte of this direction has been delivered yet (its first may open TLS).
    pub fresh: bool,
}

impl Half {
    pub(crate) fn new() -> Half {
        Half {
            reasm: Reassembler::default(),
            buf: BytesMut::new(),
            pos: 0,
            head_scan: 0,
            bare_cr: false,
            start_line_ok: false,
            truncated_prefix: None,
            phase: Phase::Skipping,
            msg: None,
            skip_counted: false,
            fin_seq: None,
            closed: false,
            fresh: true,
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
            + self.truncated_prefix.as_ref().map_or(0, BytesMut::len)
            + self.reasm.held_bytes()
    }

    pub(crate) fn release(&mut self) {
        self.buf = BytesMut::new();
        self.pos = 0;
        self.truncated_prefix = None;
        self.msg = None;
        self.reasm.reset();
    }

    pub(crate) fn append(&mut self, data: &[u8]) {
        if self.buf.capacity() - self.buf.len() < data.len() {
            self.buf.reserve(data.len().max(MIN_RESERVE));
        }
        self.buf.extend_from_slice(data);
    }
}

/// Connection-level state shared by both directions.
#[derive(Debug)]
pub(crate) struct Conn {
    pub addrs: [SocketAddr; 2],
    pub client: Option<usize>,
    pub pairing: Pairing,
    pub tunnel: bool,
    pub reset: bool,
    /// The TLS session of a connection decrypted from a key log.
    pub tls: Option<Box<TlsConn>>,
    /// The HTTP/2 decoder of a connection that began with the HTTP/2 preface.
    pub h2: Option<Box<H2Conn>>,
    /// An HTTP/1 message began on this connection (it is no longer looked at as HTTP/2
    /// frames after a hole).
    pub http1: bool,
}

impl Conn {
    pub(crate) fn role(&self, side: usize) -> Option<Role> {
        self.client.map(|c| {
            if c == side {
                Role::Client
            } else {
                Role::Server
            }
        })
    }

    fn client_addr(&self) -> SocketAddr {
        self.addrs[self.client.unwrap_or(0)]
    }

    fn server_port(&self) -> u16 {
        self.addrs[1 - self.client.unwrap_or(0)].port()
    }

    /// A new request's id; with `track`, it waits for its response.
    pub(crate) fn begin_request(&mut self, ack: u32, start_ns: i64, track: bool) -> [u8; 12] {
        let ack_part = self.pairing.next_ack_part(ack);
        let id = id_bytes(self.client_addr(), self.server_port(), ack_part);
        if track {
            self.pairing.push(Awaiting {
                id,
                start_ns,
                method: Method::Other,
                ack,
            });
        }
        id
    }

    /// The request a response beginning at `seq` answers, and its id (GoReplay's response id
    /// when no request is known).
    pub(crate) fn answer(
        &mut self,
        interim: bool,
        seq: u32,
        ctx: &mut Ctx<'_>,
    ) -> (Option<Awaiting>, [u8; 12]) {
        let (request, skipped) = self.pairing.answer(interim, seq);
        if skipped > 0 {
            ctx.recovered(Recovery::PairingAfterGap, skipped);
        }
        let id = match request {
            Some(r) => r.id,
            None => id_bytes(self.client_addr(), self.server_port(), seq),
        };
        (request, id)
    }
}

/// One tracked connection.
#[derive(Debug)]
pub(crate) struct Flow {
    pub key: FlowKey,
    pub conn: Conn,
    pub halves: [Half; 2],
    pub last_ns: i64,
}

impl Flow {
    pub(crate) fn new(key: FlowKey, pkt: &Packet<'_>, side: usize) -> Flow {
        let src = SocketAddr::new(pkt.src, pkt.src_port);
        let dst = SocketAddr::new(pkt.dst, pkt.dst_port);
        let addrs = if side == 0 { [src, dst] } else { [dst, src] };
        Flow {
            key,
            conn: Conn {
                addrs,
                client: None,
                pairing: Pairing::default(),
                tunnel: false,
                reset: false,
                tls: None,
                h2: None,
                http1: false,
            },
            halves: [Half::new(), Half::new()],
            last_ns: 0,
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        let tls = self.conn.tls.as_ref().map_or(0, |t| t.pending_bytes());
        let h2 = self.conn.h2.as_ref().map_or(0, |h| h.buffered());
        self.halves[0].buffered() + self.halves[1].buffered() + tls + h2
    }

    /// This side's view for per-direction work.
    #[inline]
    pub(crate) fn direction<'a, 'o>(
        &'a mut self,
        side: usize,
        ctx: &'a mut Ctx<'o>,
    ) -> Direction<'a, 'o> {
        let [low, high] = &mut self.halves;
        let (half, other) = if side == 0 { (low, high) } else { (high, low) };
        Direction {
            conn: &mut self.conn,
            half,
            other,
            side,
            ctx,
        }
    }
}

/// Everything a flow operation needs from the tracker.
pub(crate) struct Ctx<'o> {
    pub cfg: &'o TrackerConfig,
    pub message_limit: usize,
    /// Bytes the half being worked on may hold in total.
    pub half_budget: usize,
    pub stats: &'o mut TrackerStats,
    pub out: &'o mut dyn FnMut(Event),
}

impl<'o> Ctx<'o> {
    /// A context for work on a flow that no buffer budget limits (expiry, closing).
    pub(crate) fn unbudgeted(
        cfg: &'o TrackerConfig,
        message_limit: usize,
        stats: &'o mut TrackerStats,
        out: &'o mut dyn FnMut(Event),
    ) -> Ctx<'o> {
        Ctx {
            cfg,
            message_limit,
            half_budget: usize::MAX,
            stats,
            out,
        }
    }

    pub(crate) fn drop_one(&mut self, reason: DropReason) {
        (self.out)(Event::Dropped { reason, count: 1 });
    }

    pub(crate) fn recovered(&mut self, kind: Recovery, count: u64) {
        (self.out)(Event::Recovered { kind, count });
    }

    pub(crate) fn initial_phase(&self) -> Phase {
        if self.cfg.framing.is_binary() {
            Phase::Binary
        } else {
            Phase::Idle
        }
    }

    /// Whether this side's bytes are framed (server bytes only when responses are tracked).
    pub(crate) fn frames(&self, conn: &Conn, side: usize) -> bool {
        self.cfg.track_responses || conn.role(side) != Some(Role::Server)
    }
}

/// One direction of one connection, with the tracker's context: what every per-direction
/// operation (stream delivery, framing, completion) works on.
pub(crate) struct Direction<'a, 'o> {
    pub conn: &'a mut Conn,
    pub half: &'a mut Half,
    /// The other direction's half (for a TLS session, whose output may be for either side).
    pub other: &'a mut Half,
    pub side: usize,
    pub ctx: &'a mut Ctx<'o>,
}

impl<'o> Direction<'_, 'o> {
    #[inline]
    pub(crate) fn role(&self) -> Option<Role> {
        self.conn.role(self.side)
    }

    #[inline]
    pub(crate) fn frames(&self) -> bool {
        self.ctx.frames(self.conn, self.side)
    }

    /// Whether this side's bytes are reassembled: when framed, and always for a TLS
    /// connection (the session needs both sides' records).
    #[inline]
    pub(crate) fn reassembles(&self) -> bool {
        self.frames() || self.conn.tls.is_some()
    }

    /// The other direction of the same connection.
    pub(crate) fn opposite(&mut self) -> Direction<'_, 'o> {
        Direction {
            conn: self.conn,
            half: self.other,
            other: self.half,
            side: 1 - self.side,
            ctx: self.ctx,
        }
    }
}
