//! The tracker: runs the capture core's layers for every segment — the flow table
//! ([`crate::flows`]), per-direction reassembly ([`crate::stream`]), the protocol layer
//! ([`crate::protocol`], with TLS decryption in [`crate::tls`]), the HTTP/1.x framer ([`crate::http1`]) and pairing
//! ([`crate::pairing`]) — and owns the TCP-level decisions between them (SYN, FIN, RST, holes,
//! budgets).
//!
//! A [`Tracker`] owns a bounded flow table (least recently active flow evicted when full). Each
//! connection has two directions; each direction reassembles its bytes by sequence number (see
//! the overlap policy in `stream`) into one buffer that the framer walks.
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

use crate::connection::{Ctx, Direction, Flow};
use crate::decode::Packet;
use crate::flows::{FlowKey, FlowTable, Slot};
use crate::http1::{ChunkMeta, Phase};
use crate::protocol;
use crate::stream::{Hold, Placement};
use shadowtap_http1::Role;

pub use crate::config::TrackerConfig;
pub use crate::event::{
    reason, DropReason, Event, H2Info, HttpMessage, MessageKind, Recovery, TrackerStats,
};
pub use crate::ids::{request_id, MessageId};
pub use crate::protocol::Framing;

/// When an RST's sender position is unknown, its Ack must lie at most this far behind the
/// next byte seen from its peer (data the peer sent that the RST's sender had not yet acked).
pub const RST_ACK_WINDOW: u32 = 1 << 24;

/// Reassembles TCP flows into HTTP/1.x messages and pairs responses with requests.
pub struct Tracker {
    cfg: TrackerConfig,
    server_ports: Option<Box<[u64; 1024]>>,
    flows: FlowTable<Flow>,
    buffered: usize,
    stats: TrackerStats,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("cfg", &self.cfg)
            .field("flows", &self.flows.len())
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
            flows: FlowTable::default(),
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
        self.flows.len()
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
    ///
    /// A flow whose TLS session waits for its key is retried instead; while its wait lasts it
    /// stays (as if active now).
    pub fn expire(&mut self, now_ns: i64, out: &mut impl FnMut(Event)) {
        while let Some(slot) = self.flows.oldest() {
            let last = self.flows.get(slot).last_ns;
            if last.saturating_add(self.cfg.expire_ns) > now_ns {
                break;
            }
            if self.flows.get(slot).conn.tls.is_some() && self.keeps_waiting(slot, now_ns, out) {
                continue;
            }
            self.stats.flows_expired += 1;
            self.close_flow(slot, reason::INCOMPLETE, out);
        }
    }

    /// Retries an idle flow's TLS session that waits for its key; true (and the flow counts as
    /// active now) while it still waits within the key wait.
    fn keeps_waiting(&mut self, slot: Slot, now_ns: i64, out: &mut dyn FnMut(Event)) -> bool {
        let message_limit = self.message_limit();
        let flow = self.flows.get_mut(slot);
        let before = flow.buffered();
        let mut ctx = Ctx::unbudgeted(&self.cfg, message_limit, &mut self.stats, out);
        let mut dir = flow.direction(0, &mut ctx);
        if !dir.tls_waiting() {
            return false;
        }
        dir.retry_tls(now_ns);
        let waiting = dir.tls_waiting();
        self.buffered = self.buffered - before + flow.buffered();
        if waiting {
            flow.last_ns = now_ns;
            self.flows.touch(slot);
        }
        waiting
    }

    /// End of input: finishes everything as if expired and empties the flow table.
    pub fn finish(&mut self, out: &mut impl FnMut(Event)) {
        while let Some(slot) = self.flows.oldest() {
            self.close_flow(slot, reason::INCOMPLETE, out);
        }
    }

    fn message_limit(&self) -> usize {
        match self.cfg.max_message_bytes {
            0 => usize::MAX,
            n => n,
        }
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
            || self.cfg.active_tls().is_some()
            || self.cfg.framing.is_binary()
            || flags.syn()
            || flags.fin()
            || flags.rst()
        {
            return false;
        }
        match protocol::response_status(pkt.payload) {
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
        let slot = match self.flows.find(&key) {
            Some(slot) => slot,
            None if has_data || flags.syn() => self.insert(key, pkt, side, out),
            None => return,
        };
        self.flows.touch(slot);
        let message_limit = self.message_limit();
        let flow = self.flows.get_mut(slot);
        let before = flow.buffered();
        let flow_budget = self
            .cfg
            .max_buffered_bytes
            .saturating_sub(self.buffered - before);
        let mut ctx = Ctx {
            cfg: &self.cfg,
            message_limit,
            half_budget: flow_budget,
            stats: &mut self.stats,
            out,
        };
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
    ) -> Slot {
        if self.flows.len() >= self.cfg.max_flows.max(1) {
            if let Some(oldest) = self.flows.oldest() {
                self.stats.flows_evicted += 1;
                self.close_flow(oldest, reason::FLOW_TABLE_FULL, out);
            }
        }
        self.flows.insert(key, Flow::new(key, pkt, side))
    }

    /// Finishes every message of a flow (as `why` when incomplete) and removes it.
    fn close_flow(&mut self, slot: Slot, why: DropReason, out: &mut dyn FnMut(Event)) {
        let message_limit = self.message_limit();
        let key = self.flows.get(slot).key;
        let mut flow = self.flows.remove(&key, slot);
        self.buffered -= flow.buffered();
        let mut ctx = Ctx::unbudgeted(&self.cfg, message_limit, &mut self.stats, out);
        if flow.conn.tls.is_some() {
            let now_ns = flow.last_ns;
            let mut dir = flow.direction(0, &mut ctx);
            dir.retry_tls(now_ns);
            dir.give_up_tls();
        }
        flow.direction(0, &mut ctx).finish_h2();
        for side in 0..2 {
            flow.direction(side, &mut ctx).finish(why);
        }
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
        let mut dir = flow.direction(side, ctx);
        let fin_seq = data_seq.wrapping_add(pkt.payload.len() as u32);
        dir.half.fin_seq = Some(fin_seq);
        if dir.half.reasm.next_seq.is_none() {
            dir.half.closed = true;
        }
        dir.close_if_done();
    }
    if flow.conn.tunnel {
        release_tunnel(flow, ctx);
    }
}

/// The connection became (or is) a tunnel: buffered bytes of framed halves count once.
fn release_tunnel(flow: &mut Flow, ctx: &mut Ctx<'_>) {
    for side in 0..2 {
        if flow.halves[side].buffered() > 0 && ctx.frames(&flow.conn, side) {
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
        .filter(|_| ctx.frames(&flow.conn, side));
    if let Some(next) = sender_next {
        let after_fin = sender.fin_seq.map(|fin| fin.wrapping_add(1));
        return pkt.seq == next || Some(pkt.seq) == after_fin;
    }
    let peer = 1 - side;
    let peer_next = flow.halves[peer]
        .reasm
        .next_seq
        .filter(|_| ctx.frames(&flow.conn, peer));
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
            flow.direction(s, ctx).finish(reason::INCOMPLETE);
        }
        let key = flow.key;
        let last_ns = flow.last_ns;
        *flow = Flow::new(key, pkt, side);
        flow.last_ns = last_ns;
    }
    if flow.conn.client.is_none() {
        flow.conn.client = Some(if from_client { side } else { 1 - side });
    }
    let initial = ctx.initial_phase();
    let half = &mut flow.halves[side];
    if half.reasm.next_seq.is_none() {
        half.reasm.next_seq = Some(isn_next);
        half.phase = initial;
        half.skip_counted = false;
    }
}

fn reset_flow(flow: &mut Flow, ctx: &mut Ctx<'_>) {
    // A TLS connection waiting for its key closes once its records are decrypted.
    if !flow.direction(0, ctx).tls_waiting() {
        for side in 0..2 {
            flow.direction(side, ctx).close_after_reset();
        }
    }
    flow.conn.reset = true;
}

/// Gives up on holes whose first held segment has waited `expire_ns`.
fn skip_stale_holes(flow: &mut Flow, now_ns: i64, ctx: &mut Ctx<'_>) {
    let expire_ns = ctx.cfg.expire_ns;
    for side in 0..2 {
        if !flow.halves[side].reasm.has_hole() {
            continue;
        }
        let mut dir = flow.direction(side, ctx);
        while dir.half.reasm.has_hole()
            && now_ns.saturating_sub(dir.half.reasm.hole_since_ns()) >= expire_ns
        {
            dir.skip_hole();
        }
    }
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
    if ctx.cfg.framing.is_binary() && !retransmission {
        flow.direction(1 - side, ctx).end_binary_message();
    }
    let mut dir = flow.direction(side, ctx);
    if let Some(why) = dir.discard_reason(retransmission) {
        dir.ctx.drop_one(why);
        return;
    }
    if dir.conn.tunnel || dir.conn.reset || dir.half.closed {
        return;
    }
    let payload = pkt.payload;
    if dir.conn.client.is_none() && !dir.recognise(payload, pkt.ack) {
        dir.skipped();
        return;
    }
    if !dir.reassembles() {
        dir.watch_unframed_response(payload);
        return;
    }
    if dir.half.reasm.next_seq.is_none() {
        if !dir.recognise(payload, pkt.ack) {
            dir.skipped();
            return;
        }
        dir.half.reasm.next_seq = Some(seq);
        dir.half.phase = dir.ctx.initial_phase();
        dir.half.skip_counted = false;
    }
    match dir.half.reasm.place(seq, payload.len()) {
        Placement::Old => {}
        Placement::InOrder(skip) => {
            let meta = ChunkMeta {
                seq: seq.wrapping_add(skip as u32),
                ts_ns,
                ack: pkt.ack,
                len: payload.len() - skip,
            };
            dir.deliver(&payload[skip..], meta);
            dir.drain();
            dir.close_if_done();
        }
        Placement::Future => {
            if dir.half.buffered() + payload.len() > dir.ctx.half_budget {
                dir.out_of_budget(reason::BUFFER_FULL);
            } else {
                let limit = dir.ctx.cfg.max_held_segments;
                let held = dir.half.reasm.hold(seq, ts_ns, pkt.ack, payload, limit);
                if held == Hold::SegmentLimit {
                    dir.out_of_budget(reason::SEGMENT_LIMIT);
                }
            }
        }
    }
}

impl Direction<'_, '_> {
    /// Why a data segment of a tunnelled, reset or closed connection is discarded (`None` for
    /// what is not a loss: retransmissions, and unframed server bytes).
    fn discard_reason(&self, retransmission: bool) -> Option<DropReason> {
        if retransmission && !self.conn.tunnel {
            return None;
        }
        if !self.frames() && !self.conn.reset {
            return None;
        }
        if self.conn.reset {
            Some(DropReason::AfterReset)
        } else if self.conn.tunnel {
            Some(DropReason::Tunnel)
        } else if self.half.closed {
            Some(DropReason::OutOfWindow)
        } else {
            None
        }
    }

    /// Without response tracking, server segments are only checked for a switch to a tunnel.
    fn watch_unframed_response(&mut self, payload: &[u8]) {
        if let Some(status) = protocol::response_status(payload) {
            if protocol::switches_to_tunnel(status, self.conn.pairing.last_request_connect) {
                self.conn.tunnel = true;
            }
        }
    }

    /// Does a segment (acknowledging `ack`) begin a message, a TLS connection or HTTP/2
    /// frames? Infers the connection's direction when still unknown.
    fn recognise(&mut self, data: &[u8], ack: u32) -> bool {
        if self.conn.tls.is_some() || self.conn.h2.is_some() || self.begins_tls(data) {
            return true;
        }
        self.recognise_plain(data) || self.begins_h2_mid_stream(data, ack)
    }

    /// Does plaintext begin a message? Infers the connection's direction when still unknown.
    fn recognise_plain(&mut self, data: &[u8]) -> bool {
        if self.ctx.cfg.framing.is_binary() {
            self.conn.client.get_or_insert(self.side);
            return true;
        }
        if let Some(role) = self.role() {
            return protocol::begins_message(role, data);
        }
        match protocol::sniff_role(data) {
            Some(Role::Client) => self.conn.client = Some(self.side),
            Some(Role::Server) => self.conn.client = Some(1 - self.side),
            None => return false,
        }
        true
    }

    /// Binary protocol: this side's message ends when the other side sends.
    fn end_binary_message(&mut self) {
        if self.half.msg.is_none() {
            return;
        }
        self.skip_all_holes();
        if self.half.msg.is_some() {
            self.half.pos = self.half.buf.len();
            self.complete(false);
        }
    }

    /// The connection was reset: what is buffered is final.
    pub(crate) fn close_after_reset(&mut self) {
        self.skip_all_holes();
        self.close_half();
    }

    fn skip_all_holes(&mut self) {
        while self.half.reasm.has_hole() {
            self.skip_hole();
        }
    }

    fn skip_hole(&mut self) {
        self.ctx.stats.holes_skipped += 1;
        if self.conn.tls.is_some() {
            self.tls_gap(self.half.reasm.hole_len());
            // The plaintext lost is of unknown length.
            self.h2_gap(None);
        } else if self.conn.h2.is_some() {
            self.h2_gap(self.half.reasm.hole_len());
        } else if self.carry_message_across_hole() {
            self.half.reasm.skip_hole();
            self.drain();
            self.close_if_done();
            return;
        }
        if self.role() == Some(Role::Server) {
            self.conn.pairing.server_gap();
        }
        let cut_message = self.half.msg.is_some();
        if cut_message {
            self.end_incomplete(reason::INCOMPLETE);
        }
        let half = &mut *self.half;
        half.buf.clear();
        half.pos = 0;
        half.phase = if self.ctx.cfg.framing.is_binary() {
            Phase::Binary
        } else {
            Phase::Skipping
        };
        // Bytes after the hole that belong to the cut message are not garbage.
        half.skip_counted = cut_message;
        half.reasm.skip_hole();
        self.drain();
        self.close_if_done();
    }

    /// A hole inside a body whose end is known without its bytes (a Content-Length body the
    /// hole does not reach the end of, or a close-delimited one): the message goes on after the
    /// hole, short of the hole's bytes, and is marked incomplete when it completes.
    fn carry_message_across_hole(&mut self) -> bool {
        let (Some(hole), Some(msg)) = (self.half.reasm.hole_len(), self.half.msg.as_mut()) else {
            return false;
        };
        let hole = u64::from(hole);
        match self.half.phase {
            Phase::Length(left) if hole < left => self.half.phase = Phase::Length(left - hole),
            Phase::UntilClose => {}
            _ => return false,
        }
        msg.missing_bytes += hole;
        true
    }

    /// Finishes this half at the end of its flow: holes skipped, the message in progress ended.
    fn finish(&mut self, why: DropReason) {
        self.skip_all_holes();
        if self.half.msg.is_some() {
            match self.half.phase {
                Phase::Binary => self.complete(false),
                _ => self.end_incomplete(why),
            }
        }
        self.half.release();
    }

    /// Delivers held segments that the stream has caught up with.
    fn drain(&mut self) {
        while let Some(held) = self.half.reasm.pop_ready() {
            if let Placement::InOrder(skip) = self.half.reasm.place(held.seq, held.data.len()) {
                let meta = ChunkMeta {
                    seq: held.seq.wrapping_add(skip as u32),
                    ts_ns: held.ts_ns,
                    ack: held.ack,
                    len: held.data.len() - skip,
                };
                self.deliver(&held.data[skip..], meta);
            }
        }
    }

    /// Takes in-order bytes: decrypted first on a TLS connection, then framed.
    fn deliver(&mut self, data: &[u8], meta: ChunkMeta) {
        self.half.reasm.advance(data.len());
        if self.conn.tunnel {
            if self.frames() {
                self.ctx.drop_one(DropReason::Tunnel);
            }
            return;
        }
        if std::mem::take(&mut self.half.fresh) && self.conn.tls.is_none() {
            self.begins_tls(data);
        }
        if self.conn.tls.is_some() {
            self.decrypt(data, meta);
        } else {
            self.deliver_plain(data, meta);
        }
    }

    /// Plaintext of a TLS connection: framed like plain bytes, when this side is framed.
    pub(crate) fn deliver_plaintext(&mut self, data: &[u8], meta: ChunkMeta) {
        if self.frames() && !self.half.closed && !self.conn.tunnel {
            self.deliver_plain(data, meta);
        }
    }

    /// Appends in-order plain bytes and frames them.
    #[inline]
    fn deliver_plain(&mut self, data: &[u8], meta: ChunkMeta) {
        if self.conn.h2.is_some() || (self.may_open_h2(data) && self.begins_h2(data, meta)) {
            self.feed_h2(data, meta);
            return;
        }
        if self.half.phase == Phase::Skipping {
            if !self.recognise_plain(data) {
                if self.begins_h2_mid_stream(data, meta.ack) {
                    self.feed_h2(data, meta);
                } else {
                    self.skipped();
                }
                return;
            }
            self.half.phase = Phase::Idle;
            self.half.skip_counted = false;
        }
        if self.half.buffered() + data.len() > self.ctx.half_budget {
            self.out_of_budget(reason::BUFFER_FULL);
            return;
        }
        self.half.append(data);
        self.frame(meta);
        if self.conn.h2.is_some() && !self.half.buf.is_empty() {
            // The framer stopped at a switch to HTTP/2 (`101` to `Upgrade: h2c`).
            let rest = std::mem::take(&mut self.half.buf);
            self.half.pos = 0;
            self.feed_h2(&rest, meta);
        }
    }

    /// A buffer budget (`why`) is exhausted: the message in progress is lost, resync later.
    fn out_of_budget(&mut self, why: DropReason) {
        if self.half.msg.is_some() {
            self.end_incomplete(why);
        } else {
            self.ctx.drop_one(why);
        }
        self.half.release();
        self.half.phase = Phase::Skipping;
        self.half.skip_counted = true;
    }

    pub(crate) fn close_if_done(&mut self) {
        if self.tls_waiting() {
            return;
        }
        let half = &self.half;
        if !half.closed && half.fin_seq.is_some() && half.fin_seq == half.reasm.next_seq {
            self.close_half();
        }
    }

    /// The sender closed (FIN fully received, or RST): close-delimited bodies end here.
    fn close_half(&mut self) {
        self.half.closed = true;
        if self.half.msg.is_some() {
            match self.half.phase {
                Phase::UntilClose | Phase::Binary => {
                    self.half.pos = self.half.buf.len();
                    self.complete(false);
                }
                _ => self.end_incomplete(reason::INCOMPLETE),
            }
        }
        // The position stays known, so retransmissions after the close are told from new data.
        let next_seq = self.half.reasm.next_seq;
        self.half.release();
        self.half.reasm.next_seq = next_seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Conversation, Segment};

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
                    _ => None,
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

        fn recovered(&self) -> Vec<&'static str> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Recovered { kind, .. } => Some(kind.as_str()),
                    _ => None,
                })
                .collect()
        }

        fn drops(&self) -> Vec<(&'static str, u64)> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Dropped { reason, count } => Some((reason.as_str(), *count)),
                    _ => None,
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

    /// An HTTP/2 frame (RFC 9113 §4.1).
    fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags];
        frame.extend(stream.to_be_bytes());
        frame.extend(payload);
        frame
    }

    /// Stream 5's request (`GET /` to example.com, static table and a literal) and its
    /// response (`:status 200`, body `hello`), as frames of a connection already under way.
    fn h2_exchange() -> (Vec<u8>, Vec<u8>) {
        let mut request = h2_frame(1, 0x5, 5, b"\x82\x84\x86\x01\x0bexample.com");
        request.extend(h2_frame(8, 0, 0, &[0, 0, 0x10, 0]));
        let mut response = h2_frame(1, 0x4, 5, b"\x88");
        response.extend(h2_frame(0, 0x1, 5, b"hello"));
        (request, response)
    }

    #[test]
    fn mid_stream_http2_frames_are_decoded() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        let (request, response) = h2_exchange();
        run.push(&conv.client(&request));
        run.push(&conv.server(&response));
        run.finish();
        assert_eq!(
            run.payloads(MessageKind::Request),
            vec![&b"GET / HTTP/2\r\nhost: example.com\r\n\r\n"[..]]
        );
        assert_eq!(
            run.payloads(MessageKind::Response),
            vec![&b"HTTP/2 200\r\ncontent-length: 5\r\n\r\nhello"[..]]
        );
        let ids: Vec<_> = run.messages().iter().map(|m| m.id).collect();
        assert_eq!(ids[0], ids[1]);
        assert!(!run.drops().iter().any(|(why, _)| *why == "garbage"));
    }

    #[test]
    fn frames_after_a_hole_in_http1_stay_garbage() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(GET));
        run.push(&conv.server(OK));
        let _lost = conv.client(b"GET /lost HTTP/1.1\r\n\r\n");
        let (request, _) = h2_exchange();
        run.push(&conv.client(&request));
        run.finish();
        assert_eq!(run.payloads(MessageKind::Request), vec![GET]);
        assert!(run.drops().contains(&("garbage", 1)), "{:?}", run.drops());
    }

    #[test]
    fn text_and_noise_mid_stream_are_not_taken_for_http2() {
        for noise in [
            &b"tail of an earlier body"[..],
            &[0u8; 9][..],
            &[0xff; 40][..],
        ] {
            let mut run = Run::new(config());
            let mut conv = conversation();
            run.push(&conv.client(noise));
            run.push(&conv.client(GET));
            run.push(&conv.server(OK));
            assert_eq!(run.payloads(MessageKind::Request), vec![GET], "{noise:?}");
            assert_eq!(run.drops(), vec![("garbage", 1)], "{noise:?}");
        }
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
            framing: Framing::Binary,
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

    /// One GET answered by `response` (sent in one segment), then the server closes.
    fn answered_by(response: &[u8], cfg: TrackerConfig) -> Run {
        let mut run = Run::new(cfg);
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(GET));
        run.push(&conv.server(response));
        run.push(&conv.server_fin());
        run.finish();
        run
    }

    #[test]
    fn tolerant_responses_are_delivered_byte_exact_and_counted() {
        let cases: [(&[u8], &str); 12] = [
            (
                b"http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                "lenient-status-line",
            ),
            (
                b"HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok",
                "lenient-status-line",
            ),
            (
                b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
                "lenient-status-line",
            ),
            (
                b"HTTP/1.10 200 OK\r\nContent-Length: 2\r\n\r\nok",
                "version-above-1-1",
            ),
            (
                b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok",
                "version-above-1-1",
            ),
            (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "bare-lf"),
            (b"HTTP/1.1 200 OK\rContent-Length: 2\r\rok", "bare-cr"),
            (
                b"HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 2\r\n\r\nok",
                "nul-in-header",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
                "obs-fold",
            ),
            // read until the close:
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfx\r\nabc",
                "invalid-chunk-size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nf,\r\nx",
                "invalid-chunk-size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\nhello",
                "conflicting-content-length",
            ),
        ];
        for (response, kind) in cases {
            let run = answered_by(response, config());
            let what = String::from_utf8_lossy(response);
            assert_eq!(
                run.payloads(MessageKind::Response),
                vec![response],
                "{what}"
            );
            let requests = run.of_kind(MessageKind::Request);
            assert_eq!(
                run.of_kind(MessageKind::Response)[0].id,
                requests[0].id,
                "{what}"
            );
            assert!(
                run.recovered().contains(&kind),
                "{what}: {:?}",
                run.recovered()
            );
            assert_eq!(run.drops(), vec![], "{what}");
        }
    }

    #[test]
    fn http09_and_leading_junk() {
        let body: &[u8] = b"<html>no status line</html>";
        let run = answered_by(body, config());
        assert_eq!(run.payloads(MessageKind::Response), vec![body]);
        assert_eq!(run.recovered(), vec!["http09"]);
        let requests = run.of_kind(MessageKind::Request);
        assert_eq!(run.of_kind(MessageKind::Response)[0].id, requests[0].id);

        let junk: &[u8] = b"xx\0junk\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let run = answered_by(junk, config());
        assert_eq!(run.payloads(MessageKind::Response), vec![&junk[9..]]);
        assert_eq!(run.recovered(), vec!["leading-junk"]);
        assert_eq!(run.drops(), vec![]);
    }

    #[test]
    fn a_hole_in_a_body_is_carried_across_and_marked() {
        for allow_incomplete in [true, false] {
            let mut run = Run::new(TrackerConfig {
                allow_incomplete,
                ..config()
            });
            let mut conv = conversation();
            run.push_all(&conv.handshake());
            run.push(&conv.client(GET));
            run.push(&conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"));
            let _lost = conv.server(b"def");
            run.push(&conv.server(b"ghi"));
            run.push(&conv.client(b"GET /next HTTP/1.1\r\n\r\n"));
            run.push(&conv.server(b"HTTP/1.1 204 No Content\r\n\r\n"));
            run.advance(3_000_000_000);
            run.expire();
            let responses = run.of_kind(MessageKind::Response);
            let requests = run.of_kind(MessageKind::Request);
            if allow_incomplete {
                assert_eq!(responses.len(), 2);
                assert_eq!(
                    &responses[0].payload[..],
                    b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabcghi"
                );
                assert!(responses[0].incomplete);
                assert_eq!(responses[0].missing_bytes, 3);
                assert_eq!(run.recovered(), vec!["hole-in-body"]);
            } else {
                assert_eq!(responses.len(), 1);
                assert_eq!(run.drops(), vec![("incomplete", 1)]);
            }
            let last = responses.last().unwrap();
            assert_eq!(
                last.id, requests[1].id,
                "the 204 answers the second request"
            );
            assert!(!last.incomplete);
        }
    }

    #[test]
    fn pairing_resumes_with_the_right_request_after_a_gap_swallows_a_response() {
        let mut run = Run::new(config());
        let mut conv = conversation();
        run.push_all(&conv.handshake());
        run.push(&conv.client(b"GET /1 HTTP/1.1\r\n\r\n"));
        run.push(&conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"));
        run.push(&conv.client(b"GET /2 HTTP/1.1\r\n\r\n"));
        let _lost = conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2");
        run.push(&conv.client(b"GET /3 HTTP/1.1\r\n\r\n"));
        run.push(&conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3"));
        run.advance(3_000_000_000);
        run.expire();
        let requests = run.of_kind(MessageKind::Request);
        let responses = run.of_kind(MessageKind::Response);
        assert_eq!(requests.len(), 3);
        assert_eq!(responses.len(), 2);
        assert_eq!(responses[0].id, requests[0].id);
        assert_eq!(
            responses[1].id, requests[2].id,
            "not the second request's id"
        );
        assert!(responses[1].payload.ends_with(b"3"));
        assert_eq!(run.recovered(), vec!["pairing-after-gap"]);
    }
}
