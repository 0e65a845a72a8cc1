//! `--input-pcap` over the recovery captures in `tests/fixtures/recovery` (made by
//! `make-recovery.py`: curl or a raw-socket client against a raw-socket server that sends
//! malformed responses, on loopback; two of them edited with `editcap` to cut a hole in a body
//! and to remove a whole response from a keep-alive connection). What a tolerant reader must
//! deliver is in `expected.json`, written by the script from the bytes it sent (never from
//! shadowtap): every request exactly once, every recoverable response byte for byte with the id
//! of the request it answers, and a `recovered: <kind>` figure in the input's ledger.

use crate::common::*;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

fn dir() -> PathBuf {
    repo().join("tests/fixtures/recovery")
}

/// Text in `expected.json` is bytes as Latin-1: one char per byte.
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("expected.json text is Latin-1"))
        .collect()
}

/// A hole cut into a response: the bytes before it, where it is, and the full length sent.
#[derive(Debug)]
struct Hole {
    prefix: Vec<u8>,
    /// The bytes the capture holds after the hole.
    after: Vec<u8>,
    size: usize,
}

/// One request and what a tolerant reader delivers as its response (`None`: unanswered).
#[derive(Debug)]
struct Exchange {
    path: String,
    request: Vec<u8>,
    response: Option<Vec<u8>>,
    hole: Option<Hole>,
}

/// One capture of `expected.json`.
#[derive(Debug)]
struct Case {
    name: String,
    port: u64,
    kind: String,
    exchanges: Vec<Exchange>,
}

fn expected() -> Value {
    let path = dir().join("expected.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json is JSON")
}

fn case(name: &str) -> Case {
    let all = expected();
    let c = all["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name} in expected.json"));
    let text = |v: &Value| latin1(v.as_str().expect("a string"));
    Case {
        name: name.to_string(),
        port: c["port"].as_u64().expect("port"),
        kind: c["kind"].as_str().expect("kind").to_string(),
        exchanges: c["exchanges"]
            .as_array()
            .expect("exchanges")
            .iter()
            .map(|e| Exchange {
                path: e["path"].as_str().expect("path").to_string(),
                request: text(&e["request"]),
                response: e["response"].as_str().map(latin1),
                hole: e.get("incomplete").map(|h| {
                    let sent = text(&e["sent"]);
                    let at = h["hole_offset"].as_u64().expect("hole_offset") as usize;
                    let size = h["hole_size"].as_u64().expect("hole_size") as usize;
                    assert_eq!(
                        sent.len(),
                        h["full_length"].as_u64().expect("full_length") as usize
                    );
                    Hole {
                        prefix: text(&h["prefix"]),
                        after: sent[at + size..].to_vec(),
                        size,
                    }
                }),
            })
            .collect(),
    }
}

/// What one run printed: its records and its JSON exit summary.
struct Run {
    records: Vec<Record>,
    summary: Value,
    stderr: String,
}

impl Run {
    /// The input-pcap plugin's entry in the summary.
    fn input(&self) -> &Value {
        self.summary["plugins"]
            .as_array()
            .expect("plugins")
            .iter()
            .find(|p| {
                p["label"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("input-pcap"))
            })
            .unwrap_or_else(|| panic!("no input-pcap in the summary: {}", self.summary))
    }

    /// `extra["recovered: KIND"]` of the input (0 when absent).
    fn recovered(&self, kind: &str) -> u64 {
        self.input()["extra"][format!("recovered: {kind}")]
            .as_u64()
            .unwrap_or(0)
    }

    /// `dropped[reason]` of the input (0 when absent).
    fn dropped(&self, reason: &str) -> u64 {
        self.input()["dropped"][reason].as_u64().unwrap_or(0)
    }

    fn of_kind(&self, kind: u8) -> Vec<&Record> {
        self.records.iter().filter(|r| r.kind() == kind).collect()
    }
}

/// Runs shadowtap over the case's pcap (with the server port) and `extra` flags, through
/// [`command`]; stderr goes to a file so that the JSON summary can be read here (and its ledger
/// is checked here, as [`wait_output`] does for piped stderr).
fn run_case(case: &Case, extra: &[&str]) -> Run {
    let input = format!(
        "{}:{}",
        dir().join(format!("{}.pcap", case.name)).display(),
        case.port
    );
    let tmp = tempdir();
    let err_path = tmp.path().join("stderr");
    let err_file = std::fs::File::create(&err_path).expect("stderr file");
    let mut command = command();
    command
        .args(["--input-pcap", &input, "--output-stdout"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err_file);
    let child = command.spawn().expect("start shadowtap");
    let output = wait_output(child, Duration::from_secs(60));
    let stderr = std::fs::read_to_string(&err_path).expect("read stderr");
    assert!(
        output.status.code() != Some(101)
            && output.status.signal().is_none()
            && !stderr.contains("panicked"),
        "{}: crashed with {:?}; stderr:\n{stderr}",
        case.name,
        output.status
    );
    assert!(
        output.status.success(),
        "{}: status {:?}; stderr:\n{stderr}",
        case.name,
        output.status
    );
    let json = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"event\":\"summary\""))
        .unwrap_or_else(|| panic!("{}: no JSON summary; stderr:\n{stderr}", case.name));
    shadowtap_api::testkit::assert_ledger_balances(json);
    Run {
        records: decode(&output.stdout),
        summary: serde_json::from_str(json).expect("summary JSON"),
        stderr,
    }
}

fn shown(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// The ids of the requests whose payload is exactly `request`.
fn ids_of(run: &Run, request: &[u8]) -> Vec<String> {
    run.of_kind(b'1')
        .into_iter()
        .filter(|r| r.payload == request)
        .map(Record::id)
        .collect()
}

/// Every request exactly once, byte for byte; no request that was not sent. Returns each
/// exchange's request id (`None` when it is not there exactly once) and pushes what is wrong.
fn check_requests(case: &Case, run: &Run, problems: &mut Vec<String>) -> Vec<Option<String>> {
    let ids: Vec<Option<String>> = case
        .exchanges
        .iter()
        .map(|ex| {
            let ids = ids_of(run, &ex.request);
            if ids.len() != 1 {
                problems.push(format!(
                    "request {} appears {} times (want once): {}",
                    ex.path,
                    ids.len(),
                    shown(&ex.request)
                ));
            }
            (ids.len() == 1).then(|| ids[0].clone())
        })
        .collect();
    let requests = run.of_kind(b'1');
    if requests.len() != case.exchanges.len() {
        problems.push(format!(
            "{} requests emitted, {} sent: {:?}",
            requests.len(),
            case.exchanges.len(),
            requests
                .iter()
                .map(|r| r.payload_text())
                .collect::<Vec<_>>()
        ));
    }
    ids
}

/// The shared check: a run with `--input-raw-track-response` delivers every request once and
/// every response a tolerant reader recovers, byte-exact, with the id of the request it
/// answers; nothing else; requests whose response the capture lacks get none, and are counted
/// (`recovered: pairing-after-gap` is their number); and the input counts `recovered: KIND`.
fn assert_recovers(name: &str) {
    let case = case(name);
    let run = run_case(&case, &["--input-raw-track-response"]);
    let mut problems = Vec::new();
    let ids = check_requests(&case, &run, &mut problems);
    let responses = run.of_kind(b'2');
    for (ex, id) in case.exchanges.iter().zip(&ids) {
        let Some(id) = id else { continue };
        let theirs: Vec<&&Record> = responses.iter().filter(|r| &r.id() == id).collect();
        match &ex.response {
            Some(want) => {
                if theirs.len() != 1 || theirs[0].payload != *want {
                    problems.push(format!(
                        "response to {} (id {id}): want exactly {}, got {:?}",
                        ex.path,
                        shown(want),
                        theirs.iter().map(|r| r.payload_text()).collect::<Vec<_>>()
                    ));
                }
            }
            None => {
                if !theirs.is_empty() {
                    problems.push(format!(
                        "request {} is unanswered in the capture, but got response(s) {:?}",
                        ex.path,
                        theirs.iter().map(|r| r.payload_text()).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    let want = case
        .exchanges
        .iter()
        .filter(|e| e.response.is_some())
        .count();
    if responses.len() != want {
        problems.push(format!(
            "{} responses emitted, {want} expected: {:?}",
            responses.len(),
            responses
                .iter()
                .map(|r| r.payload_text())
                .collect::<Vec<_>>()
        ));
    }
    // A request left unanswered by a gap is counted: `recovered: pairing-after-gap` is the
    // number of such requests that pairing stepped over.
    let unanswered = case
        .exchanges
        .iter()
        .filter(|e| e.response.is_none() && e.hole.is_none())
        .count() as u64;
    if unanswered > 0 && run.recovered("pairing-after-gap") != unanswered {
        problems.push(format!(
            "{unanswered} request(s) left without a response by a gap, but `recovered: \
             pairing-after-gap` counts {}: {}",
            run.recovered("pairing-after-gap"),
            run.input()
        ));
    }
    if run.recovered(&case.kind) == 0 {
        problems.push(format!(
            "no `recovered: {}` figure in the input's extra: {}",
            case.kind,
            run.input()
        ));
    }
    assert!(
        problems.is_empty(),
        "{name}:\n  {}\nstderr:\n{}",
        problems.join("\n  "),
        run.stderr
    );
}

#[test]
fn bare_cr_header_lines() {
    assert_recovers("bare-cr");
}

#[test]
fn nul_in_header_value() {
    assert_recovers("nul-in-header");
}

#[test]
fn odd_ends_of_head_lf_crlf_and_crlf_lf() {
    assert_recovers("odd-head-end");
}

#[test]
fn lowercase_version_status_line() {
    assert_recovers("lowercase-version");
}

#[test]
fn version_above_1_1_is_read_as_1_1() {
    assert_recovers("version-above-1-1");
}

#[test]
fn double_space_status_line() {
    assert_recovers("double-space");
}

#[test]
fn leading_junk_before_status_line() {
    assert_recovers("leading-junk");
}

#[test]
fn four_digit_status_code() {
    assert_recovers("four-digit-status");
}

#[test]
fn invalid_chunk_size_is_read_until_close() {
    assert_recovers("invalid-chunk-size");
}

#[test]
fn conflicting_content_length_is_read_until_close() {
    assert_recovers("conflicting-content-length");
}

#[test]
fn http09_response_without_status_line() {
    assert_recovers("http09");
}

#[test]
fn bare_lf_lines() {
    assert_recovers("bare-lf");
}

#[test]
fn obs_fold_header() {
    assert_recovers("obs-fold");
}

#[test]
fn keep_alive_with_a_lenient_status_line_keeps_pairing() {
    assert_recovers("keep-alive-status");
}

#[test]
fn keep_alive_with_a_bare_lf_response_keeps_pairing() {
    assert_recovers("keep-alive-bare-lf");
}

#[test]
fn keep_alive_with_an_obs_fold_response_keeps_pairing() {
    assert_recovers("keep-alive-obs-fold");
}

#[test]
fn pairing_after_a_gap_that_swallowed_a_response() {
    assert_recovers("pairing-after-gap");
}

/// The marks of an incomplete message: the meta fields after GoReplay's four
/// (`<kind> <id> <ts> <latency>`) that name it `incomplete` (e.g. `incomplete` or
/// `incomplete=624`).
fn incomplete_marks(record: &Record) -> Vec<String> {
    String::from_utf8_lossy(&record.meta)
        .split_whitespace()
        .skip(4)
        .filter(|f| f.starts_with("incomplete"))
        .map(str::to_string)
        .collect()
}

#[test]
fn hole_in_body_is_emitted_incomplete_only_with_allow_incomplete() {
    let case = case("hole-in-body");
    let [ex] = &case.exchanges[..] else {
        panic!("hole-in-body has one exchange")
    };
    let hole = ex.hole.as_ref().expect("hole-in-body describes its hole");

    // Without --input-raw-allow-incomplete: the request, no response, the response counted.
    let run = run_case(&case, &["--input-raw-track-response"]);
    let mut problems = Vec::new();
    check_requests(&case, &run, &mut problems);
    if !run.of_kind(b'2').is_empty() {
        problems
            .push("a response with a hole was emitted without --input-raw-allow-incomplete".into());
    }
    if run.dropped("incomplete") != 1 {
        problems.push(format!(
            "the response with a hole is not counted as dropped `incomplete` once: {}",
            run.input()
        ));
    }

    // With it: emitted with the request's id, marked incomplete, exact up to the hole.
    let run = run_case(
        &case,
        &["--input-raw-track-response", "--input-raw-allow-incomplete"],
    );
    let ids = check_requests(&case, &run, &mut problems);
    let responses = run.of_kind(b'2');
    match (&ids[0], &responses[..]) {
        (Some(id), [response]) => {
            if &response.id() != id {
                problems.push(format!(
                    "the response has id {}, its request {id}",
                    response.id()
                ));
            }
            // Every captured byte, exactly: all before the hole, then either nothing (cut at
            // the hole) or all that the capture holds after it.
            let rest = response.payload.strip_prefix(&hole.prefix[..]);
            if !rest.is_some_and(|rest| rest.is_empty() || rest == hole.after) {
                problems.push(format!(
                    "the incomplete response is not the captured bytes ({} before the hole, {} \
                     after it): {} bytes, starts {}",
                    hole.prefix.len(),
                    hole.after.len(),
                    response.payload.len(),
                    shown(&response.payload[..response.payload.len().min(120)])
                ));
            }
            let marks = incomplete_marks(response);
            if marks.is_empty() {
                problems.push(format!(
                    "the response is not marked incomplete in its meta: {}",
                    shown(&response.meta)
                ));
            }
            let size = hole.size.to_string();
            if marks.iter().any(|m| m.contains('=') && !m.ends_with(&size)) {
                problems.push(format!(
                    "the mark {marks:?} does not give the hole's {size} bytes"
                ));
            }
        }
        (_, got) => problems.push(format!(
            "want one response with --input-raw-allow-incomplete, got {}",
            got.len()
        )),
    }
    if run.recovered(&case.kind) == 0 {
        problems.push(format!(
            "no `recovered: {}` figure: {}",
            case.kind,
            run.input()
        ));
    }
    assert!(
        problems.is_empty(),
        "hole-in-body:\n  {}\nstderr:\n{}",
        problems.join("\n  "),
        run.stderr
    );
}

/// Every capture in `expected.json` has its pcap and a test above.
#[test]
fn every_recovery_capture_has_a_test() {
    let tested = [
        "bare-cr",
        "nul-in-header",
        "odd-head-end",
        "lowercase-version",
        "version-above-1-1",
        "double-space",
        "leading-junk",
        "four-digit-status",
        "invalid-chunk-size",
        "conflicting-content-length",
        "http09",
        "bare-lf",
        "obs-fold",
        "keep-alive-status",
        "keep-alive-bare-lf",
        "keep-alive-obs-fold",
        "hole-in-body",
        "pairing-after-gap",
    ];
    let all = expected();
    let names: Vec<&str> = all["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names, tested,
        "expected.json and the tests list different captures"
    );
    let kinds = [
        "lenient-status-line",
        "version-above-1-1",
        "bare-lf",
        "bare-cr",
        "nul-in-header",
        "obs-fold",
        "leading-junk",
        "http09",
        "invalid-chunk-size",
        "conflicting-content-length",
        "hole-in-body",
        "pairing-after-gap",
    ];
    for c in all["cases"].as_array().expect("cases") {
        let kind = c["kind"].as_str().expect("kind");
        assert!(kinds.contains(&kind), "{}: unknown kind {kind}", c["name"]);
    }
    for name in names {
        let pcap = dir().join(format!("{name}.pcap"));
        let size = std::fs::metadata(&pcap)
            .unwrap_or_else(|e| panic!("{}: {e}", pcap.display()))
            .len();
        assert!(
            size < 16 * 1024,
            "{name}.pcap is {size} bytes; keep fixtures small"
        );
    }
}
