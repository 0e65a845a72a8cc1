//! Chunked transfer coding (RFC 9112 §7.1): an incremental, byte-exact scanner that finds
//! where a chunked body ends, and a decoder that joins a complete body's chunks. Both read
//! chunk-size lines with the one parser, [`chunk_size`], and cap a line at 64 KiB.

use std::ops::Range;

use memchr::memchr;

/// Longest chunk-size or trailer line.
const MAX_CHUNK_LINE: usize = 64 * 1024;

/// Where the chunked scanner stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a chunk-size line (with optional extensions).
    Size,
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Inside the trailer section, expecting field lines or the final blank line.
    Trailer,
}

/// Result of scanning a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkProgress {
    /// The body (and the message) ends at the scan position.
    Done,
    /// More bytes are needed.
    NeedMore,
    /// Not valid chunked coding.
    Invalid,
}

/// Advances `*pos` through `buf` as far as the chunked coding allows.
pub fn scan_chunked(state: &mut Chunked, buf: &[u8], pos: &mut usize) -> ChunkProgress {
    loop {
        let rest = buf.get(*pos..).unwrap_or_default();
        match *state {
            Chunked::Size | Chunked::Trailer => {
                let Some(lf) = memchr(b'\n', rest) else {
                    return too_long_or_more(rest.len());
                };
                let line = strip_cr(&rest[..lf]);
                *pos += lf + 1;
                *state = match (*state, chunk_size(line)) {
                    (Chunked::Trailer, _) if line.is_empty() => return ChunkProgress::Done,
                    (Chunked::Trailer, _) => Chunked::Trailer,
                    (_, Some(0)) => Chunked::Trailer,
                    (_, Some(n)) => Chunked::Data(n),
                    (_, None) => return ChunkProgress::Invalid,
                };
            }
            Chunked::Data(left) => {
                let take = left.min(rest.len() as u64);
                *pos += take as usize;
                if take < left {
                    *state = Chunked::Data(left - take);
                    return ChunkProgress::NeedMore;
                }
                *state = Chunked::DataEnd;
            }
            Chunked::DataEnd => match rest {
                [b'\n', ..] => {
                    *pos += 1;
                    *state = Chunked::Size;
                }
                [b'\r', b'\n', ..] => {
                    *pos += 2;
                    *state = Chunked::Size;
                }
                [] | [b'\r'] => return ChunkProgress::NeedMore,
                _ => return ChunkProgress::Invalid,
            },
        }
    }
}

fn too_long_or_more(pending: usize) -> ChunkProgress {
    if pending > MAX_CHUNK_LINE {
        ChunkProgress::Invalid
    } else {
        ChunkProgress::NeedMore
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The size a chunk-size line (without its line end) states: `1*HEXDIG [BWS ";" ext...]`, at
/// most 16 digits; `None` when the line is anything else or the size overflows a `u64`.
pub fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    line[..digits].iter().try_fold(0u64, |n, &d| {
        let value = (d as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(value))
    })
}

/// A decoded chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dechunked {
    /// The chunks' data, joined.
    pub data: Vec<u8>,
    /// Where the trailer field lines are in the input (through the line end of the last one;
    /// empty when there are none).
    pub trailers: Range<usize>,
    /// Just past the blank line ending the body: how many input bytes the body is.
    pub end: usize,
}

/// Why a chunked body does not decode; `at` is the offset in the body where it went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DechunkError {
    /// A chunk-size line that is not `1*HEXDIG [; ext]` (or a size over 64 bits).
    #[error("invalid chunk-size line at byte {at}")]
    Size {
        /// Where the line starts.
        at: usize,
    },
    /// Chunk data not followed by its line end.
    #[error("chunk data is not followed by CRLF at byte {at}")]
    DataEnd {
        /// Where the line end was expected.
        at: usize,
    },
    /// A chunk-size or trailer line longer than 64 KiB.
    #[error("line over 64 KiB at byte {at}")]
    LineTooLong {
        /// Where the line starts.
        at: usize,
    },
    /// The input ends before the chunked coding does.
    #[error("chunked body cut short at byte {at}")]
    Truncated {
        /// The input's length.
        at: usize,
    },
    /// The data would be larger than the caller's limit.
    #[error("chunked data over the limit of {limit} bytes at byte {at}")]
    TooLarge {
        /// Where the chunk that does not fit starts.
        at: usize,
        /// The caller's limit.
        limit: usize,
    },
}

/// The line at `at`: (content without its line end, start of the next line).
fn line(body: &[u8], at: usize) -> Result<(&[u8], usize), DechunkError> {
    let rest = &body[at..];
    match memchr(b'\n', rest) {
        Some(lf) => Ok((strip_cr(&rest[..lf]), at + lf + 1)),
        None if rest.len() > MAX_CHUNK_LINE => Err(DechunkError::LineTooLong { at }),
        None => Err(DechunkError::Truncated { at: body.len() }),
    }
}

/// Decodes the chunked body at the start of `body` (bytes after it are left alone), keeping at
/// most `limit` bytes of data. Chunk extensions are dropped; trailers are located, not parsed.
/// It accepts exactly what [`scan_chunked`] does, ending at the same byte. Memory grows with
/// the data actually present, never with a size a chunk line states.
pub fn dechunk(body: &[u8], limit: usize) -> Result<Dechunked, DechunkError> {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let (size_line, next) = line(body, at)?;
        let size = chunk_size(size_line).ok_or(DechunkError::Size { at })?;
        at = next;
        if size == 0 {
            let trailers_start = at;
            loop {
                let (field, next) = line(body, at)?;
                if field.is_empty() {
                    return Ok(Dechunked {
                        data,
                        trailers: trailers_start..at,
                        end: next,
                    });
                }
                at = next;
            }
        }
        let present = body.len() - at;
        if size > present as u64 {
            return Err(DechunkError::Truncated { at: body.len() });
        }
        let size = size as usize;
        if size > limit - data.len() {
            return Err(DechunkError::TooLarge { at, limit });
        }
        data.extend_from_slice(&body[at..at + size]);
        at += size;
        at += match &body[at..] {
            [b'\n', ..] => 1,
            [b'\r', b'\n', ..] => 2,
            [] | [b'\r'] => return Err(DechunkError::Truncated { at: body.len() }),
            _ => return Err(DechunkError::DataEnd { at }),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_with_extensions_and_trailers_byte_by_byte() {
        let body = b"4;name=value\r\nWiki\r\n5 ; x\r\npedia\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..end {
            let (mut state, mut pos) = (Chunked::Size, 0);
            let first = scan_chunked(&mut state, &body[..split], &mut pos);
            assert_eq!(first, ChunkProgress::NeedMore, "split {split}");
            assert_eq!(
                scan_chunked(&mut state, body, &mut pos),
                ChunkProgress::Done
            );
            assert_eq!(pos, end);
        }
        let (mut state, mut pos) = (Chunked::Size, 0);
        assert_eq!(
            scan_chunked(&mut state, b"zz\r\n", &mut pos),
            ChunkProgress::Invalid
        );
    }

    #[test]
    fn dechunks_data_and_locates_trailers() {
        let body = b"4;name=value\r\nWiki\r\n5 ; x\r\npedia\n0\r\nExpires: never\r\n\r\nNEXT";
        let out = dechunk(body, 1 << 20).unwrap();
        assert_eq!(out.data, b"Wikipedia");
        assert_eq!(&body[out.trailers.clone()], b"Expires: never\r\n");
        assert_eq!(&body[out.end..], b"NEXT");
        let plain = dechunk(b"0\r\n\r\n", 0).unwrap();
        assert_eq!((plain.data.len(), plain.trailers, plain.end), (0, 3..3, 5));
    }

    #[test]
    fn dechunk_errors_name_the_offset() {
        let cases: &[(&[u8], DechunkError)] = &[
            (b"zz\r\n", DechunkError::Size { at: 0 }),
            (b"3\r\nabc\r\nfx\r\n", DechunkError::Size { at: 8 }),
            (b"f,\r\n", DechunkError::Size { at: 0 }),
            (b"-1\r\n", DechunkError::Size { at: 0 }),
            (b"\r\n", DechunkError::Size { at: 0 }),
            (b"\x00\r\n", DechunkError::Size { at: 0 }),
            (b"3\r\nabcX\r\n", DechunkError::DataEnd { at: 6 }),
            (b"3\r\nabc\rX", DechunkError::DataEnd { at: 6 }),
            (b"3\r\nab", DechunkError::Truncated { at: 5 }),
            (b"3\r\nabc\r", DechunkError::Truncated { at: 7 }),
            (b"3\r\nabc\r\n", DechunkError::Truncated { at: 8 }),
            (b"0\r\nX: 1\r\n", DechunkError::Truncated { at: 9 }),
            (b"", DechunkError::Truncated { at: 0 }),
            // 17 digits, and a size over 64 bits.
            (b"10000000000000000\r\n", DechunkError::Size { at: 0 }),
            // A huge stated size is checked against the bytes present, never allocated.
            (
                b"ffffffffffffffff\r\nabc",
                DechunkError::Truncated { at: 21 },
            ),
            (b"7fffffff\r\n", DechunkError::Truncated { at: 10 }),
        ];
        for (body, want) in cases {
            assert_eq!(dechunk(body, usize::MAX), Err(*want), "{body:?}");
        }
        assert_eq!(
            dechunk(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", 5),
            Err(DechunkError::TooLarge { at: 11, limit: 5 })
        );
        let mut long = b"1".to_vec();
        long.extend(std::iter::repeat_n(b';', MAX_CHUNK_LINE + 1));
        assert_eq!(dechunk(&long, 9), Err(DechunkError::LineTooLong { at: 0 }));
        let mut trailer = b"0\r\n".to_vec();
        trailer.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE + 1));
        assert_eq!(
            dechunk(&trailer, 9),
            Err(DechunkError::LineTooLong { at: 3 })
        );
    }

    #[test]
    fn decoder_and_scanner_agree() {
        // Every body over a small alphabet: the decoder succeeds exactly where the scanner
        // finds the end, at the same byte, fails as "truncated" where it needs more and
        // otherwise where it finds the coding invalid.
        let alphabet: &[u8] = b"0a;\r\nx";
        let n = alphabet.len();
        for len in 0..=7u32 {
            for code in 0..n.pow(len) {
                let body: Vec<u8> = (0..len).map(|k| alphabet[code / n.pow(k) % n]).collect();
                let (mut state, mut pos) = (Chunked::Size, 0);
                let scanned = scan_chunked(&mut state, &body, &mut pos);
                match (dechunk(&body, usize::MAX), scanned) {
                    (Ok(out), ChunkProgress::Done) => assert_eq!(out.end, pos, "{body:?}"),
                    (Err(DechunkError::Truncated { at }), ChunkProgress::NeedMore) => {
                        assert_eq!(at, body.len())
                    }
                    (
                        Err(DechunkError::Size { .. } | DechunkError::DataEnd { .. }),
                        ChunkProgress::Invalid,
                    ) => {}
                    (decoded, scanned) => panic!("{body:?}: {decoded:?} vs {scanned:?}"),
                }
            }
        }
    }
}
