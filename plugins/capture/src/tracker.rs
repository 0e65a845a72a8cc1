//! TCP reassembly, HTTP/1.x framing and request/response pairing.
//!
//! A [`Tracker`] owns a bounded flow table (least recently active flow evicted when full). Each
//! connection has two directions; each direction reassembles its bytes by sequence number (see
//! the overlap policy in `reassembly`) into one buffer that an HTTP/1.x framer walks.
//!
//! Decisions worth knowing:
//! * **Pure ACKs** (no payload, no SYN/FIN/RST) are ignored and not reported (they carry no
//!   message bytes).
//! * **Mid-stream**: a direction without a SYN starts at the first segment that begins with a
//!   start line of its role (request line from the client, status line from the server). The
//!   skipped bytes before it count once as [`DropReason::Garbage`].
//! * **Gaps**: a hole that has not filled `expire_ns` after the first segment behind it arrived
//!   ends the message in progress as incomplete; the direction resynchronises at the next
//!   segment (at or after the hole) that begins a message.
//! * **100-continue / 1xx**: an interim response is emitted as its own response carrying the id
//!   of the request it answers; the final response carries the same id.
//! * **Upgrade**: after a `101` (or a 2xx to CONNECT) the connection is a tunnel: its remaining
//!   bytes are not framed; each data segment carrying them (retransmissions included), and
//!   the buffered rest of the segment that switched, counts once as [`DropReason::Tunnel`].
//!   Server segments count only when responses are tracked (otherwise they are never framed).
//! * **RST** (RFC 5961 §3): honoured only when its sequence number is exactly the next one
//!   expected from its sender (or, when the sender's position is unknown, its Ack lies within
//!   [`RST_ACK_WINDOW`] behind the peer's next byte); any other RST is ignored and counted as
//!   [`DropReason::OutOfWindow`]. An honoured RST ends the message in progress as incomplete,
//!   and every later data segment of the connection counts as [`DropReason::AfterReset`]
//!   until a new SYN starts a new connection on the same tuple.
//! * **After FIN**: data beyond the sender's FIN counts as [`DropReason::OutOfWindow`];
//!   retransmissions of bytes already seen are not losses.
//! * **Ids**: GoReplay's formula (see [`request_id`]). If a request's Ack is not beyond the Ack
//!   part used by the previous request of its connection (pipelined requests sent before any
//!   answer), the Ack part becomes the previous one plus 1, so ids stay unique per connection.
//!   A response without a known request gets GoReplay's response id (its first byte's sequence
//!   number in place of the Ack), which equals the request's id whenever the request's Ack part
//!   was not perturbed.
//! * A message that cannot be completed (idle for `expire_ns`, hole, connection closed
//!   mid-message, flow evicted, buffer budget exhausted) is emitted with `incomplete = true` when
//!   `allow_incomplete`, otherwise reported as a drop with the matching reason.
//! * Expired flows are removed entirely; a connection that resumes later starts mid-stream.
//! * A snaplen-cut segment (`captured_truncated`) contributes the bytes captured; the missing
//!   tail is a hole like any lost segment (the message ends incomplete after `expire_ns`).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use bytes::{Buf, Bytes, BytesMut};

use crate::decode::Packet;
use crate::fxhash::FxBuildHasher;
use crate::reassembly::{Hold, Placement, Reassembler, DEFAULT_MAX_HELD_SEGMENTS};
use shadowtap_http1::{self as http, BodyKind, ChunkProgress, Chunked, Method, Role, Verdict};

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

const DEFAULT_EXPIRE_NS: i64 = 2_000_000_000;
/// Largest header block accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A segment whose start line is still incomplete counts as a message start only when it is at
/// least this long (a long request target), so short body fragments do not resynchronise.
const MIN_PARTIAL_START_LINE: usize = 64;
/// Buffers grow by at least this much, so small messages share allocations.
const MIN_RESERVE: usize = 4096;
/// Requests awaiting a response per connection; older ones are forgotten.
const MAX_AWAITING: usize = 1024;
const NIL: u32 = u32::MAX;
/// When an RST's sender position is unknown, its Ack must lie at most this far behind the
/// next byte seen from its peer (data the peer sent that the RST's sender had not yet acked).
pub const RST_ACK_WINDOW: u32 = 1 << 24;

/// Which message grammar the tracker frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.x framing.
    #[default]
    Http,
    /// Opaque bytes: a message ends when the other side sends, on close, or on expiry.
    Binary,
}

/// Tracker settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Server ports; empty = infer direction from SYNs and request/status lines.
    pub ports: Vec<u16>,
    /// Emit responses too (requests are always emitted).
    pub track_responses: bool,
    /// Idle time before an unfinished message is finished.
    pub expire_ns: i64,
    /// Emit expired or gapped messages marked incomplete instead of dropping them.
    pub allow_incomplete: bool,
    /// Bytes kept per message (0 = unlimited); the rest is skipped and the message marked
    /// truncated.
    pub max_message_bytes: usize,
    /// Flow table bound; when full, the least recently active flow is evicted.
    pub max_flows: usize,
    /// Bound on the bytes buffered by this tracker (partial messages and out-of-order data).
    pub max_buffered_bytes: usize,
    /// Out-of-order segments held per direction of a connection; one more loses the message.
    pub max_held_segments: usize,
    /// Message grammar.
    pub protocol: Protocol,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            ports: Vec::new(),
            track_responses: false,
            expire_ns: DEFAULT_EXPIRE_NS,
            allow_incomplete: false,
            max_message_bytes: 5 << 20,
            max_flows: 100_000,
            max_buffered_bytes: 512 << 20,
            max_held_segments: DEFAULT_MAX_HELD_SEGMENTS,
            protocol: Protocol::Http,
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

/// GoReplay's 12-byte id: big-endian `client_port<<48 | server_port<<32 | ip32(client_ip)`
/// followed by the big-endian `word` (the request's Ack), as 24 lowercase hex digits. `ip32` is
/// the IPv4 address or the last 4 bytes of an IPv6 address.
pub fn request_id(client: SocketAddr, server_port: u16, word: u32) -> MessageId {
    MessageId::of(&id_bytes(client, server_port, word))
}

fn id_bytes(client: SocketAddr, server_port: u16, word: u32) -> [u8; 12] {
    let ip32 = match client.ip() {
        IpAddr::V4(ip) => u32::from(ip),
        IpAddr::V6(ip) => {
            let o = ip.octets();
            u32::from_be_bytes([o[12], o[13], o[14], o[15]])
        }
    };
    let high = u64::from(client.port()) << 48 | u64::from(server_port) << 32 | u64::from(ip32);
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&high.to_be_bytes());
    id[8..].copy_from_slice(&word.to_be_bytes());
    id
}

/// The 8 lowercase hex digits of `word`, computed on all of them at once: each nibble is
/// spread into a byte of its own, then turned into `0`–`9` or `a`–`f` without a branch.
fn hex_digits(word: u32) -> [u8; 8] {
    let x = u64::from(word);
    let x = (x | x << 16) & 0x0000_ffff_0000_ffff;
    let x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
    let x = (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * (b'a' - b'0' - 10) as u64).to_be_bytes()
}

/// A message id as GoReplay prints it: 24 lowercase hex digits, kept inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId([u8; 24]);

impl MessageId {
    /// The hex digits of a 12-byte id.
    pub fn of(id: &[u8; 12]) -> MessageId {
        let mut hex = [0u8; 24];
        for (digits, word) in hex.chunks_exact_mut(8).zip(id.chunks_exact(4)) {
            let word = u32::from_be_bytes(word.try_into().expect("4 bytes"));
            digits.copy_from_slice(&hex_digits(word));
        }
        MessageId(hex)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // SAFETY: the bytes are hex digits (ASCII): `of` is the only constructor.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl std::ops::Deref for MessageId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for MessageId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection's endpoints in canonical order (lower address first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    low_ip: u128,
    high_ip: u128,
    low_port: u16,
    high_port: u16,
}

fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl FlowKey {
    /// The key and which side (0 = low endpoint) sent `pkt`.
    fn of(pkt: &Packet<'_>) -> (FlowKey, usize) {
        let src = (ip_bits(pkt.src), pkt.src_port);
        let dst = (ip_bits(pkt.dst), pkt.dst_port);
        let (low, high, side) = if src <= dst {
            (src, dst, 0)
        } else {
            (dst, src, 1)
        };
        let key = FlowKey {
            low_ip: low.0,
            high_ip: high.0,
            low_port: low.1,
            high_port: high.1,
        };
        (key, side)
    }
}

/// Per-packet facts the framer needs about the segment a chunk came from.
#[derive(Debug, Clone, Copy)]
struct ChunkMeta {
    seq: u32,
    ts_ns: i64,
    ack: u32,
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Discarding whole segments until one begins a message.
    Skipping,
    /// At a message boundary.
    Idle,
    /// Collecting the start line and headers.
    Head,
    /// Body with this many bytes left.
    Length(u64),
    /// Chunked body.
    Chunked(Chunked),
    /// Body delimited by the connection close.
    UntilClose,
    /// Opaque bytes (binary protocol).
    Binary,
}

#[derive(Debug, Clone, Copy)]
struct MessageState {
    start_ns: i64,
    end_ns: i64,
    ack: u32,
    seq: u32,
    id: Option<[u8; 12]>,
    request_start_ns: Option<i64>,
    tunnel_after: bool,
}

#[derive(Debug, Clone, Copy)]
struct Awaiting {
    id: [u8; 12],
    start_ns: i64,
    method: Method,
}

/// One direction of a connection.
#[derive(Debug)]
struct Half {
    reasm: Reassembler,
    buf: BytesMut,
    pos: usize,
    head_scan: usize,
    start_line_ok: bool,
    truncated_prefix: Option<BytesMut>,
    phase: Phase,
    msg: Option<MessageState>,
    skip_counted: bool,
    fin_seq: Option<u32>,
    closed: bool,
}

impl Half {
    fn new() -> Half {
        Half {
            reasm: Reassembler::default(),
            buf: BytesMut::new(),
            pos: 0,
            head_scan: 0,
            start_line_ok: false,
            truncated_prefix: None,
            phase: Phase::Skipping,
            msg: None,
            skip_counted: false,
            fin_seq: None,
            closed: false,
        }
    }

    fn buffered(&self) -> usize {
        self.buf.len()
            + self.truncated_prefix.as_ref().map_or(0, BytesMut::len)
            + self.reasm.held_bytes()
    }

    fn release(&mut self) {
        self.buf = BytesMut::new();
        self.pos = 0;
        self.truncated_prefix = None;
        self.msg = None;
        self.reasm.reset();
    }

    fn append(&mut self, data: &[u8]) {
        if self.buf.capacity() - self.buf.len() < data.len() {
            self.buf.reserve(data.len().max(MIN_RESERVE));
        }
        self.buf.extend_from_slice(data);
    }
}

/// Connection-level state shared by both directions.
#[derive(Debug)]
struct Conn {
    addrs: [SocketAddr; 2],
    client: Option<usize>,
    awaiting: VecDeque<Awaiting>,
    last_ack_part: Option<u32>,
    last_request_connect: bool,
    tunnel: bool,
    reset: bool,
}

impl Conn {
    fn role(&self, side: usize) -> Option<Role> {
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

    fn begin_request(&mut self, ack: u32, start_ns: i64, track: bool) -> [u8; 12] {
        let ack_part = match self.last_ack_part {
            Some(last) if (ack.wrapping_sub(last) as i32) <= 0 => last.wrapping_add(1),
            _ => ack,
        };
        self.last_ack_part = Some(ack_part);
        let id = id_bytes(self.client_addr(), self.server_port(), ack_part);
        if track {
            if self.awaiting.len() >= MAX_AWAITING {
                self.awaiting.pop_front();
            }
            self.awaiting.push_back(Awaiting {
                id,
                start_ns,
                method: Method::Other,
            });
        }
        id
    }

    fn set_request_method(&mut self, method: Method) {
        self.last_request_connect = method == Method::Connect;
        if let Some(last) = self.awaiting.back_mut() {
            last.method = method;
        }
    }

    fn cancel_request(&mut self, id: [u8; 12]) {
        if self.awaiting.back().is_some_and(|a| a.id == id) {
            self.awaiting.pop_back();
        }
    }

    /// Pairs a response (interim responses do not consume the request).
    fn answer(&mut self, interim: bool, seq: u32) -> (Option<Awaiting>, [u8; 12]) {
        let request = if interim {
            self.awaiting.front().copied()
        } else {
            self.awaiting.pop_front()
        };
        let id = match request {
            Some(r) => r.id,
            None => id_bytes(self.client_addr(), self.server_port(), seq),
        };
        (request, id)
    }
}

#[derive(Debug)]
struct Flow {
    key: FlowKey,
    conn: Conn,
    halves: [Half; 2],
    last_ns: i64,
}

impl Flow {
    fn new(key: FlowKey, pkt: &Packet<'_>, side: usize) -> Flow {
        let src = SocketAddr::new(pkt.src, pkt.src_port);
        let dst = SocketAddr::new(pkt.dst, pkt.dst_port);
        let addrs = if side == 0 { [src, dst] } else { [dst, src] };
        Flow {
            key,
            conn: Conn {
                addrs,
                client: None,
                awaiting: VecDeque::new(),
                last_ack_part: None,
                last_request_connect: false,
                tunnel: false,
                reset: false,
            },
            halves: [Half::new(), Half::new()],
            last_ns: 0,
        }
    }

    fn buffered(&self) -> usize {
        self.halves[0].buffered() + self.halves[1].buffered()
    }

    /// This side's half and the other one.
    fn split(&mut self, side: usize) -> (&mut Conn, &mut Half, &mut Half) {
        let [low, high] = &mut self.halves;
        if side == 0 {
            (&mut self.conn, low, high)
        } else {
            (&mut self.conn, high, low)
        }
    }
}

/// Everything a flow operation needs from the tracker.
struct Ctx<'a> {
    cfg: &'a TrackerConfig,
    message_limit: usize,
    /// Bytes the half being worked on may hold in total.
    half_budget: usize,
    stats: &'a mut TrackerStats,
    out: &'a mut dyn FnMut(Event),
}

impl Ctx<'_> {
    fn drop_one(&mut self, reason: DropReason) {
        (self.out)(Event::Dropped { reason, count: 1 });
    }

    fn initial_phase(&self) -> Phase {
        match self.cfg.protocol {
            Protocol::Http => Phase::Idle,
            Protocol::Binary => Phase::Binary,
        }
    }
}

#[derive(Debug)]
struct Slot {
    flow: Option<Flow>,
    prev: u32,
    next: u32,
}

/// Reassembles TCP flows into HTTP/1.x messages and pairs responses with requests.
pub struct Tracker {
    cfg: TrackerConfig,
    server_ports: Option<Box<[u64; 1024]>>,
    index: HashMap<FlowKey, u32, FxBuildHasher>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    lru_head: u32,
    lru_tail: u32,
    buffered: usize,
    stats: TrackerStats,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("cfg", &self.cfg)
            .field("flows", &self.index.len())
            .field("buffered", &self.buffered)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Tracker {
    /// A tracker with no flows.
    pub fn new(cfg: TrackerConfig) -> Tracker {
        let server_ports = (!cfg.ports.is_empty()).then(|| {
            let mut bits = Box::new([0u64; 1024]);
            for &p in &cfg.ports {
                bits[usize::from(p >> 6)] |= 1 << (p & 63);
            }
            bits
        });
        Tracker {
            cfg,
            server_ports,
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            lru_head: NIL,
            lru_tail: NIL,
            buffered: 0,
            stats: TrackerStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Flows currently tracked.
    pub fn flows(&self) -> usize {
        self.index.len()
    }

    /// Bytes currently buffered (partial messages and out-of-order segments).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Flow counters.
    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Feeds one decoded segment captured at `ts_ns`; completed messages and drops go to `out`.
    pub fn push(&mut self, pkt: &Packet<'_>, ts_ns: i64, out: &mut impl FnMut(Event)) {
        self.push_dyn(pkt, ts_ns, out);
    }

    /// Finishes messages idle since `now_ns - expire_ns` and removes their flows.
    pub fn expire(&mut self, now_ns: i64, out: &mut impl FnMut(Event)) {
        while self.lru_head != NIL {
            let idx = self.lru_head;
            let last = self.flow(idx).last_ns;
            if last.saturating_add(self.cfg.expire_ns) > now_ns {
                break;
            }
            self.stats.flows_expired += 1;
            self.close_flow(idx, reason::INCOMPLETE, out);
        }
    }

    /// End of input: finishes everything as if expired and empties the flow table.
    pub fn finish(&mut self, out: &mut impl FnMut(Event)) {
        while self.lru_head != NIL {
            self.close_flow(self.lru_head, reason::INCOMPLETE, out);
        }
    }

    fn flow(&self, idx: u32) -> &Flow {
        self.slots[idx as usize]
            .flow
            .as_ref()
            .expect("linked slot holds a flow")
    }

    fn is_server_port(&self, port: u16) -> bool {
        self.server_ports
            .as_ref()
            .is_some_and(|bits| bits[usize::from(port >> 6)] & (1 << (port & 63)) != 0)
    }

    /// `Ok(Some(true))` when the sender is the client, `Ok(None)` when ports do not tell,
    /// `Err(())` when the segment is outside the configured ports.
    fn port_direction(&self, pkt: &Packet<'_>) -> Result<Option<bool>, ()> {
        if self.server_ports.is_none() {
            return Ok(None);
        }
        match (
            self.is_server_port(pkt.src_port),
            self.is_server_port(pkt.dst_port),
        ) {
            (false, true) => Ok(Some(true)),
            (true, false) => Ok(Some(false)),
            (true, true) => Ok(None),
            (false, false) => Err(()),
        }
    }

    /// Without response tracking, a server's plain data segment matters only if it may turn
    /// the connection into a tunnel (a `101`, or a `2xx` once a CONNECT was seen): the rest
    /// (half the packets of HTTP traffic) is skipped before any flow lookup.
    fn ignores_server_data(&self, pkt: &Packet<'_>) -> bool {
        let flags = pkt.flags;
        if self.cfg.track_responses
            || self.cfg.protocol != Protocol::Http
            || flags.syn()
            || flags.fin()
            || flags.rst()
        {
            return false;
        }
        match response_status(pkt.payload) {
            Some(101) => false,
            Some(200..=299) => self.stats.connect_requests == 0,
            _ => true,
        }
    }

    fn push_dyn(&mut self, pkt: &Packet<'_>, ts_ns: i64, out: &mut dyn FnMut(Event)) {
        let has_data = !pkt.payload.is_empty();
        let flags = pkt.flags;
        if !(has_data || flags.syn() || flags.fin() || flags.rst()) {
            return;
        }
        let Ok(sender_is_client) = self.port_direction(pkt) else {
            if has_data {
                out(Event::Dropped {
                    reason: reason::OUTSIDE_PORTS,
                    count: 1,
                });
            }
            return;
        };
        if sender_is_client == Some(false) && self.ignores_server_data(pkt) {
            return;
        }
        let (key, side) = FlowKey::of(pkt);
        let idx = match self.index.get(&key) {
            Some(&idx) => idx,
            None if has_data || flags.syn() => self.insert(key, pkt, side, out),
            None => return,
        };
        self.touch(idx);
        let before = self.flow(idx).buffered();
        let flow_budget = self
            .cfg
            .max_buffered_bytes
            .saturating_sub(self.buffered - before);
        let message_limit = match self.cfg.max_message_bytes {
            0 => usize::MAX,
            n => n,
        };
        let mut ctx = Ctx {
            cfg: &self.cfg,
            message_limit,
            half_budget: flow_budget,
            stats: &mut self.stats,
            out,
        };
        let flow = self.slots[idx as usize]
            .flow
            .as_mut()
            .expect("indexed slot holds a flow");
        flow.last_ns = ts_ns;
        if flow.conn.client.is_none() {
            if let Some(is_client) = sender_is_client {
                flow.conn.client = Some(if is_client { side } else { 1 - side });
            }
        }
        on_packet(flow, side, pkt, ts_ns, flow_budget, &mut ctx);
        let after = flow.buffered();
        self.buffered = self.buffered - before + after;
    }

    fn insert(
        &mut self,
        key: FlowKey,
        pkt: &Packet<'_>,
        side: usize,
        out: &mut dyn FnMut(Event),
    ) -> u32 {
        if self.index.len() >= self.cfg.max_flows.max(1) && self.lru_head != NIL {
            self.stats.flows_evicted += 1;
            self.close_flow(self.lru_head, reason::FLOW_TABLE_FULL, out);
        }
        let flow = Flow::new(key, pkt, side);
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slots[idx as usize].flow = Some(flow);
                idx
            }
            None => {
                self.slots.push(Slot {
                    flow: Some(flow),
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.link_back(idx);
        self.index.insert(key, idx);
        idx
    }

    /// Finishes every message of a flow (as `reason` when incomplete) and removes it.
    fn close_flow(&mut self, idx: u32, why: DropReason, out: &mut dyn FnMut(Event)) {
        let message_limit = match self.cfg.max_message_bytes {
            0 => usize::MAX,
            n => n,
        };
        let mut flow = self.slots[idx as usize]
            .flow
            .take()
            .expect("closing a live flow");
        self.buffered -= flow.buffered();
        let mut ctx = Ctx {
            cfg: &self.cfg,
            message_limit,
            half_budget: usize::MAX,
            stats: &mut self.stats,
            out,
        };
        for side in 0..2 {
            finish_half(&mut flow, side, why, &mut ctx);
        }
        self.index.remove(&flow.key);
        self.unlink(idx);
        self.free.push(idx);
    }

    fn touch(&mut self, idx: u32) {
        if self.lru_tail != idx {
            self.unlink(idx);
            self.link_back(idx);
        }
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let slot = &self.slots[idx as usize];
            (slot.prev, slot.next)
        };
        match prev {
            NIL => self.lru_head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.lru_tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
        let slot = &mut self.slots[idx as usize];
        slot.prev = NIL;
        slot.next = NIL;
    }

    fn link_back(&mut self, idx: u32) {
        let tail = self.lru_tail;
        {
            let slot = &mut self.slots[idx as usize];
            slot.prev = tail;
            slot.next = NIL;
        }
        match tail {
            NIL => self.lru_head = idx,
            t => self.slots[t as usize].next = idx,
        }
        self.lru_tail = idx;
    }
}

fn on_packet(
    flow: &mut Flow,
    side: usize,
    pkt: &Packet<'_>,
    ts_ns: i64,
    flow_budget: usize,
    ctx: &mut Ctx<'_>,
) {
    let flags = pkt.flags;
    if flags.syn() {
        on_syn(flow, side, pkt, ctx);
    }
    if flags.rst() {
        on_rst(flow, side, pkt, ctx);
        return;
    }
    skip_stale_holes(flow, ts_ns, ctx);
    let data_seq = pkt.seq.wrapping_add(u32::from(flags.syn()));
    if !pkt.payload.is_empty() {
        ctx.half_budget = flow_budget.saturating_sub(flow.halves[1 - side].buffered());
        on_data(flow, side, pkt, data_seq, ts_ns, ctx);
    }
    if flags.fin() {
        let (conn, half, _) = flow.split(side);
        let fin_seq = data_seq.wrapping_add(pkt.payload.len() as u32);
        half.fin_seq = Some(fin_seq);
        if half.reasm.next_seq.is_none() {
            half.closed = true;
        }
        close_if_done(conn, half, side, ctx);
    }
    if flow.conn.tunnel {
        release_tunnel(flow, ctx);
    }
}

/// The connection became (or is) a tunnel: buffered bytes of framed halves count once.
fn release_tunnel(flow: &mut Flow, ctx: &mut Ctx<'_>) {
    for side in 0..2 {
        if flow.halves[side].buffered() > 0 && frames(&flow.conn, side, ctx) {
            ctx.drop_one(DropReason::Tunnel);
        }
        flow.halves[side].release();
    }
}

/// RFC 5961 §3: only an RST at exactly the next expected sequence number resets.
fn on_rst(flow: &mut Flow, side: usize, pkt: &Packet<'_>, ctx: &mut Ctx<'_>) {
    if flow.conn.reset || flow.conn.tunnel {
        return;
    }
    if rst_in_window(flow, side, pkt, ctx) {
        reset_flow(flow, ctx);
    } else {
        ctx.drop_one(DropReason::OutOfWindow);
    }
}

fn rst_in_window(flow: &Flow, side: usize, pkt: &Packet<'_>, ctx: &Ctx<'_>) -> bool {
    let sender = &flow.halves[side];
    let sender_next = sender
        .reasm
        .next_seq
        .filter(|_| frames(&flow.conn, side, ctx));
    if let Some(next) = sender_next {
        let after_fin = sender.fin_seq.map(|fin| fin.wrapping_add(1));
        return pkt.seq == next || Some(pkt.seq) == after_fin;
    }
    let peer = 1 - side;
    let peer_next = flow.halves[peer]
        .reasm
        .next_seq
        .filter(|_| frames(&flow.conn, peer, ctx));
    match peer_next {
        Some(next) if pkt.flags.ack() => next.wrapping_sub(pkt.ack) <= RST_ACK_WINDOW,
        Some(_) => false,
        None => true,
    }
}

fn on_syn(flow: &mut Flow, side: usize, pkt: &Packet<'_>, ctx: &mut Ctx<'_>) {
    let isn_next = pkt.seq.wrapping_add(1);
    let from_client = !pkt.flags.ack();
    let half = &flow.halves[side];
    let reused = from_client
        && (flow.conn.reset || half.closed || half.reasm.next_seq.is_some_and(|n| n != isn_next));
    if reused {
        for s in 0..2 {
            finish_half(flow, s, reason::INCOMPLETE, ctx);
        }
        let key = flow.key;
        let last_ns = flow.last_ns;
        *flow = Flow::new(key, pkt, side);
        flow.last_ns = last_ns;
    }
    if flow.conn.client.is_none() {
        flow.conn.client = Some(if from_client { side } else { 1 - side });
    }
    let half = &mut flow.halves[side];
    if half.reasm.next_seq.is_none() {
        half.reasm.next_seq = Some(isn_next);
        half.phase = ctx.initial_phase();
        half.skip_counted = false;
    }
}

fn reset_flow(flow: &mut Flow, ctx: &mut Ctx<'_>) {
    for side in 0..2 {
        let (conn, half, _) = flow.split(side);
        skip_all_holes(conn, half, side, ctx);
        close_half(conn, half, side, ctx);
    }
    flow.conn.reset = true;
}

/// Gives up on holes whose first held segment has waited `expire_ns`.
fn skip_stale_holes(flow: &mut Flow, now_ns: i64, ctx: &mut Ctx<'_>) {
    for side in 0..2 {
        let (conn, half, _) = flow.split(side);
        while half.reasm.has_hole()
            && now_ns.saturating_sub(half.reasm.hole_since_ns()) >= ctx.cfg.expire_ns
        {
            skip_hole(conn, half, side, ctx);
        }
    }
}

fn skip_all_holes(conn: &mut Conn, half: &mut Half, side: usize, ctx: &mut Ctx<'_>) {
    while half.reasm.has_hole() {
        skip_hole(conn, half, side, ctx);
    }
}

fn skip_hole(conn: &mut Conn, half: &mut Half, side: usize, ctx: &mut Ctx<'_>) {
    ctx.stats.holes_skipped += 1;
    let cut_message = half.msg.is_some();
    if cut_message {
        end_incomplete(conn, half, side, reason::INCOMPLETE, ctx);
    }
    half.buf.clear();
    half.pos = 0;
    half.phase = match ctx.cfg.protocol {
        Protocol::Http => Phase::Skipping,
        Protocol::Binary => Phase::Binary,
    };
    // Bytes after the hole that belong to the cut message are not garbage.
    half.skip_counted = cut_message;
    half.reasm.skip_hole();
    drain(conn, half, side, ctx);
    close_if_done(conn, half, side, ctx);
}

/// Finishes a half at the end of its flow: holes skipped, the message in progress ended.
fn finish_half(flow: &mut Flow, side: usize, why: DropReason, ctx: &mut Ctx<'_>) {
    let (conn, half, _) = flow.split(side);
    skip_all_holes(conn, half, side, ctx);
    if half.msg.is_some() {
        match half.phase {
            Phase::Binary => complete(conn, half, side, false, ctx),
            _ => end_incomplete(conn, half, side, why, ctx),
        }
    }
    half.release();
}

fn on_data(
    flow: &mut Flow,
    side: usize,
    pkt: &Packet<'_>,
    seq: u32,
    ts_ns: i64,
    ctx: &mut Ctx<'_>,
) {
    let retransmission = flow.halves[side].reasm.place(seq, pkt.payload.len()) == Placement::Old;
    if ctx.cfg.protocol == Protocol::Binary && !retransmission {
        end_binary_message(flow, 1 - side, ctx);
    }
    let (conn, half, _) = flow.split(side);
    if let Some(why) = discard_reason(conn, half, side, retransmission, ctx) {
        ctx.drop_one(why);
        return;
    }
    if conn.tunnel || conn.reset || half.closed {
        return;
    }
    let payload = pkt.payload;
    if conn.client.is_none() && !recognise(conn, side, payload, ctx) {
        skipped(half, ctx);
        return;
    }
    if !frames(conn, side, ctx) {
        watch_unframed_response(conn, payload);
        return;
    }
    if half.reasm.next_seq.is_none() {
        if !recognise(conn, side, payload, ctx) {
            skipped(half, ctx);
            return;
        }
        half.reasm.next_seq = Some(seq);
        half.phase = ctx.initial_phase();
        half.skip_counted = false;
    }
    match half.reasm.place(seq, payload.len()) {
        Placement::Old => {}
        Placement::InOrder(skip) => {
            let meta = ChunkMeta {
                seq: seq.wrapping_add(skip as u32),
                ts_ns,
                ack: pkt.ack,
                len: payload.len() - skip,
            };
            deliver(conn, half, side, &payload[skip..], meta, ctx);
            drain(conn, half, side, ctx);
            close_if_done(conn, half, side, ctx);
        }
        Placement::Future => {
            if half.buffered() + payload.len() > ctx.half_budget {
                out_of_budget(conn, half, side, reason::BUFFER_FULL, ctx);
            } else {
                let held = half
                    .reasm
                    .hold(seq, ts_ns, pkt.ack, payload, ctx.cfg.max_held_segments);
                if held == Hold::SegmentLimit {
                    out_of_budget(conn, half, side, reason::SEGMENT_LIMIT, ctx);
                }
            }
        }
    }
}

/// Why a data segment of a tunnelled, reset or closed connection is discarded (`None` for
/// what is not a loss: retransmissions, and unframed server bytes).
fn discard_reason(
    conn: &Conn,
    half: &Half,
    side: usize,
    retransmission: bool,
    ctx: &Ctx<'_>,
) -> Option<DropReason> {
    if retransmission && !conn.tunnel {
        return None;
    }
    if !frames(conn, side, ctx) && !conn.reset {
        return None;
    }
    if conn.reset {
        Some(DropReason::AfterReset)
    } else if conn.tunnel {
        Some(DropReason::Tunnel)
    } else if half.closed {
        Some(DropReason::OutOfWindow)
    } else {
        None
    }
}

/// Whether this side's bytes are framed (server bytes only when responses are tracked).
fn frames(conn: &Conn, side: usize, ctx: &Ctx<'_>) -> bool {
    ctx.cfg.track_responses || conn.role(side) != Some(Role::Server)
}

/// Without response tracking, server segments are only checked for a switch to a tunnel.
fn watch_unframed_response(conn: &mut Conn, payload: &[u8]) {
    let Some(status) = response_status(payload) else {
        return;
    };
    if status == 101 || (conn.last_request_connect && (200..300).contains(&status)) {
        conn.tunnel = true;
    }
}

/// The status code of a segment that begins with a status line.
fn response_status(payload: &[u8]) -> Option<u16> {
    if http::status_line(payload) != Verdict::Yes {
        return None;
    }
    let digits = payload.get(9..12)?;
    digits.iter().try_fold(0u16, |code, &d| {
        d.is_ascii_digit().then(|| code * 10 + u16::from(d - b'0'))
    })
}

/// Binary protocol: the other side's message ends when this side sends.
fn end_binary_message(flow: &mut Flow, side: usize, ctx: &mut Ctx<'_>) {
    let (conn, half, _) = flow.split(side);
    if half.msg.is_none() {
        return;
    }
    skip_all_holes(conn, half, side, ctx);
    if half.msg.is_some() {
        half.pos = half.buf.len();
        complete(conn, half, side, false, ctx);
    }
}

/// Does a segment begin a message? Infers the connection's direction when still unknown.
fn recognise(conn: &mut Conn, side: usize, data: &[u8], ctx: &Ctx<'_>) -> bool {
    if ctx.cfg.protocol == Protocol::Binary {
        conn.client.get_or_insert(side);
        return true;
    }
    match conn.role(side) {
        Some(role) => begins_message(role, data),
        None if begins_message(Role::Client, data) => {
            conn.client = Some(side);
            true
        }
        None if begins_message(Role::Server, data) => {
            conn.client = Some(1 - side);
            true
        }
        None => false,
    }
}

fn begins_message(role: Role, data: &[u8]) -> bool {
    match http::start_line(role, data) {
        Verdict::Yes => true,
        Verdict::Maybe => data.len() >= MIN_PARTIAL_START_LINE,
        Verdict::No => false,
    }
}

/// Counts a run of skipped bytes once.
fn skipped(half: &mut Half, ctx: &mut Ctx<'_>) {
    if !half.skip_counted {
        half.skip_counted = true;
        ctx.drop_one(reason::GARBAGE);
    }
}

/// Delivers held segments that the stream has caught up with.
fn drain(conn: &mut Conn, half: &mut Half, side: usize, ctx: &mut Ctx<'_>) {
    while let Some(held) = half.reasm.pop_ready() {
        if let Placement::InOrder(skip) = half.reasm.place(held.seq, held.data.len()) {
            let meta = ChunkMeta {
                seq: held.seq.wrapping_add(skip as u32),
                ts_ns: held.ts_ns,
                ack: held.ack,
                len: held.data.len() - skip,
            };
            deliver(conn, half, side, &held.data[skip..], meta, ctx);
        }
    }
}

/// Appends in-order bytes and frames them.
fn deliver(
    conn: &mut Conn,
    half: &mut Half,
    side: usize,
    data: &[u8],
    meta: ChunkMeta,
    ctx: &mut Ctx<'_>,
) {
    half.reasm.advance(data.len());
    if conn.tunnel {
        if frames(conn, side, ctx) {
            ctx.drop_one(DropReason::Tunnel);
        }
        return;
    }
    if half.phase == Phase::Skipping {
        if !recognise(conn, side, data, ctx) {
            skipped(half, ctx);
            return;
        }
        half.phase = Phase::Idle;
        half.skip_counted = false;
    }
    if half.buffered() + data.len() > ctx.half_budget {
        out_of_budget(conn, half, side, reason::BUFFER_FULL, ctx);
        return;
    }
    half.append(data);
    frame(conn, half, side, meta, ctx);
}

/// A buffer budget (`why`) is exhausted: the message in progress is lost, resync later.
fn out_of_budget(
    conn: &mut Conn,
    half: &mut Half,
    side: usize,
    why: DropReason,
    ctx: &mut Ctx<'_>,
) {
    if half.msg.is_some() {
        end_incomplete(conn, half, side, why, ctx);
    } else {
        ctx.drop_one(why);
    }
    half.release();
    half.phase = Phase::Skipping;
    half.skip_counted = true;
}

fn close_if_done(conn: &mut Conn, half: &mut Half, side: usize, ctx: &mut Ctx<'_>) {
    if !half.closed && half.fin_seq.is_some() && half.fin_seq == half.reasm.next_seq {
        close_half(conn, half, side, ctx);
    }
}

/// The sender closed (FIN fully received, or RST): close-delimited bodies end here.
fn close_half(conn: &mut Conn, half: &mut Half, side: usize, ctx: &mut Ctx<'_>) {
    half.closed = true;
    if half.msg.is_some() {
        match half.phase {
            Phase::UntilClose | Phase::Binary => {
                half.pos = half.buf.len();
                complete(conn, half, side, false, ctx);
            }
            _ => end_incomplete(conn, half, side, reason::INCOMPLETE, ctx),
        }
    }
    // The position stays known, so retransmissions after the close are told from new data.
    let next_seq = half.reasm.next_seq;
    half.release();
    half.reasm.next_seq = next_seq;
}

/// Walks the buffer as far as it frames.
fn frame(conn: &mut Conn, half: &mut Half, side: usize, meta: ChunkMeta, ctx: &mut Ctx<'_>) {
    while !conn.tunnel {
        if let Some(msg) = &mut half.msg {
            msg.end_ns = msg.end_ns.max(meta.ts_ns);
        }
        match half.phase {
            Phase::Skipping => return,
            Phase::Idle => {
                if !begin_http_message(conn, half, side, meta, ctx) {
                    return;
                }
            }
            Phase::Head => {
                if !read_head(conn, half, side, ctx) {
                    return;
                }
            }
            Phase::Length(left) => {
                let take = left.min((half.buf.len() - half.pos) as u64);
                half.pos += take as usize;
                if take < left {
                    half.phase = Phase::Length(left - take);
                    return limit_message(half, ctx);
                }
                complete(conn, half, side, false, ctx);
            }
            Phase::Chunked(mut state) => {
                match http::scan_chunked(&mut state, &half.buf, &mut half.pos) {
                    ChunkProgress::Done => complete(conn, half, side, false, ctx),
                    ChunkProgress::NeedMore => {
                        half.phase = Phase::Chunked(state);
                        return limit_message(half, ctx);
                    }
                    ChunkProgress::Invalid => {
                        half.pos = half.buf.len();
                        end_incomplete(conn, half, side, reason::INCOMPLETE, ctx);
                        garbage_rest(half);
                        return;
                    }
                }
            }
            Phase::UntilClose => {
                half.pos = half.buf.len();
                return limit_message(half, ctx);
            }
            Phase::Binary => {
                if half.msg.is_none() {
                    start_message(conn, half, side, meta, ctx);
                }
                half.pos = half.buf.len();
                return limit_message(half, ctx);
            }
        }
    }
}

/// Skips blank lines at a boundary; starts a message when bytes remain.
fn begin_http_message(
    conn: &mut Conn,
    half: &mut Half,
    side: usize,
    meta: ChunkMeta,
    ctx: &mut Ctx<'_>,
) -> bool {
    let blank = half.buf[half.pos..]
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    half.buf.advance(half.pos + blank);
    half.pos = 0;
    if half.buf.is_empty() {
        return false;
    }
    start_message(conn, half, side, meta, ctx);
    half.phase = Phase::Head;
    half.head_scan = 0;
    half.start_line_ok = false;
    true
}

fn start_message(
    conn: &mut Conn,
    half: &mut Half,
    side: usize,
    meta: ChunkMeta,
    ctx: &mut Ctx<'_>,
) {
    // Bytes at a boundary all came with the current chunk (earlier chunks were framed fully).
    let offset_in_chunk = meta.len.saturating_sub(half.buf.len() - half.pos);
    let mut msg = MessageState {
        start_ns: meta.ts_ns,
        end_ns: meta.ts_ns,
        ack: meta.ack,
        seq: meta.seq.wrapping_add(offset_in_chunk as u32),
        id: None,
        request_start_ns: None,
        tunnel_after: false,
    };
    match conn.role(side) {
        Some(Role::Server) if ctx.cfg.protocol == Protocol::Binary => {
            let (request, id) = conn.answer(false, msg.seq);
            msg.id = Some(id);
            msg.request_start_ns = request.map(|r| r.start_ns);
        }
        Some(Role::Server) => {}
        _ => {
            let track = ctx.cfg.track_responses;
            msg.id = Some(conn.begin_request(msg.ack, msg.start_ns, track));
        }
    }
    half.msg = Some(msg);
}

/// Parses the header block once complete; `false` while waiting for more bytes.
fn read_head(conn: &mut Conn, half: &mut Half, side: usize, ctx: &mut Ctx<'_>) -> bool {
    let role = conn.role(side).unwrap_or(Role::Client);
    // A block already complete (the usual case: the head came in one segment) is checked by
    // the full parse below; the start-line check is for heads still arriving.
    let found = http::find_head_end(&half.buf, half.head_scan);
    if found.is_ok() {
        half.start_line_ok = true;
    }
    if !half.start_line_ok {
        // Re-checking a long, still incomplete line on every segment would be quadratic.
        let pending = half.buf.get(half.head_scan..).unwrap_or_default();
        let line_complete = memchr::memchr(b'\n', pending).is_some();
        let first_look = half.head_scan == 0;
        if line_complete || first_look {
            match http::start_line(role, &half.buf) {
                Verdict::Yes => half.start_line_ok = true,
                Verdict::No => return garbage(conn, half, side, ctx),
                Verdict::Maybe => {}
            }
        }
        if !half.start_line_ok {
            if half.buf.len() > MAX_HEAD_BYTES {
                return garbage(conn, half, side, ctx);
            }
            // No line end yet (a Maybe verdict stops at the end of the input).
            half.head_scan = half.buf.len();
            return false;
        }
    }
    let end = match found {
        Ok(end) => end,
        Err(_) if half.buf.len() > MAX_HEAD_BYTES => return garbage(conn, half, side, ctx),
        Err(resume) => {
            half.head_scan = resume;
            return false;
        }
    };
    let Ok(head) = http::parse_head(role, &half.buf[..end]) else {
        return garbage(conn, half, side, ctx);
    };
    half.pos = end;
    let body = match role {
        Role::Client => {
            conn.set_request_method(head.method);
            if head.method == Method::Connect {
                ctx.stats.connect_requests += 1;
            }
            http::request_body(&head)
        }
        Role::Server => response_framing(conn, half, &head),
    };
    half.phase = match body {
        BodyKind::Empty => {
            complete(conn, half, side, false, ctx);
            return true;
        }
        BodyKind::Length(n) => Phase::Length(n),
        BodyKind::Chunked => Phase::Chunked(Chunked::Size),
        BodyKind::UntilClose => Phase::UntilClose,
    };
    true
}

/// Pairs a response head with its request and decides its body.
fn response_framing(conn: &mut Conn, half: &mut Half, head: &http::Head) -> BodyKind {
    let interim = (100..200).contains(&head.status) && head.status != 101;
    let Some(msg) = half.msg.as_mut() else {
        return BodyKind::Empty;
    };
    let (request, id) = conn.answer(interim, msg.seq);
    msg.id = Some(id);
    msg.request_start_ns = request.map(|r| r.start_ns);
    let method = request.map_or(Method::Other, |r| r.method);
    let connect_ok = method == Method::Connect && (200..300).contains(&head.status);
    msg.tunnel_after = head.status == 101 || connect_ok;
    http::response_body(head, method)
}

/// The bytes at the boundary do not start a message: drop them, resync at a later segment.
fn garbage(conn: &mut Conn, half: &mut Half, side: usize, ctx: &mut Ctx<'_>) -> bool {
    if let Some(msg) = half.msg.take() {
        if conn.role(side) != Some(Role::Server) {
            if let Some(id) = msg.id {
                conn.cancel_request(id);
            }
        }
    }
    half.skip_counted = false;
    skipped(half, ctx);
    garbage_rest(half);
    true
}

fn garbage_rest(half: &mut Half) {
    half.buf.clear();
    half.pos = 0;
    half.truncated_prefix = None;
    half.phase = Phase::Skipping;
}

/// Keeps at most `message_limit` bytes of the message; framed bytes beyond it are discarded.
fn limit_message(half: &mut Half, ctx: &Ctx<'_>) {
    if half.truncated_prefix.is_some() {
        half.buf.advance(half.pos);
        half.pos = 0;
    } else if half.pos > ctx.message_limit {
        let prefix = half.buf.split_to(ctx.message_limit);
        half.buf.advance(half.pos - ctx.message_limit);
        half.pos = 0;
        half.truncated_prefix = Some(prefix);
    }
}

/// The message's bytes (up to `pos`) and whether they were cut.
fn take_payload(half: &mut Half, limit: usize) -> (Bytes, bool) {
    if let Some(prefix) = half.truncated_prefix.take() {
        half.buf.advance(half.pos);
        half.pos = 0;
        return (prefix.freeze(), true);
    }
    let mut payload = half.buf.split_to(half.pos);
    half.pos = 0;
    let truncated = payload.len() > limit;
    payload.truncate(limit);
    (payload.freeze(), truncated)
}

fn end_incomplete(
    conn: &mut Conn,
    half: &mut Half,
    side: usize,
    why: DropReason,
    ctx: &mut Ctx<'_>,
) {
    half.pos = half.buf.len();
    if let Some(msg) = half.msg.as_mut() {
        if msg.id.is_none() {
            let (request, id) = conn.answer(false, msg.seq);
            msg.id = Some(id);
            msg.request_start_ns = request.map(|r| r.start_ns);
        }
        msg.tunnel_after = false;
    }
    if ctx.cfg.allow_incomplete {
        complete(conn, half, side, true, ctx);
    } else {
        let _ = take_payload(half, ctx.message_limit);
        half.msg = None;
        half.phase = ctx.initial_phase();
        ctx.drop_one(why);
    }
}

/// Emits the message ending at `pos`.
fn complete(conn: &mut Conn, half: &mut Half, side: usize, incomplete: bool, ctx: &mut Ctx<'_>) {
    let (payload, truncated) = take_payload(half, ctx.message_limit);
    half.phase = ctx.initial_phase();
    let Some(msg) = half.msg.take() else {
        return;
    };
    if msg.tunnel_after {
        conn.tunnel = true;
    }
    let kind = match conn.role(side) {
        Some(Role::Server) => MessageKind::Response,
        _ => MessageKind::Request,
    };
    let latency_ns = match (kind, msg.request_start_ns) {
        (MessageKind::Response, Some(request_start)) => msg.start_ns - request_start,
        _ => msg.end_ns - msg.start_ns,
    };
    let id = msg
        .id
        .unwrap_or_else(|| id_bytes(conn.addrs[side], 0, msg.seq));
    (ctx.out)(Event::Message(HttpMessage {
        kind,
        id: MessageId::of(&id),
        start_ns: msg.start_ns,
        end_ns: msg.end_ns,
        latency_ns,
        src: conn.addrs[side],
        dst: conn.addrs[1 - side],
        payload,
        truncated,
        incomplete,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Conversation, Segment};

    #[test]
    fn message_ids_are_lowercase_hex() {
        let words = [
            0u32,
            9,
            10,
            15,
            0x0123_4567,
            0x89ab_cdef,
            0xa0b0_c0d0,
            u32::MAX,
        ];
        let spread = (0..100_000u32).map(|i| i.wrapping_mul(2_654_435_761));
        for word in words.into_iter().chain(spread) {
            assert_eq!(hex_digits(word), format!("{word:08x}").as_bytes());
        }
        let bytes: [u8; 12] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(MessageId::of(&bytes).as_str(), expected);
    }

    const CLIENT: &str = "10.0.0.1:40000";
    const SERVER: &str = "10.0.0.2:80";
    const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n";
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    fn config() -> TrackerConfig {
        TrackerConfig {
            ports: vec![80],
            track_responses: true,
            ..TrackerConfig::default()
        }
    }

    struct Run {
        tracker: Tracker,
        events: Vec<Event>,
        now: i64,
    }

    impl Run {
        fn new(cfg: TrackerConfig) -> Run {
            Run {
                tracker: Tracker::new(cfg),
                events: Vec::new(),
                now: 1_000_000_000,
            }
        }

        fn push(&mut self, seg: &Segment) {
            self.now += 1000;
            let events = &mut self.events;
            self.tracker
                .push(&seg.packet(), self.now, &mut |e| events.push(e));
        }

        fn push_all<'a>(&mut self, segs: impl IntoIterator<Item = &'a Segment>) {
            for seg in segs {
                self.push(seg);
            }
        }

        fn advance(&mut self, ns: i64) {
            self.now += ns;
        }

        fn expire(&mut self) {
            let events = &mut self.events;
            self.tracker.expire(self.now, &mut |e| events.push(e));
        }

        fn finish(&mut self) {
            let events = &mut self.events;
            self.tracker.finish(&mut |e| events.push(e));
        }

        fn messages(&self) -> Vec<&HttpMessage> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Message(m) => Some(m),
                    Event::Dropped { .. } => None,
                })
                .collect()
        }

        fn of_kind(&self, kind: MessageKind) -> Vec<&HttpMessage> {
            self.messages()
                .into_iter()
                .filter(|m| m.kind == kind)
                .collect()
        }

        fn payloads(&self, kind: MessageKind) -> Vec<&[u8]> {
            self.of_kind(kind).iter().map(|m| &m.payload[..]).collect()
        }

        fn drops(&self) -> Vec<(&'static str, u64)> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Dropped { reason, count } => Some((reason.as_str(), *count)),
                    Event::Message(_) => None,
                })
                .collect()
        }
    }

    fn conversation() -> Conversation {
        Conversation::new(CLIENT, SERVER)
    }

    fn chunks(data: &[u8], size: usize, conv: &mut Conversation, client: bool) -> Vec<Segment> {
        data.chunks(size)
            .map(|c| {
                if client {
                    conv.client(c)
                } else {
                    conv.server(c)
                }
            })
            .collect()
    }

    #[test]
    fn single_segment_get_and_response_share_goreplay_id() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(GET));
        run.push(&conv.server(OK));
        let requests = run.of_kind(MessageKind::Request);
        let responses = run.of_kind(MessageKind::Response);
        assert_eq!((requests.len(), responses.len()), (1, 1));
        let (req, res) = (requests[0], responses[0]);
        // 40000 = 0x9c40, 80 = 0x0050, 10.0.0.1 = 0x0a000001, Ack = server ISN + 1 = 5001.
        assert_eq!(req.id, "9c4000500a00000100001389");
        assert_eq!(res.id, req.id);
        assert_eq!(req.id, request_id(CLIENT.parse().unwrap(), 80, 5001));
        assert_eq!(&req.payload[..], GET);
        assert_eq!(&res.payload[..], OK);
        assert_eq!(req.src, CLIENT.parse().unwrap());
        assert_eq!(res.src, SERVER.parse().unwrap());
        assert_eq!(req.latency_ns, 0);
        assert_eq!(res.latency_ns, res.start_ns - req.start_ns);
        assert!(!req.incomplete && !req.truncated);
        assert!(run.drops().is_empty());
    }

    #[test]
    fn ipv6_ids_use_the_last_four_address_bytes() {
        let id = request_id("[2001:db8::a:b0c:d0e]:1234".parse().unwrap(), 8080, 7);
        assert_eq!(id, "04d21f900b0c0d0e00000007");
    }

    #[test]
    fn request_split_over_many_segments() {
        let body = b"POST /upload HTTP/1.1\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz";
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        let ack = conv.server_seq;
        run.push_all(&chunks(body, 1, &mut conv, true));
        let requests = run.of_kind(MessageKind::Request);
        assert_eq!(requests.len(), 1);
        assert_eq!(&requests[0].payload[..], &body[..]);
        assert_eq!(requests[0].id, request_id(conv.client, 80, ack));
        assert_eq!(requests[0].latency_ns, (body.len() as i64 - 1) * 1000);
    }

    #[test]
    fn reordered_duplicated_and_overlapping_segments() {
        let request = b"POST /x HTTP/1.1\r\nContent-Length: 20\r\n\r\n01234567890123456789";
        let mut conv = conversation();
        let handshake = conv.handshake();
        let base = conv.client_seq;
        let pieces = chunks(request, 7, &mut conv, true);
        let mut order: Vec<Segment> = pieces.iter().rev().cloned().collect();
        order.insert(2, pieces[3].clone());
        let overlap = Segment {
            seq: base + 3,
            payload: request[3..17].to_vec(),
            ..pieces[0].clone()
        };
        order.insert(1, overlap);
        let mut run = Run::new(config());
        run.push_all(&handshake);
        run.push_all(&order);
        run.push_all(&pieces); // late retransmissions of everything
        assert_eq!(run.payloads(MessageKind::Request), vec![&request[..]]);
        assert!(run.drops().is_empty());
        assert_eq!(run.tracker.buffered_bytes(), 0);
    }

    #[test]
    fn overlap_keeps_first_delivered_bytes() {
        let mut conv = conversation();
        let handshake = conv.handshake();
        let first = conv.client(b"GET /aaaa HTTP/1.1\r\n");
        let rest = conv.client(b"\r\n");
        let rewrite = Segment {
            payload: b"GET /bbbb HTTP/1.1\r\n\r\n".to_vec(),
            ..first.clone()
        };
        let mut run = Run::new(config());
        run.push_all(&handshake);
        run.push_all([&first, &rewrite, &rest]);
        assert_eq!(
            run.payloads(MessageKind::Request),
            vec![&b"GET /aaaa HTTP/1.1\r\n\r\n"[..]]
        );
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut conv = conversation().isn(u32::MAX - 30, u32::MAX - 2);
        let mut run = Run::new(config());
        run.push_all(&conv.handshake());
        let request = chunks(GET, 9, &mut conv, true);
        run.push_all(request.iter().rev());
        run.push_all(&chunks(OK, 4, &mut conv, false));
        assert_eq!(run.payloads(MessageKind::Request), vec![GET]);
        assert_eq!(run.payloads(MessageKind::Response), vec![OK]);
        let req = run.of_kind(MessageKind::Request)[0].id;
        assert_eq!(req, run.of_kind(MessageKind::Response)[0].id);
        assert!(req.ends_with("fffffffe"));
    }

    #[test]
    fn chunked_response_with_extensions_and_trailers() {
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Expires\r\n\r\n\
            4;ext=1\r\nWiki\r\n5\r\npedia\r\nE ; a=b\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n";
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(GET));
        run.push_all(&chunks(chunked, 3, &mut conv, false));
        run.push(&conv.client(GET));
        run.push(&conv.server(OK));
        assert_eq!(run.payloads(MessageKind::Response), vec![chunked, OK]);
        assert_eq!(run.of_kind(MessageKind::Request).len(), 2);
    }

    #[test]
    fn close_delimited_response_ends_at_fin() {
        let response = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"GET / HTTP/1.0\r\n\r\n"));
        run.push_all(&chunks(response, 10, &mut conv, false));
        assert!(run.of_kind(MessageKind::Response).is_empty());
        let fin = conv.server_fin();
        run.push(&fin);
        let responses = run.of_kind(MessageKind::Response);
        assert_eq!(responses.len(), 1);
        assert_eq!(&responses[0].payload[..], &response[..]);
        assert!(!responses[0].incomplete);
    }

    #[test]
    fn rst_ends_close_delimited_response() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(GET));
        run.push(&conv.server(b"HTTP/1.1 200 OK\r\n\r\nbody"));
        run.push(&conv.client_rst());
        assert_eq!(
            run.payloads(MessageKind::Response),
            vec![&b"HTTP/1.1 200 OK\r\n\r\nbody"[..]]
        );
    }

    #[test]
    fn forged_rst_out_of_window_is_ignored_and_counted() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"GET /a HTTP/1.1\r\n"));
        let real = conv.client_rst();
        for forged_seq in [real.seq.wrapping_add(1), real.seq.wrapping_add(1 << 30)] {
            run.push(&real.clone().seq(forged_seq));
        }
        run.push(&conv.client(b"Host: a\r\n\r\n"));
        assert_eq!(
            run.payloads(MessageKind::Request),
            vec![&b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"[..]]
        );
        assert_eq!(run.drops(), vec![("out of window", 1); 2]);
    }

    #[test]
    fn in_window_rst_mid_message_counts_incomplete_then_after_reset() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"GET /a HTTP/1.1\r\n"));
        run.push(&conv.client_rst());
        run.push(&conv.client(b"Host: a\r\n\r\n"));
        run.push(&conv.client(GET));
        assert!(run.messages().is_empty());
        assert_eq!(
            run.drops(),
            vec![("incomplete", 1), ("after reset", 1), ("after reset", 1)]
        );
    }

    #[test]
    fn data_beyond_fin_is_counted_but_retransmissions_are_not() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        let get = conv.client(GET);
        run.push(&get);
        run.push(&conv.client_fin());
        run.push(&get);
        run.push(&conv.client(GET));
        assert_eq!(run.messages().len(), 1);
        assert_eq!(run.drops(), vec![("out of window", 1)]);
    }

    #[test]
    fn bodiless_responses_head_204_304() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(
            b"HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\n\r\n",
        ));
        let responses: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
            OK,
        ];
        run.push(&conv.server(&responses.concat()));
        assert_eq!(run.payloads(MessageKind::Response), responses.to_vec());
        let ids: Vec<_> = run
            .of_kind(MessageKind::Request)
            .iter()
            .map(|m| m.id)
            .collect();
        let answered: Vec<_> = run
            .of_kind(MessageKind::Response)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, answered);
    }

    #[test]
    fn expect_100_continue() {
        let head = b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(head));
        run.push(&conv.server(b"HTTP/1.1 100 Continue\r\n\r\n"));
        run.push(&conv.client(b"data"));
        run.push(&conv.server(OK));
        let requests = run.of_kind(MessageKind::Request);
        assert_eq!(requests.len(), 1);
        assert_eq!(&requests[0].payload[..], &[&head[..], b"data"].concat()[..]);
        let responses = run.of_kind(MessageKind::Response);
        assert_eq!(responses.len(), 2);
        assert_eq!(&responses[0].payload[..], b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(&responses[1].payload[..], OK);
        assert!(responses.iter().all(|r| r.id == requests[0].id));
    }

    #[test]
    fn pipelined_requests_pair_fifo_with_distinct_ids() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        let ack = conv.server_seq;
        run.push(&conv.client(
            b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        ));
        run.push(&conv.server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2",
        ));
        run.push(&conv.server(b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n3"));
        let requests = run.of_kind(MessageKind::Request);
        let responses = run.of_kind(MessageKind::Response);
        assert_eq!((requests.len(), responses.len()), (3, 3));
        let client = conv.client;
        let expected: Vec<MessageId> = (0..3).map(|i| request_id(client, 80, ack + i)).collect();
        for i in 0..3 {
            assert_eq!(requests[i].id, expected[i]);
            assert_eq!(responses[i].id, expected[i]);
            assert_eq!(responses[i].payload.last(), Some(&b"123"[i]));
        }
        assert!(requests[2].payload.starts_with(b"POST /3"));
        // the first response's id equals GoReplay's (server Seq == client Ack)
        assert_eq!(responses[0].id, request_id(client, 80, ack));
    }

    #[test]
    fn upgrade_turns_the_connection_into_a_tunnel() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(
            &conv.client(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        );
        run.push(&conv.server(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"));
        run.push(&conv.client(&[0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
        run.push(&conv.server(&[0x81, 0x02, b'h', b'i']));
        run.push(&conv.client(GET));
        assert_eq!(run.of_kind(MessageKind::Request).len(), 1);
        assert_eq!(run.of_kind(MessageKind::Response).len(), 1);
        assert_eq!(run.drops(), vec![("tunnel", 1); 3]);
        assert_eq!(run.tracker.buffered_bytes(), 0);
    }

    #[test]
    fn connect_tunnel_without_response_tracking() {
        let mut run = Run::new(TrackerConfig {
            track_responses: false,
            ..config()
        });
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(
            &conv.client(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        );
        run.push(&conv.server(b"HTTP/1.1 200 Connection established\r\n\r\n"));
        run.push(&conv.client(b"\x16\x03\x01\x02\x00 TLS hello"));
        assert_eq!(run.messages().len(), 1);
        assert_eq!(run.drops(), vec![("tunnel", 1)]);
    }

    #[test]
    fn mid_stream_start_skips_to_the_first_request_line() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push(&conv.client(b"tail of an earlier body"));
        run.push(&conv.server(b"end of an earlier response"));
        run.push(&conv.client(GET));
        run.push(&conv.server(OK));
        assert_eq!(run.payloads(MessageKind::Request), vec![GET]);
        assert_eq!(run.payloads(MessageKind::Response), vec![OK]);
        assert_eq!(run.drops(), vec![("garbage", 1), ("garbage", 1)]);
        let ids: Vec<_> = run.messages().iter().map(|m| m.id).collect();
        assert_eq!(ids[0], ids[1]);
    }

    #[test]
    fn direction_is_inferred_without_ports() {
        let cfg = TrackerConfig {
            ports: vec![],
            ..config()
        };
        for handshake in [false, true] {
            let mut run = Run::new(cfg.clone());
            let mut conv = Conversation::new("10.0.0.9:8080", "10.0.0.1:50000");
            if handshake {
                run.push_all(&conv.handshake());
            }
            run.push(&conv.client(GET));
            run.push(&conv.server(OK));
            let requests = run.of_kind(MessageKind::Request);
            assert_eq!(requests.len(), 1, "handshake {handshake}");
            assert_eq!(requests[0].src, conv.client);
            assert_eq!(run.of_kind(MessageKind::Response).len(), 1);
        }
    }

    #[test]
    fn segments_outside_ports_are_dropped() {
        let mut run = Run::new(config());
        let mut conv = Conversation::new("10.0.0.1:40000", "10.0.0.2:8080");
        run.push_all(&conv.handshake());
        run.push(&conv.client(GET));
        assert_eq!(run.drops(), vec![("outside ports", 1)]);
        assert_eq!(run.tracker.flows(), 0);
    }

    #[test]
    fn gap_ends_message_incomplete_and_resyncs() {
        let mut run = Run::new(TrackerConfig {
            allow_incomplete: true,
            ..config()
        });
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        let post = b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
        run.push(&conv.client(post));
        let _lost = conv.client(b"0123456789");
        run.push(&conv.client(GET));
        run.push(&conv.client(b"GET /after HTTP/1.1\r\n\r\n"));
        assert!(run.messages().is_empty());
        run.advance(3_000_000_000);
        run.expire();
        let requests = run.of_kind(MessageKind::Request);
        assert_eq!(requests.len(), 3);
        assert!(requests[0].incomplete);
        assert_eq!(&requests[0].payload[..], &post[..]);
        assert_eq!(&requests[1].payload[..], GET);
        assert!(!requests[1].incomplete);
        assert_eq!(&requests[2].payload[..], b"GET /after HTTP/1.1\r\n\r\n");
        assert_eq!(run.tracker.flows(), 0);
    }

    #[test]
    fn stale_hole_is_skipped_while_the_flow_stays_busy() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n"));
        let _lost = conv.client(b"0123456789");
        run.push(&conv.client(GET));
        run.advance(2_500_000_000);
        run.push(&conv.client(b"GET /later HTTP/1.1\r\n\r\n"));
        assert_eq!(run.drops(), vec![("incomplete", 1)]);
        assert_eq!(run.of_kind(MessageKind::Request).len(), 2);
    }

    #[test]
    fn expiry_with_and_without_allow_incomplete() {
        for allow in [false, true] {
            let mut run = Run::new(TrackerConfig {
                allow_incomplete: allow,
                ..config()
            });
            let mut conv = conversation();
            run.push_all(&conv.handshake());
            run.push(&conv.client(b"POST /a HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial"));
            run.advance(1_000_000_000);
            run.expire();
            assert!(run.events.is_empty());
            assert_eq!(run.tracker.flows(), 1);
            run.advance(1_500_000_000);
            run.expire();
            if allow {
                let requests = run.of_kind(MessageKind::Request);
                assert_eq!(requests.len(), 1);
                assert!(requests[0].incomplete);
                assert!(requests[0].payload.ends_with(b"partial"));
            } else {
                assert_eq!(run.drops(), vec![("incomplete", 1)]);
            }
            assert_eq!(run.tracker.flows(), 0);
            assert_eq!(run.tracker.buffered_bytes(), 0);
        }
    }

    #[test]
    fn idle_complete_flows_are_removed() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(GET));
        run.push(&conv.server(OK));
        assert_eq!(run.tracker.flows(), 1);
        run.advance(2_000_000_000);
        run.expire();
        assert_eq!(run.tracker.flows(), 0);
        assert_eq!(run.messages().len(), 2);
        assert!(run.drops().is_empty());
    }

    #[test]
    fn oversized_messages_are_truncated_and_the_next_one_found() {
        let mut run = Run::new(TrackerConfig {
            max_message_bytes: 100,
            ..config()
        });
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        let mut big = b"POST /big HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5000));
        run.push_all(&chunks(&big, 1400, &mut conv, true));
        assert!(run.tracker.buffered_bytes() < 100 + 1400);
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..40 {
            chunked.extend_from_slice(b"64\r\n");
            chunked.extend(std::iter::repeat_n(b'y', 100));
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        run.push_all(&chunks(&chunked, 333, &mut conv, false));
        run.push(&conv.client(GET));
        run.push(&conv.server(OK));
        let requests = run.of_kind(MessageKind::Request);
        assert_eq!(requests.len(), 2);
        assert!(requests[0].truncated);
        assert_eq!(&requests[0].payload[..], &big[..100]);
        assert_eq!(&requests[1].payload[..], GET);
        let responses = run.of_kind(MessageKind::Response);
        assert_eq!(responses.len(), 2);
        assert!(responses[0].truncated);
        assert_eq!(&responses[0].payload[..], &chunked[..100]);
        assert_eq!(&responses[1].payload[..], OK);
        assert!(run.drops().is_empty());
    }

    #[test]
    fn huge_content_length_stays_bounded() {
        let mut run = Run::new(TrackerConfig {
            max_message_bytes: 10_000,
            ..config()
        });
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"PUT /x HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n"));
        for _ in 0..2000 {
            run.push(&conv.client(&[b'z'; 1400]));
            assert!(run.tracker.buffered_bytes() <= 10_000 + 1400);
        }
        run.finish();
        assert_eq!(run.drops(), vec![("incomplete", 1)]);
    }

    #[test]
    fn flow_table_evicts_least_recently_active() {
        let mut run = Run::new(TrackerConfig {
            max_flows: 2,
            ..config()
        });
        let mut convs: Vec<Conversation> = (0..3)
            .map(|i| Conversation::new(&format!("10.0.0.{}:4000{i}", i + 1), SERVER))
            .collect();
        for conv in convs.iter_mut().take(2) {
            run.push(&conv.client(b"GET /partial HTTP/1.1\r\n"));
        }
        let first_again = convs[0].client(b"Host: a\r\n");
        run.push(&first_again);
        run.push(&convs[2].client(GET));
        assert_eq!(run.tracker.flows(), 2);
        assert_eq!(run.drops(), vec![("flow table full", 1)]);
        assert_eq!(run.tracker.stats().flows_evicted, 1);
        run.push(&convs[0].client(b"\r\n"));
        let requests = run.of_kind(MessageKind::Request);
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[1].src, convs[0].client);
    }

    #[test]
    fn buffer_budget_is_enforced() {
        let mut run = Run::new(TrackerConfig {
            max_buffered_bytes: 1000,
            ..config()
        });
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"POST /a HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"));
        let _lost = conv.client(&[b'a'; 10]);
        for _ in 0..5 {
            run.push(&conv.client(&[b'b'; 300]));
            assert!(run.tracker.buffered_bytes() <= 1000);
        }
        assert_eq!(run.drops(), vec![("buffer full", 1)]);
    }

    #[test]
    fn binary_protocol_ends_messages_on_direction_change() {
        let mut run = Run::new(TrackerConfig {
            protocol: Protocol::Binary,
            ..config()
        });
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"\x00\x01req"));
        run.push(&conv.client(b"-more"));
        run.push(&conv.server(b"\x00\x02resp"));
        run.push(&conv.client(b"next"));
        run.advance(3_000_000_000);
        run.expire();
        assert_eq!(
            run.payloads(MessageKind::Request),
            vec![&b"\x00\x01req-more"[..], b"next"]
        );
        assert_eq!(
            run.payloads(MessageKind::Response),
            vec![&b"\x00\x02resp"[..]]
        );
        let ids: Vec<_> = run.messages().iter().map(|m| m.id).collect();
        assert_eq!(ids[0], ids[1]);
        assert!(run.messages().iter().all(|m| !m.incomplete));
    }

    #[test]
    fn garbage_on_an_http_port_is_counted_once_per_run() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"\x16\x03\x01 not http at all\r\n\r\n"));
        run.push(&conv.client(b"still not"));
        run.push(&conv.client(GET));
        assert_eq!(run.drops(), vec![("garbage", 1)]);
        assert_eq!(run.payloads(MessageKind::Request), vec![GET]);
    }

    #[test]
    fn new_syn_on_a_closed_tuple_starts_a_new_connection() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(GET));
        run.push(&conv.server(OK));
        run.push(&conv.client_fin());
        run.push(&conv.server_fin());
        let mut again = conversation().isn(90_000, 70_000);
        run.push_all(&again.handshake());
        run.push(&again.client(GET));
        run.push(&again.server(OK));
        assert_eq!(run.of_kind(MessageKind::Request).len(), 2);
        assert_eq!(run.of_kind(MessageKind::Response).len(), 2);
        assert!(run.drops().is_empty());
    }

    #[test]
    fn decoded_frames_from_a_pcap_flow_through() {
        use crate::testutil::{read_pcap, write_pcap};
        let mut conv = Conversation::new("[2001:db8::1]:40000", "[2001:db8::2]:80");
        let mut segs = conv.handshake();
        segs.push(conv.client(GET));
        segs.push(conv.server(OK));
        let records: Vec<(i64, Vec<u8>)> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| (i as i64 * 1000, s.ethernet()))
            .collect();
        let file = write_pcap(1, &records);
        let (linktype, records) = read_pcap(&file).unwrap();
        let mut tracker = Tracker::new(config());
        let mut events = Vec::new();
        for r in records {
            let pkt = crate::decode(linktype, r.data, r.orig_len).unwrap();
            tracker.push(&pkt, r.ts_ns, &mut |e| events.push(e));
        }
        assert_eq!(events.len(), 2);
    }
}
