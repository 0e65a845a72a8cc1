//! Replayed responses through the middleware, `--metrics` and `--stats` with real servers.

use crate::common::*;
use crate::nginx::{free_port, wait_for_port, Nginx};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

/// A Python middleware (using the shipped helper) that passes everything on and marks
/// replayed responses with `X-Seen-By: middleware`.
fn marking_middleware(dir: &std::path::Path) -> String {
    let script = dir.join("mark.py");
    let helper = repo().join("middleware/python");
    std::fs::write(
        &script,
        format!(
            "import sys\nsys.path.insert(0, {helper:?})\nfrom shadowtap_middleware import run\n\n\
             def handle(msg):\n    if msg.kind == 3:\n        msg.set_header('X-Seen-By', 'middleware')\n    return msg\n\n\
             run(handle)\n",
            helper = path_str(&helper)
        ),
    )
    .unwrap();
    format!("python3 {}", path_str(&script))
}

fn requests(dir: &std::path::Path, count: usize) -> std::path::PathBuf {
    let input = dir.join("in.gor");
    let payloads: Vec<String> = (0..count)
        .map(|i| format!("GET /fb/{i} HTTP/1.1\r\nHost: prod\r\n\r\n"))
        .collect();
    write_requests(&input, &payloads, 1);
    input
}

#[test]
fn replayed_responses_go_through_the_middleware() {
    let nginx = Nginx::start();
    let dir = tempdir();
    let input = requests(dir.path(), 20);
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--middleware",
        &marking_middleware(dir.path()),
        "--output-http",
        &nginx.url(),
        "--output-http-track-response",
        "--output-stdout",
    ]);
    assert_success(&output);
    let records = decode(&output.stdout);
    let replayed: Vec<&Record> = records.iter().filter(|r| r.kind() == b'3').collect();
    assert_eq!(replayed.len(), 20, "{}", stderr(&output));
    for r in &replayed {
        let text = r.payload_text();
        assert!(
            text.starts_with("HTTP/1.1 200") && text.contains("\r\nX-Seen-By: middleware\r\n"),
            "{text:?}"
        );
    }
    assert_eq!(records.iter().filter(|r| r.kind() == b'1').count(), 20);
    assert_eq!(nginx.log().len(), 20);
    let err = stderr(&output);
    assert_eq!(summary_counter(&err, "middleware[", "in"), 40, "{err}");
}

#[test]
fn feedback_through_the_echo_middleware_does_not_deadlock_under_load() {
    let nginx = Nginx::start();
    let dir = tempdir();
    let input = requests(dir.path(), 3000);
    let out = dir.path().join("out.gor");
    let started = std::time::Instant::now();
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--middleware",
        "python3 middleware/python/echo.py",
        "--output-http",
        &nginx.url(),
        "--output-http-track-response",
        "--output-http-queue-len",
        "2",
        "--output-http-workers",
        "4",
        "--output-file",
        path_str(&out),
        "--output-file-append",
    ]);
    let output = {
        assert_success(&output);
        output
    };
    let err = stderr(&output);
    let records = read_gor(&out);
    let requests = records.iter().filter(|r| r.kind() == b'1').count();
    let replies = records.iter().filter(|r| r.kind() == b'3').count() as u64;
    assert_eq!(requests, 3000, "{err}");
    // Every replayed response reached the file, or was counted as dropped.
    let dropped = summary_counter(&err, "middleware[", "queue full");
    assert_eq!(replies + dropped, 3000, "{err}");
    assert!(started.elapsed() < Duration::from_secs(40));
}

fn scrape(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn metrics_serves_the_ledger_as_prometheus_text() {
    let port = free_port();
    let http_port = free_port();
    let child = command()
        .args([
            "--input-http",
            &format!("127.0.0.1:{http_port}"),
            "--http-disallow-url",
            "^/private",
            "--output-null",
            "--metrics",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(http_port, Duration::from_secs(10));
    wait_for_port(port, Duration::from_secs(10));
    for path in ["/a", "/private/b", "/c"] {
        let mut s = TcpStream::connect(("127.0.0.1", http_port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape(port, "/metrics");
    terminate(&child);
    assert_success(&wait_output(child, Duration::from_secs(10)));
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4"),
        "{text}"
    );
    let label = format!("plugin=\"input-http[127.0.0.1:{http_port}]\",role=\"input\"");
    for line in [
        format!("shadowtap_messages_in_total{{{label}}} 3"),
        format!("shadowtap_messages_out_total{{{label}}} 3"),
        "shadowtap_messages_dropped_total{plugin=\"emitter\",role=\"engine\",reason=\"filtered\"} 1".to_string(),
        "shadowtap_messages_out_total{plugin=\"output-null\",role=\"output\"} 2".to_string(),
        "# TYPE shadowtap_messages_in_total counter".to_string(),
        "# TYPE shadowtap_errors_total counter".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(connect_after_exit(port).is_none());
}

/// After the run the server is gone: connecting fails.
fn connect_after_exit(port: u16) -> Option<String> {
    TcpStream::connect(("127.0.0.1", port)).ok().map(|mut s| {
        let _ = write!(s, "GET /nope HTTP/1.1\r\n\r\n");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    })
}

#[test]
fn metrics_counters_of_plugins_and_unknown_paths() {
    let port = free_port();
    let dead = free_port();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    // Two requests 1.5 s apart at original speed: the run lasts long enough to scrape.
    write_gor(
        &input,
        &[
            Record::request("a", 1_000_000_000, "GET /x HTTP/1.1\r\n\r\n"),
            Record::request("b", 2_500_000_000, "GET /y HTTP/1.1\r\n\r\n"),
        ],
    );
    let child = command()
        .args([
            "--input-file",
            path_str(&input),
            "--output-http",
            &format!("127.0.0.1:{dead}"),
            "--metrics",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, Duration::from_secs(10));
    let line = format!(
        "shadowtap_counter{{plugin=\"output-http[127.0.0.1:{dead}]\",role=\"output\",name=\"error: refused\"}} 1"
    );
    // The first request fails at once; the second comes 1.5 s later. Under load the first
    // failure can take a moment to be counted, so scrape until it shows, before the second.
    let deadline = std::time::Instant::now() + Duration::from_millis(1300);
    let mut text = scrape(port, "/metrics");
    while !text.lines().any(|l| l == line) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        text = scrape(port, "/metrics");
    }
    let missing = scrape(port, "/other");
    let output = wait_output(child, Duration::from_secs(20));
    assert_success(&output);
    assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[test]
fn metrics_address_in_use_fails() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = run(&["--input-dummy", "x", "--output-null", "--metrics", &address]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--metrics"), "{}", stderr(&output));
}

#[test]
fn stats_lines_show_output_http_error_counters() {
    let dead = free_port();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_requests(&input, &plain_gets(6), 100_000_000);
    let output = run(&[
        "--input-file",
        path_str(&input),
        "--output-http",
        &format!("127.0.0.1:{dead}"),
        "--stats",
        "--stats-interval",
        "100ms",
    ]);
    assert_success(&output);
    let err = stderr(&output);
    assert!(
        err.lines()
            .any(|l| l.starts_with("[stats] ") && l.contains("error: refused")),
        "{err}"
    );
}
