//! `output-es` against an in-process HTTP server implementing the documented Elasticsearch
//! bulk API (`POST /_bulk`, NDJSON action/source pairs, per-item results) and
//! `PUT /_index_template/<name>`. No Elasticsearch can be installed here; the server checks
//! what a real cluster checks (Content-Type, pairs, no `_type`) and injects 429s and item
//! failures on demand.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the server saw and how it misbehaves.
#[derive(Default)]
pub struct EsState {
    /// (index, id) → source document.
    pub docs: HashMap<(String, String), Value>,
    /// Index actions received (retries included).
    pub actions: usize,
    /// Bulk requests received.
    pub bulks: usize,
    /// Installed templates: name → body.
    pub templates: HashMap<String, Value>,
    /// Authorization headers seen.
    pub auth: HashSet<String>,
    /// Requests that violated the API (Content-Type, pairs, `_type`).
    pub violations: Vec<String>,
    /// Answer the first N bulk requests with 429.
    pub reject_bulks: usize,
    /// Ids answered with an item-level 429 the first time they are seen.
    pub busy_once: HashSet<String>,
    /// Ids rejected for good with a 400 `mapper_parsing_exception`.
    pub bad: HashSet<String>,
}

pub struct EsServer {
    pub port: u16,
    pub state: Arc<Mutex<EsState>>,
}

impl EsServer {
    pub fn start(state: EsState) -> EsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, state));
            }
        });
        EsServer { port, state }
    }

    pub fn url(&self, index: &str) -> String {
        format!("http://127.0.0.1:{}/{index}", self.port)
    }
}

fn serve(stream: TcpStream, state: Arc<Mutex<EsState>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        let length: usize = headers
            .get("content-length")
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap(), parts.next().unwrap().to_string());
        let (status, response) = handle(&state, method, &path, &headers, &body);
        let text = response.to_string();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )
        .unwrap();
    }
}

fn handle(
    state: &Mutex<EsState>,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
) -> (u16, Value) {
    let mut s = state.lock().unwrap();
    if let Some(auth) = headers.get("authorization") {
        s.auth.insert(auth.clone());
    }
    if method == "PUT" && path.starts_with("/_index_template/") {
        let name = path.trim_start_matches("/_index_template/").to_string();
        s.templates
            .insert(name, serde_json::from_slice(body).unwrap());
        return (200, json!({"acknowledged": true}));
    }
    if method != "POST" || path.split('?').next() != Some("/_bulk") {
        return (404, json!({"error": "no handler", "status": 404}));
    }
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    if !content_type.starts_with("application/x-ndjson")
        && !content_type.starts_with("application/json")
    {
        s.violations.push(format!("content-type {content_type:?}"));
        return (
            406,
            json!({"error": format!("Content-Type header [{content_type}] is not supported"), "status": 406}),
        );
    }
    s.bulks += 1;
    if s.reject_bulks > 0 {
        s.reject_bulks -= 1;
        return (
            429,
            json!({"error": {"type": "es_rejected_execution_exception"}, "status": 429}),
        );
    }
    let text = std::str::from_utf8(body).unwrap();
    if !text.ends_with('\n') {
        s.violations.push("body does not end with a newline".into());
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() % 2 != 0 {
        s.violations.push("odd number of NDJSON lines".into());
        return (
            400,
            json!({"error": {"type": "illegal_argument_exception"}, "status": 400}),
        );
    }
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).unwrap();
        let source: Value = serde_json::from_str(pair[1]).unwrap();
        let meta = &action["index"];
        if action.as_object().map(|o| o.len()) != Some(1) || !meta.is_object() {
            s.violations.push(format!("action {action}"));
        }
        if meta.get("_type").is_some() {
            s.violations.push(format!("_type in {action}"));
        }
        let index = meta["_index"].as_str().unwrap_or_default().to_string();
        let id = meta["_id"].as_str().unwrap_or_default().to_string();
        s.actions += 1;
        let item = if s.busy_once.remove(&id) {
            errors = true;
            json!({"index": {"_index": index, "_id": id, "status": 429,
                   "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}})
        } else if s.bad.contains(&id) {
            errors = true;
            json!({"index": {"_index": index, "_id": id, "status": 400,
                   "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}}})
        } else {
            let created = s.docs.insert((index.clone(), id.clone()), source).is_none();
            json!({"index": {"_index": index, "_id": id, "status": if created { 201 } else { 200 },
                   "result": if created { "created" } else { "updated" }}})
        };
        items.push(item);
    }
    (200, json!({"took": 1, "errors": errors, "items": items}))
}

fn gor_file(dir: &std::path::Path, requests: usize) -> String {
    let path = dir.join("traffic.gor");
    write_gor(&path, &traffic(requests, 1_700_000_000_000_000_000));
    path_str(&path).to_string()
}

#[test]
fn es_bulk_indexes_every_message_once_despite_429s_and_installs_the_template() {
    let dir = tempdir();
    let file = gor_file(dir.path(), 60);
    let busy: HashSet<String> = [format!("{:024x}-1", 3), format!("{:024x}-2", 40)].into();
    let server = EsServer::start(EsState {
        reject_bulks: 1,
        busy_once: busy,
        ..Default::default()
    });
    let output = run(&[
        "--input-file",
        &file,
        "--output-es",
        &server.url("http-%Y.%m.%d"),
        "--output-es-install-template",
        "--output-es-batch-size",
        "25",
        "--output-es-workers",
        "3",
    ]);
    assert_success(&output);
    let summary = summary(&output);
    let s = server.state.lock().unwrap();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.docs.len(), 120, "{summary}");
    // The rejected bulk and the two busy items were sent again under the same ids.
    assert!(s.actions > 120, "retries happened: {} actions", s.actions);
    for ((index, id), source) in &s.docs {
        assert_eq!(index, "http-2023.11.14");
        let kind = if source["kind"] == "request" {
            "1"
        } else {
            "2"
        };
        assert_eq!(id, &format!("{}-{kind}", source["id"].as_str().unwrap()));
    }
    let request = &s.docs[&("http-2023.11.14".to_string(), format!("{:024x}-1", 5))];
    assert_eq!(request["method"], "GET");
    assert_eq!(request["uri"], "/item/4?q=1");
    assert_eq!(request["host"], "shop.example");
    let response = &s.docs[&("http-2023.11.14".to_string(), format!("{:024x}-2", 5))];
    assert_eq!(response["status_code"], 200);
    let template = &s.templates["shadowtap"];
    assert_eq!(template["index_patterns"], json!(["http-*.*.*"]));
    assert_eq!(
        template["template"]["mappings"]["properties"]["src_ip"]["type"],
        "ip"
    );
    assert_eq!(
        summary_counter(&summary, "output-es", "out"),
        120,
        "{summary}"
    );
    assert_eq!(
        summary_counter(&summary, "output-es", "dropped"),
        0,
        "{summary}"
    );
    assert!(
        summary_counter(&summary, "output-es", "retries") >= 2,
        "{summary}"
    );
}

#[test]
fn es_item_failures_are_counted_per_item_with_the_error_type() {
    let dir = tempdir();
    let file = gor_file(dir.path(), 20);
    let bad: HashSet<String> = (1..=3).map(|i| format!("{i:024x}-2")).collect();
    let server = EsServer::start(EsState {
        bad,
        ..Default::default()
    });
    let output = run(&[
        "--input-file",
        &file,
        "--output-es",
        &server.url("gor"),
        "--output-es-api-key",
        "aWQ6a2V5",
    ]);
    // Lost documents are runtime errors: a non-zero exit status, and the summary says why.
    assert!(!output.status.success());
    let summary = summary(&output);
    assert_eq!(
        summary_counter(&summary, "output-es", "out"),
        37,
        "{summary}"
    );
    assert!(summary.contains("dropped 3 (output error 3)"), "{summary}");
    assert_eq!(
        summary_counter(&summary, "output-es", "mapper_parsing_exception"),
        3,
        "{summary}"
    );
    let s = server.state.lock().unwrap();
    assert_eq!(s.docs.len(), 37);
    assert_eq!(s.auth, HashSet::from(["ApiKey aWQ6a2V5".to_string()]));
}

#[test]
fn es_pairs_become_one_document_with_latency_and_basic_auth_from_the_url() {
    let dir = tempdir();
    let file = gor_file(dir.path(), 30);
    let server = EsServer::start(EsState::default());
    let url = format!("http://elastic:secret@127.0.0.1:{}/pairs", server.port);
    let output = run(&[
        "--input-file",
        &file,
        "--output-es",
        &url,
        "--output-es-pair",
        "--output-es-flush-interval",
        "50ms",
    ]);
    assert_success(&output);
    let summary = summary(&output);
    assert_eq!(
        summary_counter(&summary, "output-es", "out"),
        60,
        "{summary}"
    );
    let s = server.state.lock().unwrap();
    assert_eq!(s.docs.len(), 30);
    let doc = &s.docs[&("pairs".to_string(), format!("{:024x}", 7))];
    assert_eq!(doc["kind"], "pair");
    assert_eq!(doc["uri"], "/item/6?q=1");
    assert_eq!(doc["status_code"], 200);
    assert_eq!(doc["latency_ns"], 100);
    assert_eq!(doc["response_content_length"], 2);
    assert_eq!(
        s.auth,
        HashSet::from(["Basic ZWxhc3RpYzpzZWNyZXQ=".to_string()])
    );
}

#[test]
fn es_unreachable_cluster_counts_every_message_after_bounded_retries() {
    let dir = tempdir();
    let file = gor_file(dir.path(), 5);
    let port = crate::nginx::free_port();
    let output = run(&[
        "--input-file",
        &file,
        "--output-es",
        &format!("http://127.0.0.1:{port}/gone"),
        "--output-es-retries",
        "2",
    ]);
    assert!(!output.status.success());
    let summary = summary(&output);
    assert!(
        summary.contains("dropped 10 (output error 10)"),
        "{summary}"
    );
    assert_eq!(
        summary_counter(&summary, "output-es", "connect"),
        10,
        "{summary}"
    );
}
