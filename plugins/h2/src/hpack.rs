//! One direction's HPACK decoder: loona-hpack while the dynamic table is known, a partial
//! table once it is not (mid-connection start, lost bytes).
//!
//! loona-hpack keeps the dynamic table and decides what each representation means; its
//! Huffman decoder builds a hash table per string and walks one bit at a time, so the
//! strings are first rewritten as plain literals ([`unhuffman`], four bits per lookup, see
//! [`huffman`]). Decoded fields land in a reused [`Block`]: no allocation per field.
//!
//! With the table unknown, an index refers to the n-th most recently added entry still in
//! the encoder's table; entries added since the loss are therefore resolvable exactly
//! (an encoder only references entries it still holds), older ones are not.

use std::collections::VecDeque;

use loona_hpack::Decoder;

mod huffman;

/// RFC 7541 §4.2 / RFC 9113 §6.5.2 initial SETTINGS_HEADER_TABLE_SIZE.
pub(crate) const DEFAULT_TABLE_SIZE: usize = 4096;
/// The largest dynamic table accepted, whatever the receiver advertised.
pub(crate) const MAX_TABLE_SIZE: usize = 1 << 20;
/// The most decoded bytes (names and values) one header block may expand to: indexed
/// fields are one byte each on the wire but may name a large table entry.
pub(crate) const MAX_DECODED_BLOCK: usize = 4 << 20;
const STATIC_ENTRIES: usize = 61;
/// RFC 7541 §4.1: an entry's size is its name, its value and 32.
const ENTRY_OVERHEAD: usize = 32;

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
    /// The fields outgrew [`MAX_DECODED_BLOCK`].
    oversized: bool,
}

impl Block {
    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.unknown = false;
        self.oversized = false;
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        if self.bytes.len() + name.len() + value.len() > MAX_DECODED_BLOCK {
            self.oversized = true;
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.spans
            .push([start, start + name.len(), self.bytes.len()]);
    }

    /// The fields in wire order, `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        self.spans
            .iter()
            .map(|&[name, value, end]| (&self.bytes[name..value], &self.bytes[value..end]))
    }

    /// The fields as owned pairs (for comparing in tests).
    #[cfg(test)]
    pub fn owned(&self) -> Vec<Field> {
        self.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hpack: undecodable block")]
pub(crate) struct HpackError;

pub(crate) struct HeaderDecoder {
    state: State,
    /// The block being decoded with its Huffman strings decoded (reused).
    plain: Vec<u8>,
}

enum State {
    Known(Box<Decoder<'static>>),
    Unknown(PartialTable),
}

impl HeaderDecoder {
    /// A decoder at the start of a connection (empty table, 4096 bytes allowed).
    pub fn new() -> HeaderDecoder {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(DEFAULT_TABLE_SIZE);
        HeaderDecoder {
            state: State::Known(Box::new(decoder)),
            plain: Vec::new(),
        }
    }

    /// A decoder whose table content is not known.
    pub fn unknown() -> HeaderDecoder {
        HeaderDecoder {
            state: State::Unknown(PartialTable::default()),
            plain: Vec::new(),
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
        if let State::Known(decoder) = &mut self.state {
            decoder.set_max_allowed_table_size(size.min(MAX_TABLE_SIZE));
        }
    }

    /// Decodes `block` into `out` (its previous content replaced).
    pub fn decode(&mut self, block: &[u8], out: &mut Block) -> Result<(), HpackError> {
        out.clear();
        match &mut self.state {
            State::Known(decoder) => {
                unhuffman(block, &mut self.plain)?;
                decoder
                    .decode_with_cb(&self.plain, |name, value| out.push(&name, &value))
                    .map_err(|_| HpackError)?;
            }
            State::Unknown(table) => table.decode(block, out)?,
        }
        if out.oversized {
            return Err(HpackError);
        }
        Ok(())
    }
}

/// Rewrites the header block `block` into `plain` with every Huffman-coded string replaced
/// by the same string as a plain literal; the representations and integers are copied as
/// they are. A truncated block or an invalid Huffman string is an error.
fn unhuffman(mut block: &[u8], plain: &mut Vec<u8>) -> Result<(), HpackError> {
    plain.clear();
    while let Some(&first) = block.first() {
        let (prefix, strings) = if first & 0x80 != 0 {
            (7, 0) // indexed
        } else if first & 0x40 != 0 {
            (6, 1) // literal with incremental indexing
        } else if first & 0x20 != 0 {
            (5, 0) // dynamic table size update
        } else {
            (4, 1) // literal without indexing / never indexed
        };
        let (index, rest) = integer(block, prefix)?;
        plain.extend_from_slice(&block[..block.len() - rest.len()]);
        block = rest;
        let strings = strings + usize::from(strings == 1 && index == 0);
        for _ in 0..strings {
            block = plain_string(block, plain)?;
        }
    }
    Ok(())
}

/// Copies the string at the start of `block` to `plain` as a plain literal; returns the rest.
fn plain_string<'b>(block: &'b [u8], plain: &mut Vec<u8>) -> Result<&'b [u8], HpackError> {
    let huffman_coded = block.first().ok_or(HpackError)? & 0x80 != 0;
    let (len, rest) = integer(block, 7)?;
    if len > rest.len() {
        return Err(HpackError);
    }
    let (raw, rest) = rest.split_at(len);
    if !huffman_coded {
        plain.extend_from_slice(&block[..block.len() - rest.len()]);
        return Ok(rest);
    }
    // Decoded after a placeholder length byte, then moved behind the real length.
    let start = plain.len();
    huffman::decode(raw, plain)?;
    let decoded_len = plain.len() - start;
    let mut length = [0u8; 6];
    let length = encode_integer(decoded_len, 7, &mut length);
    plain.splice(start..start, length.iter().copied());
    Ok(rest)
}

/// RFC 7541 §5.1 with the flag bits zero; returns the bytes written into `buf`.
fn encode_integer(value: usize, prefix: u8, buf: &mut [u8; 6]) -> &[u8] {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        buf[0] = value as u8;
        return &buf[..1];
    }
    buf[0] = mask as u8;
    let mut rest = value - mask;
    let mut n = 1;
    while rest >= 0x80 {
        buf[n] = (rest & 0x7f) as u8 | 0x80;
        rest >>= 7;
        n += 1;
    }
    buf[n] = rest as u8;
    &buf[..=n]
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

/// A static-table entry, through a fresh loona decoder (its table is private).
fn static_entry(index: usize, name_only: bool) -> Result<Field, HpackError> {
    let code = u8::try_from(index).map_err(|_| HpackError)?;
    let mut fields = Decoder::new()
        .decode(&[0x80 | code])
        .map_err(|_| HpackError)?;
    let (name, value) = fields.pop().ok_or(HpackError)?;
    Ok((name, if name_only { Vec::new() } else { value }))
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
    let huffman_coded = block.first().ok_or(HpackError)? & 0x80 != 0;
    let (len, rest) = integer(block, 7)?;
    if len > rest.len() {
        return Err(HpackError);
    }
    let (raw, rest) = rest.split_at(len);
    let value = if huffman_coded {
        let mut value = Vec::with_capacity(len * 8 / 5);
        huffman::decode(raw, &mut value)?;
        value
    } else {
        raw.to_vec()
    };
    Ok((value, rest))
}

#[cfg(test)]
mod tests {
    use super::{unhuffman, Block, HeaderDecoder};
    use loona_hpack::Decoder;

    /// The rewritten block decodes to what loona-hpack makes of the original, on the RFC's
    /// Huffman examples and on random blocks (both error or both give the same fields).
    #[test]
    fn unhuffman_keeps_the_meaning_of_blocks() {
        let c4 = "828684418cf1e3c2e5f23a6ba0ab90f4ff";
        let block: Vec<u8> = (0..c4.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&c4[i..i + 2], 16).unwrap())
            .collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut blocks = vec![block];
        for round in 0..20_000 {
            blocks.push(
                (0..round % 40)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed >> 24) as u8
                    })
                    .collect(),
            );
        }
        let mut plain = Vec::new();
        for block in &blocks {
            let reference = || {
                let mut decoder = Decoder::new();
                decoder.set_max_allowed_table_size(super::DEFAULT_TABLE_SIZE);
                decoder
            };
            let expected = reference().decode(block).ok();
            let rewritten = unhuffman(block, &mut plain)
                .ok()
                .and_then(|()| reference().decode(&plain).ok());
            assert_eq!(rewritten, expected, "{block:02x?}");
            let mut out = Block::default();
            let decoded = HeaderDecoder::new()
                .decode(block, &mut out)
                .ok()
                .map(|()| out.owned());
            assert_eq!(decoded, expected, "{block:02x?}");
        }
    }
}
