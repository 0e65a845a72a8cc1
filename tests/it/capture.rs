//! `--input-pcap` against real captures: the fixtures in `tests/fixtures` (made by
//! `tests/fixtures/make-fixtures.sh` from curl, a raw-socket client and wrk talking to a real
//! nginx, on loopback and across a veth pair with MTU 1500 and offloads off), their nginx access
//! logs and the sidecars holding the exact bytes every client sent; variants of them (gzip'd,
//! pcapng, nanosecond, reordered, duplicated and missing segments, cut mid-record); bad input;
//! and the tcpdump project's capture corpus as a crash test.

use crate::common::*;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fixture: its file stem and the server port nginx listened on.
#[derive(Clone, Copy)]
struct Fixture {
    name: &'static str,
    port: u16,
}

const LOOPBACK: Fixture = Fixture {
    name: "loopback",
    port: 18480,
};
const VETH: Fixture = Fixture {
    name: "veth",
    port: 80,
};
const WRK: Fixture = Fixture {
    name: "wrk",
    port: 18482,
};

fn fixture_path(file: &str) -> PathBuf {
    repo().join("tests/fixtures").join(file)
}

impl Fixture {
    fn pcap(&self) -> PathBuf {
        fixture_path(&format!("{}.pcap", self.name))
    }

    /// `--input-pcap` value with the port.
    fn with_port(&self) -> String {
        format!("{}:{}", self.pcap().display(), self.port)
    }
}

// ---------------------------------------------------------------------------------------------
// What the clients sent and what nginx logged

/// One line of a `*.requests.jsonl` sidecar.
#[derive(Debug, Clone)]
struct Sent {
    case: String,
    method: String,
    uri: String,
    local_port: u16,
    raw: Vec<u8>,
}

fn sidecar(fixture: Fixture) -> Vec<Sent> {
    let path = fixture_path(&format!("{}.requests.jsonl", fixture.name));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v = json::parse(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line:.200}", path.display()));
            Sent {
                case: v.str("case").to_string(),
                method: v.str("method").to_string(),
                uri: v.str("uri").to_string(),
                local_port: v.num("local_port") as u16,
                raw: base64_decode(v.str("raw_b64")),
            }
        })
        .collect()
}

/// One access-log line (`log_format fixture` in make-fixtures.sh).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Logged {
    method: String,
    uri: String,
    status: u16,
    request_length: usize,
    body_bytes_sent: usize,
}

fn access_log(fixture: Fixture) -> Vec<Logged> {
    let path = fixture_path(&format!("{}.access.log", fixture.name));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            // $connection $connection_requests $request_method $request_uri $status
            // $request_length $body_bytes_sent "$http_user_agent" $remote_port
            let f: Vec<&str> = line.splitn(8, ' ').collect();
            Logged {
                method: f[2].to_string(),
                uri: f[3].to_string(),
                status: f[4].parse().unwrap(),
                request_length: f[5].parse().unwrap(),
                body_bytes_sent: f[6].parse().unwrap(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Looking at HTTP messages

fn head_len(payload: &[u8]) -> usize {
    payload
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(payload.len())
}

fn first_line(payload: &[u8]) -> String {
    let end = payload
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(payload.len().min(120));
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// Method and URI of a request.
fn request_line(payload: &[u8]) -> (String, String) {
    let line = first_line(payload);
    let mut parts = line.split(' ');
    (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    )
}

fn status_of(payload: &[u8]) -> u16 {
    first_line(payload)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn has_header(payload: &[u8], name: &str, value: &str) -> bool {
    let head = String::from_utf8_lossy(&payload[..head_len(payload)]).to_ascii_lowercase();
    head.lines().any(|l| {
        l.trim_end()
            == format!(
                "{}: {}",
                name.to_ascii_lowercase(),
                value.to_ascii_lowercase()
            )
    })
}

/// The body of a chunked message, de-chunked (`None` when the framing is broken).
fn dechunk(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..eol])
            .ok()?
            .split(';')
            .next()?
            .trim()
            .to_string();
        let size = usize::from_str_radix(&size_text, 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        if rest.get(size..size + 2)? != b"\r\n" {
            return None;
        }
        rest = &rest[size + 2..];
    }
}

fn meta_field(record: &Record, index: usize) -> i64 {
    String::from_utf8_lossy(&record.meta)
        .trim()
        .split(' ')
        .nth(index)
        .unwrap()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Running shadowtap

/// Runs shadowtap, asserts it exited 0 without a panic, and returns its records and summary.
fn capture(args: &[&str]) -> (Vec<Record>, String) {
    let output = run(args);
    assert_no_crash(&output, &args.join(" "));
    assert_success(&output);
    (decode(&output.stdout), summary(&output))
}

fn assert_no_crash(output: &Output, what: &str) {
    let err = stderr(output);
    assert!(
        output.status.code() != Some(101)
            && output.status.signal().is_none()
            && !err.contains("panicked"),
        "{what}: crashed with {:?}; stderr:\n{err}",
        output.status
    );
}

/// Requests (kind 1) of `records`.
fn requests(records: &[Record]) -> Vec<&Record> {
    records.iter().filter(|r| r.kind() == b'1').collect()
}

/// The requests' payloads, sorted, for multiset comparison.
fn sorted_payloads<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload.clone()).collect();
    v.sort();
    v
}

/// Everything that must hold for a run over a fixture with `--input-raw-track-response`:
/// every request nginx logged appears exactly once, byte for byte as the client sent it, and
/// has exactly one final response with its id and nginx's status and body size.
fn assert_matches_nginx(fixture: Fixture, records: &[Record], summary: &str) {
    let what = fixture.name;
    assert!(
        !summary.contains("dropped"),
        "{what}: messages were dropped: {summary}"
    );
    let sent = sidecar(fixture);
    let logged = access_log(fixture);
    assert_eq!(
        sent.len(),
        logged.len(),
        "{what}: sidecar and access log disagree (fixture broken)"
    );

    // Requests: exactly the sidecar's bytes, each once.
    let reqs = requests(records);
    let mut missing: Vec<String> = Vec::new();
    let mut pool: Vec<&Record> = reqs.clone();
    for s in &sent {
        match pool.iter().position(|r| r.payload == s.raw) {
            Some(i) => {
                pool.remove(i);
            }
            None => {
                let near = reqs
                    .iter()
                    .find(|r| request_line(&r.payload) == (s.method.clone(), s.uri.clone()));
                missing.push(format!(
                    "{} {} {} ({} bytes; captured as {})",
                    s.case,
                    s.method,
                    s.uri,
                    s.raw.len(),
                    near.map(|r| format!("{} bytes", r.payload.len()))
                        .unwrap_or_else(|| "nothing".into())
                ));
            }
        }
    }
    let extra: Vec<String> = pool
        .iter()
        .map(|r| format!("{} ({} bytes)", first_line(&r.payload), r.payload.len()))
        .collect();
    assert!(missing.is_empty() && extra.is_empty(), "{what}: requests not captured exactly:\n  missing/different: {missing:#?}\n  unexpected: {extra:#?}");

    // Ids: unique per request; every response answers a request.
    let mut by_id: HashMap<String, &Record> = HashMap::new();
    for r in &reqs {
        assert!(
            by_id.insert(r.id(), r).is_none(),
            "{what}: id {} used by two requests",
            r.id()
        );
        assert!(
            r.id().len() == 24 && r.id().bytes().all(|b| b.is_ascii_hexdigit()),
            "{what}: bad id {}",
            r.id()
        );
    }
    let mut responses: HashMap<String, Vec<&Record>> = HashMap::new();
    for r in records.iter().filter(|r| r.kind() == b'2') {
        assert!(
            by_id.contains_key(&r.id()),
            "{what}: response {} has no request with its id",
            first_line(&r.payload)
        );
        responses.entry(r.id()).or_default().push(r);
    }
    assert_eq!(
        records.len(),
        records
            .iter()
            .filter(|r| r.kind() == b'1' || r.kind() == b'2')
            .count(),
        "{what}: unexpected kinds"
    );

    // Each request: one final response (interim ones only after Expect: 100-continue);
    // (method, uri, status, request bytes, response body bytes) as nginx logged them.
    let mut seen: Vec<Logged> = Vec::new();
    for (id, request) in &by_id {
        let answers = responses.get(id).cloned().unwrap_or_default();
        let (interim, finals): (Vec<&Record>, Vec<&Record>) = answers
            .iter()
            .partition(|r| (100..200).contains(&status_of(&r.payload)));
        assert_eq!(
            finals.len(),
            1,
            "{what}: {} has {} final responses",
            first_line(&request.payload),
            finals.len()
        );
        if !interim.is_empty() {
            assert!(
                has_header(&request.payload, "Expect", "100-continue"),
                "{what}: interim response to {}",
                first_line(&request.payload)
            );
        }
        let response = finals[0];
        let latency = meta_field(response, 3);
        assert!(
            latency > 0,
            "{what}: latency {latency} for {}",
            first_line(&request.payload)
        );
        assert_eq!(
            meta_field(response, 2) - meta_field(request, 2),
            latency,
            "{what}: latency is not response time - request time ({})",
            first_line(&request.payload)
        );
        // nginx counts interim responses in $body_bytes_sent.
        let interim_bytes: usize = interim.iter().map(|r| r.payload.len()).sum();
        let (method, uri) = request_line(&request.payload);
        seen.push(Logged {
            method,
            uri,
            status: status_of(&response.payload),
            request_length: request.payload.len(),
            body_bytes_sent: response.payload.len() - head_len(&response.payload) + interim_bytes,
        });
    }
    let mut logged_sorted = logged.clone();
    logged_sorted.sort();
    seen.sort();
    assert_eq!(seen, logged_sorted, "{what}: (method, uri, status, request length, response body length) differ from nginx's access log");

    // The large bodies, explicitly.
    let find = |prefix: &str| {
        reqs.iter()
            .find(|r| r.payload.starts_with(prefix.as_bytes()))
            .unwrap_or_else(|| panic!("{what}: no request {prefix}"))
    };
    let put = find("PUT /upload/put-200k.bin ");
    assert_eq!(
        put.payload.len() - head_len(&put.payload),
        204_800,
        "{what}: the 200 KB PUT body is incomplete"
    );
    let chunked = find("POST /upload/chunked-70k.bin ");
    let body = dechunk(&chunked.payload[head_len(&chunked.payload)..])
        .expect("chunked framing of the curl upload");
    assert_eq!(
        body.len(),
        70_000,
        "{what}: the chunked upload is incomplete"
    );
    let raw_chunked = find("POST /upload/raw-chunked ");
    assert!(
        raw_chunked
            .payload
            .ends_with(b"0\r\nX-Trailer: done\r\n\r\n"),
        "{what}: the chunked trailer is missing"
    );
}

fn check_fixture(fixture: Fixture, input: &str) -> Vec<Record> {
    let (records, summary) = capture(&[
        "--input-pcap",
        input,
        "--input-raw-track-response",
        "--output-stdout",
    ]);
    assert_matches_nginx(fixture, &records, &summary);
    records
}

#[test]
fn loopback_pcap_with_port_has_every_request_exactly_once_with_its_response() {
    check_fixture(LOOPBACK, &LOOPBACK.with_port());
}

#[test]
fn loopback_pcap_without_port_infers_direction() {
    let with = check_fixture(LOOPBACK, &LOOPBACK.with_port());
    let without = check_fixture(LOOPBACK, LOOPBACK.pcap().to_str().unwrap());
    assert_eq!(sorted_payloads(&without), sorted_payloads(&with));
}

#[test]
fn veth_pcap_with_port_has_every_request_exactly_once_with_its_response() {
    check_fixture(VETH, &VETH.with_port());
}

#[test]
fn veth_pcap_without_port_infers_direction() {
    check_fixture(VETH, VETH.pcap().to_str().unwrap());
}

#[test]
fn requests_only_without_track_response() {
    let (records, summary) = capture(&["--input-pcap", &LOOPBACK.with_port(), "--output-stdout"]);
    assert!(!summary.contains("dropped"), "{summary}");
    assert!(
        records.iter().all(|r| r.kind() == b'1'),
        "responses without --input-raw-track-response"
    );
    let sent = sidecar(LOOPBACK);
    let mut expected: Vec<Vec<u8>> = sent.iter().map(|s| s.raw.clone()).collect();
    expected.sort();
    assert_eq!(sorted_payloads(&records), expected);
}

#[test]
fn wrk_pcap_has_every_logged_request_once_with_its_response() {
    let logged = access_log(WRK);
    for input in [WRK.with_port(), WRK.pcap().to_str().unwrap().to_string()] {
        let (records, summary) = capture(&[
            "--input-pcap",
            &input,
            "--input-raw-track-response",
            "--output-stdout",
        ]);
        assert!(!summary.contains("dropped"), "{summary}");
        let reqs = requests(&records);
        assert_eq!(reqs.len(), logged.len(), "{input}: requests");
        assert!(reqs.iter().all(|r| r.payload
            == format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", WRK.port).as_bytes()));
        let mut answered: HashMap<String, usize> = HashMap::new();
        for r in records.iter().filter(|r| r.kind() == b'2') {
            assert_eq!(status_of(&r.payload), 200);
            assert!(
                r.payload.ends_with(b"\r\n\r\nhello from nginx\n"),
                "{}",
                r.payload_text()
            );
            *answered.entry(r.id()).or_default() += 1;
        }
        for r in &reqs {
            assert_eq!(
                answered.get(&r.id()),
                Some(&1),
                "{input}: request {} has no single response",
                r.id()
            );
        }
        assert_eq!(answered.len(), reqs.len());
    }
}

#[test]
fn bpf_filter_selects_one_connection() {
    let sent = sidecar(LOOPBACK);
    let port = sent
        .iter()
        .find(|s| s.case == "raw-pipelined")
        .unwrap()
        .local_port;
    let filter = format!("tcp port {port}");
    let (records, summary) = capture(&[
        "--input-pcap",
        &LOOPBACK.with_port(),
        "--input-pcap-bpf-filter",
        &filter,
        "--input-raw-track-response",
        "--output-stdout",
    ]);
    assert!(!summary.contains("dropped"), "{summary}");
    let mut expected: Vec<Vec<u8>> = sent
        .iter()
        .filter(|s| s.local_port == port)
        .map(|s| s.raw.clone())
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 6);
    assert!(
        sorted_payloads(requests(&records)) == expected,
        "the filter let through other requests or lost some"
    );
    assert_eq!(
        records.len(),
        12,
        "six pipelined requests and their responses"
    );
    // pipelined responses are paired in order
    let ids: Vec<String> = requests(&records).iter().map(|r| r.id()).collect();
    for r in records.iter().filter(|r| r.kind() == b'2') {
        assert!(ids.contains(&r.id()));
    }
}

#[test]
fn speed_1x_replays_with_the_original_timing() {
    // loopback.pcap spans ~0.34 s of capture time
    let pcap = Pcap::read(&LOOPBACK.pcap());
    let ts = |h: &[u8]| {
        u32::from_le_bytes(h[0..4].try_into().unwrap()) as f64
            + u32::from_le_bytes(h[4..8].try_into().unwrap()) as f64 / 1e6
    };
    let span = ts(&pcap.records.last().unwrap().0) - ts(&pcap.records[0].0);
    let (fast, _) = capture(&["--input-pcap", &LOOPBACK.with_port(), "--output-stdout"]);
    for (speed, factor) in [("1x", 1.0), ("50%", 2.0)] {
        let started = Instant::now();
        let (paced, _) = capture(&[
            "--input-pcap",
            &LOOPBACK.with_port(),
            "--input-pcap-speed",
            speed,
            "--output-stdout",
        ]);
        let took = started.elapsed().as_secs_f64();
        assert!(
            took >= span * factor * 0.95,
            "--input-pcap-speed {speed}: {took:.3} s for {span:.3} s of capture"
        );
        assert_eq!(
            paced, fast,
            "--input-pcap-speed {speed} changed the messages"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// JSON records

#[test]
fn json_records_have_the_structured_fields() {
    let output = run(&[
        "--input-pcap",
        &LOOPBACK.with_port(),
        "--input-raw-track-response",
        "--output-stdout",
        "--output-stdout-format",
        "json",
    ]);
    assert_success(&output);
    let text = String::from_utf8(output.stdout.clone()).expect("JSON output is UTF-8");
    let values: Vec<json::Value> = text
        .lines()
        .map(|l| json::parse(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let sent = sidecar(LOOPBACK);
    let reqs: Vec<&json::Value> = values
        .iter()
        .filter(|v| v.str("kind") == "request")
        .collect();
    let resps: Vec<&json::Value> = values
        .iter()
        .filter(|v| v.str("kind") == "response")
        .collect();
    assert_eq!(reqs.len(), sent.len());
    assert_eq!(
        resps.len(),
        sent.len() + 1,
        "one response per request plus the 100 Continue"
    );

    // every request: method/uri/host/addresses as sent
    let mut expected: Vec<(String, String)> = sent
        .iter()
        .map(|s| (s.method.clone(), s.uri.clone()))
        .collect();
    let mut got: Vec<(String, String)> = reqs
        .iter()
        .map(|v| (v.str("method").to_string(), v.str("uri").to_string()))
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    for v in &reqs {
        assert_eq!(v.num("ip_version"), 4.0);
        assert_eq!(v.str("src_ip"), "127.0.0.1");
        assert_eq!(v.str("dst_ip"), "127.0.0.1");
        assert_eq!(v.num("dst_port"), f64::from(LOOPBACK.port));
        assert!(
            v.str("time").ends_with('Z') && v.str("time").contains('T'),
            "time {}",
            v.str("time")
        );
        assert_eq!(v.str("id").len(), 24);
        let sent_here: Vec<&Sent> = sent
            .iter()
            .filter(|s| s.local_port as f64 == v.num("src_port"))
            .collect();
        assert!(
            !sent_here.is_empty(),
            "src_port {} is no client's port",
            v.num("src_port")
        );
        if v.str("uri") != "/static/small.txt?v=10" {
            assert_eq!(v.str("host"), "127.0.0.1:18480", "host of {}", v.str("uri"));
        }
    }
    for v in &resps {
        assert_eq!(v.num("src_port"), f64::from(LOOPBACK.port));
        assert!(v.num("status_code") >= 100.0);
        assert!(v.num("latency_ns") > 0.0);
        assert!(
            reqs.iter().any(|r| r.str("id") == v.str("id")),
            "response id {} has no request",
            v.str("id")
        );
    }

    // the Firefox request and its response
    let firefox = reqs
        .iter()
        .find(|v| v.str("uri") == "/?from=browser")
        .expect("browser request");
    assert_eq!(
        firefox.str("user_agent"),
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    );
    assert_eq!(
        firefox.str("referer"),
        "http://127.0.0.1:18480/static/small.txt"
    );
    assert_eq!(firefox.str("browser_name"), "Firefox");
    assert!(
        firefox.str("browser_version").starts_with("128"),
        "{}",
        firefox.str("browser_version")
    );
    assert_eq!(firefox.str("os_name"), "Linux");
    assert_eq!(firefox.str("device_type"), "pc");
    assert_eq!(
        firefox.get("headers").map(|h| h.str("accept-language")),
        Some("en-US,en;q=0.5")
    );
    let answer = resps
        .iter()
        .find(|v| v.str("id") == firefox.str("id"))
        .expect("browser response");
    assert_eq!(answer.num("status_code"), 200.0);
    assert_eq!(answer.str("content_type"), "text/plain");
    assert_eq!(answer.num("content_length"), 17.0);
    assert!(answer.str("server").starts_with("nginx"));

    // the Chrome-on-Windows request
    let chrome = reqs
        .iter()
        .find(|v| v.str("uri") == "/static/small.txt?from=chrome")
        .expect("chrome request");
    assert_eq!(chrome.str("browser_name"), "Chrome");
    assert!(chrome.str("browser_version").starts_with("126"));
    assert!(
        chrome.str("os_name").starts_with("Windows"),
        "{}",
        chrome.str("os_name")
    );
    assert_eq!(
        chrome.get("headers").map(|h| h.str("cookie")),
        Some("session=abc123; theme=dark")
    );

    // the 200 KB PUT: content_length; the gzip'd response: content_encoding
    let put = reqs
        .iter()
        .find(|v| v.str("uri") == "/upload/put-200k.bin")
        .unwrap();
    assert_eq!(put.num("content_length"), 204_800.0);
    let gz = reqs
        .iter()
        .find(|v| v.str("uri") == "/static/big.txt?gz=1")
        .unwrap();
    let gz_answer = resps.iter().find(|v| v.str("id") == gz.str("id")).unwrap();
    assert_eq!(gz_answer.str("content_encoding"), "gzip");
}

// ---------------------------------------------------------------------------------------------
// The same capture in other file formats

fn tool_available(tool: &str) -> bool {
    Command::new(tool)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Asserts two `.gor` outputs are identical, describing the first difference briefly.
fn assert_same_gor(got: &[u8], expected: &[u8], what: &str) {
    if got == expected {
        return;
    }
    let (a, b) = (decode(got), decode(expected));
    let first = a.iter().zip(&b).position(|(x, y)| x != y);
    let detail = match first {
        Some(i) => format!(
            "record {i}: got {:?} ({} bytes: {}), expected {:?} ({} bytes: {})",
            String::from_utf8_lossy(&a[i].meta).trim(),
            a[i].payload.len(),
            first_line(&a[i].payload),
            String::from_utf8_lossy(&b[i].meta).trim(),
            b[i].payload.len(),
            first_line(&b[i].payload)
        ),
        None => format!("{} records, expected {}", a.len(), b.len()),
    };
    panic!("{what}: output differs from the plain pcap's: {detail}");
}

/// The `.gor` output for `input` (with responses).
fn gor_of(input: &str) -> Vec<u8> {
    let output = run(&[
        "--input-pcap",
        input,
        "--input-raw-track-response",
        "--output-stdout",
    ]);
    assert_no_crash(&output, input);
    assert_success(&output);
    assert!(
        !summary(&output).contains("dropped"),
        "{input}: {}",
        summary(&output)
    );
    output.stdout
}

#[test]
fn gzipped_pcap_gives_the_same_messages() {
    let dir = tempdir();
    let gz = dir.path().join("loopback.pcap.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &std::fs::read(LOOPBACK.pcap()).unwrap()).unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    assert_same_gor(
        &gor_of(&format!("{}:18480", gz.display())),
        &gor_of(&LOOPBACK.with_port()),
        "gzip'd pcap",
    );
}

/// `editcap -F FORMAT` of a fixture (editcap comes with Debian's tshark package).
fn editcap(fixture: Fixture, format: &str, dir: &Path) -> PathBuf {
    assert!(
        tool_available("editcap"),
        "editcap is not installed (apt-get install -y tshark)"
    );
    let out = dir.join(format!("{}.{format}", fixture.name));
    let status = Command::new("editcap")
        .args(["-F", format])
        .arg(fixture.pcap())
        .arg(&out)
        .status()
        .expect("editcap");
    assert!(status.success(), "editcap -F {format} failed");
    out
}

#[test]
fn pcapng_gives_the_same_messages() {
    let dir = tempdir();
    for fixture in [LOOPBACK, VETH] {
        let ng = editcap(fixture, "pcapng", dir.path());
        assert_same_gor(
            &gor_of(&format!("{}:{}", ng.display(), fixture.port)),
            &gor_of(&fixture.with_port()),
            &format!("{} as pcapng", fixture.name),
        );
    }
}

#[test]
fn nanosecond_pcap_gives_the_same_messages() {
    let dir = tempdir();
    let ns = editcap(LOOPBACK, "nsecpcap", dir.path());
    assert_eq!(
        &std::fs::read(&ns).unwrap()[..4],
        &[0x4d, 0x3c, 0xb2, 0xa1],
        "editcap wrote a nanosecond pcap"
    );
    assert_same_gor(
        &gor_of(&format!("{}:18480", ns.display())),
        &gor_of(&LOOPBACK.with_port()),
        "nanosecond pcap",
    );
}

#[test]
fn gzipped_pcapng_gives_the_same_messages() {
    let dir = tempdir();
    let ng = editcap(VETH, "pcapng", dir.path());
    let gz = dir.path().join("veth.pcapng.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, &std::fs::read(&ng).unwrap()).unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    assert_same_gor(
        &gor_of(&format!("{}:80", gz.display())),
        &gor_of(&VETH.with_port()),
        "gzip'd pcapng",
    );
}

// ---------------------------------------------------------------------------------------------
// Edited captures: reordered, duplicated, missing segments

/// One pcap record: its 16-byte record header and its packet bytes.
type PcapRecord = (Vec<u8>, Vec<u8>);

/// A classic little-endian pcap, split into records.
struct Pcap {
    header: Vec<u8>,
    /// (16-byte record header, frame)
    records: Vec<PcapRecord>,
}

impl Pcap {
    fn read(path: &Path) -> Pcap {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            &bytes[..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "{}: not a little-endian µs pcap",
            path.display()
        );
        let mut records = Vec::new();
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            records.push((
                bytes[at..at + 16].to_vec(),
                bytes[at + 16..at + 16 + caplen].to_vec(),
            ));
            at += 16 + caplen;
        }
        Pcap {
            header: bytes[..24].to_vec(),
            records,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.header.clone();
        for (h, d) in &self.records {
            out.extend_from_slice(h);
            out.extend_from_slice(d);
        }
        out
    }

    /// Byte offset of record `index` in the file.
    fn offset(&self, index: usize) -> usize {
        24 + self.records[..index]
            .iter()
            .map(|(h, d)| h.len() + d.len())
            .sum::<usize>()
    }
}

/// (source port, destination port, TCP payload length) of an Ethernet/IPv4/TCP frame.
fn tcp_ports(frame: &[u8]) -> Option<(u16, u16, usize)> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let tcp = 14 + ihl;
    let data_offset = usize::from(frame.get(tcp + 12)? >> 4) * 4;
    Some((
        u16::from_be_bytes([frame[tcp], frame[tcp + 1]]),
        u16::from_be_bytes([frame[tcp + 2], frame[tcp + 3]]),
        total.checked_sub(ihl + data_offset)?,
    ))
}

/// Indexes of the records carrying client data on the connection from `client_port`.
fn client_data_records(pcap: &Pcap, client_port: u16) -> Vec<usize> {
    (0..pcap.records.len())
        .filter(|&i| matches!(tcp_ports(&pcap.records[i].1), Some((sp, _, len)) if sp == client_port && len > 0))
        .collect()
}

fn put_200k_port(fixture: Fixture) -> u16 {
    sidecar(fixture)
        .iter()
        .find(|s| s.case == "put-200k")
        .unwrap()
        .local_port
}

#[test]
fn reordered_and_duplicated_segments_give_the_same_messages() {
    let mut pcap = Pcap::read(&VETH.pcap());
    let original = pcap.records.len();
    // Swap neighbouring data segments of every flow (both directions), then duplicate every
    // fifth data segment right after itself and every seventh three records later.
    let data: Vec<usize> = (0..pcap.records.len())
        .filter(|&i| tcp_ports(&pcap.records[i].1).is_some_and(|p| p.2 > 0))
        .collect();
    let mut swapped = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        let (a, b) = (data[i], data[i + 1]);
        let (pa, pb) = (
            tcp_ports(&pcap.records[a].1).unwrap(),
            tcp_ports(&pcap.records[b].1).unwrap(),
        );
        if (pa.0, pa.1) == (pb.0, pb.1) {
            let frame_a = pcap.records[a].1.clone();
            pcap.records[a].1 = pcap.records[b].1.clone();
            pcap.records[b].1 = frame_a;
            // keep the record headers (times, lengths) consistent with their frames
            let (ha, hb) = (pcap.records[a].0.clone(), pcap.records[b].0.clone());
            pcap.records[a].0[8..16].copy_from_slice(&hb[8..16]);
            pcap.records[b].0[8..16].copy_from_slice(&ha[8..16]);
            swapped += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut edited = Vec::new();
    let mut pending: Vec<(usize, PcapRecord)> = Vec::new();
    for (n, record) in pcap.records.iter().enumerate() {
        edited.push(record.clone());
        let is_data = tcp_ports(&record.1).is_some_and(|p| p.2 > 0);
        if is_data && n % 5 == 0 {
            edited.push(record.clone());
        }
        if is_data && n % 7 == 0 {
            pending.push((n + 3, record.clone()));
        }
        pending.retain(|(due, r)| {
            if *due == n {
                edited.push(r.clone());
                false
            } else {
                true
            }
        });
    }
    pcap.records = edited;
    assert!(
        swapped > 50 && pcap.records.len() > original + 50,
        "the edit changed too little: {swapped} swaps, {} → {}",
        original,
        pcap.records.len()
    );
    let dir = tempdir();
    let path = dir.path().join("veth-reordered.pcap");
    std::fs::write(&path, pcap.bytes()).unwrap();

    let records = check_fixture(VETH, &format!("{}:80", path.display()));
    let (reference, _) = capture(&[
        "--input-pcap",
        &VETH.with_port(),
        "--input-raw-track-response",
        "--output-stdout",
    ]);
    let key = |r: &Record| (r.kind(), r.id(), r.payload.clone());
    let mut a: Vec<_> = records.iter().map(key).collect();
    let mut b: Vec<_> = reference.iter().map(key).collect();
    a.sort();
    b.sort();
    assert!(a == b, "reordering/duplication changed ids or payloads");
}

#[test]
fn a_missing_segment_drops_only_its_message_as_incomplete() {
    let mut pcap = Pcap::read(&VETH.pcap());
    let data = client_data_records(&pcap, put_200k_port(VETH));
    assert!(data.len() > 100, "the PUT spans {} segments", data.len());
    pcap.records.remove(data[60]);
    let dir = tempdir();
    let path = dir.path().join("veth-hole.pcap");
    std::fs::write(&path, pcap.bytes()).unwrap();
    let input = format!("{}:80", path.display());

    let (records, summary) = capture(&[
        "--input-pcap",
        &input,
        "--input-raw-track-response",
        "--output-stdout",
    ]);
    assert!(
        summary.contains("incomplete 1"),
        "the PUT is not counted incomplete: {summary}"
    );
    let sent = sidecar(VETH);
    let reqs = requests(&records);
    assert!(
        !reqs
            .iter()
            .any(|r| r.payload.starts_with(b"PUT /upload/put-200k.bin ")),
        "the PUT with a hole was emitted as complete"
    );
    let mut expected: Vec<Vec<u8>> = sent
        .iter()
        .filter(|s| s.case != "put-200k")
        .map(|s| s.raw.clone())
        .collect();
    expected.sort();
    assert!(
        sorted_payloads(reqs.iter().copied()) == expected,
        "the other requests are not captured exactly once each"
    );

    // With --input-raw-allow-incomplete it is emitted, shorter than sent.
    let (records, _) = capture(&[
        "--input-pcap",
        &input,
        "--input-raw-allow-incomplete",
        "--output-stdout",
    ]);
    let put = requests(&records)
        .into_iter()
        .find(|r| r.payload.starts_with(b"PUT /upload/put-200k.bin "))
        .map(|r| r.payload.clone());
    let full = &sent.iter().find(|s| s.case == "put-200k").unwrap().raw;
    let put = put.expect("the incomplete PUT is emitted with --input-raw-allow-incomplete");
    assert!(
        put.len() < full.len() && full.starts_with(&put[..head_len(&put)]),
        "incomplete PUT: {} of {} bytes",
        put.len(),
        full.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input

/// Runs shadowtap on bad input: it must not crash, and must exit 0, 1 or (usage) 2.
fn run_bad(args: &[&str]) -> Output {
    let output = run(args);
    assert_no_crash(&output, &args.join(" "));
    assert!(
        matches!(output.status.code(), Some(0..=2)),
        "{}: status {:?}\n{}",
        args.join(" "),
        output.status,
        stderr(&output)
    );
    output
}

#[test]
fn pcap_cut_mid_record_reports_file_and_packet_and_keeps_what_came_before() {
    let pcap = Pcap::read(&VETH.pcap());
    let data = client_data_records(&pcap, put_200k_port(VETH));
    let cut_record = data[60];
    let cut_at = pcap.offset(cut_record) + 16 + 700;
    let dir = tempdir();
    let path = dir.path().join("veth-cut.pcap");
    std::fs::write(&path, &pcap.bytes()[..cut_at]).unwrap();
    let input = format!("{}:80", path.display());
    let output = run_bad(&[
        "--input-pcap",
        &input,
        "--input-raw-track-response",
        "--output-stdout",
    ]);
    let err = stderr(&output);
    let packet = format!("packet {}", cut_record + 1);
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains(&packet),
        "the message names neither the file nor {packet}:\n{err}"
    );

    // Every request before the cut is emitted exactly as sent; the cut PUT is not.
    let sent = sidecar(VETH);
    let records = decode(&output.stdout);
    let reqs = requests(&records);
    let before: Vec<&Sent> = sent.iter().take_while(|s| s.case != "put-200k").collect();
    assert!(before.len() >= 3);
    let mut expected: Vec<Vec<u8>> = before.iter().map(|s| s.raw.clone()).collect();
    expected.sort();
    assert!(
        sorted_payloads(reqs.iter().copied()) == expected,
        "not exactly the requests before the cut: {:?}",
        reqs.iter()
            .map(|r| first_line(&r.payload))
            .collect::<Vec<_>>()
    );
    assert!(
        summary(&output).contains("dropped"),
        "the cut is not in the ledger: {}",
        summary(&output)
    );

    // A cut inside a record header, and inside the file header.
    for cut in [pcap.offset(cut_record) + 7, 10] {
        std::fs::write(&path, &pcap.bytes()[..cut]).unwrap();
        let output = run_bad(&["--input-pcap", &input, "--output-stdout"]);
        assert!(
            stderr(&output).contains(path.to_str().unwrap()),
            "cut at {cut}: the file is not named:\n{}",
            stderr(&output)
        );
    }
}

#[test]
fn wrong_magic_is_rejected_naming_the_file() {
    let dir = tempdir();
    let path = dir.path().join("random.pcap");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let output = run_bad(&["--input-pcap", path.to_str().unwrap(), "--output-null"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(path.to_str().unwrap()),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("not a pcap"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn empty_file_is_reported_and_ends_cleanly() {
    let dir = tempdir();
    let path = dir.path().join("empty.pcap");
    std::fs::write(&path, b"").unwrap();
    let output = run_bad(&[
        "--input-pcap",
        path.to_str().unwrap(),
        "--input-pcap",
        &LOOPBACK.with_port(),
        "--output-stdout",
    ]);
    assert_success(&output);
    assert!(
        stderr(&output).contains(&format!("{}: file is empty", path.display())),
        "{}",
        stderr(&output)
    );
    // the other file is still read completely
    assert_eq!(
        requests(&decode(&output.stdout)).len(),
        sidecar(LOOPBACK).len()
    );
}

#[test]
fn unknown_link_type_is_skipped_with_a_reason() {
    // The loopback capture relabelled as LINKTYPE_USER0 (147).
    let dir = tempdir();
    let mut bytes = std::fs::read(LOOPBACK.pcap()).unwrap();
    bytes[20..24].copy_from_slice(&147u32.to_le_bytes());
    let path = dir.path().join("user0.pcap");
    std::fs::write(&path, bytes).unwrap();
    let output = run_bad(&["--input-pcap", path.to_str().unwrap(), "--output-stdout"]);
    assert!(output.stdout.is_empty());
    let err = stderr(&output);
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("link type 147"),
        "{err}"
    );
    assert!(
        summary(&output).contains("unsupported link type 267"),
        "{}",
        summary(&output)
    );

    // Cisco HDLC (104) from the tcpdump corpus is decoded now: its 24 SLARP and 4 CDP frames
    // are not IP and its 10 ICMP packets not TCP, as tshark reads them
    let hdlc = corpus_dir().join("HDLC.pcap");
    if hdlc.exists() {
        let output = run(&["--input-pcap", hdlc.to_str().unwrap(), "--output-null"]);
        assert!(
            summary(&output).contains("dropped 38 (not ip 28, not tcp 10)"),
            "{}",
            summary(&output)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The tcpdump corpus

/// tcpdump's test captures: `$SHADOWTAP_CORPUS/tcpdump-tests` (set by `.ci/run`), else
/// `../shared/corpus/tcpdump-tests` beside the repository.
fn corpus_dir() -> PathBuf {
    std::env::var_os("SHADOWTAP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/corpus"))
        .join("tcpdump-tests")
}

/// Runs shadowtap over `files` in one process (several `--input-pcap`), killed after `limit`.
fn run_corpus_group(files: &[PathBuf], limit: Duration) -> (Output, Duration) {
    let mut command = command();
    for f in files {
        command.arg("--input-pcap").arg(f);
    }
    command
        .args(["--output-null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let output = wait_output(command.spawn().expect("start shadowtap"), limit);
    (output, started.elapsed())
}

#[test]
fn tcpdump_corpus_never_crashes() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        let what = format!("no capture corpus at {}", dir.display());
        prerequisite_missing(
            &what,
            "set SHADOWTAP_CORPUS to the folder holding tcpdump-tests/",
        );
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.to_string_lossy().contains(':'))
        .collect();
    files.sort();
    assert!(
        files.len() > 100,
        "only {} files in {}",
        files.len(),
        dir.display()
    );
    let started = Instant::now();
    let groups: Vec<Vec<PathBuf>> = files.chunks(60).map(|c| c.to_vec()).collect();
    let groups = std::sync::Mutex::new(groups.into_iter());
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    let slowest = std::sync::Mutex::new((Duration::ZERO, String::new()));
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some(group) = groups.lock().unwrap().next() else {
                    break;
                };
                let (output, took) = run_corpus_group(&group, Duration::from_secs(60));
                let crashed = |o: &Output| {
                    o.status.code() == Some(101)
                        || o.status.signal().is_some()
                        || stderr(o).contains("panicked")
                };
                // Exit 2: a file was rejected at start-up (not a capture file); run them one by one.
                let singles: Vec<(PathBuf, Output, Duration)> = if output.status.code() == Some(2)
                    && !crashed(&output)
                {
                    group
                        .iter()
                        .map(|f| {
                            let (o, t) =
                                run_corpus_group(std::slice::from_ref(f), Duration::from_secs(20));
                            (f.clone(), o, t)
                        })
                        .collect()
                } else {
                    vec![(
                        PathBuf::from(format!("{} files from {}", group.len(), group[0].display())),
                        output,
                        took,
                    )]
                };
                for (what, o, t) in singles {
                    let mut slow = slowest.lock().unwrap();
                    if t > slow.0 {
                        *slow = (t, what.display().to_string());
                    }
                    let code = o.status.code();
                    let ok = !crashed(&o) && matches!(code, Some(0 | 1))
                        || code == Some(2) && stderr(&o).contains(&*what.to_string_lossy());
                    if !ok {
                        failures.lock().unwrap().push(format!(
                            "{}: {:?}\n{}",
                            what.display(),
                            o.status,
                            stderr(&o)
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let (slow_time, slow_what) = slowest.into_inner().unwrap();
    eprintln!(
        "corpus: {} files in {:?}; slowest process {:?} ({slow_what})",
        files.len(),
        started.elapsed(),
        slow_time
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the corpus took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Small decoders (the test crate has no JSON or base64 dependency)

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 character {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// A minimal JSON reader, enough for the sidecars and `--output-stdout-format json`.
mod json {
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Value>),
        Obj(BTreeMap<String, Value>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Obj(map) => map.get(key),
                _ => None,
            }
        }

        /// The string at `key` ("" when absent or not a string).
        pub fn str(&self, key: &str) -> &str {
            match self.get(key) {
                Some(Value::Str(s)) => s,
                _ => "",
            }
        }

        /// The number at `key` (NaN when absent).
        pub fn num(&self, key: &str) -> f64 {
            match self.get(key) {
                Some(Value::Num(n)) => *n,
                _ => f64::NAN,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) -> Result<(), String> {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", c as char, self.i))
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut map = BTreeMap::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Obj(map));
                    }
                    loop {
                        self.ws();
                        let key = self.string()?;
                        self.eat(b':')?;
                        let value = self.value()?;
                        map.insert(key, value);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Obj(map));
                            }
                            _ => return Err(format!("expected , or }} at {}", self.i)),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Arr(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Arr(items));
                            }
                            _ => return Err(format!("expected , or ] at {}", self.i)),
                        }
                    }
                }
                Some(b'"') => Ok(Value::Str(self.string()?)),
                Some(b't') if self.s[self.i..].starts_with(b"true") => {
                    self.i += 4;
                    Ok(Value::Bool(true))
                }
                Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                    self.i += 5;
                    Ok(Value::Bool(false))
                }
                Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                    self.i += 4;
                    Ok(Value::Null)
                }
                Some(_) => {
                    let start = self.i;
                    while self.i < self.s.len()
                        && matches!(
                            self.s[self.i],
                            b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                        )
                    {
                        self.i += 1;
                    }
                    std::str::from_utf8(&self.s[start..self.i])
                        .unwrap()
                        .parse()
                        .map(Value::Num)
                        .map_err(|_| format!("bad value at {start}"))
                }
                None => Err("unexpected end".into()),
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
            self.i += 4;
            u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16)
                .map_err(|e| e.to_string())
        }

        fn string(&mut self) -> Result<String, String> {
            self.eat(b'"')?;
            let mut out = String::new();
            loop {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != b'"' && self.s[self.i] != b'\\' {
                    self.i += 1;
                }
                out.push_str(
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?,
                );
                match self.s.get(self.i) {
                    Some(b'"') => {
                        self.i += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        let c = *self.s.get(self.i + 1).ok_or("unterminated escape")?;
                        self.i += 2;
                        match c {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let mut code = self.hex4()?;
                                if (0xD800..0xDC00).contains(&code)
                                    && self.s[self.i..].starts_with(b"\\u")
                                {
                                    self.i += 2;
                                    let low = self.hex4()?;
                                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                }
                                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                            }
                            _ => return Err(format!("bad escape at {}", self.i)),
                        }
                    }
                    _ => return Err("unterminated string".into()),
                }
            }
        }
    }

    #[test]
    fn parses_what_the_tests_need() {
        let v = parse(r#"{"a": [1, -2.5e3, true, null], "b": "x\"\u00e9\ud83d\ude00", "c": {}}"#)
            .unwrap();
        assert_eq!(v.str("b"), "x\"é😀");
        assert_eq!(
            v.get("a"),
            Some(&Value::Arr(vec![
                Value::Num(1.0),
                Value::Num(-2500.0),
                Value::Bool(true),
                Value::Null
            ]))
        );
    }
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("R0VUIC8="), b"GET /");
    assert_eq!(base64_decode("YWI="), b"ab");
    assert_eq!(base64_decode("YWJj"), b"abc");
}

// Lengths a capture file claims

/// A classic pcap header (little-endian, microseconds, Ethernet) whose snapshot length and one
/// record both claim `caplen` bytes, followed by `tail` bytes of packet.
fn pcap_claiming(caplen: u32, tail: usize) -> Vec<u8> {
    let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&caplen.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes());
    for word in [1u32, 0, caplen, caplen] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    file.extend(std::iter::repeat_n(0x41, tail));
    file
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_record_claiming_2_gib_allocates_nothing_and_is_named() {
    let dir = tempdir();
    let claim = 2u32 << 30;
    let gz = dir.path().join("claims.pcap.gz");
    std::fs::write(&gz, gzip(&pcap_claiming(claim, 5))).unwrap();
    assert!(std::fs::metadata(&gz).unwrap().len() < 100);
    let plain = dir.path().join("claims.pcap");
    std::fs::write(&plain, pcap_claiming(claim, 5)).unwrap();
    for (file, why) in [
        (&gz, "over the 256 KiB cap on a streamed record"),
        (&plain, "the file ends inside the packet"),
    ] {
        let input = format!("{}:80", path_str(file));
        let output =
            run_with_address_space_limit(1 << 30, &["--input-pcap", &input, "--output-null"]);
        let err = stderr(&output);
        assert!(output.status.code().is_some(), "killed by a signal: {err}");
        assert!(err.contains("packet 1") && err.contains(why), "{err}");
        assert!(err.contains(path_str(file)), "names the file: {err}");
        assert_eq!(
            summary_counter(&err, "input-pcap", "format error"),
            1,
            "{err}"
        );
    }
}
