//! `.gor` files in and out: byte-exact round trips, merging, gzip, timing, and bad input.

use crate::common::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn odd_records() -> Vec<Record> {
    let big_body = "b".repeat(1 << 20);
    vec![
        Record::request(
            "0123456789abcdef01234567",
            1_000,
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        Record {
            meta: b"2 da39a3ee5e6b4b0d3255bfef95601890afd80709 2000\n".to_vec(),
            payload: b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        },
        Record {
            meta: b"3 abc 3000 17 extra trailing fields\n".to_vec(),
            payload: b"HTTP/1.1 200 OK\r\n\r\n\x00\xff binary \n\n".to_vec(),
        },
        Record::request(
            "ffffffffffffffffffffffff",
            4_000,
            &format!(
                "POST /big HTTP/1.1\r\nContent-Length: {}\r\n\r\n{big_body}",
                big_body.len()
            ),
        ),
        Record::request(
            "feed",
            5_000,
            "GET /monkeys HTTP/1.1\r\n\r\n🐵🙈🙉 inside\n🐵🙈🙉x\n",
        ),
    ]
}

#[test]
fn gor_round_trip_is_byte_exact() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &odd_records());
    let out = dir.path().join("out.gor");
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-file",
        path_str(&out),
        "--output-file-append",
    ]);
    assert_success(&output);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());
}

#[test]
fn stdout_writes_the_same_records() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &odd_records());
    let output = run(&[
        "-input-file",
        &format!("{}|100000%", path_str(&input)),
        "-output-stdout",
    ]);
    assert_success(&output);
    assert_eq!(output.stdout, std::fs::read(&input).unwrap());
}

#[test]
fn two_files_merge_by_timestamp() {
    let dir = tempdir();
    let all = traffic(50, 1_700_000_000_000_000_000);
    let (even, odd): (Vec<_>, Vec<_>) = all.chunks(2).enumerate().partition(|(i, _)| i % 2 == 0);
    write_gor(
        &dir.path().join("a.gor"),
        &even
            .into_iter()
            .flat_map(|(_, c)| c.to_vec())
            .collect::<Vec<_>>(),
    );
    write_gor(
        &dir.path().join("b.gor"),
        &odd.into_iter()
            .flat_map(|(_, c)| c.to_vec())
            .collect::<Vec<_>>(),
    );
    let pattern = format!("{}/*.gor|100000%", path_str(dir.path()));
    let output = run(&["--input-file", &pattern, "--output-stdout"]);
    assert_success(&output);
    assert_eq!(decode(&output.stdout), all);
}

#[test]
fn gzip_in_and_out() {
    let dir = tempdir();
    let records = traffic(20, 1);
    let gz_in = dir.path().join("in.gor.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_in).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(&encode(&records)).unwrap();
    encoder.finish().unwrap();
    let gz_out = dir.path().join("out.gor.gz");
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&gz_in)),
        "--output-file",
        path_str(&gz_out),
        "--output-file-append",
    ]);
    assert_success(&output);
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&gz_out).unwrap()),
        &mut plain,
    )
    .unwrap();
    assert_eq!(decode(&plain), records);
}

#[test]
fn chunks_follow_goreplay_naming_and_a_restart_continues() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &traffic(5, 1));
    let template = dir.path().join("req.gor");
    for _ in 0..2 {
        let output = run(&[
            "--input-file",
            &format!("{}|100000%", path_str(&input)),
            "--output-file",
            path_str(&template),
            "--output-file-queue-limit",
            "4",
        ]);
        assert_success(&output);
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("req_"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "req_0.gor",
            "req_1.gor",
            "req_2.gor",
            "req_3.gor",
            "req_4.gor",
            "req_5.gor"
        ]
    );
    assert_eq!(read_gor(&dir.path().join("req_0.gor")).len(), 4);
    assert_eq!(read_gor(&dir.path().join("req_2.gor")).len(), 2);
}

#[test]
fn replay_at_1000_percent_keeps_relative_timing_and_exits() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_requests(&input, &plain_gets(11), 100_000_000);
    let started = Instant::now();
    let output = run(&[
        "--input-file",
        &format!("{}|1000%", path_str(&input)),
        "--output-null",
    ]);
    let elapsed = started.elapsed();
    assert_success(&output);
    assert!(
        elapsed >= Duration::from_millis(90),
        "1 s of traffic at 10x took {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(900),
        "1 s of traffic at 10x took {elapsed:?}"
    );
    assert!(
        stderr(&output).contains("output-null in 11 out 11"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn explicit_speed_and_max_wait() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_requests(&input, &plain_gets(3), 10_000_000_000);
    let started = Instant::now();
    let output = run(&[
        "--input-file",
        path_str(&input),
        "--input-file-speed",
        "2x",
        "--input-file-max-wait",
        "100ms",
        "--output-null",
    ]);
    assert_success(&output);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "max-wait not applied: {:?}",
        started.elapsed()
    );
}

#[test]
fn dry_run_prints_a_summary_and_exits() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &traffic(10, 0));
    let output = run(&[
        "--input-file",
        path_str(&input),
        "--input-file-dry-run",
        "--output-null",
    ]);
    assert_success(&output);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("Records found: 20\nFiles processed: 1\n"),
        "{text}"
    );
    assert!(
        text.contains("It will take `9.5ms` to replay at current speed."),
        "{text}"
    );
    assert!(
        text.contains("Found 0 records with out of order timestamp"),
        "{text}"
    );
}

#[test]
fn loop_replays_again_until_stopped() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &traffic(2, 0));
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--input-file-loop",
        "--exit-after",
        "300ms",
        "--output-null",
    ]);
    assert_success(&output);
    let text = stderr(&output);
    let count: u64 = text
        .split("output-null in ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(count > 4, "looped only {count} messages: {text}");
}

#[test]
fn bad_records_are_named_and_good_ones_still_flow() {
    let dir = tempdir();
    let input = dir.path().join("bad.gor");
    let mut bytes = encode(&[Record::request("good1", 1, "GET /1 HTTP/1.1\r\n\r\n")]);
    bytes.extend_from_slice(b"1 twofields\nGET / HTTP/1.1\r\n\r\n");
    bytes.extend_from_slice(SEPARATOR);
    bytes.extend_from_slice(&[0, 1, 2, 255, 254, b'\n', 7, 7]);
    bytes.extend_from_slice(SEPARATOR);
    bytes.extend_from_slice(&encode(&[Record::request(
        "good2",
        2,
        "GET /2 HTTP/1.1\r\n\r\n",
    )]));
    bytes.extend_from_slice(b"1 cut 3 0\nGET /cut-off-mid-rec");
    std::fs::write(&input, bytes).unwrap();
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-stdout",
    ]);
    assert_success(&output);
    let ids: Vec<String> = decode(&output.stdout).iter().map(Record::id).collect();
    assert_eq!(ids, ["good1", "good2"]);
    let text = stderr(&output);
    assert!(
        text.contains("bad.gor: record 2: header has 1 field(s)")
            || text.contains("bad.gor: record 2: header has 2 field(s)"),
        "{text}"
    );
    assert!(text.contains("record 3"), "{text}");
    assert!(
        text.contains("record 5: stream ends without a record separator"),
        "{text}"
    );
    assert!(text.contains("malformed 3"), "{text}");
}

#[test]
fn empty_file_is_reported_and_the_run_ends() {
    let dir = tempdir();
    let input = dir.path().join("empty.gor");
    std::fs::write(&input, b"").unwrap();
    let output = run(&["--input-file", path_str(&input), "--output-null"]);
    assert_success(&output);
    assert!(
        stderr(&output).contains("file is empty"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn missing_paths_directories_and_empty_globs_exit_2_naming_them() {
    let dir = tempdir();
    let cases = [
        (dir.path().join("missing.gor"), "no file matches"),
        (dir.path().join("none-*.gor"), "no file matches"),
        (dir.path().to_path_buf(), "is a directory"),
    ];
    for (path, expected) in cases {
        let output = run(&["--input-file", path_str(&path), "--output-null"]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let text = stderr(&output);
        assert!(
            text.contains("--input-file")
                && text.contains(expected)
                && text.contains(path_str(&path)),
            "{text}"
        );
    }
}

#[test]
fn gzip_that_is_not_gzip_is_reported() {
    let dir = tempdir();
    let input = dir.path().join("fake.gor.gz");
    std::fs::write(&input, b"this is not gzip at all\n").unwrap();
    let output = run(&["--input-file", path_str(&input), "--output-null"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("fake.gor.gz"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn unwritable_output_is_named_counted_and_fails_the_run() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &traffic(3, 0));
    let blocker = dir.path().join("plainfile");
    std::fs::write(&blocker, b"x").unwrap();
    let template = format!("{}/%Y/out.gor", path_str(&blocker));
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-file",
        &template,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(path_str(&blocker)) && text.contains("output error 6"),
        "{text}"
    );
}

#[test]
fn disk_full_is_counted_and_fails_the_run() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &traffic(2000, 0));
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-file",
        "/dev/full",
        "--output-file-append",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("/dev/full") && text.contains("output error"),
        "{text}"
    );
}

#[test]
fn copy_buffer_size_truncates_and_counts() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(
        &input,
        &[
            Record::request("big", 1, &"x".repeat(5000)),
            Record::request("small", 2, "y"),
        ],
    );
    let output = run(&[
        "--input-file",
        path_str(&input),
        "--copy-buffer-size",
        "1kb",
        "--output-stdout",
    ]);
    assert_success(&output);
    let records = decode(&output.stdout);
    assert_eq!(records[0].payload.len(), 1024);
    assert_eq!(records[1].payload, b"y");
    assert!(
        stderr(&output).contains("truncated 1"),
        "{}",
        stderr(&output)
    );
}

/// Starts shadowtap with `args` in the background (stdout and stderr piped).
fn spawn(args: &[&str]) -> std::process::Child {
    command()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start shadowtap")
}

fn gunzip_records(path: &std::path::Path) -> Vec<Record> {
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut plain,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode(&plain)
}

/// 60 requests 50 ms apart: a steady 3 s stream when replayed at normal speed.
fn steady_stream(path: &std::path::Path, first_id: usize) -> Vec<Record> {
    let records: Vec<Record> = (0..60)
        .map(|i| {
            Record::request(
                &format!("{:024x}", first_id + i),
                1_000_000_000 + i as i64 * 50_000_000,
                "GET / HTTP/1.1\r\n\r\n",
            )
        })
        .collect();
    write_gor(path, &records);
    records
}

#[test]
fn records_reach_the_disk_every_flush_interval_under_steady_traffic() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    steady_stream(&input, 1);
    let plain = dir.path().join("out.gor");
    let gz = dir.path().join("out.gor.gz");
    let mut child = spawn(&[
        "--input-file",
        path_str(&input),
        "--output-file",
        path_str(&plain),
        "--output-file",
        path_str(&gz),
        "--output-file-append",
        "--output-file-flush-interval",
        "200ms",
    ]);
    std::thread::sleep(Duration::from_millis(1200));
    let running = child.try_wait().unwrap().is_none();
    let on_disk = (read_gor(&plain).len(), gunzip_records(&gz).len());
    let _ = child.kill();
    let _ = child.wait();
    assert!(running, "the replay should still run");
    // About 20 records were replayed by now; all but the last interval's are on disk.
    assert!(
        on_disk.0 >= 10 && on_disk.1 >= 10,
        "on disk after 1.2 s: {on_disk:?}"
    );
}

#[test]
fn kill_9_then_append_to_gz_loses_at_most_the_last_interval() {
    let dir = tempdir();
    let first = dir.path().join("first.gor");
    let first_records = steady_stream(&first, 1);
    let gz = dir.path().join("log.gor.gz");
    let mut child = spawn(&[
        "--input-file",
        path_str(&first),
        "--output-file",
        path_str(&gz),
        "--output-file-append",
        "--output-file-flush-interval",
        "200ms",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let second = dir.path().join("second.gor");
    let second_records = steady_stream(&second, 1000);
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&second)),
        "--output-file",
        path_str(&gz),
        "--output-file-append",
    ]);
    assert_success(&output);
    let gzip = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .output()
        .expect("gzip");
    assert!(
        gzip.status.success(),
        "{}",
        String::from_utf8_lossy(&gzip.stderr)
    );
    let records = decode(&gzip.stdout);
    let survived = records.len() - second_records.len();
    // 1.5 s of a record every 50 ms is 30 records; one 200 ms interval holds 4.
    assert!(
        survived >= 20,
        "only {survived} records of the killed run survived"
    );
    assert_eq!(records[..survived], first_records[..survived]);
    assert_eq!(records[survived..], second_records[..]);
    let replay = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&gz)),
        "--output-stdout",
    ]);
    assert_success(&replay);
    // input-file merges by timestamp, and both runs used the same timestamps.
    let mut replayed = decode(&replay.stdout);
    let mut expected = records.clone();
    replayed.sort_by_key(Record::id);
    expected.sort_by_key(Record::id);
    assert!(replayed == expected, "{}", stderr(&replay));
}

#[test]
fn an_id_in_a_file_name_cannot_leave_the_directory() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(
        &input,
        &[Record::request("..", 1, "GET / HTTP/1.1\r\n\r\n")],
    );
    std::fs::create_dir_all(dir.path().join("out/__")).unwrap();
    let template = dir.path().join("out/%r/req.gor");
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-file",
        path_str(&template),
        "--output-file-append",
    ]);
    assert_success(&output);
    assert!(
        !dir.path().join("out/req.gor").exists(),
        "the id escaped out/.."
    );
    assert_eq!(read_gor(&dir.path().join("out/__/req.gor")).len(), 1);
}

#[test]
fn a_2_gib_record_is_skipped_in_bounded_memory_counted_oversized_and_reading_resyncs() {
    let dir = tempdir();
    let input = dir.path().join("huge.gor");
    let mut file = std::fs::File::create(&input).unwrap();
    file.write_all(b"1 huge 1 0\nPOST / HTTP/1.1\r\n\r\n")
        .unwrap();
    // A sparse 2 GiB payload without any separator, then a good record.
    file.set_len(2 << 30).unwrap();
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).unwrap();
    file.write_all(SEPARATOR).unwrap();
    file.write_all(&encode(&[Record::request(
        "after",
        2,
        "GET / HTTP/1.1\r\n\r\n",
    )]))
    .unwrap();
    drop(file);
    let output = run_with_address_space_limit(
        3 << 29,
        &[
            "--input-file",
            &format!("{}|100000%", path_str(&input)),
            "--copy-buffer-size",
            "4gb",
            "--output-stdout",
        ],
    );
    let text = stderr(&output);
    assert_success(&output);
    let ids: Vec<String> = decode(&output.stdout).iter().map(Record::id).collect();
    assert_eq!(ids, ["after"], "{text}");
    assert!(
        text.contains("huge.gor: record 1: 2147483") && text.contains("record cap; skipped"),
        "{text}"
    );
    assert_eq!(
        summary_counter(&text, "input-file", "oversized"),
        1,
        "{text}"
    );
}
