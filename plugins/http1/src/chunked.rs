//! Chunked transfer coding (RFC 9112 §7.1): an incremental, byte-exact scanner.

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

/// `1*HEXDIG [BWS ";" ext...]`.
fn chunk_size(line: &[u8]) -> Option<u64> {
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
}
