//! Real bytes: an h2c capture of nginx 1.22 (`listen … http2;`) answering nghttp (three
//! multiplexed GETs after nghttp's PRIORITY tree) and curl `--http2-prior-knowledge` (a
//! POST), recorded with tcpdump on lo. A minimal pcap reader splits the TCP directions.

use std::collections::BTreeMap;

use shadowtap_h2::{H2Connection, H2Event, H2Failure, H2Limits, H2Message, Side};

const SERVER_PORT: u16 = 18471;

/// One TCP connection's payload segments in capture order: (side, packet index, bytes).
type Segments = Vec<(Side, usize, Vec<u8>)>;

/// Ethernet/IPv4/TCP payloads of a classic little-endian microsecond pcap, by client port.
fn connections(pcap: &[u8]) -> BTreeMap<u16, Segments> {
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out: BTreeMap<u16, Segments> = BTreeMap::new();
    let mut next_seq: BTreeMap<(u16, u16), u32> = BTreeMap::new();
    let mut at = 24;
    let mut index = 0;
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let packet = &pcap[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        index += 1;
        let ip = &packet[14..];
        assert_eq!(ip[0] >> 4, 4, "IPv4");
        let ip_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let tcp = &ip[usize::from(ip[0] & 0xf) * 4..ip_len];
        let (src, dst) = (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        let payload = &tcp[usize::from(tcp[12] >> 4) * 4..];
        if payload.is_empty() {
            continue;
        }
        // Skip retransmissions (lo has neither loss nor reordering).
        let expected = next_seq.entry((src, dst)).or_insert(seq);
        if seq != *expected {
            continue;
        }
        *expected = seq.wrapping_add(payload.len() as u32);
        let (side, client_port) = if dst == SERVER_PORT {
            (Side::Client, src)
        } else {
            (Side::Server, dst)
        };
        out.entry(client_port)
            .or_default()
            .push((side, index, payload.to_vec()));
    }
    out
}

fn decode(segments: &Segments) -> (Vec<H2Message<usize>>, Vec<H2Failure>) {
    let mut conn = H2Connection::new(H2Limits::default());
    let (mut messages, mut problems) = (Vec::new(), Vec::new());
    let mut sink = |event| match event {
        H2Event::Message(m) => messages.push(m),
        H2Event::Problem { failure, .. } => problems.push(failure),
    };
    for (side, index, bytes) in segments {
        conn.feed(*side, bytes, *index, &mut sink);
    }
    conn.finish(&mut sink);
    (messages, problems)
}

fn head(m: &H2Message<usize>) -> String {
    let text = String::from_utf8_lossy(&m.payload).into_owned();
    text.split("\r\n").next().unwrap_or_default().to_string()
}

fn body(m: &H2Message<usize>) -> &[u8] {
    let at = m.payload.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    &m.payload[at + 4..]
}

#[test]
fn nginx_h2c_capture_decodes_into_request_response_pairs() {
    let pcap = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nginx-h2c.pcap"
    ))
    .unwrap();
    let conns = connections(&pcap);
    assert_eq!(conns.len(), 2);
    let mut decoded: Vec<_> = conns.values().map(decode).collect();
    let (post, post_problems) = decoded.pop().unwrap();
    let (multi, multi_problems) = decoded.pop().unwrap();
    for problems in [&multi_problems, &post_problems] {
        assert!(
            problems.iter().all(|p| *p == H2Failure::GoAway),
            "{problems:?}"
        );
    }

    assert!(multi
        .iter()
        .all(|m| !m.incomplete && !m.hpack_unknown && !m.truncated));
    let mut requests: Vec<_> = multi.iter().filter(|m| m.side == Side::Client).collect();
    requests.sort_by_key(|m| m.stream_id);
    let lines: Vec<(u32, String)> = requests.iter().map(|m| (m.stream_id, head(m))).collect();
    assert_eq!(
        lines,
        [
            (13, "GET /echo?m=1 HTTP/2".to_string()),
            (15, "GET /index.json HTTP/2".to_string()),
            (17, "GET /echo?m=3 HTTP/2".to_string()),
        ]
    );
    for request in &requests {
        let text = String::from_utf8_lossy(&request.payload);
        assert!(text.contains("\r\nhost: 127.0.0.1:18471\r\n"), "{text}");
        assert!(text.ends_with("x-test: nghttp\r\n\r\n"), "{text}");
        assert_eq!(request.scheme.as_deref(), Some("http"));
    }
    let bodies: BTreeMap<u32, (String, Vec<u8>)> = multi
        .iter()
        .filter(|m| m.side == Side::Server)
        .map(|m| (m.stream_id, (head(m), body(m).to_vec())))
        .collect();
    assert_eq!(
        bodies[&13],
        ("HTTP/2 200".to_string(), b"echo GET 1\n".to_vec())
    );
    assert_eq!(bodies[&15].1, b"{\"fixture\":\"shadowtap h2\"}\n");
    assert_eq!(bodies[&17].1, b"echo GET 3\n");
    // The later requests reuse dynamic-table entries: same fields decoded every time.
    let response_17 = multi
        .iter()
        .find(|m| m.side == Side::Server && m.stream_id == 17)
        .unwrap();
    assert!(String::from_utf8_lossy(&response_17.payload).contains("\r\nx-echo: yes\r\n"));

    assert_eq!(post.len(), 2);
    assert_eq!(head(&post[0]), "POST /echo?m=post HTTP/2");
    assert_eq!(body(&post[0]), b"k=v&z=1");
    assert!(String::from_utf8_lossy(&post[0].payload).contains("\r\ncontent-length: 7\r\n"));
    assert_eq!(body(&post[1]), b"echo POST post\n");
    assert!(post[0].first <= post[0].last && post[1].first > post[0].first);
}

#[test]
fn nginx_h2c_capture_joined_mid_connection() {
    let pcap = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nginx-h2c.pcap"
    ))
    .unwrap();
    let multi = connections(&pcap).into_values().next().unwrap();
    // Join at the server segment carrying stream 15's response (packet 10), first on a frame
    // boundary, then 5 bytes into it (stream 15's HEADERS lost, its DATA ignored).
    let later: Segments = multi
        .into_iter()
        .filter(|(_, index, _)| *index >= 10)
        .collect();
    for cut in [0, 5] {
        let mut segments = later.clone();
        segments[0].2.drain(..cut);
        let mut conn = H2Connection::mid_stream(H2Limits::default());
        let (mut messages, mut problems) = (Vec::new(), Vec::new());
        let mut sink = |event| match event {
            H2Event::Message(m) => messages.push(m),
            H2Event::Problem { failure, .. } => problems.push(failure),
        };
        for (side, index, bytes) in &segments {
            conn.feed(*side, bytes, *index, &mut sink);
        }
        conn.finish(&mut sink);
        let ids: Vec<u32> = messages.iter().map(|m| m.stream_id).collect();
        assert_eq!(
            ids,
            if cut == 0 { vec![15, 17] } else { vec![17] },
            "cut {cut}"
        );
        let last = messages.last().unwrap();
        assert_eq!(
            (last.side, head(last).as_str(), body(last)),
            (Side::Server, "HTTP/2 200", &b"echo GET 3\n"[..])
        );
        // nginx's encoder never indexes into the dynamic table, so nothing is unknown.
        assert!(!last.incomplete && !last.hpack_unknown);
        assert!(String::from_utf8_lossy(&last.payload).contains("\r\nx-echo: yes\r\n"));
        assert_eq!(problems, [], "cut {cut}");
    }
}
