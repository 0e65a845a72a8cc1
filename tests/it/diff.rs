//! Differential replay (`--output-diff`) against three real nginx servers on loopback:
//! *production*, *secondary* (the same configuration) and *candidate*, which changes one JSON
//! field on `/users/{id}`, answers 500 on `/orders/{id}` and does not compress. Every server
//! puts noise in its answers (`$request_id` and `$msec` in the JSON, `X-Request-Id`, `Date`).
//! Real traffic from curl to production is captured with its responses and replayed to the
//! candidate (and the secondary); the verdicts are read from `REPORT.json`, the page is opened
//! in headless Chromium.

use crate::common::*;
use crate::live::needs_root;
use crate::nginx::{free_port, spawn_nginx, wait_for_port};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Rounds of the curl loop: each asks every URL once, so every request is repeated.
const ROUNDS: usize = 4;
/// URLs per round: five users, five orders, health, catalog, page.
const URLS_PER_ROUND: usize = 13;

/// One nginx of the three.
struct Server {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Server {
    fn start(candidate: bool) -> Server {
        let dir = tempdir();
        let port = free_port();
        std::fs::write(
            dir.path().join("nginx.conf"),
            config(dir.path(), port, candidate),
        )
        .unwrap();
        let child = spawn_nginx(dir.path());
        wait_for_port(port, Duration::from_secs(10));
        Server {
            port,
            _dir: dir,
            child,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Production's configuration, or the candidate's with its three changes.
fn config(dir: &Path, port: u16, candidate: bool) -> String {
    let d = dir.display();
    let plan = if candidate { "free" } else { "pro" };
    let orders = if candidate {
        r#"return 500 '{"error":"internal"}';"#.to_string()
    } else {
        r#"return 200 '{"order":$1,"total":42,"request_id":"$request_id"}';"#.to_string()
    };
    let gzip = if candidate { "off" } else { "on" };
    format!(
        r#"daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  gzip {gzip}; gzip_min_length 0; gzip_types application/json text/plain;
  server {{
    listen 127.0.0.1:{port};
    add_header X-Request-Id $request_id;
    location ~ ^/users/(\d+)$ {{ default_type application/json;
      return 200 '{{"id":$1,"name":"user $1","plan":"{plan}","request_id":"$request_id","time":$msec}}'; }}
    location ~ ^/orders/(\d+)$ {{ default_type application/json; {orders} }}
    location = /health {{ default_type text/plain; gzip off; return 200 'ok\n'; }}
    location = /catalog {{ default_type application/json;
      return 200 '{{"items":[{{"sku":"a1","price":3}},{{"sku":"b2","price":5}}],"currency":"EUR"}}'; }}
    location = /page {{ default_type text/html;
      return 200 '<html>\n<body>\n<h1>Shop</h1>\n<p>Welcome</p>\n</body>\n</html>\n'; }}
  }}
}}
"#
    )
}

/// The curl loop: every round asks every URL on one keep-alive connection, compressed.
fn traffic(production: &Server) {
    let base = production.url();
    for _ in 0..ROUNDS {
        let output = Command::new("curl")
            .args(["-s", "--compressed", "--fail-early"])
            .arg(format!("{base}/users/[1-5]"))
            .arg(format!("{base}/orders/[1-5]"))
            .arg(format!("{base}/health"))
            .arg(format!("{base}/catalog"))
            .arg(format!("{base}/page"))
            .output()
            .expect("curl (.ci/setup installs it)");
        assert!(output.status.success(), "curl failed");
    }
}

/// Whether this machine can capture on loopback and has curl and nginx.
fn prerequisites() -> bool {
    needs_root()
        && have_tool("curl", "apt-get install curl")
        && have_tool_answering("nginx", "-v", "apt-get install nginx-light")
}

/// Runs shadowtap capturing production's port with `flags` while the curl loop runs; returns
/// its output and what `--metrics` served just before it was stopped.
fn capture(production: &Server, flags: &[String]) -> (std::process::Output, String) {
    let metrics_port = free_port();
    let child = command()
        .args(["--input-raw", &format!("127.0.0.1:{}", production.port)])
        .arg("--input-raw-track-response")
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    traffic(production);
    std::thread::sleep(Duration::from_millis(2000));
    let metrics = scrape(metrics_port);
    signal(child.id(), "INT");
    (wait_output(child, Duration::from_secs(60)), metrics)
}

fn scrape(port: u16) -> String {
    let output = Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn read_report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("REPORT.json is JSON")
}

fn endpoint<'a>(report: &'a Value, target: &str, name: &str) -> &'a Value {
    let targets = report["targets"].as_array().expect("targets");
    let target = targets
        .iter()
        .find(|t| t["name"] == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    target["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == name)
        .unwrap_or_else(|| panic!("no endpoint {name:?} in {:#}", target["endpoints"]))
}

fn field<'a>(endpoint: &'a Value, name: &str) -> &'a Value {
    endpoint["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == name)
        .unwrap_or_else(|| panic!("no field {name:?} in {:#}", endpoint["fields"]))
}

fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

/// The verdicts every run must reach, however noise is cancelled (`source`).
fn assert_verdicts(report: &Value, source: &str) {
    let requests = (ROUNDS * 5) as u64;
    let users = endpoint(report, "candidate", "GET /users/{id}");
    assert!(count(&users["pairs"]) >= requests * 9 / 10, "{users:#}");
    assert_eq!(users["regressions"], users["pairs"], "{users:#}");
    let plan = field(users, "$.plan");
    assert_eq!(plan["noise"], false);
    assert_eq!(plan["regressions"], users["pairs"]);
    assert_eq!(plan["example"]["original_value"], "\"pro\"");
    assert_eq!(plan["example"]["replayed_value"], "\"free\"");
    for noisy in ["$.request_id", "$.time"] {
        let f = field(users, noisy);
        assert_eq!(f["noise"], true, "{f:#}");
        assert_eq!(f["noise_source"], source, "{f:#}");
        assert_eq!(f["regressions"], 0, "{f:#}");
    }
    let orders = endpoint(report, "candidate", "GET /orders/{id}");
    assert_eq!(orders["status_differs"], orders["pairs"]);
    assert_eq!(orders["regressions"], orders["pairs"]);
    assert_eq!(field(orders, "status")["noise"], false);
    let matrix = report["targets"][0]["status_matrix"].as_array().unwrap();
    assert!(matrix
        .iter()
        .any(|c| c["original"] == 200 && c["replayed"] == 500 && c["count"] == orders["pairs"]));
    // Unchanged endpoints, gzip-encoded and chunked by production, plain by the candidate.
    for unchanged in ["GET /health", "GET /catalog", "GET /page"] {
        let e = endpoint(report, "candidate", unchanged);
        assert!(count(&e["pairs"]) >= ROUNDS as u64 * 9 / 10, "{e:#}");
        assert_eq!(e["identical"], e["pairs"], "{unchanged}: {e:#}");
    }
    assert_eq!(report["final"], true);
}

/// The page in a real browser: it renders, has one row per endpoint, logs no error.
fn assert_page(html: &Path, dir: &Path, endpoints: usize) {
    let Some(check) = crate::browser::check_page_or_skip(html, dir) else {
        return;
    };
    assert!(
        check.console_errors.is_empty(),
        "console: {:?}",
        check.console_errors
    );
    assert_eq!(
        check.dom.matches("class=\"endpoint\"").count(),
        endpoints,
        "{}",
        check.dom
    );
    assert!(check.non_background_pixels > 0.01, "the page looks blank");
}

#[test]
fn live_capture_replay_and_diff_with_a_secondary() {
    if !prerequisites() {
        return;
    }
    let (production, secondary, candidate) = (
        Server::start(false),
        Server::start(false),
        Server::start(true),
    );
    let dir = tempdir();
    let report = dir.path().join("report.html");
    let flags: Vec<String> = [
        "--output-http",
        &candidate.url(),
        "--output-http-name",
        "candidate",
        "--output-http",
        &secondary.url(),
        "--output-http-name",
        "secondary",
        "--output-http-track-response",
        "--output-diff",
        path_str(&report),
        "--output-diff-secondary",
        "secondary",
        "--output-diff-interval",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (output, metrics) = capture(&production, &flags);
    assert_success(&output);
    let json = read_report(&dir.path().join("report.json"));
    assert_verdicts(&json, "secondary");
    assert!(count(&json["totals"]["requests"]) >= (ROUNDS * URLS_PER_ROUND) as u64 * 9 / 10);
    let summary = stderr(&output);
    assert!(summary.contains("output-diff: "), "{summary}");
    assert!(summary.contains("candidate GET /users/{id}:"), "{summary}");
    // Live figures while it ran, per endpoint.
    assert!(
        metrics.lines().any(
            |l| l.contains("name=\"diff pairs\",endpoint=\"GET /users/{id}\"")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("name=\"diff regressions\",endpoint=\"GET /orders/{id}\""),
        "{metrics}"
    );
    assert_page(&report, dir.path(), 5);
}

/// Production traffic with its responses, recorded once (kinds 1 and 2).
fn record_production(production: &Server, dir: &Path) -> PathBuf {
    let recorded = dir.join("recorded.gor");
    let flags = vec!["--output-file".to_string(), path_str(&recorded).to_string()];
    let (output, _) = capture(production, &flags);
    assert_success(&output);
    let records = read_gor(&dir.join("recorded_0.gor"));
    let page = records
        .iter()
        .filter(|r| r.kind() == b'2')
        .find(|r| r.payload_text().contains("text/html"))
        .expect("a recorded /page answer");
    let head = page.payload_text();
    assert!(
        head.contains("Transfer-Encoding: chunked") && head.contains("Content-Encoding: gzip"),
        "{head}"
    );
    dir.join("recorded_0.gor")
}

#[test]
fn offline_replay_learns_noise_without_a_secondary_and_gates_the_run() {
    if !prerequisites() {
        return;
    }
    let (production, candidate) = (Server::start(false), Server::start(true));
    let dir = tempdir();
    let recorded = record_production(&production, dir.path());
    drop(production);
    let report = dir.path().join("offline.html");
    let replays = dir.path().join("replays.gor");
    let output = run(&[
        "--input-file",
        path_str(&recorded),
        "--output-http",
        &candidate.url(),
        "--output-http-name",
        "candidate",
        "--output-http-track-response",
        "--output-file",
        path_str(&replays),
        "--output-diff",
        path_str(&report),
        "--output-diff-max-regressions",
        "0",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("gate failed: output-diff["),
        "{}",
        stderr(&output)
    );
    let offline = read_report(&dir.path().join("offline.json"));
    assert_verdicts(&offline, "learned");
    assert_eq!(offline["gate"]["exceeded"], true);
    // The same comparison from two recorded files: originals, and replays with their targets.
    let from_files = dir.path().join("files.html");
    let output = run(&[
        "--input-file",
        path_str(&recorded),
        "--input-file",
        path_str(&dir.path().join("replays_0.gor")),
        "--output-diff",
        path_str(&from_files),
        "--output-diff-max-regressions",
        "100%",
    ]);
    assert_success(&output);
    let files = read_report(&dir.path().join("files.json"));
    assert_verdicts(&files, "learned");
    assert_eq!(files["totals"]["pairs"], offline["totals"]["pairs"]);
    assert_eq!(
        files["totals"]["regressions"],
        offline["totals"]["regressions"]
    );
    assert_eq!(files["gate"]["exceeded"], false);
}

#[test]
fn a_dead_candidate_is_reported_as_replay_errors_not_as_differences() {
    let dir = tempdir();
    let records: Vec<Record> = (0..5)
        .flat_map(|i| {
            let id = format!("{i:024x}");
            [
                Record::request(&id, 1_000 + i, "GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n"),
                Record::response(
                    &id,
                    1_001 + i,
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                ),
            ]
        })
        .collect();
    let recorded = dir.path().join("in.gor");
    write_gor(&recorded, &records);
    let report = dir.path().join("dead.html");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let output = run(&[
        "--input-file",
        path_str(&recorded),
        "--output-http",
        &dead,
        "--output-http-name",
        "candidate",
        "--output-http-track-response",
        "--output-http-timeout",
        "1s",
        "--output-diff",
        path_str(&report),
    ]);
    let json = read_report(&dir.path().join("dead.json"));
    assert_eq!(json["unpaired"]["replay_error"], 5, "{json:#}");
    assert_eq!(json["totals"]["pairs"], 0);
    assert_eq!(json["unpaired_examples"][0]["detail"], "refused");
    assert!(json["unpaired_examples"][0]["request"]
        .as_str()
        .unwrap()
        .starts_with("GET /users/1"));
    // Failed replays are output-http's drops, not a gate verdict.
    assert_ne!(output.status.code(), Some(3), "{}", stderr(&output));
}

#[test]
fn bad_flags_are_usage_errors() {
    for (flag, value) in [
        ("--output-diff-ignore-path", "items"),
        ("--output-diff-route", "GET"),
        ("--output-diff-max-regressions", "lots"),
        ("--output-diff-timeout", "0s"),
    ] {
        let output = run(&[
            "--input-dummy",
            "x",
            "--output-diff",
            "/tmp/never.html",
            flag,
            value,
        ]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{flag} {value}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("--output-diff-"),
            "{}",
            stderr(&output)
        );
    }
}
