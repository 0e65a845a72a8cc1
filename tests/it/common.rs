//! Helpers shared by the integration tests: running the binary, writing and reading `.gor`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SEPARATOR: &[u8] = "\n\u{1F435}\u{1F648}\u{1F649}\n".as_bytes();

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_shadowtap")
}

/// The binary under test as a command that prints its ledger as JSON too (every run's
/// ledger is checked by [`wait_output`]). Spawn shadowtap only through this (or `run`).
pub fn command() -> Command {
    let mut command = Command::new(binary());
    command.arg(STATS_JSON);
    command
}

const STATS_JSON: &str = "--stats-format=json";

/// Runs shadowtap with `args` to completion (killed after 60 s) and returns its output.
pub fn run(args: &[&str]) -> Output {
    run_in(None, args)
}

/// Runs shadowtap in `dir` with `args` to completion.
pub fn run_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut command = command();
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let child = command.spawn().expect("start shadowtap");
    wait_output(child, Duration::from_secs(60))
}

/// Waits for `child` at most `limit` while collecting its output (killed after that, and
/// the test fails).
pub fn wait_output(mut child: std::process::Child, limit: Duration) -> Output {
    let stdout = child.stdout.take().map(collect);
    let stderr = child.stderr.take().map(collect);
    let deadline = Instant::now() + limit;
    let mut status = None;
    while Instant::now() < deadline {
        status = child.try_wait().expect("wait");
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let timed_out = status.is_none();
    if timed_out {
        let _ = child.kill();
    }
    let output = Output {
        status: child.wait().expect("wait"),
        stdout: stdout.map(|h| h.join().unwrap()).unwrap_or_default(),
        stderr: stderr.map(|h| h.join().unwrap()).unwrap_or_default(),
    };
    assert!(
        !timed_out,
        "shadowtap did not finish in {limit:?}; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_ledger(output)
}

/// True for the text summary line: `shadowtap: <label> in N out N…`.
fn is_text_summary(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("shadowtap: ") else {
        return false;
    };
    rest.split(" in ").skip(1).any(|after| {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && after[digits..].starts_with(" out ")
    })
}

/// Asserts that the run's ledger balances (`in = out + dropped` for every plugin), from its
/// JSON summary, then removes the JSON lines from stderr so that tests read the text as
/// users see it. A run that printed a text summary must have printed the JSON one too.
fn check_ledger(mut output: Output) -> Output {
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    let is_json = |line: &str| line.starts_with("{\"event\":");
    let json_summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"event\":\"summary\""));
    match json_summary {
        Some(json) => shadowtap_api::testkit::assert_ledger_balances(json),
        None => {
            if let Some(line) = text.lines().find(|l| is_text_summary(l)) {
                panic!("a summary without {STATS_JSON} (spawn through common::command()): {line}");
            }
        }
    }
    let kept: Vec<&str> = text.lines().filter(|l| !is_json(l)).collect();
    let mut kept = kept.join("\n");
    if text.ends_with('\n') && !kept.is_empty() {
        kept.push('\n');
    }
    output.stderr = kept.into_bytes();
    output
}

fn collect(mut stream: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    })
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a zero exit status, showing stderr otherwise.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}; stderr:\n{}",
        output.status,
        stderr(output)
    );
}

/// One `.gor` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub meta: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Record {
    pub fn request(id: &str, ts: i64, payload: &str) -> Record {
        Record {
            meta: format!("1 {id} {ts} 0\n").into_bytes(),
            payload: payload.as_bytes().to_vec(),
        }
    }

    pub fn response(id: &str, ts: i64, payload: &str) -> Record {
        Record {
            meta: format!("2 {id} {ts} 100\n").into_bytes(),
            payload: payload.as_bytes().to_vec(),
        }
    }

    pub fn id(&self) -> String {
        String::from_utf8_lossy(&self.meta)
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string()
    }

    pub fn kind(&self) -> u8 {
        self.meta[0]
    }

    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Serialises records in the `.gor` format.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&r.meta);
        out.extend_from_slice(&r.payload);
        out.extend_from_slice(SEPARATOR);
    }
    out
}

/// Parses `.gor` bytes with GoReplay's reader rules (independent of the crate under test).
pub fn decode(bytes: &[u8]) -> Vec<Record> {
    let mut records = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if line == &SEPARATOR[1..] {
            current.pop();
            let split = current
                .iter()
                .position(|&b| b == b'\n')
                .expect("header line");
            records.push(Record {
                meta: current[..=split].to_vec(),
                payload: current[split + 1..].to_vec(),
            });
            current.clear();
        } else {
            current.extend_from_slice(line);
        }
    }
    records
}

pub fn write_gor(path: &Path, records: &[Record]) {
    std::fs::write(path, encode(records)).expect("write .gor");
}

pub fn read_gor(path: &Path) -> Vec<Record> {
    decode(&std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

/// Writes one request per payload to `path`, with ids 1, 2, … (24 hex digits) and timestamps
/// `gap_ns` apart from 1 s.
pub fn write_requests(path: &Path, payloads: &[String], gap_ns: i64) {
    let records: Vec<Record> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Record::request(
                &format!("{:024x}", i + 1),
                1_000_000_000 + i as i64 * gap_ns,
                p,
            )
        })
        .collect();
    write_gor(path, &records);
}

/// `count` copies of a bare `GET /` request.
pub fn plain_gets(count: usize) -> Vec<String> {
    vec!["GET / HTTP/1.1\r\n\r\n".to_string(); count]
}

/// `count` GET requests, each followed by its response, 1 ms apart, starting at `start`.
pub fn traffic(count: usize, start: i64) -> Vec<Record> {
    (0..count)
        .flat_map(|i| {
            let id = format!("{:024x}", i + 1);
            let ts = start + i as i64 * 1_000_000;
            [
                Record::request(&id, ts, &format!("GET /item/{i}?q=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: test\r\n\r\n")),
                Record::response(&id, ts + 500_000, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            ]
        })
        .collect()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `shadowtap: ...` summary line (the last one on stderr).
pub fn summary(output: &Output) -> String {
    stderr(output)
        .lines()
        .rev()
        .find(|l| l.starts_with("shadowtap: "))
        .unwrap_or_default()
        .to_string()
}

/// A named number from the exit summary of instance `label` (e.g. `out`, `filtered`,
/// `error: refused`); 0 when absent.
pub fn summary_counter(stderr: &str, label: &str, name: &str) -> u64 {
    let Some(summary) = stderr.lines().rev().find(|l| l.contains(label)) else {
        return 0;
    };
    let Some(part) = summary.split(" | ").find(|p| p.contains(label)) else {
        return 0;
    };
    let needle = format!("{name} ");
    part.match_indices(&needle)
        .find(|(at, _)| *at > 0 && matches!(part.as_bytes()[at - 1], b' ' | b'(' | b','))
        .and_then(|(at, _)| {
            part[at + needle.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Sends SIGTERM to `child` (a graceful stop: queues drain).
pub fn terminate(child: &std::process::Child) {
    assert!(signal(child.id(), "TERM"));
}

/// Sends signal `name` (`"INT"`, `"TERM"`, …) to process `pid`; true if it was delivered.
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill")
        .success()
}

/// Runs shadowtap under `prlimit --as=BYTES`, so that an allocation sized by the input aborts.
pub fn run_with_address_space_limit(bytes: u64, args: &[&str]) -> std::process::Output {
    let child = std::process::Command::new("prlimit")
        .arg(format!("--as={bytes}"))
        .arg(binary())
        .arg(STATS_JSON)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux)");
    wait_output(child, std::time::Duration::from_secs(120))
}

/// Whether `tool --version` runs; otherwise the prerequisite is missing (see
/// [`prerequisite_missing`]: fails under `CI=true`, prints `SKIPPED` elsewhere).
pub fn have_tool(tool: &str, install: &str) -> bool {
    have_tool_answering(tool, "--version", install)
}

/// [`have_tool`] for a tool that tells its version another way (`openssl version`).
pub fn have_tool_answering(tool: &str, version_arg: &str, install: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg(version_arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        prerequisite_missing(tool, install);
    }
    ok
}

/// A test's prerequisite is missing: under `CI=true` the test fails; elsewhere it prints
/// `SKIPPED` with what installs it, and the caller returns.
pub fn prerequisite_missing(what: &str, install: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("prerequisite missing under CI=true: {what} ({install})");
    }
    println!("SKIPPED: {what} ({install})");
}

/// A classic pcap (Ethernet, microseconds) of `frames`, a microsecond apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut file = Vec::new();
    for word in [0xA1B2_C3D4u32, 0x0004_0002, 0, 0, 65535, 1] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for word in [0, i as u32, f.len() as u32, f.len() as u32] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.extend_from_slice(f);
    }
    std::fs::write(path, file).unwrap();
}
