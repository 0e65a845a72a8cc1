//! `output-http` and `input-http` against real servers: nginx as the replay target, curl as
//! the client of `--input-http`.

use crate::common::*;
use crate::nginx::{free_port, wait_for_port, Nginx};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The requests of the replay tests: (payload, method, uri, x-test, content-length, body).
#[allow(clippy::type_complexity)]
fn requests() -> Vec<(
    String,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
)> {
    vec![
        (
            "GET /search?q=rust&page=2 HTTP/1.1\r\nHost: shop.example\r\nx-TEST: first\r\nUser-Agent: curl/8\r\n\r\n".into(),
            "GET", "/search?q=rust&page=2", "first", "-", "-",
        ),
        (
            "POST /orders?src=app HTTP/1.1\r\nhost: shop.example\r\nContent-Type: application/json\r\nContent-Length: 27\r\nX-Test: second\r\nConnection: close\r\n\r\n{\"item\":42,\"qty\":[1,2,3]}\r\n".into(),
            "POST", "/orders?src=app", "second", "27", "{\\x22item\\x22:42,\\x22qty\\x22:[1,2,3]}\\x0D\\x0A",
        ),
        (
            "PUT /upload HTTP/1.1\r\nHOST: shop.example\r\nTransfer-Encoding: chunked\r\nX-TeSt: third\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".into(),
            // nginx reports a de-chunked body's length as $content_length
            "PUT", "/upload", "third", "11", "hello world",
        ),
        (
            "DELETE /orders/7 HTTP/1.1\r\nHost: shop.example\r\nx-test: fourth\r\n\r\n".into(),
            "DELETE", "/orders/7", "fourth", "-", "-",
        ),
        (
            "HEAD /ping HTTP/1.1\r\nHost: shop.example\r\n\r\n".into(),
            "HEAD", "/ping", "-", "-", "-",
        ),
    ]
}

/// A named number from the exit summary of instance `label`, e.g. `out` or `error: refused`.
fn counter(stderr: &str, label: &str, name: &str) -> u64 {
    let summary = stderr
        .lines()
        .rev()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no summary for {label} in\n{stderr}"));
    let part = summary
        .split(" | ")
        .find(|p| p.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} in {summary}"));
    let needle = format!("{name} ");
    part.match_indices(&needle)
        .find(|(at, _)| *at > 0 && matches!(part.as_bytes()[at - 1], b' ' | b'(' | b','))
        .map(|(at, _)| {
            part[at + needle.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .unwrap_or(0)
}

#[test]
fn replays_requests_exactly_as_captured() {
    let nginx = Nginx::start();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let cases = requests();
    let payloads: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
    write_requests(&input, &payloads, 1_000_000);
    let file = format!("{}|10000%", path_str(&input));
    let url = nginx.url();
    let output = run(&[
        "--input-file",
        &file,
        "--output-http",
        &url,
        "--output-http-workers",
        "1",
    ]);
    assert_success(&output);
    let log = nginx.log();
    assert_eq!(log.len(), cases.len(), "{log:#?}");
    let authority = format!("127.0.0.1:{}", nginx.port);
    for (seen, (payload, method, uri, x_test, length, body)) in log.iter().zip(&cases) {
        assert_eq!(
            (
                seen.method.as_str(),
                seen.uri.as_str(),
                seen.x_test.as_str(),
                seen.content_length.as_str(),
                seen.body.as_str()
            ),
            (*method, *uri, *x_test, *length, *body)
        );
        assert_eq!(seen.http_host, authority, "Host is the target's host:port");
        assert_eq!(seen.status, 200);
        // Same bytes except the Host value (and the dropped `Connection: close` line).
        let mut expected = payload.len() + authority.len() - "shop.example".len();
        if payload.contains("Connection: close\r\n") {
            expected -= "Connection: close\r\n".len();
        }
        assert_eq!(seen.request_length, expected, "{method} {uri}");
    }
    assert!(
        log.iter().all(|l| l.connection == log[0].connection),
        "one keep-alive connection: {log:#?}"
    );
    let label = format!("output-http[{url}]");
    assert_eq!(counter(&stderr(&output), &label, "out"), cases.len() as u64);
}

#[test]
fn scheme_less_target_with_base_path_and_amplification() {
    let nginx = Nginx::start();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let payloads = vec![
        "GET /users?x=1 HTTP/1.1\r\nHost: prod\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nHost: prod\r\n\r\n".to_string(),
    ];
    write_requests(&input, &payloads, 1_000_000);
    let file = format!("{}|10000%", path_str(&input));
    let target = format!("127.0.0.1:{}/api|300%", nginx.port);
    let output = run(&[
        "--input-file",
        &file,
        "--output-http",
        &target,
        "--output-http-workers",
        "1",
    ]);
    assert_success(&output);
    let uris: Vec<String> = nginx.log().into_iter().map(|l| l.uri).collect();
    assert_eq!(
        uris,
        [
            "/api/users?x=1",
            "/api/users?x=1",
            "/api/users?x=1",
            "/api/",
            "/api/",
            "/api/"
        ]
    );
}

#[test]
fn target_killed_and_restarted_mid_run() {
    let mut nginx = Nginx::start();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let payloads: Vec<String> = (0..40)
        .map(|i| format!("GET /n/{i} HTTP/1.1\r\nHost: prod\r\nX-Test: {i}\r\n\r\n"))
        .collect();
    // 40 requests, 100 ms apart at original speed: a 4 s run.
    write_requests(&input, &payloads, 100_000_000);
    let url = nginx.url();
    let child = command()
        .args([
            "--input-file",
            path_str(&input),
            "--output-http",
            &url,
            "--output-http-timeout",
            "1s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    nginx.stop();
    std::thread::sleep(Duration::from_millis(1000));
    nginx.restart();
    let output = wait_output(child, Duration::from_secs(30));
    assert_success(&output);
    let text = stderr(&output);
    let label = format!("output-http[{url}]");
    let out = counter(&text, &label, "out");
    let failed = counter(&text, &label, "output error");
    let refused = counter(&text, &label, "error: refused");
    assert!(
        refused > 0,
        "failures counted while the target was down:\n{text}"
    );
    assert_eq!(out + failed, 40, "{text}");
    let log = nginx.log();
    assert_eq!(log.len() as u64, out, "{text}");
    let last: u32 = log.last().unwrap().x_test.parse().unwrap();
    assert_eq!(last, 39, "resumed after the restart");
}

#[test]
fn https_target_verifies_certificates_unless_told_not_to() {
    let nginx = Nginx::start_tls();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let payloads: Vec<String> = (0..3)
        .map(|i| format!("GET /tls/{i} HTTP/1.1\r\nHost: prod\r\n\r\n"))
        .collect();
    write_requests(&input, &payloads, 1_000_000);
    let file = format!("{}|10000%", path_str(&input));
    let url = nginx.url();
    let label = format!("output-http[{url}]");

    let output = run(&["--input-file", &file, "--output-http", &url]);
    assert_success(&output);
    let text = stderr(&output);
    assert_eq!(counter(&text, &label, "error: tls"), 3, "{text}");
    assert_eq!(nginx.log().len(), 0);

    let output = run(&[
        "--input-file",
        &file,
        "--output-http",
        &url,
        "--output-http-skip-verify",
        "--output-http-workers",
        "1",
    ]);
    assert_success(&output);
    assert_eq!(counter(&stderr(&output), &label, "out"), 3);
    let uris: Vec<String> = nginx.log().into_iter().map(|l| l.uri).collect();
    assert_eq!(uris, ["/tls/0", "/tls/1", "/tls/2"]);
}

#[test]
fn tracked_responses_come_back_as_kind_3_with_the_request_id() {
    let nginx = Nginx::start();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let payloads: Vec<String> = (0..4)
        .map(|i| format!("GET /t/{i} HTTP/1.1\r\nHost: prod\r\n\r\n"))
        .collect();
    write_requests(&input, &payloads, 1_000_000);
    let file = format!("{}|10000%", path_str(&input));
    let output = run(&[
        "--input-file",
        &file,
        "--output-http",
        &nginx.url(),
        "--output-http-track-response",
        "--output-stdout",
    ]);
    assert_success(&output);
    let records = decode(&output.stdout);
    let replayed: Vec<&Record> = records.iter().filter(|r| r.kind() == b'3').collect();
    assert_eq!(replayed.len(), 4, "{records:#?}");
    for (i, _) in payloads.iter().enumerate() {
        let id = format!("{:024x}", i + 1);
        let reply = replayed
            .iter()
            .find(|r| r.id() == id)
            .unwrap_or_else(|| panic!("no reply for {id}"));
        let text = reply.payload_text();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nok"),
            "{text:?}"
        );
        let meta = String::from_utf8_lossy(&reply.meta).into_owned();
        let rtt: i64 = meta.split(' ').nth(3).unwrap().trim().parse().unwrap();
        assert!(rtt > 0 && rtt < 5_000_000_000, "{meta}");
    }
}

#[test]
fn input_http_records_what_curl_sends() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let child = command()
        .args(["--input-http", &address, "--output-stdout"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, Duration::from_secs(10));
    let url = format!("http://{address}");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .expect("curl must be installed");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    curl(&[&format!("{url}/a?b=1"), "-H", "X-Odd-CASE: yes"]);
    curl(&[
        "-X",
        "POST",
        "--data-binary",
        "k=v&x=2",
        &format!("{url}/form"),
    ]);
    // Two requests on one keep-alive connection.
    curl(&[&format!("{url}/k1"), "--next", &format!("{url}/k2")]);
    std::thread::sleep(Duration::from_millis(300));
    terminate(&child);
    let output = wait_output(child, Duration::from_secs(10));
    assert_success(&output);
    let records = decode(&output.stdout);
    let texts: Vec<String> = records.iter().map(|r| r.payload_text()).collect();
    assert_eq!(records.len(), 4, "{texts:#?}");
    assert!(
        records
            .iter()
            .all(|r| r.kind() == b'1' && r.id().len() == 24),
        "{records:#?}"
    );
    assert!(
        texts[0].starts_with("GET /a?b=1 HTTP/1.1\r\n")
            && texts[0].contains("\r\nX-Odd-CASE: yes\r\n"),
        "{:?}",
        texts[0]
    );
    assert!(
        texts[1].starts_with("POST /form HTTP/1.1\r\n") && texts[1].ends_with("\r\n\r\nk=v&x=2"),
        "{:?}",
        texts[1]
    );
    assert!(
        texts[2].starts_with("GET /k1 ") && texts[3].starts_with("GET /k2 "),
        "{texts:#?}"
    );
    let meta = String::from_utf8_lossy(&records[0].meta).into_owned();
    assert!(meta.ends_with(" -1\n"), "{meta:?}");
}

#[test]
fn input_http_feeds_output_http() {
    let nginx = Nginx::start();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let child = command()
        .args([
            "--input-http",
            &address,
            "--output-http",
            &format!("localhost:{}", nginx.port),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, Duration::from_secs(10));
    let status = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-H",
            "X-Test: pushed",
            &format!("http://{address}/pushed?z=9"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while nginx.log().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    terminate(&child);
    assert_success(&wait_output(child, Duration::from_secs(10)));
    let log = nginx.log();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(
        (log[0].uri.as_str(), log[0].x_test.as_str()),
        ("/pushed?z=9", "pushed")
    );
    assert_eq!(log[0].http_host, format!("localhost:{}", nginx.port));
}

#[test]
fn rate_paces_without_dropping() {
    let nginx = Nginx::start();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let payloads: Vec<String> = (0..12)
        .map(|i| format!("GET /r/{i} HTTP/1.1\r\nHost: prod\r\n\r\n"))
        .collect();
    write_requests(&input, &payloads, 1_000);
    let file = format!("{}|10000%", path_str(&input));
    let started = std::time::Instant::now();
    let output = run(&[
        "--input-file",
        &file,
        "--output-http",
        &nginx.url(),
        "--output-http-rate",
        "20",
    ]);
    let elapsed = started.elapsed();
    assert_success(&output);
    assert_eq!(nginx.log().len(), 12);
    assert!(
        elapsed >= Duration::from_millis(500),
        "12 requests at 20/s took {elapsed:?}"
    );
}
