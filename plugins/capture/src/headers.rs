//! The header-only fast path (`--input-raw-protocol http-headers`): no reassembly. Every TCP
//! segment whose payload starts with a request or status line becomes a message holding just
//! its header block, cut at the end of the segment when the block spans segments (and marked
//! truncated). Responses still get their request's id: requests are queued per connection and
//! answered in order.
//!
//! Connections are evicted oldest first when the table is full. Closing one (FIN/RST) is O(1)
//! amortised: its place in the eviction order becomes a tombstone (its generation no longer
//! matches), skipped on eviction and compacted once tombstones outnumber live connections.

use crate::decode::Packet;
use crate::tracker::{reason, request_id, Event, HttpMessage, MessageId, MessageKind};
use bytes::Bytes;
use shadowtap_http1::{find_head_end, request_line, status_line, Verdict};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Requests remembered per connection awaiting their response.
const MAX_PENDING_PER_CONNECTION: usize = 64;

/// A request waiting for its response.
struct Pending {
    id: MessageId,
    start_ns: i64,
}

/// Requests awaiting their responses, oldest first. The first is kept inline, so the common
/// connection (one request at a time) allocates nothing.
#[derive(Default)]
struct PendingQueue {
    first: Option<Pending>,
    rest: VecDeque<Pending>,
}

impl PendingQueue {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn front(&self) -> Option<&Pending> {
        self.first.as_ref()
    }

    fn push_back(&mut self, pending: Pending) {
        if self.first.is_none() {
            self.first = Some(pending);
        } else {
            self.rest.push_back(pending);
        }
    }

    fn pop_front(&mut self) -> Option<Pending> {
        let front = self.first.take();
        self.first = self.rest.pop_front();
        front
    }
}

/// What is remembered of one connection.
#[derive(Default)]
struct ConnState {
    queue: PendingQueue,
    /// The Ack part of the last request id, so pipelined requests sharing an Ack stay unique.
    last_word: Option<u32>,
    /// Which entry of the eviction order is this connection's (older ones are tombstones).
    generation: u64,
}

/// One direction-less connection key: (client, server).
type Connection = (SocketAddr, SocketAddr);

/// Header-only tracking of requests and responses.
pub struct HeaderTracker {
    ports: Vec<u16>,
    track_responses: bool,
    max_message_bytes: usize,
    max_flows: usize,
    pending: HashMap<Connection, ConnState>,
    /// Connections oldest first, with the generation they were added at.
    order: VecDeque<(Connection, u64)>,
    /// Entries of `order` whose connection was closed (or re-added since).
    tombstones: usize,
    next_generation: u64,
}

impl HeaderTracker {
    /// A tracker for `ports` (empty: infer direction from start lines).
    pub fn new(
        ports: Vec<u16>,
        track_responses: bool,
        max_message_bytes: usize,
        max_flows: usize,
    ) -> Self {
        HeaderTracker {
            ports,
            track_responses,
            max_message_bytes: max_message_bytes.max(1),
            max_flows: max_flows.max(1),
            pending: HashMap::new(),
            order: VecDeque::new(),
            tombstones: 0,
            next_generation: 0,
        }
    }

    /// Connections with requests awaiting a response.
    pub fn flows(&self) -> usize {
        self.pending.len()
    }

    /// Looks at one segment.
    pub fn push(&mut self, pkt: &Packet<'_>, ts_ns: i64, out: &mut impl FnMut(Event)) {
        let src = SocketAddr::new(pkt.src, pkt.src_port);
        let dst = SocketAddr::new(pkt.dst, pkt.dst_port);
        if pkt.flags.fin() || pkt.flags.rst() {
            self.forget(&(src, dst));
            self.forget(&(dst, src));
        }
        if pkt.payload.is_empty() {
            return;
        }
        let from_client = if self.ports.is_empty() {
            match (request_line(pkt.payload), status_line(pkt.payload)) {
                (Verdict::Yes, _) => true,
                (_, Verdict::Yes) => false,
                _ => return,
            }
        } else if self.ports.contains(&pkt.dst_port) {
            true
        } else if self.ports.contains(&pkt.src_port) {
            false
        } else {
            out(Event::Dropped {
                reason: reason::OUTSIDE_PORTS,
                count: 1,
            });
            return;
        };
        if from_client {
            self.request(pkt, src, dst, ts_ns, out);
        } else {
            self.response(pkt, src, dst, ts_ns, out);
        }
    }

    fn request(
        &mut self,
        pkt: &Packet<'_>,
        client: SocketAddr,
        server: SocketAddr,
        ts_ns: i64,
        out: &mut impl FnMut(Event),
    ) {
        if request_line(pkt.payload) != Verdict::Yes {
            return;
        }
        let state = self.state(client, server);
        let word = match state.last_word {
            Some(last) if pkt.ack.wrapping_sub(last) as i32 <= 0 => last.wrapping_add(1),
            _ => pkt.ack,
        };
        state.last_word = Some(word);
        let id = request_id(client, server.port(), word);
        if state.queue.len() >= MAX_PENDING_PER_CONNECTION {
            state.queue.pop_front();
        }
        state.queue.push_back(Pending {
            id,
            start_ns: ts_ns,
        });
        out(Event::Message(self.message(
            MessageKind::Request,
            id,
            pkt.payload,
            client,
            server,
            ts_ns,
            0,
        )));
    }

    fn response(
        &mut self,
        pkt: &Packet<'_>,
        server: SocketAddr,
        client: SocketAddr,
        ts_ns: i64,
        out: &mut impl FnMut(Event),
    ) {
        if status_line(pkt.payload) != Verdict::Yes {
            return;
        }
        let interim = pkt.payload.get(9) == Some(&b'1');
        let key = (client, server);
        let answered = match self.pending.get_mut(&key) {
            Some(state) if interim => state.queue.front().map(|p| (p.id, p.start_ns)),
            Some(state) => state.queue.pop_front().map(|p| (p.id, p.start_ns)),
            None => None,
        };

        if !self.track_responses {
            return;
        }
        let (id, latency) = match answered {
            Some((id, start_ns)) => (id, ts_ns - start_ns),
            None => (request_id(client, server.port(), pkt.seq), 0),
        };
        out(Event::Message(self.message(
            MessageKind::Response,
            id,
            pkt.payload,
            server,
            client,
            ts_ns,
            latency,
        )));
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        kind: MessageKind,
        id: MessageId,
        payload: &[u8],
        src: SocketAddr,
        dst: SocketAddr,
        ts_ns: i64,
        latency_ns: i64,
    ) -> HttpMessage {
        let (head, complete) = match find_head_end(payload, 0) {
            Ok(end) => (&payload[..end], true),
            Err(_) => (payload, false),
        };
        let kept = &head[..head.len().min(self.max_message_bytes)];
        HttpMessage {
            kind,
            id,
            start_ns: ts_ns,
            end_ns: ts_ns,
            latency_ns,
            src,
            dst,
            payload: Bytes::copy_from_slice(kept),
            truncated: !complete || kept.len() < head.len(),
            incomplete: false,
            missing_bytes: 0,
            tls: None,
            h2: None,
        }
    }

    fn state(&mut self, client: SocketAddr, server: SocketAddr) -> &mut ConnState {
        let key = (client, server);
        if !self.pending.contains_key(&key) {
            while self.pending.len() >= self.max_flows && self.evict_oldest() {}
            let generation = self.next_generation;
            self.next_generation += 1;
            self.order.push_back((key, generation));
            self.pending.insert(
                key,
                ConnState {
                    generation,
                    ..ConnState::default()
                },
            );
        }
        self.pending.entry(key).or_default()
    }

    /// Whether `order`'s entry still stands for a live connection.
    fn is_live(&self, (key, generation): &(Connection, u64)) -> bool {
        self.pending
            .get(key)
            .is_some_and(|state| state.generation == *generation)
    }

    /// Forgets the oldest live connection; `false` when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some(entry) = self.order.pop_front() {
            if self.is_live(&entry) {
                self.pending.remove(&entry.0);
                return true;
            }
            self.tombstones -= 1;
        }
        false
    }

    fn forget(&mut self, key: &Connection) {
        if self.pending.remove(key).is_some() {
            self.tombstones += 1;
            if self.tombstones > self.pending.len() {
                self.compact();
            }
        }
    }

    /// Drops the tombstones from the eviction order (O(live + tombstones), once per as many
    /// closes as there are tombstones).
    fn compact(&mut self) {
        let order = std::mem::take(&mut self.order);
        self.order = order.into_iter().filter(|e| self.is_live(e)).collect();
        self.tombstones = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Conversation;

    fn run(tracker: &mut HeaderTracker, segments: &[crate::testutil::Segment]) -> Vec<HttpMessage> {
        let mut out = Vec::new();
        for (i, s) in segments.iter().enumerate() {
            tracker.push(&s.packet(), i as i64 * 1000, &mut |e| {
                if let Event::Message(m) = e {
                    out.push(m);
                }
            });
        }
        out
    }

    #[test]
    fn header_blocks_paired_fifo() {
        let mut talk = Conversation::new("10.0.0.1:40000", "10.0.0.2:80");
        let segments = vec![
            talk.client(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
            talk.client(b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            talk.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            talk.server(b"HTTP/1.1 201 Created\r\nContent-Le"),
        ];
        let mut tracker = HeaderTracker::new(vec![80], true, 1 << 20, 10);
        let messages = run(&mut tracker, &segments);
        assert_eq!(messages.len(), 4);
        assert_eq!(
            &messages[1].payload[..],
            b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
        );
        assert_eq!(messages[2].id, messages[0].id);
        assert_eq!(messages[3].id, messages[1].id);
        assert_ne!(messages[0].id, messages[1].id);
        assert!(messages[3].truncated);
        assert!(!messages[2].truncated);
        assert_eq!(messages[2].latency_ns, 2000);
    }

    #[test]
    fn continuation_segments_and_other_ports_are_skipped() {
        let mut talk = Conversation::new("10.0.0.1:40000", "10.0.0.2:80");
        let segments = vec![talk.client(b"body bytes that are not a start line")];
        let mut tracker = HeaderTracker::new(vec![80], true, 1 << 20, 10);
        assert!(run(&mut tracker, &segments).is_empty());
        let mut other = Conversation::new("10.0.0.1:40000", "10.0.0.2:8080");
        let mut dropped = 0;
        tracker.push(
            &other.client(b"GET / HTTP/1.1\r\n\r\n").packet(),
            0,
            &mut |e| {
                if let Event::Dropped { count, .. } = e {
                    dropped += count;
                }
            },
        );
        assert_eq!(dropped, 1);
    }

    #[test]
    fn direction_is_inferred_without_ports() {
        let mut talk = Conversation::new("10.0.0.1:40000", "10.0.0.2:8000");
        let segments = vec![
            talk.client(b"GET / HTTP/1.0\r\n\r\n"),
            talk.server(b"HTTP/1.0 204 No Content\r\n\r\n"),
        ];
        let mut tracker = HeaderTracker::new(vec![], true, 1 << 20, 10);
        let messages = run(&mut tracker, &segments);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].id, messages[1].id);
        assert_eq!(messages[1].kind, MessageKind::Response);
    }

    fn request_from(tracker: &mut HeaderTracker, port: u16) {
        let mut talk = Conversation::new(&format!("10.0.0.1:{port}"), "10.0.0.2:80");
        run(tracker, &[talk.client(b"GET / HTTP/1.1\r\n\r\n")]);
    }

    fn close(tracker: &mut HeaderTracker, port: u16) {
        let mut talk = Conversation::new(&format!("10.0.0.1:{port}"), "10.0.0.2:80");
        run(tracker, &[talk.client_fin()]);
    }

    fn tracked(tracker: &HeaderTracker, port: u16) -> bool {
        let client: SocketAddr = format!("10.0.0.1:{port}").parse().unwrap();
        let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
        tracker.pending.contains_key(&(client, server))
    }

    #[test]
    fn eviction_skips_closed_connections_and_keeps_oldest_first_order() {
        let mut tracker = HeaderTracker::new(vec![80], true, 1 << 20, 3);
        for port in [1, 2, 3] {
            request_from(&mut tracker, port);
        }
        close(&mut tracker, 1);
        // Port 2 closes and comes back: it is now the newest, its old place a tombstone.
        close(&mut tracker, 2);
        request_from(&mut tracker, 2);
        request_from(&mut tracker, 4);
        assert_eq!(tracker.flows(), 3);
        request_from(&mut tracker, 5);
        assert!(
            !tracked(&tracker, 3),
            "the oldest live connection is evicted"
        );
        assert!([2, 4, 5].iter().all(|&p| tracked(&tracker, p)));
        request_from(&mut tracker, 6);
        assert!(!tracked(&tracker, 2));
        assert!([4, 5, 6].iter().all(|&p| tracked(&tracker, p)));
    }

    #[test]
    fn closed_connections_leave_a_bounded_eviction_order() {
        let mut tracker = HeaderTracker::new(vec![80], true, 1 << 20, 100_000);
        request_from(&mut tracker, 1);
        for port in 2..20_000 {
            request_from(&mut tracker, port);
            close(&mut tracker, port);
            assert!(tracker.order.len() <= 2 * tracker.flows() + 1);
        }
        assert_eq!(tracker.flows(), 1);
        assert!(tracked(&tracker, 1));
    }
}
