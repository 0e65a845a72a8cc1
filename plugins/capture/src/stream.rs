//! Per-direction TCP reassembly by sequence number (u32 serial arithmetic, so wrap-around is
//! transparent).
//!
//! Overlap policy: **first delivered bytes win.** Bytes already delivered in order are never
//! rewritten; a retransmission that overlaps them only contributes its bytes beyond `next_seq`.
//! Among held (out-of-order) segments, a segment fully covered by one held earlier with the same
//! start is dropped; otherwise segments are drained in sequence order and each one is trimmed
//! against what has been delivered by then, so the lower-starting (or, at equal starts, the
//! earlier-received) segment wins.
//!
//! Cost: held segments live in a `BTreeMap` keyed by their offset from a base sequence number,
//! and their capture times in a counted `BTreeMap`, so holding, draining and finding the oldest
//! held segment are O(log n) however the segments arrive. At most `max_segments` (the caller's
//! cap, [`DEFAULT_MAX_HELD_SEGMENTS`] by default) are held per direction.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};

/// Default cap on out-of-order segments held per direction of a connection
/// (`--input-raw-max-held-segments`).
pub const DEFAULT_MAX_HELD_SEGMENTS: usize = 65_536;

/// Keys stay below 2^32 as long as `next_seq` is less than this far past `base`: a held segment
/// starts less than 2^31 after `next_seq`, so its key is below 2^31 + REBASE_AFTER.
const REBASE_AFTER: u32 = 1 << 30;

/// Where a segment falls relative to the next expected byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Starts at or before the next expected byte: deliver it after skipping this many bytes.
    InOrder(usize),
    /// Entirely before the next expected byte (a retransmission).
    Old,
    /// Starts after the next expected byte: there is a hole before it.
    Future,
}

/// What became of a segment offered to [`Reassembler::hold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Held until the hole before it fills.
    Held,
    /// Covered by a segment already held at the same start: dropped (nothing is lost).
    Duplicate,
    /// Refused: the direction already holds the maximum number of segments.
    SegmentLimit,
}

/// An out-of-order segment waiting for the hole before it to fill.
#[derive(Debug)]
pub(crate) struct Held {
    /// Sequence number of `data[0]`.
    pub seq: u32,
    /// Capture time of the packet that carried it.
    pub ts_ns: i64,
    /// Ack number of that packet.
    pub ack: u32,
    /// The segment's payload.
    pub data: Vec<u8>,
}

/// The segments held at one start sequence number, in arrival order (the first inline: a
/// second one at the same start is rare, so holding a segment costs one allocation, its data).
#[derive(Debug)]
struct SameStart {
    front: Held,
    later: VecDeque<Held>,
    /// Length of the longest of them: a segment no longer than this is a duplicate.
    longest: usize,
}

/// A held segment's position: its start's offset from [`Reassembler::base`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u32);

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        work::count(1);
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A held segment's capture time (a multiset entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(i64);

impl Ord for Stamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        work::count(1);
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for Stamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Sequence-number state of one direction of a connection.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    /// Sequence number of the next byte to deliver; `None` until synchronised.
    pub next_seq: Option<u32>,
    /// Sequence number that held segments' keys are relative to.
    base: u32,
    held: BTreeMap<Key, SameStart>,
    /// Capture times of the held segments, with their multiplicity.
    stamps: BTreeMap<Stamp, u32>,
    held_segments: usize,
    held_bytes: usize,
}

impl Reassembler {
    /// Offset of `seq` after the next expected byte (positive = in the future).
    fn offset(next: u32, seq: u32) -> i32 {
        seq.wrapping_sub(next) as i32
    }

    fn key(&self, seq: u32) -> Key {
        Key(seq.wrapping_sub(self.base))
    }

    /// Classifies a segment of `len` bytes starting at `seq`.
    pub fn place(&self, seq: u32, len: usize) -> Placement {
        let Some(next) = self.next_seq else {
            return Placement::Future;
        };
        let offset = Self::offset(next, seq);
        if offset > 0 {
            return Placement::Future;
        }
        let skip = offset.unsigned_abs() as usize;
        if skip >= len {
            Placement::Old
        } else {
            Placement::InOrder(skip)
        }
    }

    /// Records that `len` bytes were delivered in order.
    pub fn advance(&mut self, len: usize) {
        if let Some(next) = &mut self.next_seq {
            *next = next.wrapping_add(len as u32);
        }
    }

    /// Holds an out-of-order segment unless it duplicates one already held or `max_segments`
    /// are held already.
    pub fn hold(
        &mut self,
        seq: u32,
        ts_ns: i64,
        ack: u32,
        data: &[u8],
        max_segments: usize,
    ) -> Hold {
        self.rebase_if_far();
        let key = self.key(seq);
        let full = self.held_segments >= max_segments;
        let held = || Held {
            seq,
            ts_ns,
            ack,
            data: data.to_vec(),
        };
        match self.held.entry(key) {
            Entry::Occupied(entry) if entry.get().longest >= data.len() => return Hold::Duplicate,
            _ if full => return Hold::SegmentLimit,
            Entry::Occupied(mut entry) => {
                let same = entry.get_mut();
                same.longest = data.len();
                same.later.push_back(held());
            }
            Entry::Vacant(entry) => {
                entry.insert(SameStart {
                    front: held(),
                    later: VecDeque::new(),
                    longest: data.len(),
                });
            }
        }
        *self.stamps.entry(Stamp(ts_ns)).or_default() += 1;
        self.held_segments += 1;
        self.held_bytes += data.len();
        Hold::Held
    }

    /// Re-keys the held segments when `next_seq` has moved far past `base`, so keys never wrap;
    /// with nothing held the base simply follows `next_seq`.
    fn rebase_if_far(&mut self) {
        let Some(next) = self.next_seq else {
            return;
        };
        if self.held.is_empty() {
            self.base = next;
        } else if next.wrapping_sub(self.base) >= REBASE_AFTER {
            let held = std::mem::take(&mut self.held);
            self.base = next;
            self.held = held
                .into_values()
                .map(|same| (self.key(same.front.seq), same))
                .collect();
        }
    }

    /// The first held segment if it now touches the delivered stream.
    pub fn pop_ready(&mut self) -> Option<Held> {
        let next = self.next_seq?;
        let mut first = self.held.first_entry()?;
        if Self::offset(next, first.get().front.seq) > 0 {
            return None;
        }
        let held = match first.get_mut().later.pop_front() {
            Some(second) => std::mem::replace(&mut first.get_mut().front, second),
            None => first.remove().front,
        };
        self.forget_stamp(held.ts_ns);
        self.held_segments -= 1;
        self.held_bytes -= held.data.len();
        Some(held)
    }

    fn forget_stamp(&mut self, ts_ns: i64) {
        if let Entry::Occupied(mut entry) = self.stamps.entry(Stamp(ts_ns)) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }

    /// Gives up on the hole before the first held segment: continue from that segment.
    /// Returns `false` when nothing is held.
    pub fn skip_hole(&mut self) -> bool {
        match self.held.first_key_value() {
            Some((_, same)) => {
                self.next_seq = Some(same.front.seq);
                true
            }
            None => false,
        }
    }

    /// Bytes missing before the first held segment (`None` without a hole).
    pub fn hole_len(&self) -> Option<u32> {
        let (_, first) = self.held.first_key_value()?;
        Some(first.front.seq.wrapping_sub(self.next_seq?))
    }

    /// There are held segments (so there is a hole).
    pub fn has_hole(&self) -> bool {
        !self.held.is_empty()
    }

    /// Capture time of the oldest held segment (0 when nothing is held).
    pub fn hole_since_ns(&self) -> i64 {
        self.stamps
            .first_key_value()
            .map_or(0, |(stamp, _)| stamp.0)
    }

    /// Bytes held out of order.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Segments held out of order.
    #[cfg(test)]
    pub fn held_segments(&self) -> usize {
        self.held_segments
    }

    /// Drops everything held and forgets the sequence position.
    pub fn reset(&mut self) {
        *self = Reassembler::default();
    }
}

/// A deterministic measure of reassembly work (key comparisons), counted only in tests.
pub(crate) mod work {
    #[cfg(test)]
    thread_local! {
        static COUNT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Adds `n` units of work.
    #[inline(always)]
    pub fn count(n: u64) {
        #[cfg(test)]
        COUNT.with(|c| c.set(c.get() + n));
        #[cfg(not(test))]
        let _ = n;
    }

    /// Work counted on this thread so far.
    #[cfg(test)]
    pub fn so_far() -> u64 {
        COUNT.with(|c| c.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    const NO_CAP: usize = usize::MAX;

    fn at(next: u32) -> Reassembler {
        Reassembler {
            next_seq: Some(next),
            ..Default::default()
        }
    }

    /// Feeds segments the way the tracker does (deliver in order, drain, hold the future) and
    /// collects the delivered bytes.
    struct Stream {
        reasm: Reassembler,
        delivered: Vec<u8>,
        cap: usize,
    }

    impl Stream {
        fn new(isn: u32, cap: usize) -> Stream {
            Stream {
                reasm: at(isn),
                delivered: Vec::new(),
                cap,
            }
        }

        fn offer(&mut self, seq: u32, ts_ns: i64, data: &[u8]) -> Option<Hold> {
            match self.reasm.place(seq, data.len()) {
                Placement::Old => None,
                Placement::InOrder(skip) => {
                    self.deliver(&data[skip..]);
                    self.drain();
                    None
                }
                Placement::Future => Some(self.reasm.hold(seq, ts_ns, 0, data, self.cap)),
            }
        }

        fn deliver(&mut self, data: &[u8]) {
            self.reasm.advance(data.len());
            self.delivered.extend_from_slice(data);
        }

        fn drain(&mut self) {
            while let Some(held) = self.reasm.pop_ready() {
                if let Placement::InOrder(skip) = self.reasm.place(held.seq, held.data.len()) {
                    self.deliver(&held.data[skip..]);
                }
            }
        }
    }

    #[test]
    fn placement_with_wraparound() {
        let r = at(u32::MAX - 1);
        assert_eq!(r.place(u32::MAX - 1, 4), Placement::InOrder(0));
        assert_eq!(r.place(u32::MAX - 3, 4), Placement::InOrder(2));
        assert_eq!(r.place(u32::MAX - 5, 4), Placement::Old);
        assert_eq!(r.place(2, 4), Placement::Future);
    }

    #[test]
    fn held_segments_drain_in_order_across_wrap() {
        let mut r = at(u32::MAX - 1);
        assert_eq!(r.hold(3, 1, 0, b"cd", NO_CAP), Hold::Held);
        assert_eq!(r.hold(1, 2, 0, b"ab", NO_CAP), Hold::Held);
        assert_eq!(r.hold(1, 3, 0, b"a", NO_CAP), Hold::Duplicate);
        assert_eq!(r.held_bytes(), 4);
        assert!(r.pop_ready().is_none());
        r.advance(3); // bytes at MAX-1, MAX, 0
        let first = r.pop_ready().unwrap();
        assert_eq!((first.seq, &first.data[..]), (1, &b"ab"[..]));
        r.advance(2);
        assert_eq!(r.pop_ready().unwrap().data, b"cd");
        assert!(!r.has_hole());
    }

    #[test]
    fn skip_hole_jumps_to_first_held() {
        let mut r = at(100);
        r.hold(150, 7, 0, b"x", NO_CAP);
        assert_eq!(r.hole_since_ns(), 7);
        assert_eq!(r.hole_len(), Some(50));
        assert!(r.skip_hole());
        assert_eq!(r.next_seq, Some(150));
        assert!(r.pop_ready().is_some());
        assert!(!r.skip_hole());
    }

    #[test]
    fn many_segments_straddling_the_wrap_drain_in_sequence_order() {
        let isn = u32::MAX - 500;
        let mut stream = Stream::new(isn, NO_CAP);
        for i in (1..1000u32).rev() {
            let byte = (i % 251) as u8;
            assert_eq!(
                stream.offer(isn.wrapping_add(i), 0, &[byte]),
                Some(Hold::Held)
            );
        }
        stream.offer(isn, 0, &[0]);
        let expected: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(stream.delivered, expected);
        assert!(!stream.reasm.has_hole());
    }

    #[test]
    fn keys_are_rebased_when_the_stream_moves_far_while_holding() {
        let mut r = at(0);
        // Held 2 GiB ahead of where holding started, after the stream advanced 1.5 GiB.
        r.hold(1 << 31, 1, 0, b"late", NO_CAP);
        r.advance(3 << 29);
        r.hold((1 << 31) - 10, 2, 0, b"early", NO_CAP);
        r.hold((3 << 29) + 5, 3, 0, b"soon", NO_CAP);
        r.advance(5);
        assert_eq!(r.pop_ready().unwrap().data, b"soon");
        assert!(r.pop_ready().is_none());
        assert!(r.skip_hole());
        assert_eq!(r.pop_ready().unwrap().data, b"early");
        assert!(r.skip_hole());
        assert_eq!(r.pop_ready().unwrap().data, b"late");
    }

    #[test]
    fn first_delivered_bytes_win_among_overlaps() {
        let mut stream = Stream::new(0, NO_CAP);
        // Same start: the earlier, shorter segment wins its range; the later only adds its tail.
        stream.offer(2, 0, b"ab");
        assert_eq!(stream.offer(2, 0, b"XYZW"), Some(Hold::Held));
        assert_eq!(stream.offer(2, 0, b"QQ"), Some(Hold::Duplicate));
        // A lower start wins over a segment held earlier that it overlaps.
        stream.offer(8, 0, b"mn");
        stream.offer(7, 0, b"kLM");
        stream.offer(6, 0, b"j");
        stream.offer(0, 0, b"01");
        assert_eq!(stream.delivered, b"01abZWjkLM");
        // A retransmission of delivered bytes changes nothing; one reaching past them adds only
        // what is new.
        stream.offer(3, 0, b"??");
        stream.offer(8, 0, b"??op");
        assert_eq!(stream.delivered, b"01abZWjkLMop");
    }

    #[test]
    fn segments_beyond_the_cap_are_refused_but_duplicates_still_recognised() {
        let mut r = at(0);
        for i in 0..4 {
            assert_eq!(r.hold(10 + i, 0, 0, b"x", 4), Hold::Held);
        }
        assert_eq!(r.hold(20, 0, 0, b"y", 4), Hold::SegmentLimit);
        assert_eq!(r.hold(10, 0, 0, b"x", 4), Hold::Duplicate);
        assert_eq!(r.hold(10, 0, 0, b"xx", 4), Hold::SegmentLimit);
        assert_eq!((r.held_segments(), r.held_bytes()), (4, 4));
        r.advance(10);
        assert!(r.pop_ready().is_some());
        assert_eq!(r.hold(20, 0, 0, b"y", 4), Hold::Held);
    }

    #[test]
    fn hole_since_is_the_oldest_held_capture_time() {
        let mut r = at(0);
        r.hold(30, 500, 0, b"c", NO_CAP);
        r.hold(10, 900, 0, b"a", NO_CAP);
        r.hold(20, 300, 0, b"b", NO_CAP);
        assert_eq!(r.hole_since_ns(), 300);
        r.advance(10);
        r.pop_ready().unwrap();
        assert_eq!(r.hole_since_ns(), 300);
        r.advance(10);
        r.pop_ready().unwrap();
        assert_eq!(r.hole_since_ns(), 500);
        r.advance(10);
        r.pop_ready().unwrap();
        assert_eq!(r.hole_since_ns(), 0);
    }

    /// Work units allowed per segment: a constant, whatever the order and the number of held
    /// segments (a B-tree search costs a few dozen comparisons at a million entries; the old
    /// `Vec` moved every held segment on each insert and scanned them all on each pop).
    const WORK_PER_SEGMENT: u64 = 256;

    #[test]
    fn tiny_segments_all_before_a_hole_reassemble_exactly_in_bounded_work() {
        let segments = 160_000u32;
        let isn = u32::MAX - 70_000;
        let mut stream = Stream::new(isn, NO_CAP);
        let before = work::so_far();
        for i in 1..segments {
            let seq = isn.wrapping_add(i);
            let held = stream.offer(seq, i64::from(i), &[(i % 256) as u8]);
            assert_eq!(held, Some(Hold::Held));
        }
        assert_eq!(stream.reasm.held_segments(), segments as usize - 1);
        stream.offer(isn, 0, &[0]);
        let expected: Vec<u8> = (0..segments).map(|i| (i % 256) as u8).collect();
        assert_eq!(stream.delivered, expected);
        assert_eq!(stream.reasm.held_bytes(), 0);
        let work = work::so_far() - before;
        assert!(
            work <= WORK_PER_SEGMENT * u64::from(segments),
            "{work} work units for {segments} segments"
        );
    }

    /// A conversation cut into random segments, plus retransmissions and overlaps of random
    /// ranges (same bytes, as on the wire), in random order.
    fn shuffled_segments(rng: &mut StdRng, stream: &[u8]) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        let mut start = 0;
        while start < stream.len() {
            let end = (start + rng.random_range(1..=16)).min(stream.len());
            ranges.push((start, end));
            start = end;
        }
        for _ in 0..rng.random_range(0..=ranges.len() / 2 + 1) {
            let a = rng.random_range(0..stream.len());
            let b = (a + rng.random_range(1..=40)).min(stream.len());
            ranges.push((a, b));
        }
        let copies: Vec<_> = ranges
            .iter()
            .filter(|_| rng.random_bool(0.1))
            .copied()
            .collect();
        ranges.extend(copies);
        ranges.shuffle(rng);
        ranges
    }

    #[test]
    fn any_segment_order_delivers_the_in_order_bytes_in_bounded_work() {
        let mut rng = StdRng::seed_from_u64(0x005e_ed11);
        for case in 0..300 {
            let len = rng.random_range(1..=3000);
            let conversation: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let isn: u32 = if case % 3 == 0 {
                u32::MAX - rng.random_range(0..len as u32)
            } else {
                rng.random()
            };
            let ranges = shuffled_segments(&mut rng, &conversation);
            let mut stream = Stream::new(isn, NO_CAP);
            let before = work::so_far();
            for (i, &(a, b)) in ranges.iter().enumerate() {
                let seq = isn.wrapping_add(a as u32);
                stream.offer(
                    seq,
                    rng.random_range(0..1000) + i as i64,
                    &conversation[a..b],
                );
            }
            let work = work::so_far() - before;
            assert_eq!(stream.delivered, conversation, "case {case}");
            assert!(!stream.reasm.has_hole(), "case {case}");
            assert!(
                work <= WORK_PER_SEGMENT * ranges.len() as u64,
                "case {case}: {work} work units for {} segments",
                ranges.len()
            );
        }
    }
}
