//! `output-diff`: differential replay. It pairs, by request id, each request (kind 1), its
//! original response (kind 2, the *primary*) and every replayed response (kind 3, from
//! `--output-http … --output-http-track-response`, named by `--output-http-name`), compares
//! them after undoing transport noise, cancels noise (default-ignored headers, Diffy's
//! secondary, and fields that differ between production's answers to identical requests), and
//! writes a report a person can read: one self-contained HTML page and `REPORT.json` beside it,
//! rewritten every `--output-diff-interval` and at exit.
//!
//! Example: `shadowtap --input-file recorded.gor --output-http http://staging
//! --output-http-name candidate --output-http-track-response --output-diff report.html
//! --output-diff-max-regressions 0` (exit status 3 when the gate is exceeded).
//!
//! Modules: `normalise` (de-chunk, decode), `compare` (fields and JSON paths), `endpoint`
//! (URL templates and routes), `differ` (pairing, timeouts, noise learning), `stats`
//! (bounded aggregates and verdicts), `latency` (histograms), `report` and `html` (the
//! report), `gate`, `example` (masked, cut messages).
#![deny(missing_docs)]

mod compare;
mod differ;
mod endpoint;
mod example;
mod gate;
mod html;
mod latency;
mod normalise;
mod report;
mod stats;

use differ::{Config, Differ, Observer};
use gate::Gate;
use report::{Context, Figures, Paths};
use serde_json::json;
use shadowtap_api::{
    register_output, values::duration_value, CoreSettings, Counters, Inbox, Next, Output,
    OutputContext, OutputSpec, PluginError,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Flags of `output-diff`.
#[derive(clap::Args, Debug)]
pub struct OutputDiffArgs {
    /// Compare original and replayed responses; write this HTML report (and REPORT.json beside it)
    #[arg(id = "output-diff", long = "output-diff", value_name = "REPORT.html")]
    pub output_diff: Option<PathBuf>,
    /// The --output-http-name of a target running the current version: what differs between it and the original is noise
    #[arg(
        id = "output-diff-secondary",
        long = "output-diff-secondary",
        value_name = "NAME"
    )]
    pub secondary: Option<String>,
    /// Do not compare this header field (repeatable; Date, Expires, Age, Last-Modified, ETag, Server-Timing and request-id-like fields never are)
    #[arg(
        id = "output-diff-ignore-header",
        long = "output-diff-ignore-header",
        value_name = "NAME"
    )]
    pub ignore_header: Vec<String>,
    /// Do not compare this JSON path or what is under it (repeatable): $.meta, $.items[*].ts, $..request_id
    #[arg(
        id = "output-diff-ignore-path",
        long = "output-diff-ignore-path",
        value_name = "JSONPATH"
    )]
    pub ignore_path: Vec<String>,
    /// Compare JSON arrays as unordered collections
    #[arg(
        id = "output-diff-unordered-arrays",
        long = "output-diff-unordered-arrays"
    )]
    pub unordered_arrays: bool,
    /// Count requests matching this pattern under it (repeatable, first match wins): 'GET /users/{id}/orders', '* /files/{name}'
    #[arg(
        id = "output-diff-route",
        long = "output-diff-route",
        value_name = "PATTERN"
    )]
    pub route: Vec<String>,
    /// Rewrite the report this often during the run (and always at exit)
    #[arg(id = "output-diff-interval", long = "output-diff-interval", value_parser = duration_value, default_value = "10s", value_name = "DURATION")]
    pub interval: Duration,
    /// Examples kept in the report, one per differing field at most
    #[arg(
        id = "output-diff-max-examples",
        long = "output-diff-max-examples",
        default_value_t = 500,
        value_name = "N"
    )]
    pub max_examples: usize,
    /// Requests waiting for their responses at once; the oldest beyond this are counted unpaired (evicted)
    #[arg(
        id = "output-diff-pending",
        long = "output-diff-pending",
        default_value_t = 50_000,
        value_name = "N"
    )]
    pub pending: usize,
    /// How long a request waits for its original and replayed responses
    #[arg(id = "output-diff-timeout", long = "output-diff-timeout", value_parser = duration_value, default_value = "30s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Exit with status 3 when regressions exceed N (or N% of the pairs compared)
    #[arg(
        id = "output-diff-max-regressions",
        long = "output-diff-max-regressions",
        value_name = "N|N%"
    )]
    pub max_regressions: Option<String>,
}

struct DiffOutput {
    differ: Differ,
    paths: Paths,
    interval: Duration,
    gate: Option<Gate>,
    settings: serde_json::Value,
}

fn build(args: OutputDiffArgs, core: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    let Some(path) = args.output_diff.clone() else {
        return Ok(Vec::new());
    };
    let usage = |flag: &str, e: &dyn std::fmt::Display| PluginError::usage(flag, e.to_string());
    let paths = compare::PathPattern::parse_all(&args.ignore_path)
        .map_err(|e| usage("--output-diff-ignore-path", &e))?;
    let endpoints =
        endpoint::Endpoints::new(&args.route).map_err(|e| usage("--output-diff-route", &e))?;
    let gate = args
        .max_regressions
        .as_deref()
        .map(Gate::parse)
        .transpose()
        .map_err(|e| usage("--output-diff-max-regressions", &e))?;
    if args.interval.is_zero() || args.timeout.is_zero() {
        return Err(PluginError::usage(
            "--output-diff-interval/--output-diff-timeout",
            "must be more than 0",
        ));
    }
    let rules = compare::Rules::new(&args.ignore_header, paths, args.unordered_arrays);
    let settings = json!({
        "secondary": args.secondary,
        "unordered_arrays": args.unordered_arrays,
        "ignored_headers": rules.ignored_headers(),
        "ignored_paths": args.ignore_path,
        "max_regressions": gate.map(Gate::describe),
        "routes": args.route,
    });
    let config = Config {
        secondary: args.secondary,
        rules,
        endpoints,
        body_limit: core.copy_buffer_size,
        pending: args.pending.max(1),
        timeout: args.timeout,
        max_examples: args.max_examples,
    };
    let output = DiffOutput {
        differ: Differ::new(config),
        paths: Paths::new(&path),
        interval: args.interval,
        gate,
        settings,
    };
    let label = shadowtap_api::instance_label("output-diff", &path.display().to_string());
    Ok(vec![OutputSpec::new(label, Box::new(output))])
}

register_output! {
    name: "output-diff",
    about: "Compares original and replayed responses; writes an HTML + JSON report",
    args: OutputDiffArgs,
    build: build,
}

impl Output for DiffOutput {
    fn run(mut self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let started = Instant::now();
        let mut metrics = Metrics::new(cx.counters().clone());
        let mut next_report = started + self.interval;
        loop {
            let wait = next_report
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            let next = inbox.recv_timeout(wait);
            let now = Instant::now();
            match next {
                Next::Message(msg) => {
                    cx.counters().add_out(1);
                    self.differ.add(msg, now, &mut metrics);
                }
                Next::Timeout => {}
                Next::Closed => break,
            }
            self.differ.expire(now, &mut metrics);
            if now >= next_report {
                self.write_report(started, false, &mut metrics)?;
                next_report = now + self.interval;
            }
        }
        self.differ.finish(&mut metrics);
        let figures = self.write_report(started, true, &mut metrics)?;
        if let Some(gate) = self.gate {
            if gate.exceeded(figures.regressions, figures.pairs) {
                cx.counters().fail_gate(format!(
                    "{} regressions in {} pairs exceed --output-diff-max-regressions {}",
                    figures.regressions,
                    figures.pairs,
                    gate.describe()
                ));
            }
        }
        Ok(())
    }
}

impl DiffOutput {
    fn write_report(
        &self,
        started: Instant,
        last: bool,
        metrics: &mut Metrics,
    ) -> Result<Figures, PluginError> {
        let context = Context {
            last,
            elapsed: started.elapsed(),
            gate: self.gate,
            settings: &self.settings,
        };
        let (report, figures) = report::build(&self.differ, &context);
        self.paths.write(&report).map_err(|e| {
            PluginError::io(
                format!("--output-diff: writing {}", self.paths.html.display()),
                e,
            )
        })?;
        metrics.set_verdicts(&figures, self.differ.pending());
        if last {
            eprintln!("{}", report::summary(&report, &self.paths));
        }
        Ok(figures)
    }
}

/// The live figures `--metrics` serves: totals as extra counters, and per endpoint (at most
/// [`stats::MAX_ENDPOINTS`]) as keyed ones.
struct Metrics {
    counters: Arc<Counters>,
    pairs: Arc<AtomicU64>,
    identical: Arc<AtomicU64>,
    regressions: Arc<AtomicU64>,
    unpaired: Arc<AtomicU64>,
    pending: Arc<AtomicU64>,
    body_problems: Arc<AtomicU64>,
    per_endpoint: HashMap<String, [Arc<AtomicU64>; 2]>,
}

impl Metrics {
    fn new(counters: Arc<Counters>) -> Metrics {
        Metrics {
            pairs: counters.extra("diff pairs"),
            identical: counters.extra("diff identical"),
            regressions: counters.extra("diff regressions"),
            unpaired: counters.extra("diff unpaired"),
            pending: counters.extra("diff pending"),
            body_problems: counters.extra("diff bodies compared undecoded"),
            per_endpoint: HashMap::new(),
            counters,
        }
    }

    /// Regressions are decided at report time: the figures are set, not added to.
    fn set_verdicts(&mut self, figures: &Figures, pending: usize) {
        self.regressions.store(figures.regressions, Relaxed);
        self.pending.store(pending as u64, Relaxed);
        self.unpaired.store(figures.unpaired, Relaxed);
        for (endpoint, regressions) in figures.by_endpoint.iter().take(stats::MAX_ENDPOINTS) {
            self.counters
                .keyed("diff regressions", "endpoint", endpoint)
                .store(*regressions, Relaxed);
        }
    }
}

impl Observer for Metrics {
    fn pair(&mut self, endpoint: &str, identical: bool) {
        self.pairs.fetch_add(1, Relaxed);
        if identical {
            self.identical.fetch_add(1, Relaxed);
        }
        let counters = &self.counters;
        let full = self.per_endpoint.len() >= stats::MAX_ENDPOINTS;
        let cells = match self.per_endpoint.get(endpoint) {
            Some(cells) => cells,
            None if full => return,
            None => self
                .per_endpoint
                .entry(endpoint.to_string())
                .or_insert_with(|| {
                    [
                        counters.keyed("diff pairs", "endpoint", endpoint),
                        counters.keyed("diff identical", "endpoint", endpoint),
                    ]
                }),
        };
        cells[0].fetch_add(1, Relaxed);
        if identical {
            cells[1].fetch_add(1, Relaxed);
        }
    }

    fn body_problem(&mut self) {
        self.body_problems.fetch_add(1, Relaxed);
    }
}
