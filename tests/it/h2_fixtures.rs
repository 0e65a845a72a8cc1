//! Guards for the HTTP/2 and gRPC capture fixtures in `tests/fixtures/h2` (issue 14; made by
//! `make-h2.sh` from nginx, curl, nghttp, h2load and grpcio on loopback). The reference of each
//! capture is tshark's dissection, committed as `expected/NAME.json` by `reference.py`; these
//! tests check that it is still what tshark derives, that it agrees with `manifest.json` and
//! with what each capture was made to hold, and that the gRPC descriptor set is well-formed.
//! They do not run shadowtap: the HTTP/2 decoder's tests compare its output with this reference.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/h2")
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn manifest() -> Value {
    read_json(&fixtures().join("manifest.json"))
}

/// The manifest's captures: (file name, its entry).
fn captures() -> Vec<(String, Value)> {
    let manifest = manifest();
    let captures = manifest["captures"].as_object().expect("manifest captures");
    captures
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn reference(entry: &Value) -> Value {
    read_json(&fixtures().join(entry["reference"].as_str().expect("reference path")))
}

fn connections(reference: &Value) -> &Vec<Value> {
    reference["connections"].as_array().expect("connections")
}

fn streams(connection: &Value) -> &Vec<Value> {
    connection["streams"].as_array().expect("streams")
}

fn all_streams(reference: &Value) -> Vec<&Value> {
    connections(reference).iter().flat_map(streams).collect()
}

/// The value of header `name` in a `[[name, value], ...]` list.
fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers.as_array()?.iter().find_map(|pair| {
        (pair[0].as_str() == Some(name)).then(|| pair[1].as_str().unwrap_or_default())
    })
}

// ---------------------------------------------------------------------------------------------
// The reference is tshark's, today

#[test]
fn committed_h2_references_are_what_tshark_derives_now() {
    if !have_tool("tshark", "apt-get install -y tshark")
        || !have_tool("python3", "apt-get install -y python3")
    {
        return;
    }
    let out = tempdir();
    let output = Command::new("python3")
        .arg(fixtures().join("reference.py"))
        .args(["derive", path_str(&fixtures()), path_str(out.path())])
        .output()
        .expect("python3 reference.py");
    assert!(
        output.status.success(),
        "reference.py derive: {}",
        stderr(&output)
    );
    assert_eq!(
        read_json(&out.path().join("manifest.json")),
        manifest(),
        "manifest.json is not what reference.py derives now"
    );
    for (name, entry) in captures() {
        let relative = entry["reference"].as_str().expect("reference path");
        let now = read_json(&out.path().join(relative));
        let committed = reference(&entry);
        assert_same_reference(&name, &committed, &now);
    }
}

/// Equal, or a message naming the first connection and stream that differ.
fn assert_same_reference(name: &str, committed: &Value, now: &Value) {
    if committed == now {
        return;
    }
    let (old, new) = (connections(committed), connections(now));
    assert_eq!(old.len(), new.len(), "{name}: number of connections");
    for (a, b) in old.iter().zip(new) {
        let (sa, sb) = (streams(a), streams(b));
        assert_eq!(
            sa.len(),
            sb.len(),
            "{name}: tcp.stream {}: streams",
            a["tcp_stream"]
        );
        for (x, y) in sa.iter().zip(sb) {
            assert_eq!(
                x, y,
                "{name}: tcp.stream {} stream {}",
                a["tcp_stream"], x["id"]
            );
        }
        assert_eq!(a, b, "{name}: tcp.stream {}", a["tcp_stream"]);
    }
    assert_eq!(committed, now, "{name}");
}

#[test]
fn every_h2_capture_has_the_stream_counts_of_the_manifest() {
    if !have_tool("tshark", "apt-get install -y tshark") {
        return;
    }
    for (name, entry) in captures() {
        let per_connection = tshark_streams_with_headers(&name, &entry);
        let mut want: Vec<u64> = entry["streams_per_connection"]
            .as_array()
            .expect("streams_per_connection")
            .iter()
            .filter_map(Value::as_u64)
            .filter(|&n| n > 0)
            .collect();
        let mut got: Vec<u64> = per_connection.values().map(|&n| n as u64).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "{name}: streams with HEADERS per TCP connection");
        assert_eq!(
            got.iter().sum::<u64>(),
            entry["streams"].as_u64().unwrap(),
            "{name}"
        );
    }
}

/// tshark's count, per TCP connection, of the streams (id > 0) it saw a HEADERS frame on.
fn tshark_streams_with_headers(name: &str, entry: &Value) -> BTreeMap<u64, usize> {
    let port = entry["port"].as_u64().expect("port");
    let decode_as = entry["decode_as"].as_str().expect("decode_as");
    let pcap = fixtures().join(name);
    let decode = format!("tcp.port=={port},{decode_as}");
    let mut args = vec!["-n", "-r", path_str(&pcap), "-d", &decode];
    let keylog;
    if let Some(keys) = entry["keys"].as_str() {
        keylog = format!("tls.keylog_file:{}", fixtures().join(keys).display());
        args.extend(["-o", &keylog]);
    }
    args.extend([
        "-Y",
        "http2.type == 1",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
    ]);
    args.extend([
        "-e",
        "tcp.stream",
        "-e",
        "http2.streamid",
        "-e",
        "http2.type",
    ]);
    let output = Command::new("tshark")
        .args(&args)
        .stderr(Stdio::null())
        .output()
        .expect("tshark");
    assert!(output.status.success(), "tshark {args:?}");
    let mut seen: BTreeMap<u64, std::collections::BTreeSet<u64>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let tcp_stream: u64 = fields[0].parse().expect("tcp.stream");
        let ids = fields[1].split(',');
        let types = fields[2].split(',');
        for (id, kind) in ids.zip(types) {
            let id: u64 = id.parse().expect("stream id");
            if kind == "1" && id > 0 {
                seen.entry(tcp_stream).or_default().insert(id);
            }
        }
    }
    seen.into_iter().map(|(k, v)| (k, v.len())).collect()
}

// ---------------------------------------------------------------------------------------------
// The reference agrees with the manifest and holds what each capture was made for

#[test]
fn the_h2_references_agree_with_the_manifest() {
    let mut total = 0;
    for (name, entry) in captures() {
        let pcap = fixtures().join(&name);
        total += std::fs::metadata(&pcap).expect("capture").len();
        let reference = reference(&entry);
        assert_eq!(reference["capture"].as_str(), Some(name.as_str()));
        assert_eq!(reference["port"], entry["port"], "{name}");
        let counts: Vec<u64> = connections(&reference)
            .iter()
            .map(|c| streams(c).len() as u64)
            .collect();
        let want: Vec<u64> = entry["streams_per_connection"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(counts, want, "{name}: streams per connection");
        for stream in all_streams(&reference) {
            for side in ["request", "response"] {
                let body = stream[side]["body"].as_str().expect("body hex");
                let len = stream[side]["body_len"].as_u64().expect("body_len");
                assert_eq!(
                    body.len() as u64,
                    2 * len,
                    "{name} stream {} {side}",
                    stream["id"]
                );
            }
        }
    }
    assert!(total < 512 * 1024, "the h2 captures total {total} bytes");
}

fn capture(name: &str) -> Value {
    let manifest = manifest();
    reference(&manifest["captures"][name])
}

#[test]
fn the_h2c_capture_holds_curl_nghttp_and_interleaved_h2load_streams() {
    let reference = capture("h2c.pcap");
    let streams = all_streams(&reference);
    let paths: Vec<&str> = streams
        .iter()
        .filter_map(|s| header(&s["request"]["headers"], ":path"))
        .collect();
    assert_eq!(
        paths.iter().filter(|p| p.contains("case=h2load")).count(),
        200
    );
    for path in ["/echo?case=curl-get", "/index.json", "/missing"] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    let post = streams
        .iter()
        .find(|s| header(&s["request"]["headers"], ":method") == Some("POST"))
        .expect("the POST");
    assert_eq!(post["request"]["body_len"], 4000);
    let big = streams
        .iter()
        .find(|s| {
            header(&s["request"]["headers"], ":path") == Some("/static/big.txt?case=curl-big")
        })
        .expect("the big GET");
    assert_eq!(big["response"]["body_len"], 10000);
    assert!(big["response"]["data_frames"].as_u64().unwrap() >= 2);
}

#[test]
fn the_goaway_capture_has_a_server_goaway_before_the_last_answered_response() {
    let reference = capture("h2c-goaway.pcap");
    let conn = &connections(&reference)[0];
    let goaway = &conn["goaway"][0];
    assert_eq!(goaway["from"], "server");
    let last = goaway["last_stream_id"].as_u64().unwrap();
    let streams = streams(conn);
    let answered: Vec<u64> = streams
        .iter()
        .filter(|s| !s["response"]["headers"].is_null())
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(answered.len(), 3);
    assert_eq!(answered.last(), Some(&last));
    assert!(streams.iter().any(|s| s["id"].as_u64().unwrap() > last));
}

#[test]
fn the_midstream_capture_has_no_preface_and_unknown_hpack_entries() {
    let reference = capture("h2c-midstream.pcap");
    for conn in connections(&reference) {
        assert_eq!(conn["preface"], false);
    }
    let unknown = all_streams(&reference)
        .iter()
        .filter(|s| header(&s["request"]["headers"], "<unknown>").is_some())
        .count();
    assert!(
        unknown > 0,
        "tshark decoded every header without the dynamic table"
    );
}

#[test]
fn the_tls_capture_decrypts_to_h2_streams_in_tls_1_3_and_1_2() {
    let reference = capture("h2-tls.pcap");
    let conns = connections(&reference);
    assert_eq!(conns.len(), 2);
    let post = &streams(&conns[1])[0];
    assert_eq!(header(&post["request"]["headers"], ":method"), Some("POST"));
    assert_eq!(post["request"]["body_len"], 4000);
    assert_eq!(streams(&conns[0]).len(), 2);
}

#[test]
fn the_upgrade_capture_has_the_http1_request_and_stream_1_in_http2() {
    let reference = capture("h2c-upgrade.pcap");
    for conn in connections(&reference) {
        let upgrade = &conn["http1_upgrade"];
        assert!(upgrade["response"]["status_line"]
            .as_str()
            .unwrap()
            .starts_with("HTTP/1.1 101"));
        assert_eq!(
            header(&upgrade["request"]["headers"], "Upgrade"),
            Some("h2c")
        );
        let stream = &streams(conn)[0];
        assert_eq!(stream["id"], 1);
        assert!(
            stream["request"]["headers"].is_null(),
            "stream 1's request is the HTTP/1.1 one"
        );
        assert_eq!(
            header(&stream["response"]["headers"], ":status"),
            Some("200")
        );
    }
}

#[test]
fn the_grpc_capture_has_every_call_kind_gzip_and_an_error_status() {
    let reference = capture("grpc.pcap");
    let calls: Vec<(String, usize, usize, Option<String>)> = all_streams(&reference)
        .iter()
        .map(|s| {
            let path = header(&s["request"]["headers"], ":path")
                .unwrap()
                .to_string();
            let count = |side: &str| s[side]["grpc"].as_array().map_or(0, Vec::len);
            // grpc-status is a trailer, or a header of a trailers-only response
            let status = header(&s["response"]["trailers"], "grpc-status")
                .or_else(|| header(&s["response"]["headers"], "grpc-status"))
                .map(str::to_string);
            (path, count("request"), count("response"), status)
        })
        .collect();
    let kind = |m: &str, q, a, st: &str| {
        (
            format!("/shadowtap.fixture.Echo/{m}"),
            q,
            a,
            Some(st.to_string()),
        )
    };
    assert_eq!(
        calls,
        vec![
            kind("Unary", 1, 1, "0"),
            kind("ServerStream", 1, 3, "0"),
            kind("ClientStream", 3, 1, "0"),
            kind("Bidi", 3, 3, "0"),
            kind("Unary", 1, 1, "0"),
            kind("Unary", 1, 0, "5"),
        ]
    );
    let gzip = all_streams(&reference)[4];
    assert_eq!(gzip["request"]["grpc"][0]["compressed"], true);
    assert_eq!(
        header(&gzip["request"]["headers"], "grpc-encoding"),
        Some("gzip")
    );
    let first = all_streams(&reference)[0];
    assert_eq!(
        header(&first["request"]["headers"], "x-tenant"),
        Some("blue")
    );
}

// ---------------------------------------------------------------------------------------------
// The gRPC descriptor set

#[test]
fn the_grpc_descriptor_set_is_a_file_descriptor_set_of_echo_proto() {
    let bytes = std::fs::read(fixtures().join("descriptor_set.pb")).expect("descriptor_set.pb");
    // FileDescriptorSet { repeated FileDescriptorProto file = 1; }
    let files = fields(&bytes);
    assert!(files.iter().all(|(number, _)| *number == 1), "{files:?}");
    let file = fields(&files[0].1);
    let text = |f: &[(u64, Vec<u8>)], n: u64| -> Vec<String> {
        f.iter()
            .filter(|(number, _)| *number == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    assert_eq!(text(&file, 1), ["echo.proto"]);
    assert_eq!(text(&file, 2), ["shadowtap.fixture"]);
    // FileDescriptorProto.service = 6; ServiceDescriptorProto { name = 1; repeated method = 2; }
    let services: Vec<Vec<(u64, Vec<u8>)>> = file
        .iter()
        .filter(|(n, _)| *n == 6)
        .map(|(_, v)| fields(v))
        .collect();
    assert_eq!(services.len(), 1);
    assert_eq!(text(&services[0], 1), ["Echo"]);
    let methods: Vec<String> = services[0]
        .iter()
        .filter(|(n, _)| *n == 2)
        .flat_map(|(_, v)| text(&fields(v), 1))
        .collect();
    assert_eq!(methods, ["Unary", "ServerStream", "ClientStream", "Bidi"]);
}

/// The length-delimited fields of a protobuf message (number, bytes); varints are skipped,
/// other wire types fail the test.
fn fields(mut bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        match key & 7 {
            0 => {
                varint(&mut bytes);
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)).expect("length");
                assert!(len <= bytes.len(), "a field runs past the message");
                out.push((key >> 3, bytes[..len].to_vec()));
                bytes = &bytes[len..];
            }
            other => panic!("unexpected wire type {other}"),
        }
    }
    out
}

fn varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().expect("a varint runs past the message");
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("a varint longer than 10 bytes");
}
