//! One direction's HPACK decoder (RFC 7541): the dynamic table while it is known, a partial
//! table once it is not (mid-connection start, lost bytes).
//!
//! Decoding is one pass over a block straight into a reused [`Block`]: strings, Huffman-coded
//! ones included (four bits per table lookup, see [`huffman`]), are written where the fields
//! go, and evicted table entries' buffers are reused, so a block costs no allocation. It
//! follows loona-hpack's decoder (what it accepts, what it rejects); the tests check the two
//! agree. loona-hpack's own decoder is not used: its Huffman decoding built a hash table per
//! string and walked one bit at a time (nine tenths of the decoding time of an h2load capture).
//!
//! With the table unknown, an index refers to the n-th most recently added entry still in
//! the encoder's table; entries added since the loss are therefore resolvable exactly
//! (an encoder only references entries it still holds), older ones are not.

use std::collections::VecDeque;

mod huffman;
mod table;

use table::{DynamicTable, ENTRY_OVERHEAD, STATIC_TABLE};

/// RFC 7541 §4.2 / RFC 9113 §6.5.2 initial SETTINGS_HEADER_TABLE_SIZE.
pub(crate) const DEFAULT_TABLE_SIZE: usize = 4096;
/// The largest dynamic table accepted, whatever the receiver advertised.
pub(crate) const MAX_TABLE_SIZE: usize = 1 << 20;
/// The most decoded bytes (names and values) one header block may expand to: indexed
/// fields are one byte each on the wire but may name a large table entry.
pub(crate) const MAX_DECODED_BLOCK: usize = 4 << 20;
const STATIC_ENTRIES: usize = STATIC_TABLE.len();

/// An owned field, as the partial table keeps its entries.
type Field = (Vec<u8>, Vec<u8>);

/// A decoded header block: the fields' bytes back to back, and where each field is.
#[derive(Debug, Default)]
pub(crate) struct Block {
    bytes: Vec<u8>,
    /// Per field: where its name starts, where its value starts and where it ends.
    spans: Vec<[usize; 3]>,
    /// Some fields referenced table entries that are not known.
    pub unknown: bool,
}

impl Block {
    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.unknown = false;
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.spans
            .push([start, start + name.len(), self.bytes.len()]);
    }

    /// Ends a field whose name was written from `start` and whose value from `value`.
    fn close_field(&mut self, start: usize, value: usize) {
        self.spans.push([start, value, self.bytes.len()]);
    }

    /// The last field pushed.
    fn last(&self) -> Option<(&[u8], &[u8])> {
        let &[name, value, end] = self.spans.last()?;
        Some((&self.bytes[name..value], &self.bytes[value..end]))
    }

    fn check_size(&self) -> Result<(), HpackError> {
        if self.bytes.len() > MAX_DECODED_BLOCK {
            return Err(HpackError);
        }
        Ok(())
    }

    /// The fields in wire order, `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        self.spans
            .iter()
            .map(|&[name, value, end]| (&self.bytes[name..value], &self.bytes[value..end]))
    }

    /// The fields as owned pairs (for comparing in tests).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn owned(&self) -> Vec<Field> {
        self.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hpack: undecodable block")]
pub(crate) struct HpackError;

pub(crate) struct HeaderDecoder {
    state: State,
}

enum State {
    Known(KnownTable),
    Unknown(PartialTable),
}

/// The dynamic table, the largest size update the receiver allows, and the strings decoded
/// lately.
struct KnownTable {
    table: DynamicTable,
    allowed: usize,
    memo: huffman::Memo,
}

impl HeaderDecoder {
    /// A decoder at the start of a connection (empty table, 4096 bytes allowed).
    pub fn new() -> HeaderDecoder {
        HeaderDecoder {
            state: State::Known(KnownTable {
                table: DynamicTable::new(DEFAULT_TABLE_SIZE),
                allowed: DEFAULT_TABLE_SIZE,
                memo: huffman::Memo::default(),
            }),
        }
    }

    /// A decoder whose table content is not known.
    pub fn unknown() -> HeaderDecoder {
        HeaderDecoder {
            state: State::Unknown(PartialTable::default()),
        }
    }

    pub fn is_known(&self) -> bool {
        matches!(self.state, State::Known(_))
    }

    /// The table's content was lost (a block was skipped).
    pub fn lose_state(&mut self) {
        if self.is_known() {
            self.state = State::Unknown(PartialTable::default());
        }
    }

    /// The receiver's acknowledged SETTINGS_HEADER_TABLE_SIZE.
    pub fn set_allowed_table_size(&mut self, size: usize) {
        if let State::Known(known) = &mut self.state {
            known.allowed = size.min(MAX_TABLE_SIZE);
        }
    }

    /// Decodes `block` into `out` (its previous content replaced).
    pub fn decode(&mut self, block: &[u8], out: &mut Block) -> Result<(), HpackError> {
        out.clear();
        match &mut self.state {
            State::Known(known) => known.decode(block, out),
            State::Unknown(table) => table.decode(block, out),
        }
    }
}

impl KnownTable {
    /// RFC 7541 §6. As loona-hpack: an index outside the table, a size update above the
    /// allowed size or at the end of the block, and any malformed integer or string are
    /// errors.
    fn decode(&mut self, mut block: &[u8], out: &mut Block) -> Result<(), HpackError> {
        let mut last_was_size_update = false;
        while let Some(&first) = block.first() {
            last_was_size_update = false;
            block = if first & 0x80 != 0 {
                let (index, rest) = integer(block, 7)?;
                let (name, value) = self.table.get(index).ok_or(HpackError)?;
                out.push(name, value);
                rest
            } else if first & 0x40 != 0 {
                let rest = self.literal(block, 6, out)?;
                if let Some((name, value)) = out.last() {
                    self.table.add(name, value);
                }
                rest
            } else if first & 0x20 != 0 {
                let (size, rest) = integer(block, 5)?;
                if size > self.allowed {
                    return Err(HpackError);
                }
                self.table.set_max_size(size);
                last_was_size_update = true;
                rest
            } else {
                self.literal(block, 4, out)?
            };
            out.check_size()?;
        }
        if last_was_size_update {
            return Err(HpackError);
        }
        Ok(())
    }

    /// A literal field (its name indexed or literal) appended to `out`; returns the rest.
    fn literal<'b>(
        &mut self,
        block: &'b [u8],
        prefix: u8,
        out: &mut Block,
    ) -> Result<&'b [u8], HpackError> {
        let (index, mut rest) = integer(block, prefix)?;
        let start = out.bytes.len();
        if index == 0 {
            rest = string_into(rest, &mut out.bytes, Some(&mut self.memo))?;
        } else {
            let (name, _) = self.table.get(index).ok_or(HpackError)?;
            out.bytes.extend_from_slice(name);
        }
        let value = out.bytes.len();
        match string_into(rest, &mut out.bytes, Some(&mut self.memo)) {
            Ok(rest) => {
                out.close_field(start, value);
                Ok(rest)
            }
            Err(e) => Err(e),
        }
    }
}

/// RFC 7541 §5.2: appends the string at the start of `block` to `out` (Huffman-coded
/// strings through `memo`, when there is one); returns the rest.
fn string_into<'b>(
    block: &'b [u8],
    out: &mut Vec<u8>,
    memo: Option<&mut huffman::Memo>,
) -> Result<&'b [u8], HpackError> {
    let huffman_coded = block.first().ok_or(HpackError)? & 0x80 != 0;
    let (len, rest) = integer(block, 7)?;
    if len > rest.len() {
        return Err(HpackError);
    }
    let (raw, rest) = rest.split_at(len);
    if huffman_coded {
        match memo {
            Some(memo) => memo.decode(raw, out)?,
            None => huffman::decode(raw, out)?,
        }
    } else {
        out.extend_from_slice(raw);
    }
    Ok(rest)
}

/// The entries added since the state was lost, newest first (`None`: a name that was
/// itself unknown).
#[derive(Default)]
struct PartialTable {
    entries: VecDeque<Option<Field>>,
    size: usize,
}

/// What a table lookup gives with a partial table.
enum Lookup {
    Found(Field),
    Unknown,
}

impl PartialTable {
    fn decode(&mut self, mut block: &[u8], out: &mut Block) -> Result<(), HpackError> {
        while let Some(&first) = block.first() {
            let (field, rest) = if first & 0x80 != 0 {
                let (index, rest) = integer(block, 7)?;
                (self.lookup(index, false)?, rest)
            } else if first & 0x40 != 0 {
                let (lookup, rest) = self.literal(block, 6)?;
                self.add(&lookup);
                (lookup, rest)
            } else if first & 0x20 != 0 {
                let (size, rest) = integer(block, 5)?;
                self.evict_to(size);
                block = rest;
                continue;
            } else {
                self.literal(block, 4)?
            };
            match field {
                Lookup::Found((name, value)) => out.push(&name, &value),
                Lookup::Unknown => out.unknown = true,
            }
            out.check_size()?;
            block = rest;
        }
        Ok(())
    }

    fn literal<'b>(
        &mut self,
        block: &'b [u8],
        prefix: u8,
    ) -> Result<(Lookup, &'b [u8]), HpackError> {
        let (index, rest) = integer(block, prefix)?;
        let (name, rest) = if index == 0 {
            let (name, rest) = string(rest)?;
            (Lookup::Found((name, Vec::new())), rest)
        } else {
            (self.lookup(index, true)?, rest)
        };
        let (value, rest) = string(rest)?;
        let field = match name {
            Lookup::Found((name, _)) => Lookup::Found((name, value)),
            Lookup::Unknown => Lookup::Unknown,
        };
        Ok((field, rest))
    }

    fn lookup(&self, index: usize, name_only: bool) -> Result<Lookup, HpackError> {
        if index == 0 {
            return Err(HpackError);
        }
        if index <= STATIC_ENTRIES {
            return static_entry(index, name_only).map(Lookup::Found);
        }
        match self.entries.get(index - STATIC_ENTRIES - 1) {
            Some(Some(field)) => Ok(Lookup::Found(field.clone())),
            _ => Ok(Lookup::Unknown),
        }
    }

    fn add(&mut self, lookup: &Lookup) {
        let (entry, size) = match lookup {
            Lookup::Found(field) => (
                Some(field.clone()),
                field.0.len() + field.1.len() + ENTRY_OVERHEAD,
            ),
            Lookup::Unknown => (None, ENTRY_OVERHEAD),
        };
        self.entries.push_front(entry);
        self.size += size;
        self.evict_to(MAX_TABLE_SIZE);
    }

    /// Drops the oldest known entries beyond `size` (they may or may not still be in the
    /// encoder's table; either way they become unknown, which is safe).
    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let Some(entry) = self.entries.pop_back() else {
                break;
            };
            let entry_size = entry.map_or(0, |(n, v)| n.len() + v.len()) + ENTRY_OVERHEAD;
            self.size = self.size.saturating_sub(entry_size);
        }
    }
}

/// A static-table entry.
fn static_entry(index: usize, name_only: bool) -> Result<Field, HpackError> {
    let (name, value) = STATIC_TABLE.get(index.wrapping_sub(1)).ok_or(HpackError)?;
    Ok((
        name.to_vec(),
        if name_only {
            Vec::new()
        } else {
            value.to_vec()
        },
    ))
}

/// RFC 7541 §5.1, bounded to values below 2^28.
fn integer(block: &[u8], prefix: u8) -> Result<(usize, &[u8]), HpackError> {
    let (&first, mut rest) = block.split_first().ok_or(HpackError)?;
    let mask = (1u16 << prefix) as usize - 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok((value, rest));
    }
    for shift in (0..28).step_by(7) {
        let (&byte, tail) = rest.split_first().ok_or(HpackError)?;
        rest = tail;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, rest));
        }
    }
    Err(HpackError)
}

/// RFC 7541 §5.2, into an owned string (the partial table keeps it).
fn string(block: &[u8]) -> Result<(Vec<u8>, &[u8]), HpackError> {
    let mut value = Vec::new();
    let rest = string_into(block, &mut value, None)?;
    Ok((value, rest))
}

/// Differential fuzz entry: `data` is a stream of header blocks (`len byte, block…`) fed to
/// one decoder of ours and one of loona-hpack, both keeping their tables: each block must get
/// the same verdict and the same fields (ours may refuse a block that loona decodes beyond
/// [`MAX_DECODED_BLOCK`]). After a refused block both start afresh.
#[cfg(feature = "fuzzing")]
pub fn fuzz_differential(data: &[u8]) {
    let reference = || {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(DEFAULT_TABLE_SIZE);
        decoder
    };
    let (mut ours, mut theirs) = (HeaderDecoder::new(), reference());
    let mut out = Block::default();
    let mut rest = data;
    while let [len, tail @ ..] = rest {
        let (block, after) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = after;
        let expected = theirs.decode(block).ok();
        let decoded = ours.decode(block, &mut out).ok().map(|()| out.owned());
        let beyond_bound = || {
            let size: usize = expected
                .iter()
                .flatten()
                .map(|(n, v)| n.len() + v.len())
                .sum();
            decoded.is_none() && size > MAX_DECODED_BLOCK / 2
        };
        assert!(decoded == expected || beyond_bound(), "{block:02x?}");
        if decoded.is_none() || expected.is_none() {
            (ours, theirs) = (HeaderDecoder::new(), reference());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Block, HeaderDecoder, DEFAULT_TABLE_SIZE};
    use loona_hpack::Decoder;

    fn reference() -> Decoder<'static> {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(DEFAULT_TABLE_SIZE);
        decoder
    }

    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Random blocks through a fresh decoder each: both decoders fail, or give the same fields.
    #[test]
    fn agrees_with_loona_hpack_on_random_blocks() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Block::default();
        for round in 0..50_000 {
            let block: Vec<u8> = (0..round % 40)
                .map(|_| (next(&mut seed) >> 24) as u8)
                .collect();
            let expected = reference().decode(&block).ok();
            let decoded = HeaderDecoder::new()
                .decode(&block, &mut out)
                .ok()
                .map(|()| out.owned());
            assert_eq!(decoded, expected, "{block:02x?}");
        }
    }

    /// One-byte references to a large entry do not expand a block past MAX_DECODED_BLOCK.
    #[test]
    fn a_block_decoding_to_more_than_the_bound_is_an_error() {
        let mut block = vec![0x40, 1, b'n', 0x7f, 0x81, 0x1e]; // value of 127 + 3841 bytes
        block.extend(std::iter::repeat_n(b'v', 3968));
        let refs = super::MAX_DECODED_BLOCK / 3969 + 1;
        let mut out = Block::default();
        let mut fits = block.clone();
        fits.extend(std::iter::repeat_n(0xbe, refs - 2));
        assert!(HeaderDecoder::new().decode(&fits, &mut out).is_ok());
        block.extend(std::iter::repeat_n(0xbe, refs));
        assert!(HeaderDecoder::new().decode(&block, &mut out).is_err());
    }

    /// One decoder pair fed a stream of blocks made of valid representations (literals with
    /// indexing, size updates, indexed fields of the growing table): the same fields, the same
    /// verdicts, so the same table state all along.
    #[test]
    fn agrees_with_loona_hpack_on_a_stream_of_blocks() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut ours = HeaderDecoder::new();
        let mut theirs = reference();
        let mut out = Block::default();
        let (mut decoded_blocks, mut dynamic_hits) = (0, 0);
        for _ in 0..20_000 {
            let mut block = Vec::new();
            let mut uses_dynamic = false;
            for _ in 0..1 + next(&mut seed) % 6 {
                match next(&mut seed) % 5 {
                    0 => {
                        let r = next(&mut seed);
                        let index = if r.is_multiple_of(2) {
                            62 + r % 5
                        } else {
                            1 + r % 61
                        };
                        uses_dynamic |= index > 61;
                        block.push(0x80 | index as u8);
                    }
                    1 | 2 => {
                        let len = (next(&mut seed) % 40) as u8;
                        block.extend([0x40 | (next(&mut seed) % 62) as u8, len]);
                        block.extend((0..len).map(|i| b'a' + i % 26));
                    }
                    3 if next(&mut seed).is_multiple_of(8) => {
                        block.extend([0x3f, (next(&mut seed) % 120) as u8])
                    }
                    3 => block.extend([0x3f, 0xe1, 0x1f]),
                    _ => block.extend([0x0f, 0x20, 0x83, 0x1f, 0xff, 0x7f]),
                }
            }
            let expected = theirs.decode(&block);
            let decoded = ours.decode(&block, &mut out).map(|()| out.owned());
            assert_eq!(
                decoded.ok(),
                expected.as_ref().ok().cloned(),
                "{block:02x?}"
            );
            decoded_blocks += usize::from(expected.is_ok());
            dynamic_hits += usize::from(expected.is_ok() && uses_dynamic);
            if expected.is_err() {
                ours = HeaderDecoder::new();
                theirs = reference();
            }
        }
        assert!(
            decoded_blocks > 5_000 && dynamic_hits > 1_000,
            "{decoded_blocks} {dynamic_hits}"
        );
    }
}
