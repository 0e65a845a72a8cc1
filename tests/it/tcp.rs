//! `output-tcp` → `input-tcp` across two shadowtap processes: byte-exact chains, TLS, sticky
//! routing, and a receiver stopped and restarted mid-run.

use crate::common::*;
use crate::nginx::{free_port, wait_for_port};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn spawn(args: &[&str]) -> Child {
    command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shadowtap")
}

/// A receiver writing everything to `out` (appending, one file).
fn receiver(port: u16, out: &Path, extra: &[&str]) -> Child {
    let address = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--input-tcp",
        &address,
        "--output-file",
        path_str(out),
        "--output-file-append",
    ];
    args.extend_from_slice(extra);
    let child = spawn(&args);
    wait_for_port(port, Duration::from_secs(10));
    child
}

fn stop(child: Child) -> std::process::Output {
    terminate(&child);
    let output = wait_output(child, Duration::from_secs(20));
    assert_success(&output);
    output
}

/// Varied records: every kind, binary bytes, payloads ending in `\n`, an empty payload.
fn varied(count: usize) -> Vec<Record> {
    (0..count)
        .map(|i| {
            let id = format!("{:024x}", i + 1);
            let kind = [1, 2, 3][i % 3];
            let mut payload = format!("GET /item/{i} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes();
            match i % 5 {
                0 => payload.extend_from_slice(&[0, 255, 10, 13, 10]),
                1 => payload.extend_from_slice(b"ends with newline\n"),
                2 => payload.clear(),
                _ => {}
            }
            Record {
                meta: format!("{kind} {id} {} 0\n", 1_000_000 + i * 1000).into_bytes(),
                payload,
            }
        })
        .collect()
}

#[test]
fn chain_reproduces_the_input_bytes_exactly() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let out = dir.path().join("out.gor");
    let records = varied(300);
    write_gor(&input, &records);
    let port = free_port();
    let rx = receiver(port, &out, &[]);
    let sender = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-tcp",
        &format!("127.0.0.1:{port}"),
        "--output-tcp-workers",
        "1",
    ]);
    assert_success(&sender);
    let text = stderr(&sender);
    assert_eq!(summary_counter(&text, "output-tcp", "out"), 300, "{text}");
    stop(rx);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());
}

#[test]
fn chain_over_tls() {
    let dir = tempdir();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-days",
            "1",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&cert),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success());
    let input = dir.path().join("in.gor");
    let out = dir.path().join("out.gor");
    write_gor(&input, &varied(100));
    let port = free_port();
    let rx = receiver(
        port,
        &out,
        &[
            "--input-tcp-secure",
            "--input-tcp-certificate",
            path_str(&cert),
            "--input-tcp-certificate-key",
            path_str(&key),
        ],
    );
    let sender = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-tcp",
        &format!("localhost:{port}"),
        "--output-tcp-workers",
        "1",
        "--output-tcp-secure",
        "--output-tcp-skip-verify",
    ]);
    assert_success(&sender);
    stop(rx);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());
}

#[test]
fn many_workers_deliver_everything_and_sticky_keeps_pairs_in_order() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let records = traffic(200, 1_000_000);
    write_gor(&input, &records);
    for sticky in [false, true] {
        let out = dir.path().join(format!("out-{sticky}.gor"));
        let port = free_port();
        let rx = receiver(port, &out, &[]);
        let mut args = vec![
            "--input-file".to_string(),
            format!("{}|100000%", path_str(&input)),
            "--output-tcp".into(),
            format!("127.0.0.1:{port}"),
            "--output-tcp-workers".into(),
            "4".into(),
        ];
        if sticky {
            args.push("--output-tcp-sticky".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_success(&run(&args));
        let output = stop(rx);
        assert!(summary_counter(&stderr(&output), "input-tcp", "connections") >= 1);
        let got = read_gor(&out);
        let mut sorted_got = got.clone();
        let mut sorted_want = records.clone();
        sorted_got.sort_by_key(|r| (r.meta.clone(), r.payload.clone()));
        sorted_want.sort_by_key(|r| (r.meta.clone(), r.payload.clone()));
        assert_eq!(sorted_got, sorted_want, "sticky={sticky}");
        if sticky {
            for (i, r) in got.iter().enumerate() {
                if r.kind() == b'2' {
                    assert!(
                        got[..i]
                            .iter()
                            .any(|q| q.kind() == b'1' && q.id() == r.id()),
                        "response {} before its request",
                        r.id()
                    );
                }
            }
        }
    }
}

#[test]
fn receiver_restarted_mid_run_loses_nothing_and_keeps_order() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    // 60 messages 50 ms apart at original speed: a 3 s run.
    let payloads: Vec<String> = (0..60)
        .map(|i| format!("GET /seq/{i} HTTP/1.1\r\n\r\n"))
        .collect();
    write_requests(&input, &payloads, 50_000_000);
    let records = read_gor(&input);
    let (first, second) = (dir.path().join("first.gor"), dir.path().join("second.gor"));
    let port = free_port();
    let rx = receiver(port, &first, &[]);
    let sender = spawn(&[
        "--input-file",
        path_str(&input),
        "--output-tcp",
        &format!("127.0.0.1:{port}"),
        "--output-tcp-workers",
        "1",
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    let first_run = stderr(&stop(rx));
    std::thread::sleep(Duration::from_millis(600));
    let rx = receiver(port, &second, &[]);
    let sent = wait_output(sender, Duration::from_secs(30));
    assert_success(&sent);
    let second_run = stderr(&stop(rx));
    let text = format!("{}\n{first_run}\n{second_run}", stderr(&sent));
    let read = |path: &Path| {
        if path.exists() {
            read_gor(path)
        } else {
            Vec::new()
        }
    };
    let (a, b) = (read(&first), read(&second));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "{} + {}: {text}",
        a.len(),
        b.len()
    );
    let mut all = a;
    all.extend(b);
    assert_eq!(all, records, "{text}");
    assert!(
        summary_counter(&text, "output-tcp", "reconnects") > 0,
        "{text}"
    );
}
