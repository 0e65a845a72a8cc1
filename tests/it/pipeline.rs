//! The emitter end to end: fan-out, split, rate limits, stats, signals and exits.

use crate::common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn input_with(records: &[Record]) -> (tempfile::TempDir, String) {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, records);
    let value = format!("{}|100000%", path_str(&input));
    (dir, value)
}

#[test]
fn every_output_gets_every_message() {
    let records = traffic(100, 0);
    let (dir, input) = input_with(&records);
    let a = dir.path().join("a.gor");
    let b = dir.path().join("b.gor");
    let output = run(&[
        "--input-file",
        &input,
        "--output-file",
        path_str(&a),
        "--output-file",
        path_str(&b),
        "--output-file-append",
    ]);
    assert_success(&output);
    assert_eq!(read_gor(&a), records);
    assert_eq!(read_gor(&b), records);
}

#[test]
fn split_output_round_robins_requests_and_responses_follow() {
    let records = traffic(100, 0);
    let (dir, input) = input_with(&records);
    let a = dir.path().join("a.gor");
    let b = dir.path().join("b.gor");
    let output = run(&[
        "--input-file",
        &input,
        "--split-output",
        "--output-file",
        path_str(&a),
        "--output-file",
        path_str(&b),
        "--output-file-append",
    ]);
    assert_success(&output);
    let (a, b) = (read_gor(&a), read_gor(&b));
    assert_eq!(a.len(), 100);
    assert_eq!(b.len(), 100);
    for part in [a, b] {
        for pair in part.chunks(2) {
            assert_eq!(pair[0].id(), pair[1].id(), "a response left its request");
        }
    }
}

#[test]
fn absolute_input_limit_drops_beyond_n_per_second() {
    let records = traffic(100, 0);
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &records);
    let value = format!("{}|10", path_str(&input));
    let output = run(&[
        "--input-file",
        &value,
        "--input-file-speed",
        "100000x",
        "--output-stdout",
    ]);
    assert_success(&output);
    let passed = decode(&output.stdout);
    let requests = passed.iter().filter(|r| r.kind() == b'1').count();
    assert!((10..=20).contains(&requests), "{requests} requests passed");
    assert_eq!(
        passed.len(),
        requests * 2,
        "responses must follow their requests' fate"
    );
    assert!(
        stderr(&output).contains("rate limited"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn percent_output_limit_samples_requests_with_their_responses() {
    let records = traffic(200, 0);
    let (dir, input) = input_with(&records);
    let none = dir.path().join("none.gor");
    let half = dir.path().join("half.gor");
    let output = run(&[
        "--input-file",
        &input,
        "--output-file",
        &format!("{}|0%", path_str(&none)),
        "--output-file",
        &format!("{}|50%", path_str(&half)),
        "--output-file-append",
    ]);
    assert_success(&output);
    assert!(!none.exists() || read_gor(&none).is_empty());
    let half = read_gor(&half);
    assert!(
        (120..=280).contains(&half.len()),
        "{} of 400 passed at 50%",
        half.len()
    );
    for pair in half.chunks(2) {
        assert_eq!(pair[0].id(), pair[1].id());
    }
}

#[test]
fn exit_after_stops_an_endless_input_with_status_0() {
    let started = Instant::now();
    let output = run(&[
        "--input-dummy",
        "x",
        "--output-null",
        "--exit-after",
        "1500ms",
    ]);
    assert_success(&output);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        stderr(&output).contains("input-dummy[x] in 2 out 2"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn stats_prints_periodically() {
    let output = run(&[
        "--input-dummy",
        "x",
        "--output-null",
        "--exit-after",
        "1200ms",
        "--stats",
        "--stats-interval",
        "300ms",
    ]);
    assert_success(&output);
    let lines = stderr(&output)
        .lines()
        .filter(|l| l.starts_with("[stats] "))
        .count();
    assert!(lines >= 2, "{}", stderr(&output));
}

#[test]
fn sigint_drains_and_flushes_then_exits_0() {
    let dir = tempdir();
    let out = dir.path().join("out.gor");
    let child = command()
        .args([
            "--input-dummy",
            "x",
            "--output-file",
            path_str(&out),
            "--output-file-append",
            "--output-file-flush-interval",
            "1h",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(signal(child.id(), "INT"));
    let output = wait_output(child, Duration::from_secs(10));
    assert_success(&output);
    let records = read_gor(&out);
    assert!(
        records.len() >= 2,
        "flushed {} records; {}",
        records.len(),
        stderr(&output)
    );
    assert!(
        stderr(&output).contains(&format!(
            "output-file[{}] in {n} out {n}",
            path_str(&out),
            n = records.len()
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn closed_stdout_ends_the_run_with_status_0() {
    let records = traffic(20_000, 0);
    let (_dir, input) = input_with(&records);
    let mut child = command()
        .args(["--input-file", &input, "--output-stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let output = wait_output(child, Duration::from_secs(20));
    assert_success(&output);
}
