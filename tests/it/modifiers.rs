//! The `--http-*` modifiers and `--prettify-http`, each with real requests: replayed to nginx
//! (checked in its access log) or written to stdout (checked byte for byte).

use crate::common::*;
use crate::nginx::{Logged, Nginx};
use std::io::Write;

/// Replays `payloads` (as kind-1 records) through `flags` to a fresh nginx, in order on one
/// connection; returns the run's stderr and nginx's log.
fn replay(payloads: &[String], flags: &[&str]) -> (String, Vec<Logged>) {
    let nginx = Nginx::start();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let records: Vec<Record> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| Record::request(&format!("{:024x}", i + 1), 1_000_000 + i as i64, p))
        .collect();
    write_gor(&input, &records);
    let file = format!("{}|100000%", path_str(&input));
    let url = nginx.url();
    let mut args = vec![
        "--input-file",
        &file,
        "--output-http",
        &url,
        "--output-http-workers",
        "1",
    ];
    args.extend_from_slice(flags);
    let output = run(&args);
    assert_success(&output);
    (stderr(&output), nginx.log())
}

fn get(target: &str, headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: prod.example\r\n{headers}\r\n")
}

fn uris(log: &[Logged]) -> Vec<&str> {
    log.iter().map(|l| l.uri.as_str()).collect()
}

fn filtered(stderr: &str) -> u64 {
    summary_counter(stderr, "emitter", "filtered")
}

#[test]
fn allow_method() {
    let payloads = vec![
        get("/1", ""),
        "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi".to_string(),
        "PUT /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".to_string(),
        "get /4 HTTP/1.1\r\nHost: a\r\n\r\n".to_string(),
    ];
    let (err, log) = replay(
        &payloads,
        &["--http-allow-method", "GET", "--http-allow-method", "PUT"],
    );
    assert_eq!(uris(&log), ["/1", "/3"], "case-sensitive method match");
    assert_eq!(filtered(&err), 2, "{err}");
}

#[test]
fn allow_url_and_disallow_url() {
    let payloads = vec![
        get("/api/users?x=1", ""),
        get("/static/app.js", ""),
        get("/api/admin/drop", ""),
        get("/api/orders", ""),
    ];
    let (_, log) = replay(&payloads, &["--http-allow-url", "^/api/"]);
    assert_eq!(
        uris(&log),
        ["/api/users?x=1", "/api/admin/drop", "/api/orders"]
    );
    let (err, log) = replay(
        &payloads,
        &[
            "--http-allow-url",
            "^/api/",
            "--http-disallow-url",
            "/admin/",
        ],
    );
    assert_eq!(uris(&log), ["/api/users?x=1", "/api/orders"]);
    assert_eq!(filtered(&err), 2);
}

#[test]
fn allow_header_and_disallow_header() {
    let payloads = vec![
        get("/1", "X-Test: keep-1\r\n"),
        get("/2", "X-Test: drop-2\r\n"),
        get("/3", ""),
        get("/4", "x-test: keep-4\r\nX-Bot: yes\r\n"),
        // The header only appears in the body: not a header (GoReplay looked there too).
        "POST /5 HTTP/1.1\r\nHost: a\r\nContent-Length: 14\r\n\r\nX-Test: keep-5".to_string(),
    ];
    let (_, log) = replay(&payloads, &["--http-allow-header", "X-Test: ^keep"]);
    assert_eq!(uris(&log), ["/1", "/4"]);
    let (_, log) = replay(&payloads, &["--http-disallow-header", "X-Bot:yes"]);
    assert_eq!(uris(&log), ["/1", "/2", "/3", "/5"]);
}

#[test]
fn basic_auth_filter() {
    // user:secret, admin:secret, and a Bearer token (not Basic: passes).
    let payloads = vec![
        get("/user", "Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"),
        get("/admin", "Authorization: Basic YWRtaW46c2VjcmV0\r\n"),
        get("/bearer", "Authorization: Bearer abc\r\n"),
        get("/anonymous", ""),
    ];
    let (err, log) = replay(&payloads, &["--http-basic-auth-filter", "^user:"]);
    assert_eq!(uris(&log), ["/user", "/bearer", "/anonymous"]);
    assert_eq!(filtered(&err), 1);
}

#[test]
fn header_limiter_samples_consistently() {
    // fnv32a("1") % 100 = 44 and fnv32a("3") % 100 = 82: 50 % keeps "1", drops "3".
    let payloads: Vec<String> = ["1", "3", "1", "3"]
        .iter()
        .enumerate()
        .map(|(i, v)| get(&format!("/{i}"), &format!("X-Test: {v}\r\n")))
        .chain([get("/none", "")])
        .collect();
    let (_, log) = replay(&payloads, &["--http-header-limiter", "X-Test:50%"]);
    assert_eq!(uris(&log), ["/0", "/2", "/none"]);
}

#[test]
fn param_limiter_samples_consistently() {
    let payloads = vec![
        get("/a?uid=1", ""),
        get("/b?x=0&uid=3", ""),
        get("/c?uid=1&x=0", ""),
        get("/d", ""),
    ];
    let (_, log) = replay(&payloads, &["--http-param-limiter", "uid:50%"]);
    assert_eq!(uris(&log), ["/a?uid=1", "/c?uid=1&x=0", "/d"]);
    // The deprecated a/b form: 1/2 = 50 %.
    let (_, log) = replay(&payloads, &["--http-param-limiter", "uid:1/2"]);
    assert_eq!(uris(&log), ["/a?uid=1", "/c?uid=1&x=0", "/d"]);
}

#[test]
fn set_header_replaces_or_inserts() {
    let payloads = vec![get("/1", "x-test: old\r\n"), get("/2", "")];
    let (_, log) = replay(&payloads, &["--http-set-header", "X-Test: injected"]);
    let seen: Vec<&str> = log.iter().map(|l| l.x_test.as_str()).collect();
    assert_eq!(seen, ["injected", "injected"]);
    // Filters see injected headers (set-header runs first).
    let (_, log) = replay(
        &payloads,
        &[
            "--http-set-header",
            "X-Test: v2",
            "--http-allow-header",
            "X-Test:^v2$",
        ],
    );
    assert_eq!(log.len(), 2);
}

#[test]
fn set_header_host_implies_original_host() {
    let payloads = vec![get("/1", "")];
    let (_, log) = replay(&payloads, &["--http-set-header", "Host: staging.example"]);
    assert_eq!(log[0].http_host, "staging.example");
    // Without it, output-http sends the target's host:port.
    let (_, log) = replay(&payloads, &[]);
    assert_ne!(log[0].http_host, "prod.example");
}

#[test]
fn set_param() {
    let payloads = vec![get("/list", ""), get("/list?a=1&page=2&b=3", "")];
    let (_, log) = replay(&payloads, &["--http-set-param", "page = 7"]);
    assert_eq!(uris(&log), ["/list?page=7", "/list?a=1&page=7&b=3"]);
}

#[test]
fn rewrite_url_first_matching_rule() {
    let payloads = vec![get("/v1/users/42?x=1", ""), get("/other", "")];
    let (_, log) = replay(
        &payloads,
        &[
            "--http-rewrite-url",
            "/v1/(\\w+)/(\\d+):/v2/$1/id-${2}",
            "--http-rewrite-url",
            "/v1/:/never/",
        ],
    );
    assert_eq!(uris(&log), ["/v2/users/id-42?x=1", "/other"]);
}

#[test]
fn rewrite_header_skips_only_rules_whose_header_is_missing() {
    let payloads = vec![get("/1", "X-Test: prod-17\r\n"), get("/2", "")];
    let (_, log) = replay(
        &payloads,
        &[
            "--http-rewrite-header",
            "X-Missing: .*,never",
            "--http-rewrite-header",
            "X-Test: prod-(\\d+),staging-$1",
        ],
    );
    let seen: Vec<&str> = log.iter().map(|l| l.x_test.as_str()).collect();
    assert_eq!(seen, ["staging-17", "-"]);
}

#[test]
fn responses_of_filtered_requests_are_filtered_too() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let records = vec![
        Record::request("a1", 1, "GET /public HTTP/1.1\r\n\r\n"),
        Record::request("a2", 2, "GET /secret HTTP/1.1\r\n\r\n"),
        Record::response("a2", 3, "HTTP/1.1 200 OK\r\n\r\n"),
        Record::response("a1", 4, "HTTP/1.1 200 OK\r\n\r\n"),
        Record {
            meta: b"3 a2 5 7\n".to_vec(),
            payload: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
        },
    ];
    write_gor(&input, &records);
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--http-disallow-url",
        "^/secret",
        "--output-stdout",
    ]);
    assert_success(&output);
    assert_eq!(
        decode(&output.stdout),
        [records[0].clone(), records[3].clone()]
    );
    assert_eq!(filtered(&stderr(&output)), 3);
}

#[test]
fn invalid_values_exit_2_naming_the_flag() {
    for (flag, value) in [
        ("--http-allow-url", "(unclosed"),
        ("--http-disallow-url", "[z-a]"),
        ("--http-allow-header", "NoColon"),
        ("--http-disallow-header", "X-A:(("),
        ("--http-basic-auth-filter", "*"),
        ("--http-header-limiter", "X-Id:50"),
        ("--http-param-limiter", "uid:lots%"),
        ("--http-set-header", "NoValue"),
        ("--http-set-param", "novalue"),
        ("--http-rewrite-url", "no-colon"),
        ("--http-rewrite-header", "X-A: no-comma"),
        ("--http-allow-method", "GE T"),
    ] {
        let output = run(&["--input-dummy", "x", "--output-null", flag, value]);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let err = stderr(&output);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn prettify_http_dechunks_and_gunzips() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let body = gzip(b"hello, pretty world");
    let mut gz_response = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nX-A: b\r\n\r\n",
        body.len()
    )
    .into_bytes();
    gz_response.extend_from_slice(&body);
    let mut chunked_gz =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n".to_vec();
    chunked_gz.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    chunked_gz.extend_from_slice(&body);
    chunked_gz.extend_from_slice(b"\r\n0\r\n\r\n");
    let records = vec![
        Record::request(
            "r1",
            1,
            "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
        ),
        Record {
            meta: b"2 r1 2 0\n".to_vec(),
            payload: gz_response,
        },
        Record {
            meta: b"2 r2 3 0\n".to_vec(),
            payload: chunked_gz,
        },
        Record::request("r3", 4, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ];
    write_gor(&input, &records);
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--prettify-http",
        "--output-stdout",
    ]);
    assert_success(&output);
    let got: Vec<String> = decode(&output.stdout)
        .iter()
        .map(Record::payload_text)
        .collect();
    assert_eq!(
        got,
        [
            "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\nabcdefg",
            "HTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 19\r\n\r\nhello, pretty world",
            "HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\nhello, pretty world",
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
    );
}
