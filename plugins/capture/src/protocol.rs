//! The protocol layer: which grammar a conversation's bytes follow, and the sniffing that
//! recognises where a message begins (and, without configured ports, which side is the
//! client).
//!
//! A conversation is HTTP/1.x (framed by [`crate::http1`]) or opaque binary; a connection that
//! switches protocols (101, or 2xx to CONNECT) becomes a tunnel whose bytes are counted, not
//! framed. A TLS connection is decrypted first ([`crate::tls`]) and its plaintext framed the
//! same way; HTTP/2 plugs in here too, between the (decrypted) stream and the framer.

use shadowtap_http1::{self as http, Role, Verdict};

/// A segment whose start line is still incomplete counts as a message start only when it is at
/// least this long (a long request target), so short body fragments do not resynchronise.
const MIN_PARTIAL_START_LINE: usize = 64;

/// How a capture cuts conversations into messages (`--input-raw-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// HTTP/1.x: whole messages, reassembled and framed.
    #[default]
    Http,
    /// HTTP/1.x header blocks only, without reassembly (the header-only fast path,
    /// [`crate::HeaderTracker`]; a [`crate::Tracker`] given it frames whole messages).
    HttpHeaders,
    /// Opaque bytes: a message ends when the other side sends, on close, or on expiry.
    Binary,
}

impl Framing {
    /// `--input-raw-protocol`'s value: `http` (default), `http-headers` or `binary`.
    pub fn from_flag(value: &str) -> Framing {
        match value {
            "http-headers" => Framing::HttpHeaders,
            "binary" => Framing::Binary,
            _ => Framing::Http,
        }
    }

    /// Whether messages are opaque bytes.
    pub fn is_binary(self) -> bool {
        self == Framing::Binary
    }
}

/// Whether `data` begins a message a sender of `role` would send.
pub(crate) fn begins_message(role: Role, data: &[u8]) -> bool {
    let verdict = match role {
        Role::Client => http::request_line(data),
        Role::Server => http::lenient_status_verdict(data),
    };
    match verdict {
        Verdict::Yes => true,
        Verdict::Maybe => data.len() >= MIN_PARTIAL_START_LINE,
        Verdict::No => false,
    }
}

/// Which role sends `data` when the connection's direction is still unknown.
pub(crate) fn sniff_role(data: &[u8]) -> Option<Role> {
    [Role::Client, Role::Server]
        .into_iter()
        .find(|&role| begins_message(role, data))
}

/// The status code of a segment that begins with a status line.
pub(crate) fn response_status(payload: &[u8]) -> Option<u16> {
    if http::status_line(payload) != Verdict::Yes {
        return None;
    }
    let digits = payload.get(9..12)?;
    digits.iter().try_fold(0u16, |code, &d| {
        d.is_ascii_digit().then(|| code * 10 + u16::from(d - b'0'))
    })
}

/// Whether a response with `status` turns its connection into a tunnel.
pub(crate) fn switches_to_tunnel(status: u16, answers_connect: bool) -> bool {
    status == 101 || (answers_connect && (200..300).contains(&status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_tells_requests_from_responses() {
        assert_eq!(sniff_role(b"GET / HTTP/1.1\r\n"), Some(Role::Client));
        assert_eq!(sniff_role(b"HTTP/1.1 200 OK\r\n"), Some(Role::Server));
        assert_eq!(sniff_role(b"http/1.1  200 OK\r\n"), Some(Role::Server));
        assert_eq!(sniff_role(b"\x16\x03\x01\x02\x00"), None);
        assert_eq!(response_status(b"HTTP/1.1 101 Switching\r\n"), Some(101));
        assert!(switches_to_tunnel(101, false));
        assert!(switches_to_tunnel(200, true));
        assert!(!switches_to_tunnel(200, false));
    }
}
