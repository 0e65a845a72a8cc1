//! Per-direction TCP reassembly by sequence number (u32 serial arithmetic, so wrap-around is
//! transparent).
//!
//! Overlap policy: **first delivered bytes win.** Bytes already delivered in order are never
//! rewritten; a retransmission that overlaps them only contributes its bytes beyond `next_seq`.
//! Among held (out-of-order) segments, a segment fully covered by one held earlier with the same
//! start is dropped; otherwise segments are drained in sequence order and each one is trimmed
//! against what has been delivered by then, so the lower-starting (or, at equal starts, the
//! earlier-received) segment wins.

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

/// Sequence-number state of one direction of a connection.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    /// Sequence number of the next byte to deliver; `None` until synchronised.
    pub next_seq: Option<u32>,
    held: Vec<Held>,
    held_bytes: usize,
    hole_since_ns: i64,
}

impl Reassembler {
    /// Offset of `seq` after the next expected byte (positive = in the future).
    fn offset(next: u32, seq: u32) -> i32 {
        seq.wrapping_sub(next) as i32
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

    /// Holds an out-of-order segment; `false` when it duplicates one already held.
    pub fn hold(&mut self, seq: u32, ts_ns: i64, ack: u32, data: &[u8]) -> bool {
        let next = self.next_seq.unwrap_or(seq);
        let key = |s: u32| s.wrapping_sub(next);
        let at = self.held.partition_point(|h| key(h.seq) <= key(seq));
        let duplicate = self.held[..at]
            .iter()
            .rev()
            .take_while(|h| h.seq == seq)
            .any(|h| h.data.len() >= data.len());
        if duplicate {
            return false;
        }
        if self.held.is_empty() {
            self.hole_since_ns = ts_ns;
        }
        self.held_bytes += data.len();
        self.held.insert(
            at,
            Held {
                seq,
                ts_ns,
                ack,
                data: data.to_vec(),
            },
        );
        true
    }

    /// The first held segment if it now touches the delivered stream.
    pub fn pop_ready(&mut self) -> Option<Held> {
        let next = self.next_seq?;
        let first = self.held.first()?;
        if Self::offset(next, first.seq) > 0 {
            return None;
        }
        let held = self.held.remove(0);
        self.held_bytes -= held.data.len();
        self.hole_since_ns = self.held.iter().map(|h| h.ts_ns).min().unwrap_or(0);
        Some(held)
    }

    /// Gives up on the hole before the first held segment: continue from that segment.
    /// Returns `false` when nothing is held.
    pub fn skip_hole(&mut self) -> bool {
        match self.held.first() {
            Some(first) => {
                self.next_seq = Some(first.seq);
                true
            }
            None => false,
        }
    }

    /// There are held segments (so there is a hole).
    pub fn has_hole(&self) -> bool {
        !self.held.is_empty()
    }

    /// Capture time of the oldest held segment.
    pub fn hole_since_ns(&self) -> i64 {
        self.hole_since_ns
    }

    /// Bytes held out of order.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Drops everything held and forgets the sequence position.
    pub fn reset(&mut self) {
        *self = Reassembler::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(next: u32) -> Reassembler {
        Reassembler {
            next_seq: Some(next),
            ..Default::default()
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
        assert!(r.hold(3, 1, 0, b"cd"));
        assert!(r.hold(1, 2, 0, b"ab"));
        assert!(!r.hold(1, 3, 0, b"a"));
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
        r.hold(150, 7, 0, b"x");
        assert_eq!(r.hole_since_ns(), 7);
        assert!(r.skip_hole());
        assert_eq!(r.next_seq, Some(150));
        assert!(r.pop_ready().is_some());
        assert!(!r.skip_hole());
    }
}
