//! `output-http` replaying over HTTP/2: the HTTP/2 captures of `tests/fixtures/h2` replayed
//! to a real nginx (`listen … http2`, h2c with prior knowledge and h2 over TLS by ALPN) and
//! to a real grpcio server, replayed responses as kind 3 messages in the capture's HTTP/1.1
//! form, a middleware's edit arriving, and hostile servers (a Python `h2` server resetting
//! streams, nginx sending GOAWAY, nothing listening) and malformed HTTP/2-form messages.

use crate::common::*;
use crate::nginx::{find_nginx, free_port, self_signed_certificate, spawn_nginx, wait_for_port};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/h2")
}

fn fixture_port(name: &str) -> u16 {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest.json parses");
    manifest["captures"][name]["port"].as_u64().expect("port") as u16
}

/// The prerequisites of these tests: nginx, openssl, python3 with grpcio and h2.
fn have_prerequisites() -> bool {
    if find_nginx().is_none() {
        prerequisite_missing("nginx", "apt-get install nginx-light");
        return false;
    }
    let python = Command::new("python3")
        .args(["-c", "import grpc, h2"])
        .status()
        .is_ok_and(|s| s.success());
    if !python {
        prerequisite_missing("python3 grpcio and h2", "pip install grpcio h2 (.ci/setup)");
        return false;
    }
    have_tool_answering("openssl", "version", "apt-get install openssl")
}

/// How the test nginx listens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listen {
    /// `listen PORT http2`: HTTP/2 with prior knowledge only.
    H2c,
    /// `listen PORT ssl http2`: ALPN h2 or http/1.1.
    Tls,
    /// h2c with `keepalive_requests 3`: GOAWAY after the third stream of a connection.
    GoAway,
    /// `listen PORT`: HTTP/1.1 only.
    Plain,
}

/// One access-log line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Logged {
    method: String,
    uri: String,
    protocol: String,
    content_length: String,
    status: u16,
    connection: String,
    x_env: String,
}

/// nginx serving the locations of `make-h2.sh` (echo, an upload proxied to a backend so the
/// body is read, static files, 404) with an access log.
struct H2Nginx {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl H2Nginx {
    fn start(listen: Listen) -> H2Nginx {
        let dir = tempdir();
        let d = dir.path().display().to_string();
        let port = free_port();
        let backend = free_port();
        std::fs::create_dir_all(dir.path().join("www/static")).unwrap();
        std::fs::write(dir.path().join("www/static/big.txt"), "b".repeat(10_000)).unwrap();
        std::fs::write(dir.path().join("www/index.json"), "{\"ok\":true}\n").unwrap();
        let server = match listen {
            Listen::H2c => format!("listen 127.0.0.1:{port} http2;"),
            Listen::GoAway => format!("listen 127.0.0.1:{port} http2; keepalive_requests 3;"),
            Listen::Plain => format!("listen 127.0.0.1:{port};"),
            Listen::Tls => {
                self_signed_certificate(dir.path(), &["rsa:2048"]);
                format!(
                    "listen 127.0.0.1:{port} ssl http2; ssl_certificate {d}/cert.pem; \
                     ssl_certificate_key {d}/key.pem;"
                )
            }
        };
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  log_format t \"$request_method\\t$request_uri\\t$server_protocol\\t\
             $content_length\\t$status\\t$connection\\t$http_x_env\";\n\
               access_log {d}/access.log t;\n  root {d}/www;\n  sendfile off;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{backend};\n    access_log off;\n\
                 location / {{ return 200 \"stored $request_uri len=$content_length\\n\"; }}\n  }}\n\
               server {{\n    {server}\n\
                 location /echo {{ return 200 \"echo $request_uri\\n\"; }}\n\
                 location /upload/ {{ proxy_pass http://127.0.0.1:{backend}; }}\n\
                 location /static/ {{ }}\n    location = /index.json {{ }}\n\
                 location / {{ return 404 \"not here\\n\"; }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = spawn_nginx(dir.path());
        wait_for_port(port, Duration::from_secs(10));
        H2Nginx { port, dir, child }
    }

    fn log(&self) -> Vec<Logged> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                assert_eq!(f.len(), 7, "access log line {line:?}");
                Logged {
                    method: f[0].into(),
                    uri: f[1].into(),
                    protocol: f[2].into(),
                    content_length: f[3].into(),
                    status: f[4].parse().unwrap(),
                    connection: f[5].into(),
                    x_env: f[6].into(),
                }
            })
            .collect()
    }
}

impl Drop for H2Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process that prints `ready` once it listens, killed on drop.
struct Server(Child);

impl Server {
    fn start(command: &mut Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the server did not start");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The requests of `name.pcap` recorded to a `.gor` (with the responses when `responses`).
fn record(name: &str, dir: &Path, responses: bool) -> PathBuf {
    let out = dir.join(format!("{name}.gor"));
    let pcap = format!(
        "{}:{}",
        path_str(&fixtures().join(format!("{name}.pcap"))),
        fixture_port(&format!("{name}.pcap"))
    );
    let mut args = vec![
        "--input-pcap",
        &pcap,
        "--output-file",
        path_str(&out),
        "--output-file-append",
    ];
    if responses {
        args.push("--input-raw-track-response");
    }
    assert_success(&run(&args));
    out
}

/// The start line of a payload.
fn start_line(payload: &[u8]) -> String {
    let end = payload
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// A field's value in a payload's head (`-` when absent, as nginx logs it).
fn field(payload: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(payload);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "-".into())
}

/// (method, uri, content-length) of each request in `gor`, sorted.
fn captured_requests(gor: &Path) -> Vec<(String, String, String)> {
    let mut requests: Vec<_> = read_gor(gor)
        .iter()
        .filter(|r| r.kind() == b'1')
        .map(|r| {
            let line = start_line(&r.payload);
            let mut words = line.split(' ');
            let method = words.next().unwrap().to_string();
            let uri = words.next().unwrap().to_string();
            assert_eq!(words.next(), Some("HTTP/2"), "{line}");
            (method, uri, field(&r.payload, "content-length"))
        })
        .collect();
    requests.sort();
    requests
}

/// (method, uri, content-length) of each access-log line, sorted.
fn arrived(log: &[Logged]) -> Vec<(String, String, String)> {
    let mut seen: Vec<_> = log
        .iter()
        .map(|l| (l.method.clone(), l.uri.clone(), l.content_length.clone()))
        .collect();
    seen.sort();
    seen
}

fn replay_to(input: &Path, url: &str, out: &Path, flags: &[&str]) -> std::process::Output {
    let file = format!("{}|10000%", path_str(input));
    let mut args = vec![
        "--input-file",
        &file,
        "--output-http",
        url,
        "--output-http-track-response",
        "--output-file",
        path_str(out),
        "--output-file-append",
    ];
    args.extend(flags);
    let output = run(&args);
    assert_success(&output);
    output
}

/// The replayed responses (kind 3) of a `.gor`, by id; the notes of failed replays (kind 3
/// with `error=REASON`, no payload) are left out.
fn replies(path: &Path) -> BTreeMap<String, Vec<u8>> {
    read_gor(path)
        .into_iter()
        .filter(|r| r.kind() == b'3' && !is_failure_note(r))
        .map(|r| (r.id(), r.payload))
        .collect()
}

fn is_failure_note(record: &Record) -> bool {
    String::from_utf8_lossy(&record.meta).contains(" error=")
}

fn label(url: &str) -> String {
    format!("output-http[{url}]")
}

fn assert_h2c_capture_replays(
    listen: Listen,
    url_of: impl Fn(u16) -> String,
    flags: &[&str],
    protocol: &str,
) {
    let nginx = H2Nginx::start(listen);
    let dir = tempdir();
    let calls = record("h2c", dir.path(), false);
    let expected = captured_requests(&calls);
    assert_eq!(expected.len(), 207);
    let out = dir.path().join("out.gor");
    let url = url_of(nginx.port);
    let output = replay_to(&calls, &url, &out, flags);
    let err = stderr(&output);
    let log = nginx.log();
    assert_eq!(arrived(&log), expected, "{err}");
    assert!(log.iter().all(|l| l.protocol == protocol), "{log:#?}");
    let connections: std::collections::BTreeSet<&str> =
        log.iter().map(|l| l.connection.as_str()).collect();
    assert!(
        connections.len() <= 16,
        "at most --output-http-workers: {connections:?}"
    );
    assert_eq!(summary_counter(&err, &label(&url), "out"), 207, "{err}");
    let replies = replies(&out);
    assert_eq!(replies.len(), 207, "one reply per request");
    let version = if protocol == "HTTP/2.0" {
        "HTTP/2 "
    } else {
        "HTTP/1.1 "
    };
    for payload in replies.values() {
        assert!(
            payload.starts_with(version.as_bytes()),
            "{:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn the_h2c_capture_replays_over_h2c_with_its_responses_in_the_capture_form() {
    if !have_prerequisites() {
        return;
    }
    assert_h2c_capture_replays(
        Listen::H2c,
        |p| format!("h2c://127.0.0.1:{p}"),
        &[],
        "HTTP/2.0",
    );
}

#[test]
fn https_negotiates_h2_by_alpn_and_protocol_h1_forces_http1() {
    if !have_prerequisites() {
        return;
    }
    let url = |p| format!("https://localhost:{p}");
    assert_h2c_capture_replays(Listen::Tls, url, &["--output-http-skip-verify"], "HTTP/2.0");
    let forced = ["--output-http-skip-verify", "--output-http-protocol", "h1"];
    assert_h2c_capture_replays(Listen::Tls, url, &forced, "HTTP/1.1");
}

#[test]
fn an_http_target_gets_the_http2_messages_as_http1() {
    if !have_prerequisites() {
        return;
    }
    let url = |p| format!("http://127.0.0.1:{p}");
    assert_h2c_capture_replays(Listen::Plain, url, &[], "HTTP/1.1");
}

#[test]
fn protocol_h2_sends_http1_messages_over_http2_with_chunked_bodies_decoded() {
    if !have_prerequisites() {
        return;
    }
    let nginx = H2Nginx::start(Listen::H2c);
    let dir = tempdir();
    let payloads = vec![
        "GET /echo?h1=1 HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive\r\nX-Env: one\r\n\r\n"
            .to_string(),
        "PUT /upload/chunked HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\nX-Env: two\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            .to_string(),
    ];
    let input = h2_requests(dir.path(), &payloads);
    let url = format!("http://127.0.0.1:{}", nginx.port);
    let out = dir.path().join("out.gor");
    let output = replay_to(&input, &url, &out, &["--output-http-protocol", "h2"]);
    let err = stderr(&output);
    let mut log = nginx.log();
    log.sort();
    assert_eq!(log.len(), 2, "{err}");
    assert!(log.iter().all(|l| l.protocol == "HTTP/2.0"), "{log:#?}");
    assert_eq!(
        (log[0].method.as_str(), log[0].x_env.as_str()),
        ("GET", "one")
    );
    assert_eq!(
        (log[1].method.as_str(), log[1].x_env.as_str()),
        ("PUT", "two")
    );
    let replies: Vec<String> = replies(&out)
        .values()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert!(
        replies
            .iter()
            .any(|r| r.starts_with("HTTP/2 200\r\n")
                && r.ends_with("stored /upload/chunked len=11\n")),
        "the backend got the de-chunked body: {replies:#?}"
    );
}

#[test]
fn an_invalid_protocol_is_a_startup_error() {
    let dir = tempdir();
    let input = h2_requests(dir.path(), &[get("/")]);
    let startup = |protocol: &str| {
        let output = run(&[
            "--input-file",
            path_str(&input),
            "--output-http",
            "h2c://127.0.0.1:1",
            "--output-http-protocol",
            protocol,
        ]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        stderr(&output)
    };
    assert!(startup("h3").contains("--output-http-protocol"));
    assert!(startup("h1").contains("h2c://"));
}

/// The lines of a grpc_server.py log without the `user-agent` metadata entry, sorted.
fn grpc_calls(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut calls: Vec<Value> = text
        .lines()
        .map(|line| {
            let mut call: Value = serde_json::from_str(line).unwrap();
            call["metadata"]
                .as_array_mut()
                .unwrap()
                .retain(|m| m[0] != "user-agent");
            call
        })
        .collect();
    calls.sort_by_key(|c| c.to_string());
    calls
}

fn grpc_server(port: u16, log: &Path) -> Server {
    Server::start(
        Command::new("python3")
            .arg(fixtures().join("grpc_server.py"))
            .arg(port.to_string())
            .arg(log)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(fixtures()),
    )
}

/// The length-prefixed messages of a gRPC body.
fn grpc_messages(mut body: &[u8]) -> usize {
    let mut count = 0;
    while body.len() >= 5 {
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        body = &body[(5 + length).min(body.len())..];
        count += 1;
    }
    count
}

/// Body and trailer block of a reply in the capture's form.
fn body_and_trailers(payload: &[u8]) -> (Vec<u8>, String) {
    let head_end = payload.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let length: usize = field(payload, "content-length").parse().unwrap_or(0);
    let body = payload[head_end..head_end + length].to_vec();
    let trailers = String::from_utf8_lossy(&payload[head_end + length..]).into_owned();
    (body, trailers)
}

#[test]
fn grpc_calls_replayed_arrive_as_captured_and_come_back_with_their_status() {
    if !have_prerequisites() {
        return;
    }
    let dir = tempdir();
    let calls = record("grpc", dir.path(), true);
    let port = free_port();
    let log = dir.path().join("received.jsonl");
    let _server = grpc_server(port, &log);
    let replies_path = dir.path().join("replies.gor");
    let url = format!("h2c://127.0.0.1:{port}");
    let output = replay_to(&calls, &url, &replies_path, &[]);
    let err = stderr(&output);
    assert_eq!(
        grpc_calls(&log),
        grpc_calls(&fixtures().join("grpc-received.jsonl")),
        "{err}"
    );
    let requests: BTreeMap<String, String> = read_gor(&calls)
        .into_iter()
        .filter(|r| r.kind() == b'1')
        .map(|r| (r.id(), start_line(&r.payload)))
        .collect();
    let replies = replies(&replies_path);
    assert_eq!(replies.len(), 6, "{err}");
    for (id, reply) in &replies {
        let call = &requests[id];
        let (body, trailers) = body_and_trailers(reply);
        assert!(reply.starts_with(b"HTTP/2 200\r\n"), "{call}");
        let text = String::from_utf8_lossy(reply);
        if field(reply, "grpc-status") == "5" {
            // The failing call: a trailers-only response.
            assert!(call.contains("/Unary"), "{call}");
            assert!(body.is_empty() && trailers.is_empty(), "{text:?}");
            continue;
        }
        assert!(trailers.contains("grpc-status: 0\r\n"), "{call}: {text:?}");
        let expected_messages = if call.contains("/ServerStream") || call.contains("/Bidi") {
            3
        } else {
            1
        };
        assert_eq!(grpc_messages(&body), expected_messages, "{call}: {text:?}");
    }
}

#[test]
fn a_middleware_edit_of_the_http1_form_reaches_the_grpc_server() {
    if !have_prerequisites() {
        return;
    }
    let dir = tempdir();
    let calls = record("grpc", dir.path(), false);
    let port = free_port();
    let log = dir.path().join("received.jsonl");
    let _server = grpc_server(port, &log);
    let file = format!("{}|10000%", path_str(&calls));
    let url = format!("h2c://127.0.0.1:{port}");
    let middleware = format!(
        "python3 {} X-Env staging",
        path_str(&repo().join("middleware/python/rewrite_header.py"))
    );
    let output = run(&[
        "--input-file",
        &file,
        "--middleware",
        &middleware,
        "--output-http",
        &url,
    ]);
    assert_success(&output);
    let received = grpc_calls(&log);
    assert_eq!(received.len(), 6, "{}", stderr(&output));
    for call in received {
        let metadata = call["metadata"].as_array().unwrap();
        assert!(
            metadata
                .iter()
                .any(|m| m[0] == "x-env" && m[1] == "staging"),
            "{call}"
        );
    }
}

/// A `.gor` of HTTP/2-form requests, ids 1, 2, …
fn h2_requests(dir: &Path, payloads: &[String]) -> PathBuf {
    let path = dir.join("in.gor");
    write_requests(&path, payloads, 1_000_000);
    path
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/2\r\nhost: prod.example\r\nx-env: test\r\n\r\n")
}

/// A Python `h2` server that logs `CONNECTION PATH` per request, resets `/reset` streams
/// (INTERNAL_ERROR) and `/refuse` ones (REFUSED_STREAM), never answers `/hang`, and answers
/// the rest `200 ok`.
const RESETTING_SERVER: &str = r#"
import socket, sys, threading
import h2.config, h2.connection, h2.errors, h2.events
port, log = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
def answer(conn, number, stream, path):
    with lock, open(log, "a") as f:
        f.write("%d %s\n" % (number, path))
    if path == "/reset":
        conn.reset_stream(stream, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
    elif path == "/refuse":
        conn.reset_stream(stream, error_code=h2.errors.ErrorCodes.REFUSED_STREAM)
    elif path == "/hang":
        pass
    else:
        conn.send_headers(stream, [(":status", "200"), ("content-length", "2")])
        conn.send_data(stream, b"ok", end_stream=True)
def serve(sock, number):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    paths = {}
    while True:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                paths[event.stream_id] = dict(event.headers)[":path"]
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                answer(conn, number, event.stream_id, paths[event.stream_id])
        sock.sendall(conn.data_to_send())
    sock.close()
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(16)
print("ready", flush=True)
number = 0
while True:
    sock, _ = listener.accept()
    number += 1
    threading.Thread(target=serve, args=(sock, number), daemon=True).start()
"#;

#[test]
fn a_reset_stream_fails_alone_a_refused_one_is_retried_once_and_a_silent_one_times_out() {
    if !have_prerequisites() {
        return;
    }
    let dir = tempdir();
    let script = dir.path().join("server.py");
    std::fs::write(&script, RESETTING_SERVER).unwrap();
    let port = free_port();
    let log = dir.path().join("paths.log");
    let _server = Server::start(
        Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&log),
    );
    let paths = ["/a", "/reset", "/hang", "/b", "/refuse", "/c"];
    let payloads: Vec<String> = paths.iter().map(|p| get(p)).collect();
    let input = h2_requests(dir.path(), &payloads);
    let url = format!("h2c://127.0.0.1:{port}");
    let out = dir.path().join("out.gor");
    let flags = ["--output-http-workers", "1", "--output-http-timeout", "2s"];
    let output = replay_to(&input, &url, &out, &flags);
    let err = stderr(&output);
    let label = label(&url);
    assert_eq!(summary_counter(&err, &label, "out"), 3, "{err}");
    assert_eq!(summary_counter(&err, &label, "error: timeout"), 1, "{err}");
    assert_eq!(summary_counter(&err, &label, "error: h2 reset"), 1, "{err}");
    assert_eq!(
        summary_counter(&err, &label, "error: h2 refused stream"),
        1,
        "{err}"
    );
    let mut seen: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "1 /a",
            "1 /b",
            "1 /c",
            "1 /hang",
            "1 /refuse",
            "1 /refuse",
            "1 /reset"
        ],
        "one connection; the refused stream twice"
    );
    assert_eq!(replies(&out).len(), 3);
    let mut notes: Vec<String> = read_gor(&out)
        .iter()
        .filter(|r| is_failure_note(r))
        .map(|r| {
            let meta = String::from_utf8_lossy(&r.meta).into_owned();
            meta.split(" error=")
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .collect();
    notes.sort();
    assert_eq!(notes, ["h2-refused-stream", "h2-reset", "timeout"]);
}

#[test]
fn after_a_goaway_the_remaining_requests_go_on_a_new_connection() {
    if !have_prerequisites() {
        return;
    }
    let nginx = H2Nginx::start(Listen::GoAway);
    let dir = tempdir();
    let payloads: Vec<String> = (0..20).map(|i| get(&format!("/echo?goaway={i}"))).collect();
    let input = h2_requests(dir.path(), &payloads);
    let url = format!("h2c://127.0.0.1:{}", nginx.port);
    let out = dir.path().join("out.gor");
    // As many streams at once as nginx answers per connection: the ones above the GOAWAY's
    // last stream id are retried once, on a new connection.
    let flags = [
        "--output-http-workers",
        "1",
        "--output-http-h2-streams",
        "3",
    ];
    let output = replay_to(&input, &url, &out, &flags);
    let err = stderr(&output);
    let log = nginx.log();
    assert_eq!(log.len(), 20, "none lost: {err}");
    assert_eq!(summary_counter(&err, &label(&url), "out"), 20, "{err}");
    let connections: std::collections::BTreeSet<&str> =
        log.iter().map(|l| l.connection.as_str()).collect();
    assert!(connections.len() >= 7, "3 per connection: {log:#?}");
    assert!(log.iter().all(|l| l.status == 200 && l.x_env == "test"));
}

#[test]
fn a_dead_target_is_counted_quickly() {
    let dir = tempdir();
    let input = h2_requests(dir.path(), &vec![get("/"); 5]);
    let url = format!("h2c://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let output = run(&[
        "--input-file",
        &format!("{}|10000%", path_str(&input)),
        "--output-http",
        &url,
    ]);
    assert_success(&output);
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = stderr(&output);
    assert_eq!(
        summary_counter(&err, &label(&url), "error: refused"),
        5,
        "{err}"
    );
}

#[test]
fn malformed_http2_forms_are_counted_and_the_others_are_sent() {
    if !have_prerequisites() {
        return;
    }
    let nginx = H2Nginx::start(Listen::H2c);
    let dir = tempdir();
    let payloads = vec![
        get("/echo?ok=1"),
        "GET /echo?garbage HTTP/2\r\nthis is not a field\r\n\r\n".to_string(),
        "POST /upload/short HTTP/2\r\ncontent-length: 100\r\n\r\nonly this".to_string(),
        "POST /upload/ok HTTP/2\r\nx-env: body\r\ncontent-length: 4\r\n\r\nbody".to_string(),
    ];
    let input = h2_requests(dir.path(), &payloads);
    let url = format!("h2c://127.0.0.1:{}", nginx.port);
    let out = dir.path().join("out.gor");
    let output = replay_to(&input, &url, &out, &[]);
    let err = stderr(&output);
    let label = label(&url);
    assert_eq!(summary_counter(&err, &label, "out"), 2, "{err}");
    assert_eq!(
        summary_counter(&err, &label, "error: form fields"),
        1,
        "{err}"
    );
    assert_eq!(
        summary_counter(&err, &label, "error: form body shorter than content-length"),
        1,
        "{err}"
    );
    let mut uris: Vec<String> = nginx
        .log()
        .into_iter()
        .map(|l| format!("{} {} {}", l.uri, l.content_length, l.status))
        .collect();
    uris.sort();
    assert_eq!(uris, ["/echo?ok=1 - 200", "/upload/ok 4 200"]);
}

#[test]
fn a_panicking_http2_worker_counts_its_request_and_ends_the_run_with_status_1() {
    let dir = tempdir();
    let input = h2_requests(dir.path(), &vec![get("/"); 20]);
    let url = format!("h2c://127.0.0.1:{}", free_port());
    let child = command()
        .args(["--input-file", path_str(&input), "--output-http", &url])
        .env("SHADOWTAP_TEST_PANIC", format!("{}-worker", label(&url)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_output(child, Duration::from_secs(20));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(
        summary_counter(&err, &label(&url), "plugin panicked"),
        20,
        "{err}"
    );
}
