//! The NSS key log (`SSLKEYLOGFILE`) format: `LABEL <client_random hex> <secret hex>` lines,
//! indexed by client random. Secrets never reach `Debug` output.

use std::collections::HashMap;
use std::fmt;

const MAX_SECRET: usize = 48;

/// One secret of at most 48 bytes. `Debug` prints `<redacted>`.
#[derive(Clone)]
pub struct Secret {
    len: u8,
    bytes: [u8; MAX_SECRET],
}

impl Secret {
    /// A secret from its bytes; `None` when empty or longer than 48 bytes.
    pub fn new(bytes: &[u8]) -> Option<Secret> {
        if bytes.is_empty() || bytes.len() > MAX_SECRET {
            return None;
        }
        let mut secret = Secret {
            len: bytes.len() as u8,
            bytes: [0; MAX_SECRET],
        };
        secret.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(secret)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The secrets the key log holds for one client random.
#[derive(Clone, Default)]
pub struct Secrets {
    /// `CLIENT_RANDOM`: the TLS 1.2 master secret (48 bytes).
    pub master: Option<Secret>,
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    pub client_handshake: Option<Secret>,
    /// `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
    pub server_handshake: Option<Secret>,
    /// `CLIENT_TRAFFIC_SECRET_0`.
    pub client_traffic: Option<Secret>,
    /// `SERVER_TRAFFIC_SECRET_0`.
    pub server_traffic: Option<Secret>,
    /// `CLIENT_EARLY_TRAFFIC_SECRET` (0-RTT).
    pub client_early: Option<Secret>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = |s: &Option<Secret>| if s.is_some() { "<redacted>" } else { "-" };
        f.debug_struct("Secrets")
            .field("master", &present(&self.master))
            .field("client_handshake", &present(&self.client_handshake))
            .field("server_handshake", &present(&self.server_handshake))
            .field("client_traffic", &present(&self.client_traffic))
            .field("server_traffic", &present(&self.server_traffic))
            .field("client_early", &present(&self.client_early))
            .finish()
    }
}

/// Where the secrets for a client random come from.
pub trait KeyLookup {
    /// The secrets known for `client_random`, if any.
    fn secrets(&self, client_random: &[u8; 32]) -> Option<Secrets>;
}

/// What [`KeyLog::add_text`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyLogAdded {
    /// Lines with a known label and well-formed values.
    pub accepted: usize,
    /// Lines with a bad field count, bad hex or a wrong length.
    pub malformed: usize,
    /// Bytes of the text up to the end of its last complete line: the caller keeps the rest
    /// and passes it again with the bytes that complete it.
    pub consumed: usize,
}

/// An in-memory key log, filled from NSS key log text.
#[derive(Default)]
pub struct KeyLog {
    entries: HashMap<[u8; 32], Secrets>,
}

impl fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyLog({} client randoms)", self.entries.len())
    }
}

enum Line {
    Accepted,
    Ignored,
    Malformed,
}

impl KeyLog {
    /// Adds every complete (`\n`-terminated) line of `text`. Comments (`#`), blank lines and
    /// unknown labels are ignored; `\r\n` endings are fine.
    pub fn add_text(&mut self, text: &[u8]) -> KeyLogAdded {
        let mut added = KeyLogAdded::default();
        let mut start = 0;
        while let Some(end) = text[start..].iter().position(|&b| b == b'\n') {
            let line = &text[start..start + end];
            start += end + 1;
            match self.add_line(line.strip_suffix(b"\r").unwrap_or(line)) {
                Line::Accepted => added.accepted += 1,
                Line::Malformed => added.malformed += 1,
                Line::Ignored => {}
            }
        }
        added.consumed = start;
        added
    }

    /// The secrets known for `client_random`.
    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.entries.get(client_random)
    }

    /// How many client randoms have secrets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no line was accepted yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn add_line(&mut self, line: &[u8]) -> Line {
        let line = line.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            return Line::Ignored;
        }
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let (Some(label), Some(random), Some(secret), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Line::Malformed;
        };
        let Some(slot) = slot_for(label) else {
            return Line::Ignored;
        };
        let mut client_random = [0u8; 32];
        let mut secret_bytes = [0u8; MAX_SECRET];
        let Some(secret_len) = decode_hex(secret, &mut secret_bytes) else {
            return Line::Malformed;
        };
        let lengths_ok = match slot {
            Slot::Master => secret_len == 48,
            _ => secret_len == 32 || secret_len == 48,
        };
        if decode_hex(random, &mut client_random) != Some(32) || !lengths_ok {
            return Line::Malformed;
        }
        let Some(secret) = Secret::new(&secret_bytes[..secret_len]) else {
            return Line::Malformed;
        };
        let entry = self.entries.entry(client_random).or_default();
        *slot.field(entry) = Some(secret);
        Line::Accepted
    }
}

impl KeyLookup for KeyLog {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<Secrets> {
        self.get(client_random).cloned()
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Master,
    ClientHandshake,
    ServerHandshake,
    ClientTraffic,
    ServerTraffic,
    ClientEarly,
}

impl Slot {
    fn field(self, secrets: &mut Secrets) -> &mut Option<Secret> {
        match self {
            Slot::Master => &mut secrets.master,
            Slot::ClientHandshake => &mut secrets.client_handshake,
            Slot::ServerHandshake => &mut secrets.server_handshake,
            Slot::ClientTraffic => &mut secrets.client_traffic,
            Slot::ServerTraffic => &mut secrets.server_traffic,
            Slot::ClientEarly => &mut secrets.client_early,
        }
    }
}

fn slot_for(label: &[u8]) -> Option<Slot> {
    Some(match label {
        b"CLIENT_RANDOM" => Slot::Master,
        b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Slot::ClientHandshake,
        b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => Slot::ServerHandshake,
        b"CLIENT_TRAFFIC_SECRET_0" => Slot::ClientTraffic,
        b"SERVER_TRAFFIC_SECRET_0" => Slot::ServerTraffic,
        b"CLIENT_EARLY_TRAFFIC_SECRET" => Slot::ClientEarly,
        _ => return None,
    })
}

/// Decodes `hex` into the front of `out`; the decoded length, or `None` for bad hex or too long.
fn decode_hex(hex: &[u8], out: &mut [u8]) -> Option<usize> {
    if hex.len() & 1 == 1 || hex.len() / 2 > out.len() {
        return None;
    }
    for (pair, byte) in hex.chunks_exact(2).zip(out.iter_mut()) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(hex.len() / 2)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CR: &str = "0101010101010101010101010101010101010101010101010101010101010101";

    #[test]
    fn parses_labels_comments_and_crlf() {
        let text = format!(
            "# comment\n\nCLIENT_RANDOM {CR} {}\r\nSERVER_TRAFFIC_SECRET_0 {CR} {}\nEXPORTER_SECRET {CR} {}\n",
            "ab".repeat(48),
            "cd".repeat(32),
            "ef".repeat(32)
        );
        let mut log = KeyLog::default();
        let added = log.add_text(text.as_bytes());
        assert_eq!((added.accepted, added.malformed), (2, 0));
        assert_eq!(added.consumed, text.len());
        let secrets = log.get(&[1; 32]).unwrap();
        assert_eq!(secrets.master.as_ref().unwrap().as_bytes(), &[0xab; 48]);
        assert_eq!(
            secrets.server_traffic.as_ref().unwrap().as_bytes(),
            &[0xcd; 32]
        );
        assert!(secrets.client_traffic.is_none());
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn counts_malformed_lines_and_keeps_incomplete_tail() {
        let text = format!(
            "CLIENT_RANDOM {CR} {}\nCLIENT_RANDOM zz {}\nCLIENT_RANDOM {CR}\nCLIENT_TRAFFIC_SECRET_0 {CR} {}\nCLIENT_RANDOM {CR} {}",
            "ab".repeat(47),
            "ab".repeat(48),
            "a".repeat(63),
            "ab".repeat(48)
        );
        let mut log = KeyLog::default();
        let added = log.add_text(text.as_bytes());
        assert_eq!((added.accepted, added.malformed), (0, 4));
        assert!(log.is_empty());
        assert!(added.consumed < text.len());
    }

    #[test]
    fn debug_redacts() {
        let mut log = KeyLog::default();
        log.add_text(format!("CLIENT_RANDOM {CR} {}\n", "ab".repeat(48)).as_bytes());
        let shown = format!(
            "{:?} {:?}",
            log.get(&[1; 32]).unwrap(),
            Secret::new(&[0xab; 4])
        );
        assert!(!shown.to_lowercase().contains("ab, ") && !shown.contains("171"));
        assert!(shown.contains("<redacted>"));
    }
}
