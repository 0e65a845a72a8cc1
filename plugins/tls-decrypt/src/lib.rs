//! Passive TLS 1.2/1.3 decryption of captured connections from an NSS key log
//! (`SSLKEYLOGFILE`).
//!
//! Pure: no files, no threads, no clock. The caller (the capture tracker) feeds the in-order
//! reassembled TCP bytes of each direction of one connection into a [`TlsSession`], together
//! with a [`KeyLookup`] (usually a [`KeyLog`] it fills from the key log file), and gets the
//! application-data plaintext back in capture order:
//!
//! ```
//! use shadowtap_tls_decrypt::{KeyLog, Limits, Side, TlsSession};
//! let mut keys = KeyLog::default();
//! keys.add_text(b"# no secrets yet\n");
//! let mut session: TlsSession<u32> = TlsSession::new(Limits { max_pending_bytes: 1 << 20 });
//! session.feed(Side::Client, b"", 7, &keys, &mut |side, plain, tag, _| {
//!     println!("{side:?} {} bytes at {tag}", plain.len())
//! });
//! assert!(!session.failed());
//! ```
//!
//! Supported: TLS 1.3 (AES-GCM, ChaCha20-Poly1305; HelloRetryRequest, KeyUpdate, 0-RTT) and
//! TLS 1.2 with the `CLIENT_RANDOM` master secret (AES-GCM, ChaCha20-Poly1305, AES-CBC with
//! SHA-1/SHA-256/SHA-384 MACs, encrypt-then-MAC, abbreviated handshakes). Key material never
//! reaches a `Debug` output or an error.
#![deny(missing_docs)]

mod cipher;
mod handshake;
mod keylog;
mod record;
mod schedule;
mod session;
mod suites;

#[cfg(test)]
mod synth;
#[cfg(test)]
mod tests;

pub use keylog::{KeyLog, KeyLogAdded, KeyLookup, Secret, Secrets};
pub use session::{PlaintextSink, TlsSession};
pub use suites::cipher_name;

/// One direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bytes sent by the client (the side that sent the ClientHello).
    Client,
    /// Bytes sent by the server.
    Server,
}

impl Side {
    pub(crate) fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// Memory bounds of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Ciphertext held while waiting for a key (or for the EncryptedExtensions that 0-RTT data waits for).
    pub max_pending_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pending_bytes: 1 << 20,
        }
    }
}

/// Facts about the session, known once the ServerHello is seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3).
    pub version: u16,
    /// The cipher suite the server selected.
    pub cipher: u16,
    /// The server name the client asked for.
    pub sni: Option<String>,
    /// The selected application protocol; the first one offered until the selection is known
    /// (ServerHello for TLS 1.2, the decrypted EncryptedExtensions for TLS 1.3).
    pub alpn: Option<String>,
    /// `alpn` is the server's selection (TLS 1.2 ServerHello, TLS 1.3 EncryptedExtensions),
    /// not only the client's first offer.
    pub alpn_selected: bool,
}

/// Why a session stopped decrypting. `Display` is the reason (with the suite number for
/// [`TlsFailure::UnsupportedSuite`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The key log had no secrets for the client random when the caller gave up waiting.
    #[error("tls: no key")]
    NoKey,
    /// Records without a ClientHello first (the capture started mid-connection).
    #[error("tls: no handshake")]
    NoHandshake,
    /// A cipher suite (or protocol version below TLS 1.2) this crate cannot decrypt.
    #[error("tls: unsupported suite 0x{0:04x}")]
    UnsupportedSuite(u16),
    /// A record failed authentication (tag, MAC or padding) and no gap explains it.
    #[error("tls: decrypt failed")]
    DecryptFailed,
    /// Bytes were missing and decryption could not resynchronise after the hole.
    #[error("tls: lost segment")]
    LostSegment,
    /// A TLS 1.2 renegotiation (a new handshake under the old keys).
    #[error("tls: renegotiation")]
    Renegotiation,
    /// A bad record header, an impossible length or a bad handshake encoding.
    #[error("tls: malformed")]
    Malformed,
    /// More ciphertext arrived while waiting for a key than [`Limits`] allows.
    #[error("tls: buffer full")]
    BufferFull,
}

impl TlsFailure {
    /// A fixed reason string (without the suite number), for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsFailure::NoKey => "tls: no key",
            TlsFailure::NoHandshake => "tls: no handshake",
            TlsFailure::UnsupportedSuite(_) => "tls: unsupported suite",
            TlsFailure::DecryptFailed => "tls: decrypt failed",
            TlsFailure::LostSegment => "tls: lost segment",
            TlsFailure::Renegotiation => "tls: renegotiation",
            TlsFailure::Malformed => "tls: malformed",
            TlsFailure::BufferFull => "tls: buffer full",
        }
    }
}

/// The usual name of a protocol version number: "1.2", "1.3", "1.0", "SSL 3.0", or "unknown".
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0300 => "SSL 3.0",
        0x0301 => "1.0",
        0x0302 => "1.1",
        0x0303 => "1.2",
        0x0304 => "1.3",
        _ => "unknown",
    }
}

/// Whether `data` (the first bytes of a direction) starts like a TLS record: type 20..=23,
/// version 0x0300..=0x0304, length ≤ 2^14+2048. Needs the 5-byte header.
pub fn looks_like_tls(data: &[u8]) -> bool {
    match data.get(..record::HEADER_LEN) {
        Some(header) => record::Header::parse(header).is_ok(),
        None => false,
    }
}

/// Which side sent `data` (the first bytes of a direction): `Some(Side::Client)` for a
/// ClientHello record, `Some(Side::Server)` for a ServerHello, `None` when it is not TLS or
/// the side cannot be told (see [`looks_like_tls`]).
pub fn sniff(data: &[u8]) -> Option<Side> {
    if !looks_like_tls(data) || data[0] != record::TYPE_HANDSHAKE {
        return None;
    }
    match data.get(record::HEADER_LEN) {
        Some(&handshake::TYPE_CLIENT_HELLO) => Some(Side::Client),
        Some(&handshake::TYPE_SERVER_HELLO) => Some(Side::Server),
        _ => None,
    }
}

/// Fuzz entry point: the first two bytes (little endian) give the length of a key-log text
/// that follows; the rest is a list of `op len bytes…` chunks (`op` bit 0: side, bit 1: a
/// gap of `len` bytes instead of data, bit 2: retry afterwards).
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_session(data: &[u8]) {
    std::hint::black_box(fuzz_session_plaintext(data));
}

/// [`fuzz_session`], returning how many plaintext bytes came out (for checking seeds).
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_session_plaintext(data: &[u8]) -> usize {
    let mut plaintext = 0;
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return 0;
    };
    let keylog_len = usize::from(u16::from_le_bytes(*head)).min(rest.len());
    let (text, mut chunks) = rest.split_at(keylog_len);
    let mut keys = KeyLog::default();
    keys.add_text(text);
    let mut session = TlsSession::new(Limits {
        max_pending_bytes: 64 << 10,
    });
    let mut sink = |_: Side, plain: &[u8], _: &usize, _: Option<&TlsInfo>| {
        plaintext += plain.len();
    };
    let mut index = 0usize;
    while let [op, len, tail @ ..] = chunks {
        let side = if op & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        let len = usize::from(*len);
        if op & 2 != 0 {
            session.gap(side, len as u64);
            chunks = tail;
        } else {
            let (bytes, tail) = tail.split_at(len.min(tail.len()));
            session.feed(side, bytes, index, &keys, &mut sink);
            chunks = tail;
        }
        if op & 4 != 0 {
            session.retry(&keys, &mut sink);
        }
        let _ = (
            session.pending_bytes(),
            session.waiting_for_key(),
            session.info(),
        );
        index += 1;
    }
    session.give_up();
    let _ = session.take_failure();
    plaintext
}
