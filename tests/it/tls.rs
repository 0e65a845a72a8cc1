//! HTTPS decryption from NSS key logs (issue 13), against real captures: the fixtures in
//! `tests/fixtures/tls` (curl and `openssl s_client` talking to nginx over TLS 1.2 and 1.3 in
//! every supported suite, made by `make-tls.sh`), damaged copies of them made here (a flipped
//! byte, a dropped segment, a capture started mid-connection, wrong and missing keys), and live
//! capture on loopback of curl against nginx. The reference is tshark: every connection's
//! requests, concatenated, must equal tshark's decrypted client→server plaintext and its
//! responses the server→client plaintext, each message once (committed in
//! `expected/NAME.{c2s,s2c}.gz`; [`committed_expectations_are_what_tshark_decrypts`] re-derives
//! them, and the live tests ask tshark at run time).

use crate::common::*;
use crate::live::needs_root;
use crate::nginx::{free_port, self_signed_certificate, spawn_nginx, wait_for_port};
use flate2::read::GzDecoder;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The drop reasons of the TLS layer, as the exit summary names them.
const DROP_REASONS: [&str; 8] = [
    "tls: no key",
    "tls: no handshake",
    "tls: unsupported suite",
    "tls: decrypt failed",
    "tls: lost segment",
    "tls: renegotiation",
    "tls: malformed",
    "tls: buffer full",
];

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/tls")
}

fn manifest() -> Value {
    let path = fixtures().join("manifest.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest.json")
}

// ---------------------------------------------------------------------------------------------
// The fixtures' connections and what tshark decrypted of them

/// One TCP connection of a fixture capture, with tshark's plaintext of both directions.
#[derive(Clone, Debug)]
struct Connection {
    name: String,
    client_port: u16,
    server_port: u16,
    client_random: String,
    version: String,
    cipher: String,
    sni: Option<String>,
    alpn: Option<String>,
    requests: usize,
    c2s: Vec<u8>,
    s2c: Vec<u8>,
}

fn gunzip(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
}

fn text_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The connections of fixture `capture` (`tls.pcap`, `tls-post.pcap`, `tls-ccm.pcap`,
/// `tls-dsb.pcapng`).
fn connections(capture: &str) -> Vec<Connection> {
    let manifest = manifest();
    let list = manifest["captures"][capture]["connections"]
        .as_array()
        .unwrap_or_else(|| panic!("manifest.json has no capture {capture}"));
    list.iter()
        .map(|c| {
            let name = text_field(c, "name").unwrap();
            let expected =
                |dir: &str| gunzip(&fixtures().join(format!("expected/{name}.{dir}.gz")));
            Connection {
                client_port: c["client_port"].as_u64().unwrap() as u16,
                server_port: c["server_port"].as_u64().unwrap() as u16,
                client_random: text_field(c, "client_random").unwrap(),
                version: text_field(c, "version").unwrap(),
                cipher: text_field(c, "cipher").unwrap(),
                sni: text_field(c, "sni"),
                alpn: text_field(c, "alpn"),
                requests: c["requests"].as_u64().unwrap() as usize,
                c2s: expected("c2s"),
                s2c: expected("s2c"),
                name,
            }
        })
        .collect()
}

fn server_ports(conns: &[Connection]) -> String {
    let mut ports: Vec<u16> = conns.iter().map(|c| c.server_port).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn keys_of(capture: &str) -> Option<PathBuf> {
    manifest()["captures"][capture]["keys"]
        .as_str()
        .map(|k| fixtures().join(k))
}

// ---------------------------------------------------------------------------------------------
// Running shadowtap and sorting what it emitted by connection

/// What one client connection produced: its requests and responses, in capture order.
#[derive(Default, Debug)]
struct Flow {
    requests: Vec<Record>,
    responses: Vec<Record>,
}

impl Flow {
    fn requests_bytes(&self) -> Vec<u8> {
        concat_payloads(&self.requests)
    }

    fn responses_bytes(&self) -> Vec<u8> {
        concat_payloads(&self.responses)
    }

    fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.responses.is_empty()
    }
}

fn concat_payloads(records: &[Record]) -> Vec<u8> {
    records
        .iter()
        .flat_map(|r| r.payload.iter().copied())
        .collect()
}

/// A finished run: its `.gor` records grouped by the client port (from the JSON records with
/// the same ids), the JSON records, and stderr.
struct Run {
    flows: HashMap<u16, Flow>,
    json: Vec<Value>,
    stderr: String,
}

impl Run {
    fn flow(&self, conn: &Connection) -> &Flow {
        static EMPTY: std::sync::OnceLock<Flow> = std::sync::OnceLock::new();
        self.flows
            .get(&conn.client_port)
            .unwrap_or_else(|| EMPTY.get_or_init(Flow::default))
    }

    /// The number after `reason` in the exit summary, summed over every instance.
    fn count(&self, reason: &str) -> u64 {
        tls_count(&self.stderr, reason)
    }

    fn drops(&self) -> Vec<(&'static str, u64)> {
        DROP_REASONS
            .iter()
            .map(|r| (*r, self.count(r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// The sum of the numbers that follow `reason ` on the summary lines (`shadowtap: …`), so
/// `tls: unsupported suite` does not count `tls: unsupported suite 0x1304 1`.
fn tls_count(stderr: &str, reason: &str) -> u64 {
    let needle = format!("{reason} ");
    stderr
        .lines()
        .filter(|l| l.starts_with("shadowtap: "))
        .flat_map(|line| {
            line.match_indices(&needle)
                .filter_map(|(at, _)| {
                    let rest = &line[at + needle.len()..];
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let after = rest[digits.len()..].chars().next();
                    if digits.is_empty() || after == Some('x') {
                        None
                    } else {
                        digits.parse::<u64>().ok()
                    }
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The flags that make a run write `.gor` to `gor` (one file: `--output-file-append`, or it
/// would be `NAME_0.gor`) and JSON records to stdout.
fn output_flags(gor: &Path) -> Vec<String> {
    [
        "--input-raw-track-response",
        "--output-file",
        path_str(gor),
        "--output-file-append",
        "--output-stdout",
        "--output-stdout-format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Reads a finished run: `.gor` records by id, JSON records for their ports.
fn collect_run(output: Output, gor: &Path) -> Run {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let json: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut client_of: HashMap<String, u16> = HashMap::new();
    for v in &json {
        let port = match v["kind"].as_str() {
            Some("request") => v["src_port"].as_u64(),
            Some("response") => v["dst_port"].as_u64(),
            _ => None,
        };
        if let (Some(port), Some(id)) = (port, v["id"].as_str()) {
            client_of.insert(id.to_string(), port as u16);
        }
    }
    let mut records = if gor.exists() {
        read_gor(gor)
    } else {
        Vec::new()
    };
    records.sort_by_key(timestamp);
    let mut flows: HashMap<u16, Flow> = HashMap::new();
    for record in records {
        let port = *client_of
            .get(&record.id())
            .unwrap_or_else(|| panic!("record {} has no JSON record", record.id()));
        let flow = flows.entry(port).or_default();
        match record.kind() {
            b'1' => flow.requests.push(record),
            b'2' => flow.responses.push(record),
            other => panic!("unexpected record kind {}", other as char),
        }
    }
    Run {
        flows,
        json,
        stderr: stderr(&output),
    }
}

/// The `.gor` header's timestamp (nanoseconds).
fn timestamp(record: &Record) -> i64 {
    String::from_utf8_lossy(&record.meta)
        .split(' ')
        .nth(2)
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// shadowtap over `pcap` (server `ports`) with `extra` flags.
fn run_pcap(pcap: &Path, ports: &str, extra: &[&str]) -> Run {
    let tmp = tempdir();
    let gor = tmp.path().join("out.gor");
    let input = format!("{}:{ports}", pcap.display());
    let mut args: Vec<String> = vec!["--input-pcap".into(), input];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(output_flags(&gor));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(&refs);
    assert_success(&output);
    collect_run(output, &gor)
}

/// shadowtap over fixture `capture` with its key log (when it has one) and `extra` flags.
fn run_fixture(capture: &str, keys: Option<&Path>, extra: &[&str]) -> Run {
    let conns = connections(capture);
    let mut args: Vec<&str> = Vec::new();
    if let Some(keys) = keys {
        args.extend(["--input-raw-tls-keylog", path_str(keys)]);
    }
    args.extend_from_slice(extra);
    run_pcap(&fixtures().join(capture), &server_ports(&conns), &args)
}

// ---------------------------------------------------------------------------------------------
// Assertions

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    format!("{} bytes: {text:?}", bytes.len())
}

/// This connection's requests and responses are exactly tshark's plaintext, each message once.
fn exact_problems(run: &Run, conn: &Connection) -> Vec<String> {
    let flow = run.flow(conn);
    let mut problems = Vec::new();
    if flow.requests_bytes() != conn.c2s {
        problems.push(format!(
            "{}: requests differ from tshark's client→server plaintext\n  got  {}\n  want {}",
            conn.name,
            preview(&flow.requests_bytes()),
            preview(&conn.c2s)
        ));
    }
    if flow.responses_bytes() != conn.s2c {
        problems.push(format!(
            "{}: responses differ from tshark's server→client plaintext\n  got  {}\n  want {}",
            conn.name,
            preview(&flow.responses_bytes()),
            preview(&conn.s2c)
        ));
    }
    if flow.requests.len() != conn.requests {
        problems.push(format!(
            "{}: {} requests, tshark saw {}",
            conn.name,
            flow.requests.len(),
            conn.requests
        ));
    }
    problems
}

/// Every connection but `except` decrypted exactly.
fn assert_exact(run: &Run, conns: &[Connection], except: &[&str]) {
    let problems: Vec<String> = conns
        .iter()
        .filter(|c| !except.contains(&c.name.as_str()))
        .flat_map(|c| exact_problems(run, c))
        .collect();
    assert!(
        problems.is_empty(),
        "{}\nstderr:\n{}",
        problems.join("\n"),
        run.stderr
    );
}

fn assert_no_tls_drops(run: &Run) {
    assert!(
        run.drops().is_empty(),
        "TLS drops {:?}; stderr:\n{}",
        run.drops(),
        run.stderr
    );
}

/// Nothing of `conn` was emitted.
fn assert_nothing_from(run: &Run, conn: &Connection) {
    let flow = run.flow(conn);
    assert!(
        flow.is_empty(),
        "{}: {} requests and {} responses emitted, want none; stderr:\n{}",
        conn.name,
        flow.requests.len(),
        flow.responses.len(),
        run.stderr
    );
}

/// What was emitted of a damaged `conn` is plaintext tshark saw (no garbage): the requests
/// are a prefix of the client→server plaintext and every response is part of the
/// server→client plaintext.
fn assert_no_garbage(run: &Run, conn: &Connection) {
    let flow = run.flow(conn);
    let requests = flow.requests_bytes();
    assert!(
        conn.c2s.starts_with(&requests),
        "{}: requests are not tshark's plaintext: {}",
        conn.name,
        preview(&requests)
    );
    for response in &flow.responses {
        assert!(
            contains(&conn.s2c, &response.payload),
            "{}: a response that is not tshark's plaintext: {}",
            conn.name,
            preview(&response.payload)
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn named<'a>(conns: &'a [Connection], name: &str) -> &'a Connection {
    conns
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no connection {name} in the manifest"))
}

// ---------------------------------------------------------------------------------------------
// Damaged copies: a pcap rewriter and key log edits

/// What to do to one frame (numbered from 1, as tshark does).
enum Damage {
    Drop,
    FlipLastByte,
}

/// Copies the classic pcap `from` to `to`, dropping or changing the frames in `plan`.
fn rewrite_pcap(from: &Path, to: &Path, plan: &HashMap<u64, Damage>) {
    let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    let magic = &bytes[..4];
    let little = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("{}: not a classic pcap", from.display()),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut out = bytes[..24].to_vec();
    let mut at = 24;
    let mut frame = 0u64;
    while at + 16 <= bytes.len() {
        frame += 1;
        let caplen = u32_at(at + 8) as usize;
        let end = at + 16 + caplen;
        let mut record = bytes[at..end].to_vec();
        match plan.get(&frame) {
            Some(Damage::Drop) => {}
            Some(Damage::FlipLastByte) => {
                *record.last_mut().unwrap() ^= 0x5a;
                out.extend_from_slice(&record);
            }
            None => out.extend_from_slice(&record),
        }
        at = end;
    }
    std::fs::write(to, out).expect("write damaged pcap");
}

/// The frame numbers of a damage plan in the manifest (`drop` or `flip_last_byte`).
fn planned_frames(plan: &Value, key: &str) -> Vec<u64> {
    plan[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Applies damage plan `name` from the manifest to its capture; returns the damaged copy's
/// path, the capture's name and the damaged connection's name.
/// Runs the damaged copy `plan` (made in `dir`) with its capture's key log: the run, the
/// capture's connections and the damaged connection's name.
fn run_damaged(plan: &str, dir: &Path) -> (Run, Vec<Connection>, String) {
    let (pcap, capture, victim) = damaged_copy(plan, dir);
    let conns = connections(&capture);
    let keys = keys_of(&capture).unwrap();
    let flags = ["--input-raw-tls-keylog", path_str(&keys)];
    let run = run_pcap(&pcap, &server_ports(&conns), &flags);
    (run, conns, victim)
}

fn damaged_copy(name: &str, dir: &Path) -> (PathBuf, String, String) {
    let manifest = manifest();
    let plan = &manifest["damage"][name];
    let capture = text_field(plan, "capture").expect("damage plan's capture");
    let mut frames = HashMap::new();
    for f in planned_frames(plan, "drop") {
        frames.insert(f, Damage::Drop);
    }
    for f in planned_frames(plan, "flip_last_byte") {
        frames.insert(f, Damage::FlipLastByte);
    }
    assert!(!frames.is_empty(), "damage plan {name} changes nothing");
    let to = dir.join(format!("{name}.pcap"));
    rewrite_pcap(&fixtures().join(&capture), &to, &frames);
    (to, capture, text_field(plan, "connection").unwrap())
}

/// A copy of key log `from` in which the secrets of the connections with `randoms` are
/// changed (`wrong`) or removed. Only lines keyed by client random are edited: the victims
/// use (EC)DHE, since OpenSSL also logs an `RSA <encrypted pre-master prefix> <pre-master>`
/// line for RSA key exchange, which would still decrypt them.
fn edited_keylog(from: &Path, to: &Path, randoms: &[&str], wrong: bool) {
    let text = std::fs::read_to_string(from).expect("read key log");
    let mut out = String::new();
    let mut touched = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let ours = fields.len() == 3 && randoms.contains(&fields[1].to_lowercase().as_str());
        if !ours {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        touched += 1;
        if wrong {
            // Every hex digit inverted: still valid hex, never the right secret.
            let secret: String = fields[2]
                .chars()
                .map(|c| {
                    let digit = c.to_digit(16).expect("key log secrets are hex");
                    char::from_digit(15 - digit, 16).expect("a hex digit")
                })
                .collect();
            out.push_str(&format!("{} {} {secret}\n", fields[0], fields[1]));
        }
    }
    assert!(
        touched >= randoms.len(),
        "the key log lacks some client randoms"
    );
    std::fs::write(to, out).expect("write key log");
}

// ---------------------------------------------------------------------------------------------
// (a)–(c): the committed captures

#[test]
fn every_suite_and_handshake_of_the_tls_capture_decrypts_as_tshark_does() {
    decrypts_as_tshark_does("tls.pcap");
}

#[test]
fn a_200k_post_and_a_response_of_five_records_decrypt_as_tshark_does() {
    decrypts_as_tshark_does("tls-post.pcap");
}

/// Every connection of `fixture`, decrypted with its key log, is exactly tshark's plaintext.
fn decrypts_as_tshark_does(fixture: &str) {
    let conns = connections(fixture);
    let keys = keys_of(fixture).unwrap();
    let run = run_fixture(fixture, Some(&keys), &[]);
    assert_exact(&run, &conns, &[]);
    assert_no_tls_drops(&run);
}

#[test]
fn a_pcapng_with_a_decryption_secrets_block_decrypts_with_no_key_log_flag() {
    let conns = connections("tls-dsb.pcapng");
    assert!(!conns.is_empty());
    let run = run_fixture("tls-dsb.pcapng", None, &[]);
    assert_exact(&run, &conns, &[]);
    assert_no_tls_drops(&run);
}

#[test]
fn json_records_carry_version_cipher_sni_and_alpn() {
    let conns = connections("tls.pcap");
    let keys = keys_of("tls.pcap").unwrap();
    let run = run_fixture("tls.pcap", Some(&keys), &[]);
    let mut problems = Vec::new();
    for conn in &conns {
        let records: Vec<&Value> = run
            .json
            .iter()
            .filter(|v| {
                let port = match v["kind"].as_str() {
                    Some("request") => v["src_port"].as_u64(),
                    _ => v["dst_port"].as_u64(),
                };
                port == Some(u64::from(conn.client_port))
            })
            .collect();
        if records.is_empty() {
            problems.push(format!("{}: no JSON records", conn.name));
        }
        let mut want = serde_json::json!({"version": conn.version, "cipher": conn.cipher});
        if let Some(sni) = &conn.sni {
            want["sni"] = Value::from(sni.as_str());
        }
        if let Some(alpn) = &conn.alpn {
            want["alpn"] = Value::from(alpn.as_str());
        }
        for record in records {
            if record["tls"] != want {
                problems.push(format!(
                    "{} {}: tls {} want {want}",
                    conn.name, record["kind"], record["tls"]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn allow_sni_keeps_only_requests_whose_server_name_matches() {
    let conns = connections("tls.pcap");
    let keys = keys_of("tls.pcap").unwrap();
    let run = run_fixture(
        "tls.pcap",
        Some(&keys),
        &["--http-allow-sni", "^localhost$"],
    );
    let (with_sni, without): (Vec<&Connection>, Vec<&Connection>) = conns
        .iter()
        .partition(|c| c.sni.as_deref() == Some("localhost"));
    assert!(
        !without.is_empty(),
        "the fixture has a connection without SNI"
    );
    for conn in with_sni {
        assert_eq!(
            run.flow(conn).requests_bytes(),
            conn.c2s,
            "{}: {}",
            conn.name,
            run.stderr
        );
    }
    for conn in without {
        assert!(run.flow(conn).requests.is_empty(), "{}: kept", conn.name);
    }
    let none = run_fixture(
        "tls.pcap",
        Some(&keys),
        &["--http-allow-sni", "^other\\.example$"],
    );
    assert!(
        none.flows.values().all(|f| f.requests.is_empty()),
        "requests kept although no SNI matches: {}",
        none.stderr
    );
}

#[test]
fn an_unsupported_suite_is_counted_with_its_number() {
    let conns = connections("tls-ccm.pcap");
    let keys = keys_of("tls-ccm.pcap").unwrap();
    let run = run_fixture("tls-ccm.pcap", Some(&keys), &[]);
    for conn in &conns {
        assert_nothing_from(&run, conn);
    }
    assert!(run.count("tls: unsupported suite") >= 1, "{}", run.stderr);
    assert!(
        run.count("tls: unsupported suite 0x1304") >= 1,
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// (f), (j): wrong and missing keys

#[test]
fn a_wrong_key_is_counted_decrypt_failed_and_spares_the_other_connections() {
    let victims = ["t13-aes128-gcm", "t12-ecdhe-ecdsa-aes256-gcm-sha384"];
    keys_edited_for(&victims, KeyEdit::Wrong, &[], "tls: decrypt failed");
}

#[test]
fn a_connection_without_a_key_is_counted_no_key_after_the_wait() {
    let victims = ["t13-chacha20", "t12-rsa-ecdhe-rsa-aes256-sha384"];
    let wait = ["--input-raw-tls-key-wait", "1s"];
    keys_edited_for(&victims, KeyEdit::Removed, &wait, "tls: no key");
}

/// How the key log lines of the victims are edited.
#[derive(Clone, Copy, PartialEq)]
enum KeyEdit {
    Wrong,
    Removed,
}

/// Runs the TLS capture with the victims' keys edited: nothing of theirs comes out, each is
/// counted under `reason`, and every other connection is exact.
fn keys_edited_for(victims: &[&str], edit: KeyEdit, flags: &[&str], reason: &str) {
    let conns = connections("tls.pcap");
    let randoms: Vec<&str> = victims
        .iter()
        .map(|n| named(&conns, n).client_random.as_str())
        .collect();
    let tmp = tempdir();
    let keys = tmp.path().join("edited.keys");
    edited_keylog(
        &keys_of("tls.pcap").unwrap(),
        &keys,
        &randoms,
        edit == KeyEdit::Wrong,
    );
    let run = run_fixture("tls.pcap", Some(&keys), flags);
    for victim in victims {
        assert_nothing_from(&run, named(&conns, victim));
    }
    assert!(run.count(reason) >= victims.len() as u64, "{}", run.stderr);
    assert_exact(&run, &conns, victims);
}

// ---------------------------------------------------------------------------------------------
// (g)–(i): damaged captures

#[test]
fn a_corrupted_record_is_counted_decrypt_failed_and_spares_the_other_connections() {
    let tmp = tempdir();
    let mut victims = Vec::new();
    for plan in ["corrupt-tls13", "corrupt-tls12-cbc"] {
        let (run, conns, victim) = run_damaged(plan, tmp.path());
        assert!(
            run.count("tls: decrypt failed") >= 1,
            "{plan}: {}",
            run.stderr
        );
        assert_no_garbage(&run, named(&conns, &victim));
        assert_exact(&run, &conns, &[victim.as_str()]);
        victims.push(victim);
    }
    assert_eq!(victims.len(), 2);
}

#[test]
fn a_lost_segment_is_survived_or_counted_and_spares_the_other_connections() {
    let tmp = tempdir();
    let (run, conns, victim) = run_damaged("lost-segment", tmp.path());
    let conn = named(&conns, &victim);
    assert_no_garbage(&run, conn);
    assert_eq!(
        run.flow(conn).requests_bytes(),
        conn.c2s,
        "{victim}: the client's direction lost nothing; stderr:\n{}",
        run.stderr
    );
    // the response after the gap (the last one) decrypts, or the loss is counted
    let last_response_back = run
        .flow(conn)
        .responses
        .last()
        .is_some_and(|r| conn.s2c.ends_with(&r.payload) && r.payload.starts_with(b"HTTP/1.1 "));
    assert!(
        last_response_back || run.count("tls: lost segment") >= 1,
        "{victim}: neither decrypted after the gap nor counted `tls: lost segment`; stderr:\n{}",
        run.stderr
    );
    assert_exact(&run, &conns, &[victim.as_str()]);
}

#[test]
fn a_capture_started_mid_connection_is_counted_no_handshake() {
    let tmp = tempdir();
    let (run, conns, victim) = run_damaged("mid-connection", tmp.path());
    assert_nothing_from(&run, named(&conns, &victim));
    assert!(run.count("tls: no handshake") >= 1, "{}", run.stderr);
    assert_exact(&run, &conns, &[victim.as_str()]);
}

// ---------------------------------------------------------------------------------------------
// tshark: the reference, re-derived

/// True when tshark runs; otherwise fails under CI=true or prints SKIPPED.
fn have_tshark() -> bool {
    have_tool("tshark", "apt-get install -y tshark")
}

fn tshark(args: &[&str]) -> String {
    let output = Command::new("tshark")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("tshark");
    assert!(output.status.success(), "tshark {args:?} failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One TCP connection as tshark decrypts it.
#[derive(Debug)]
struct Decrypted {
    client_port: u16,
    c2s: Vec<u8>,
    s2c: Vec<u8>,
}

fn hex(line: &str) -> Vec<u8> {
    let line = line.trim();
    (0..line.len() / 2)
        .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).expect("hex from tshark"))
        .collect()
}

/// Every connection of `pcap` (opened in it) and its plaintext, by `tshark -z follow,tls,raw`
/// with `keys` (none: the capture's own Decryption Secrets Block).
fn tshark_decrypt(pcap: &Path, keys: Option<&Path>) -> Vec<Decrypted> {
    tshark_follow(pcap, keys, "tls")
}

/// Every connection of `pcap` and the bytes of each direction, by `tshark -z follow,PROTO,raw`.
fn tshark_follow(pcap: &Path, keys: Option<&Path>, proto: &str) -> Vec<Decrypted> {
    let keylog = keys.map(|k| format!("tls.keylog_file:{}", k.display()));
    let mut base = vec!["-r", path_str(pcap)];
    if let Some(keylog) = &keylog {
        base.extend(["-o", keylog.as_str()]);
    }
    let syn_args: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            "-Y",
            "tcp.flags.syn==1 && tcp.flags.ack==0",
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
        ])
        .collect();
    tshark(&syn_args)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let follow = format!("follow,{proto},raw,{}", f[0]);
            let args: Vec<&str> = base
                .iter()
                .copied()
                .chain(["-q", "-z", follow.as_str()])
                .collect();
            let (first, second, node0_port) = parse_follow(&tshark(&args));
            let server_port: u16 = f[2].parse().unwrap();
            let (c2s, s2c) = if node0_port == server_port {
                (second, first)
            } else {
                (first, second)
            };
            Decrypted {
                client_port: f[1].parse().unwrap(),
                c2s,
                s2c,
            }
        })
        .collect()
}

/// tshark's follow output: node 0's bytes (flush left), node 1's (tab-indented), node 0's port.
fn parse_follow(text: &str) -> (Vec<u8>, Vec<u8>, u16) {
    let node0 = text
        .lines()
        .find_map(|l| l.strip_prefix("Node 0: "))
        .expect("follow output names node 0");
    let port = node0.rsplit(':').next().unwrap().parse().unwrap_or(0);
    let body = text.split_once("\nNode 1: ").expect("node 1").1;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for line in body.lines().skip(1) {
        if line.starts_with('=') {
            break;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            second.extend(hex(rest));
        } else if !line.is_empty() {
            first.extend(hex(line));
        }
    }
    (first, second, port)
}

#[test]
fn committed_expectations_are_what_tshark_decrypts() {
    if !have_tshark() {
        return;
    }
    for capture in [
        "tls.pcap",
        "tls-post.pcap",
        "tls-ccm.pcap",
        "tls-dsb.pcapng",
    ] {
        let conns = connections(capture);
        let keys = keys_of(capture);
        let decrypted = tshark_decrypt(&fixtures().join(capture), keys.as_deref());
        assert_eq!(decrypted.len(), conns.len(), "{capture}: connections");
        for conn in &conns {
            let d = decrypted
                .iter()
                .find(|d| d.client_port == conn.client_port)
                .unwrap_or_else(|| panic!("{capture}: tshark has no {}", conn.name));
            assert!(
                d.c2s == conn.c2s && d.s2c == conn.s2c,
                "{capture} {}: expected/ differs from tshark",
                conn.name
            );
            assert!(!d.c2s.is_empty() && !d.s2c.is_empty(), "{}", conn.name);
        }
    }
}

#[test]
fn the_harness_sorts_plain_http_by_connection_as_tshark_follows_it() {
    // the same machinery on plain HTTP, which works today: .gor payloads joined to their
    // connections through the JSON records, against `follow,tcp,raw`
    if !have_tshark() {
        return;
    }
    let pcap = repo().join("tests/fixtures/loopback.pcap");
    let run = run_pcap(&pcap, "18480", &[]);
    let reference = tshark_follow(&pcap, None, "tcp");
    assert!(reference.len() > 10);
    for d in &reference {
        let flow = run
            .flows
            .get(&d.client_port)
            .expect("a flow per connection");
        assert_eq!(flow.requests_bytes(), d.c2s, "port {}", d.client_port);
        assert_eq!(flow.responses_bytes(), d.s2c, "port {}", d.client_port);
    }
}

#[test]
fn damage_plans_hit_application_data_of_their_connection() {
    // the rewriter itself: dropping and flipping change exactly the planned frames
    let tmp = tempdir();
    for plan in [
        "corrupt-tls13",
        "corrupt-tls12-cbc",
        "lost-segment",
        "mid-connection",
    ] {
        let (pcap, capture, _) = damaged_copy(plan, tmp.path());
        let original = std::fs::read(fixtures().join(&capture)).unwrap();
        let damaged = std::fs::read(&pcap).unwrap();
        let manifest = manifest();
        let dropped = planned_frames(&manifest["damage"][plan], "drop");
        if dropped.is_empty() {
            assert_eq!(original.len(), damaged.len(), "{plan}");
            let differing = original
                .iter()
                .zip(&damaged)
                .filter(|(a, b)| a != b)
                .count();
            let flipped = planned_frames(&manifest["damage"][plan], "flip_last_byte");
            assert_eq!(differing, flipped.len(), "{plan}");
        } else {
            assert!(damaged.len() < original.len(), "{plan}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d), (e): live capture on loopback

/// A live run: shadowtap on `127.0.0.1:PORT` and tcpdump on `lo` beside it (the reference).
struct Live {
    dir: tempfile::TempDir,
    shadowtap: Option<Child>,
    tcpdump: Option<Child>,
}

impl Live {
    fn start(port: u16, watched_keys: &Path) -> Live {
        let dir = tempdir();
        let gor = dir.path().join("live.gor");
        let input = format!("127.0.0.1:{port}");
        let mut args: Vec<String> = vec![
            "--input-raw".into(),
            input,
            "--input-raw-tls-keylog".into(),
            path_str(watched_keys).into(),
        ];
        args.extend(output_flags(&gor));
        let shadowtap = command()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start shadowtap");
        let tcpdump = Command::new("tcpdump")
            .args(["-i", "lo", "-s", "0", "-U", "-w"])
            .arg(dir.path().join("reference.pcap"))
            .arg(format!("tcp port {port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump (.ci/setup installs it)");
        std::thread::sleep(Duration::from_millis(1000));
        Live {
            dir,
            shadowtap: Some(shadowtap),
            tcpdump: Some(tcpdump),
        }
    }

    /// Stops both (after `settle`), and returns shadowtap's run and tshark's reference.
    fn finish(mut self, settle: Duration, keys: &Path) -> (Run, Vec<Decrypted>) {
        std::thread::sleep(settle);
        let tcpdump = self.tcpdump.take().unwrap();
        signal(tcpdump.id(), "INT");
        let _ = wait_output(tcpdump, Duration::from_secs(10));
        let shadowtap = self.shadowtap.take().unwrap();
        signal(shadowtap.id(), "INT");
        let output = wait_output(shadowtap, Duration::from_secs(30));
        assert_success(&output);
        let run = collect_run(output, &self.dir.path().join("live.gor"));
        let reference = tshark_decrypt(&self.dir.path().join("reference.pcap"), Some(keys));
        (run, reference)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for child in [self.shadowtap.take(), self.tcpdump.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// nginx on 127.0.0.1 serving HTTPS with TLS 1.2 and 1.3 (the shared test nginx's 1.22
/// defaults stop at TLS 1.2) and a fresh self-signed ECDSA certificate for `localhost`.
struct TlsNginx {
    port: u16,
    /// Certificate, config and logs; removed on drop.
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TlsNginx {
    fn start() -> TlsNginx {
        let dir = tempdir();
        let d = dir.path().display().to_string();
        self_signed_certificate(
            dir.path(),
            &["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        );
        let port = free_port();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               server {{ listen 127.0.0.1:{port} ssl; ssl_protocols TLSv1.2 TLSv1.3;\n\
                 ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
                 location / {{ return 200 \"live $request_method $request_uri\\n\"; }} }} }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).expect("nginx.conf");
        let child = spawn_nginx(dir.path());
        let nginx = TlsNginx {
            port,
            _dir: dir,
            child: Some(child),
        };
        wait_for_port(port, Duration::from_secs(10));
        nginx
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

impl Drop for TlsNginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// curl with a key log: three requests (GET, POST, GET with Connection: close) on one
/// connection, with `tls` options.
fn curl_three(nginx: &TlsNginx, keylog: &Path, tls: &[&str]) {
    let url = nginx.url();
    let resolve = format!("localhost:{}:127.0.0.1", nginx.port);
    let base: Vec<&str> = [
        "-sS",
        "-k",
        "--http1.1",
        "--resolve",
        resolve.as_str(),
        "-o",
        "/dev/null",
    ]
    .into_iter()
    .chain(tls.iter().copied())
    .collect();
    let (a, b, c) = (
        format!("{url}/live?a=1"),
        format!("{url}/live/form"),
        format!("{url}/live?c=3"),
    );
    let status = Command::new("curl")
        .env("SSLKEYLOGFILE", keylog)
        .args(&base)
        .arg(&a)
        .arg("--next")
        .args(&base)
        .args(["-d", "x=1&y=2", &b])
        .arg("--next")
        .args(&base)
        .args(["-H", "Connection: close", &c])
        .status()
        .expect("curl");
    assert!(status.success(), "curl failed");
}

fn live_prerequisites() -> bool {
    if !needs_root() {
        prerequisite_missing("root (live capture on lo)", "run the tests as root");
        return false;
    }
    have_tshark()
}

/// Every connection tshark decrypted from the reference capture, exactly, in the live run.
fn assert_live_matches(run: &Run, reference: &[Decrypted], connections: usize) {
    assert_eq!(
        reference.len(),
        connections,
        "connections in the reference capture"
    );
    for d in reference {
        let flow = run.flows.get(&d.client_port);
        let (requests, responses) = flow
            .map(|f| (f.requests_bytes(), f.responses_bytes()))
            .unwrap_or_default();
        assert!(
            !d.c2s.is_empty(),
            "tshark decrypted nothing of port {}",
            d.client_port
        );
        assert_eq!(
            requests, d.c2s,
            "port {}: requests differ from tshark's; stderr:\n{}",
            d.client_port, run.stderr
        );
        assert_eq!(
            responses, d.s2c,
            "port {}: responses differ from tshark's; stderr:\n{}",
            d.client_port, run.stderr
        );
        assert_eq!(
            flow.map(|f| f.requests.len()),
            Some(3),
            "port {}",
            d.client_port
        );
    }
    assert_no_tls_drops(run);
}

#[test]
fn live_tls12_and_tls13_on_loopback_decrypt_as_tshark_does() {
    if !live_prerequisites() {
        return;
    }
    let nginx = TlsNginx::start();
    let tmp = tempdir();
    let keys = tmp.path().join("keys.log");
    std::fs::write(&keys, "").unwrap();
    let live = Live::start(nginx.port, &keys);
    curl_three(&nginx, &keys, &["--tlsv1.3"]);
    curl_three(&nginx, &keys, &["--tls-max", "1.2"]);
    let (run, reference) = live.finish(Duration::from_millis(1500), &keys);
    assert_live_matches(&run, &reference, 2);
    let versions: Vec<&str> = run
        .json
        .iter()
        .filter_map(|v| v["tls"]["version"].as_str())
        .collect();
    assert!(
        versions.contains(&"1.2") && versions.contains(&"1.3"),
        "{versions:?}"
    );
}

#[test]
fn live_keys_written_two_seconds_after_the_traffic_are_used() {
    if !live_prerequisites() {
        return;
    }
    let nginx = TlsNginx::start();
    let tmp = tempdir();
    let unseen = tmp.path().join("curl.keys");
    let watched = tmp.path().join("watched.keys");
    std::fs::write(&watched, "").unwrap();
    let live = Live::start(nginx.port, &watched);
    curl_three(&nginx, &unseen, &["--tlsv1.3"]);
    curl_three(&nginx, &unseen, &["--tls-max", "1.2"]);
    let copier = {
        let (unseen, watched) = (unseen.clone(), watched.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            let keys = std::fs::read(&unseen).expect("curl's key log");
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&watched)
                .unwrap();
            std::io::Write::write_all(&mut file, &keys).unwrap();
        })
    };
    copier.join().unwrap();
    let (run, reference) = live.finish(Duration::from_millis(2500), &unseen);
    assert_live_matches(&run, &reference, 2);
}
