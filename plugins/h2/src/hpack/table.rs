//! The HPACK header tables (RFC 7541 §2.3): the static table, and the dynamic table of a
//! decoder whose state is known.

use std::collections::VecDeque;

/// RFC 7541 §4.1: an entry's size is its name, its value and 32.
pub(crate) const ENTRY_OVERHEAD: usize = 32;
/// Evicted entries' buffers kept for the next insertions (an encoder that adds every
/// response's fields, as nginx does, then inserts without allocating).
const SPARE_BUFFERS: usize = 16;
/// Only small buffers are kept: a table may hold one entry of up to its whole size.
const SPARE_BUFFER_BYTES: usize = 512;

/// RFC 7541 Appendix A (index 1 first).
pub(crate) static STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// One dynamic-table entry: its name and value back to back.
struct Entry {
    bytes: Vec<u8>,
    name_len: usize,
}

impl Entry {
    fn field(&self) -> (&[u8], &[u8]) {
        self.bytes.split_at(self.name_len)
    }
}

/// The dynamic table, newest entry first, with RFC 7541 §4.3/§4.4 eviction.
pub(crate) struct DynamicTable {
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    spare: Vec<Vec<u8>>,
}

impl DynamicTable {
    pub fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
            spare: Vec::new(),
        }
    }

    /// Entry `index` of the whole address space (1-based, static entries first).
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        let dynamic = index.checked_sub(STATIC_TABLE.len() + 1);
        match dynamic {
            None => STATIC_TABLE.get(index.checked_sub(1)?).copied(),
            Some(i) => self.entries.get(i).map(Entry::field),
        }
    }

    /// A dynamic table size update (the caller checked it against the allowed size).
    pub fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict();
    }

    /// Inserts a field; an entry larger than the table empties it and is not kept.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        self.size += bytes.len() + ENTRY_OVERHEAD;
        self.entries.push_front(Entry {
            bytes,
            name_len: name.len(),
        });
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            let Some(entry) = self.entries.pop_back() else {
                break;
            };
            self.size -= entry.bytes.len() + ENTRY_OVERHEAD;
            if self.spare.len() < SPARE_BUFFERS && entry.bytes.capacity() <= SPARE_BUFFER_BYTES {
                self.spare.push(entry.bytes);
            }
        }
    }
}
