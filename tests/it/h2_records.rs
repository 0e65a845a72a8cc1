//! HTTP/2 and gRPC facts in the structured records (`--output-stdout-format json`): the
//! version, stream ids and gRPC calls of the fixtures' captures (checked against what the
//! gRPC server logged it received), gRPC messages decoded with `--grpc-descriptor-set`, the
//! facts derived again from a `.gor` file, `--prettify-http` with a descriptor set, URL
//! filters on gRPC paths, and a descriptor set that is not one.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

const SERVICE: &str = "shadowtap.fixture.Echo";

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/h2").join(name)
}

fn grpc_pcap() -> String {
    format!("{}:18250", fixture("grpc.pcap").display())
}

fn descriptor_set() -> String {
    fixture("descriptor_set.pb").display().to_string()
}

/// The JSON records shadowtap prints for `args` (plus `--output-stdout-format json`).
fn records(args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--output-stdout", "--output-stdout-format", "json"]);
    let output = run(&all);
    assert_success(&output);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn grpc_records(extra: &[&str]) -> Vec<Value> {
    let pcap = grpc_pcap();
    let mut args = vec!["--input-pcap", &pcap, "--input-raw-track-response"];
    args.extend(extra);
    records(&args)
}

/// One call as the gRPC server logged it (`grpc-received.jsonl`, in stream order).
struct Received {
    method: String,
    /// `(text, seq, blob hex)` of each request message.
    messages: Vec<(String, i64, String)>,
}

fn received() -> Vec<Received> {
    let text = std::fs::read_to_string(fixture("grpc-received.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let call: Value = serde_json::from_str(line).unwrap();
            Received {
                method: call["method"].as_str().unwrap().to_string(),
                messages: call["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["text"].as_str().unwrap().to_string(),
                            m["seq"].as_i64().unwrap(),
                            m["blob"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Messages the server answers a call with: the fixture's server echoes one message per
/// unary or client-streaming call, three per server-streaming call, one per message of a
/// bidi call, and none on the NOT_FOUND failure.
fn response_messages(call: &Received, failed: bool) -> u64 {
    match call.method.as_str() {
        _ if failed => 0,
        "ServerStream" => 3,
        "Bidi" => call.messages.len() as u64,
        _ => 1,
    }
}

/// Records by (stream id, kind).
fn by_stream(records: &[Value]) -> BTreeMap<(u64, String), &Value> {
    records
        .iter()
        .map(|r| {
            let stream = r["stream_id"].as_u64().expect("a stream id");
            ((stream, r["kind"].as_str().unwrap().to_string()), r)
        })
        .collect()
}

#[test]
fn grpc_records_carry_version_stream_ids_calls_statuses_and_message_counts() {
    let records = grpc_records(&[]);
    assert_eq!(records.len(), 12, "{records:?}");
    assert!(records.iter().all(|r| r["http_version"] == "2"));
    let streams = by_stream(&records);
    let calls = received();
    assert_eq!(calls.len(), 6);
    for (i, call) in calls.iter().enumerate() {
        let stream = 1 + 2 * i as u64;
        let failed = i == 5;
        let request = &streams[&(stream, "request".to_string())]["grpc"];
        let response = &streams[&(stream, "response".to_string())]["grpc"];
        for grpc in [request, response] {
            assert_eq!(grpc["service"], SERVICE, "stream {stream}");
            assert_eq!(grpc["method"], call.method.as_str(), "stream {stream}");
        }
        assert_eq!(request["message_count"], call.messages.len() as u64);
        assert_eq!(response["message_count"], response_messages(call, failed));
        assert_eq!(
            response["status"],
            if failed { 5 } else { 0 },
            "stream {stream}"
        );
        assert!(request.get("status").is_none());
        let compressed = u64::from(stream == 9);
        for grpc in [request, response] {
            assert_eq!(grpc["compressed_messages"], compressed, "stream {stream}");
            let encoding = if stream == 9 {
                Value::from("gzip")
            } else {
                Value::Null
            };
            assert_eq!(
                grpc.get("encoding").cloned().unwrap_or(Value::Null),
                encoding
            );
            assert!(
                grpc.get("messages").is_none(),
                "decoded only with a descriptor set"
            );
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn with_the_descriptor_set_requests_decode_to_what_the_server_received() {
    let set = descriptor_set();
    let records = grpc_records(&["--grpc-descriptor-set", &set]);
    let streams = by_stream(&records);
    for (i, call) in received().iter().enumerate() {
        let stream = 1 + 2 * i as u64;
        let request = &streams[&(stream, "request".to_string())]["grpc"];
        assert!(request.get("decode_error").is_none(), "{request}");
        let decoded: Vec<(String, i64, String)> = request["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let seq = m["seq"].as_i64().unwrap();
                let blob = m["blob"].as_str().unwrap().to_string();
                (m["text"].as_str().unwrap().to_string(), seq, blob)
            })
            .collect();
        let sent: Vec<(String, i64, String)> = call
            .messages
            .iter()
            .map(|(text, seq, blob)| (text.clone(), *seq, base64(&unhex(blob))))
            .collect();
        assert_eq!(decoded, sent, "stream {stream}");
        let response = &streams[&(stream, "response".to_string())]["grpc"];
        assert!(response.get("decode_error").is_none(), "{response}");
        let answers = response["messages"].as_array().unwrap();
        assert_eq!(
            answers.len() as u64,
            response["message_count"].as_u64().unwrap()
        );
        assert!(answers.iter().all(Value::is_object), "{response}");
    }
}

#[test]
fn a_gor_file_read_back_has_the_version_and_derived_grpc_facts() {
    let dir = tempdir();
    let gor = dir.path().join("grpc.gor");
    let pcap = grpc_pcap();
    let output = run(&[
        "--input-pcap",
        &pcap,
        "--input-raw-track-response",
        "--output-file",
        path_str(&gor),
        "--output-file-append",
    ]);
    assert_success(&output);
    let captured = by_stream(&grpc_records(&[]))
        .into_iter()
        .map(|((_, kind), r)| {
            (
                (r["id"].as_str().unwrap().to_string(), kind),
                r["grpc"].clone(),
            )
        })
        .collect::<BTreeMap<_, _>>();
    let set = descriptor_set();
    let read_back = records(&[
        "--input-file",
        path_str(&gor),
        "--grpc-descriptor-set",
        &set,
    ]);
    assert_eq!(read_back.len(), 12);
    for record in &read_back {
        assert_eq!(record["http_version"], "2");
        assert!(record.get("stream_id").is_none(), "not in .gor: {record}");
        let key = (
            record["id"].as_str().unwrap().to_string(),
            record["kind"].as_str().unwrap().to_string(),
        );
        let mut grpc = record["grpc"].clone();
        let decoded = grpc.as_object_mut().unwrap().remove("messages");
        assert_eq!(grpc, captured[&key], "{key:?}");
        let count = grpc["message_count"].as_u64().unwrap() as usize;
        assert_eq!(
            decoded.unwrap().as_array().unwrap().len(),
            count,
            "{record}"
        );
    }
}

#[test]
fn plain_h2_has_version_2_and_stream_ids_and_http1_has_1_1_and_none() {
    let h2c = format!("{}:18280", fixture("h2c.pcap").display());
    let h2 = records(&["--input-pcap", &h2c, "--input-raw-track-response"]);
    assert!(h2.len() > 200, "{}", h2.len());
    for record in &h2 {
        assert_eq!(record["http_version"], "2", "{record}");
        assert!(
            record["stream_id"].as_u64().is_some_and(|s| s % 2 == 1),
            "{record}"
        );
        assert!(record.get("grpc").is_none(), "{record}");
    }
    let loopback = format!(
        "{}:18480",
        repo().join("tests/fixtures/loopback.pcap").display()
    );
    let args = ["--input-pcap", &loopback, "--input-raw-track-response"];
    let http1 = records(&args);
    let output = run(&[&args[..], &["--output-stdout"]].concat());
    let gor = decode(&output.stdout);
    assert_eq!(http1.len(), gor.len());
    let mut versions = BTreeMap::<String, usize>::new();
    for (record, raw) in http1.iter().zip(&gor) {
        assert_eq!(record["id"], raw.id().as_str(), "the same order");
        let version = record["http_version"]
            .as_str()
            .expect("a version")
            .to_string();
        let text = raw.payload_text();
        let line = text.lines().next().unwrap_or_default();
        assert!(
            line.contains(&format!("HTTP/{version}")),
            "{line}: {record}"
        );
        assert!(record.get("stream_id").is_none() && record.get("grpc").is_none());
        *versions.entry(version).or_default() += 1;
    }
    assert!(versions["1.1"] > 60, "{versions:?}");
}

#[test]
fn prettify_with_the_descriptor_set_shows_grpc_messages_as_json_lines() {
    let pcap = grpc_pcap();
    let set = descriptor_set();
    let output = run(&[
        "--input-pcap",
        &pcap,
        "--input-raw-track-response",
        "--prettify-http",
        "--grpc-descriptor-set",
        &set,
        "--output-stdout",
    ]);
    assert_success(&output);
    let records = decode(&output.stdout);
    assert_eq!(records.len(), 12);
    let client_stream = records
        .iter()
        .find(|r| r.kind() == b'1' && r.payload_text().contains("/ClientStream "))
        .expect("the ClientStream request");
    let text = client_stream.payload_text();
    assert!(
        text.contains("content-type: application/x-ndjson\r\n"),
        "{text}"
    );
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = lines.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["a", "b", "c"], "{text}");
    let gzip_response = records
        .iter()
        .filter(|r| r.kind() == b'2' && r.payload_text().contains("x-served-by"))
        .find(|r| r.payload_text().contains("\"echo gzip\""))
        .expect("the gzip call's response, inflated and decoded");
    let text = gzip_response.payload_text();
    assert!(!text.contains("grpc-encoding"), "{text}");
    assert!(text.ends_with("grpc-status: 0\r\ngrpc-message: \r\nx-trailer: unary-done\r\n\r\n"));
}

#[test]
fn url_filters_match_the_grpc_path_of_h2_requests() {
    let records = grpc_records(&["--http-allow-url", "^/shadowtap\\.fixture\\.Echo/Unary$"]);
    let streams: Vec<(u64, String)> = by_stream(&records).into_keys().collect();
    let expected: Vec<(u64, String)> = [1, 9, 11]
        .into_iter()
        .flat_map(|s| [(s, "request".to_string()), (s, "response".to_string())])
        .collect();
    assert_eq!(streams, expected);
    let records = grpc_records(&["--http-disallow-url", "/Unary$"]);
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|r| r["grpc"]["method"] != "Unary"));
}

#[test]
fn a_descriptor_set_that_is_not_one_is_a_startup_error_naming_the_file() {
    let dir = tempdir();
    let garbage = dir.path().join("garbage.pb");
    std::fs::write(&garbage, b"\xff\xff\xff\xff\x0fnot a descriptor set").unwrap();
    let pcap = grpc_pcap();
    for file in [garbage.clone(), dir.path().join("missing.pb")] {
        let output = run(&[
            "--input-pcap",
            &pcap,
            "--grpc-descriptor-set",
            path_str(&file),
            "--output-stdout",
        ]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(stderr(&output).contains(name), "{}", stderr(&output));
        assert!(output.stdout.is_empty());
    }
}
