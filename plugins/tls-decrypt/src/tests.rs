//! Whole-conversation tests (synthetic conversations from `synth`).

/// Hex (whitespace allowed) to bytes.
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

use crate::synth::{self, Conversation, Tls12Options, Tls13Options};
use crate::{looks_like_tls, sniff, KeyLog, Limits, Side, TlsFailure, TlsInfo, TlsSession};

type Outputs = Vec<(Side, Vec<u8>, usize)>;

fn keylog(text: &str) -> KeyLog {
    let mut log = KeyLog::default();
    let added = log.add_text(text.as_bytes());
    assert_eq!(added.malformed, 0);
    log
}

/// Feeds `chunks` (tag = chunk index); returns the outputs and the failure.
fn run(
    chunks: &[(Side, Vec<u8>)],
    keys: &KeyLog,
) -> (Outputs, Option<TlsFailure>, TlsSession<usize>) {
    let mut session = TlsSession::new(Limits::default());
    let mut got = Vec::new();
    for (i, (side, bytes)) in chunks.iter().enumerate() {
        session.feed(*side, bytes, i, keys, &mut |s, p, t, _| {
            got.push((s, p.to_vec(), *t))
        });
    }
    let failure = session.take_failure();
    (got, failure, session)
}

fn plaintext(got: &Outputs) -> Vec<(Side, Vec<u8>)> {
    got.iter().map(|(s, p, _)| (*s, p.clone())).collect()
}

fn byte_by_byte(records: &[(Side, Vec<u8>)]) -> Vec<(Side, Vec<u8>)> {
    records
        .iter()
        .flat_map(|(s, r)| r.iter().map(move |b| (*s, vec![*b])))
        .collect()
}

/// Consecutive records of the same side in one feed.
fn coalesced(records: &[(Side, Vec<u8>)]) -> Vec<(Side, Vec<u8>)> {
    let mut out: Vec<(Side, Vec<u8>)> = Vec::new();
    for (side, r) in records {
        match out.last_mut() {
            Some((s, bytes)) if s == side => bytes.extend(r),
            _ => out.push((*side, r.clone())),
        }
    }
    out
}

/// Decrypts `conv` whole-record, byte-by-byte and coalesced; all must give `expected`.
fn assert_decrypts(conv: &Conversation) -> TlsSession<usize> {
    let keys = keylog(&conv.keylog);
    for chunks in [byte_by_byte(&conv.records), coalesced(&conv.records)] {
        let (got, failure, _) = run(&chunks, &keys);
        assert_eq!(failure, None);
        assert_eq!(plaintext(&got), conv.expected);
    }
    let (got, failure, session) = run(&conv.records, &keys);
    assert_eq!(failure, None);
    assert_eq!(plaintext(&got), conv.expected);
    session
}

#[test]
fn tls13_every_suite_and_variation() {
    for suite in [0x1301, 0x1302, 0x1303] {
        for hrr in [false, true] {
            for ccs in [false, true] {
                for key_update in [false, true] {
                    let opt = Tls13Options {
                        hrr,
                        ccs,
                        key_update,
                        ..Default::default()
                    };
                    let session = assert_decrypts(&synth::tls13(suite, opt));
                    let info = session.info().unwrap();
                    assert_eq!((info.version, info.cipher), (0x0304, suite));
                    assert_eq!(info.sni.as_deref(), Some("example.com"));
                    assert_eq!(info.alpn.as_deref(), Some("h2"));
                    assert!(info.alpn_selected, "EncryptedExtensions selects it");
                }
            }
        }
    }
}

#[test]
fn tls13_early_data_accepted_and_rejected() {
    for accepted in [true, false] {
        for ccs in [false, true] {
            let opt = Tls13Options {
                early: Some(accepted),
                ccs,
                ..Default::default()
            };
            let conv = synth::tls13(0x1301, opt);
            assert_eq!(
                conv.expected
                    .first()
                    .map(|e| e.1.starts_with(b"GET /early")),
                Some(accepted),
            );
            assert_decrypts(&conv);
        }
    }
    let opt = Tls13Options {
        early: Some(false),
        hrr: true,
        ..Default::default()
    };
    assert_decrypts(&synth::tls13(0x1302, opt));
}

const TLS12_SUITES: [u16; 21] = [
    0x009c, 0x009d, 0xc02b, 0xc02c, 0xc02f, 0xc030, 0xcca8, 0xcca9, 0xccaa, 0x002f, 0x0035, 0xc009,
    0xc00a, 0xc013, 0xc014, 0x003c, 0x003d, 0xc023, 0xc027, 0xc024, 0xc028,
];

#[test]
fn tls12_every_suite_with_and_without_etm_and_resumption() {
    for suite in TLS12_SUITES {
        for etm in [false, true] {
            for resumption in [false, true] {
                let opt = Tls12Options {
                    etm,
                    resumption,
                    ..Default::default()
                };
                let session = assert_decrypts(&synth::tls12(suite, opt));
                let info = session.info().unwrap();
                assert_eq!((info.version, info.cipher), (0x0303, suite));
                assert_eq!(info.alpn.as_deref(), Some("http/1.1"));
                assert!(info.alpn_selected, "the ServerHello selects it");
            }
        }
    }
}

#[test]
fn tags_are_those_of_the_completing_feed() {
    let conv = synth::tls13(0x1301, Tls13Options::default());
    let chunks = byte_by_byte(&conv.records);
    let (got, _, _) = run(&chunks, &keylog(&conv.keylog));
    let mut offset = 0;
    let mut last_byte = Vec::new();
    for (_, r) in &conv.records {
        offset += r.len();
        last_byte.push(offset - 1);
    }
    for (_, _, tag) in &got {
        assert!(
            last_byte.contains(tag),
            "tag {tag} is not a record's last byte"
        );
    }
}

#[test]
fn corrupted_tag_is_decrypt_failed_and_reported_once() {
    for conv in [
        synth::tls13(0x1301, Tls13Options::default()),
        synth::tls12(0x002f, Tls12Options::default()),
    ] {
        let mut records = conv.records.clone();
        let last_data = records.len() - 2;
        *records[last_data].1.last_mut().unwrap() ^= 1;
        let keys = keylog(&conv.keylog);
        let (got, failure, mut session) = run(&records, &keys);
        assert_eq!(failure, Some(TlsFailure::DecryptFailed));
        assert_eq!(got.len(), conv.expected.len() - 1);
        assert!(session.failed());
        assert_eq!(session.take_failure(), None);
        let mut more = 0;
        session.feed(Side::Client, &records[0].1, 0, &keys, &mut |_, _, _, _| {
            more += 1
        });
        assert_eq!((more, session.pending_bytes()), (0, 0));
    }
}

#[test]
fn truncated_input_waits_without_failing() {
    let conv = synth::tls12(0xc02f, Tls12Options::default());
    let all: Vec<u8> = conv
        .records
        .iter()
        .take(3)
        .flat_map(|(_, r)| r.clone())
        .collect();
    let mut session: TlsSession<()> = TlsSession::new(Limits::default());
    let keys = keylog(&conv.keylog);
    session.feed(
        Side::Client,
        &conv.records[0].1[..20],
        (),
        &keys,
        &mut |_, _, _, _| panic!(),
    );
    assert!(!session.failed());
    assert!(session.pending_bytes() <= 20 + 1024);
    assert!(!all.is_empty());
}

#[test]
fn garbage_and_mid_connection_starts() {
    let conv = synth::tls13(0x1301, Tls13Options::default());
    let keys = keylog(&conv.keylog);
    // No ClientHello: starts with the server's records, or the client's encrypted ones.
    let (_, failure, _) = run(&conv.records[1..], &keys);
    assert_eq!(failure, Some(TlsFailure::NoHandshake));
    let client_data: Vec<_> = conv
        .records
        .iter()
        .filter(|(s, r)| *s == Side::Client && r[0] == 23)
        .cloned()
        .collect();
    let (_, failure, _) = run(&client_data, &keys);
    assert_eq!(failure, Some(TlsFailure::NoHandshake));
    // Garbage where a record header belongs.
    let mut records = conv.records.clone();
    records.insert(3, (Side::Server, b"GET / HTTP/1.1\r\n".to_vec()));
    let (_, failure, _) = run(&records, &keys);
    assert_eq!(failure, Some(TlsFailure::Malformed));
    let (_, failure, _) = run(&[(Side::Client, vec![0x16, 3, 1, 0, 4, 1, 0, 0, 0])], &keys);
    assert_eq!(failure, Some(TlsFailure::Malformed));
}

#[test]
fn huge_lengths_are_refused_without_allocating() {
    let keys = KeyLog::default();
    let (_, failure, s) = run(&[(Side::Client, vec![0x16, 3, 1, 0xff, 0xff, 1])], &keys);
    assert_eq!(
        (failure, s.pending_bytes()),
        (Some(TlsFailure::Malformed), 0)
    );
    let mut session: TlsSession<()> = TlsSession::new(Limits::default());
    session.feed(
        Side::Client,
        &[0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff],
        (),
        &keys,
        &mut |_, _, _, _| {},
    );
    assert_eq!(session.take_failure(), Some(TlsFailure::Malformed));
    // A skipped message type may claim 16 MiB: nothing is buffered for it.
    let conv = synth::tls12(0xc02f, Tls12Options::default());
    let mut session: TlsSession<()> = TlsSession::new(Limits::default());
    session.feed(
        Side::Client,
        &conv.records[0].1,
        (),
        &keys,
        &mut |_, _, _, _| {},
    );
    let server_hello = &conv.records[1].1;
    let mut record = server_hello[..5].to_vec();
    record[3..5].copy_from_slice(&20u16.to_be_bytes());
    record.extend([11, 0xff, 0xff, 0xff]);
    record.extend([0; 16]);
    session.feed(Side::Server, &record, (), &keys, &mut |_, _, _, _| {});
    assert!(session.pending_bytes() < 1024);
}

#[test]
fn key_arriving_later_is_picked_up_by_retry_in_capture_order() {
    for conv in [
        synth::tls13(
            0x1303,
            Tls13Options {
                key_update: true,
                early: Some(true),
                ..Default::default()
            },
        ),
        synth::tls12(0xc028, Tls12Options::default()),
    ] {
        let mut keys = KeyLog::default();
        let mut session = TlsSession::new(Limits::default());
        let mut got = Vec::new();
        for (i, (side, bytes)) in conv.records.iter().enumerate() {
            session.feed(*side, bytes, i, &keys, &mut |s, p, t, _| {
                got.push((s, p.to_vec(), *t))
            });
        }
        assert!(session.waiting_for_key());
        assert!(got.is_empty());
        assert!(session.pending_bytes() > 16384);
        assert!(!session.retry(&keys, &mut |_, _, _, _| panic!()));
        keys.add_text(conv.keylog.as_bytes());
        assert!(session.retry(&keys, &mut |s, p, t, _| got.push((s, p.to_vec(), *t))));
        assert!(!session.waiting_for_key());
        assert_eq!(plaintext(&got), conv.expected);
        assert_eq!(session.take_failure(), None);
        assert_eq!(session.pending_bytes(), 0);
    }
}

#[test]
fn partial_key_log_waits_for_the_traffic_secrets() {
    let conv = synth::tls13(0x1301, Tls13Options::default());
    let handshake_only: String = conv
        .keylog
        .lines()
        .filter(|l| l.contains("HANDSHAKE"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut keys = keylog(&handshake_only);
    let mut session = TlsSession::new(Limits::default());
    let mut got = Vec::new();
    for (i, (side, bytes)) in conv.records.iter().enumerate() {
        session.feed(*side, bytes, i, &keys, &mut |s, p, t, _| {
            got.push((s, p.to_vec(), *t))
        });
    }
    assert!(session.waiting_for_key());
    let selected = session.info().unwrap();
    assert_eq!(selected.alpn.as_deref(), Some("h2"));
    assert!(
        selected.alpn_selected,
        "the handshake secrets decrypt EncryptedExtensions"
    );
    keys.add_text(conv.keylog.as_bytes());
    session.retry(&keys, &mut |s, p, t, _| got.push((s, p.to_vec(), *t)));
    assert_eq!(plaintext(&got), conv.expected);
}

#[test]
fn pending_beyond_limits_is_buffer_full_and_give_up_is_no_key() {
    let conv = synth::tls12(0xc02b, Tls12Options::default());
    let keys = KeyLog::default();
    let mut session = TlsSession::new(Limits {
        max_pending_bytes: 4096,
    });
    for (side, bytes) in &conv.records {
        session.feed(*side, bytes, (), &keys, &mut |_, _, _, _| {});
    }
    assert_eq!(session.take_failure(), Some(TlsFailure::BufferFull));
    assert_eq!(session.pending_bytes(), 0);

    let mut session = TlsSession::new(Limits::default());
    for (side, bytes) in &conv.records[..6] {
        session.feed(*side, bytes, (), &keys, &mut |_, _, _, _| {});
    }
    assert!(session.waiting_for_key());
    session.give_up();
    assert_eq!(session.take_failure(), Some(TlsFailure::NoKey));
    assert_eq!(session.pending_bytes(), 0);
}

#[test]
fn renegotiation_and_unsupported_suites() {
    let conv = synth::tls12(
        0xc02f,
        Tls12Options {
            renegotiate: true,
            ..Default::default()
        },
    );
    let (_, failure, _) = run(&conv.records, &keylog(&conv.keylog));
    assert_eq!(failure, Some(TlsFailure::Renegotiation));

    let conv = synth::tls12(0xc02f, Tls12Options::default());
    let mut records = conv.records.clone();
    let hello = &mut records[1].1;
    let at = 5 + 4 + 2 + 32 + 1 + 32;
    hello[at..at + 2].copy_from_slice(&0x009fu16.to_be_bytes());
    let (_, failure, _) = run(&records, &keylog(&conv.keylog));
    assert_eq!(failure, Some(TlsFailure::UnsupportedSuite(0x009f)));
    assert_eq!(
        failure.unwrap().to_string(),
        "tls: unsupported suite 0x009f"
    );
    assert_eq!(failure.unwrap().reason(), "tls: unsupported suite");
}

/// Feeds `records` but reports the bytes in `holes` (record index, start, len) as gaps.
fn run_with_holes(
    conv: &Conversation,
    holes: &[(usize, usize, usize)],
) -> (Outputs, Option<TlsFailure>) {
    let keys = keylog(&conv.keylog);
    let mut session = TlsSession::new(Limits::default());
    let mut got = Vec::new();
    for (i, (side, bytes)) in conv.records.iter().enumerate() {
        let mut out = |s, p: &[u8], t: &usize, _: Option<&TlsInfo>| got.push((s, p.to_vec(), *t));
        match holes.iter().find(|h| h.0 == i) {
            Some(&(_, start, len)) => {
                session.feed(*side, &bytes[..start], i, &keys, &mut out);
                session.gap(*side, len as u64);
                session.feed(*side, &bytes[start + len..], i, &keys, &mut out);
            }
            None => session.feed(*side, bytes, i, &keys, &mut out),
        }
    }
    (got, session.take_failure())
}

fn extra_index(conv: &Conversation, n: usize) -> usize {
    let text = format!("extra record {n}");
    conv.records
        .iter()
        .position(|(_, r)| r.len() == 5 + text.len() + 1 + 3 + 16)
        .map(|first| first + n)
        .unwrap()
}

#[test]
fn gaps_resynchronise_or_fail_as_lost_segment() {
    let conv = synth::tls13(
        0x1301,
        Tls13Options {
            extra: 12,
            ..Default::default()
        },
    );
    let lost = |n: usize| {
        let text = format!("extra record {n}");
        conv.expected
            .iter()
            .filter(|e| e.1 != text.as_bytes())
            .cloned()
            .collect::<Vec<_>>()
    };
    let i = extra_index(&conv, 3);
    let len = conv.records[i].1.len();
    // Hole inside a record body: that record is lost, the next header position is exact.
    let (got, failure) = run_with_holes(&conv, &[(i, 7, 10)]);
    assert_eq!((plaintext(&got), failure), (lost(3), None));
    // Hole covering a whole record (ends at a record boundary): scan for the next header.
    let (got, failure) = run_with_holes(&conv, &[(i, 0, len)]);
    assert_eq!((plaintext(&got), failure), (lost(3), None));
    // Hole from inside one record into the next.
    let mut merged = conv.records.clone();
    let next = merged.remove(i + 1).1;
    merged[i].1.extend(next);
    let merged = Conversation {
        records: merged,
        expected: Vec::new(),
        keylog: conv.keylog.clone(),
    };
    let (got, failure) = run_with_holes(&merged, &[(i, 10, len)]);
    assert_eq!(failure, None);
    assert_eq!(got.len(), conv.expected.len() - 2);
    // Ten records missing: beyond the resync window.
    let conv = synth::tls13(
        0x1301,
        Tls13Options {
            extra: 24,
            ..Default::default()
        },
    );
    let mut far = conv.records.clone();
    let removed: Vec<_> = far.drain(i..i + 10).collect();
    let hole: usize = removed.iter().map(|r| r.1.len()).sum();
    far.insert(i, (Side::Server, vec![0; hole]));
    let far = Conversation {
        records: far,
        expected: Vec::new(),
        keylog: conv.keylog.clone(),
    };
    let (_, failure) = run_with_holes(&far, &[(i, 0, hole)]);
    assert_eq!(failure, Some(TlsFailure::LostSegment));
    // A hole in the plaintext handshake cannot be recovered.
    let (_, failure) = run_with_holes(&conv, &[(0, 10, 20)]);
    assert_eq!(failure, Some(TlsFailure::LostSegment));
}

#[test]
fn tls12_gap_resync() {
    let conv = synth::tls12(0xc02f, Tls12Options::default());
    let i = conv
        .records
        .iter()
        .rposition(|(s, r)| *s == Side::Client && r.len() > 16000)
        .unwrap();
    let (got, failure) = run_with_holes(&conv, &[(i, 100, 500)]);
    assert_eq!(failure, None);
    assert_eq!(got.len(), conv.expected.len() - 1);
}

#[test]
fn sniffing() {
    let conv = synth::tls13(0x1301, Tls13Options::default());
    assert_eq!(sniff(&conv.records[0].1), Some(Side::Client));
    assert_eq!(sniff(&conv.records[1].1), Some(Side::Server));
    assert_eq!(sniff(&conv.records[3].1), None);
    assert!(looks_like_tls(&conv.records[3].1));
    assert!(!looks_like_tls(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_tls(&[0x16, 3]));
    assert_eq!(sniff(b"PRI * HTTP/2.0"), None);
}

/// A conversation in `fuzz_session`'s input format (each chunk ≤ 255 bytes, retry every 7th).
fn fuzz_input(conv: &Conversation) -> Vec<u8> {
    let mut input = (conv.keylog.len() as u16).to_le_bytes().to_vec();
    input.extend(conv.keylog.as_bytes());
    for (n, chunk) in conv
        .records
        .iter()
        .flat_map(|(s, r)| r.chunks(255).map(move |c| (*s, c)))
        .enumerate()
    {
        let op = u8::from(chunk.0 == Side::Server) | if n % 7 == 0 { 4 } else { 0 };
        input.extend([op, chunk.1.len() as u8]);
        input.extend(chunk.1);
    }
    input
}

#[test]
fn fuzz_entry_survives_mutations() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for conv in [
        synth::tls13(
            0x1302,
            Tls13Options {
                hrr: true,
                key_update: true,
                ..Default::default()
            },
        ),
        synth::tls13(
            0x1301,
            Tls13Options {
                early: Some(true),
                ..Default::default()
            },
        ),
        synth::tls12(
            0xc014,
            Tls12Options {
                etm: true,
                ..Default::default()
            },
        ),
        synth::tls12(
            0xcca9,
            Tls12Options {
                resumption: true,
                ..Default::default()
            },
        ),
    ] {
        let input = fuzz_input(&conv);
        crate::fuzz_session(&input);
        for _ in 0..300 {
            let mut mutated = input.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % mutated.len();
                mutated[at] ^= 1 << (next() % 8);
            }
            let cut = (next() as usize) % (mutated.len() + 1);
            crate::fuzz_session(&mutated[..cut.max(mutated.len() / 2)]);
        }
    }
}

/// `cargo test -p shadowtap-tls-decrypt --release -- --ignored --nocapture throughput`
#[test]
#[ignore = "throughput measurement; run in release"]
fn throughput_aes128gcm_tls13() {
    let conv = synth::tls13(0x1301, Tls13Options::default());
    let keys = keylog(&conv.keylog);
    let mut session = TlsSession::new(Limits::default());
    let until_big = conv.records.len() - 2;
    for (side, bytes) in &conv.records[..until_big] {
        session.feed(*side, bytes, (), &keys, &mut |_, _, _, _| {});
    }
    // Continue the server's stream: its records so far used seq 0..=2.
    let suite = crate::suites::supported(0x1301).unwrap();
    let mut enc = synth::Encrypter::tls13(suite, &[5u8; 32]);
    for _ in 0..3 {
        enc.seal(23, b"");
    }
    let stream: Vec<u8> = (0..2048)
        .flat_map(|_| enc.seal(23, &[0xab; 16384]))
        .collect();
    let start = std::time::Instant::now();
    let mut plain = 0usize;
    for segment in stream.chunks(65536) {
        session.feed(Side::Server, segment, (), &keys, &mut |_, p, _, _| {
            plain += p.len()
        });
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!((plain, session.take_failure()), (2048 * 16384, None));
    println!(
        "session AES-128-GCM: {:.2} GB/s of plaintext",
        plain as f64 / secs / 1e9
    );
}

#[test]
fn the_committed_fuzz_seeds_of_real_connections_decrypt() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/tls_session");
    for number in 0..6 {
        let seed = std::fs::read(seeds.join(format!("connection-{number}"))).expect("seed");
        assert!(
            crate::fuzz_session_plaintext(&seed) > 100,
            "connection-{number} gives no plaintext"
        );
    }
}
