//! Record framing: the 5-byte header and a per-direction buffer that collects one record at a
//! time (bounded by the largest legal record), so records can be decrypted in place.

pub(crate) const HEADER_LEN: usize = 5;
/// 2^14 plus the largest expansion TLS 1.2 allows (RFC 5246 §6.2.3).
pub(crate) const MAX_BODY: usize = (1 << 14) + 2048;
pub(crate) const TYPE_CCS: u8 = 20;
pub(crate) const TYPE_ALERT: u8 = 21;
pub(crate) const TYPE_HANDSHAKE: u8 = 22;
pub(crate) const TYPE_APPLICATION_DATA: u8 = 23;

/// A record header that passed the plausibility checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub content_type: u8,
    pub version: u16,
    pub len: usize,
}

/// The header is not a TLS record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadHeader;

impl Header {
    /// Checks type 20..=23, version 0x0300..=0x0304 and length ≤ [`MAX_BODY`].
    pub fn parse(bytes: &[u8]) -> Result<Header, BadHeader> {
        let [content_type, major, minor, hi, lo, ..] = *bytes else {
            return Err(BadHeader);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if !(TYPE_CCS..=TYPE_APPLICATION_DATA).contains(&content_type)
            || major != 3
            || minor > 4
            || len > MAX_BODY
        {
            return Err(BadHeader);
        }
        Ok(Header {
            content_type,
            version: u16::from_be_bytes([major, minor]),
            len,
        })
    }
}

/// Collects the bytes of one record.
#[derive(Default)]
pub(crate) struct RecordBuffer {
    pub buf: Vec<u8>,
}

impl RecordBuffer {
    /// Moves bytes from `data` until one record is complete. Returns how many bytes were taken
    /// and whether the buffer now holds a whole record.
    pub fn fill(&mut self, data: &[u8]) -> Result<(usize, bool), BadHeader> {
        let mut taken = 0;
        if self.buf.len() < HEADER_LEN {
            taken = (HEADER_LEN - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..taken]);
            if self.buf.len() < HEADER_LEN {
                return Ok((taken, false));
            }
        }
        let total = HEADER_LEN + Header::parse(&self.buf)?.len;
        let more = (total - self.buf.len()).min(data.len() - taken);
        self.buf.extend_from_slice(&data[taken..taken + more]);
        Ok((taken + more, self.buf.len() == total))
    }

    /// The header of the buffered record, once at least 5 bytes are in.
    pub fn header(&self) -> Option<Header> {
        Header::parse(&self.buf).ok()
    }

    /// Bytes still missing from the buffered record (0 when empty or without a header).
    pub fn missing(&self) -> Option<usize> {
        self.header().map(|h| HEADER_LEN + h.len - self.buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        assert!(Header::parse(&[22, 3, 1, 0, 5]).is_ok());
        assert!(Header::parse(&[24, 3, 3, 0, 5]).is_err());
        assert!(Header::parse(&[23, 2, 3, 0, 5]).is_err());
        assert!(Header::parse(&[23, 3, 5, 0, 5]).is_err());
        assert!(Header::parse(&[23, 3, 3, 0xff, 0xff]).is_err());
        assert!(Header::parse(&[23, 3, 3]).is_err());
    }

    #[test]
    fn fills_byte_by_byte() {
        let record = [23u8, 3, 3, 0, 3, 1, 2, 3, 9];
        let mut rb = RecordBuffer::default();
        for (i, b) in record[..8].iter().enumerate() {
            let (n, done) = rb.fill(std::slice::from_ref(b)).unwrap();
            assert_eq!((n, done), (1, i == 7));
        }
        assert_eq!(rb.buf, &record[..8]);
        let mut rb = RecordBuffer::default();
        assert_eq!(rb.fill(&record).unwrap(), (8, true));
    }
}
