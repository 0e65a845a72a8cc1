//! Record decryption: TLS 1.3 AEAD, TLS 1.2 AES-GCM (explicit nonce), TLS 1.2
//! ChaCha20-Poly1305, and TLS 1.2 AES-CBC with MAC-then-encrypt or encrypt-then-MAC.
//! Decrypts in place; never panics on hostile lengths, padding or MACs.

use crate::keylog::Secret;
use crate::schedule;
use crate::suites::{Hash, Kind, Suite};
use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
use ring::{aead, hmac};

const TAG_LEN: usize = 16;
const BLOCK: usize = 16;
const EXPLICIT_NONCE: usize = 8;

/// Why a record did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Tag, MAC or padding check failed.
    Auth,
    /// Too short for the cipher, or (TLS 1.3) an all-zero inner plaintext.
    Malformed,
}

/// The plaintext of an opened record: `body[start..end]`, with its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Opened {
    pub content_type: u8,
    pub start: usize,
    pub end: usize,
}

enum Protection {
    Tls13 {
        key: aead::LessSafeKey,
        iv: [u8; 12],
        secret: Secret,
        suite: &'static Suite,
    },
    Gcm12 {
        key: aead::LessSafeKey,
        salt: [u8; 4],
    },
    Chacha12 {
        key: aead::LessSafeKey,
        iv: [u8; 12],
    },
    Cbc12 {
        key: [u8; 32],
        key_len: usize,
        mac: hmac::Key,
        mac_len: usize,
        encrypt_then_mac: bool,
    },
}

/// The read state of one direction: keys and the implicit sequence number.
pub(crate) struct RecordDecrypter {
    protection: Protection,
    /// The sequence number of the next record.
    pub seq: u64,
}

fn aead_key(suite: &Suite, key: &[u8]) -> aead::LessSafeKey {
    let algorithm = match (suite.chacha, suite.key_len) {
        (true, _) => &aead::CHACHA20_POLY1305,
        (false, 16) => &aead::AES_128_GCM,
        _ => &aead::AES_256_GCM,
    };
    // Key lengths come from the suite table and always match the algorithm.
    aead::LessSafeKey::new(aead::UnboundKey::new(algorithm, key).expect("suite key length"))
}

fn xor_seq(iv: &[u8; 12], seq: u64) -> aead::Nonce {
    let mut nonce = *iv;
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    aead::Nonce::assume_unique_for_key(nonce)
}

/// The TLS 1.2 additional data / MAC header: seq || type || version || length.
fn pseudo_header(seq: u64, header: &[u8; 5], len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8..11].copy_from_slice(&header[..3]);
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

impl RecordDecrypter {
    /// TLS 1.3 read keys from a traffic secret.
    pub fn tls13(suite: &'static Suite, secret: Secret) -> RecordDecrypter {
        let mut key = [0u8; 32];
        let mut iv = [0u8; 12];
        let key = &mut key[..suite.key_len];
        schedule::traffic_key_iv(suite.hash, secret.as_bytes(), key, &mut iv);
        RecordDecrypter {
            protection: Protection::Tls13 {
                key: aead_key(suite, key),
                iv,
                secret,
                suite,
            },
            seq: 0,
        }
    }

    /// TLS 1.2 read keys of one side from the master secret and both randoms.
    pub fn tls12(
        suite: &'static Suite,
        master: &[u8],
        client_random: &[u8; 32],
        server_random: &[u8; 32],
        server: bool,
        encrypt_then_mac: bool,
    ) -> RecordDecrypter {
        let mac_len = suite.mac.map_or(0, Hash::len);
        let iv_len = match suite.kind {
            Kind::Gcm12 => 4,
            Kind::Chacha12 => 12,
            _ => 0,
        };
        let mut block = [0u8; schedule::MAX_KEY_BLOCK];
        let block = &mut block[..2 * (mac_len + suite.key_len + iv_len)];
        schedule::key_block(suite.hash, master, server_random, client_random, block);
        let pick = |offset: usize, len: usize| {
            let start = offset + if server { len } else { 0 };
            &block[start..start + len]
        };
        let mac_key = pick(0, mac_len);
        let key = pick(2 * mac_len, suite.key_len);
        let iv = pick(2 * (mac_len + suite.key_len), iv_len);
        let protection = match suite.kind {
            Kind::Gcm12 => Protection::Gcm12 {
                key: aead_key(suite, key),
                salt: iv.try_into().expect("4-byte salt"),
            },
            Kind::Chacha12 => Protection::Chacha12 {
                key: aead_key(suite, key),
                iv: iv.try_into().expect("12-byte iv"),
            },
            _ => {
                let mut cbc_key = [0u8; 32];
                cbc_key[..key.len()].copy_from_slice(key);
                let algorithm = match suite.mac {
                    Some(Hash::Sha1) => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    Some(Hash::Sha384) => hmac::HMAC_SHA384,
                    _ => hmac::HMAC_SHA256,
                };
                Protection::Cbc12 {
                    key: cbc_key,
                    key_len: key.len(),
                    mac: hmac::Key::new(algorithm, mac_key),
                    mac_len,
                    encrypt_then_mac,
                }
            }
        };
        RecordDecrypter { protection, seq: 0 }
    }

    /// TLS 1.3 KeyUpdate: derive the next traffic secret and restart at seq 0.
    pub fn update_traffic_secret(&mut self) {
        if let Protection::Tls13 { secret, suite, .. } = &self.protection {
            let next = schedule::next_traffic_secret(suite.hash, secret);
            *self = RecordDecrypter::tls13(suite, next);
        }
    }

    /// The smallest body length a record of this protection can have.
    pub fn min_body(&self) -> usize {
        match &self.protection {
            Protection::Tls13 { .. } => TAG_LEN + 1,
            Protection::Gcm12 { .. } => EXPLICIT_NONCE + TAG_LEN,
            Protection::Chacha12 { .. } => TAG_LEN,
            Protection::Cbc12 { mac_len, .. } => BLOCK + (mac_len + 1).div_ceil(BLOCK) * BLOCK,
        }
    }

    /// Opens the record at the current seq, advancing seq on success.
    pub fn open_next(&mut self, header: &[u8; 5], body: &mut [u8]) -> Result<Opened, OpenError> {
        let opened = self.open_at(self.seq, header, body)?;
        self.seq += 1;
        Ok(opened)
    }

    /// Opens the record as if it had sequence number `seq`. On failure `body` is garbage.
    pub fn open_at(
        &self,
        seq: u64,
        header: &[u8; 5],
        body: &mut [u8],
    ) -> Result<Opened, OpenError> {
        if body.len() < self.min_body() {
            return Err(OpenError::Malformed);
        }
        match &self.protection {
            Protection::Tls13 { key, iv, .. } => open_tls13(key, xor_seq(iv, seq), header, body),
            Protection::Gcm12 { key, salt } => {
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(salt);
                nonce[4..].copy_from_slice(&body[..EXPLICIT_NONCE]);
                let nonce = aead::Nonce::assume_unique_for_key(nonce);
                let aad = pseudo_header(seq, header, body.len() - EXPLICIT_NONCE - TAG_LEN);
                key.open_in_place(nonce, aead::Aad::from(aad), &mut body[EXPLICIT_NONCE..])
                    .map_err(|_| OpenError::Auth)?;
                Ok(Opened {
                    content_type: header[0],
                    start: EXPLICIT_NONCE,
                    end: body.len() - TAG_LEN,
                })
            }
            Protection::Chacha12 { key, iv } => {
                let aad = pseudo_header(seq, header, body.len() - TAG_LEN);
                key.open_in_place(xor_seq(iv, seq), aead::Aad::from(aad), body)
                    .map_err(|_| OpenError::Auth)?;
                Ok(Opened {
                    content_type: header[0],
                    start: 0,
                    end: body.len() - TAG_LEN,
                })
            }
            Protection::Cbc12 {
                key,
                key_len,
                mac,
                mac_len,
                encrypt_then_mac,
            } => {
                let cbc = CbcParams {
                    key: &key[..*key_len],
                    mac,
                    mac_len: *mac_len,
                };
                if *encrypt_then_mac {
                    cbc.open_etm(seq, header, body)
                } else {
                    cbc.open_mte(seq, header, body)
                }
            }
        }
    }
}

fn open_tls13(
    key: &aead::LessSafeKey,
    nonce: aead::Nonce,
    header: &[u8; 5],
    body: &mut [u8],
) -> Result<Opened, OpenError> {
    let plain = key
        .open_in_place(nonce, aead::Aad::from(*header), body)
        .map_err(|_| OpenError::Auth)?;
    let type_at = plain
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(OpenError::Malformed)?;
    Ok(Opened {
        content_type: plain[type_at],
        start: 0,
        end: type_at,
    })
}

struct CbcParams<'a> {
    key: &'a [u8],
    mac: &'a hmac::Key,
    mac_len: usize,
}

impl CbcParams<'_> {
    /// Decrypts `body[BLOCK..]` in place with the explicit IV `body[..BLOCK]`.
    fn decrypt(&self, body: &mut [u8]) -> Result<(), OpenError> {
        let (iv, data) = body.split_at_mut(BLOCK);
        if data.is_empty() || data.len() % BLOCK != 0 {
            return Err(OpenError::Malformed);
        }
        let result = if self.key.len() == 16 {
            cbc::Decryptor::<aes::Aes128>::new_from_slices(self.key, iv)
                .map_err(|_| OpenError::Malformed)?
                .decrypt_padded_mut::<NoPadding>(data)
                .map(|_| ())
        } else {
            cbc::Decryptor::<aes::Aes256>::new_from_slices(self.key, iv)
                .map_err(|_| OpenError::Malformed)?
                .decrypt_padded_mut::<NoPadding>(data)
                .map(|_| ())
        };
        result.map_err(|_| OpenError::Malformed)
    }

    /// The length of `data` without its TLS CBC padding.
    fn unpad(data: &[u8]) -> Result<usize, OpenError> {
        let pad = usize::from(*data.last().ok_or(OpenError::Auth)?);
        if pad + 1 > data.len() {
            return Err(OpenError::Auth);
        }
        let padding = &data[data.len() - pad - 1..];
        if padding.iter().any(|&b| usize::from(b) != pad) {
            return Err(OpenError::Auth);
        }
        Ok(data.len() - pad - 1)
    }

    fn mac_matches(&self, parts: &[&[u8]], expected: &[u8]) -> bool {
        let mut ctx = hmac::Context::with_key(self.mac);
        parts.iter().for_each(|p| ctx.update(p));
        let tag = ctx.sign();
        let tag = &tag.as_ref()[..self.mac_len];
        tag.len() == expected.len()
            && tag.iter().zip(expected).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }

    fn open_mte(&self, seq: u64, header: &[u8; 5], body: &mut [u8]) -> Result<Opened, OpenError> {
        self.decrypt(body)?;
        let unpadded = BLOCK + Self::unpad(&body[BLOCK..])?;
        let content_end = unpadded.checked_sub(self.mac_len).filter(|&e| e >= BLOCK);
        let content_end = content_end.ok_or(OpenError::Auth)?;
        let aad = pseudo_header(seq, header, content_end - BLOCK);
        let (content, mac) = body[BLOCK..unpadded].split_at(content_end - BLOCK);
        if !self.mac_matches(&[&aad, content], mac) {
            return Err(OpenError::Auth);
        }
        Ok(Opened {
            content_type: header[0],
            start: BLOCK,
            end: content_end,
        })
    }

    fn open_etm(&self, seq: u64, header: &[u8; 5], body: &mut [u8]) -> Result<Opened, OpenError> {
        let mac_at = body.len() - self.mac_len;
        let aad = pseudo_header(seq, header, mac_at);
        let (sealed, mac) = body.split_at_mut(mac_at);
        if !self.mac_matches(&[&aad, sealed], mac) {
            return Err(OpenError::Auth);
        }
        self.decrypt(sealed)?;
        let end = BLOCK + Self::unpad(&sealed[BLOCK..])?;
        Ok(Opened {
            content_type: header[0],
            start: BLOCK,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suites::supported;
    use crate::tests::unhex;

    fn rfc8448_decrypter(secret: &str) -> RecordDecrypter {
        RecordDecrypter::tls13(
            supported(0x1301).unwrap(),
            Secret::new(&unhex(secret)).unwrap(),
        )
    }

    #[test]
    fn rfc8448_server_application_record() {
        // RFC 8448 §3: the server's application data (seq 1, after its NewSessionTicket).
        let record = unhex(concat!(
            "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb",
            "501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d"
        ));
        let mut dec =
            rfc8448_decrypter("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
        dec.seq = 1;
        let header: [u8; 5] = record[..5].try_into().unwrap();
        let mut body = record[5..].to_vec();
        let opened = dec.open_next(&header, &mut body).unwrap();
        assert_eq!(opened.content_type, 23);
        let expected: Vec<u8> = (0u8..0x32).collect();
        assert_eq!(&body[opened.start..opened.end], expected.as_slice());
        assert_eq!(dec.seq, 2);
    }

    #[test]
    fn rfc8448_client_application_record_and_wrong_seq() {
        let record = unhex(concat!(
            "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a",
            "20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4"
        ));
        let dec =
            rfc8448_decrypter("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5");
        let header: [u8; 5] = record[..5].try_into().unwrap();
        let mut body = record[5..].to_vec();
        assert_eq!(
            dec.open_at(1, &header, &mut body.clone()),
            Err(OpenError::Auth)
        );
        let opened = dec.open_at(0, &header, &mut body).unwrap();
        assert_eq!(opened.end - opened.start, 0x32);
    }

    #[test]
    fn short_and_unaligned_bodies_are_rejected_without_panics() {
        let suite = supported(0x002f).unwrap();
        let dec = RecordDecrypter::tls12(suite, &[7; 48], &[1; 32], &[2; 32], false, false);
        let header = [23, 3, 3, 0, 0];
        for len in 0..80 {
            let mut body = vec![0xff; len];
            assert!(dec.open_at(0, &header, &mut body).is_err());
        }
    }
}
