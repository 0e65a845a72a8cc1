//! GoReplay's header line: `"<kind> <id> <timestamp_ns> <latency_ns>\n"`.
//!
//! The line is parsed once where bytes enter and kept verbatim, so writing it back is
//! byte-exact whatever it held (3 or 4 fields, 24- or 40-char ids, unknown trailing fields).
//! A line built here (for captured messages) keeps its fields and is formatted by
//! [`Meta::line`] when an output writes it.

use bytes::Bytes;
use std::fmt;

/// What a message carries, from the first field of its header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `1`: a request (captured or received).
    Request,
    /// `2`: a response captured from the original server.
    Response,
    /// `3`: a response to a request we replayed.
    ReplayedResponse,
    /// Any other single digit, kept as it was.
    Other(u8),
}

impl Kind {
    /// The ASCII digit that encodes this kind.
    pub fn as_byte(self) -> u8 {
        match self {
            Kind::Request => b'1',
            Kind::Response => b'2',
            Kind::ReplayedResponse => b'3',
            Kind::Other(b) => b,
        }
    }

    fn from_byte(b: u8) -> Kind {
        match b {
            b'1' => Kind::Request,
            b'2' => Kind::Response,
            b'3' => Kind::ReplayedResponse,
            other => Kind::Other(other),
        }
    }

    /// True for requests (kind 1).
    pub fn is_request(self) -> bool {
        self == Kind::Request
    }
}

/// Why a header line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// Fewer than the three fields GoReplay requires.
    #[error("header has {0} field(s), expected at least 3 (\"<kind> <id> <timestamp>\")")]
    TooFewFields(usize),
    /// The kind field is not one digit.
    #[error("kind {0:?} is not a single digit")]
    BadKind(String),
    /// A numeric field does not parse.
    #[error("{field} {value:?} is not an integer")]
    BadNumber {
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// The header line is not text.
    #[error("header is not ASCII text")]
    NotText,
    /// There is no `\n` ending the header line.
    #[error("no header line (no newline in the message)")]
    NoHeaderLine,
    /// A trailing `name=value` field cannot be written as asked.
    #[error("field {name:?}: {problem}")]
    BadField {
        /// The field's name.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The id breaks the id rule (see [`valid_id`]).
    #[error("id {id:?} is invalid: {problem}")]
    BadId {
        /// The id, lossily decoded (and cut to 80 characters).
        id: String,
        /// Which part of the rule it breaks.
        problem: &'static str,
    },
}

/// The longest id accepted (GoReplay's are 24 or 40 characters; amplified copies add a suffix).
pub const MAX_ID_LEN: usize = 256;

/// The one rule for message ids, applied wherever an id enters: non-empty, at most
/// [`MAX_ID_LEN`] bytes, ASCII graphic characters only (no space, TAB, newline or other
/// control character, which would break the header line or what is written from it).
pub fn valid_id(id: &[u8]) -> Result<(), MetaError> {
    // `fold` rather than `all`: no early exit, so the check is vectorised.
    let graphic = id.iter().fold(true, |ok, b| ok & b.is_ascii_graphic());
    let problem = if id.is_empty() {
        "empty"
    } else if id.len() > MAX_ID_LEN {
        "longer than 256 bytes"
    } else if !graphic {
        "holds a character that is not printable ASCII (space, TAB, control or non-ASCII)"
    } else {
        return Ok(());
    };
    let shown: String = String::from_utf8_lossy(id).chars().take(80).collect();
    Err(MetaError::BadId { id: shown, problem })
}

/// A header line: the exact bytes of one that was read, or the fields of one built here.
///
/// A line built by [`Meta::new`] is written out only when an output asks for it
/// ([`Meta::line`]): replay, JSON records and the null output never need it, and formatting
/// two 19-digit numbers per captured message was a tenth of a capture thread's work.
#[derive(Clone)]
pub struct Meta {
    text: Text,
    kind: Kind,
    /// The id's length (at most [`MAX_ID_LEN`]): it always starts at byte 2, after the
    /// one-digit kind. A `u16` keeps a message within two cache-friendly moves.
    id_len: u16,
    timestamp: i64,
    /// The fourth field, meaningful when `has_latency` (kept apart from an `Option` so that
    /// a message stays small enough to move cheaply).
    latency: i64,
    has_latency: bool,
}

/// The length of an id that passed [`valid_id`].
fn id_len(id: &[u8]) -> u16 {
    u16::try_from(id.len()).unwrap_or(u16::MAX)
}

/// Where a header line's bytes come from.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // the built variant is the common one, boxing it defeats it
enum Text {
    /// A line as it was read, kept byte for byte.
    Verbatim(Bytes),
    /// `<kind> <id>` of a line built by [`Meta::new`]; the numbers follow on demand.
    Built { head: [u8; BUILT_HEAD] },
}

/// Where the id begins: after the one-digit kind and a space.
const ID_START: usize = 2;

/// Room for `<kind> <id>` in a built line (ids up to 60 bytes; longer ones are formatted at
/// once).
const BUILT_HEAD: usize = 62;

/// The longest built line: its head, two 20-character numbers, two spaces and the newline.
const BUILT_LINE: usize = BUILT_HEAD + 2 * 21 + 1;

/// A header line's bytes: borrowed from a line that was read, or formatted on the spot.
pub struct Line<'a>(LineBytes<'a>);

enum LineBytes<'a> {
    Borrowed(&'a [u8]),
    Formatted { len: u8, bytes: [u8; BUILT_LINE] },
}

impl std::ops::Deref for Line<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            LineBytes::Borrowed(bytes) => bytes,
            LineBytes::Formatted { len, bytes } => &bytes[..usize::from(*len)],
        }
    }
}

impl AsRef<[u8]> for Line<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Meta {
    fn eq(&self, other: &Meta) -> bool {
        *self.line() == *other.line()
    }
}

impl Eq for Meta {}

impl Meta {
    fn id_len(&self) -> usize {
        usize::from(self.id_len)
    }

    /// Parses a header line; `line` must end with `\n` (a missing one is added).
    pub fn parse(line: Bytes) -> Result<Meta, MetaError> {
        let line = if line.last() == Some(&b'\n') {
            line
        } else {
            let mut owned = line.to_vec();
            owned.push(b'\n');
            Bytes::from(owned)
        };
        let text = &line[..line.len() - 1];
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !text.is_ascii() {
            return Err(MetaError::NotText);
        }
        let fields: Vec<&[u8]> = text.split(|&b| b == b' ').collect();
        if fields.len() < 3 || fields[..3].iter().any(|f| f.is_empty()) {
            let non_empty = fields.iter().filter(|f| !f.is_empty()).count();
            return Err(MetaError::TooFewFields(non_empty.min(fields.len())));
        }
        if fields[0].len() != 1 || !fields[0][0].is_ascii_digit() {
            return Err(MetaError::BadKind(
                String::from_utf8_lossy(fields[0]).into(),
            ));
        }
        valid_id(fields[1])?;
        let timestamp = parse_number("timestamp", fields[2])?;
        let latency = match fields.get(3) {
            Some(f) if !f.is_empty() => Some(parse_number("latency", f)?),
            _ => None,
        };
        Ok(Meta {
            kind: Kind::from_byte(fields[0][0]),
            id_len: id_len(fields[1]),
            timestamp,
            latency: latency.unwrap_or(0),
            has_latency: latency.is_some(),
            text: Text::Verbatim(line),
        })
    }

    /// Builds the 4-field line GoReplay writes; `id` must pass [`valid_id`].
    pub fn new(kind: Kind, id: &str, timestamp: i64, latency: i64) -> Result<Meta, MetaError> {
        valid_id(id.as_bytes())?;
        let text = if ID_START + id.len() <= BUILT_HEAD {
            let mut head = [b' '; BUILT_HEAD];
            head[0] = kind.as_byte();
            head[ID_START..ID_START + id.len()].copy_from_slice(id.as_bytes());
            Text::Built { head }
        } else {
            let kind = char::from(kind.as_byte());
            Text::Verbatim(format!("{kind} {id} {timestamp} {latency}\n").into())
        };
        Ok(Meta {
            text,
            kind: Kind::from_byte(kind.as_byte()),
            id_len: id_len(id.as_bytes()),
            timestamp,
            latency,
            has_latency: true,
        })
    }

    /// Message kind (first field).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The id token (second field).
    pub fn id(&self) -> &str {
        std::str::from_utf8(self.id_bytes()).expect("checked ASCII")
    }

    /// Id as bytes (second field).
    pub fn id_bytes(&self) -> &[u8] {
        let line: &[u8] = match &self.text {
            Text::Verbatim(bytes) => bytes,
            Text::Built { head } => head,
        };
        &line[ID_START..ID_START + self.id_len()]
    }

    /// Timestamp in nanoseconds since the Unix epoch (third field).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Latency in nanoseconds (fourth field), when present.
    pub fn latency(&self) -> Option<i64> {
        self.has_latency.then_some(self.latency)
    }

    /// The exact header line, including its `\n` (a built line is formatted here).
    pub fn line(&self) -> Line<'_> {
        let head = match &self.text {
            Text::Verbatim(bytes) => return Line(LineBytes::Borrowed(bytes)),
            Text::Built { head } => head,
        };
        let mut bytes = [b' '; BUILT_LINE];
        let mut at = ID_START + self.id_len();
        bytes[..at].copy_from_slice(&head[..at]);
        let (mut timestamp, mut latency) = (itoa::Buffer::new(), itoa::Buffer::new());
        for number in [
            timestamp.format(self.timestamp),
            latency.format(self.latency),
        ] {
            at += 1;
            bytes[at..at + number.len()].copy_from_slice(number.as_bytes());
            at += number.len();
        }
        bytes[at] = b'\n';
        Line(LineBytes::Formatted {
            len: (at + 1) as u8,
            bytes,
        })
    }

    /// The header line's length in bytes (a built line is not formatted for it).
    pub fn line_len(&self) -> usize {
        match &self.text {
            Text::Verbatim(bytes) => bytes.len(),
            Text::Built { .. } => {
                // Three separators: two spaces and the newline.
                ID_START
                    + self.id_len()
                    + decimal_len(self.timestamp)
                    + decimal_len(self.latency)
                    + 3
            }
        }
    }

    /// The exact header line as shared bytes (a copy unless the line was read).
    pub fn to_bytes(&self) -> Bytes {
        match &self.text {
            Text::Verbatim(bytes) => bytes.clone(),
            Text::Built { .. } => Bytes::copy_from_slice(&self.line()),
        }
    }

    /// The same line with a fifth field `incomplete=N`: the message could not be completed and
    /// `N` bytes are known to be missing from it (holes it was delivered across; 0 when it was
    /// cut short at its end). Readers of four-field lines ignore the extra field.
    pub fn marked_incomplete(&self, missing_bytes: u64) -> Meta {
        self.with_field("incomplete", &missing_bytes.to_string())
            .expect("a number is a valid field value")
    }

    /// `N` when the line carries the field `incomplete=N` ([`Meta::marked_incomplete`]).
    pub fn incomplete(&self) -> Option<u64> {
        self.field("incomplete")?.parse().ok()
    }

    /// The same line with one more trailing field `name=value` (GoReplay's readers ignore
    /// fields after the fourth). `value` must be printable ASCII without spaces.
    pub fn with_field(&self, name: &str, value: &str) -> Result<Meta, MetaError> {
        self.with_fields(&[(name, value)])
    }

    /// The same line with the trailing fields `name=value…`, in order (one new line for all).
    pub fn with_fields(&self, fields: &[(&str, &str)]) -> Result<Meta, MetaError> {
        for (name, value) in fields {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(MetaError::BadField {
                    name: name.to_string(),
                    problem: "a field value must be printable ASCII without spaces",
                });
            }
            if !self.has_latency {
                return Err(MetaError::BadField {
                    name: name.to_string(),
                    problem: "a line without its fourth field (latency) cannot take a named field",
                });
            }
        }
        let line = self.line();
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let mut marked = Vec::with_capacity(text.len() + 48);
        marked.extend_from_slice(text);
        for (name, value) in fields {
            marked.push(b' ');
            marked.extend_from_slice(name.as_bytes());
            marked.push(b'=');
            marked.extend_from_slice(value.as_bytes());
        }
        marked.push(b'\n');
        Meta::parse(Bytes::from(marked))
    }

    /// The value of the trailing field `name=value` (after the fourth field), if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        let line: &[u8] = match &self.text {
            Text::Verbatim(bytes) => bytes,
            // A built line has exactly four fields.
            Text::Built { .. } => return None,
        };
        line.split(|&b| b == b' ' || b == b'\n' || b == b'\r')
            .skip(4)
            .find_map(|field| {
                let value = field.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
                std::str::from_utf8(value).ok()
            })
    }

    /// The same line with another id (which must pass [`valid_id`]); every other byte is kept.
    pub fn with_id(&self, id: &str) -> Result<Meta, MetaError> {
        valid_id(id.as_bytes())?;
        let line = self.line();
        let mut text = Vec::with_capacity(line.len() + id.len());
        text.extend_from_slice(&line[..ID_START]);
        text.extend_from_slice(id.as_bytes());
        text.extend_from_slice(&line[ID_START + self.id_len()..]);
        Meta::parse(Bytes::from(text))
    }
}

/// How many characters `value` takes in decimal.
fn decimal_len(value: i64) -> usize {
    let digits = value
        .unsigned_abs()
        .checked_ilog10()
        .map_or(1, |d| d as usize + 1);
    digits + usize::from(value < 0)
}

fn parse_number(field: &'static str, bytes: &[u8]) -> Result<i64, MetaError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| MetaError::BadNumber {
            field,
            value: String::from_utf8_lossy(bytes).into(),
        })
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Meta({:?})", String::from_utf8_lossy(&self.line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_fields_round_trip() {
        let line = "1 0123456789abcdef01234567 1700000000000000000 1500\n";
        let meta = Meta::parse(Bytes::from(line)).unwrap();
        assert_eq!(meta.kind(), Kind::Request);
        assert_eq!(meta.id(), "0123456789abcdef01234567");
        assert_eq!(meta.timestamp(), 1700000000000000000);
        assert_eq!(meta.latency(), Some(1500));
        assert_eq!(&*meta.line(), line.as_bytes());
    }

    #[test]
    fn three_fields_and_forty_char_id() {
        let line = "2 da39a3ee5e6b4b0d3255bfef95601890afd80709 123\n";
        let meta = Meta::parse(Bytes::from(line)).unwrap();
        assert_eq!(meta.line_len(), line.len());
        assert_eq!(meta.kind(), Kind::Response);
        assert_eq!(meta.id().len(), 40);
        assert_eq!(meta.latency(), None);
        assert_eq!(&*meta.line(), line.as_bytes());
    }

    #[test]
    fn unknown_trailing_fields_are_kept() {
        let line = "3 abc 5 6 extra fields here\n";
        let meta = Meta::parse(Bytes::from(line)).unwrap();
        assert_eq!(&*meta.line(), line.as_bytes());
        let renamed = meta.with_id("xyz").unwrap();
        assert_eq!(&*renamed.line(), b"3 xyz 5 6 extra fields here\n");
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(
            Meta::parse(Bytes::from("1 abc\n")),
            Err(MetaError::TooFewFields(2))
        );
        assert!(matches!(
            Meta::parse(Bytes::from("x abc 1\n")),
            Err(MetaError::BadKind(_))
        ));
        assert!(matches!(
            Meta::parse(Bytes::from("1 abc zz\n")),
            Err(MetaError::BadNumber { .. })
        ));
        assert!(Meta::parse(Bytes::from("1  abc 1\n")).is_err());
        assert!(Meta::parse(Bytes::from(vec![0xffu8, b' ', b'1', b' ', b'2'])).is_err());
    }

    #[test]
    fn new_builds_goreplay_line() {
        let meta = Meta::new(Kind::Request, "abc", 10, -1).unwrap();
        assert_eq!(&*meta.line(), b"1 abc 10 -1\n");
        let meta = Meta::new(Kind::Response, "x", i64::MIN, 0).unwrap();
        assert_eq!(&*meta.line(), format!("2 x {} 0\n", i64::MIN).as_bytes());
        assert_eq!(Meta::parse(meta.to_bytes()), Ok(meta));
    }

    #[test]
    fn built_lines_round_trip_at_every_size() {
        for id_len in [1, 24, 40, 60, 61, 200, MAX_ID_LEN] {
            let id = "a".repeat(id_len);
            for (timestamp, latency) in [
                (0, 0),
                (1_700_000_000_000_000_000, 12_345),
                (i64::MIN, i64::MIN),
                (i64::MAX, -1),
            ] {
                let meta = Meta::new(Kind::Response, &id, timestamp, latency).unwrap();
                let expected = format!("2 {id} {timestamp} {latency}\n");
                assert_eq!(&*meta.line(), expected.as_bytes());
                assert_eq!(meta.line_len(), expected.len());
                assert_eq!(meta.id(), id);
                assert_eq!(meta.timestamp(), timestamp);
                assert_eq!(meta.latency(), Some(latency));
                let read = Meta::parse(meta.to_bytes()).unwrap();
                assert_eq!(read, meta);
                assert_eq!(read.clone().with_id("b"), meta.with_id("b"));
            }
        }
    }

    #[test]
    fn bad_ids_are_rejected_everywhere() {
        let long = "x".repeat(MAX_ID_LEN + 1);
        for id in ["a\tb", "a\u{1}", "", "caf\u{e9}", "a\rb", long.as_str()] {
            assert!(
                matches!(
                    Meta::new(Kind::Request, id, 1, 0),
                    Err(MetaError::BadId { .. })
                ),
                "{id:?}"
            );
            let ok = Meta::new(Kind::Request, "ok", 1, 0).unwrap();
            assert!(ok.with_id(id).is_err(), "{id:?}");
        }
        for line in ["1 a\tb 1\n", "1 a\x0bb 1 2\n", "1 a\x7f 1\n"] {
            assert!(
                matches!(Meta::parse(Bytes::from(line)), Err(MetaError::BadId { .. })),
                "{line:?}"
            );
        }
        let err = Meta::parse(Bytes::from("1 a\tb 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"a\\tb\""), "{err}");
    }

    #[test]
    fn long_ids_spill_to_the_heap() {
        let id = "x".repeat(MAX_ID_LEN);
        let meta = Meta::new(Kind::Request, &id, 1, 2).unwrap();
        assert_eq!(&*meta.line(), format!("1 {id} 1 2\n").as_bytes());
        assert_eq!(meta.id(), id);
    }

    #[test]
    fn incomplete_messages_carry_a_fifth_field() {
        let meta = Meta::new(Kind::Response, "abc", 1, 2).unwrap();
        assert_eq!(meta.incomplete(), None);
        let marked = meta.marked_incomplete(1460);
        assert_eq!(&*marked.line(), b"2 abc 1 2 incomplete=1460\n");
        assert_eq!(marked.incomplete(), Some(1460));
        assert_eq!(marked.field("incomplete"), Some("1460"));
        assert_eq!(marked.field("target"), None);
        assert_eq!(marked.latency(), Some(2));
        assert_eq!(marked.id(), "abc");
    }

    #[test]
    fn trailing_fields_are_added_and_read_back() {
        let meta = Meta::new(Kind::ReplayedResponse, "abc", 1, 2).unwrap();
        let named = meta.with_field("target", "candidate").unwrap();
        let failed = named.with_field("error", "timeout").unwrap();
        assert_eq!(
            meta.with_fields(&[("target", "candidate"), ("error", "timeout")]),
            Ok(failed.clone())
        );
        assert_eq!(
            &*failed.line(),
            b"3 abc 1 2 target=candidate error=timeout\n"
        );
        assert_eq!(failed.field("target"), Some("candidate"));
        assert_eq!(failed.field("error"), Some("timeout"));
        assert_eq!(failed.field("targe"), None);
        assert!(meta.with_field("target", "two words").is_err());
        assert!(meta.with_field("target", "").is_err());
        // The first four fields are never taken for a named one.
        let odd = Meta::parse(Bytes::from("3 target=x 1 2\n")).unwrap();
        assert_eq!(odd.field("target"), None);
        let short = Meta::parse(Bytes::from("3 abc 1\n")).unwrap();
        assert!(short.with_field("target", "x").is_err());
    }
}
