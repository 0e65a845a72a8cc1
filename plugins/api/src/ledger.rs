//! Counters for every message in, out, and every drop with its reason.
//!
//! Each plugin instance (and each engine stage) gets one [`Counters`] handle; increments are
//! relaxed atomics, cheap enough for the hot path. The engine prints the totals at exit,
//! periodically with `--stats`, and serves them to metrics exporters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a message (or packet) did not reach an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An output's queue (or the pipeline's) was full under a drop-when-full policy.
    QueueFull,
    /// Beyond an `|N` or `|N%` rate limit.
    RateLimited,
    /// Rejected by an `--http-*` filter.
    Filtered,
    /// The middleware did not echo it.
    MiddlewareDropped,
    /// In flight inside a middleware process that exited.
    MiddlewareLost,
    /// Could not be parsed (bad header line, bad middleware line, garbage input).
    Malformed,
    /// Incomplete when it expired.
    Incomplete,
    /// An output failed to deliver it.
    OutputError,
    /// An output's total size limit was reached.
    SizeLimit,
    /// Still queued when the run ended and the output could not take it.
    Shutdown,
    /// A packet that is not IP.
    NotIp,
    /// A packet that is not TCP.
    NotTcp,
    /// A TCP segment outside the configured ports.
    OutsidePorts,
    /// An IP fragment (not reassembled).
    Fragment,
    /// A packet with inconsistent headers (lengths, versions).
    FormatError,
    /// A packet cut short by the capture's snapshot length.
    TruncatedPacket,
    /// A capture link type the decoder does not know.
    UnsupportedLinkType,
    /// An in-progress message of a flow evicted from a full flow table.
    FlowTableFull,
    /// Bytes on an HTTP port that never formed an HTTP message.
    NotHttp,
    /// Out-of-order data beyond the reassembly memory budget.
    BufferFull,
    /// Capture paused by a load guard.
    Paused,
    /// Dropped by the kernel or the capture ring before we saw it.
    KernelDrop,
    /// Segments of a connection after an in-window RST closed it.
    AfterReset,
    /// A segment (or RST) outside the receive window: forged or stale.
    OutOfWindow,
    /// Bytes of a tunnel (`CONNECT`, an upgraded protocol) that are not decoded as HTTP.
    Tunnel,
    /// Out-of-order segments beyond the per-flow cap on held segments.
    SegmentLimit,
    /// A record or line longer than its documented cap.
    Oversized,
    /// Beyond a listener's memory budget across connections.
    MemoryBudget,
    /// Refused by a listener's connection limit.
    ConnectionLimit,
    /// A peer that did not authenticate (token or client certificate).
    Unauthorized,
    /// In flight in a plugin thread that panicked.
    Panicked,
    /// Not for this output by design (a response given to an output that replays requests).
    NotForOutput,
    /// A TLS connection whose client random never appeared in a key log within the wait.
    TlsNoKey,
    /// TLS records of a connection whose handshake was not captured (started mid-connection).
    TlsNoHandshake,
    /// A TLS connection with a cipher suite the decrypter does not implement.
    TlsUnsupportedSuite,
    /// A TLS record that failed authentication (wrong key, corrupted record).
    TlsDecryptFailed,
    /// A TLS connection whose record stream could not be resynchronised after a lost segment.
    TlsLostSegment,
    /// A TLS 1.2 connection that renegotiated (new keys under the old ones).
    TlsRenegotiation,
    /// TLS records or handshake messages that do not parse.
    TlsMalformed,
    /// TLS records beyond the per-connection budget held while waiting for a key.
    TlsBufferFull,
    /// HTTP/2 frames, header blocks or streams that could not be decoded.
    Http2Error,
}

impl Reason {
    /// Every reason, in display order.
    pub const ALL: [Reason; 41] = [
        Reason::QueueFull,
        Reason::RateLimited,
        Reason::Filtered,
        Reason::MiddlewareDropped,
        Reason::MiddlewareLost,
        Reason::Malformed,
        Reason::Incomplete,
        Reason::OutputError,
        Reason::SizeLimit,
        Reason::Shutdown,
        Reason::NotIp,
        Reason::NotTcp,
        Reason::OutsidePorts,
        Reason::Fragment,
        Reason::FormatError,
        Reason::TruncatedPacket,
        Reason::UnsupportedLinkType,
        Reason::FlowTableFull,
        Reason::NotHttp,
        Reason::BufferFull,
        Reason::Paused,
        Reason::KernelDrop,
        Reason::AfterReset,
        Reason::OutOfWindow,
        Reason::Tunnel,
        Reason::SegmentLimit,
        Reason::Oversized,
        Reason::MemoryBudget,
        Reason::ConnectionLimit,
        Reason::Unauthorized,
        Reason::Panicked,
        Reason::NotForOutput,
        Reason::TlsNoKey,
        Reason::TlsNoHandshake,
        Reason::TlsUnsupportedSuite,
        Reason::TlsDecryptFailed,
        Reason::TlsLostSegment,
        Reason::TlsRenegotiation,
        Reason::TlsMalformed,
        Reason::TlsBufferFull,
        Reason::Http2Error,
    ];

    /// A short human label (also the Prometheus `reason` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::QueueFull => "queue full",
            Reason::RateLimited => "rate limited",
            Reason::Filtered => "filtered",
            Reason::MiddlewareDropped => "dropped by middleware",
            Reason::MiddlewareLost => "lost in middleware crash",
            Reason::Malformed => "malformed",
            Reason::Incomplete => "incomplete",
            Reason::OutputError => "output error",
            Reason::SizeLimit => "size limit reached",
            Reason::Shutdown => "unsent at shutdown",
            Reason::NotIp => "not ip",
            Reason::NotTcp => "not tcp",
            Reason::OutsidePorts => "outside ports",
            Reason::Fragment => "fragment",
            Reason::FormatError => "format error",
            Reason::TruncatedPacket => "truncated packet",
            Reason::UnsupportedLinkType => "unsupported link type",
            Reason::FlowTableFull => "flow table full",
            Reason::NotHttp => "not http",
            Reason::BufferFull => "reassembly buffer full",
            Reason::Paused => "paused",
            Reason::KernelDrop => "kernel drop",
            Reason::AfterReset => "after reset",
            Reason::OutOfWindow => "out of window",
            Reason::Tunnel => "tunnel",
            Reason::SegmentLimit => "segment limit",
            Reason::Oversized => "oversized",
            Reason::MemoryBudget => "memory budget",
            Reason::ConnectionLimit => "connection limit",
            Reason::Unauthorized => "unauthorized",
            Reason::Panicked => "plugin panicked",
            Reason::NotForOutput => "not for this output",
            Reason::TlsNoKey => "tls: no key",
            Reason::TlsNoHandshake => "tls: no handshake",
            Reason::TlsUnsupportedSuite => "tls: unsupported suite",
            Reason::TlsDecryptFailed => "tls: decrypt failed",
            Reason::TlsLostSegment => "tls: lost segment",
            Reason::TlsRenegotiation => "tls: renegotiation",
            Reason::TlsMalformed => "tls: malformed",
            Reason::TlsBufferFull => "tls: buffer full",
            Reason::Http2Error => "h2 error",
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|&r| r == self).expect("listed")
    }
}

/// Which part of the pipeline a counter set belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// An input plugin instance.
    Input,
    /// An output plugin instance.
    Output,
    /// An engine stage (middleware, dispatch).
    Engine,
}

impl Role {
    /// `input`, `output` or `engine`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Output => "output",
            Role::Engine => "engine",
        }
    }
}

/// The counters of one plugin instance or engine stage.
#[derive(Debug)]
pub struct Counters {
    label: String,
    role: Role,
    received: AtomicU64,
    passed: AtomicU64,
    truncated: AtomicU64,
    errors: AtomicU64,
    drops: [AtomicU64; Reason::ALL.len()],
    extra: Mutex<Vec<(String, Arc<AtomicU64>)>>,
    keyed: Mutex<Vec<KeyedCounter>>,
    verdict: Mutex<Option<String>>,
}

/// A counter of one key of a family (`diff pairs` of endpoint `GET /users/{id}`).
#[derive(Debug)]
struct KeyedCounter {
    name: String,
    label: &'static str,
    key: String,
    value: Arc<AtomicU64>,
}

/// The value of one keyed counter at one moment (see [`Counters::keyed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedValue {
    /// The family's name, e.g. `diff pairs`.
    pub name: String,
    /// The name of the key's label, e.g. `endpoint`.
    pub label: &'static str,
    /// The key, e.g. `GET /users/{id}`.
    pub key: String,
    /// The value.
    pub value: u64,
}

impl Counters {
    fn new(label: String, role: Role) -> Self {
        Counters {
            label,
            role,
            received: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            extra: Mutex::new(Vec::new()),
            keyed: Mutex::new(Vec::new()),
            verdict: Mutex::new(None),
        }
    }

    /// The instance label, e.g. `input-file[requests.gor]`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Messages that came in (read by an input, queued to an output).
    pub fn add_in(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
    }

    /// Messages that went on (emitted by an input, written by an output).
    pub fn add_out(&self, n: u64) {
        self.passed.fetch_add(n, Relaxed);
    }

    /// Messages dropped for `reason`.
    pub fn add_drop(&self, reason: Reason, n: u64) {
        self.drops[reason.index()].fetch_add(n, Relaxed);
    }

    /// Units (messages, or packets for capture) that came in and were dropped here at once
    /// for `reason`: counted in and dropped, so that in = out + dropped holds.
    pub fn add_refused(&self, reason: Reason, n: u64) {
        self.add_in(n);
        self.add_drop(reason, n);
    }

    /// Counts what came in and is neither out nor dropped as dropped for `reason` (what a
    /// thread that failed, panicked or is abandoned at exit still held).
    pub fn settle(&self, reason: Reason) {
        let now = self.snapshot();
        let held = now.received.saturating_sub(now.passed + now.dropped());
        if held > 0 {
            self.add_drop(reason, held);
        }
    }

    /// Messages passed on with their payload cut short.
    pub fn add_truncated(&self, n: u64) {
        self.truncated.fetch_add(n, Relaxed);
    }

    /// Runtime errors worth a non-zero exit status.
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// A named extra counter (packets, bytes, retries…), created on first use.
    pub fn extra(&self, name: &str) -> Arc<AtomicU64> {
        let mut extra = self.extra.lock().expect("counter lock");
        if let Some((_, counter)) = extra.iter().find(|(n, _)| n == name) {
            return counter.clone();
        }
        let counter = Arc::new(AtomicU64::new(0));
        extra.push((name.to_string(), counter.clone()));
        counter
    }

    /// A counter of family `name` for one `key` (named `label` in metrics), created on first
    /// use: per-key figures that `--metrics` serves but the one-line summaries leave out (a
    /// run may have a thousand keys). The caller bounds how many keys it makes.
    pub fn keyed(&self, name: &str, label: &'static str, key: &str) -> Arc<AtomicU64> {
        let mut keyed = self.keyed.lock().expect("counter lock");
        if let Some(found) = keyed
            .iter()
            .find(|k| k.name == name && k.label == label && k.key == key)
        {
            return found.value.clone();
        }
        let value = Arc::new(AtomicU64::new(0));
        keyed.push(KeyedCounter {
            name: name.to_string(),
            label,
            key: key.to_string(),
            value: value.clone(),
        });
        value
    }

    /// Records that the run failed this plugin's gate (`--output-diff-max-regressions`):
    /// the run then exits with status 3 unless it failed otherwise. The last verdict counts.
    pub fn fail_gate(&self, why: impl Into<String>) {
        *self.verdict.lock().expect("counter lock") = Some(why.into());
    }

    /// Why the run failed this plugin's gate, if it did.
    pub fn gate_failure(&self) -> Option<String> {
        self.verdict.lock().expect("counter lock").clone()
    }

    /// A consistent-enough copy of every value.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            label: self.label.clone(),
            role: self.role,
            received: self.received.load(Relaxed),
            passed: self.passed.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
            errors: self.errors.load(Relaxed),
            drops: Reason::ALL
                .iter()
                .map(|&r| (r, self.drops[r.index()].load(Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            extra: self
                .extra
                .lock()
                .expect("counter lock")
                .iter()
                .map(|(n, c)| (n.clone(), c.load(Relaxed)))
                .collect(),
            keyed: self
                .keyed
                .lock()
                .expect("counter lock")
                .iter()
                .map(|k| KeyedValue {
                    name: k.name.clone(),
                    label: k.label,
                    key: k.key.clone(),
                    value: k.value.load(Relaxed),
                })
                .collect(),
        }
    }
}

/// The values of one [`Counters`] at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Instance label.
    pub label: String,
    /// Role.
    pub role: Role,
    /// Messages in.
    pub received: u64,
    /// Messages out.
    pub passed: u64,
    /// Messages cut short.
    pub truncated: u64,
    /// Runtime errors.
    pub errors: u64,
    /// Non-zero drops by reason.
    pub drops: Vec<(Reason, u64)>,
    /// Extra named counters.
    pub extra: Vec<(String, u64)>,
    /// Keyed counters, in creation order ([`Counters::keyed`]; served by `--metrics`, left out
    /// of [`Snapshot::describe`] and [`Snapshot::to_json`]).
    pub keyed: Vec<KeyedValue>,
}

impl Snapshot {
    /// Sum of all drops.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().map(|(_, n)| n).sum()
    }

    /// `label in N out N [truncated N] [dropped N (reason N, …)] [name N…]`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} in {} out {}", self.label, self.received, self.passed);
        if self.truncated > 0 {
            let _ = write!(text, " truncated {}", self.truncated);
        }
        if self.dropped() > 0 {
            let reasons: Vec<String> = self
                .drops
                .iter()
                .map(|(r, n)| format!("{} {}", r.as_str(), n))
                .collect();
            let _ = write!(text, " dropped {} ({})", self.dropped(), reasons.join(", "));
        }
        if self.errors > 0 {
            let _ = write!(text, " errors {}", self.errors);
        }
        for (name, value) in &self.extra {
            let _ = write!(text, " {name} {value}");
        }
        text
    }
}

impl Snapshot {
    /// This snapshot as a JSON object: `label`, `role`, `in`, `out`, `truncated`, `errors`,
    /// `dropped` (reason label → count, non-zero only) and `extra` (name → value).
    pub fn to_json(&self) -> serde_json::Value {
        let dropped: serde_json::Map<String, serde_json::Value> = self
            .drops
            .iter()
            .map(|(reason, n)| (reason.as_str().to_string(), (*n).into()))
            .collect();
        let extra: serde_json::Map<String, serde_json::Value> = self
            .extra
            .iter()
            .map(|(name, n)| (name.clone(), (*n).into()))
            .collect();
        serde_json::json!({
            "label": self.label,
            "role": self.role.as_str(),
            "in": self.received,
            "out": self.passed,
            "truncated": self.truncated,
            "errors": self.errors,
            "dropped": dropped,
            "extra": extra,
        })
    }
}

/// Every counter set of one run.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<Vec<Arc<Counters>>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Arc<Ledger> {
        Arc::new(Ledger::default())
    }

    /// Adds a counter set.
    pub fn register(&self, label: impl Into<String>, role: Role) -> Arc<Counters> {
        let counters = Arc::new(Counters::new(label.into(), role));
        self.entries
            .lock()
            .expect("ledger lock")
            .push(counters.clone());
        counters
    }

    /// Snapshots of every counter set: inputs, engine stages, outputs, each in registration order.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        let mut all: Vec<Snapshot> = self
            .entries
            .lock()
            .expect("ledger lock")
            .iter()
            .map(|c| c.snapshot())
            .collect();
        all.sort_by_key(|s| match s.role {
            Role::Input => 0,
            Role::Engine => 1,
            Role::Output => 2,
        });
        all
    }

    /// The one-line summary printed at exit and by `--stats`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.snapshot().iter().map(Snapshot::describe).collect();
        parts.join(" | ")
    }

    /// The summary as one line of JSON: `{"event": <event>, "plugins": [<snapshot>…]}`
    /// (see [`Snapshot::to_json`]); `event` is `summary` at exit, `stats` for `--stats`.
    pub fn summary_json(&self, event: &str) -> String {
        let plugins: Vec<serde_json::Value> =
            self.snapshot().iter().map(Snapshot::to_json).collect();
        serde_json::json!({ "event": event, "plugins": plugins }).to_string()
    }

    /// Counts, for every counter set, what came in and is neither out nor dropped as dropped
    /// for `reason` (for a run that exits while threads still hold messages).
    pub fn settle(&self, reason: Reason) {
        for counters in self.entries.lock().expect("ledger lock").iter() {
            counters.settle(reason);
        }
    }

    /// Every gate the run failed, as `label: why` ([`Counters::fail_gate`]).
    pub fn gate_failures(&self) -> Vec<String> {
        let entries = self.entries.lock().expect("ledger lock");
        entries
            .iter()
            .filter_map(|c| Some(format!("{}: {}", c.label, c.gate_failure()?)))
            .collect()
    }

    /// Total runtime errors across all plugins.
    pub fn errors(&self) -> u64 {
        self.snapshot().iter().map(|s| s.errors).sum()
    }
}

/// Lets at most `burst` log lines through per interval and counts the ones held back, so a
/// flood of per-message failures costs a few lines a second while the first ones are all seen.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    burst: u32,
    window: Mutex<(Option<Instant>, u32)>,
    suppressed: AtomicU64,
}

impl Throttle {
    /// At most `burst` lines per `interval`.
    pub fn new(interval: Duration, burst: u32) -> Self {
        Throttle {
            interval,
            burst: burst.max(1),
            window: Mutex::new((None, 0)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now (`n` lines were held back since the last),
    /// `None` when it should be skipped.
    pub fn allow(&self) -> Option<u64> {
        let mut window = self.window.lock().expect("throttle lock");
        let now = Instant::now();
        let expired = window
            .0
            .is_none_or(|start| now.duration_since(start) >= self.interval);
        if expired {
            *window = (Some(now), 0);
        }
        if window.1 >= self.burst {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        window.1 += 1;
        Some(self.suppressed.swap(0, Relaxed))
    }
}

impl Default for Throttle {
    /// Ten lines a second.
    fn default() -> Self {
        Throttle::new(Duration::from_secs(1), 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_drops_by_reason() {
        let ledger = Ledger::new();
        let input = ledger.register("input-file[a.gor]", Role::Input);
        input.add_in(3);
        input.add_out(2);
        input.add_drop(Reason::Malformed, 1);
        let output = ledger.register("output-null", Role::Output);
        output.add_in(2);
        output.add_out(2);
        output.extra("bytes").fetch_add(10, Relaxed);
        assert_eq!(
            ledger.summary(),
            "input-file[a.gor] in 3 out 2 dropped 1 (malformed 1) | output-null in 2 out 2 bytes 10"
        );
    }

    #[test]
    fn throttle_holds_back_and_counts() {
        let throttle = Throttle::new(Duration::from_secs(60), 2);
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
    }
}
