//! Writes the captures `examples/bench-adversarial.sh` times: the same packets in order and in
//! an adversarial order.
//!
//! `cargo run --example adversarial_pcap --features testutil -- WORKLOAD ORDER N FILE`
//!
//! * `flow`: one connection (port 80) whose N-byte POST arrives as N one-byte segments;
//!   `adversarial` sends every segment after the first one, highest sequence number first, so
//!   all of them wait behind the hole at the first byte, which comes last.
//! * `conns`: N short connections (port 80), each one request segment and a client FIN;
//!   `adversarial` opens all of them before closing any.
//!
//! `in-order` writes the same packets in sequence order.

use shadowtap_capture::testutil::{write_pcap, Conversation, Segment};
use std::process::ExitCode;

/// Ethernet.
const LINKTYPE_ETHERNET: u32 = 1;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, order, n, file] = &args[..] else {
        eprintln!("usage: adversarial_pcap flow|conns in-order|adversarial N FILE");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("adversarial_pcap: N must be a number, not {n:?}");
        return ExitCode::from(2);
    };
    let adversarial = match order.as_str() {
        "in-order" => false,
        "adversarial" => true,
        other => {
            eprintln!("adversarial_pcap: unknown order {other:?}");
            return ExitCode::from(2);
        }
    };
    let segments = match workload.as_str() {
        "flow" => one_flow(n, adversarial),
        "conns" => short_connections(n, adversarial),
        other => {
            eprintln!("adversarial_pcap: unknown workload {other:?}");
            return ExitCode::from(2);
        }
    };
    let records: Vec<(i64, Vec<u8>)> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i64 * 1000, s.ethernet()))
        .collect();
    if let Err(e) = std::fs::write(file, write_pcap(LINKTYPE_ETHERNET, &records)) {
        eprintln!("adversarial_pcap: cannot write {file}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// One POST of `n` bytes in one-byte segments.
fn one_flow(n: usize, adversarial: bool) -> Vec<Segment> {
    let head = b"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: ";
    let mut request = head.to_vec();
    let body_len = n.saturating_sub(head.len() + 12).max(1);
    request.extend_from_slice(format!("{body_len:08}\r\n\r\n").as_bytes());
    request.resize(request.len() + body_len, b'x');
    let mut talk = Conversation::new("10.1.0.1:40000", "10.2.0.1:80");
    let mut segments = talk.handshake();
    let mut data: Vec<Segment> = request.chunks(1).map(|byte| talk.client(byte)).collect();
    if adversarial {
        data[1..].reverse();
        data.rotate_left(1);
    }
    segments.extend(data);
    segments.push(talk.client_fin());
    segments
}

/// `n` connections, each a GET and a FIN.
fn short_connections(n: usize, adversarial: bool) -> Vec<Segment> {
    let mut requests = Vec::with_capacity(n);
    let mut fins = Vec::with_capacity(n);
    for c in 0..n as u32 {
        let client = format!("10.{}.{}.{}:40000", c >> 16, (c >> 8) & 255, c & 255);
        let mut talk = Conversation::new(&client, "10.200.0.1:80");
        requests.push(talk.client(b"GET /item HTTP/1.1\r\nHost: bench\r\n\r\n"));
        fins.push(talk.client_fin());
    }
    if adversarial {
        requests.extend(fins);
        requests
    } else {
        requests
            .into_iter()
            .zip(fins)
            .flat_map(|(request, fin)| [request, fin])
            .collect()
    }
}
