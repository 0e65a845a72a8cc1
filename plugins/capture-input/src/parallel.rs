//! One capture file read by several workers, with the output of one.
//!
//! * The **reader** (a thread of its own) reads the frames, applies the BPF filter, hashes
//!   each frame's connection ([`shard`](crate::shard)) and appends it to that worker's share
//!   of the current round: for a mapped classic pcap just its offset in the shared map, else a
//!   copy of its bytes. It keeps the expiry schedule on the frames' clock for all workers (one
//!   worker expires after a frame when the clock has moved on enough; so does every sharded
//!   worker, at the same frame) and appends each expiry check to every worker's share. Every
//!   [`ROUND_FRAMES`] frames it sends each worker its share (an idle worker gets an empty
//!   one) with the round's watermark, over bounded channels.
//! * Each **worker** thread owns a [`Worker`] (its own flow table) and tags what it emits with
//!   a [`Key`]: the frame's number, or for what an expiry check or the end of input finishes,
//!   the number of the last frame that touched the message's flow (the flow table's order).
//! * The input's own thread **merges** the workers' lists in key order
//!   ([`OrderedMerge`]) and hands the messages to the engine, so that they arrive exactly as
//!   from one worker. Counters are shared atomics, so the ledger is the one of one worker.
//!
//! Each worker has the full `--input-raw-max-flows` and `--input-raw-max-buffer` budgets, as
//! each live-capture worker does; the output equals one worker's while neither is exhausted.

use crate::file_input::Filters;
use crate::file_reader::CaptureFile;
use crate::merge::{Key, OrderedMerge};
use crate::shard::{endpoints_hash, frame_shard, packet_hash};
use crate::worker::{Delivery, ExpirySchedule, Outbox, Worker};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use shadowtap_api::{Counters, InputContext, Message, Reason};
use shadowtap_capture::{DecodeError, Framing, Packet, TrackerConfig};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

/// Frames per round (over all workers): the merge releases messages once per round.
const ROUND_FRAMES: usize = 4096;
/// Bytes copied per round (streamed files), at most.
const ROUND_BYTES: usize = 8 << 20;
/// Rounds queued per worker, and reports per worker queued for the merge.
const QUEUED_ROUNDS: usize = 4;
/// What a share's and a report's list reserve: room for a round's frames and as many
/// expiry checks or messages (only what is filled is ever touched), so that a list never
/// grows: growing moves it to fresh pages, which the kernel zeroes.
const LIST_CAPACITY: usize = 2 * ROUND_FRAMES;

/// One worker's share of a round: frames and expiry checks, in the reader's order.
#[derive(Default)]
struct Share {
    items: Vec<Item>,
    /// Frame bytes copied from a streamed file (empty for a mapped one).
    bytes: Vec<u8>,
    /// After this share the worker has handled everything up to here.
    through: Key,
}

impl Share {
    fn new() -> Self {
        Share {
            items: Vec::with_capacity(LIST_CAPACITY),
            ..Share::default()
        }
    }
}

impl Default for Key {
    fn default() -> Self {
        Key::frame(0)
    }
}

#[derive(Clone, Copy)]
enum Item {
    Frame {
        number: u64,
        ts_ns: i64,
        linktype: u32,
        wire_len: usize,
        start: usize,
        len: usize,
    },
    Expire {
        after: u64,
        now_ns: i64,
    },
}

/// What a worker sends the merge after each share.
struct Report {
    items: Vec<(Key, Message)>,
    through: Key,
    last: bool,
}

/// What the threads share.
pub(crate) struct Setup<'a> {
    pub path: &'a Path,
    pub tracker: &'a TrackerConfig,
    pub workers: usize,
}

/// Reads `capture` with `setup.workers` workers, handing the merged messages to `cx`.
pub(crate) fn read_sharded(
    setup: Setup<'_>,
    capture: CaptureFile,
    filters: Filters,
    cx: &mut InputContext,
) {
    let workers = setup.workers.max(1);
    let counters = cx.counters().clone();
    let stop = AtomicBool::new(false);
    // the map outlives every thread (they borrow it; the reader's handle is moved away)
    let map = capture.mapped().cloned();
    let mapped: Option<&[u8]> = map.as_deref().map(|m| &m[..]);
    let warned = Mutex::new(Vec::new());
    let label = std::thread::current()
        .name()
        .unwrap_or("input-pcap")
        .to_string();
    let mut shares_tx = Vec::new();
    let mut reports_rx = Vec::new();
    // buffers go back to where they are filled, so that the steady state allocates nothing
    // (fresh pages cost a page fault and a zeroing each)
    let (spare_tx, spare_rx) = unbounded::<Share>();
    let mut lists_tx = Vec::new();
    std::thread::scope(|scope| {
        for index in 0..workers {
            let (share_tx, share_rx) = bounded::<Share>(QUEUED_ROUNDS);
            let (report_tx, report_rx) = bounded::<Report>(QUEUED_ROUNDS);
            // room for every list in flight: the worker's, its queued reports', the merge's
            let (list_tx, list_rx) = bounded::<Vec<(Key, Message)>>(QUEUED_ROUNDS + 2);
            shares_tx.push(share_tx);
            reports_rx.push(report_rx);
            lists_tx.push(list_tx);
            let spare_tx = spare_tx.clone();
            let worker = Worker::new(setup.tracker.clone(), counters.clone(), Delivery::Wait);
            let tagger = Tagger::new(setup.tracker);
            let (warned, path) = (&warned, setup.path);
            std::thread::Builder::new()
                .name(format!("{label}#{index}"))
                .spawn_scoped(scope, move || {
                    let channels = WorkerChannels {
                        shares: share_rx,
                        reports: report_tx,
                        spare_shares: spare_tx,
                        spare_lists: list_rx,
                    };
                    work(worker, tagger, mapped, channels, |linktype| {
                        warn_unsupported(warned, path, linktype)
                    })
                })
                .expect("spawn a capture worker");
        }
        let reader = {
            let (stop, counters) = (&stop, &counters);
            let path = setup.path;
            std::thread::Builder::new()
                .name(format!("{label}-reader"))
                .spawn_scoped(scope, move || {
                    let mut capture = capture;
                    let mut filters = filters;
                    read(
                        &mut capture,
                        mapped,
                        &mut filters,
                        (shares_tx, spare_rx),
                        stop,
                        counters,
                        path,
                    )
                })
                .expect("spawn the capture reader")
        };
        drop(spare_tx);
        merge(&reports_rx, &lists_tx, &stop, cx);
        drop(reports_rx);
        let _ = reader.join();
    });
    let _ = cx.flush();
}

/// Logs an unsupported link type once per file.
fn warn_unsupported(warned: &Mutex<Vec<u32>>, path: &Path, linktype: u32) {
    let mut warned = warned.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.contains(&linktype) {
        warned.push(linktype);
        tracing::warn!(
            "{}: link type {linktype} is not supported; its packets are skipped",
            path.display()
        );
    }
}

/// The reader: frames to shares, shares to workers.
fn read(
    capture: &mut CaptureFile,
    map: Option<&[u8]>,
    filters: &mut Filters,
    (senders, spares): (Vec<Sender<Share>>, Receiver<Share>),
    stop: &AtomicBool,
    counters: &Counters,
    path: &Path,
) {
    let workers = senders.len();
    let mut shares: Vec<Share> = (0..workers).map(|_| Share::new()).collect();
    let mut schedule = ExpirySchedule::default();
    let mut filtered = None;
    let mut number = 0u64;
    let mut in_round = 0usize;
    let mut copied = 0usize;
    let mut through = Key::frame(0);
    let base = map.map_or(0, |m| m.as_ptr() as usize);
    let send = |shares: &mut Vec<Share>, through: Key| -> bool {
        for (share, sender) in shares.iter_mut().zip(&senders) {
            let fresh = spares.try_recv().unwrap_or_else(|_| Share::new());
            let mut full = std::mem::replace(share, fresh);
            full.through = through;
            if sender.send(full).is_err() {
                return false;
            }
        }
        true
    };
    while !stop.load(Relaxed) {
        number += 1;
        let frame = match capture.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(
                    "{}: packet {number}: {e}; the rest of the file is unreadable",
                    path.display()
                );
                counters.add_refused(Reason::FormatError, 1);
                break;
            }
        };
        if !filters.pass(frame.linktype, frame.data, path) {
            filtered
                .get_or_insert_with(|| counters.extra("packets filtered by bpf"))
                .fetch_add(1, Relaxed);
            continue;
        }
        let shard = frame_shard(frame.linktype, frame.data, frame.wire_len, workers);
        let share = &mut shares[shard];
        let start = match map {
            Some(_) => frame.data.as_ptr() as usize - base,
            None => {
                copied += frame.data.len();
                share.bytes.extend_from_slice(frame.data);
                share.bytes.len() - frame.data.len()
            }
        };
        share.items.push(Item::Frame {
            number,
            ts_ns: frame.ts_ns,
            linktype: frame.linktype,
            wire_len: frame.wire_len,
            start,
            len: frame.data.len(),
        });
        let expired = schedule.due(frame.ts_ns);
        if expired {
            let now_ns = frame.ts_ns;
            for share in &mut shares {
                share.items.push(Item::Expire {
                    after: number,
                    now_ns,
                });
            }
        }
        through = Key::through(number, expired);
        in_round += 1;
        if in_round >= ROUND_FRAMES || copied >= ROUND_BYTES {
            if !send(&mut shares, through) {
                return;
            }
            in_round = 0;
            copied = 0;
        }
    }
    send(&mut shares, through);
}

/// A worker's channels.
struct WorkerChannels {
    shares: Receiver<Share>,
    reports: Sender<Report>,
    /// Handled shares, back to the reader.
    spare_shares: Sender<Share>,
    /// Emptied report lists, back from the merge.
    spare_lists: Receiver<Vec<(Key, Message)>>,
}

/// A worker thread: shares in, tagged messages out, and at the end what is still pending.
fn work(
    mut worker: Worker,
    mut tagger: Tagger,
    map: Option<&[u8]>,
    channels: WorkerChannels,
    unsupported: impl Fn(u32),
) {
    let mut warned = Vec::new();
    let WorkerChannels {
        shares,
        reports,
        spare_shares,
        spare_lists,
    } = channels;
    for mut share in shares {
        for item in &share.items {
            match *item {
                Item::Frame {
                    number,
                    ts_ns,
                    linktype,
                    wire_len,
                    start,
                    len,
                } => {
                    let data = match map {
                        Some(map) => &map[start..start + len],
                        None => &share.bytes[start..start + len],
                    };
                    tagger.key = Key::frame(number);
                    match worker.push_frame(linktype, data, wire_len, ts_ns, &mut tagger) {
                        Ok(packet) => tagger.touched(&packet, number, ts_ns),
                        Err(DecodeError::UnsupportedLinkType(linktype)) => {
                            if !warned.contains(&linktype) {
                                warned.push(linktype);
                                unsupported(linktype);
                            }
                        }
                        Err(_) => {}
                    }
                }
                Item::Expire { after, now_ns } => {
                    tagger.key = Key::expiry(after, 0);
                    worker.expire(now_ns, &mut tagger);
                    tagger.forget_idle(now_ns);
                }
            }
        }
        let list = spare_lists
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(LIST_CAPACITY));
        let report = Report {
            items: std::mem::replace(&mut tagger.items, list),
            through: share.through,
            last: false,
        };
        if reports.send(report).is_err() {
            return;
        }
        share.items.clear();
        share.bytes.clear();
        let _ = spare_shares.send(share);
    }
    tagger.key = Key::end(0);
    worker.finish_into(&mut tagger);
    let _ = reports.send(Report {
        items: std::mem::take(&mut tagger.items),
        through: Key::MAX,
        last: true,
    });
}

/// The input's thread: reports in, messages to the engine in the single-worker order.
fn merge(
    reports: &[Receiver<Report>],
    spare_lists: &[Sender<Vec<(Key, Message)>>],
    stop: &AtomicBool,
    cx: &mut InputContext,
) {
    let mut merge = OrderedMerge::new(reports.len());
    let mut stopped = false;
    while let Some(worker) = merge.lagging() {
        match reports[worker].recv() {
            Ok(mut report) => {
                merge.report(worker, report.items.drain(..), report.through);
                if report.last {
                    merge.finished(worker);
                }
                let _ = spare_lists[worker].try_send(report.items);
            }
            // the worker panicked (the panic is reported when the scope ends)
            Err(_) => merge.finished(worker),
        }
        merge.release(&mut |msg| {
            if cx.push(msg).is_err() {
                stopped = true;
            }
        });
        if stopped || cx.is_stopping() {
            stop.store(true, Relaxed);
        }
    }
}

/// A worker's [`Outbox`]: tags each message with its [`Key`], and remembers the last frame
/// that touched each flow (what orders the flow table, and so expiry).
struct Tagger {
    key: Key,
    items: Vec<(Key, Message)>,
    /// Flow hash → (number, time) of the last frame that touched it; `None` when nothing
    /// is ever expired (header-only tracking).
    touched: Option<HashMap<u64, (u64, i64), BuildHasherDefault<Prehashed>>>,
    rules: TouchRules,
}

/// Which segments move a flow in the tracker's table (mirrors the tracker: segments without
/// data or SYN/FIN/RST never do; without response tracking, a server's data segment only
/// does when it may open a tunnel).
#[derive(Clone)]
struct TouchRules {
    ports: Vec<u16>,
    skips_server_data: bool,
    expire_ns: i64,
}

impl Tagger {
    fn new(config: &TrackerConfig) -> Self {
        let headers_only = config.framing == Framing::HttpHeaders;
        Tagger {
            key: Key::default(),
            items: Vec::with_capacity(LIST_CAPACITY),
            touched: (!headers_only).then(HashMap::default),
            rules: TouchRules {
                ports: config.ports.clone(),
                skips_server_data: !config.track_responses
                    && config.framing != Framing::Binary
                    && !config.ports.is_empty(),
                expire_ns: config.expire_ns,
            },
        }
    }

    fn touched(&mut self, packet: &Packet<'_>, number: u64, ts_ns: i64) {
        let Some(touched) = &mut self.touched else {
            return;
        };
        if self.rules.touches(packet) {
            touched.insert(packet_hash(packet), (number, ts_ns));
        }
    }

    /// After an expiry check at `now_ns`: flows idle that long are gone from the tracker.
    fn forget_idle(&mut self, now_ns: i64) {
        let expire_ns = self.rules.expire_ns;
        if let Some(touched) = &mut self.touched {
            touched.retain(|_, (_, last_ns)| last_ns.saturating_add(expire_ns) > now_ns);
        }
    }
}

impl TouchRules {
    fn touches(&self, packet: &Packet<'_>) -> bool {
        let flags = packet.flags;
        let control = flags.syn() || flags.fin() || flags.rst();
        if packet.payload.is_empty() {
            return control;
        }
        if !self.skips_server_data || control {
            return true;
        }
        let from_server =
            self.ports.contains(&packet.src_port) && !self.ports.contains(&packet.dst_port);
        !from_server || opens_tunnel(packet.payload)
    }
}

/// A `101` status line (which the tracker follows even without response tracking).
fn opens_tunnel(payload: &[u8]) -> bool {
    payload.len() >= 12 && payload.starts_with(b"HTTP/1.") && &payload[8..12] == b" 101"
}

impl Outbox for Tagger {
    fn put(&mut self, msg: Message, _: Delivery) -> bool {
        let mut key = self.key;
        if key.phase == crate::merge::Phase::Expiry {
            key.flow = msg
                .endpoints
                .zip(self.touched.as_ref())
                .and_then(|(ends, touched)| touched.get(&endpoints_hash(ends.src, ends.dst)))
                .map_or(0, |&(number, _)| number);
        }
        self.items.push((key, msg));
        true
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use crate::file_input::FileInput;
    use shadowtap_api::{testkit, Backpressure, InputSpec, Message};
    use shadowtap_capture::testutil::{write_pcap, Conversation, Segment};
    use shadowtap_capture::TrackerConfig;
    use std::path::{Path, PathBuf};

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    /// One connection's segments: keep-alive exchanges (pipelined, chunked, close-delimited,
    /// cut by a hole or left unfinished), with a few segments swapped.
    fn connection(rng: &mut Rng, i: usize) -> Vec<Segment> {
        let client = format!(
            "10.{}.{}.{}:{}",
            1 + i % 3,
            i / 250 % 250,
            1 + i % 250,
            20000 + i
        );
        let mut talk = Conversation::new(&client, "10.0.0.1:80");
        let mut segments = talk.handshake();
        let exchanges = 1 + rng.below(5);
        for n in 0..exchanges {
            match rng.below(5) {
                0 => {
                    // two pipelined requests in one segment
                    segments.push(
                        talk.client(
                            format!(
                                "GET /a/{i}/{n} HTTP/1.1\r\n\r\nGET /b/{i}/{n} HTTP/1.1\r\n\r\n"
                            )
                            .as_bytes(),
                        ),
                    );
                    segments.push(talk.server(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"));
                    segments.push(talk.server(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"));
                }
                1 => {
                    segments.push(talk.client(
                        format!("POST /p/{i} HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel").as_bytes(),
                    ));
                    segments.push(talk.client(b"lo"));
                    segments.push(talk.server(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                    ));
                    segments.push(talk.server(b"0\r\n\r\n"));
                }
                2 => {
                    // a hole in the request: completed (incomplete) only by expiry
                    segments.push(talk.client(
                        format!("POST /h/{i} HTTP/1.1\r\nContent-Length: 6\r\n\r\nab").as_bytes(),
                    ));
                    let _lost = talk.client(b"cd");
                    segments.push(talk.client(b"ef"));
                    return segments;
                }
                3 => {
                    // unfinished response: finished at expiry or at the end
                    segments.push(talk.client(format!("GET /u/{i} HTTP/1.1\r\n\r\n").as_bytes()));
                    segments.push(talk.server(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"));
                    return segments;
                }
                _ => {
                    segments.push(talk.client(format!("GET /c/{i} HTTP/1.0\r\n\r\n").as_bytes()));
                    segments.push(talk.server(b"HTTP/1.0 200 OK\r\n\r\nclose-delimited"));
                    segments.push(talk.server_fin());
                    segments.push(talk.client_fin());
                    return segments;
                }
            }
        }
        if rng.below(3) == 0 {
            let at = 3 + rng.below(segments.len() - 3);
            if at + 1 < segments.len() {
                segments.swap(at, at + 1);
            }
        }
        segments.push(talk.client_fin());
        segments
    }

    /// Connections interleaved over a few seconds of capture time.
    fn capture(dir: &Path, connections: usize) -> PathBuf {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut flows: Vec<(i64, std::vec::IntoIter<Segment>)> = (0..connections)
            .map(|i| {
                let start = (i as i64) * 3_000_000;
                (start, connection(&mut rng, i).into_iter())
            })
            .collect();
        let mut frames = Vec::new();
        let mut clock = 0i64;
        while !flows.is_empty() {
            let window = flows.len().min(40);
            let pick = rng.below(window);
            let (start, segments) = &mut flows[pick];
            clock = clock.max(*start) + 1_000 * rng.below(2000) as i64;
            match segments.next() {
                Some(segment) => {
                    frames.push((1_700_000_000_000_000_000 + clock, segment.ethernet()))
                }
                None => {
                    flows.swap_remove(pick);
                }
            }
        }
        let path = dir.join("many.pcap");
        std::fs::write(&path, write_pcap(1, &frames)).unwrap();
        path
    }

    fn run(path: &Path, workers: usize, config: &TrackerConfig) -> (Vec<Message>, String) {
        let spec = InputSpec {
            label: "input-pcap".into(),
            plugin: Box::new(FileInput {
                path: path.to_path_buf(),
                tracker: config.clone(),
                bpf: None,
                speed: None,
                workers: Some(workers),
            }),
            backpressure: Backpressure::Wait,
            limit: None,
        };
        let (messages, snapshot, result) = testkit::run_input(spec);
        result.unwrap();
        (messages, format!("{snapshot:?}"))
    }

    fn digest(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|m| format!("{:?} {:?} {:?}", m.meta, m.endpoints, m.payload))
            .collect()
    }

    /// The same messages in the same order (else the first difference).
    fn assert_same(one: &[Message], many: &[Message], what: &str) {
        let (one, many) = (digest(one), digest(many));
        if let Some(at) = (0..one.len().max(many.len())).find(|&i| one.get(i) != many.get(i)) {
            panic!(
                "{what}: message {at} of {}/{} differs:\n one worker: {:?}\n sharded:    {:?}",
                one.len(),
                many.len(),
                one.get(at),
                many.get(at)
            );
        }
    }

    #[test]
    fn sharded_reads_emit_what_one_worker_does_in_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = capture(dir.path(), 1500);
        for (ports, track_responses, allow_incomplete) in [
            (vec![80], true, true),
            (vec![80], false, false),
            (vec![], true, false),
        ] {
            let config = TrackerConfig {
                ports,
                track_responses,
                allow_incomplete,
                expire_ns: 150_000_000,
                ..TrackerConfig::default()
            };
            let (one, one_ledger) = run(&path, 1, &config);
            assert!(one.len() > 1500, "{}", one.len());
            for workers in [2, 3, 4] {
                let (many, many_ledger) = run(&path, workers, &config);
                assert_same(&one, &many, &format!("{workers} workers, {config:?}"));
                assert_eq!(one_ledger, many_ledger, "{workers} workers");
            }
        }
    }

    #[test]
    fn gzipped_files_are_copied_to_the_workers_with_the_same_result() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = capture(dir.path(), 300);
        let gz = dir.path().join("many.pcap.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        let config = TrackerConfig {
            ports: vec![80],
            track_responses: true,
            allow_incomplete: true,
            ..TrackerConfig::default()
        };
        let (one, one_ledger) = run(&path, 1, &config);
        let (many, many_ledger) = run(&gz, 3, &config);
        assert_same(&one, &many, "gzip, 3 workers");
        assert_eq!(one_ledger, many_ledger);
    }
}
