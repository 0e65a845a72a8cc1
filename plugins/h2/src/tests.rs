//! Unit tests: RFC 7541 Appendix C through the per-direction decoder, hand-built frame
//! sequences, gRPC, mid-connection starts and hostile input.

use crate::frame::{self, HEADER_LEN};
use crate::hpack::{Block, HeaderDecoder};
use crate::testenc::{frame, run, run_conv, run_ordered, Conv};
use crate::{H2Connection, H2Event, H2Failure, H2Limits, H2Message, Side};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn messages(events: &[H2Event<usize>]) -> Vec<H2Message<usize>> {
    events
        .iter()
        .filter_map(|e| match e {
            H2Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn problems(events: &[H2Event<usize>]) -> Vec<(H2Failure, Option<u32>)> {
    events
        .iter()
        .filter_map(|e| match e {
            H2Event::Problem { failure, stream_id } => Some((*failure, *stream_id)),
            _ => None,
        })
        .collect()
}

fn text(m: &H2Message<usize>) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

fn fields(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

// RFC 7541 Appendix C.3 (requests, no Huffman) and C.4 (Huffman): the same header lists.
const C3: [&str; 3] = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
];
const C4: [&str; 3] = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
];
// C.5 (responses, no Huffman) and C.6 (Huffman), with a 256-byte table: evictions.
const C5: [&str; 3] = [
    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a
     3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "4803 3330 37c1 c0bf",
    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04
     677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49
     553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
];
const C6: [&str; 3] = [
    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e
     919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    "4883 640e ffc1 c0bf",
    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7
     821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed
     4ee5 b106 3d50 07",
];
/// A dynamic table size update to 256 (the examples' table size), put before the first block.
const SIZE_256: &str = "3fe1 01";

fn c3_expected() -> [Vec<(Vec<u8>, Vec<u8>)>; 3] {
    let base = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    let mut second = base.to_vec();
    second.push(("cache-control", "no-cache"));
    let third = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];
    [fields(&base), fields(&second), fields(&third)]
}

fn c5_expected() -> [Vec<(Vec<u8>, Vec<u8>)>; 3] {
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let loc = "https://www.example.com";
    [
        fields(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", loc),
        ]),
        fields(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", loc),
        ]),
        fields(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ("location", loc),
            ("content-encoding", "gzip"),
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ]),
    ]
}

#[test]
fn rfc7541_appendix_c_through_two_interleaved_direction_decoders() {
    for (requests, responses) in [(C3, C5), (C4, C6)] {
        let mut client = HeaderDecoder::new();
        let mut server = HeaderDecoder::new();
        server.set_allowed_table_size(256);
        for i in 0..3 {
            let mut request = Block::default();
            client.decode(&hex(requests[i]), &mut request).unwrap();
            assert_eq!(request.owned(), c3_expected()[i], "request {i}");
            let mut block = if i == 0 { hex(SIZE_256) } else { Vec::new() };
            block.extend(hex(responses[i]));
            let mut response = Block::default();
            server.decode(&block, &mut response).unwrap();
            assert_eq!(response.owned(), c5_expected()[i], "response {i}");
            assert!(!request.unknown && !response.unknown);
        }
    }
}

#[test]
fn rfc7541_examples_through_the_connection() {
    let mut conv = Conv::bare();
    conv.client.extend_from_slice(crate::CLIENT_PREFACE);
    // The client advertises a 256-byte table; the server acknowledges, then shrinks its table.
    let mut settings = vec![0, 1];
    settings.extend(256u32.to_be_bytes());
    conv.push(Side::Client, frame(frame::SETTINGS, 0, 0, &settings));
    conv.push(Side::Server, frame(frame::SETTINGS, frame::ACK, 0, &[]));
    for (i, (request, response)) in C4.iter().zip(C6).enumerate() {
        let id = 1 + 2 * i as u32;
        let flags = frame::END_HEADERS | frame::END_STREAM;
        conv.push(
            Side::Client,
            frame(frame::HEADERS, flags, id, &hex(request)),
        );
        let mut block = if i == 0 { hex(SIZE_256) } else { Vec::new() };
        block.extend(hex(response));
        conv.push(Side::Server, frame(frame::HEADERS, flags, id, &block));
    }
    let events = run_conv(&conv);
    assert_eq!(problems(&events), []);
    let m = messages(&events);
    assert_eq!(m.len(), 6);
    assert_eq!(text(&m[0]), "GET / HTTP/2\r\nhost: www.example.com\r\n\r\n");
    assert_eq!(m[0].scheme.as_deref(), Some("http"));
    assert_eq!(
        text(&m[2]),
        "GET /index.html HTTP/2\r\nhost: www.example.com\r\ncustom-key: custom-value\r\n\r\n"
    );
    assert_eq!(m[2].scheme.as_deref(), Some("https"));
    let last = text(&m[5]);
    assert!(
        last.starts_with("HTTP/2 200\r\ncache-control: private\r\n"),
        "{last}"
    );
    assert!(last
        .ends_with("set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1\r\n\r\n"));
}

#[test]
fn a_table_size_update_above_the_acknowledged_setting_is_an_hpack_error() {
    let mut conv = Conv::new();
    let mut settings = vec![0, 1];
    settings.extend(100u32.to_be_bytes());
    conv.push(Side::Server, frame(frame::SETTINGS, 0, 0, &settings));
    // Before its ACK the client may still use the old 4096 limit.
    let mut block = hex("3fe1 1f"); // size update to 4096
    block.extend(conv.block(Side::Client, &[(":method", "GET"), (":path", "/a")]));
    conv.push(Side::Client, frame(frame::HEADERS, 0x5, 1, &block));
    conv.push(Side::Client, frame(frame::SETTINGS, frame::ACK, 0, &[]));
    let mut block = hex("3f45"); // size update to 100: allowed
    block.extend(conv.block(Side::Client, &[(":method", "GET"), (":path", "/b")]));
    conv.push(Side::Client, frame(frame::HEADERS, 0x5, 3, &block));
    let mut block = hex("3fe1 1f"); // 4096 > 100
    block.extend(conv.block(Side::Client, &[(":method", "GET"), (":path", "/c")]));
    conv.push(Side::Client, frame(frame::HEADERS, 0x5, 5, &block));
    let events = run_ordered(&conv);
    let m = messages(&events);
    assert_eq!(m.len(), 2);
    assert!(text(&m[1]).starts_with("GET /b HTTP/2\r\n"));
    assert_eq!(problems(&events), [(H2Failure::HpackError, None)]);
}

#[test]
fn get_and_response() {
    let mut conv = Conv::new();
    conv.get(1, "/index.html?x=1");
    conv.ok(1, b"hello");
    let events = run_conv(&conv);
    assert_eq!(problems(&events), []);
    let m = messages(&events);
    assert_eq!(m.len(), 2);
    assert_eq!(
        text(&m[0]),
        "GET /index.html?x=1 HTTP/2\r\nhost: example.com\r\n\r\n"
    );
    assert_eq!(
        (m[0].side, m[0].stream_id, m[0].first, m[0].last),
        (Side::Client, 1, 0, 0)
    );
    assert_eq!(
        text(&m[1]),
        "HTTP/2 200\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
    );
    assert_eq!((m[1].side, m[1].first, m[1].last), (Side::Server, 1, 1));
    assert!(!m[1].incomplete && !m[1].truncated && !m[1].hpack_unknown && m[1].grpc.is_none());
}

fn post_conv() -> Conv {
    let mut conv = Conv::new();
    let fields = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "api.example"),
        (":path", "/upload"),
        ("cookie", "a=1"),
        ("content-type", "text/plain"),
        ("cookie", "b=2"),
    ];
    conv.headers(Side::Client, 1, &fields, false);
    conv.data(Side::Client, 1, b"first ", false);
    conv.data(Side::Client, 1, b"", false);
    conv.data(Side::Client, 1, b"second", true);
    conv.ok(1, b"done");
    conv
}

#[test]
fn post_body_over_data_frames_split_at_every_byte() {
    let conv = post_conv();
    let expected = "POST /upload HTTP/2\r\nhost: api.example\r\ncookie: a=1; b=2\r\n\
                    content-type: text/plain\r\ncontent-length: 12\r\n\r\nfirst second";
    let preface_and_settings = crate::CLIENT_PREFACE.len() + 2 * HEADER_LEN;
    for cut in 1..conv.client.len() {
        let (a, b) = conv.client.split_at(cut);
        let events = run(
            H2Connection::new(H2Limits::default()),
            &[
                (Side::Client, a),
                (Side::Client, b),
                (Side::Server, &conv.server),
            ],
        );
        assert_eq!(problems(&events), [], "cut {cut}");
        let m = messages(&events);
        assert_eq!(m.len(), 2, "cut {cut}");
        assert_eq!(text(&m[0]), expected, "cut {cut}");
        let first = usize::from(cut <= preface_and_settings);
        assert_eq!((m[0].first, m[0].last), (first, 1), "cut {cut}");
        assert_eq!(
            text(&m[1]),
            "HTTP/2 200\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\ndone"
        );
    }
    // And one byte per segment.
    let mut chunks: Vec<(Side, &[u8])> = conv.client.chunks(1).map(|c| (Side::Client, c)).collect();
    chunks.extend(conv.server.chunks(1).map(|c| (Side::Server, c)));
    let events = run(H2Connection::new(H2Limits::default()), &chunks);
    let m = messages(&events);
    assert_eq!(text(&m[0]), expected);
    assert_eq!(m[0].last, conv.client.len() - 1);
}

#[test]
fn ten_interleaved_streams() {
    let mut conv = Conv::new();
    for i in 0..10u32 {
        let fields = [(":method", "POST"), (":path", "/s"), ("x-n", "v")];
        conv.headers(Side::Client, 1 + 2 * i, &fields, false);
    }
    for round in 0..3 {
        for i in (0..10u32).rev() {
            conv.data(
                Side::Client,
                1 + 2 * i,
                format!("{i}.{round};").as_bytes(),
                round == 2,
            );
        }
    }
    for i in 0..10u32 {
        conv.ok(1 + 2 * i, format!("r{i}").as_bytes());
    }
    let events = run_conv(&conv);
    assert_eq!(problems(&events), []);
    let m = messages(&events);
    assert_eq!(m.len(), 20);
    for (n, message) in m[..10].iter().enumerate() {
        let i = 9 - n as u32;
        assert_eq!(message.stream_id, 1 + 2 * i);
        assert!(
            text(message).ends_with(&format!("\r\n\r\n{i}.0;{i}.1;{i}.2;")),
            "{}",
            text(message)
        );
    }
    assert!(text(&m[19]).ends_with("\r\n\r\nr9"));
}

/// Without responses (the capture's default: the server's bytes are not even read), streams
/// end with their requests: more of them than `max_streams` all come out, and server bytes
/// fed anyway are ignored.
#[test]
fn requests_only_streams_end_with_their_requests() {
    let mut conv = Conv::new();
    for i in 0..40u32 {
        conv.headers(
            Side::Client,
            1 + 2 * i,
            &[(":method", "GET"), (":path", "/r")],
            true,
        );
        conv.ok(1 + 2 * i, b"x");
    }
    let limits = H2Limits {
        max_streams: 8,
        ..H2Limits::default()
    };
    let client_only = run(
        H2Connection::new(limits).requests_only(),
        &[(Side::Client, &conv.client)],
    );
    let both = run(
        H2Connection::new(limits).requests_only(),
        &[(Side::Client, &conv.client), (Side::Server, &conv.server)],
    );
    for events in [client_only, both] {
        assert_eq!(problems(&events), []);
        let m = messages(&events);
        assert_eq!(m.len(), 40);
        assert!(m.iter().all(|m| m.side == Side::Client && !m.incomplete));
    }
    let upgraded = run(
        H2Connection::upgraded(H2Limits::default()).requests_only(),
        &[(Side::Server, &conv.server)],
    );
    assert_eq!(messages(&upgraded), []);
}

#[test]
fn continuation_padding_and_priority() {
    let mut conv = Conv::new();
    let block = conv.block(
        Side::Client,
        &[
            (":method", "GET"),
            (":path", "/long"),
            (":authority", "h"),
            ("x-long", &"y".repeat(300)),
        ],
    );
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(100);
    let mut headers = vec![3u8]; // pad length
    headers.extend([0x80, 0, 0, 0, 16]); // exclusive dependency on 0, weight 16
    headers.extend(a);
    headers.extend([0; 3]);
    conv.push(
        Side::Client,
        frame(
            frame::HEADERS,
            frame::PADDED | frame::PRIORITY_FLAG | frame::END_STREAM,
            1,
            &headers,
        ),
    );
    conv.push(Side::Client, frame(frame::CONTINUATION, 0, 1, b));
    conv.push(
        Side::Client,
        frame(frame::CONTINUATION, frame::END_HEADERS, 1, c),
    );
    conv.push(Side::Client, frame(frame::PRIORITY, 0, 3, &[0, 0, 0, 1, 5]));
    conv.headers(Side::Server, 1, &[(":status", "204")], false);
    conv.push(
        Side::Server,
        frame(
            frame::DATA,
            frame::PADDED | frame::END_STREAM,
            1,
            &[4, b'o', b'k', 0, 0, 0, 0],
        ),
    );
    let events = run_conv(&conv);
    assert_eq!(problems(&events), []);
    let m = messages(&events);
    assert_eq!(
        text(&m[0]),
        format!(
            "GET /long HTTP/2\r\nhost: h\r\nx-long: {}\r\n\r\n",
            "y".repeat(300)
        )
    );
    assert_eq!(text(&m[1]), "HTTP/2 204\r\ncontent-length: 2\r\n\r\nok");
}

#[test]
fn trailers_and_interim_responses() {
    let mut conv = Conv::new();
    let fields = [
        (":method", "PUT"),
        (":path", "/t"),
        ("expect", "100-continue"),
        ("content-length", "3"),
    ];
    conv.headers(Side::Client, 1, &fields, false);
    conv.headers(Side::Server, 1, &[(":status", "100")], false);
    conv.data(Side::Client, 1, b"abc", false);
    conv.headers(Side::Client, 1, &[("x-checksum", "42")], true);
    conv.headers(
        Side::Server,
        1,
        &[(":status", "103"), ("link", "</s.css>")],
        false,
    );
    conv.headers(Side::Server, 1, &[(":status", "201")], false);
    conv.data(Side::Server, 1, b"made", false);
    conv.headers(Side::Server, 1, &[("x-done", "yes")], true);
    let events = run_conv(&conv);
    assert_eq!(problems(&events), []);
    let m = messages(&events);
    let texts: Vec<String> = m.iter().map(text).collect();
    assert_eq!(
        texts,
        [
            "PUT /t HTTP/2\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabcx-checksum: 42\r\n\r\n",
            "HTTP/2 100\r\n\r\n",
            "HTTP/2 103\r\nlink: </s.css>\r\n\r\n",
            "HTTP/2 201\r\ncontent-length: 4\r\n\r\nmadex-done: yes\r\n\r\n",
        ]
    );
}

#[test]
fn rst_stream_mid_body_ends_only_that_stream() {
    let mut conv = Conv::new();
    conv.get(1, "/a");
    conv.get(3, "/b");
    conv.headers(Side::Server, 1, &[(":status", "200")], false);
    conv.headers(Side::Server, 3, &[(":status", "200")], false);
    conv.data(Side::Server, 1, b"part", false);
    conv.push(Side::Client, frame(frame::RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    conv.data(Side::Server, 3, b"whole", true);
    conv.data(Side::Server, 1, b"late", true);
    let events = run_ordered(&conv);
    let m = messages(&events);
    let reset = m
        .iter()
        .find(|m| m.side == Side::Server && m.stream_id == 1)
        .unwrap();
    assert!(reset.incomplete);
    assert!(text(reset).ends_with("\r\n\r\npart"));
    let fine = m
        .iter()
        .find(|m| m.side == Side::Server && m.stream_id == 3)
        .unwrap();
    assert!(!fine.incomplete);
    assert!(text(fine).ends_with("whole"));
    // The server's late DATA on stream 1 is a protocol error for that stream only.
    assert_eq!(
        problems(&events),
        [
            (H2Failure::StreamReset, Some(1)),
            (H2Failure::ProtocolError, Some(1))
        ]
    );
}

#[test]
fn goaway_abandons_streams_above_its_last_id() {
    let mut conv = Conv::new();
    for id in [1, 3, 5] {
        let fields = [(":method", "POST"), (":path", "/g")];
        conv.headers(Side::Client, id, &fields, false);
    }
    let mut goaway = 3u32.to_be_bytes().to_vec();
    goaway.extend([0, 0, 0, 0]);
    conv.push(Side::Server, frame(frame::GOAWAY, 0, 0, &goaway));
    conv.data(Side::Client, 1, b"x", true);
    conv.data(Side::Client, 3, b"y", true);
    let events = run(
        H2Connection::new(H2Limits::default()),
        &[
            (
                Side::Client,
                &conv.client[..conv.client.len() - 2 * (HEADER_LEN + 1)],
            ),
            (Side::Server, &conv.server),
            (
                Side::Client,
                &conv.client[conv.client.len() - 2 * (HEADER_LEN + 1)..],
            ),
        ],
    );
    let m = messages(&events);
    let ids: Vec<(u32, bool)> = m.iter().map(|m| (m.stream_id, m.incomplete)).collect();
    assert_eq!(ids, [(5, true), (1, false), (3, false)]);
    assert_eq!(problems(&events), [(H2Failure::GoAway, None)]);
}

#[test]
fn push_promise_keeps_hpack_in_sync_and_the_pushed_response_is_a_message() {
    let mut conv = Conv::new();
    conv.get(1, "/page");
    let promised = conv.block(
        Side::Server,
        &[
            (":method", "GET"),
            (":path", "/style.css"),
            (":authority", "example.com"),
            (":scheme", "https"),
        ],
    );
    let mut payload = 2u32.to_be_bytes().to_vec();
    payload.extend(promised);
    conv.push(
        Side::Server,
        frame(frame::PUSH_PROMISE, frame::END_HEADERS, 1, &payload),
    );
    conv.ok(1, b"<html>");
    conv.headers(
        Side::Server,
        2,
        &[(":status", "200"), ("content-type", "text/css")],
        false,
    );
    conv.data(Side::Server, 2, b"p{}", true);
    let events = run_conv(&conv);
    assert_eq!(problems(&events), []);
    let m = messages(&events);
    assert_eq!(m.len(), 3);
    assert_eq!((m[2].stream_id, m[2].side), (2, Side::Server));
    assert_eq!(
        text(&m[2]),
        "HTTP/2 200\r\ncontent-type: text/css\r\ncontent-length: 3\r\n\r\np{}"
    );
    assert_eq!(m[2].scheme.as_deref(), Some("https"));
}

fn grpc_frame(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend((message.len() as u32).to_be_bytes());
    out.extend(message);
    out
}

fn grpc_request(conv: &mut Conv, id: u32, method: &str) {
    let fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", "grpc.local"),
        ("content-type", "application/grpc+proto"),
        ("grpc-encoding", "gzip"),
        ("te", "trailers"),
    ];
    conv.headers(Side::Client, id, &fields, false);
}

#[test]
fn grpc_unary_streaming_and_trailers_only() {
    let mut conv = Conv::new();
    grpc_request(&mut conv, 1, "/helloworld.Greeter/SayHello");
    conv.data(Side::Client, 1, &grpc_frame(false, b"\x0a\x05world"), true);
    conv.headers(
        Side::Server,
        1,
        &[(":status", "200"), ("content-type", "application/grpc")],
        false,
    );
    conv.data(
        Side::Server,
        1,
        &grpc_frame(false, b"\x0a\x0bhello world"),
        false,
    );
    conv.headers(
        Side::Server,
        1,
        &[("grpc-status", "0"), ("grpc-message", "")],
        true,
    );
    // Streaming: three messages split across DATA frames, the second compressed.
    grpc_request(&mut conv, 3, "/pkg.v1.Chat/Stream");
    let mut body = grpc_frame(false, b"one");
    body.extend(grpc_frame(true, b"compressed-two"));
    body.extend(grpc_frame(false, b""));
    for piece in body.chunks(4) {
        conv.data(Side::Client, 3, piece, false);
    }
    conv.data(Side::Client, 3, b"", true);
    // Trailers-only error.
    let fields = [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "12"),
    ];
    conv.headers(Side::Server, 3, &fields, true);
    let events = run_conv(&conv);
    assert_eq!(problems(&events), []);
    let mut m = messages(&events);
    m.sort_by_key(|m| (m.stream_id, m.side == Side::Server));
    let grpc: Vec<_> = m.iter().map(|m| m.grpc.clone().unwrap()).collect();
    assert_eq!(
        (grpc[0].service.as_str(), grpc[0].method.as_str()),
        ("helloworld.Greeter", "SayHello")
    );
    assert_eq!((grpc[0].message_count, grpc[0].compressed_messages), (1, 0));
    assert_eq!(grpc[0].encoding.as_deref(), Some("gzip"));
    assert_eq!(
        (
            grpc[1].method.as_str(),
            grpc[1].status,
            grpc[1].message_count
        ),
        ("SayHello", Some(0), 1)
    );
    assert!(text(&m[1]).ends_with("grpc-status: 0\r\ngrpc-message: \r\n\r\n"));
    assert_eq!(
        (
            grpc[2].service.as_str(),
            grpc[2].message_count,
            grpc[2].compressed_messages
        ),
        ("pkg.v1.Chat", 3, 1)
    );
    assert_eq!(
        (
            grpc[3].status,
            grpc[3].message_count,
            grpc[3].method.as_str()
        ),
        (Some(12), 0, "Stream")
    );
}

#[test]
fn mid_connection_start_decodes_static_and_literal_fields_and_marks_the_rest() {
    let mut conv = Conv::bare();
    // Lost: fills both dynamic tables.
    let session = ("x-session", "abc");
    conv.headers(
        Side::Client,
        1,
        &[(":method", "GET"), (":path", "/before"), session],
        true,
    );
    conv.headers(
        Side::Server,
        1,
        &[(":status", "200"), ("x-trace", "t1")],
        true,
    );
    let (client_cut, server_cut) = (conv.client.len(), conv.server.len());
    let fields = [
        (":method", "GET"),
        (":path", "/after"),
        (":authority", "example.com"),
        session,
    ];
    conv.headers(Side::Client, 3, &fields, true);
    conv.headers(
        Side::Client,
        5,
        &[(":method", "GET"), (":path", "/"), ("x-new", "1")],
        true,
    );
    conv.headers(
        Side::Client,
        7,
        &[(":method", "GET"), (":path", "/again"), ("x-new", "1")],
        true,
    );
    conv.headers(
        Side::Server,
        3,
        &[(":status", "200"), ("x-trace", "t1")],
        false,
    );
    conv.data(Side::Server, 3, b"body3", true);
    // Each side starts with the tail of a lost frame.
    let mut client = vec![0x17, 0x00, 0x3a];
    client.extend(&conv.client[client_cut..]);
    let events = run(
        H2Connection::mid_stream(H2Limits::default()),
        &[
            (Side::Client, &client),
            (Side::Server, &conv.server[server_cut - 3..]),
        ],
    );
    let m = messages(&events);
    assert_eq!(m.len(), 4, "{events:?}");
    assert_eq!(
        text(&m[0]),
        "GET /after HTTP/2\r\nhost: example.com\r\n\r\n"
    );
    assert!(m[0].hpack_unknown);
    assert_eq!(text(&m[1]), "GET / HTTP/2\r\nx-new: 1\r\n\r\n");
    // x-new was added since the loss, so its later reference resolves.
    assert_eq!(text(&m[2]), "GET /again HTTP/2\r\nx-new: 1\r\n\r\n");
    assert!(!m[1].hpack_unknown && !m[2].hpack_unknown);
    assert!(m[3].hpack_unknown);
    assert_eq!(text(&m[3]), "HTTP/2 200\r\ncontent-length: 5\r\n\r\nbody3");
    assert_eq!(
        problems(&events),
        [
            (H2Failure::HpackStateUnknown, Some(3)),
            (H2Failure::HpackStateUnknown, Some(3))
        ]
    );
}

/// Stream 1 POSTs 100 bytes while stream 3 POSTs too; then stream 5 GETs. Returns the
/// client bytes and the offset of stream 1's DATA frame.
fn two_uploads() -> (Conv, usize) {
    let mut conv = Conv::new();
    conv.headers(
        Side::Client,
        1,
        &[(":method", "POST"), (":path", "/big")],
        false,
    );
    conv.headers(
        Side::Client,
        3,
        &[(":method", "POST"), (":path", "/small"), ("x-a", "b")],
        false,
    );
    let data_at = conv.client.len();
    conv.data(Side::Client, 1, &[b'a'; 100], true);
    conv.data(Side::Client, 3, b"small", true);
    conv.headers(
        Side::Client,
        5,
        &[(":method", "GET"), (":path", "/next"), ("x-a", "b")],
        true,
    );
    (conv, data_at)
}

fn run_with_gap(client: &[u8], cut: usize, gap: usize) -> Vec<H2Event<usize>> {
    let mut conn = H2Connection::new(H2Limits::default());
    let mut events = Vec::new();
    conn.feed(Side::Client, &client[..cut], 0, &mut |e| events.push(e));
    conn.gap(Side::Client, gap as u64, &mut |e| events.push(e));
    conn.feed(Side::Client, &client[cut + gap..], 1, &mut |e| {
        events.push(e)
    });
    conn.finish(&mut |e| events.push(e));
    events
}

#[test]
fn a_gap_inside_a_frame_loses_only_that_frame() {
    let (conv, data_at) = two_uploads();
    let events = run_with_gap(&conv.client, data_at + 30, 20);
    assert_eq!(problems(&events), []);
    let m = messages(&events);
    let summary: Vec<(u32, bool, bool)> = m
        .iter()
        .map(|m| (m.stream_id, m.incomplete, m.hpack_unknown))
        .collect();
    assert_eq!(
        summary,
        [(1, true, false), (3, false, false), (5, false, false)]
    );
    assert!(text(&m[1]).ends_with("\r\n\r\nsmall"));
    assert_eq!(text(&m[2]), "GET /next HTTP/2\r\nx-a: b\r\n\r\n");
    assert_eq!(m[2].first, 1);
}

#[test]
fn a_gap_across_frames_ends_open_messages_and_resyncs() {
    let (conv, data_at) = two_uploads();
    // From inside stream 1's DATA to inside stream 3's: the next header is guessed.
    let events = run_with_gap(&conv.client, data_at + 30, 85);
    let m = messages(&events);
    let summary: Vec<(u32, bool, bool)> = m
        .iter()
        .map(|m| (m.stream_id, m.incomplete, m.hpack_unknown))
        .collect();
    // x-a: b was indexed by stream 3's request, before the loss: unknown now.
    assert_eq!(
        summary,
        [(1, true, false), (3, true, false), (5, false, true)],
        "{events:?}"
    );
    assert_eq!(text(&m[2]), "GET /next HTTP/2\r\n\r\n");
    assert_eq!(problems(&events), [(H2Failure::HpackStateUnknown, Some(5))]);
}

#[test]
fn hostile_frames_never_panic_or_allocate_by_their_claimed_length() {
    // A maximal claimed length: nothing is reserved, and with a smaller cap it stops.
    let mut client = crate::CLIENT_PREFACE.to_vec();
    client.extend([0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]);
    let mut conn: H2Connection<usize> = H2Connection::new(H2Limits::default());
    conn.feed(Side::Client, &client, 0, &mut |_| {});
    assert!(conn.buffered_bytes() < 64);
    let limits = H2Limits {
        max_frame_bytes: 1 << 14,
        ..H2Limits::default()
    };
    let events = run(H2Connection::new(limits), &[(Side::Client, &client)]);
    assert_eq!(problems(&events), [(H2Failure::FrameTooLarge, None)]);

    // Garbage instead of a preface.
    let events = run(
        H2Connection::new(H2Limits::default()),
        &[(Side::Client, b"GET / HTTP/1.1\r\n\r\n")],
    );
    assert_eq!(problems(&events), [(H2Failure::BadPreface, None)]);
    // Garbage mid-connection: no message, no panic.
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let events = run(
        H2Connection::mid_stream(H2Limits::default()),
        &[(Side::Client, &garbage), (Side::Server, &garbage)],
    );
    assert!(messages(&events).is_empty());

    // Truncated: a HEADERS frame cut short is neither emitted nor a problem.
    let mut conv = Conv::new();
    conv.get(1, "/cut");
    let events = run(
        H2Connection::new(H2Limits::default()),
        &[(Side::Client, &conv.client[..conv.client.len() - 3])],
    );
    assert!(events.is_empty());

    // A CONTINUATION flood beyond max_header_block.
    let mut conv = Conv::new();
    conv.push(Side::Client, frame(frame::HEADERS, 0, 1, &[0x82]));
    for _ in 0..40 {
        conv.push(
            Side::Client,
            frame(frame::CONTINUATION, 0, 1, &[0x82; 8000]),
        );
    }
    let events = run_conv(&conv);
    assert_eq!(problems(&events), [(H2Failure::HpackError, None)]);

    // Too many streams, DATA on an unknown stream, a CONTINUATION out of place.
    let mut conv = Conv::new();
    for id in 0..5 {
        conv.headers(
            Side::Client,
            1 + 2 * id,
            &[(":method", "POST"), (":path", "/")],
            false,
        );
    }
    conv.data(Side::Client, 99, b"stray", true);
    conv.data(Side::Client, 1, b"ok", true);
    let limits = H2Limits {
        max_streams: 3,
        ..H2Limits::default()
    };
    let events = run(H2Connection::new(limits), &[(Side::Client, &conv.client)]);
    assert_eq!(
        problems(&events),
        [
            (H2Failure::TooManyStreams, Some(7)),
            (H2Failure::TooManyStreams, Some(9)),
            (H2Failure::ProtocolError, Some(99)),
        ]
    );
    assert_eq!(
        messages(&events).iter().filter(|m| !m.incomplete).count(),
        1
    );

    let mut conv = Conv::new();
    conv.push(Side::Client, frame(frame::HEADERS, 0, 1, &[0x82]));
    conv.push(Side::Client, frame(frame::DATA, 0, 1, b"x"));
    let events = run_conv(&conv);
    assert_eq!(problems(&events), [(H2Failure::ContinuationExpected, None)]);

    // Malformed: PING of 7 bytes, padding longer than the frame.
    let mut conv = Conv::new();
    conv.push(Side::Server, frame(frame::PING, 0, 0, &[0; 7]));
    conv.push(
        Side::Client,
        frame(
            frame::HEADERS,
            frame::PADDED | frame::END_HEADERS,
            1,
            &[9, 0x82],
        ),
    );
    let events = run_conv(&conv);
    assert_eq!(
        problems(&events),
        [
            (H2Failure::MalformedFrame, None),
            (H2Failure::MalformedFrame, None)
        ]
    );
}

#[test]
fn a_malformed_frame_outside_header_blocks_spares_the_other_streams() {
    let mut conv = Conv::new();
    conv.get(1, "/before");
    conv.push(Side::Client, frame(frame::PRIORITY, 0, 1, &[0, 0, 0, 1]));
    conv.push(Side::Client, frame(frame::RST_STREAM, 0, 3, &[0; 3]));
    conv.push(Side::Client, frame(frame::WINDOW_UPDATE, 0, 0, &[0; 3]));
    conv.get(3, "/after");
    let events = run_conv(&conv);
    assert_eq!(
        problems(&events),
        [
            (H2Failure::MalformedFrame, Some(1)),
            (H2Failure::MalformedFrame, Some(3)),
            (H2Failure::MalformedFrame, None),
        ]
    );
    let paths: Vec<Vec<u8>> = messages(&events)
        .iter()
        .map(|m| m.payload.split(|b| *b == b' ').nth(1).unwrap().to_vec())
        .collect();
    assert_eq!(paths, [b"/before".to_vec(), b"/after".to_vec()]);
}

#[test]
fn truncated_bodies_are_marked() {
    let mut conv = Conv::new();
    conv.get(1, "/big");
    conv.headers(Side::Server, 1, &[(":status", "200")], false);
    conv.data(Side::Server, 1, &[b'z'; 3000], true);
    let limits = H2Limits {
        max_message_bytes: 1000,
        ..H2Limits::default()
    };
    let events = run(
        H2Connection::new(limits),
        &[(Side::Client, &conv.client), (Side::Server, &conv.server)],
    );
    let m = messages(&events);
    assert!(m[1].truncated);
    assert!(text(&m[1]).ends_with(&format!("content-length: 1000\r\n\r\n{}", "z".repeat(1000))));
}

#[test]
fn preface_verdicts() {
    assert_eq!(
        crate::preface_verdict(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest"),
        Some(true)
    );
    assert_eq!(crate::preface_verdict(b"PRI * HT"), None);
    assert_eq!(crate::preface_verdict(b""), None);
    assert_eq!(crate::preface_verdict(b"PRX"), Some(false));
    assert!(crate::is_client_preface(crate::CLIENT_PREFACE));
    assert!(!crate::is_client_preface(b"PRI"));
}

/// A conversation in `fuzz_connection`'s input format (chunks ≤ 255 bytes).
fn fuzz_input(conv: &Conv) -> Vec<u8> {
    let mut out = Vec::new();
    for (side, bytes) in [(0u8, &conv.client), (1u8, &conv.server)] {
        for chunk in bytes.chunks(200) {
            out.push(side);
            out.push(chunk.len() as u8);
            out.extend(chunk);
        }
    }
    out
}

#[test]
fn fuzz_entry_survives_mutations() {
    let mut conv = post_conv();
    grpc_request(&mut conv, 3, "/a.B/C");
    conv.data(Side::Client, 3, &grpc_frame(true, b"xyz"), true);
    let input = fuzz_input(&conv);
    assert_eq!(crate::fuzz_connection_messages(&input), 3);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..3000 {
        let mut mutated = input.clone();
        for _ in 0..1 + round % 4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % mutated.len();
            mutated[at] = (seed >> 32) as u8;
        }
        if round % 3 == 0 {
            mutated[0] |= 4; // mid-connection
        }
        crate::fuzz_connection(&mutated);
    }
}

#[test]
fn random_header_blocks_never_panic_either_decoder() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut known = HeaderDecoder::new();
    let mut unknown = HeaderDecoder::unknown();
    let mut out = Block::default();
    for round in 0..20_000 {
        let len = round % 64;
        let block: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        if known.decode(&block, &mut out).is_err() {
            known = HeaderDecoder::new();
        }
        let _ = unknown.decode(&block, &mut out);
    }
}

#[test]
fn an_upgraded_connection_gives_the_response_to_the_http1_request_on_stream_1() {
    let mut conv = Conv::new();
    conv.ok(1, b"upgraded");
    conv.headers(
        Side::Client,
        3,
        &[
            (":method", "GET"),
            (":path", "/x"),
            (":authority", "a"),
            ("host", "a"),
        ],
        true,
    );
    let events = run(
        H2Connection::upgraded(H2Limits::default()),
        &[(Side::Client, &conv.client), (Side::Server, &conv.server)],
    );
    assert_eq!(problems(&events), []);
    let m = messages(&events);
    assert_eq!(text(&m[0]), "GET /x HTTP/2\r\nhost: a\r\n\r\n");
    assert_eq!((m[1].stream_id, m[1].side), (1, Side::Server));
    assert!(text(&m[1]).ends_with("\r\n\r\nupgraded"));
}

#[test]
fn the_fuzz_seeds_of_the_nginx_capture_decode() {
    let seeds =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/h2_connection");
    for (name, expected) in [("connection-0", 6), ("connection-1", 2)] {
        let seed = std::fs::read(seeds.join(name)).unwrap();
        assert_eq!(crate::fuzz_connection_messages(&seed), expected, "{name}");
    }
}

#[test]
fn random_frame_sequences_never_panic() {
    let rounds: usize = std::env::var("H2_RANDOM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let limits = H2Limits {
        max_frame_bytes: 4096,
        max_header_block: 1024,
        max_streams: 8,
        max_message_bytes: 512,
    };
    for round in 0..rounds {
        let mut conn = if round % 2 == 0 {
            let mut c = H2Connection::new(limits);
            c.feed(Side::Client, crate::CLIENT_PREFACE, 0, &mut |_| {});
            c
        } else {
            H2Connection::mid_stream(limits)
        };
        let mut conv = Conv::bare();
        for i in 1..40 {
            let r = next();
            let side = if r & 1 == 0 {
                Side::Client
            } else {
                Side::Server
            };
            let stream = (r >> 8) as u32 % 7;
            let bytes = match (r >> 4) % 8 {
                0 | 1 => {
                    let fields = [
                        (":method", "POST"),
                        (":path", "/r"),
                        (":status", "200"),
                        ("content-type", "application/grpc"),
                        ("x", "y"),
                    ];
                    let n = (r >> 20) as usize % fields.len() + 1;
                    let block = conv.block(side, &fields[..n]);
                    frame(frame::HEADERS, (r >> 32) as u8 & 0x2d, stream, &block)
                }
                2 | 3 => {
                    let payload: Vec<u8> =
                        (0..(r >> 40) as usize % 40).map(|_| next() as u8).collect();
                    frame(frame::DATA, (r >> 32) as u8 & 0x09, stream, &payload)
                }
                4 => {
                    let kind = (r >> 32) as u8 % 11;
                    let payload: Vec<u8> =
                        (0..(r >> 40) as usize % 24).map(|_| next() as u8).collect();
                    frame(kind, (r >> 48) as u8, stream, &payload)
                }
                5 => (0..(r >> 40) as usize % 30).map(|_| next() as u8).collect(),
                _ => {
                    conn.gap(side, (r >> 40) % 50, &mut |_| {});
                    continue;
                }
            };
            for piece in bytes.chunks(1 + (r >> 56) as usize % 16) {
                conn.feed(side, piece, i, &mut |_| {});
            }
            assert!(conn.buffered_bytes() < 64 << 10);
        }
        conn.finish(&mut |_| {});
    }
}
