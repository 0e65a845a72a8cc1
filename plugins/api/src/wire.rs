//! Wire codecs shared by plugins: the `.gor` record (files, stdout, TCP) and the
//! middleware's hex line.

use crate::message::Message;
use crate::meta::MetaError;
use bytes::Bytes;
use std::io::{self, BufRead, Write};

/// The record separator GoReplay writes after every payload: `"\n🐵🙈🙉\n"`.
pub const RECORD_SEPARATOR: &[u8] = "\n\u{1F435}\u{1F648}\u{1F649}\n".as_bytes();

/// The separator as a line of its own (without the `\n` that ends the payload).
const SEPARATOR_LINE: &[u8] = "\u{1F435}\u{1F648}\u{1F649}\n".as_bytes();

/// The longest `.gor` record (header line and payload) any reader accepts, whatever
/// `--copy-buffer-size` says: 64 MiB. Longer records are skipped and counted `oversized`.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// The longest middleware line accepted: a [`MAX_RECORD_LEN`] record in hex and its `\r\n`.
pub const MAX_HEX_LINE: usize = 2 * MAX_RECORD_LEN + 2;

/// Writes one `.gor` record: header line, payload, separator.
pub fn write_record(out: &mut impl Write, msg: &Message) -> io::Result<()> {
    out.write_all(&msg.meta.line())?;
    out.write_all(&msg.payload)?;
    out.write_all(RECORD_SEPARATOR)
}

/// Size in bytes of the record [`write_record`] writes.
pub fn record_len(msg: &Message) -> usize {
    msg.meta.line_len() + msg.payload.len() + RECORD_SEPARATOR.len()
}

/// A problem with one record of a `.gor` stream; the stream goes on after it.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The header line is malformed.
    #[error("record {record}: {source}")]
    BadHeader {
        /// 1-based record number.
        record: u64,
        /// What was wrong.
        source: MetaError,
    },
    /// The stream ended inside a record.
    #[error("record {record}: stream ends without a record separator ({bytes} bytes cut off)")]
    Unterminated {
        /// 1-based record number.
        record: u64,
        /// Bytes in the partial record.
        bytes: u64,
    },
    /// The record is longer than [`MAX_RECORD_LEN`]; it was skipped without being buffered
    /// whole, and reading goes on after its separator.
    #[error(
        "record {record}: {bytes} bytes, longer than the {MAX_RECORD_LEN}-byte record cap; skipped"
    )]
    Oversized {
        /// 1-based record number.
        record: u64,
        /// Bytes in the record (header line and payload).
        bytes: u64,
    },
    /// Reading failed.
    #[error("read error after record {record}: {source}")]
    Io {
        /// Records read so far.
        record: u64,
        /// The I/O error.
        source: io::Error,
    },
}

/// A record as read, possibly cut to the reader's size cap.
#[derive(Debug)]
pub struct Record {
    /// The parsed message.
    pub message: Message,
    /// Bytes dropped because the record was larger than the cap.
    pub truncated_bytes: u64,
    /// 1-based position in the stream.
    pub number: u64,
}

/// Reads `.gor` records with GoReplay's rules (a record ends at a line that is exactly the
/// separator; the `\n` before it is not part of the payload), in bounded memory.
pub struct RecordReader<R> {
    input: R,
    pending: Pending,
    number: u64,
    failed: bool,
}

/// The record being assembled and the line being scanned.
struct Pending {
    cap: usize,
    record: Vec<u8>,
    seen: u64,
    line_start: u64,
    line_window: Vec<u8>,
}

impl<R: BufRead> RecordReader<R> {
    /// Reads from `input`, keeping at most `cap` bytes of any record (never more than
    /// [`MAX_RECORD_LEN`]; longer records are [`RecordError::Oversized`]).
    pub fn new(input: R, cap: usize) -> Self {
        RecordReader {
            input,
            pending: Pending {
                cap: cap.clamp(1, MAX_RECORD_LEN),
                record: Vec::new(),
                seen: 0,
                line_start: 0,
                line_window: Vec::with_capacity(SEPARATOR_LINE.len()),
            },
            number: 0,
            failed: false,
        }
    }

    /// Records read so far (good or bad).
    pub fn records_read(&self) -> u64 {
        self.number
    }

    /// The next record, `Ok(None)` at the end, or an error for one bad record.
    pub fn next_record(&mut self) -> Result<Option<Record>, RecordError> {
        if self.failed {
            return Ok(None);
        }
        loop {
            let available = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    self.failed = true;
                    return Err(RecordError::Io {
                        record: self.number,
                        source,
                    });
                }
            };
            if available.is_empty() {
                return self.finish_stream();
            }
            let (chunk_len, ends_line) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            self.pending.push(&available[..chunk_len]);
            self.input.consume(chunk_len);
            if ends_line && self.pending.end_line() {
                self.number += 1;
                return self.pending.take_record(self.number).map(Some);
            }
        }
    }

    fn finish_stream(&mut self) -> Result<Option<Record>, RecordError> {
        if self.pending.seen == 0 {
            return Ok(None);
        }
        self.failed = true;
        Err(RecordError::Unterminated {
            record: self.number + 1,
            bytes: self.pending.seen,
        })
    }
}

impl Pending {
    fn push(&mut self, chunk: &[u8]) {
        let line_len = self.seen - self.line_start;
        if line_len + (chunk.len() as u64) <= SEPARATOR_LINE.len() as u64 {
            self.line_window.extend_from_slice(chunk);
        }
        if self.seen > (MAX_RECORD_LEN + SEPARATOR_LINE.len()) as u64 {
            // Oversized: it will be skipped, so keep nothing more of it.
            self.record = Vec::new();
            self.seen += chunk.len() as u64;
            return;
        }
        let room = (self.cap + SEPARATOR_LINE.len()).saturating_sub(self.record.len());
        self.record
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        self.seen += chunk.len() as u64;
    }

    /// Ends the current line; true if it was the separator (the record is complete).
    fn end_line(&mut self) -> bool {
        let is_separator = self.seen - self.line_start == SEPARATOR_LINE.len() as u64
            && self.line_window == SEPARATOR_LINE;
        self.line_window.clear();
        if !is_separator {
            self.line_start = self.seen;
        }
        is_separator
    }

    /// The completed record (everything before the separator line minus its `\n`).
    fn take_record(&mut self, number: u64) -> Result<Record, RecordError> {
        let content_len = self.line_start.saturating_sub(1);
        let kept = content_len.min(self.cap as u64) as usize;
        let mut bytes = std::mem::take(&mut self.record);
        bytes.truncate(kept);
        self.seen = 0;
        self.line_start = 0;
        if content_len > MAX_RECORD_LEN as u64 {
            return Err(RecordError::Oversized {
                record: number,
                bytes: content_len,
            });
        }
        Message::from_bytes(Bytes::from(bytes))
            .map(|message| Record {
                message,
                truncated_bytes: content_len - kept as u64,
                number,
            })
            .map_err(|source| RecordError::BadHeader {
                record: number,
                source,
            })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Encodes a message as the middleware protocol's line: `hex(header line ‖ payload) "\n"`.
pub fn encode_hex_line(msg: &Message, out: &mut Vec<u8>) {
    let meta = msg.meta.line();
    out.reserve((meta.len() + msg.payload.len()) * 2 + 1);
    for &b in meta.iter().chain(msg.payload.iter()) {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    out.push(b'\n');
}

/// Why a middleware line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexLineError {
    /// Odd number of hex digits.
    #[error("odd number of hex digits ({0})")]
    OddLength(usize),
    /// A byte that is not a hex digit.
    #[error("byte {value:#04x} at column {column} is not a hex digit")]
    NotHex {
        /// 1-based column.
        column: usize,
        /// The offending byte.
        value: u8,
    },
    /// The decoded bytes have no valid header line.
    #[error("decoded message has no valid header: {0}")]
    BadHeader(MetaError),
    /// The line is empty.
    #[error("empty line")]
    Empty,
}

/// Decodes one middleware line (without or with its trailing `\n`; upper- or lower-case hex).
pub fn decode_hex_line(line: &[u8]) -> Result<Message, HexLineError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(HexLineError::Empty);
    }
    if let Some(column) = line.iter().position(|&b| hex_value(b).is_none()) {
        return Err(HexLineError::NotHex {
            column: column + 1,
            value: line[column],
        });
    }
    if !line.len().is_multiple_of(2) {
        return Err(HexLineError::OddLength(line.len()));
    }
    let bytes: Vec<u8> = line
        .chunks_exact(2)
        .map(|pair| hex_value(pair[0]).unwrap_or(0) << 4 | hex_value(pair[1]).unwrap_or(0))
        .collect();
    Message::from_bytes(Bytes::from(bytes)).map_err(HexLineError::BadHeader)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Kind, Meta};

    fn msg(id: &str, body: &str) -> Message {
        Message::new(
            Meta::new(Kind::Request, id, 1, 0).unwrap(),
            body.to_string(),
        )
    }

    fn read_all(bytes: &[u8], cap: usize) -> Vec<Result<Record, RecordError>> {
        let mut reader = RecordReader::new(bytes, cap);
        let mut out = Vec::new();
        loop {
            match reader.next_record() {
                Ok(None) => break,
                other => out.push(other.map(|r| r.unwrap())),
            }
        }
        out
    }

    #[test]
    fn records_round_trip_byte_exact() {
        let mut stream = Vec::new();
        let messages = [msg("a", "GET / HTTP/1.1\r\n\r\n"), msg("b", "x\n\ny\n")];
        for m in &messages {
            write_record(&mut stream, m).unwrap();
        }
        let read: Vec<Message> = read_all(&stream, 1 << 20)
            .into_iter()
            .map(|r| r.unwrap().message)
            .collect();
        assert_eq!(read, messages);
    }

    #[test]
    fn separator_inside_payload_line_is_not_a_record_end() {
        let body = "a 🐵🙈🙉 b\n🐵🙈🙉x\n";
        let mut stream = Vec::new();
        write_record(&mut stream, &msg("a", body)).unwrap();
        let read = read_all(&stream, 1 << 20);
        assert_eq!(read.len(), 1);
        assert_eq!(
            &read[0].as_ref().unwrap().message.payload[..],
            body.as_bytes()
        );
    }

    #[test]
    fn oversized_records_are_cut_and_counted() {
        let mut stream = Vec::new();
        write_record(&mut stream, &msg("a", &"z".repeat(100))).unwrap();
        write_record(&mut stream, &msg("b", "ok")).unwrap();
        let read = read_all(&stream, 20);
        let first = read[0].as_ref().unwrap();
        assert_eq!(
            first.message.meta.line().len() + first.message.payload.len(),
            20
        );
        assert_eq!(first.truncated_bytes, 100 + 8 - 20);
        assert_eq!(&read[1].as_ref().unwrap().message.payload[..], b"ok");
    }

    #[test]
    fn records_over_the_cap_are_skipped_and_reading_resyncs() {
        let mut stream = b"1 huge 1 0\n".to_vec();
        stream.resize(stream.len() + MAX_RECORD_LEN, b'z');
        stream.extend_from_slice(RECORD_SEPARATOR);
        write_record(&mut stream, &msg("next", "ok")).unwrap();
        let read = read_all(&stream, usize::MAX);
        assert!(
            matches!(read[0], Err(RecordError::Oversized { record: 1, bytes }) if bytes > MAX_RECORD_LEN as u64),
            "{:?}",
            read[0]
        );
        assert_eq!(read[1].as_ref().unwrap().message.id(), "next");
        assert_eq!(read.len(), 2);
    }

    #[test]
    fn bad_records_are_reported_and_skipped() {
        let mut stream = b"1 onlytwo\nGET /\n".to_vec();
        stream.extend_from_slice(SEPARATOR_LINE);
        write_record(&mut stream, &msg("good", "ok")).unwrap();
        stream.extend_from_slice(b"1 cut 1 0\npartial");
        let read = read_all(&stream, 1 << 20);
        assert!(matches!(
            read[0],
            Err(RecordError::BadHeader { record: 1, .. })
        ));
        assert_eq!(read[1].as_ref().unwrap().message.id(), "good");
        assert!(matches!(
            read[2],
            Err(RecordError::Unterminated { record: 3, .. })
        ));
        assert_eq!(read.len(), 3);
    }

    #[test]
    fn hex_lines_round_trip() {
        let m = msg("abc", "POST / HTTP/1.1\r\n\r\n\x00\x7f");
        let mut line = Vec::new();
        encode_hex_line(&m, &mut line);
        assert_eq!(*line.last().unwrap(), b'\n');
        assert_eq!(decode_hex_line(&line).unwrap(), m);
        let upper = String::from_utf8(line.clone()).unwrap().to_uppercase();
        assert_eq!(decode_hex_line(upper.as_bytes()).unwrap(), m);
    }

    #[test]
    fn bad_hex_lines_say_why() {
        assert_eq!(decode_hex_line(b"abc\n"), Err(HexLineError::OddLength(3)));
        assert_eq!(
            decode_hex_line(b"zz\n"),
            Err(HexLineError::NotHex {
                column: 1,
                value: b'z'
            })
        );
        assert!(matches!(
            decode_hex_line(b"4142\n"),
            Err(HexLineError::BadHeader(_))
        ));
    }
}
