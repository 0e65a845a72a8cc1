//! The plugin in-process against the fake `libpfring.so` (tests-support/fake_pfring.c, built
//! here with `cc`): two rings in one per-flow cluster split eight interleaved connections, each
//! ring reassembling whole connections, and drops reported by `pfring_stats` reach the ledger.
//! One test per binary: the fake reads its settings from the environment.

use shadowtap_api::{testkit, Kind, Reason};
use shadowtap_capture::testutil::{write_pcap, Conversation, Segment};
use std::path::{Path, PathBuf};
use std::process::Command;

use shadowtap_input_pfring as _;

fn build_fake(dir: &Path) -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests-support/fake_pfring.c");
    let lib = dir.join("libpfring.so");
    match Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&source)
        .status()
    {
        Ok(status) if status.success() => Some(lib),
        other => {
            let what = format!("cannot build the fake libpfring.so with cc: {other:?}");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "prerequisite missing under CI=true: {what} (apt-get install -y build-essential)"
            );
            println!("SKIPPED: {what} (apt-get install -y build-essential)");
            None
        }
    }
}

/// Eight connections to port 80, their packets interleaved; each one GET and its response.
fn interleaved_pcap(path: &Path) {
    let mut talks: Vec<Conversation> = (0..8)
        .map(|i| Conversation::new(&format!("10.0.0.{}:{}", i + 1, 40000 + i), "10.0.0.100:80"))
        .collect();
    let mut steps: Vec<Vec<Segment>> = vec![Vec::new(); 4];
    for (i, talk) in talks.iter_mut().enumerate() {
        steps[0].extend(talk.handshake());
        steps[1].push(talk.client(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()));
        steps[2].push(talk.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        steps[3].push(talk.client_fin());
    }
    let frames: Vec<(i64, Vec<u8>)> = steps
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(n, s)| (1_000_000_000 + n as i64 * 1000, s.ethernet()))
        .collect();
    std::fs::write(path, write_pcap(1, &frames)).unwrap();
}

#[test]
fn two_rings_in_a_per_flow_cluster_share_whole_connections() {
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = build_fake(dir.path()) else {
        return;
    };
    let pcap = dir.path().join("talk.pcap");
    interleaved_pcap(&pcap);
    // Only this test runs in this process, before any thread of ours reads the environment.
    std::env::set_var("FAKE_PFRING_PCAP", &pcap);
    std::env::set_var("FAKE_PFRING_EOF", "error");
    std::env::set_var("FAKE_PFRING_DROP_EVERY", "1000");
    let specs = testkit::build_inputs(
        "input-pfring",
        &[
            "--input-pfring",
            "lo:80",
            "--input-pfring-rings",
            "2",
            "--input-pfring-lib",
            lib.to_str().unwrap(),
            "--input-raw-track-response",
        ],
    )
    .unwrap();
    let labels: Vec<String> = specs.iter().map(|s| s.label.clone()).collect();
    assert_eq!(labels, ["input-pfring[lo:80#0]", "input-pfring[lo:80#1]"]);
    assert!(specs
        .iter()
        .all(|s| s.backpressure == shadowtap_api::Backpressure::Drop));
    // Sequentially is enough: packets for the other ring wait in its queue.
    let mut per_ring = Vec::new();
    let mut all = Vec::new();
    for spec in specs {
        let (messages, snapshot, result) = testkit::run_input(spec);
        result.unwrap();
        assert_eq!(snapshot.dropped(), 0, "{}", snapshot.describe());
        per_ring.push(messages.len());
        all.extend(messages);
    }
    assert_eq!(all.len(), 16, "8 requests and 8 responses: {per_ring:?}");
    assert!(
        per_ring.iter().all(|&n| n > 0 && n % 2 == 0),
        "both rings get whole connections: {per_ring:?}"
    );
    let mut paths: Vec<String> = all
        .iter()
        .filter(|m| m.kind() == Kind::Request)
        .map(|m| String::from_utf8_lossy(&m.payload[..6]).into_owned())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        (0..8).map(|i| format!("GET /{i}")).collect::<Vec<_>>()
    );
    for request in all.iter().filter(|m| m.kind() == Kind::Request) {
        assert_eq!(
            all.iter()
                .filter(|m| m.kind() == Kind::Response && m.id() == request.id())
                .count(),
            1
        );
    }

    // Every 5th packet lost in the ring: the ledger says so.
    std::env::set_var("FAKE_PFRING_DROP_EVERY", "5");
    let spec = testkit::build_inputs(
        "input-pfring",
        &[
            "--input-pfring",
            "lo:80",
            "--input-pfring-lib",
            lib.to_str().unwrap(),
        ],
    )
    .unwrap()
    .remove(0);
    let (_, snapshot, result) = testkit::run_input(spec);
    result.unwrap();
    let kernel = snapshot
        .drops
        .iter()
        .find(|(r, _)| *r == Reason::KernelDrop)
        .map(|(_, n)| *n);
    assert_eq!(kernel, Some(48 / 5), "{}", snapshot.describe());
}
