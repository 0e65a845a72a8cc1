//! One direction's HPACK decoder: loona-hpack while the dynamic table is known, a partial
//! table once it is not (mid-connection start, lost bytes).
//!
//! With the table unknown, an index refers to the n-th most recently added entry still in
//! the encoder's table; entries added since the loss are therefore resolvable exactly
//! (an encoder only references entries it still holds), older ones are not.

use std::collections::VecDeque;

use loona_hpack::huffman::HuffmanDecoder;
use loona_hpack::Decoder;

/// RFC 7541 §4.2 / RFC 9113 §6.5.2 initial SETTINGS_HEADER_TABLE_SIZE.
pub(crate) const DEFAULT_TABLE_SIZE: usize = 4096;
/// The largest dynamic table accepted, whatever the receiver advertised.
pub(crate) const MAX_TABLE_SIZE: usize = 1 << 20;
const STATIC_ENTRIES: usize = 61;
/// RFC 7541 §4.1: an entry's size is its name, its value and 32.
const ENTRY_OVERHEAD: usize = 32;

pub(crate) type Field = (Vec<u8>, Vec<u8>);

/// A decoded header block.
#[derive(Debug, Default)]
pub(crate) struct Block {
    pub fields: Vec<Field>,
    /// Some fields referenced table entries that are not known.
    pub unknown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hpack: undecodable block")]
pub(crate) struct HpackError;

pub(crate) struct HeaderDecoder {
    state: State,
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
        if let State::Known(decoder) = &mut self.state {
            decoder.set_max_allowed_table_size(size.min(MAX_TABLE_SIZE));
        }
    }

    pub fn decode(&mut self, block: &[u8]) -> Result<Block, HpackError> {
        match &mut self.state {
            State::Known(decoder) => {
                let fields = decoder.decode(block).map_err(|_| HpackError)?;
                Ok(Block {
                    fields,
                    unknown: false,
                })
            }
            State::Unknown(table) => table.decode(block),
        }
    }
}

/// The entries added since the state was lost, newest first (`None`: a name that was
/// itself unknown).
struct PartialTable {
    entries: VecDeque<Option<Field>>,
    size: usize,
    huffman: HuffmanDecoder,
}

impl Default for PartialTable {
    fn default() -> Self {
        PartialTable {
            entries: VecDeque::new(),
            size: 0,
            huffman: HuffmanDecoder::new(),
        }
    }
}

/// What a table lookup gives with a partial table.
enum Lookup {
    Found(Field),
    Unknown,
}

impl PartialTable {
    fn decode(&mut self, mut block: &[u8]) -> Result<Block, HpackError> {
        let mut out = Block::default();
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
                Lookup::Found(field) => out.fields.push(field),
                Lookup::Unknown => out.unknown = true,
            }
            block = rest;
        }
        Ok(out)
    }

    fn literal<'b>(
        &mut self,
        block: &'b [u8],
        prefix: u8,
    ) -> Result<(Lookup, &'b [u8]), HpackError> {
        let (index, rest) = integer(block, prefix)?;
        let (name, rest) = if index == 0 {
            let (name, rest) = string(rest, &mut self.huffman)?;
            (Lookup::Found((name, Vec::new())), rest)
        } else {
            (self.lookup(index, true)?, rest)
        };
        let (value, rest) = string(rest, &mut self.huffman)?;
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

/// RFC 7541 §5.2.
fn string<'b>(
    block: &'b [u8],
    huffman: &mut HuffmanDecoder,
) -> Result<(Vec<u8>, &'b [u8]), HpackError> {
    let huffman_coded = block.first().ok_or(HpackError)? & 0x80 != 0;
    let (len, rest) = integer(block, 7)?;
    if len > rest.len() {
        return Err(HpackError);
    }
    let (raw, rest) = rest.split_at(len);
    let value = if huffman_coded {
        huffman.decode(raw).map_err(|_| HpackError)?
    } else {
        raw.to_vec()
    };
    Ok((value, rest))
}
