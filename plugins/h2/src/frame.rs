//! Frame headers (RFC 9113 §4.1), the per-type checks and the resynchronisation heuristic.

pub(crate) const HEADER_LEN: usize = 9;

pub(crate) const DATA: u8 = 0;
pub(crate) const HEADERS: u8 = 1;
pub(crate) const PRIORITY: u8 = 2;
pub(crate) const RST_STREAM: u8 = 3;
pub(crate) const SETTINGS: u8 = 4;
pub(crate) const PUSH_PROMISE: u8 = 5;
pub(crate) const PING: u8 = 6;
pub(crate) const GOAWAY: u8 = 7;
pub(crate) const WINDOW_UPDATE: u8 = 8;
pub(crate) const CONTINUATION: u8 = 9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY_FLAG: u8 = 0x20;

pub(crate) const SETTINGS_HEADER_TABLE_SIZE: u16 = 1;

/// The default SETTINGS_MAX_FRAME_SIZE: the resync heuristic accepts no longer frame.
const RESYNC_MAX_LEN: usize = 16_384;

/// A parsed 9-byte frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
}

impl FrameHeader {
    /// Parses the first 9 bytes of `data` (`None` when shorter).
    pub fn parse(data: &[u8]) -> Option<FrameHeader> {
        let h = data.get(..HEADER_LEN)?;
        Some(FrameHeader {
            len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    /// Whether the length and stream id fit the type (RFC 9113 §6); unknown types pass.
    pub fn well_formed(&self) -> bool {
        let on_stream = self.stream_id != 0;
        match self.kind {
            DATA | HEADERS | CONTINUATION | PUSH_PROMISE => on_stream,
            PRIORITY => on_stream && self.len == 5,
            RST_STREAM => on_stream && self.len == 4,
            SETTINGS => {
                !on_stream && self.len.is_multiple_of(6) && (self.flags & ACK == 0 || self.len == 0)
            }
            PING => !on_stream && self.len == 8,
            GOAWAY => !on_stream && self.len >= 8,
            WINDOW_UPDATE => self.len == 4,
            _ => true,
        }
    }

    /// A stricter test for resynchronising: a known type, only its defined flags, a
    /// well-formed length, no reserved bit, no longer than the default maximum frame size.
    fn plausible(raw: &[u8]) -> Option<FrameHeader> {
        let header = FrameHeader::parse(raw)?;
        let defined_flags = match header.kind {
            DATA => END_STREAM | PADDED,
            HEADERS => END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,
            PUSH_PROMISE => END_HEADERS | PADDED,
            CONTINUATION => END_HEADERS,
            SETTINGS | PING => ACK,
            PRIORITY | RST_STREAM | GOAWAY | WINDOW_UPDATE => 0,
            _ => return None,
        };
        let reserved_bit = raw[5] & 0x80 != 0;
        let ok = header.flags & !defined_flags == 0
            && !reserved_bit
            && header.len <= RESYNC_MAX_LEN
            && header.well_formed()
            && header.kind != CONTINUATION;
        ok.then_some(header)
    }
}

/// Where resynchronisation stands on a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resync {
    /// A frame starts at this offset, confirmed by the frame after it (or by the end of
    /// the buffer falling exactly on its end).
    Found(usize),
    /// A candidate at this offset needs more bytes to be confirmed; the bytes before it
    /// can go.
    NeedMore(usize),
}

/// Scans `buf` for the first plausible frame header whose successor header is plausible
/// too. Every position is tried once; the scan is bounded by the buffer, which holds at most
/// one candidate frame plus a header beyond what was scanned.
pub(crate) fn resync(buf: &[u8]) -> Resync {
    for start in 0..buf.len() {
        let Some(header) = buf.get(start..).and_then(FrameHeader::plausible) else {
            if buf.len() - start < HEADER_LEN {
                return Resync::NeedMore(start);
            }
            continue;
        };
        let next = start + HEADER_LEN + header.len;
        if next == buf.len() {
            return Resync::Found(start);
        }
        match buf.get(next..) {
            Some(rest) if rest.len() >= HEADER_LEN => {
                if FrameHeader::plausible(rest).is_some() {
                    return Resync::Found(start);
                }
            }
            _ => return Resync::NeedMore(start),
        }
    }
    Resync::NeedMore(buf.len())
}

/// Strips the padding of a PADDED frame's payload (`None`: the pad length is too long).
pub(crate) fn unpad(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|end| &rest[..end])
}
