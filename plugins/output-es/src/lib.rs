//! `output-es`: indexes every message into Elasticsearch 7/8 or OpenSearch 2 through the bulk
//! API, as the structured JSON records of `shadowtap-record` — the searchable form of captured
//! HTTP headers.
//!
//! Flags: `--output-es URL/INDEX` (repeatable; e.g. `http://user:pass@localhost:9200/http-%Y.%m.%d`;
//! the index may contain `%Y %m %d %H`, UTC, from the message time; without a scheme, `http://`
//! and port 9200 as in GoReplay), `--output-es-pair` (one document per request/response pair, with
//! the response's status, headers and latency merged in; a request waits at most
//! `--output-es-pair-timeout`, default 60s, for its response and is then indexed alone),
//! `--output-es-batch-size N` (documents per bulk request, default 500),
//! `--output-es-batch-bytes SIZE` (default 5mb), `--output-es-flush-interval DURATION` (default 1s),
//! `--output-es-workers N` (concurrent bulk requests, default 2), `--output-es-retries N`
//! (default 5, exponential backoff from 100ms on connection errors, 429 and 5xx, and for items
//! rejected with 429/502/503/504), `--output-es-timeout DURATION` (per request, default 30s),
//! `--output-es-username`/`--output-es-password` (or `SHADOWTAP_OUTPUT_ES_PASSWORD`, or
//! `--output-es-password-file FILE`, or `user:pass@` in the URL; URLs are logged and named in
//! errors with the password as `***`), `SHADOWTAP_OUTPUT_ES_API_KEY` for the API key,
//! `--output-es-api-key KEY` (`Authorization: ApiKey KEY`), `--output-es-skip-verify`,
//! `--output-es-ca-cert PEM`, `--output-es-install-template` (PUT the bundled
//! `index-template.json` as `_index_template/shadowtap`, with the index pattern of the index name,
//! before the first bulk request).
//!
//! Requests are `POST {base}/_bulk` with `Content-Type: application/x-ndjson` and `index`
//! actions without `_type`; each document has a stable `_id` (`<message id>-<kind>`, or the
//! request id for pairs), so a retried batch never duplicates. Every message is either indexed
//! (counted `out`) or counted as an `output error` drop with the reason (`es error: <type> N`):
//! per-item failures of a bulk response are counted item by item.
//!
//! GoReplay's `--output-http-elasticsearch` is not this plugin's flag (output-http rejects it
//! with a pointer here).
//!
//! Example: `shadowtap --input-raw :80 --output-es http://localhost:9200/http-%Y.%m.%d --output-es-pair`.
#![deny(missing_docs)]

pub mod bulk;
pub mod endpoint;

use bulk::{Auth, Doc, Sender};
use crossbeam_channel::bounded;
use endpoint::{Endpoint, IndexName};
use serde_json::{Map, Value};
use shadowtap_api::values::{duration_value, size_value};
use shadowtap_api::{
    catch_panic, instance_label, register_output, CoreSettings, Inbox, Kind, Message, Next, Output,
    OutputContext, OutputSpec, PluginError, Throttle,
};
use shadowtap_record::Record;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The index template shipped with the crate (its `index_patterns` are replaced at run time).
pub const INDEX_TEMPLATE: &str = include_str!("../index-template.json");

/// Requests waiting for their response in pair mode, at most (the oldest are indexed alone).
const MAX_PENDING: usize = 100_000;

/// Flags of `output-es`.
#[derive(clap::Args, Debug)]
pub struct OutputEsArgs {
    /// Index messages into Elasticsearch/OpenSearch: URL/INDEX, index may use %Y %m %d %H (repeatable)
    #[arg(id = "output-es", long = "output-es", value_name = "URL/INDEX")]
    pub output_es: Vec<String>,
    /// One document per request/response pair (response fields and latency merged in)
    #[arg(id = "output-es-pair", long = "output-es-pair")]
    pub output_es_pair: bool,
    /// In pair mode, how long a request waits for its response before it is indexed alone
    #[arg(id = "output-es-pair-timeout", long = "output-es-pair-timeout", value_parser = duration_value, default_value = "60s", value_name = "DURATION")]
    pub output_es_pair_timeout: Duration,
    /// Documents per bulk request
    #[arg(
        id = "output-es-batch-size",
        long = "output-es-batch-size",
        default_value_t = 500,
        value_name = "N"
    )]
    pub output_es_batch_size: usize,
    /// Bytes per bulk request, e.g. 5mb
    #[arg(id = "output-es-batch-bytes", long = "output-es-batch-bytes", value_parser = size_value, default_value = "5mb", value_name = "SIZE")]
    pub output_es_batch_bytes: u64,
    /// Longest time a document waits before its batch is sent
    #[arg(id = "output-es-flush-interval", long = "output-es-flush-interval", value_parser = duration_value, default_value = "1s", value_name = "DURATION")]
    pub output_es_flush_interval: Duration,
    /// Concurrent bulk requests
    #[arg(
        id = "output-es-workers",
        long = "output-es-workers",
        default_value_t = 2,
        value_name = "N"
    )]
    pub output_es_workers: usize,
    /// Retries of a bulk request (or of its rejected items) before its documents count as lost
    #[arg(
        id = "output-es-retries",
        long = "output-es-retries",
        default_value_t = 5,
        value_name = "N"
    )]
    pub output_es_retries: u32,
    /// Timeout of one bulk request
    #[arg(id = "output-es-timeout", long = "output-es-timeout", value_parser = duration_value, default_value = "30s", value_name = "DURATION")]
    pub output_es_timeout: Duration,
    /// Basic-auth user (overrides user:pass@ in the URL)
    #[arg(
        id = "output-es-username",
        long = "output-es-username",
        value_name = "USER"
    )]
    pub output_es_username: Option<String>,
    /// Basic-auth password
    #[arg(
        id = "output-es-password",
        long = "output-es-password",
        env = "SHADOWTAP_OUTPUT_ES_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub output_es_password: Option<String>,
    /// Read --output-es-password from FILE
    #[arg(
        id = "output-es-password-file",
        long = "output-es-password-file",
        value_name = "FILE"
    )]
    pub output_es_password_file: Option<std::path::PathBuf>,
    /// API key, sent as "Authorization: ApiKey KEY" (the base64 id:key form)
    #[arg(
        id = "output-es-api-key",
        long = "output-es-api-key",
        env = "SHADOWTAP_OUTPUT_ES_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub output_es_api_key: Option<String>,
    /// Accept any TLS certificate (testing only)
    #[arg(id = "output-es-skip-verify", long = "output-es-skip-verify")]
    pub output_es_skip_verify: bool,
    /// CA certificate(s) (PEM file) to verify the cluster
    #[arg(
        id = "output-es-ca-cert",
        long = "output-es-ca-cert",
        value_name = "PEM"
    )]
    pub output_es_ca_cert: Option<String>,
    /// Install the bundled index template (_index_template/shadowtap) before indexing
    #[arg(id = "output-es-install-template", long = "output-es-install-template")]
    pub output_es_install_template: bool,
}

register_output! {
    name: "output-es",
    about: "Indexes structured records into Elasticsearch/OpenSearch through the bulk API (batched, retried, stable ids)",
    args: OutputEsArgs,
    build: build,
}

/// Settings shared by every endpoint of one command line.
#[derive(Clone, Debug)]
struct Settings {
    pair: bool,
    pair_timeout: Duration,
    batch_docs: usize,
    batch_bytes: usize,
    flush_interval: Duration,
    workers: usize,
    retries: u32,
    install_template: bool,
}

struct EsOutput {
    endpoint: Endpoint,
    client: reqwest::blocking::Client,
    auth: Auth,
    settings: Settings,
    label: String,
}

/// The documents of a message stream: single records, or request/response pairs.
struct Documents {
    index: IndexName,
    pair: bool,
    pair_timeout: Duration,
    pending: HashMap<String, Message>,
    order: VecDeque<(String, Instant)>,
}

impl Documents {
    /// Documents ready for `msg` (none while a request waits for its response).
    fn push(&mut self, msg: Message, out: &mut Vec<Doc>) {
        if !self.pair {
            out.push(self.single(&msg));
            return;
        }
        if msg.kind() == Kind::Request {
            let id = msg.id().to_string();
            if let Some(previous) = self.pending.insert(id.clone(), msg) {
                out.push(self.single(&previous)); // a reused id: index the older alone
            }
            self.order.push_back((id, Instant::now()));
            while self.pending.len() > MAX_PENDING {
                self.expire_oldest(out);
            }
            return;
        }
        match self.pending.remove(msg.id()) {
            Some(request) => out.push(self.paired(&request, &msg)),
            None => out.push(self.single(&msg)),
        }
    }

    /// Indexes requests that waited longer than the pair timeout (all of them if `all`).
    fn expire(&mut self, all: bool, out: &mut Vec<Doc>) {
        while let Some((_, since)) = self.order.front() {
            if !all && since.elapsed() < self.pair_timeout {
                break;
            }
            self.expire_oldest(out);
        }
    }

    fn expire_oldest(&mut self, out: &mut Vec<Doc>) {
        if let Some((id, _)) = self.order.pop_front() {
            if let Some(request) = self.pending.remove(&id) {
                // Same id as a pair would have: the request alone, without response fields.
                out.push(self.doc(&request, request.id(), &record_json(&request), 1));
            }
        }
    }

    fn single(&self, msg: &Message) -> Doc {
        let id = format!("{}-{}", msg.id(), msg.kind().as_byte() as char);
        self.doc(msg, &id, &record_json(msg), 1)
    }

    fn paired(&self, request: &Message, response: &Message) -> Doc {
        let json = serde_json::to_vec(&pair_value(request, response)).expect("records serialise");
        self.doc(request, request.id(), &json, 2)
    }

    fn doc(&self, msg: &Message, id: &str, json: &[u8], messages: u64) -> Doc {
        let index = self.index.render(msg.meta.timestamp());
        Doc::new(&index, id, json, messages)
    }
}

/// A message's record as JSON, serialised straight from the record.
fn record_json(msg: &Message) -> Vec<u8> {
    serde_json::to_vec(&Record::from_message(msg)).expect("records serialise")
}

fn record_value(msg: &Message) -> Value {
    serde_json::to_value(Record::from_message(msg)).expect("records serialise")
}

/// A request's record with its response merged in.
pub fn pair_value(request: &Message, response: &Message) -> Value {
    let mut doc = match record_value(request) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    doc.insert("kind".into(), "pair".into());
    let Value::Object(resp) = record_value(response) else {
        return Value::Object(doc);
    };
    for field in ["status_code", "server", "content_encoding", "cache_control"] {
        if let Some(value) = resp.get(field) {
            doc.insert(field.into(), value.clone());
        }
    }
    let rename = [
        ("time", "response_time"),
        ("kind", "response_kind"),
        ("content_type", "response_content_type"),
        ("content_length", "response_content_length"),
        ("headers", "response_headers"),
    ];
    for (from, to) in rename {
        if let Some(value) = resp.get(from) {
            doc.insert(to.into(), value.clone());
        }
    }
    let latency = response
        .meta
        .latency()
        .filter(|l| *l > 0)
        .unwrap_or_else(|| response.meta.timestamp() - request.meta.timestamp());
    if latency >= 0 {
        doc.insert("latency_ns".into(), latency.into());
    }
    Value::Object(doc)
}

impl Output for EsOutput {
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let warnings = Arc::new(Throttle::default());
        let sender = Sender {
            client: self.client.clone(),
            url: format!("{}/_bulk", self.endpoint.base),
            auth: self.auth.clone(),
            retries: self.settings.retries,
            backoff: Duration::from_millis(100),
            counters: cx.counters().clone(),
            warnings: warnings.clone(),
            label: self.label.clone(),
        };
        if self.settings.install_template {
            self.install_template(&cx, &sender);
        }
        let (batches, queue) = bounded::<Vec<Doc>>(self.settings.workers);
        let workers: Vec<_> = (0..self.settings.workers)
            .map(|i| {
                let queue = queue.clone();
                let sender = sender.clone();
                let counters = cx.counters().clone();
                std::thread::Builder::new()
                    .name(format!("output-es-{i}"))
                    .spawn(move || {
                        // A panic is counted as an error (exit 1); the other workers go on.
                        catch_panic(&counters, || {
                            for batch in queue {
                                sender.send(batch);
                            }
                        });
                    })
                    .expect("spawn an output-es worker")
            })
            .collect();
        drop(queue);
        let mut docs = Documents {
            index: self.endpoint.index.clone(),
            pair: self.settings.pair,
            pair_timeout: self.settings.pair_timeout,
            pending: HashMap::new(),
            order: VecDeque::new(),
        };
        let mut batch = Batch::default();
        let mut ready = Vec::new();
        let tick = self
            .settings
            .flush_interval
            .clamp(Duration::from_millis(5), Duration::from_secs(1));
        loop {
            let closed = match inbox.recv_timeout(tick) {
                Next::Message(msg) => {
                    docs.push(msg, &mut ready);
                    false
                }
                Next::Timeout => false,
                Next::Closed => true,
            };
            docs.expire(closed, &mut ready);
            for doc in ready.drain(..) {
                batch.add(doc);
                if batch.docs.len() >= self.settings.batch_docs
                    || batch.bytes >= self.settings.batch_bytes
                {
                    let _ = batches.send(batch.take());
                }
            }
            let due = batch
                .since
                .is_some_and(|since| since.elapsed() >= self.settings.flush_interval);
            if !batch.docs.is_empty() && (due || closed) {
                let _ = batches.send(batch.take());
            }
            if closed {
                break;
            }
        }
        drop(batches);
        for worker in workers {
            let _ = worker.join();
        }
        Ok(())
    }
}

#[derive(Default)]
struct Batch {
    docs: Vec<Doc>,
    bytes: usize,
    since: Option<Instant>,
}

impl Batch {
    fn add(&mut self, doc: Doc) {
        self.since.get_or_insert_with(Instant::now);
        self.bytes += doc.lines.len();
        self.docs.push(doc);
    }

    fn take(&mut self) -> Vec<Doc> {
        self.bytes = 0;
        self.since = None;
        std::mem::take(&mut self.docs)
    }
}

impl EsOutput {
    /// PUTs the bundled template with this index's pattern; retried like a bulk request.
    fn install_template(&self, cx: &OutputContext, sender: &Sender) {
        let mut template: Value = serde_json::from_str(INDEX_TEMPLATE).expect("valid template");
        template["index_patterns"] = Value::from(vec![self.endpoint.index.pattern()]);
        let url = format!("{}/_index_template/shadowtap", self.endpoint.base);
        let body = serde_json::to_vec(&template).expect("serialises");
        match sender.put_json(&url, &body) {
            Ok(()) => tracing::info!("{}: installed index template shadowtap", self.label),
            Err(failure) => {
                tracing::error!(
                    "{}: installing the index template failed: {failure}",
                    self.label
                );
                cx.counters().add_error();
            }
        }
    }
}

/// `--output-es-password`, from the flag, `SHADOWTAP_OUTPUT_ES_PASSWORD` or the file.
fn password(args: &OutputEsArgs) -> Result<Option<String>, PluginError> {
    let secret = shadowtap_listener::Secret::load(
        "--output-es-password",
        args.output_es_password.as_deref(),
        args.output_es_password_file.as_deref(),
    )
    .map_err(|e| PluginError::usage("--output-es-password", e.to_string()))?;
    secret
        .map(|s| String::from_utf8(s.expose().to_vec()))
        .transpose()
        .map_err(|_| PluginError::usage("--output-es-password", "not UTF-8"))
}

fn build(args: OutputEsArgs, _: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    if args.output_es.is_empty() {
        return Ok(Vec::new());
    }
    let usage = |flag: &str, message: String| PluginError::usage(flag, message);
    if args.output_es_batch_size == 0 {
        return Err(usage("--output-es-batch-size", "must be at least 1".into()));
    }
    if args.output_es_workers == 0 || args.output_es_workers > 64 {
        return Err(usage("--output-es-workers", "must be 1 to 64".into()));
    }
    let settings = Settings {
        pair: args.output_es_pair,
        pair_timeout: args.output_es_pair_timeout,
        batch_docs: args.output_es_batch_size,
        batch_bytes: usize::try_from(args.output_es_batch_bytes.max(1)).unwrap_or(usize::MAX),
        flush_interval: args.output_es_flush_interval,
        workers: args.output_es_workers,
        retries: args.output_es_retries,
        install_template: args.output_es_install_template,
    };
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(args.output_es_timeout)
        .connect_timeout(args.output_es_timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(args.output_es_workers)
        .user_agent(concat!("shadowtap/", env!("CARGO_PKG_VERSION")))
        .tls_danger_accept_invalid_certs(args.output_es_skip_verify);
    if let Some(path) = &args.output_es_ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| usage("--output-es-ca-cert", format!("{path}: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| usage("--output-es-ca-cert", format!("{path}: {e}")))?;
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder
        .build()
        .map_err(|e| PluginError::Runtime(format!("output-es: HTTP client: {e}")))?;
    let password = password(&args)?;
    args.output_es
        .iter()
        .map(|value| {
            let endpoint = Endpoint::parse(value).map_err(|e| usage("--output-es", e))?;
            let auth = if let Some(key) = &args.output_es_api_key {
                Auth::ApiKey(key.clone())
            } else if let Some(user) = &args.output_es_username {
                Auth::Basic(user.clone(), password.clone())
            } else if let Some(basic) = &endpoint.basic {
                Auth::Basic(basic.username.clone(), basic.password.clone())
            } else {
                Auth::None
            };
            let label = instance_label(
                "output-es",
                &format!("{}/{}", endpoint.base, endpoint.index.pattern()),
            );
            let output = EsOutput {
                endpoint,
                client: client.clone(),
                auth,
                settings: settings.clone(),
                label: label.clone(),
            };
            Ok(OutputSpec::new(label, Box::new(output)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shadowtap_api::{testkit, Meta};

    fn msg(meta: &str, payload: &str) -> Message {
        Message::new(
            Meta::parse(Bytes::from(meta.to_string())).unwrap(),
            payload.to_string(),
        )
    }

    #[test]
    fn conformance() {
        testkit::check_conformance("output-es", &[]);
    }

    #[test]
    fn template_is_valid_json_with_the_expected_mappings() {
        let template: Value = serde_json::from_str(INDEX_TEMPLATE).unwrap();
        let props = &template["template"]["mappings"]["properties"];
        assert_eq!(props["src_ip"]["type"], "ip");
        assert_eq!(props["time"]["type"], "date_nanos");
        assert_eq!(props["status_code"]["type"], "integer");
        assert_eq!(props["method"]["type"], "keyword");
        assert_eq!(props["uri"]["fields"]["keyword"]["type"], "keyword");
        assert_eq!(props["headers"]["type"], "flattened");
    }

    #[test]
    fn flags_are_checked() {
        let err = |flags: &[&str]| testkit::build_error("output-es", flags);
        assert!(err(&["--output-es", "http://h:9200"]).contains("--output-es"));
        assert!(
            err(&["--output-es", "http://h:9200/x", "--output-es-workers", "0"])
                .contains("--output-es-workers")
        );
        let specs = testkit::build_outputs("output-es", &["--output-es", "h/http-%Y"]).unwrap();
        assert_eq!(specs[0].label, "output-es[http://h:9200/http-*]");
    }

    fn documents(pair: bool) -> Documents {
        Documents {
            index: IndexName::parse("http-%Y.%m.%d").unwrap(),
            pair,
            pair_timeout: Duration::from_secs(60),
            pending: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn lines(doc: &Doc) -> (Value, Value) {
        let text = std::str::from_utf8(&doc.lines).unwrap();
        let mut it = text.lines();
        (
            serde_json::from_str(it.next().unwrap()).unwrap(),
            serde_json::from_str(it.next().unwrap()).unwrap(),
        )
    }

    #[test]
    fn single_documents_have_stable_ids_per_kind() {
        let mut out = Vec::new();
        let mut docs = documents(false);
        docs.push(
            msg(
                "1 abc 1700000000000000000 0\n",
                "GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
            ),
            &mut out,
        );
        docs.push(
            msg(
                "2 abc 1700000000500000000 500000000\n",
                "HTTP/1.1 404 Not Found\r\n\r\n",
            ),
            &mut out,
        );
        let (action, source) = lines(&out[0]);
        assert_eq!(
            action,
            serde_json::json!({"index": {"_index": "http-2023.11.14", "_id": "abc-1"}})
        );
        assert_eq!(source["uri"], "/x");
        let (action, source) = lines(&out[1]);
        assert_eq!(action["index"]["_id"], "abc-2");
        assert_eq!(source["status_code"], 404);
    }

    #[test]
    fn pairs_merge_the_response_and_expire_lonely_requests() {
        let mut out = Vec::new();
        let mut docs = documents(true);
        docs.push(
            msg(
                "1 a 1000 0\n",
                "GET /a HTTP/1.1\r\nHost: h\r\nX-Req: 1\r\n\r\n",
            ),
            &mut out,
        );
        assert!(out.is_empty());
        docs.push(
            msg(
                "2 a 3500 -1\n",
                "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Type: text/html\r\nX-Resp: 2\r\n\r\n",
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].messages, 2);
        let (action, source) = lines(&out[0]);
        assert_eq!(action["index"]["_id"], "a");
        assert_eq!(source["kind"], "pair");
        assert_eq!(source["uri"], "/a");
        assert_eq!(source["status_code"], 200);
        assert_eq!(source["server"], "s");
        assert_eq!(source["latency_ns"], 2500);
        assert_eq!(source["response_content_type"], "text/html");
        assert_eq!(source["headers"]["x-req"], "1");
        assert_eq!(source["response_headers"]["x-resp"], "2");
        // A response without its request is indexed alone; a request without a response too.
        docs.push(msg("2 b 1 1\n", "HTTP/1.1 200 OK\r\n\r\n"), &mut out);
        docs.push(msg("1 c 1 0\n", "GET /c HTTP/1.1\r\n\r\n"), &mut out);
        assert_eq!(out.len(), 2);
        docs.expire(true, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(lines(&out[1]).0["index"]["_id"], "b-2");
        assert_eq!(lines(&out[2]).0["index"]["_id"], "c");
        assert_eq!(out[2].messages, 1);
    }
}
