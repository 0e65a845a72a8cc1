//! Message ids: GoReplay's 24-hex-digit formula, computed without allocation.

use std::net::{IpAddr, SocketAddr};

/// GoReplay's 12-byte id: big-endian `client_port<<48 | server_port<<32 | ip32(client_ip)`
/// followed by the big-endian `word` (the request's Ack), as 24 lowercase hex digits. `ip32` is
/// the IPv4 address or the last 4 bytes of an IPv6 address.
pub fn request_id(client: SocketAddr, server_port: u16, word: u32) -> MessageId {
    MessageId::of(&id_bytes(client, server_port, word))
}

pub(crate) fn id_bytes(client: SocketAddr, server_port: u16, word: u32) -> [u8; 12] {
    let ip32 = match client.ip() {
        IpAddr::V4(ip) => u32::from(ip),
        IpAddr::V6(ip) => {
            let o = ip.octets();
            u32::from_be_bytes([o[12], o[13], o[14], o[15]])
        }
    };
    let high = u64::from(client.port()) << 48 | u64::from(server_port) << 32 | u64::from(ip32);
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&high.to_be_bytes());
    id[8..].copy_from_slice(&word.to_be_bytes());
    id
}

/// The 8 lowercase hex digits of `word`, computed on all of them at once: each nibble is
/// spread into a byte of its own, then turned into `0`–`9` or `a`–`f` without a branch.
fn hex_digits(word: u32) -> [u8; 8] {
    let x = u64::from(word);
    let x = (x | x << 16) & 0x0000_ffff_0000_ffff;
    let x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
    let x = (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * (b'a' - b'0' - 10) as u64).to_be_bytes()
}

/// A message id as GoReplay prints it: 24 lowercase hex digits, kept inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId([u8; 24]);

impl MessageId {
    /// The hex digits of a 12-byte id.
    pub fn of(id: &[u8; 12]) -> MessageId {
        let mut hex = [0u8; 24];
        for (digits, word) in hex.chunks_exact_mut(8).zip(id.chunks_exact(4)) {
            let word = u32::from_be_bytes(word.try_into().expect("4 bytes"));
            digits.copy_from_slice(&hex_digits(word));
        }
        MessageId(hex)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // SAFETY: the bytes are hex digits (ASCII): `of` is the only constructor.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl std::ops::Deref for MessageId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for MessageId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_lowercase_hex() {
        let words = [
            0u32,
            9,
            10,
            15,
            0x0123_4567,
            0x89ab_cdef,
            0xa0b0_c0d0,
            u32::MAX,
        ];
        let spread = (0..100_000u32).map(|i| i.wrapping_mul(2_654_435_761));
        for word in words.into_iter().chain(spread) {
            assert_eq!(hex_digits(word), format!("{word:08x}").as_bytes());
        }
        let bytes: [u8; 12] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(MessageId::of(&bytes).as_str(), expected);
    }
}
