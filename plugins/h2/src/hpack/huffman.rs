//! HPACK's Huffman code (RFC 7541 §5.2, Appendix B), decoded four bits at a time by a state
//! machine built once from the code table: one table lookup per nibble instead of a walk per
//! bit.

use std::sync::LazyLock;

use super::HpackError;

/// Symbol 256 (EOS): never valid inside a string.
const EOS: usize = 256;
/// The longest padding allowed at the end of a string (RFC 7541 §5.2).
const MAX_PADDING_BITS: u8 = 7;

/// `(code, length in bits)` of each symbol, EOS last (RFC 7541 Appendix B).
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), (0xfffffe4, 28), (0xfffffe5, 28),
    (0xfffffe6, 28), (0xfffffe7, 28), (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28), (0xfffffed, 28), (0xfffffee, 28),
    (0xfffffef, 28), (0xffffff0, 28), (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), (0xffffff8, 28), (0xffffff9, 28),
    (0xffffffa, 28), (0xffffffb, 28), (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11), (0x3fa, 10), (0x3fb, 10),
    (0xf9, 8), (0x7fb, 11), (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6), (0x1a, 6), (0x1b, 6),
    (0x1c, 6), (0x1d, 6), (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10), (0x1ffa, 13), (0x21, 6),
    (0x5d, 7), (0x5e, 7), (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7), (0x67, 7), (0x68, 7),
    (0x69, 7), (0x6a, 7), (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7), (0xfc, 8), (0x73, 7),
    (0xfd, 8), (0x1ffb, 13), (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), (0x24, 6), (0x5, 5),
    (0x25, 6), (0x26, 6), (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5), (0x2b, 6), (0x76, 7),
    (0x2c, 6), (0x8, 5), (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), (0x7fc, 11), (0x3ffd, 14),
    (0x1ffd, 13), (0xffffffc, 28), (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23), (0x3fffd6, 22), (0x7fffda, 23),
    (0x7fffdb, 23), (0x7fffdc, 23), (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23), (0xffffee, 24), (0x7fffe1, 23),
    (0x7fffe2, 23), (0x7fffe3, 23), (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24), (0x3fffda, 22), (0x1fffdd, 21),
    (0xfffe9, 20), (0x3fffdb, 22), (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24), (0x1fffdf, 21), (0x3fffdf, 22),
    (0x7fffeb, 23), (0x7fffec, 23), (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23), (0xfffea, 20), (0x3fffe2, 22),
    (0x3fffe3, 22), (0x3fffe4, 22), (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), (0x3fffe7, 22), (0x7ffff2, 23),
    (0x3fffe8, 22), (0x1ffffec, 25), (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25), (0x7fff2, 19), (0x1fffe3, 21),
    (0x3ffffe6, 26), (0x7ffffe0, 27), (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), (0xffffffd, 28), (0x7ffffe3, 27),
    (0x7ffffe4, 27), (0x7ffffe5, 27), (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23), (0x3fffea, 22), (0x3fffeb, 22),
    (0x1ffffee, 25), (0x1ffffef, 25), (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26), (0x7ffffe7, 27), (0x7ffffe8, 27),
    (0x7ffffe9, 27), (0x7ffffea, 27), (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), (0x3fffffff, 30),
];

/// What one nibble does from one state.
#[derive(Clone, Copy, Default)]
struct Step {
    next: u8,
    symbol: u8,
    emits: bool,
    /// The nibble completes EOS: the string is invalid.
    fails: bool,
}

/// The states are the inner nodes of the code tree (256 of them; the root is 0).
struct Machine {
    steps: Box<[[Step; 16]; 256]>,
    /// Where a string may end: at the root, or after at most 7 bits of EOS's prefix (all ones).
    accepting: [bool; 256],
}

static MACHINE: LazyLock<Machine> = LazyLock::new(Machine::build);

/// A child in the code tree.
#[derive(Clone, Copy)]
enum Node {
    Missing,
    Inner(u8),
    Leaf(usize),
}

impl Machine {
    fn build() -> Machine {
        let tree = code_tree();
        let mut steps = Box::new([[Step::default(); 16]; 256]);
        for (state, row) in steps.iter_mut().enumerate().take(tree.len()) {
            for (nibble, step) in row.iter_mut().enumerate() {
                *step = walk(&tree, state, nibble);
            }
        }
        Machine {
            steps,
            accepting: padding_states(&tree),
        }
    }
}

/// The inner nodes of the code tree, each with its two children.
fn code_tree() -> Vec<[Node; 2]> {
    let mut tree = vec![[Node::Missing; 2]];
    for (symbol, &(code, len)) in CODES.iter().enumerate() {
        let mut node = 0usize;
        for bit in (0..len).rev() {
            let branch = ((code >> bit) & 1) as usize;
            if bit == 0 {
                tree[node][branch] = Node::Leaf(symbol);
            } else {
                node = match tree[node][branch] {
                    Node::Inner(next) => usize::from(next),
                    _ => {
                        tree.push([Node::Missing; 2]);
                        let next = tree.len() - 1;
                        tree[node][branch] = Node::Inner(next as u8);
                        next
                    }
                };
            }
        }
    }
    tree
}

/// Four bits (most significant first) from `state`. A code is at least five bits long, so a
/// nibble completes at most one symbol.
fn walk(tree: &[[Node; 2]], state: usize, nibble: usize) -> Step {
    let mut step = Step::default();
    let mut node = state;
    for bit in (0..4).rev() {
        match tree[node][(nibble >> bit) & 1] {
            Node::Inner(next) => node = usize::from(next),
            Node::Leaf(EOS) | Node::Missing => {
                step.fails = true;
                return step;
            }
            Node::Leaf(symbol) => {
                step.symbol = symbol as u8;
                step.emits = true;
                node = 0;
            }
        }
    }
    step.next = node as u8;
    step
}

/// The states reached from the root by at most seven one-bits.
fn padding_states(tree: &[[Node; 2]]) -> [bool; 256] {
    let mut accepting = [false; 256];
    let mut node = 0usize;
    accepting[0] = true;
    for _ in 0..MAX_PADDING_BITS {
        match tree[node][1] {
            Node::Inner(next) => node = usize::from(next),
            _ => break,
        }
        accepting[node] = true;
    }
    accepting
}

/// Appends the decoded `raw` to `out`: an error for EOS inside the string, padding longer
/// than seven bits or padding that is not all ones.
pub(crate) fn decode(raw: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let machine = &*MACHINE;
    let start = out.len();
    // The shortest code is five bits: at most 8 symbols per 5 bytes.
    out.resize(start + raw.len() * 8 / 5 + 1, 0);
    let decoded = &mut out[start..];
    let mut n = 0;
    let mut state = 0usize;
    for &byte in raw {
        for nibble in [byte >> 4, byte & 0xf] {
            let step = machine.steps[state][usize::from(nibble)];
            if step.fails {
                out.truncate(start);
                return Err(HpackError);
            }
            decoded[n] = step.symbol;
            n += usize::from(step.emits);
            state = usize::from(step.next);
        }
    }
    out.truncate(start + n);
    if machine.accepting[state] {
        Ok(())
    } else {
        Err(HpackError)
    }
}

/// Strings remembered by a [`Memo`].
const MEMO_SLOTS: usize = 8;
/// Longer strings are decoded each time (they are unlikely to repeat).
const MEMO_MAX_RAW: usize = 64;

/// The last few short strings decoded, with what they decoded to. An encoder that sends the
/// same literals again (nginx sends `server`, `date`, `content-type` and `content-length` as
/// new literals in every response) then costs a comparison instead of a decoding.
#[derive(Default)]
pub(crate) struct Memo {
    slots: Vec<(Vec<u8>, Vec<u8>)>,
    next: usize,
}

impl Memo {
    /// [`decode`], from memory when `raw` was decoded lately.
    pub fn decode(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
        if raw.len() > MEMO_MAX_RAW {
            return decode(raw, out);
        }
        if let Some((_, decoded)) = self.slots.iter().find(|(seen, _)| seen.as_slice() == raw) {
            out.extend_from_slice(decoded);
            return Ok(());
        }
        let start = out.len();
        decode(raw, out)?;
        let decoded = &out[start..];
        if self.slots.len() < MEMO_SLOTS {
            self.slots.push((raw.to_vec(), decoded.to_vec()));
        } else {
            let (seen, remembered) = &mut self.slots[self.next];
            seen.clear();
            seen.extend_from_slice(raw);
            remembered.clear();
            remembered.extend_from_slice(decoded);
            self.next = (self.next + 1) % MEMO_SLOTS;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{decode, Memo, CODES, MEMO_SLOTS};
    use loona_hpack::huffman::HuffmanDecoder;

    /// Encodes `symbols` with the code table, padded with ones.
    fn encode(symbols: &[usize]) -> Vec<u8> {
        let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
        for &s in symbols {
            let (code, len) = CODES[s];
            acc = acc << len | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) as u8);
        }
        out
    }

    fn decoded(raw: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        decode(raw, &mut out).ok().map(|()| out)
    }

    #[test]
    fn every_symbol_round_trips() {
        let all: Vec<usize> = (0..256).collect();
        let expected: Vec<u8> = (0..=255).collect();
        assert_eq!(decoded(&encode(&all)), Some(expected));
        assert_eq!(decoded(&[]), Some(Vec::new()));
    }

    #[test]
    fn rfc7541_c4_www_example_com() {
        let raw = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(decoded(&raw).as_deref(), Some(&b"www.example.com"[..]));
    }

    #[test]
    fn eos_and_bad_padding_are_errors() {
        assert_eq!(decoded(&encode(&[b'a' as usize, 256])), None);
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), None); // 32 ones: EOS inside
        assert_eq!(decoded(&[0x1f, 0xff]), None); // 'a' (00011) then 11 bits of padding
        assert_eq!(decoded(&[0x18]), None); // 'a' then zero padding
        assert_eq!(decoded(&[0x1f]), Some(b"a".to_vec()));
    }

    /// A memo gives what decoding gives, over more strings than it holds, errors included.
    #[test]
    fn the_memo_decodes_as_the_decoder() {
        let mut memo = Memo::default();
        let strings: Vec<Vec<u8>> = (0..MEMO_SLOTS + 3)
            .map(|i| encode(&[b'a' as usize + i, b'0' as usize + i % 10]))
            .chain([vec![0xff, 0xff, 0xff, 0xff], vec![0x18]])
            .collect();
        for round in 0..4 {
            for raw in strings.iter().cycle().skip(round).take(strings.len() * 2) {
                let mut out = b"prefix".to_vec();
                let verdict = memo.decode(raw, &mut out);
                assert_eq!(verdict.ok().map(|()| out[6..].to_vec()), decoded(raw));
            }
        }
    }

    /// The same verdict and output as loona-hpack's bit-by-bit decoder on random input.
    #[test]
    fn agrees_with_loona_hpack_on_random_strings() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let raw: Vec<u8> = if round % 2 == 0 {
                let symbols: Vec<usize> =
                    (0..next() % 12).map(|_| (next() % 256) as usize).collect();
                let mut raw = encode(&symbols);
                if round % 4 == 0 && !raw.is_empty() {
                    let at = (next() as usize) % raw.len();
                    raw[at] ^= 1 << (next() % 8);
                }
                raw
            } else {
                (0..next() % 8).map(|_| next() as u8).collect()
            };
            let reference = HuffmanDecoder::new().decode(&raw).ok();
            assert_eq!(decoded(&raw), reference, "{raw:02x?}");
        }
    }
}
