//! Putting the messages of several workers back into the order one worker emits them.
//!
//! One worker emits, for each frame in turn, what that frame completed, then, when an expiry
//! check falls after the frame, what expiry finished (flow by flow, least recently active
//! first), and at the end what is still pending (in the same flow order). Each message of a
//! sharded read is tagged with a [`Key`] saying where it falls in that order; each worker's
//! own list is already in key order. A worker also reports a watermark: a key at or below
//! which it will emit nothing more. [`OrderedMerge`] passes messages on in key order once no
//! worker can still emit one before them, keeping each worker's own order.

use std::collections::VecDeque;

/// What emitted a message, in the order one worker does it for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The frame itself (its segment completed the message).
    Frame,
    /// The expiry check after the frame (or, after the last frame, the end of input).
    Expiry,
}

/// Where a message falls in the single-worker order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The frame's number (`u64::MAX`: the end of input).
    pub frame: u64,
    /// Emitted by the frame, or by the expiry check after it.
    pub phase: Phase,
    /// For expiry: the number of the last frame that touched the message's flow (the flow
    /// table's order); 0 for frames.
    pub flow: u64,
}

impl Key {
    /// A message completed by frame `frame`.
    pub fn frame(frame: u64) -> Key {
        Key {
            frame,
            phase: Phase::Frame,
            flow: 0,
        }
    }

    /// A message finished by the expiry check after frame `frame`, of a flow last active at
    /// frame `flow`.
    pub fn expiry(frame: u64, flow: u64) -> Key {
        Key {
            frame,
            phase: Phase::Expiry,
            flow,
        }
    }

    /// A message finished at the end of input, of a flow last active at frame `flow`.
    pub fn end(flow: u64) -> Key {
        Key::expiry(u64::MAX, flow)
    }

    /// The watermark of a worker that has handled everything up to and including frame
    /// `frame` (and, if `expired`, the expiry check after it).
    pub fn through(frame: u64, expired: bool) -> Key {
        Key {
            frame,
            phase: if expired { Phase::Expiry } else { Phase::Frame },
            flow: u64::MAX,
        }
    }

    /// Above every key: a finished worker's watermark.
    pub const MAX: Key = Key {
        frame: u64::MAX,
        phase: Phase::Expiry,
        flow: u64::MAX,
    };
}

/// The merge of N workers' tagged messages into the single-worker order.
#[derive(Debug)]
pub struct OrderedMerge<T> {
    pending: Vec<VecDeque<(Key, T)>>,
    /// Per worker: it emits nothing more at or below this key (`None`: nothing reported yet).
    marks: Vec<Option<Key>>,
}

impl<T> OrderedMerge<T> {
    /// A merge of `workers` workers' messages.
    pub fn new(workers: usize) -> Self {
        OrderedMerge {
            pending: (0..workers).map(|_| VecDeque::new()).collect(),
            marks: vec![None; workers],
        }
    }

    /// Worker `worker` emitted `items` (in its order) and will emit nothing at or below
    /// `through` again.
    pub fn report(
        &mut self,
        worker: usize,
        items: impl IntoIterator<Item = (Key, T)>,
        through: Key,
    ) {
        self.pending[worker].extend(items);
        let mark = &mut self.marks[worker];
        *mark = Some(mark.map_or(through, |m| m.max(through)));
    }

    /// Worker `worker` has reported everything it will ever emit.
    pub fn finished(&mut self, worker: usize) {
        self.marks[worker] = Some(Key::MAX);
    }

    /// The worker the merge waits for (the lowest watermark; `None` once every worker has
    /// finished).
    pub fn lagging(&self) -> Option<usize> {
        let (worker, mark) = self
            .marks
            .iter()
            .enumerate()
            .min_by_key(|(_, mark)| mark.map(|m| (1, m)).unwrap_or((0, Key::MAX)))?;
        (*mark != Some(Key::MAX)).then_some(worker)
    }

    /// Messages held back, waiting for a slower worker.
    pub fn held(&self) -> usize {
        self.pending.iter().map(VecDeque::len).sum()
    }

    /// Passes on, in key order, every message no worker can still emit one before.
    pub fn release(&mut self, out: &mut impl FnMut(T)) {
        let Some(bound) = self.marks.iter().copied().min().flatten() else {
            return;
        };
        loop {
            let next = self
                .pending
                .iter()
                .enumerate()
                .filter_map(|(worker, list)| list.front().map(|(key, _)| (*key, worker)))
                .min();
            match next {
                Some((key, worker)) if key <= bound => {
                    let (_, item) = self.pending[worker].pop_front().expect("a front item");
                    out(item);
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(merge: &mut OrderedMerge<&'static str>) -> Vec<&'static str> {
        let mut out = Vec::new();
        merge.release(&mut |item| out.push(item));
        out
    }

    #[test]
    fn keys_order_as_one_worker_emits() {
        assert!(Key::frame(5) < Key::expiry(5, 1));
        assert!(Key::expiry(5, 1) < Key::expiry(5, 4));
        assert!(Key::expiry(5, 9) < Key::frame(6));
        assert!(Key::frame(5) <= Key::through(5, false));
        assert!(Key::expiry(5, 0) > Key::through(5, false));
        assert!(Key::expiry(5, 3) <= Key::through(5, true));
        assert!(Key::frame(u64::MAX - 1) < Key::end(0));
        assert!(Key::end(u64::MAX - 1) < Key::MAX);
    }

    #[test]
    fn messages_wait_for_every_workers_watermark() {
        let mut merge = OrderedMerge::new(2);
        merge.report(
            0,
            [(Key::frame(1), "a1"), (Key::frame(4), "a4")],
            Key::through(4, false),
        );
        assert_eq!(merge.lagging(), Some(1));
        assert!(
            drain(&mut merge).is_empty(),
            "worker 1 has reported nothing"
        );
        merge.report(1, [(Key::frame(2), "b2")], Key::through(3, false));
        assert_eq!(drain(&mut merge), ["a1", "b2"]);
        assert_eq!(merge.held(), 1);
        assert_eq!(merge.lagging(), Some(1));
        merge.report(1, [(Key::frame(5), "b5")], Key::through(6, false));
        assert_eq!(drain(&mut merge), ["a4"]);
        merge.report(0, [(Key::frame(6), "a6")], Key::through(6, false));
        assert_eq!(drain(&mut merge), ["b5", "a6"]);
        assert_eq!(merge.held(), 0);
    }

    #[test]
    fn expiry_interleaves_by_flow_activity() {
        let mut merge = OrderedMerge::new(3);
        merge.report(
            0,
            [
                (Key::frame(10), "frame 10"),
                (Key::expiry(10, 2), "flow 2"),
                (Key::expiry(10, 7), "flow 7"),
            ],
            Key::through(10, true),
        );
        merge.report(
            1,
            [
                (Key::expiry(10, 3), "flow 3"),
                (Key::expiry(10, 3), "flow 3 again"),
            ],
            Key::through(10, true),
        );
        merge.report(2, [(Key::frame(11), "frame 11")], Key::through(11, false));
        assert_eq!(
            drain(&mut merge),
            ["frame 10", "flow 2", "flow 3", "flow 3 again", "flow 7"]
        );
        assert_eq!(merge.held(), 1);
    }

    #[test]
    fn an_idle_worker_holds_nothing_back_once_it_reports_its_watermark() {
        let mut merge = OrderedMerge::new(2);
        for round in 1..=3u64 {
            let items = (round * 10 - 9..=round * 10).map(|n| (Key::frame(n), "x"));
            merge.report(0, items, Key::through(round * 10, false));
            // worker 1 had no frames this round: an empty report still moves its watermark
            merge.report(1, [], Key::through(round * 10, false));
            assert_eq!(drain(&mut merge).len(), 10);
        }
        assert_eq!(merge.held(), 0);
    }

    #[test]
    fn finish_releases_everything_in_flow_order() {
        let mut merge = OrderedMerge::new(2);
        merge.report(0, [(Key::frame(1), "a1")], Key::through(2, false));
        merge.report(1, [(Key::frame(2), "b2")], Key::through(2, false));
        assert_eq!(drain(&mut merge), ["a1", "b2"]);
        merge.report(
            0,
            [(Key::end(1), "end a"), (Key::end(9), "end a'")],
            Key::MAX,
        );
        merge.finished(0);
        assert_eq!(merge.lagging(), Some(1));
        assert!(drain(&mut merge).is_empty());
        merge.report(1, [(Key::end(2), "end b")], Key::MAX);
        merge.finished(1);
        assert_eq!(merge.lagging(), None);
        assert_eq!(drain(&mut merge), ["end a", "end b", "end a'"]);
    }

    #[test]
    fn a_workers_own_order_is_kept_even_if_its_keys_are_not() {
        let mut merge = OrderedMerge::new(2);
        merge.report(
            0,
            [(Key::expiry(1, 5), "a5"), (Key::expiry(1, 3), "a3")],
            Key::through(1, true),
        );
        merge.report(1, [(Key::expiry(1, 4), "b4")], Key::through(1, true));
        assert_eq!(drain(&mut merge), ["b4", "a5", "a3"]);
    }
}
