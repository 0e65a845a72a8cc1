//! `--input-pfring` through the real binary, against a test double of `libpfring.so`
//! (`plugins/input-pfring/tests-support/fake_pfring.c`, compiled here with `cc`) that serves
//! `tests/fixtures/loopback.pcap` (curl and a raw-socket client talking to nginx on
//! 127.0.0.1:18480) through the PF_RING C API, distributing it over the rings of a cluster per
//! flow or round-robin. PF_RING's kernel module cannot be loaded on the machines running these
//! tests, so the real library is never exercised here.
//!
//! Expectations come from the fixture's sidecar (the exact bytes every client sent and its
//! local port) and nginx's access log, and from the fake's call log (`FAKE_PFRING_LOG`: every
//! `pfring_*` call, and which ring each packet was handed to).

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const PORT: u16 = 18480;

fn fixture(file: &str) -> PathBuf {
    repo().join("tests/fixtures").join(file)
}

/// The fake `libpfring.so`, built once per test run (`None`, and the tests skip, without `cc`).
fn fake_library() -> Option<&'static Path> {
    static LIB: OnceLock<Option<PathBuf>> = OnceLock::new();
    LIB.get_or_init(|| {
        let source = repo().join("plugins/input-pfring/tests-support/fake_pfring.c");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fake-pfring");
        std::fs::create_dir_all(&dir).expect("create the fake's folder");
        let lib = dir.join("libpfring.so");
        let partial = dir.join(format!("libpfring.so.{}", std::process::id()));
        let built = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&partial)
            .arg(&source)
            .status();
        match built {
            Ok(status) if status.success() => {
                std::fs::rename(&partial, &lib).expect("install the fake libpfring.so");
                Some(lib)
            }
            other => {
                let what = format!("cannot compile {}: {other:?}", source.display());
                prerequisite_missing(&what, "apt-get install -y build-essential");
                None
            }
        }
    })
    .as_deref()
}

/// A run of shadowtap against the fake library.
struct Run {
    output: Output,
    log: Vec<String>,
}

/// Runs shadowtap with the fake serving loopback.pcap; `env` adds FAKE_PFRING_* settings.
fn run_fake(env: &[(&str, &str)], args: &[&str]) -> Option<Run> {
    let lib = fake_library()?;
    let dir = tempdir();
    let log = dir.path().join("fake.log");
    let mut command = command();
    command
        .arg("--input-pfring-lib")
        .arg(lib)
        .args(args)
        .env("FAKE_PFRING_PCAP", fixture("loopback.pcap"))
        .env("FAKE_PFRING_LOG", &log)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = wait_output(
        command.spawn().expect("start shadowtap"),
        Duration::from_secs(60),
    );
    let err = stderr(&output);
    assert!(
        output.status.code() != Some(101) && !err.contains("panicked"),
        "crashed: {err}"
    );
    let log = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    Some(Run { output, log })
}

/// The fake ends every ring with a `pfring_recv` error at end of file: runs end by themselves.
const EOF_ERROR: (&str, &str) = ("FAKE_PFRING_EOF", "error");

impl Run {
    fn summary(&self) -> String {
        stderr(&self.output)
            .lines()
            .rev()
            .find(|l| l.starts_with("shadowtap: "))
            .unwrap_or("")
            .to_string()
    }

    fn records(&self) -> Vec<Record> {
        decode(&self.output.stdout)
    }

    /// The counter `name` of ledger entry `label` in the summary line.
    fn counter(&self, label: &str, name: &str) -> Option<u64> {
        let summary = self.summary();
        let entry = summary
            .trim_start_matches("shadowtap: ")
            .split(" | ")
            .find(|e| e.starts_with(label))?
            .to_string();
        let at = [format!(" {name} "), format!("({name} ")]
            .iter()
            .find_map(|needle| Some(entry.find(needle.as_str())? + needle.len()))?;
        entry[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// The fake's log lines starting with `word`.
    fn calls(&self, word: &str) -> Vec<&str> {
        self.log
            .iter()
            .filter(|l| l.split(' ').next() == Some(word))
            .map(String::as_str)
            .collect()
    }

    /// ring → client ports of the packets the fake handed it (`assign` lines).
    fn assignments(&self) -> BTreeMap<usize, BTreeSet<u16>> {
        let mut rings: BTreeMap<usize, BTreeSet<u16>> = BTreeMap::new();
        for line in self.calls("assign") {
            let field = |name: &str| -> u64 {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(&format!("{name}=")))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no {name} in {line}"))
            };
            let (sport, dport) = (field("sport") as u16, field("dport") as u16);
            let client = if sport == PORT { dport } else { sport };
            rings
                .entry(field("ring") as usize)
                .or_default()
                .insert(client);
        }
        rings
    }
}

// ---------------------------------------------------------------------------------------------
// What the clients sent and what nginx logged

/// One sidecar line: the client's local port and the exact bytes of its request.
struct Sent {
    local_port: u16,
    raw: Vec<u8>,
}

fn json_field<'a>(line: &'a str, key: &str) -> &'a str {
    let needle = format!("\"{key}\": ");
    let at = line
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {line:.100}"))
        + needle.len();
    let rest = &line[at..];
    match rest.strip_prefix('"') {
        Some(text) => &text[..text.find('"').expect("closing quote")],
        None => rest.split([',', '}']).next().unwrap().trim(),
    }
}

fn sidecar() -> Vec<Sent> {
    std::fs::read_to_string(fixture("loopback.requests.jsonl"))
        .expect("read the sidecar")
        .lines()
        .map(|line| Sent {
            local_port: json_field(line, "local_port").parse().unwrap(),
            raw: base64(json_field(line, "raw_b64")),
        })
        .collect()
}

fn base64(text: &str) -> Vec<u8> {
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
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// (method, uri, status) of every line of nginx's access log.
fn access_log() -> Vec<(String, String, u16)> {
    let mut logged: Vec<(String, String, u16)> =
        std::fs::read_to_string(fixture("loopback.access.log"))
            .expect("read the access log")
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                (f[2].to_string(), f[3].to_string(), f[4].parse().unwrap())
            })
            .collect();
    logged.sort();
    logged
}

fn first_line(payload: &[u8]) -> String {
    let end = payload
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

fn status_of(payload: &[u8]) -> u16 {
    first_line(payload)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn sorted_payloads<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload.clone()).collect();
    v.sort();
    v
}

/// Every request the clients sent, exactly once and byte for byte, each with exactly one
/// final response carrying its id, with nginx's status.
fn assert_every_request_once_with_its_response(records: &[Record]) {
    let requests: Vec<&Record> = records.iter().filter(|r| r.kind() == b'1').collect();
    let mut expected: Vec<Vec<u8>> = sidecar().into_iter().map(|s| s.raw).collect();
    expected.sort();
    assert!(
        sorted_payloads(requests.iter().copied()) == expected,
        "requests differ from what the clients sent: got {} (first lines {:?}), expected {}",
        requests.len(),
        requests
            .iter()
            .map(|r| first_line(&r.payload))
            .collect::<Vec<_>>(),
        expected.len()
    );
    let mut by_id: HashMap<String, &Record> = HashMap::new();
    for r in &requests {
        assert!(by_id.insert(r.id(), r).is_none(), "id {} reused", r.id());
    }
    let mut finals: HashMap<String, Vec<&Record>> = HashMap::new();
    for r in records.iter().filter(|r| r.kind() == b'2') {
        assert!(
            by_id.contains_key(&r.id()),
            "response {} has no request with its id",
            first_line(&r.payload)
        );
        if status_of(&r.payload) >= 200 {
            finals.entry(r.id()).or_default().push(r);
        }
    }
    let mut seen: Vec<(String, String, u16)> = Vec::new();
    for (id, request) in &by_id {
        let answers = finals.get(id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            answers.len(),
            1,
            "{}: {} final responses",
            first_line(&request.payload),
            answers.len()
        );
        let line = first_line(&request.payload);
        let mut parts = line.split(' ');
        seen.push((
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
            status_of(&answers[0].payload),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        access_log(),
        "(method, uri, status) differ from nginx's log"
    );
}

// ---------------------------------------------------------------------------------------------

#[test]
fn pfring_two_rings_capture_every_request_once_with_its_response() {
    let Some(run) = run_fake(
        &[],
        &[
            "--input-pfring",
            "lo:18480",
            "--input-pfring-rings",
            "2",
            "--input-raw-track-response",
            "--exit-after",
            "3s",
            "--output-stdout",
        ],
    ) else {
        return;
    };
    assert_success(&run.output);
    let summary = run.summary();
    assert!(!summary.contains("dropped"), "{summary}");
    let records = run.records();
    assert_every_request_once_with_its_response(&records);

    // Both rings worked, each on its own share, and together they passed on everything.
    let outs: Vec<u64> = (0..2)
        .map(|k| {
            run.counter(&format!("input-pfring[lo:18480#{k}]"), "out")
                .unwrap_or_else(|| panic!("no ring {k} in {summary}"))
        })
        .collect();
    assert!(outs.iter().all(|&n| n > 0), "{summary}");
    assert_eq!(outs.iter().sum::<u64>(), records.len() as u64, "{summary}");
    // One cluster of two members, per flow, read-only, both directions.
    assert_eq!(run.calls("cluster").len(), 2, "{:?}", run.log);
    assert!(run.calls("cluster").iter().all(|l| l.contains(" type=0 ")));
    assert!(run.calls("start")[0].contains("members=2 type=0"));
    assert_eq!(run.calls("socket_mode"), ["socket_mode 2"; 2]);
    assert_eq!(run.calls("direction"), ["direction 0"; 2]);
    assert_eq!(run.calls("bpf"), ["bpf tcp port 18480"; 2]);
    assert_eq!(run.calls("close").len(), 2, "rings are closed at the end");
}

#[test]
fn pfring_per_flow_cluster_keeps_each_connection_on_one_ring() {
    let Some(run) = run_fake(
        &[EOF_ERROR],
        &[
            "--input-pfring",
            "lo:18480",
            "--input-pfring-rings",
            "2",
            "--output-stdout",
        ],
    ) else {
        return;
    };
    assert_success(&run.output);
    let err = stderr(&run.output);
    assert!(
        err.contains("input-pfring[lo:18480#0]: pfring_recv failed")
            && err.contains("this ring's capture ends"),
        "a ring error ends the input with a log line: {err}"
    );
    let rings = run.assignments();
    assert_eq!(rings.len(), 2, "both rings got packets: {rings:?}");
    let all: Vec<u16> = rings.values().flatten().copied().collect();
    let distinct: BTreeSet<u16> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a connection went to two rings");
    assert_eq!(distinct.len(), 22, "22 connections in the fixture");

    // Each ring emitted exactly the requests of its own connections.
    let sent = sidecar();
    for (ring, ports) in &rings {
        let expected = sent
            .iter()
            .filter(|s| ports.contains(&s.local_port))
            .count() as u64;
        let label = format!("input-pfring[lo:18480#{ring}]");
        assert_eq!(
            run.counter(&label, "out"),
            Some(expected),
            "{}",
            run.summary()
        );
        let packets = run
            .calls("assign")
            .iter()
            .filter(|l| l.contains(&format!(" ring={ring} ")))
            .count() as u64;
        assert_eq!(
            run.counter(&label, "ring packets"),
            Some(packets),
            "{}",
            run.summary()
        );
    }
    let mut expected: Vec<Vec<u8>> = sent.into_iter().map(|s| s.raw).collect();
    expected.sort();
    assert!(sorted_payloads(&run.records()) == expected);
}

#[test]
fn pfring_round_robin_only_in_header_only_mode() {
    let Some(run) = run_fake(
        &[EOF_ERROR],
        &[
            "--input-pfring",
            "lo:18480",
            "--input-pfring-rings",
            "2",
            "--input-pfring-cluster-type",
            "round-robin",
            "--output-stdout",
        ],
    ) else {
        return;
    };
    assert_eq!(run.output.status.code(), Some(2));
    let err = stderr(&run.output);
    assert!(
        err.contains("--input-pfring-cluster-type") && err.contains("http-headers"),
        "{err}"
    );
    assert!(
        run.calls("open").is_empty(),
        "no ring opened: {:?}",
        run.log
    );

    let run = run_fake(
        &[EOF_ERROR],
        &[
            "--input-pfring",
            "lo:18480",
            "--input-pfring-rings",
            "2",
            "--input-pfring-cluster-type",
            "round-robin",
            "--input-raw-protocol",
            "http-headers",
            "--output-stdout",
        ],
    )
    .unwrap();
    assert_success(&run.output);
    assert!(run.calls("start")[0].contains("type=1"), "{:?}", run.log);
    // Packets alternate between the rings, so both see (parts of) most connections…
    let rings = run.assignments();
    let shared = rings[&0].intersection(&rings[&1]).count();
    assert!(
        shared > 10,
        "round-robin should split connections: {rings:?}"
    );
    // …and header-only mode still yields every header block once: the same as the pcap input.
    let reference = run_in(
        None,
        &[
            "--input-pcap",
            &format!("{}:{PORT}", fixture("loopback.pcap").display()),
            "--input-raw-protocol",
            "http-headers",
            "--output-stdout",
        ],
    );
    assert_success(&reference);
    let requests = |records: &[Record]| -> Vec<Vec<u8>> {
        sorted_payloads(records.iter().filter(|r| r.kind() == b'1'))
    };
    let expected = requests(&decode(&reference.stdout));
    assert!(expected.len() >= 25, "{}", expected.len());
    assert!(requests(&run.records()) == expected);
}

#[test]
fn pfring_kernel_drops_go_to_the_ledger() {
    let Some(run) = run_fake(
        &[EOF_ERROR, ("FAKE_PFRING_DROP_EVERY", "10")],
        &[
            "--input-pfring",
            "lo:18480",
            "--input-pfring-rings",
            "2",
            "--input-raw-track-response",
            "--output-null",
        ],
    ) else {
        return;
    };
    let summary = run.summary();
    let dropped = run
        .calls("assign")
        .iter()
        .filter(|l| l.ends_with(" dropped"))
        .count() as u64;
    assert_eq!(dropped, 267 / 10, "the fixture has 267 packets");
    let kernel: u64 = (0..2)
        .map(|k| {
            run.counter(&format!("input-pfring[lo:18480#{k}]"), "kernel drop")
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(kernel, dropped, "{summary}");
    let ring_drops: u64 = (0..2)
        .map(|k| {
            run.counter(&format!("input-pfring[lo:18480#{k}]"), "ring drops")
                .unwrap()
        })
        .sum();
    assert_eq!(ring_drops, dropped, "{summary}");
}

#[test]
fn pfring_flags_reach_the_library() {
    let Some(run) = run_fake(
        &[EOF_ERROR],
        &[
            "--input-pfring",
            "lo:18480",
            "--input-pfring",
            "lo",
            "--input-pfring-cluster-id",
            "77",
            "--input-pfring-cluster-type",
            "per-flow-5-tuple",
            "--input-pfring-promisc",
            "--input-pfring-snaplen",
            "9000",
            "--input-pfring-watermark",
            "64",
            "--input-pfring-poll-duration",
            "50ms",
            "--input-pfring-bpf-filter",
            "tcp",
            "--output-null",
        ],
    ) else {
        return;
    };
    assert_success(&run.output);
    // PF_RING_PROMISC | PF_RING_TIMESTAMP
    assert_eq!(
        run.calls("open")
            .iter()
            .map(|l| l.rsplit_once(" netns=").unwrap().0)
            .collect::<Vec<_>>(),
        ["open device=lo caplen=9000 flags=24"; 2]
    );
    assert_eq!(
        run.calls("cluster"),
        [
            "cluster id=77 type=4 member=0",
            "cluster id=78 type=4 member=0"
        ]
    );
    assert_eq!(run.calls("bpf"), ["bpf tcp"; 2]);
    assert_eq!(run.calls("watermark"), ["watermark 64"; 2]);
    assert_eq!(run.calls("poll_duration"), ["poll_duration 50"; 2]);
    assert_eq!(
        run.calls("application_name"),
        ["application_name shadowtap"; 2]
    );
    // Two clusters, each serving the whole file to its one ring.
    assert_eq!(
        run.counter("input-pfring[lo:18480]", "ring packets"),
        Some(267)
    );
    assert_eq!(run.counter("input-pfring[lo]", "ring packets"), Some(267));
}

#[test]
fn pfring_missing_library_says_how_to_install_it() {
    let output = run(&[
        "--input-pfring",
        "eth0:80",
        "--input-pfring-lib",
        "/nonexistent/libpfring.so",
        "--output-null",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    for needle in [
        "PF_RING is not installed",
        "/nonexistent/libpfring.so",
        "packages.ntop.org",
        "apt-get install pfring pfring-dkms",
        "modprobe pf_ring",
        "--input-raw IFACE:PORT",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    // Without --input-pfring-lib, the default places are tried (PF_RING is not installed here).
    if !Path::new("/usr/local/lib/libpfring.so").exists() {
        let output = run(&["--input-pfring", "eth0:80", "--output-null"]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let err = stderr(&output);
        assert!(
            err.contains("PF_RING is not installed") && err.contains("/usr/local/lib/libpfring.so"),
            "{err}"
        );
    }
}

#[test]
fn pfring_without_its_kernel_module_says_so() {
    // pfring_open fails with EAFNOSUPPORT when the pf_ring module is not loaded.
    let Some(run) = run_fake(
        &[("FAKE_PFRING_OPEN_ERRNO", "97")],
        &["--input-pfring", "lo:18480", "--output-null"],
    ) else {
        return;
    };
    assert_eq!(run.output.status.code(), Some(2));
    let err = stderr(&run.output);
    for needle in [
        "kernel module is not loaded",
        "modprobe pf_ring",
        "pfring-dkms",
        "--input-raw IFACE:PORT",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
}

/// A network namespace holding a dummy interface `pfr0`, deleted on drop.
struct Netns(String);

impl Netns {
    fn create() -> Option<Netns> {
        let name = format!("shadowtap-pfring-{}", std::process::id());
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(&["netns", "add", &name]) {
            return None;
        }
        let netns = Netns(name);
        ok(&[
            "-n", &netns.0, "link", "add", "pfr0", "type", "veth", "peer", "name", "pfr1",
        ])
        .then_some(netns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn pfring_netns_opens_the_ring_inside_the_namespace_only() {
    if fake_library().is_none() {
        return;
    }
    let Some(netns) = Netns::create() else {
        prerequisite_missing(
            "cannot create a network namespace",
            "run as root with iproute2: apt-get install -y iproute2",
        );
        return;
    };
    // pfr0 exists only inside the namespace.
    let outside = run_fake(
        &[EOF_ERROR],
        &["--input-pfring", "pfr0:18480", "--output-null"],
    )
    .unwrap();
    assert_eq!(outside.output.status.code(), Some(2));
    assert!(
        stderr(&outside.output).contains("no such interface"),
        "{}",
        stderr(&outside.output)
    );

    let value = format!("netns:{}/pfr0:18480", netns.0);
    let run = run_fake(
        &[EOF_ERROR],
        &[
            "--input-pfring",
            &value,
            "--input-pfring-rings",
            "2",
            "--output-stdout",
        ],
    )
    .unwrap();
    assert_success(&run.output);
    let inode = |path: &str| {
        use std::os::unix::fs::MetadataExt;
        format!("net:[{}]", std::fs::metadata(path).unwrap().ino())
    };
    let inside = inode(&format!("/var/run/netns/{}", netns.0));
    let here = inode("/proc/self/ns/net");
    let opens = run.calls("open");
    assert_eq!(opens.len(), 2);
    assert!(
        opens
            .iter()
            .all(|l| l.ends_with(&format!("netns={inside}"))),
        "rings opened outside {inside}: {opens:?}"
    );
    let recvs = run.calls("recv");
    assert_eq!(recvs.len(), 2);
    assert!(
        recvs.iter().all(|l| l.ends_with(&format!("netns={here}"))),
        "consumers still in the namespace: {recvs:?}"
    );
    assert_eq!(
        run.records().iter().filter(|r| r.kind() == b'1').count(),
        sidecar().len()
    );
    assert!(
        run.summary().contains(&format!("input-pfring[{value}#1]")),
        "{}",
        run.summary()
    );
}
