//! Rough throughput of decode + Tracker on a synthetic keep-alive GET/response stream.
//!
//! `cargo run --release --example throughput --features testutil`

use std::time::Instant;

use shadowtap_capture::testutil::Conversation;
use shadowtap_capture::{decode, Event, Tracker, TrackerConfig};

fn main() {
    for body_len in [100, 2000] {
        run(body_len);
    }
}

fn run(body_len: usize) {
    let request = b"GET /api/v1/items?id=12345 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n";
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .into_bytes();
    response.extend(std::iter::repeat_n(b'x', body_len));

    let mut frames = Vec::new();
    for c in 0..100u32 {
        let client = format!("10.0.{}.{}:{}", c / 250, c % 250 + 1, 40000 + c);
        let mut conv = Conversation::new(&client, "10.9.9.9:80");
        frames.extend(conv.handshake().iter().map(|s| s.ethernet()));
        for _ in 0..100 {
            frames.push(conv.client(request).ethernet());
            for piece in response.chunks(1448) {
                frames.push(conv.server(piece).ethernet());
            }
        }
    }
    let bytes: usize = frames.iter().map(Vec::len).sum();

    for track_responses in [true, false] {
        let rounds = 20;
        let mut messages = 0u64;
        let start = Instant::now();
        for round in 0..rounds {
            let mut tracker = Tracker::new(TrackerConfig {
                ports: vec![80],
                track_responses,
                ..TrackerConfig::default()
            });
            let mut count = |e: Event| {
                if let Event::Message(m) = e {
                    messages += 1;
                    std::hint::black_box(m);
                }
            };
            for (i, frame) in frames.iter().enumerate() {
                let pkt = decode(1, frame, frame.len()).expect("valid frame");
                tracker.push(&pkt, (round * frames.len() + i) as i64 * 1000, &mut count);
            }
            tracker.finish(&mut count);
        }
        let secs = start.elapsed().as_secs_f64();
        let packets = (frames.len() * rounds) as f64;
        println!(
            "body {body_len} B, track_responses={track_responses}: {:.2} M packets/s, {:.2} Gbit/s, {:.2} M messages/s ({messages} messages)",
            packets / secs / 1e6,
            (bytes * rounds * 8) as f64 / secs / 1e9,
            messages as f64 / secs / 1e6,
        );
    }
}
