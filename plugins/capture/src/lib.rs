//! `shadowtap-capture`: the capture core of shadowtap, a pure library with no I/O.
//!
//! It turns captured frames into complete HTTP/1.x requests and responses:
//!
//! 1. [`decode()`] borrows a frame of any common pcap link type (Ethernet with VLAN/QinQ tags
//!    and PPPoE, Linux cooked v1/v2, BSD loopback, raw IP, PPP_ETHER, Cisco HDLC), unwraps
//!    VXLAN and GENEVE tunnels in place, and yields a zero-copy TCP [`Packet`].
//! 2. [`Tracker`] reassembles each direction of each connection **by sequence number** (GoReplay
//!    groups segments by their Ack and loses requests that way), frames HTTP/1.x messages
//!    (Content-Length, chunked, close-delimited, HEAD/1xx/204/304, pipelining, 100-continue,
//!    Upgrade), pairs responses with requests FIFO per connection and gives both GoReplay's
//!    24-hex id. Completed messages are emitted at once as [`Event::Message`]; everything that
//!    will never be emitted is reported as [`Event::Dropped`] with a [`reason`].
//! 3. A connection whose client sends the HTTP/2 preface is decoded by [`h2`]: each stream's
//!    request and response become messages in HTTP/1.1 form.
//! 4. With [`TrackerConfig::tls`], connections that are TLS are decrypted with the secrets of a
//!    key log ([`tls`]) and framed as HTTP on their plaintext.
//!
//! ```
//! use shadowtap_capture::{decode, Event, Tracker, TrackerConfig};
//!
//! let mut tracker = Tracker::new(TrackerConfig { ports: vec![80], ..Default::default() });
//! # let frames: Vec<(i64, Vec<u8>)> = Vec::new();
//! let mut messages = Vec::new();
//! for (ts_ns, frame) in &frames {
//!     if let Ok(pkt) = decode(1, frame, frame.len()) {
//!         tracker.push(&pkt, *ts_ns, &mut |event| {
//!             if let Event::Message(m) = event {
//!                 messages.push(m);
//!             }
//!         });
//!     }
//! }
//! tracker.finish(&mut |_| {});
//! ```
#![deny(missing_docs)]

mod config;
mod connection;
pub mod decode;
mod event;
mod flows;
mod fxhash;
pub mod h2;
pub mod headers;
mod http1;
mod ids;
mod pairing;
mod protocol;
mod stream;
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
pub mod tls;
pub mod tracker;

pub use decode::{decode, linktype, DecodeError, Packet, TcpFlags};
pub use headers::HeaderTracker;
pub use stream::DEFAULT_MAX_HELD_SEGMENTS;
pub use tracker::{
    reason, request_id, DropReason, Event, Framing, H2Info, HttpMessage, MessageId, MessageKind,
    Recovery, Tracker, TrackerConfig, TrackerStats,
};

#[cfg(test)]
mod tests {
    use crate::testutil::{fuzz_decode, fuzz_http_framer, read_pcap, Conversation, Segment};
    use crate::{decode, Event, HttpMessage, MessageKind, Tracker, TrackerConfig};

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn random_scripts_keep_tracker_invariants() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let len = rng.below(600);
            fuzz_http_framer(&rng.bytes(len));
            fuzz_decode(&rng.bytes(len / 4));
        }
    }

    fn random_exchange(rng: &mut Rng, i: usize) -> (Vec<u8>, Vec<u8>) {
        let size = rng.below(3000);
        let body = rng.bytes(size);
        let request = match rng.below(3) {
            0 => format!("GET /item/{i} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes(),
            1 => [
                format!(
                    "POST /p/{i} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
                &body,
            ]
            .concat(),
            _ => format!("HEAD /h/{i} HTTP/1.1\r\n\r\n").into_bytes(),
        };
        let head = request.starts_with(b"HEAD");
        let response = if head {
            b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n".to_vec()
        } else if rng.below(2) == 0 {
            [
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
                &body,
            ]
            .concat()
        } else {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for piece in body.chunks(700) {
                r.extend_from_slice(format!("{:x};e=1\r\n", piece.len()).as_bytes());
                r.extend_from_slice(piece);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\nX-T: 1\r\n\r\n");
            r
        };
        (request, response)
    }

    /// Splits into random segments, shuffles them within a small window and duplicates some.
    fn mangle(rng: &mut Rng, segs: Vec<Segment>) -> Vec<Segment> {
        let mut out = segs.clone();
        for i in 0..out.len() {
            let j = (i + rng.below(4)).min(out.len() - 1);
            out.swap(i, j);
        }
        for _ in 0..rng.below(3) {
            let dup = segs[rng.below(segs.len())].clone();
            let at = rng.below(out.len() + 1);
            out.insert(at, dup);
        }
        out
    }

    #[test]
    fn mangled_valid_traffic_is_reassembled_exactly() {
        let mut rng = Rng(42);
        for round in 0..40 {
            let mut conv = Conversation::new("192.168.1.2:51000", "192.168.1.3:80")
                .isn(rng.next() as u32, rng.next() as u32);
            let mut tracker = Tracker::new(TrackerConfig {
                ports: vec![80],
                track_responses: true,
                ..TrackerConfig::default()
            });
            let mut events = Vec::new();
            let mut push = |segs: Vec<Segment>, tracker: &mut Tracker| {
                for s in segs {
                    tracker.push(&s.packet(), 0, &mut |e| events.push(e));
                }
            };
            push(conv.handshake(), &mut tracker);
            let mut expected = Vec::new();
            for i in 0..8 {
                let (request, response) = random_exchange(&mut rng, i);
                let mss = 1 + rng.below(1500);
                let segs = request.chunks(mss).map(|c| conv.client(c)).collect();
                push(mangle(&mut rng, segs), &mut tracker);
                let segs = response.chunks(mss).map(|c| conv.server(c)).collect();
                push(mangle(&mut rng, segs), &mut tracker);
                expected.push((request, response));
            }
            let messages: Vec<HttpMessage> = events
                .into_iter()
                .map(|e| match e {
                    Event::Message(m) => m,
                    other => panic!("round {round}: unexpected {other:?}"),
                })
                .collect();
            let requests: Vec<_> = messages
                .iter()
                .filter(|m| m.kind == MessageKind::Request)
                .collect();
            let responses: Vec<_> = messages
                .iter()
                .filter(|m| m.kind == MessageKind::Response)
                .collect();
            assert_eq!(requests.len(), expected.len(), "round {round}");
            assert_eq!(responses.len(), expected.len(), "round {round}");
            for (i, (request, response)) in expected.iter().enumerate() {
                assert_eq!(&requests[i].payload[..], &request[..], "round {round} #{i}");
                assert_eq!(
                    &responses[i].payload[..],
                    &response[..],
                    "round {round} #{i}"
                );
                assert_eq!(requests[i].id, responses[i].id);
            }
            assert_eq!(tracker.buffered_bytes(), 0);
        }
    }

    /// Every packet of every classic pcap in the shared tcpdump corpus goes through decode and
    /// two trackers without a panic. The corpus is `$SHADOWTAP_CORPUS/tcpdump-tests`, else
    /// `../shared/corpus/tcpdump-tests` beside the repository; missing, the test fails under
    /// `CI=true` and prints SKIPPED elsewhere.
    #[test]
    fn tcpdump_corpus_never_panics() {
        let root = std::env::var_os("SHADOWTAP_CORPUS").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
            std::path::PathBuf::from,
        );
        let dir = root.join("tcpdump-tests");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            let what = format!("no capture corpus at {}", dir.display());
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "prerequisite missing under CI=true: {what} (set SHADOWTAP_CORPUS)"
            );
            println!("SKIPPED: {what} (set SHADOWTAP_CORPUS)");
            return;
        };
        let (mut files, mut packets, mut messages) = (0, 0, 0);
        for entry in entries.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            let Some((linktype, records)) = read_pcap(&bytes) else {
                continue;
            };
            files += 1;
            let configs = [
                TrackerConfig {
                    track_responses: true,
                    allow_incomplete: true,
                    ..TrackerConfig::default()
                },
                TrackerConfig {
                    ports: vec![80, 8080, 443],
                    max_message_bytes: 256,
                    ..TrackerConfig::default()
                },
            ];
            for cfg in configs {
                let mut tracker = Tracker::new(cfg);
                let mut count = |e: Event| {
                    if matches!(e, Event::Message(_)) {
                        messages += 1;
                    }
                };
                for r in &records {
                    if let Ok(pkt) = decode(linktype, r.data, r.orig_len) {
                        packets += 1;
                        tracker.push(&pkt, r.ts_ns, &mut count);
                        tracker.expire(r.ts_ns, &mut count);
                    }
                    let _ = fuzz_decode(r.data);
                }
                tracker.finish(&mut count);
                assert_eq!(tracker.buffered_bytes(), 0);
            }
        }
        eprintln!("corpus: {files} classic pcaps, {packets} TCP packets, {messages} messages");
    }
}
