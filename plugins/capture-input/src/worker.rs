//! A capture worker: frames in, messages out. It decodes each frame, feeds the tracker (full
//! reassembly or the header-only path), expires idle messages on the frames' clock, and hands
//! messages to the engine, counting every packet or message it cannot pass on.

use shadowtap_api::{
    Counters, Endpoints, GrpcFacts, H2Facts, InputContext, Kind, Message, Meta, Reason, TlsFacts,
};
use shadowtap_capture::tls::{cipher_name, version_name, TlsInfo};
use shadowtap_capture::{
    decode, DecodeError, DropReason, Event, Framing, H2Info, HeaderTracker, HttpMessage,
    MessageKind, Packet, Tracker, TrackerConfig,
};
use shadowtap_http1::headers::{self, Place};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// How often (on the frames' clock) idle messages are expired.
pub const EXPIRE_EVERY_NS: i64 = 100_000_000;

/// When idle messages are expired: at the first frame, then at the first frame that is
/// [`EXPIRE_EVERY_NS`] past the last check (on the frames' clock). A worker keeps one; a
/// sharded file read keeps one for all its workers, so that they expire at the same frames
/// as a single worker would.
#[derive(Clone, Copy, Debug)]
pub struct ExpirySchedule {
    next_ns: i64,
}

impl Default for ExpirySchedule {
    fn default() -> Self {
        ExpirySchedule { next_ns: i64::MIN }
    }
}

impl ExpirySchedule {
    /// Whether an expiry check is due at `now_ns`; if so, the next one is scheduled.
    pub fn due(&mut self, now_ns: i64) -> bool {
        if now_ns < self.next_ns {
            return false;
        }
        self.next_ns = now_ns.saturating_add(EXPIRE_EVERY_NS);
        true
    }
}

/// Where a worker's messages go: the engine ([`InputContext`]), or a list of the caller's (a
/// sharded file read merges its workers' lists in frame order before the engine sees them).
pub trait Outbox {
    /// Takes `msg`, as `delivery` says; false once the pipeline no longer accepts messages.
    fn put(&mut self, msg: Message, delivery: Delivery) -> bool;
}

impl Outbox for InputContext {
    fn put(&mut self, msg: Message, delivery: Delivery) -> bool {
        match delivery {
            Delivery::Wait => self.push(msg).is_ok(),
            Delivery::DropWhenFull => {
                self.push_or_drop(msg);
                true
            }
        }
    }
}

/// What to do when the pipeline is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Wait (replayable sources such as files).
    Wait,
    /// Drop and count (live capture must never block).
    DropWhenFull,
}

enum Engine {
    Full(Box<Tracker>),
    Headers(HeaderTracker),
}

/// One capture thread's state.
pub struct Worker {
    engine: Engine,
    outlet: Outlet,
    packets: Arc<AtomicU64>,
    /// Packets not yet added to `packets` (added at each flush and expiry check: an atomic
    /// add per packet would be a tenth of a packet's cost).
    unreported_packets: u64,
    expiry: ExpirySchedule,
}

/// How a worker hands the tracker's events on (apart from the tracker, so that both can be
/// borrowed at once).
struct Outlet {
    counters: Arc<Counters>,
    delivery: Delivery,
    stopped: bool,
    realip_header: Option<String>,
    tls_facts: TlsFactsCache,
}

impl Worker {
    /// A worker with its own flow table.
    pub fn new(config: TrackerConfig, counters: Arc<Counters>, delivery: Delivery) -> Self {
        let engine = if config.framing == Framing::HttpHeaders {
            if config.tls.is_some() {
                tracing::warn!(
                    "--input-raw-protocol http-headers does not reassemble, so TLS is not \
                     decrypted: use --input-raw-protocol http with --input-raw-tls-keylog"
                );
            }
            Engine::Headers(HeaderTracker::new(
                config.ports.clone(),
                config.track_responses,
                config.max_message_bytes,
                config.max_flows,
            ))
        } else {
            Engine::Full(Box::new(Tracker::new(config)))
        };
        Worker {
            engine,
            packets: counters.extra("packets"),
            unreported_packets: 0,
            outlet: Outlet {
                counters,
                delivery,
                stopped: false,
                realip_header: None,
                tls_facts: TlsFactsCache::default(),
            },
            expiry: ExpirySchedule::default(),
        }
    }

    /// A live-capture worker: it never blocks the capture thread (a full pipeline drops and
    /// counts), and with `realip_header` every request carries its source address in it.
    pub fn live(
        config: TrackerConfig,
        counters: Arc<Counters>,
        realip_header: Option<String>,
    ) -> Self {
        let mut worker = Worker::new(config, counters, Delivery::DropWhenFull);
        worker.outlet.realip_header = realip_header;
        worker
    }

    /// True once the pipeline stopped accepting messages.
    pub fn is_stopped(&self) -> bool {
        self.outlet.stopped
    }

    /// Connections being tracked.
    pub fn flows(&self) -> usize {
        match &self.engine {
            Engine::Full(tracker) => tracker.flows(),
            Engine::Headers(tracker) => tracker.flows(),
        }
    }

    /// Processes one captured frame; a frame that is not usable is counted and its decoding
    /// error returned (for the caller's own reporting).
    pub fn frame(
        &mut self,
        linktype: u32,
        data: &[u8],
        wire_len: usize,
        ts_ns: i64,
        cx: &mut InputContext,
    ) -> Result<(), DecodeError> {
        let result = self.push_frame(linktype, data, wire_len, ts_ns, cx);
        self.tick(ts_ns, cx);
        result.map(|_| ())
    }

    /// [`Worker::frame`] without the expiry check, for a caller that keeps the expiry
    /// schedule itself ([`Worker::expire`]); returns the decoded segment.
    pub fn push_frame<'d>(
        &mut self,
        linktype: u32,
        data: &'d [u8],
        wire_len: usize,
        ts_ns: i64,
        out: &mut impl Outbox,
    ) -> Result<Packet<'d>, DecodeError> {
        self.unreported_packets += 1;
        match decode(linktype, data, wire_len) {
            Ok(packet) => {
                let mut sink = Sink {
                    outlet: &mut self.outlet,
                    out,
                };
                match &mut self.engine {
                    Engine::Full(tracker) => tracker.push(&packet, ts_ns, &mut |e| sink.handle(e)),
                    Engine::Headers(tracker) => {
                        tracker.push(&packet, ts_ns, &mut |e| sink.handle(e))
                    }
                }
                Ok(packet)
            }
            Err(error) => {
                self.outlet.counters.add_refused(decode_reason(&error), 1);
                Err(error)
            }
        }
    }

    /// Expires idle messages when `now_ns` (the frames' clock) is past the next check; live
    /// capture calls it while no frames arrive.
    pub fn tick(&mut self, now_ns: i64, cx: &mut InputContext) {
        if self.expiry.due(now_ns) {
            self.expire(now_ns, cx);
        }
    }

    /// Expires messages idle at `now_ns` now (whatever the worker's own schedule says).
    pub fn expire(&mut self, now_ns: i64, out: &mut impl Outbox) {
        self.report_packets();
        if let Engine::Full(tracker) = &mut self.engine {
            let mut sink = Sink {
                outlet: &mut self.outlet,
                out,
            };
            tracker.expire(now_ns, &mut |e| sink.handle(e));
        }
    }

    /// End of input: everything still pending is finished (emitted, or counted incomplete)
    /// and passed on.
    pub fn finish(&mut self, cx: &mut InputContext) {
        self.finish_into(cx);
        self.flush(cx);
    }

    /// [`Worker::finish`] into any [`Outbox`] (nothing is flushed).
    pub fn finish_into(&mut self, out: &mut impl Outbox) {
        if let Engine::Full(tracker) = &mut self.engine {
            let mut sink = Sink {
                outlet: &mut self.outlet,
                out,
            };
            tracker.finish(&mut |e| sink.handle(e));
        }
        self.report_packets();
    }

    /// Passes on the messages batched so far; call it whenever capture pauses (no packets
    /// ready, a pacing sleep), so that no message waits for the next packet.
    pub fn flush(&mut self, cx: &mut InputContext) {
        self.report_packets();
        if cx.flush().is_err() {
            self.outlet.stopped = true;
        }
    }

    fn report_packets(&mut self) {
        if self.unreported_packets > 0 {
            self.packets
                .fetch_add(std::mem::take(&mut self.unreported_packets), Relaxed);
        }
    }
}

/// Where tracker events go.
struct Sink<'a, O: Outbox> {
    outlet: &'a mut Outlet,
    out: &'a mut O,
}

impl<O: Outbox> Sink<'_, O> {
    fn handle(&mut self, event: Event) {
        let outlet = &mut *self.outlet;
        match event {
            Event::Message(message) => {
                if message.truncated {
                    outlet.counters.add_truncated(1);
                }
                let tls = message.tls.clone();
                let mut msg = to_message(message);
                if let Some(info) = tls {
                    msg = msg.with_tls(outlet.tls_facts.of(info));
                }
                if let Some(name) = &outlet.realip_header {
                    set_realip_header(&mut msg, name);
                }
                if !self.out.put(msg, outlet.delivery) {
                    outlet.stopped = true;
                }
            }
            Event::Dropped { reason, count } => {
                outlet.counters.add_refused(ledger_reason(reason), count);
                match reason {
                    DropReason::TlsUnsupportedSuite(suite) => {
                        let figure = format!("tls: unsupported suite 0x{suite:04x}");
                        outlet.counters.extra(&figure).fetch_add(count, Relaxed);
                    }
                    DropReason::Http2(failure) => {
                        outlet
                            .counters
                            .extra(failure.reason())
                            .fetch_add(count, Relaxed);
                    }
                    _ => {}
                }
            }
            Event::Recovered { kind, count } => {
                let figure = format!("recovered: {}", kind.as_str());
                outlet.counters.extra(&figure).fetch_add(count, Relaxed);
            }
        }
    }
}

/// Sets header `name` of a request to the address it came from.
fn set_realip_header(msg: &mut Message, name: &str) {
    if let (Some(ends), Kind::Request) = (&msg.endpoints, msg.kind()) {
        let ip = ends.src.ip().to_string();
        msg.payload = set_header(&msg.payload, name, &ip).into();
    }
}

/// A captured HTTP message as a pipeline message (GoReplay header, payload, addresses).
#[inline]
pub fn to_message(message: HttpMessage) -> Message {
    let kind = match message.kind {
        MessageKind::Request => Kind::Request,
        MessageKind::Response => Kind::Response,
    };
    let meta = Meta::new(
        kind,
        message.id.as_str(),
        message.start_ns,
        message.latency_ns,
    )
    .expect("capture ids are generated hex");
    let meta = if message.incomplete {
        meta.marked_incomplete(message.missing_bytes)
    } else {
        meta
    };
    let msg = Message::new(meta, message.payload).with_endpoints(Endpoints {
        src: message.src,
        dst: message.dst,
    });
    match message.h2 {
        Some(info) => msg.with_h2(Arc::new(h2_facts(*info))),
        None => msg,
    }
}

/// The pipeline's [`H2Facts`] of the tracker's [`H2Info`].
fn h2_facts(info: H2Info) -> H2Facts {
    H2Facts {
        stream_id: info.stream_id,
        hpack_unknown: info.hpack_unknown,
        grpc: info.grpc.map(|grpc| GrpcFacts {
            service: grpc.service,
            method: grpc.method,
            status: grpc.status,
            message_count: grpc.message_count,
            encoding: grpc.encoding,
            compressed_messages: grpc.compressed_messages,
        }),
    }
}

/// The ledger reason for a frame that could not be decoded.
pub fn decode_reason(error: &DecodeError) -> Reason {
    match error {
        DecodeError::NotIp => Reason::NotIp,
        DecodeError::NotTcp => Reason::NotTcp,
        DecodeError::Fragment => Reason::Fragment,
        DecodeError::Truncated => Reason::TruncatedPacket,
        DecodeError::UnsupportedLinkType(_) => Reason::UnsupportedLinkType,
        DecodeError::Format(_) => Reason::FormatError,
    }
}

/// The ledger reason for a tracker drop (exhaustive: a new tracker reason must be mapped).
pub fn ledger_reason(reason: DropReason) -> Reason {
    match reason {
        DropReason::OutsidePorts => Reason::OutsidePorts,
        DropReason::Incomplete => Reason::Incomplete,
        DropReason::FlowTableFull => Reason::FlowTableFull,
        DropReason::Garbage => Reason::NotHttp,
        DropReason::BufferFull => Reason::BufferFull,
        DropReason::AfterReset => Reason::AfterReset,
        DropReason::OutOfWindow => Reason::OutOfWindow,
        DropReason::Tunnel => Reason::Tunnel,
        DropReason::SegmentLimit => Reason::SegmentLimit,
        DropReason::TlsNoKey => Reason::TlsNoKey,
        DropReason::TlsNoHandshake => Reason::TlsNoHandshake,
        DropReason::TlsUnsupportedSuite(_) => Reason::TlsUnsupportedSuite,
        DropReason::TlsDecryptFailed => Reason::TlsDecryptFailed,
        DropReason::TlsLostSegment => Reason::TlsLostSegment,
        DropReason::TlsRenegotiation => Reason::TlsRenegotiation,
        DropReason::TlsMalformed => Reason::TlsMalformed,
        DropReason::TlsBufferFull => Reason::TlsBufferFull,
        DropReason::Http2(_) => Reason::Http2Error,
    }
}

/// The pipeline's [`TlsFacts`] of the tracker's [`TlsInfo`], made once per TLS connection (its
/// messages share one `TlsInfo`, so the last one made is kept).
#[derive(Default)]
struct TlsFactsCache {
    last: Option<(Arc<TlsInfo>, Arc<TlsFacts>)>,
}

impl TlsFactsCache {
    fn of(&mut self, info: Arc<TlsInfo>) -> Arc<TlsFacts> {
        if let Some((seen, facts)) = &self.last {
            if Arc::ptr_eq(seen, &info) {
                return facts.clone();
            }
        }
        let facts = Arc::new(TlsFacts {
            version: version_name(info.version),
            cipher: cipher_name(info.cipher).unwrap_or("unknown"),
            sni: info.sni.as_deref().map(Into::into),
            alpn: info.alpn.as_deref().map(Into::into),
        });
        self.last = Some((info, facts.clone()));
        facts
    }
}

/// `payload` with header `name` set to `value` (the http1 toolkit's byte-exact edit: the first
/// field with that name, any case, gets the value; without one, the field goes right after the
/// start line).
pub fn set_header(payload: &[u8], name: &str, value: &str) -> Vec<u8> {
    let mut edited = payload.to_vec();
    match headers::set(&mut edited, name.as_bytes(), value.as_bytes(), Place::First) {
        Ok(()) => edited,
        Err(_) => payload.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::set_header;

    #[test]
    fn realip_header_is_replaced_or_inserted() {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\nx-real-ip: 9.9.9.9\r\n\r\nbody";
        assert_eq!(
            set_header(request, "X-Real-IP", "1.2.3.4"),
            b"GET / HTTP/1.1\r\nHost: a\r\nx-real-ip: 1.2.3.4\r\n\r\nbody".to_vec()
        );
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            set_header(request, "X-Real-IP", "1.2.3.4"),
            b"GET / HTTP/1.1\r\nX-Real-IP: 1.2.3.4\r\nHost: a\r\n\r\n".to_vec()
        );
    }
}
