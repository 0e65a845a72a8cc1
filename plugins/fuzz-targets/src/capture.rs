//! Capture: files, frames, and the two trackers that turn segments into messages.

use shadowtap_capture::testutil::{self, Conversation, Segment};
use shadowtap_capture::tracker::{Event, Tracker, TrackerConfig};
use shadowtap_capture::HeaderTracker;
use std::io::Write;

/// A capture file (classic pcap or pcapng, plain or gzip'd when the first byte is odd) read by
/// input-pcap's reader until its end or its first error.
pub fn pcap_reader(data: &[u8]) {
    let Some((&setup, file)) = data.split_first() else {
        return;
    };
    let Ok(mut scratch) = tempfile::Builder::new().prefix("fuzz-pcap").tempfile() else {
        return;
    };
    let bytes = if setup & 1 == 1 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(file).expect("in memory");
        gz.finish().expect("in memory")
    } else {
        file.to_vec()
    };
    if scratch
        .write_all(&bytes)
        .and_then(|_| scratch.flush())
        .is_ok()
    {
        let frames = shadowtap_capture_input::fuzzing::read_frames(scratch.path());
        assert!(
            frames <= file.len() / 16 + 1,
            "more frames than record headers fit"
        );
    }
}

/// One frame of any link type through the decoder.
pub fn decode(data: &[u8]) {
    testutil::fuzz_decode(data);
}

/// A script of one connection's segments through the full tracker.
pub fn http_framer(data: &[u8]) {
    testutil::fuzz_http_framer(data);
}

/// What one script step does.
struct Step {
    segment: Option<Segment>,
    advance_ns: i64,
}

/// Reads `data` as steps over four connections: each op byte picks a connection, a direction
/// (or FIN, RST, expiry) and a payload length; long payloads repeat the script's bytes.
fn steps(data: &[u8], conversations: &mut [Conversation; 4]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut script = data;
    while let Some((&op, rest)) = script.split_first() {
        let len_byte = rest.first().copied().unwrap_or(0);
        let len = if len_byte & 0x80 != 0 {
            usize::from(len_byte & 0x7f) * 97
        } else {
            usize::from(len_byte)
        };
        let body = rest.get(1..).unwrap_or_default();
        let take = len.min(body.len());
        let payload: Vec<u8> = body.iter().copied().cycle().take(len).collect();
        script = body.get(take..).unwrap_or_default();
        let conv = &mut conversations[usize::from(op >> 6)];
        let segment = match op & 7 {
            0..=2 => Some(conv.client(&payload)),
            3 | 4 => Some(conv.server(&payload)),
            5 => Some(conv.client_fin()),
            6 => Some(conv.server_fin()),
            _ => None,
        };
        steps.push(Step {
            segment,
            advance_ns: i64::from(op >> 3 & 7) * 250,
        });
    }
    steps
}

fn conversations() -> [Conversation; 4] {
    [
        Conversation::new("10.0.0.1:40000", "10.0.0.9:80").isn(u32::MAX - 50, 1),
        Conversation::new("10.0.0.2:40001", "10.0.0.9:80"),
        Conversation::new("[fd00::1]:40002", "[fd00::9]:80"),
        Conversation::new("10.0.0.1:40000", "10.0.0.9:8080").isn(7, u32::MAX - 3),
    ]
}

/// Four interleaved connections through a full tracker whose flow table holds two (eviction),
/// with long segments, responses and expiry: no panic, every message within its cap, and
/// nothing left behind at the end.
pub fn tracker_flows(data: &[u8]) {
    let Some((&setup, script)) = data.split_first() else {
        return;
    };
    let cfg = TrackerConfig {
        ports: vec![80, 8080],
        track_responses: setup & 1 == 0,
        allow_incomplete: setup & 2 != 0,
        max_message_bytes: if setup & 4 != 0 { 100 } else { 64 << 10 },
        max_buffered_bytes: if setup & 8 != 0 { 2048 } else { 1 << 20 },
        max_flows: 2,
        expire_ns: 1_000,
        ..TrackerConfig::default()
    };
    let limit = cfg.max_message_bytes;
    let mut tracker = Tracker::new(cfg);
    let mut check = |e: Event| {
        if let Event::Message(m) = e {
            assert!(m.payload.len() <= limit);
        }
    };
    let mut convs = conversations();
    let mut now = 0;
    for step in steps(script, &mut convs) {
        now += step.advance_ns;
        match step.segment {
            Some(seg) => tracker.push(&seg.packet(), now, &mut check),
            None => tracker.expire(now, &mut check),
        }
        assert!(tracker.flows() <= 2);
    }
    tracker.finish(&mut check);
    assert_eq!(tracker.flows(), 0);
    assert_eq!(tracker.buffered_bytes(), 0);
}

/// The same interleaved connections through the header-only tracker (a table of two flows).
pub fn header_tracker(data: &[u8]) {
    let Some((&setup, script)) = data.split_first() else {
        return;
    };
    let limit = if setup & 4 != 0 { 100 } else { 64 << 10 };
    let mut tracker = HeaderTracker::new(vec![80, 8080], setup & 1 == 0, limit, 2);
    let mut convs = conversations();
    let mut now = 0;
    for step in steps(script, &mut convs) {
        now += step.advance_ns;
        if let Some(seg) = step.segment {
            tracker.push(&seg.packet(), now, &mut |e| {
                if let Event::Message(m) = e {
                    assert!(m.payload.len() <= limit);
                }
            });
        }
        assert!(tracker.flows() <= 2);
    }
}
