//! Key derivation: TLS 1.3 HKDF-Expand-Label and traffic-secret update (RFC 8446 §7.1–7.3), and
//! the TLS 1.2 PRF P_SHA256/P_SHA384 with its key block (RFC 5246 §5, §6.3).

use crate::keylog::Secret;
use crate::suites::Hash;
use ring::{hkdf, hmac};

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_algorithm(hash: Hash) -> hkdf::Algorithm {
    match hash {
        Hash::Sha384 => hkdf::HKDF_SHA384,
        Hash::Sha1 => hkdf::HKDF_SHA1_FOR_LEGACY_USE_ONLY,
        Hash::Sha256 => hkdf::HKDF_SHA256,
    }
}

fn hmac_algorithm(hash: Hash) -> hmac::Algorithm {
    match hash {
        Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Hash::Sha256 => hmac::HMAC_SHA256,
        Hash::Sha384 => hmac::HMAC_SHA384,
    }
}

/// HKDF-Expand-Label(secret, label, context, out.len()) into `out` (at most 255 bytes).
pub(crate) fn expand_label(
    hash: Hash,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) {
    let prk = hkdf::Prk::new_less_safe(hkdf_algorithm(hash), secret);
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let context_len = [context.len() as u8];
    let info: [&[u8]; 6] = [&length, &label_len, b"tls13 ", label, &context_len, context];
    // Lengths here are fixed by the callers (≤ 48 bytes), far below HKDF's 255 × hash limit.
    let okm = prk
        .expand(&info, Len(out.len()))
        .expect("HKDF length in range");
    okm.fill(out).expect("HKDF length in range");
}

/// The next TLS 1.3 application traffic secret after a KeyUpdate.
pub(crate) fn next_traffic_secret(hash: Hash, secret: &Secret) -> Secret {
    let mut next = [0u8; 48];
    let out = &mut next[..hash.len()];
    expand_label(hash, secret.as_bytes(), b"traffic upd", b"", out);
    Secret::new(out).expect("hash length is 32 or 48")
}

/// The TLS 1.3 record key and IV of a traffic secret.
pub(crate) fn traffic_key_iv(hash: Hash, secret: &[u8], key: &mut [u8], iv: &mut [u8; 12]) {
    expand_label(hash, secret, b"key", b"", key);
    expand_label(hash, secret, b"iv", b"", iv);
}

/// The TLS 1.2 PRF: P_hash(secret, label || seed) into `out`.
pub(crate) fn prf(hash: Hash, secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    let key = hmac::Key::new(hmac_algorithm(hash), secret);
    let mut a = {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(label);
        seed.iter().for_each(|s| ctx.update(s));
        ctx.sign()
    };
    for chunk in out.chunks_mut(hash.len()) {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(a.as_ref());
        ctx.update(label);
        seed.iter().for_each(|s| ctx.update(s));
        let block = ctx.sign();
        chunk.copy_from_slice(&block.as_ref()[..chunk.len()]);
        a = hmac::sign(&key, a.as_ref());
    }
}

/// The longest TLS 1.2 key block used here: 2 × (48 MAC + 32 key + 16 IV).
pub(crate) const MAX_KEY_BLOCK: usize = 2 * (48 + 32 + 16);

/// The TLS 1.2 key block `client_mac | server_mac | client_key | server_key | client_iv | server_iv`.
pub(crate) fn key_block(
    hash: Hash,
    master: &[u8],
    server_random: &[u8; 32],
    client_random: &[u8; 32],
    out: &mut [u8],
) {
    prf(
        hash,
        master,
        b"key expansion",
        &[server_random, client_random],
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::unhex;

    #[test]
    fn prf_sha256_published_vector() {
        let mut out = [0u8; 100];
        prf(
            Hash::Sha256,
            &unhex("9bbe436ba940f017b17652849a71db35"),
            b"test label",
            &[&unhex("a0ba9f936cda311827a6f796ffd5198c")],
            &mut out,
        );
        let want = unhex(concat!(
            "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a",
            "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab",
            "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701",
            "87347b66"
        ));
        assert_eq!(out.as_slice(), want.as_slice());
    }

    #[test]
    fn prf_sha384_published_vector_prefix() {
        let mut out = [0u8; 48];
        prf(
            Hash::Sha384,
            &unhex("b80b733d6ceefcdc71566ea48e5567df"),
            b"test label",
            &[&unhex("cd665cf6a8447dd6ff8b27555edb7465")],
            &mut out,
        );
        let want = unhex(concat!(
            "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd",
            "e9ca0faa60be9fe34f82b1233c9146a0"
        ));
        assert_eq!(out.as_slice(), want.as_slice());
    }

    #[test]
    fn rfc8448_application_keys() {
        // RFC 8448 §3: {server} derive secret "tls13 s ap traffic" / "c ap traffic" and the
        // write keys derived from them.
        let server = unhex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
        let client = unhex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5");
        let (mut key, mut iv) = ([0u8; 16], [0u8; 12]);
        traffic_key_iv(Hash::Sha256, &server, &mut key, &mut iv);
        assert_eq!(key.as_slice(), unhex("9f02283b6c9c07efc26bb9f2ac92e356"));
        assert_eq!(iv.as_slice(), unhex("cf782b88dd83549aadf1e984"));
        traffic_key_iv(Hash::Sha256, &client, &mut key, &mut iv);
        assert_eq!(key.as_slice(), unhex("17422dda596ed5d9acd890e3c63f5051"));
        assert_eq!(iv.as_slice(), unhex("5b78923dee08579033e523d9"));
    }

    #[test]
    fn rfc8448_server_handshake_keys() {
        let secret = unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        let (mut key, mut iv) = ([0u8; 16], [0u8; 12]);
        traffic_key_iv(Hash::Sha256, &secret, &mut key, &mut iv);
        assert_eq!(key.as_slice(), unhex("3fce516009c21727d0f2e4e86ee403bc"));
        assert_eq!(iv.as_slice(), unhex("5d313eb2671276ee13000b30"));
    }
}
