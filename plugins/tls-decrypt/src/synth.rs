//! Test-only encoder: builds whole synthetic TLS conversations from chosen secrets, with the
//! same ring/aes primitives in the encrypt direction, plus the key log that decrypts them.

use crate::schedule;
use crate::suites::{self, Hash, Kind, Suite};
use crate::Side;
use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
use ring::{aead, hmac};

/// Encrypts the records of one direction.
pub(crate) enum Encrypter {
    Tls13 {
        key: aead::LessSafeKey,
        iv: [u8; 12],
        secret: Vec<u8>,
        suite: &'static Suite,
        seq: u64,
    },
    Gcm12 {
        key: aead::LessSafeKey,
        salt: [u8; 4],
        seq: u64,
    },
    Chacha12 {
        key: aead::LessSafeKey,
        iv: [u8; 12],
        seq: u64,
    },
    Cbc12 {
        key: Vec<u8>,
        mac: hmac::Key,
        etm: bool,
        seq: u64,
    },
}

fn aead_key(suite: &Suite, key: &[u8]) -> aead::LessSafeKey {
    let alg = match (suite.chacha, suite.key_len) {
        (true, _) => &aead::CHACHA20_POLY1305,
        (false, 16) => &aead::AES_128_GCM,
        _ => &aead::AES_256_GCM,
    };
    aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap())
}

fn nonce(iv: &[u8; 12], seq: u64) -> aead::Nonce {
    let mut n = *iv;
    for (a, b) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
        *a ^= b;
    }
    aead::Nonce::assume_unique_for_key(n)
}

fn aad12(seq: u64, content_type: u8, len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8..11].copy_from_slice(&[content_type, 3, 3]);
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    a
}

fn header(content_type: u8, len: usize) -> Vec<u8> {
    let mut h = vec![content_type, 3, 3];
    h.extend((len as u16).to_be_bytes());
    h
}

impl Encrypter {
    pub fn tls13(suite: &'static Suite, secret: &[u8]) -> Encrypter {
        let mut key = vec![0u8; suite.key_len];
        let mut iv = [0u8; 12];
        schedule::traffic_key_iv(suite.hash, secret, &mut key, &mut iv);
        Encrypter::Tls13 {
            key: aead_key(suite, &key),
            iv,
            secret: secret.to_vec(),
            suite,
            seq: 0,
        }
    }

    pub fn tls12(
        suite: &'static Suite,
        master: &[u8],
        cr: &[u8; 32],
        sr: &[u8; 32],
        server: bool,
        etm: bool,
    ) -> Encrypter {
        let mac_len = suite.mac.map_or(0, Hash::len);
        let iv_len = match suite.kind {
            Kind::Gcm12 => 4,
            Kind::Chacha12 => 12,
            _ => 0,
        };
        let mut block = vec![0u8; 2 * (mac_len + suite.key_len + iv_len)];
        schedule::key_block(suite.hash, master, sr, cr, &mut block);
        let part = |off: usize, len: usize| {
            let s = off + if server { len } else { 0 };
            block[s..s + len].to_vec()
        };
        let mac_key = part(0, mac_len);
        let key = part(2 * mac_len, suite.key_len);
        let iv = part(2 * (mac_len + suite.key_len), iv_len);
        match suite.kind {
            Kind::Gcm12 => Encrypter::Gcm12 {
                key: aead_key(suite, &key),
                salt: iv.try_into().unwrap(),
                seq: 0,
            },
            Kind::Chacha12 => Encrypter::Chacha12 {
                key: aead_key(suite, &key),
                iv: iv.try_into().unwrap(),
                seq: 0,
            },
            _ => {
                let alg = match suite.mac {
                    Some(Hash::Sha1) => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    Some(Hash::Sha384) => hmac::HMAC_SHA384,
                    _ => hmac::HMAC_SHA256,
                };
                Encrypter::Cbc12 {
                    key,
                    mac: hmac::Key::new(alg, &mac_key),
                    etm,
                    seq: 0,
                }
            }
        }
    }

    pub fn key_update(&mut self) {
        if let Encrypter::Tls13 { secret, suite, .. } = self {
            let mut next = vec![0u8; suite.hash.len()];
            schedule::expand_label(suite.hash, secret, b"traffic upd", b"", &mut next);
            *self = Encrypter::tls13(suite, &next);
        }
    }

    /// One protected record carrying `payload` of `content_type`.
    pub fn seal(&mut self, content_type: u8, payload: &[u8]) -> Vec<u8> {
        match self {
            Encrypter::Tls13 { key, iv, seq, .. } => {
                let mut inner = payload.to_vec();
                inner.push(content_type);
                inner.extend([0, 0, 0]); // padding
                let h = header(23, inner.len() + 16);
                key.seal_in_place_append_tag(nonce(iv, *seq), aead::Aad::from(&h), &mut inner)
                    .unwrap();
                *seq += 1;
                [h, inner].concat()
            }
            Encrypter::Gcm12 { key, salt, seq } => {
                let explicit = (*seq ^ 0x5a5a).to_be_bytes();
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(salt);
                n[4..].copy_from_slice(&explicit);
                let mut data = payload.to_vec();
                let aad = aad12(*seq, content_type, payload.len());
                key.seal_in_place_append_tag(
                    aead::Nonce::assume_unique_for_key(n),
                    aead::Aad::from(aad),
                    &mut data,
                )
                .unwrap();
                *seq += 1;
                [
                    header(content_type, 8 + data.len()),
                    explicit.to_vec(),
                    data,
                ]
                .concat()
            }
            Encrypter::Chacha12 { key, iv, seq } => {
                let mut data = payload.to_vec();
                let aad = aad12(*seq, content_type, payload.len());
                key.seal_in_place_append_tag(nonce(iv, *seq), aead::Aad::from(aad), &mut data)
                    .unwrap();
                *seq += 1;
                [header(content_type, data.len()), data].concat()
            }
            Encrypter::Cbc12 { key, mac, etm, seq } => {
                let iv = [(*seq as u8) ^ 0x33; 16];
                let mac_of = |data: &[u8]| {
                    let mut ctx = hmac::Context::with_key(mac);
                    ctx.update(&aad12(*seq, content_type, data.len()));
                    ctx.update(data);
                    ctx.sign().as_ref().to_vec()
                };
                let pad = |mut data: Vec<u8>| {
                    let p = 15 - data.len() % 16 + 16; // one extra block of padding
                    data.extend(std::iter::repeat_n(p as u8, p + 1));
                    data
                };
                let encrypt = |mut data: Vec<u8>| {
                    let len = data.len();
                    if key.len() == 16 {
                        cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
                            .unwrap()
                            .encrypt_padded_mut::<NoPadding>(&mut data, len)
                            .unwrap();
                    } else {
                        cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
                            .unwrap()
                            .encrypt_padded_mut::<NoPadding>(&mut data, len)
                            .unwrap();
                    }
                    [iv.to_vec(), data].concat()
                };
                let body = if *etm {
                    let sealed = encrypt(pad(payload.to_vec()));
                    let tag = mac_of(&sealed);
                    [sealed, tag].concat()
                } else {
                    let tag = mac_of(payload);
                    encrypt(pad([payload.to_vec(), tag].concat()))
                };
                *seq += 1;
                [header(content_type, body.len()), body].concat()
            }
        }
    }
}

/// A handshake message: type, 24-bit length, body.
pub(crate) fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let len = (body.len() as u32).to_be_bytes();
    [vec![msg_type, len[1], len[2], len[3]], body.to_vec()].concat()
}

fn ext(ext_type: u16, data: &[u8]) -> Vec<u8> {
    [
        ext_type.to_be_bytes().to_vec(),
        (data.len() as u16).to_be_bytes().to_vec(),
        data.to_vec(),
    ]
    .concat()
}

fn vec16(data: &[u8]) -> Vec<u8> {
    [(data.len() as u16).to_be_bytes().to_vec(), data.to_vec()].concat()
}

fn alpn_ext(names: &[&str]) -> Vec<u8> {
    let list: Vec<u8> = names
        .iter()
        .flat_map(|n| [vec![n.len() as u8], n.as_bytes().to_vec()].concat())
        .collect();
    ext(16, &vec16(&list))
}

pub(crate) fn client_hello(random: &[u8; 32], etm: bool, early: bool) -> Vec<u8> {
    let mut exts = ext(0, &vec16(&[vec![0u8], vec16(b"example.com")].concat()));
    exts.extend(alpn_ext(&["h2", "http/1.1"]));
    if etm {
        exts.extend(ext(22, &[]));
    }
    if early {
        exts.extend(ext(42, &[]));
    }
    exts.extend(ext(43, &[4, 3, 4, 3, 3]));
    let body = [
        vec![3, 3],
        random.to_vec(),
        vec![32],
        vec![0x11; 32],
        vec16(&[0x13, 0x01, 0xc0, 0x2b]),
        vec![1, 0],
        vec16(&exts),
    ]
    .concat();
    message(1, &body)
}

pub(crate) fn server_hello(
    random: &[u8; 32],
    suite: u16,
    tls13: bool,
    etm: bool,
    alpn: Option<&str>,
) -> Vec<u8> {
    let mut exts = Vec::new();
    if tls13 {
        exts.extend(ext(43, &[3, 4]));
        exts.extend(ext(51, &[0, 29, 0, 1, 9]));
    }
    if etm {
        exts.extend(ext(22, &[]));
    }
    if let Some(a) = alpn {
        exts.extend(alpn_ext(&[a]));
    }
    let body = [
        vec![3, 3],
        random.to_vec(),
        vec![32],
        vec![0x11; 32],
        suite.to_be_bytes().to_vec(),
        vec![0],
        vec16(&exts),
    ]
    .concat();
    message(2, &body)
}

pub(crate) fn encrypted_extensions(alpn: Option<&str>, early: bool) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(a) = alpn {
        exts.extend(alpn_ext(&[a]));
    }
    if early {
        exts.extend(ext(42, &[]));
    }
    message(8, &vec16(&exts))
}

/// A plaintext record.
pub(crate) fn plain(content_type: u8, body: &[u8]) -> Vec<u8> {
    [
        vec![content_type, 3, if content_type == 22 { 1 } else { 3 }],
        (body.len() as u16).to_be_bytes().to_vec(),
        body.to_vec(),
    ]
    .concat()
}

pub(crate) const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A built conversation: records in capture order, the plaintext a session must produce, and
/// the key log.
pub(crate) struct Conversation {
    pub records: Vec<(Side, Vec<u8>)>,
    pub expected: Vec<(Side, Vec<u8>)>,
    pub keylog: String,
}

impl Conversation {
    fn new(keylog: String) -> Conversation {
        Conversation {
            records: Vec::new(),
            expected: Vec::new(),
            keylog,
        }
    }
    fn push(&mut self, side: Side, record: Vec<u8>) {
        self.records.push((side, record));
    }
    fn data(&mut self, side: Side, enc: &mut Encrypter, text: &[u8]) {
        self.push(side, enc.seal(23, text));
        self.expected.push((side, text.to_vec()));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) const CLIENT_RANDOM: [u8; 32] = [0xc1; 32];
pub(crate) const SERVER_RANDOM: [u8; 32] = [0x5e; 32];

/// TLS 1.3 variations.
#[derive(Clone, Copy, Default)]
pub(crate) struct Tls13Options {
    pub hrr: bool,
    pub ccs: bool,
    pub key_update: bool,
    /// 0-RTT: Some(accepted).
    pub early: Option<bool>,
    /// Extra small server application records before the final big one.
    pub extra: usize,
}

pub(crate) fn tls13(suite_id: u16, opt: Tls13Options) -> Conversation {
    let suite = suites::supported(suite_id).unwrap();
    let n = suite.hash.len();
    let secret = |b: u8| vec![b; n];
    let cr = hex(&CLIENT_RANDOM);
    let keylog = format!(
        "CLIENT_EARLY_TRAFFIC_SECRET {cr} {}\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {cr} {}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {cr} {}\nCLIENT_TRAFFIC_SECRET_0 {cr} {}\nSERVER_TRAFFIC_SECRET_0 {cr} {}\nEXPORTER_SECRET {cr} {}\n",
        hex(&secret(1)), hex(&secret(2)), hex(&secret(3)), hex(&secret(4)), hex(&secret(5)), hex(&secret(6))
    );
    let mut c = Conversation::new(keylog);
    let (mut c_early, mut c_hs, mut s_hs) = (
        Encrypter::tls13(suite, &secret(1)),
        Encrypter::tls13(suite, &secret(2)),
        Encrypter::tls13(suite, &secret(3)),
    );
    let (mut c_app, mut s_app) = (
        Encrypter::tls13(suite, &secret(4)),
        Encrypter::tls13(suite, &secret(5)),
    );
    let early = opt.early.is_some() && !opt.hrr;
    c.push(
        Side::Client,
        plain(
            22,
            &client_hello(&CLIENT_RANDOM, false, opt.early.is_some()),
        ),
    );
    if opt.ccs {
        c.push(Side::Client, plain(20, &[1]));
    }
    if let Some(accepted) = opt.early {
        let text = b"GET /early HTTP/1.1\r\n\r\n";
        c.push(Side::Client, c_early.seal(23, text));
        if accepted && !opt.hrr {
            c.expected.push((Side::Client, text.to_vec()));
        }
    }
    if opt.hrr {
        c.push(
            Side::Server,
            plain(22, &server_hello(&HRR_RANDOM, suite_id, true, false, None)),
        );
        c.push(
            Side::Client,
            plain(22, &client_hello(&CLIENT_RANDOM, false, false)),
        );
    }
    c.push(
        Side::Server,
        plain(
            22,
            &server_hello(&SERVER_RANDOM, suite_id, true, false, None),
        ),
    );
    if opt.ccs {
        c.push(Side::Server, plain(20, &[1]));
    }
    let accepted = early && opt.early == Some(true);
    let flight = [
        encrypted_extensions(Some("h2"), accepted),
        message(11, &[0xce; 700]),
        message(15, &[0xcf; 70]),
        message(20, &vec![0xf1; n]),
    ]
    .concat();
    // Two records: one split message, so reassembly across records is exercised.
    let (a, b) = flight.split_at(flight.len() / 2);
    c.push(Side::Server, s_hs.seal(22, a));
    c.push(Side::Server, s_hs.seal(22, b));
    c.data(Side::Server, &mut s_app, b"half-rtt data");
    if accepted {
        c.push(Side::Client, c_early.seal(22, &message(5, &[])));
    }
    c.push(Side::Client, c_hs.seal(22, &message(20, &vec![0xf2; n])));
    c.data(
        Side::Client,
        &mut c_app,
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    c.push(Side::Server, s_app.seal(22, &message(4, &[0x77; 40])));
    c.data(Side::Server, &mut s_app, b"HTTP/1.1 200 OK\r\n\r\n");
    if opt.key_update {
        c.push(Side::Client, c_app.seal(22, &message(24, &[1])));
        c_app.key_update();
        c.data(Side::Client, &mut c_app, b"after client update");
        c.push(Side::Server, s_app.seal(22, &message(24, &[0])));
        s_app.key_update();
        c.data(Side::Server, &mut s_app, b"after server update");
    }
    for i in 0..opt.extra {
        c.data(
            Side::Server,
            &mut s_app,
            format!("extra record {i}").as_bytes(),
        );
    }
    c.data(Side::Server, &mut s_app, &[0xab; 16384]);
    c.push(Side::Server, s_app.seal(21, &[1, 0]));
    c
}

/// TLS 1.2 variations.
#[derive(Clone, Copy, Default)]
pub(crate) struct Tls12Options {
    pub etm: bool,
    pub resumption: bool,
    /// The server asks for a new handshake (HelloRequest) under the established keys.
    pub renegotiate: bool,
}

pub(crate) const MASTER: [u8; 48] = [0x4d; 48];

pub(crate) fn tls12(suite_id: u16, opt: Tls12Options) -> Conversation {
    let suite = suites::supported(suite_id).unwrap();
    let keylog = format!("CLIENT_RANDOM {} {}\n", hex(&CLIENT_RANDOM), hex(&MASTER));
    let mut c = Conversation::new(keylog);
    let enc = |server| {
        Encrypter::tls12(
            suite,
            &MASTER,
            &CLIENT_RANDOM,
            &SERVER_RANDOM,
            server,
            opt.etm,
        )
    };
    let (mut ce, mut se) = (enc(false), enc(true));
    c.push(
        Side::Client,
        plain(22, &client_hello(&CLIENT_RANDOM, opt.etm, false)),
    );
    let hello = server_hello(&SERVER_RANDOM, suite_id, false, opt.etm, Some("http/1.1"));
    if opt.resumption {
        c.push(
            Side::Server,
            plain(22, &[hello, message(4, &[9; 30])].concat()),
        );
        c.push(Side::Server, plain(20, &[1]));
        c.push(Side::Server, se.seal(22, &message(20, &[0xf1; 12])));
        c.push(Side::Client, plain(20, &[1]));
        c.push(Side::Client, ce.seal(22, &message(20, &[0xf2; 12])));
    } else {
        let flight = [
            hello,
            message(11, &[0xce; 900]),
            message(12, &[0xcd; 100]),
            message(14, &[]),
        ]
        .concat();
        c.push(Side::Server, plain(22, &flight));
        c.push(Side::Client, plain(22, &message(16, &[0x20; 33])));
        c.push(Side::Client, plain(20, &[1]));
        c.push(Side::Client, ce.seal(22, &message(20, &[0xf2; 12])));
        c.push(Side::Server, plain(22, &message(4, &[9; 30])));
        c.push(Side::Server, plain(20, &[1]));
        c.push(Side::Server, se.seal(22, &message(20, &[0xf1; 12])));
    }
    c.data(
        Side::Client,
        &mut ce,
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    c.data(
        Side::Server,
        &mut se,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    );
    c.data(Side::Client, &mut ce, &[0x42; 16384]);
    c.data(Side::Server, &mut se, b"x");
    if opt.renegotiate {
        c.push(Side::Server, se.seal(22, &message(0, &[])));
    }
    c.push(Side::Client, ce.seal(21, &[1, 0]));
    c
}
