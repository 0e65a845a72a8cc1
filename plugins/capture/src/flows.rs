//! The flow table: connections by their canonical endpoint pair, in a slab with an
//! intrusive least-recently-active list, so lookup, touch, eviction and expiry are O(1).
//!
//! The table does not know what a flow holds; the tracker decides when to evict (the table is
//! full) and when to expire (the oldest flow has been idle long enough).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::Packet;
use crate::fxhash::FxBuildHasher;

const NIL: u32 = u32::MAX;

/// A connection's endpoints in canonical order (lower address first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey {
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
    pub(crate) fn of(pkt: &Packet<'_>) -> (FlowKey, usize) {
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

/// Where a flow lives in the table (stable while it stays there).
pub(crate) type Slot = u32;

#[derive(Debug)]
struct Entry<F> {
    flow: Option<F>,
    prev: Slot,
    next: Slot,
}

/// Flows by key, least recently touched first.
#[derive(Debug)]
pub(crate) struct FlowTable<F> {
    index: HashMap<FlowKey, Slot, FxBuildHasher>,
    entries: Vec<Entry<F>>,
    free: Vec<Slot>,
    head: Slot,
    tail: Slot,
}

impl<F> Default for FlowTable<F> {
    fn default() -> Self {
        FlowTable {
            index: HashMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }
}

impl<F> FlowTable<F> {
    /// Flows in the table.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    #[inline]
    pub(crate) fn find(&self, key: &FlowKey) -> Option<Slot> {
        self.index.get(key).copied()
    }

    /// The least recently touched flow.
    pub(crate) fn oldest(&self) -> Option<Slot> {
        (self.head != NIL).then_some(self.head)
    }

    #[inline]
    pub(crate) fn get(&self, slot: Slot) -> &F {
        self.entries[slot as usize]
            .flow
            .as_ref()
            .expect("a linked slot holds a flow")
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, slot: Slot) -> &mut F {
        self.entries[slot as usize]
            .flow
            .as_mut()
            .expect("a linked slot holds a flow")
    }

    /// Adds a flow as the most recently touched one.
    pub(crate) fn insert(&mut self, key: FlowKey, flow: F) -> Slot {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize].flow = Some(flow);
                slot
            }
            None => {
                self.entries.push(Entry {
                    flow: Some(flow),
                    prev: NIL,
                    next: NIL,
                });
                (self.entries.len() - 1) as Slot
            }
        };
        self.link_back(slot);
        self.index.insert(key, slot);
        slot
    }

    /// Takes a flow out of the table.
    pub(crate) fn remove(&mut self, key: &FlowKey, slot: Slot) -> F {
        let flow = self.entries[slot as usize]
            .flow
            .take()
            .expect("removing a live flow");
        self.index.remove(key);
        self.unlink(slot);
        self.free.push(slot);
        flow
    }

    /// Marks a flow as the most recently active.
    #[inline]
    pub(crate) fn touch(&mut self, slot: Slot) {
        if self.tail != slot {
            self.unlink(slot);
            self.link_back(slot);
        }
    }

    fn unlink(&mut self, slot: Slot) {
        let (prev, next) = {
            let entry = &self.entries[slot as usize];
            (entry.prev, entry.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
        let entry = &mut self.entries[slot as usize];
        entry.prev = NIL;
        entry.next = NIL;
    }

    fn link_back(&mut self, slot: Slot) {
        let tail = self.tail;
        {
            let entry = &mut self.entries[slot as usize];
            entry.prev = tail;
            entry.next = NIL;
        }
        match tail {
            NIL => self.head = slot,
            t => self.entries[t as usize].next = slot,
        }
        self.tail = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            low_ip: 1,
            high_ip: 2,
            low_port: port,
            high_port: 80,
        }
    }

    #[test]
    fn least_recently_touched_comes_first_and_slots_are_reused() {
        let mut table = FlowTable::default();
        let a = table.insert(key(1), "a");
        let b = table.insert(key(2), "b");
        assert_eq!(table.oldest(), Some(a));
        table.touch(a);
        assert_eq!(table.oldest(), Some(b));
        assert_eq!(table.remove(&key(2), b), "b");
        assert_eq!(table.find(&key(2)), None);
        assert_eq!(table.oldest(), Some(a));
        let c = table.insert(key(3), "c");
        assert_eq!(c, b, "a freed slot is reused");
        assert_eq!(*table.get(c), "c");
        assert_eq!(table.len(), 2);
        table.remove(&key(1), a);
        table.remove(&key(3), c);
        assert_eq!(table.oldest(), None);
    }
}
