//! HTTP/2 captures (h2c with prior knowledge, h2 inside TLS, gRPC, a GOAWAY) decoded into
//! messages, against tshark's per-stream reference in `tests/fixtures/h2/expected` (see that
//! folder's README): every stream's request and response exactly once, start lines, bodies and
//! trailers equal.

use crate::common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/h2")
}

/// One message in the comparable form: its start line, body bytes and trailer block.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Exchange {
    request: String,
    request_body: Vec<u8>,
    response: String,
    response_body: Vec<u8>,
}

fn text(value: &Value) -> Vec<u8> {
    value
        .as_str()
        .unwrap_or_default()
        .chars()
        .map(|c| c as u32 as u8)
        .collect()
}

fn header(fields: &Value, name: &str) -> String {
    fields
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f[0] == name)
        .map(|f| String::from_utf8_lossy(&text(&f[1])).into_owned())
        .unwrap_or_default()
}

fn hex(value: &Value) -> Vec<u8> {
    let digits = value.as_str().unwrap_or_default().as_bytes();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// The body as shadowtap writes it: DATA bytes, then the trailers as a field block.
fn body_with_trailers(side: &Value) -> Vec<u8> {
    let mut body = hex(&side["body"]);
    if let Some(trailers) = side["trailers"].as_array() {
        for field in trailers {
            body.extend(text(&field[0]));
            body.extend(b": ");
            body.extend(text(&field[1]));
            body.extend(b"\r\n");
        }
        body.extend(b"\r\n");
    }
    body
}

/// tshark's exchanges of a capture: streams with a request and a final response (stream 1 of
/// an `Upgrade: h2c` connection: the HTTP/1.1 request and the HTTP/2 response).
fn reference(name: &str) -> Vec<Exchange> {
    let path = fixtures().join("expected").join(format!("{name}.json"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut exchanges = Vec::new();
    for conn in json["connections"].as_array().unwrap() {
        let upgrade = &conn["http1_upgrade"]["request"];
        for stream in conn["streams"].as_array().unwrap() {
            let (request, response) = (&stream["request"], &stream["response"]);
            if response["headers"].is_null() {
                continue;
            }
            let (request_line, request_body) = if !request["headers"].is_null() {
                let fields = &request["headers"];
                let method = header(fields, ":method");
                let line = format!("{method} {} HTTP/2", header(fields, ":path"));
                (line, body_with_trailers(request))
            } else if stream["id"] == 1 && !upgrade.is_null() {
                let line = upgrade["request_line"].as_str().unwrap_or_default();
                (line.to_string(), hex(&upgrade["body"]))
            } else {
                continue;
            };
            exchanges.push(Exchange {
                request: request_line,
                request_body,
                response: format!("HTTP/2 {}", header(&response["headers"], ":status")),
                response_body: body_with_trailers(response),
            });
        }
    }
    exchanges.sort();
    exchanges
}

fn split(payload: &[u8]) -> (String, Vec<u8>) {
    let line_end = payload
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(payload.len());
    let head_end = payload
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(payload.len(), |at| at + 4);
    (
        String::from_utf8_lossy(&payload[..line_end]).into_owned(),
        payload[head_end..].to_vec(),
    )
}

/// shadowtap's exchanges of a capture, paired by id.
fn captured(name: &str, flags: &[&str]) -> (Vec<Exchange>, String) {
    let dir = tempdir();
    let out = dir.path().join("out.gor");
    let pcap = fixtures().join(format!("{name}.pcap"));
    let mut args = vec![
        "--input-pcap",
        path_str(&pcap),
        "--input-raw-track-response",
        "--output-file",
        path_str(&out),
        "--output-file-append",
    ];
    args.extend(flags);
    let output = run(&args);
    assert_success(&output);
    let mut requests: HashMap<String, (String, Vec<u8>)> = HashMap::new();
    let mut responses: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
    for record in read_gor(&out) {
        let parts = split(&record.payload);
        if record.kind() == b'1' {
            assert!(
                requests.insert(record.id(), parts).is_none(),
                "two requests share an id"
            );
        } else {
            responses.entry(record.id()).or_default().push(parts);
        }
    }
    let mut exchanges = Vec::new();
    for (id, (request, request_body)) in requests {
        let Some(answers) = responses.remove(&id) else {
            continue;
        };
        let (response, response_body) = answers.into_iter().last().expect("one response");
        exchanges.push(Exchange {
            request,
            request_body,
            response,
            response_body,
        });
    }
    exchanges.sort();
    (exchanges, stderr(&output))
}

fn decodes_as_tshark_does(name: &str, flags: &[&str]) {
    let expected = reference(name);
    assert!(!expected.is_empty(), "{name}: tshark saw no exchange");
    let (got, stderr) = captured(name, flags);
    assert_eq!(got.len(), expected.len(), "{name}: exchanges; {stderr}");
    for (got, want) in got.iter().zip(&expected) {
        assert_eq!(got, want, "{name}; {stderr}");
    }
}

#[test]
fn h2c_with_prior_knowledge_from_curl_nghttp_and_h2load_decodes_as_tshark_does() {
    decodes_as_tshark_does("h2c", &[]);
}

#[test]
fn grpc_calls_of_every_kind_decode_as_tshark_does() {
    decodes_as_tshark_does("grpc", &[]);
}

#[test]
fn h2_inside_tls_13_and_12_decodes_as_tshark_does() {
    let keys = fixtures().join("h2-tls.keys");
    decodes_as_tshark_does("h2-tls", &["--input-raw-tls-keylog", path_str(&keys)]);
}

#[test]
fn a_goaway_before_the_last_streams_is_counted_and_the_rest_decodes() {
    decodes_as_tshark_does("h2c-goaway", &[]);
    let (_, stderr) = captured("h2c-goaway", &[]);
    assert_eq!(
        summary_counter(&stderr, "input-pcap", "h2: goaway"),
        1,
        "{stderr}"
    );
}

#[test]
fn an_upgrade_to_h2c_goes_on_as_http2_with_stream_1_answering_the_upgraded_request() {
    decodes_as_tshark_does("h2c-upgrade", &[]);
    let (_, stderr) = captured("h2c-upgrade", &[]);
    assert!(
        !stderr.contains("tunnel"),
        "nothing is left to a tunnel: {stderr}"
    );
}

/// An HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const WINDOW_UPDATE: u8 = 8;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

/// A request header block: `:method` from the static table (0x82 GET, 0x83 POST), `:scheme
/// http`, and `:path` as a literal without indexing.
fn request_block(method: u8, path: &str) -> Vec<u8> {
    let mut block = vec![method, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
    block.extend(path.as_bytes());
    block
}

/// One h2c connection mixing good streams with hostile frames: a reset stream, a PRIORITY of
/// the wrong length, a DATA frame whose padding is longer than itself, a zero WINDOW_UPDATE,
/// and at the end a frame claiming 16 MiB that never comes (nothing is reserved for it).
fn write_hostile_h2c(path: &std::path::Path) {
    use shadowtap_capture::testutil::Conversation;
    let mut conv = Conversation::new("10.0.0.1:40000", "10.0.0.2:80");
    let mut segments = conv.handshake();
    let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    client.extend(frame(SETTINGS, 0, 0, b""));
    client.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &request_block(0x82, "/one"),
    ));
    client.extend(frame(
        HEADERS,
        END_HEADERS,
        3,
        &request_block(0x83, "/reset"),
    ));
    client.extend(frame(DATA, 0, 3, b"partial"));
    client.extend(frame(RST_STREAM, 0, 3, &8u32.to_be_bytes()));
    client.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        5,
        &request_block(0x82, "/padded"),
    ));
    client.extend(frame(PRIORITY, 0, 5, &[0, 0, 0, 1]));
    client.extend(frame(WINDOW_UPDATE, 0, 0, &0u32.to_be_bytes()));
    client.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        7,
        &request_block(0x82, "/last"),
    ));
    segments.push(conv.client(&client));
    let mut server = frame(SETTINGS, 0, 0, b"");
    for (stream, body) in [(1, &b"one"[..]), (5, b"five"), (7, b"seven")] {
        server.extend(frame(HEADERS, END_HEADERS, stream, b"\x88"));
        if stream == 5 {
            server.extend(frame(DATA, PADDED, 5, b"\xc8abc"));
        }
        server.extend(frame(DATA, END_STREAM, stream, body));
    }
    segments.push(conv.server(&server));
    let mut huge = vec![0xff, 0xff, 0xff, DATA, 0, 0, 0, 0, 9];
    huge.extend([0u8; 1000]);
    segments.push(conv.client(&huge));
    segments.push(conv.client_fin());
    segments.push(conv.server_fin());
    let frames: Vec<Vec<u8>> = segments.iter().map(|s| s.ethernet()).collect();
    write_pcap(path, &frames);
}

#[test]
fn hostile_frames_are_counted_per_reason_and_spare_the_other_streams() {
    let dir = tempdir();
    let pcap = dir.path().join("hostile-h2c.pcap");
    write_hostile_h2c(&pcap);
    let input = format!("{}:80", path_str(&pcap));
    let output = run(&[
        "--input-pcap",
        &input,
        "--input-raw-track-response",
        "--output-stdout",
    ]);
    assert_success(&output);
    let stderr = stderr(&output);
    let records = decode(&output.stdout);
    let lines: Vec<String> = records
        .iter()
        .map(|r| {
            r.payload_text()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let requests: Vec<&String> = lines.iter().filter(|l| !l.starts_with("HTTP/")).collect();
    assert_eq!(
        requests,
        ["GET /one HTTP/2", "GET /padded HTTP/2", "GET /last HTTP/2"],
        "{stderr}"
    );
    let bodies: Vec<String> = records
        .iter()
        .filter(|r| r.kind() == b'2')
        .map(|r| r.payload_text().rsplit("\r\n").next().unwrap().to_string())
        .collect();
    assert_eq!(bodies, ["one", "five", "seven"], "{stderr}");
    for (reason, count) in [
        ("h2: stream reset", 1),
        ("h2: malformed frame", 2),
        ("h2: flow control", 1),
    ] {
        assert_eq!(
            summary_counter(&stderr, "input-pcap", reason),
            count,
            "{reason}: {stderr}"
        );
    }
}

#[test]
fn a_capture_started_mid_connection_decodes_the_streams_tshark_decodes() {
    let known: Vec<Exchange> = reference("h2c-midstream")
        .into_iter()
        .filter(|e| {
            let unknown = e.request.starts_with(' ') || e.request.contains("  ");
            !unknown && !e.response.ends_with(' ')
        })
        .collect();
    let (got, stderr) = captured("h2c-midstream", &[]);
    let missing: Vec<&Exchange> = known.iter().filter(|e| !got.contains(e)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} missing: {missing:?}; {stderr}",
        missing.len(),
        known.len()
    );
    assert!(
        summary_counter(&stderr, "input-pcap", "h2: hpack state unknown") > 0,
        "{stderr}"
    );
}
