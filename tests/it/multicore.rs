//! `--input-pcap` on a large file with several workers gives exactly what one worker gives:
//! the same `.gor` bytes and the same ledger.
//!
//! The capture is built from the committed real captures (`tests/fixtures/loopback.pcap`,
//! `veth.pcap`, `wrk.pcap`: curl and wrk against nginx — keep-alive, chunked and gzip'd
//! bodies, uploads, 1448-byte segments), copied 24 times with each copy's addresses moved to
//! a network of its own and its clock shifted by a few milliseconds, all copies interleaved
//! by time. Every 61st record then swaps places with the next one (reordering within and
//! across connections) and every 401st is left out (holes, so that some messages are only
//! finished, incomplete, by expiry or at the end).

use crate::common::*;
use std::path::{Path, PathBuf};

/// One record of a classic pcap: time (ns) and frame.
type Record = (i64, Vec<u8>);

/// The records of a classic little-endian pcap (the fixtures are microsecond, Ethernet).
fn read_pcap(path: &Path) -> Vec<Record> {
    let bytes = std::fs::read(path).expect("read fixture");
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "{}", path.display());
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut records = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let ts = i64::from(word(at)) * 1_000_000_000 + i64::from(word(at + 4)) * 1000;
        let len = word(at + 8) as usize;
        records.push((ts, bytes[at + 16..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    records
}

fn write_pcap(path: &Path, records: &[Record]) {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.1.len() + 16).sum::<usize>() + 24);
    out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (ts, frame) in records {
        out.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000_000 / 1000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    std::fs::write(path, out).expect("write capture");
}

/// Copy `copy` of an Ethernet/IPv4 frame: both addresses' second octet moved, so that each
/// copy's connections are its own.
fn moved(frame: &[u8], copy: u8) -> Vec<u8> {
    let mut frame = frame.to_vec();
    if frame.len() >= 34 && frame[12..14] == [0x08, 0x00] {
        frame[14 + 12 + 1] ^= copy;
        frame[14 + 16 + 1] ^= copy;
    }
    frame
}

/// The big capture (≥ 20 MB) in `dir`.
fn big_capture(dir: &Path) -> PathBuf {
    let fixtures = repo().join("tests/fixtures");
    let sources: Vec<Vec<Record>> = ["loopback.pcap", "veth.pcap", "wrk.pcap"]
        .iter()
        .map(|name| read_pcap(&fixtures.join(name)))
        .collect();
    let base = 1_700_000_000_000_000_000i64;
    let mut records = Vec::new();
    for copy in 1..=24u8 {
        for (index, source) in sources.iter().enumerate() {
            let first = source[0].0;
            let shift = i64::from(copy) * 7_000_000 + index as i64 * 1_000_000;
            records.extend(
                source
                    .iter()
                    .map(|(ts, frame)| (base + ts - first + shift, moved(frame, copy))),
            );
        }
    }
    records.sort_by_key(|r| r.0);
    for at in (0..records.len() - 1).step_by(61) {
        records.swap(at, at + 1);
    }
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 401 != 400)
        .map(|(_, r)| r)
        .collect();
    let path = dir.join("big.pcap");
    write_pcap(&path, &records);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size >= 20 << 20, "the capture is only {size} bytes");
    path
}

/// Runs `--input-pcap` with `workers` workers in a directory of its own; returns the
/// `.gor` bytes and the exit summary (the ledger as text).
fn run_with_workers(root: &Path, pcap: &Path, workers: &str, extra: &[&str]) -> (Vec<u8>, String) {
    let dir = root.join(format!("workers-{workers}{}", extra.join("")));
    std::fs::create_dir_all(&dir).unwrap();
    let input = format!("{}:80,18480,18482", pcap.display());
    let mut args = vec![
        "--input-pcap",
        &input,
        "--input-pcap-workers",
        workers,
        "--input-raw-track-response",
        "--input-raw-expire",
        "300ms",
        "--output-file",
        "out.gor",
        "--output-file-append",
    ];
    args.extend_from_slice(extra);
    let output = run_in(Some(&dir), &args);
    assert_success(&output);
    let gor = std::fs::read(dir.join("out.gor")).expect("the output file");
    (gor, summary(&output))
}

#[test]
fn many_workers_write_the_same_gor_bytes_and_ledger_as_one() {
    let root = tempdir();
    let pcap = big_capture(root.path());
    for extra in [&["--input-raw-allow-incomplete"][..], &[][..]] {
        let (one, one_summary) = run_with_workers(root.path(), &pcap, "1", extra);
        let (four, four_summary) = run_with_workers(root.path(), &pcap, "4", extra);
        let records = decode(&one);
        assert!(records.len() > 10_000, "only {} messages", records.len());
        assert!(
            records.iter().any(|r| r.kind() == b'2'),
            "responses are tracked"
        );
        assert_eq!(one.len(), four.len(), "{extra:?}: .gor sizes");
        assert!(one == four, "{extra:?}: the .gor files differ");
        assert_eq!(one_summary, four_summary, "{extra:?}: the ledgers differ");
        assert!(one_summary.contains("packets"), "{one_summary}");
        eprintln!("{extra:?}: {} .gor bytes; {one_summary}", one.len());
    }
}

#[test]
fn a_small_file_read_by_three_workers_gives_the_same_bytes_and_bad_counts_are_refused() {
    let fixture = repo().join("tests/fixtures/wrk.pcap");
    let input = format!("{}:18482", fixture.display());
    let root = tempdir();
    let (one, _) = run_with_workers(root.path(), &fixture, "1", &[]);
    // under 8 MB the default is one worker; asking for three (sharing wrk's 4 keep-alive
    // connections) gives the same bytes
    let (three, _) = run_with_workers(root.path(), &fixture, "3", &[]);
    assert!(one == three);
    for bad in ["0", "x", "100000"] {
        let output = run(&[
            "--input-pcap",
            &input,
            "--input-pcap-workers",
            bad,
            "--output-null",
        ]);
        assert!(
            !output.status.success(),
            "--input-pcap-workers {bad} was accepted"
        );
        assert!(
            stderr(&output).contains("--input-pcap-workers"),
            "{}",
            stderr(&output)
        );
    }
}
