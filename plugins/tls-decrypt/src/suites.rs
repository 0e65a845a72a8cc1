//! The cipher suite table: IANA id → name, record protection and the hash of the PRF/HKDF.

/// How records of a suite are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// TLS 1.3 AEAD (AES-GCM or ChaCha20-Poly1305, per-record nonce from seq).
    Tls13,
    /// TLS 1.2 AES-GCM with an 8-byte explicit nonce.
    Gcm12,
    /// TLS 1.2 ChaCha20-Poly1305 (RFC 7905).
    Chacha12,
    /// TLS 1.2 AES-CBC with an HMAC (MAC-then-encrypt, or encrypt-then-MAC when negotiated).
    Cbc12,
    /// Known name, not decryptable here.
    Unsupported,
}

/// The hash of a suite's PRF/HKDF, or of its CBC MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
    Sha384,
}

impl Hash {
    pub(crate) fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// One row of the table.
#[derive(Debug)]
pub(crate) struct Suite {
    pub id: u16,
    pub name: &'static str,
    pub kind: Kind,
    /// Encryption key length (bytes).
    pub key_len: usize,
    /// AEAD algorithm (AEAD kinds only): true for ChaCha20-Poly1305.
    pub chacha: bool,
    /// The PRF (TLS 1.2) or HKDF (TLS 1.3) hash.
    pub hash: Hash,
    /// The record MAC of CBC suites.
    pub mac: Option<Hash>,
}

const fn row(id: u16, name: &'static str, kind: Kind, key_len: usize, hash: Hash) -> Suite {
    Suite {
        id,
        name,
        kind,
        key_len,
        chacha: false,
        hash,
        mac: None,
    }
}

const fn chacha(id: u16, name: &'static str, kind: Kind) -> Suite {
    Suite {
        chacha: true,
        ..row(id, name, kind, 32, Hash::Sha256)
    }
}

const fn cbc(id: u16, name: &'static str, key_len: usize, mac: Hash) -> Suite {
    let hash = match mac {
        Hash::Sha384 => Hash::Sha384,
        _ => Hash::Sha256,
    };
    Suite {
        mac: Some(mac),
        ..row(id, name, Kind::Cbc12, key_len, hash)
    }
}

const fn unsupported(id: u16, name: &'static str) -> Suite {
    row(id, name, Kind::Unsupported, 0, Hash::Sha256)
}

use Hash::{Sha1, Sha256, Sha384};
use Kind::{Chacha12, Gcm12, Tls13};

static SUITES: &[Suite] = &[
    row(0x1301, "TLS_AES_128_GCM_SHA256", Tls13, 16, Sha256),
    row(0x1302, "TLS_AES_256_GCM_SHA384", Tls13, 32, Sha384),
    chacha(0x1303, "TLS_CHACHA20_POLY1305_SHA256", Tls13),
    row(0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256", Gcm12, 16, Sha256),
    row(0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384", Gcm12, 32, Sha384),
    row(
        0xc02b,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Gcm12,
        16,
        Sha256,
    ),
    row(
        0xc02c,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Gcm12,
        32,
        Sha384,
    ),
    row(
        0xc02f,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Gcm12,
        16,
        Sha256,
    ),
    row(
        0xc030,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Gcm12,
        32,
        Sha384,
    ),
    chacha(
        0xcca8,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Chacha12,
    ),
    chacha(
        0xcca9,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Chacha12,
    ),
    chacha(
        0xccaa,
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Chacha12,
    ),
    cbc(0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA", 16, Sha1),
    cbc(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", 32, Sha1),
    cbc(0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 16, Sha1),
    cbc(0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 32, Sha1),
    cbc(0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 16, Sha1),
    cbc(0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 32, Sha1),
    cbc(0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256", 16, Sha256),
    cbc(0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256", 32, Sha256),
    cbc(
        0xc023,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        16,
        Sha256,
    ),
    cbc(0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 16, Sha256),
    cbc(
        0xc024,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        32,
        Sha384,
    ),
    cbc(0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", 32, Sha384),
    unsupported(0x1304, "TLS_AES_128_CCM_SHA256"),
    unsupported(0x1305, "TLS_AES_128_CCM_8_SHA256"),
    unsupported(0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    unsupported(0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"),
    unsupported(0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    unsupported(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    unsupported(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    unsupported(0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"),
];

/// The table row of a suite this crate decrypts.
pub(crate) fn supported(id: u16) -> Option<&'static Suite> {
    SUITES
        .iter()
        .find(|s| s.id == id && s.kind != Kind::Unsupported)
}

/// The IANA name of a cipher suite, e.g. `TLS_AES_128_GCM_SHA256`.
pub fn cipher_name(suite: u16) -> Option<&'static str> {
    SUITES.iter().find(|s| s.id == suite).map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_support() {
        assert_eq!(cipher_name(0x1301), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(
            cipher_name(0xc02b),
            Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
        );
        assert_eq!(
            cipher_name(0x009f),
            Some("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384")
        );
        assert!(supported(0x009f).is_none());
        assert_eq!(supported(0xc028).unwrap().mac, Some(Hash::Sha384));
        assert_eq!(supported(0x002f).unwrap().hash, Hash::Sha256);
        assert_eq!(supported(0x1302).unwrap().hash, Hash::Sha384);
        assert!(cipher_name(0xffff).is_none());
    }
}
