//! Hostile packet orders through `--input-pcap` (issue 11, faults 2 and 6): one flow of tiny
//! segments all waiting behind a hole is reassembled exactly, and a flow holding more segments
//! than `--input-raw-max-held-segments` loses its message counted as `segment limit`; forged
//! and real RSTs and tunnel bytes are each counted.

use crate::common::{
    assert_success, command, decode, path_str, stderr, summary, summary_counter, tempdir,
    wait_output, write_pcap,
};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const CLIENT: [u8; 4] = [10, 1, 0, 1];
const SERVER: [u8; 4] = [10, 2, 0, 1];

/// An Ethernet/IPv4/TCP frame (checksums are not checked by the decoder).
fn frame(from_client: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sport, dport) = if from_client {
        (CLIENT, SERVER, 40000u16, 80u16)
    } else {
        (SERVER, CLIENT, 80, 40000)
    };
    let mut f = vec![0; 12];
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A capture of one POST whose bytes come one per segment, every segment but the first
/// (highest sequence first) before the first; the client's ISN sits just before the u32 wrap.
fn write_hostile_pcap(path: &Path, request: &[u8]) {
    let isn = u32::MAX - 1000;
    let mut frames = vec![frame(true, isn, SYN, b""), frame(false, 7, SYN | ACK, b"")];
    let data = isn.wrapping_add(1);
    for i in (1..request.len()).rev() {
        frames.push(frame(
            true,
            data.wrapping_add(i as u32),
            PSH_ACK,
            &request[i..=i],
        ));
    }
    frames.push(frame(true, data, PSH_ACK, &request[..1]));
    write_pcap(path, &frames);
}

fn post(body_len: usize) -> Vec<u8> {
    let mut request =
        format!("POST /u HTTP/1.1\r\nContent-Length: {body_len}\r\n\r\n").into_bytes();
    request.extend((0..body_len).map(|i| b'a' + (i % 26) as u8));
    request
}

fn capture(pcap: &Path, extra: &[&str]) -> std::process::Output {
    let input = format!("{}:80", path_str(pcap));
    let child = command()
        .args(["--input-pcap", &input, "--output-stdout"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child, Duration::from_secs(120))
}

#[test]
fn tiny_segments_all_behind_a_hole_reassemble_exactly() {
    let dir = tempdir();
    let pcap = dir.path().join("hostile.pcap");
    let request = post(40_000);
    write_hostile_pcap(&pcap, &request);
    let output = capture(&pcap, &[]);
    assert_success(&output);
    let records = decode(&output.stdout);
    assert_eq!(records.len(), 1, "{}", stderr(&output));
    assert!(records[0].payload == request, "the request differs");
    assert!(
        !summary(&output).contains("dropped"),
        "{}",
        summary(&output)
    );
}

#[test]
fn segments_beyond_the_held_cap_are_counted_as_segment_limit() {
    let dir = tempdir();
    let pcap = dir.path().join("hostile.pcap");
    write_hostile_pcap(&pcap, &post(500));
    let output = capture(&pcap, &["--input-raw-max-held-segments", "100"]);
    assert_success(&output);
    assert!(decode(&output.stdout).is_empty());
    let summary = summary(&output);
    assert!(summary.contains("segment limit 1"), "{summary}");
}

// RSTs and tunnels (issue 11, fault 6): nothing discarded goes uncounted.

const RST: u8 = 0x04;
const CLIENT_ISN: u32 = 1000;
const SERVER_ISN: u32 = 7;

fn handshake() -> Vec<Vec<u8>> {
    vec![
        frame(true, CLIENT_ISN, SYN, b""),
        frame(false, SERVER_ISN, SYN | ACK, b""),
    ]
}

fn run_capture(frames: &[Vec<u8>], extra: &[&str]) -> (Vec<crate::common::Record>, String) {
    let dir = tempdir();
    let pcap = dir.path().join("rst.pcap");
    write_pcap(&pcap, frames);
    let output = capture(&pcap, extra);
    assert_success(&output);
    (decode(&output.stdout), stderr(&output))
}

#[test]
fn a_forged_rst_out_of_window_is_ignored_and_counted() {
    let (head, tail) = (&b"GET /a HTTP/1.1\r\nHo"[..], &b"st: x\r\n\r\n"[..]);
    let data = CLIENT_ISN + 1;
    let mut frames = handshake();
    frames.push(frame(true, data, PSH_ACK, head));
    frames.push(frame(true, data + 100_000, RST, b""));
    frames.push(frame(true, data + head.len() as u32, PSH_ACK, tail));
    let (records, err) = run_capture(&frames, &[]);
    assert_eq!(records.len(), 1, "{err}");
    assert!(records[0]
        .payload_text()
        .starts_with("GET /a HTTP/1.1\r\nHost: x"));
    assert_eq!(
        summary_counter(&err, "input-pcap", "out of window"),
        1,
        "{err}"
    );
}

#[test]
fn segments_after_an_in_window_rst_are_counted_after_reset() {
    let head = b"POST /b HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345";
    let data = CLIENT_ISN + 1;
    let next = data + head.len() as u32;
    let mut frames = handshake();
    frames.push(frame(true, data, PSH_ACK, head));
    frames.push(frame(true, next, RST, b""));
    frames.push(frame(true, next, PSH_ACK, b"67890"));
    let (records, err) = run_capture(&frames, &[]);
    assert!(records.is_empty(), "{err}");
    assert_eq!(
        summary_counter(&err, "input-pcap", "after reset"),
        1,
        "{err}"
    );
    assert_eq!(
        summary_counter(&err, "input-pcap", "incomplete"),
        1,
        "{err}"
    );
}

#[test]
fn bytes_inside_a_connect_tunnel_are_counted() {
    let connect = b"CONNECT db:443 HTTP/1.1\r\nHost: db:443\r\n\r\n";
    let answer = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let (client, server) = (CLIENT_ISN + 1, SERVER_ISN + 1);
    let mut frames = handshake();
    frames.push(frame(true, client, PSH_ACK, connect));
    frames.push(frame(false, server, PSH_ACK, answer));
    let client = client + connect.len() as u32;
    frames.push(frame(true, client, PSH_ACK, b"\x16\x03\x01\x00\x05hello"));
    frames.push(frame(true, client + 10, PSH_ACK, b"more tunnel"));
    let (records, err) = run_capture(&frames, &["--input-raw-track-response"]);
    assert_eq!(records.len(), 2, "the CONNECT and its answer: {err}");
    assert_eq!(summary_counter(&err, "input-pcap", "tunnel"), 2, "{err}");
}
