//! The bulk API: NDJSON bodies, response parsing with per-item results, and sending with
//! retries.

use serde::Deserialize;
use shadowtap_api::{Counters, Reason, Throttle};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// One document: its action line and source line, ready for the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc {
    /// `{"index":{…}}\n{…}\n`.
    pub lines: Vec<u8>,
    /// How many messages it stands for (2 for a request/response pair).
    pub messages: u64,
}

impl Doc {
    /// An `index` action for `source` in `index` under the stable `id`.
    pub fn new(index: &str, id: &str, source: &[u8], messages: u64) -> Doc {
        let mut lines = Vec::with_capacity(source.len() + index.len() + id.len() + 40);
        lines.extend_from_slice(br#"{"index":{"_index":"#);
        lines.extend_from_slice(serde_json::to_string(index).expect("a string").as_bytes());
        lines.extend_from_slice(br#","_id":"#);
        lines.extend_from_slice(serde_json::to_string(id).expect("a string").as_bytes());
        lines.extend_from_slice(b"}}\n");
        lines.extend_from_slice(source);
        lines.push(b'\n');
        Doc { lines, messages }
    }
}

/// The bulk body of `docs`.
pub fn body(docs: &[Doc]) -> Vec<u8> {
    let mut out = Vec::with_capacity(docs.iter().map(|d| d.lines.len()).sum());
    for doc in docs {
        out.extend_from_slice(&doc.lines);
    }
    out
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<std::collections::HashMap<String, ItemResult>>,
}

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// What became of one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Indexed.
    Done,
    /// Rejected for now (429, 502, 503, 504): send again.
    Retry(String),
    /// Rejected for good, with the error type.
    Failed(String),
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Whether a whole request that got `status` is sent again: overload and server errors.
fn request_retryable(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Per-document outcomes of a 200 bulk response; `None` if the body does not match the
/// request (then the whole batch is sent again: the stable ids make that safe).
pub fn parse_response(body: &[u8], docs: usize) -> Option<Vec<Outcome>> {
    let response: BulkResponse = serde_json::from_slice(body).ok()?;
    if response.items.len() != docs {
        return None;
    }
    let outcomes = response
        .items
        .into_iter()
        .map(|item| {
            let Some(result) = item.into_values().next() else {
                return Outcome::Retry("empty item".into());
            };
            let kind = || {
                result
                    .error
                    .as_ref()
                    .and_then(|e| e.get("type").and_then(|t| t.as_str()).map(str::to_string))
                    .unwrap_or_else(|| format!("status {}", result.status))
            };
            match result.status {
                200..=299 => Outcome::Done,
                s if retryable(s) => Outcome::Retry(kind()),
                _ => Outcome::Failed(kind()),
            }
        })
        .collect::<Vec<_>>();
    // The items are trusted rather than the response's `errors` flag.
    Some(outcomes)
}

/// How requests are sent.
#[derive(Clone)]
pub struct Sender {
    /// The HTTP client (pooled, shared by the workers).
    pub client: reqwest::blocking::Client,
    /// `{base}/_bulk`.
    pub url: String,
    /// Extra headers: authorization.
    pub auth: Auth,
    /// Attempts after the first.
    pub retries: u32,
    /// First backoff (doubles each attempt, at most 10 s).
    pub backoff: Duration,
    /// Ledger counters of the output.
    pub counters: Arc<Counters>,
    /// Log limiter.
    pub warnings: Arc<Throttle>,
    /// Instance label for logs.
    pub label: String,
}

/// Credentials.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// None.
    #[default]
    None,
    /// Basic auth.
    Basic(String, Option<String>),
    /// `Authorization: ApiKey <key>`.
    ApiKey(String),
}

impl Auth {
    /// Adds the credentials to a request.
    pub fn apply(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Basic(user, password) => request.basic_auth(user, password.as_deref()),
            Auth::ApiKey(key) => request.header("Authorization", format!("ApiKey {key}")),
        }
    }
}

/// The answer to one bulk request.
enum Attempt {
    /// Per-document outcomes.
    Items(Vec<Outcome>),
    /// The whole request should be sent again.
    RetryAll(String),
    /// The whole request failed for good.
    FailAll(String),
}

impl Sender {
    fn attempt(&self, docs: &[Doc]) -> Attempt {
        let request = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/x-ndjson")
            .header("Accept", "application/json")
            .body(body(docs));
        let response = match self.auth.apply(request).send() {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Attempt::RetryAll("timeout".into()),
            Err(e) => {
                return Attempt::RetryAll(if e.is_connect() {
                    "connect".into()
                } else {
                    format!("request: {e}")
                })
            }
        };
        let status = response.status().as_u16();
        let bytes = match response.bytes() {
            Ok(bytes) => bytes,
            Err(_) => return Attempt::RetryAll("reading the response".into()),
        };
        match status {
            200 => match parse_response(&bytes, docs.len()) {
                Some(outcomes) => Attempt::Items(outcomes),
                None => Attempt::RetryAll("unexpected bulk response".into()),
            },
            s if request_retryable(s) => Attempt::RetryAll(format!("http {s}")),
            s => {
                let reason = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/error/type")
                            .and_then(|t| t.as_str())
                            .map(str::to_string)
                    })
                    .map(|t| format!("http {s} {t}"))
                    .unwrap_or_else(|| format!("http {s}"));
                Attempt::FailAll(reason)
            }
        }
    }

    /// Sends `docs`, retrying what may succeed later; counts every document as delivered or
    /// failed.
    pub fn send(&self, mut docs: Vec<Doc>) {
        let mut attempt = 0u32;
        loop {
            let (retry, reason) = match self.attempt(&docs) {
                Attempt::Items(outcomes) => {
                    let mut retry = Vec::new();
                    let mut reason = String::new();
                    for (doc, outcome) in docs.into_iter().zip(outcomes) {
                        match outcome {
                            Outcome::Done => self.counters.add_out(doc.messages),
                            Outcome::Failed(why) => self.fail(doc.messages, &why, None),
                            Outcome::Retry(why) => {
                                reason = why;
                                retry.push(doc);
                            }
                        }
                    }
                    (retry, reason)
                }
                Attempt::RetryAll(reason) => (docs, reason),
                Attempt::FailAll(reason) => {
                    let messages = docs.iter().map(|d| d.messages).sum();
                    self.fail(messages, &reason, None);
                    return;
                }
            };
            if retry.is_empty() {
                return;
            }
            if attempt >= self.retries {
                let messages = retry.iter().map(|d| d.messages).sum();
                self.fail(messages, &reason, Some(attempt + 1));
                return;
            }
            self.counters.extra("bulk retries").fetch_add(1, Relaxed);
            std::thread::sleep(self.delay(attempt));
            attempt += 1;
            docs = retry;
        }
    }

    /// The wait after attempt `attempt` (from 0): the backoff, doubled each time, at most 10 s.
    fn delay(&self, attempt: u32) -> Duration {
        self.backoff
            .saturating_mul(1 << attempt.min(16))
            .min(Duration::from_secs(10))
    }

    /// PUTs the JSON `body` to `url`, retried like a bulk request; why it failed for good.
    pub fn put_json(&self, url: &str, body: &[u8]) -> Result<(), String> {
        let mut attempt = 0u32;
        loop {
            let request = self
                .client
                .put(url)
                .header("Content-Type", "application/json")
                .body(body.to_vec());
            let failure = match self.auth.apply(request).send() {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status().as_u16();
                    if !request_retryable(status) {
                        let text = response.text().unwrap_or_default();
                        let text: String = text.chars().take(300).collect();
                        return Err(format!("http {status}: {text}"));
                    }
                    format!("http {status}")
                }
                Err(e) => {
                    tracing::debug!("{}: {url}: {e}", self.label);
                    e.to_string()
                }
            };
            if attempt >= self.retries {
                return Err(failure);
            }
            std::thread::sleep(self.delay(attempt));
            attempt += 1;
        }
    }

    /// Counts `messages` as not indexed because of `kind`, after `attempts` when retried.
    fn fail(&self, messages: u64, kind: &str, attempts: Option<u32>) {
        self.counters.add_drop(Reason::OutputError, messages);
        self.counters
            .extra(&format!("es error: {kind}"))
            .fetch_add(messages, Relaxed);
        self.counters.add_error();
        let gave_up = attempts
            .map(|n| format!(" (gave up after {n} attempts)"))
            .unwrap_or_default();
        if let Some(held_back) = self.warnings.allow() {
            tracing::error!(
                "{}: {messages} message(s) not indexed: {kind}{gave_up} ({held_back} similar messages held back)",
                self.label
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_ndjson_pairs_without_type() {
        let docs = vec![
            Doc::new("http-2024.01.02", "abc-1", br#"{"kind":"request"}"#, 1),
            Doc::new("gor", "x\"y", br#"{"kind":"pair"}"#, 2),
        ];
        assert_eq!(
            String::from_utf8(body(&docs)).unwrap(),
            concat!(
                "{\"index\":{\"_index\":\"http-2024.01.02\",\"_id\":\"abc-1\"}}\n",
                "{\"kind\":\"request\"}\n",
                "{\"index\":{\"_index\":\"gor\",\"_id\":\"x\\\"y\"}}\n",
                "{\"kind\":\"pair\"}\n",
            )
        );
    }

    #[test]
    fn partial_failures_are_per_item() {
        let response = br#"{"took":3,"errors":true,"items":[
            {"index":{"_index":"i","_id":"a","status":201,"result":"created"}},
            {"index":{"_index":"i","_id":"b","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},
            {"index":{"_index":"i","_id":"c","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}},
            {"index":{"_index":"i","_id":"d","status":200,"result":"updated"}},
            {"index":{"_index":"i","_id":"e","status":503}}
        ]}"#;
        assert_eq!(
            parse_response(response, 5).unwrap(),
            vec![
                Outcome::Done,
                Outcome::Retry("es_rejected_execution_exception".into()),
                Outcome::Failed("mapper_parsing_exception".into()),
                Outcome::Done,
                Outcome::Retry("status 503".into()),
            ]
        );
        assert_eq!(parse_response(response, 4), None, "item count must match");
        assert_eq!(parse_response(b"{}", 0), None);
        assert_eq!(parse_response(b"<html>", 1), None);
    }
}
