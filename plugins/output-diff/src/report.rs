//! The report: `REPORT.json` (its keys are listed in the project README) built from the
//! aggregates, the HTML page rendered from it, both written atomically
//! (a temporary file renamed over the old one), and the summary printed on stderr at exit.

use crate::differ::{Differ, Unpaired};
use crate::gate::Gate;
use crate::stats::{EndpointNoise, EndpointStats, EndpointVerdict, Example, FieldStats};
use serde_json::{json, Map, Value};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The figures the run's gate and metrics need, from one report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Pairs compared (all candidates).
    pub pairs: u64,
    /// Pairs with a regression.
    pub regressions: u64,
    /// Unpaired requests and responses.
    pub unpaired: u64,
    /// (endpoint, regressions), every candidate's summed per endpoint.
    pub by_endpoint: Vec<(String, u64)>,
}

/// What the report says about the run besides the aggregates.
pub struct Context<'a> {
    /// The report written at exit.
    pub last: bool,
    /// Since the output started.
    pub elapsed: Duration,
    /// `--output-diff-max-regressions`.
    pub gate: Option<Gate>,
    /// The settings block.
    pub settings: &'a Value,
}

/// The report as JSON, and its figures.
pub fn build(differ: &Differ, context: &Context) -> (Value, Figures) {
    let mut figures = Figures::default();
    let mut totals = Totals::default();
    let mut by_endpoint: std::collections::BTreeMap<String, u64> = Default::default();
    let no_noise = EndpointNoise::default();
    let targets: Vec<Value> = differ
        .targets
        .iter()
        .map(|(name, stats)| {
            let mut target_totals = Totals::default();
            let mut endpoints: Vec<(&String, &EndpointStats, EndpointVerdict)> = stats
                .endpoints
                .iter()
                .map(|(endpoint, e)| {
                    let noise = differ.noise.get(endpoint).unwrap_or(&no_noise);
                    (endpoint, e, e.verdict(noise))
                })
                .collect();
            endpoints.sort_by(|a, b| b.2.regressions.cmp(&a.2.regressions).then(a.0.cmp(b.0)));
            for (endpoint, e, verdict) in &endpoints {
                target_totals.merge(&Totals::of(e, verdict));
                *by_endpoint.entry((*endpoint).clone()).or_default() += verdict.regressions;
            }
            totals.merge(&target_totals);
            json!({
                "name": name,
                "totals": target_totals.to_json(),
                "status_matrix": status_matrix(&stats.status_matrix),
                "endpoints": endpoints
                    .iter()
                    .map(|(endpoint, e, v)| endpoint_json(endpoint, e, v))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let unpaired_total: u64 = differ.unpaired.values().sum();
    figures.pairs = totals.pairs;
    figures.regressions = totals.regressions;
    figures.unpaired = unpaired_total;
    figures.by_endpoint = by_endpoint.into_iter().collect();
    let mut totals_json = totals.to_json();
    totals_json["requests"] = differ.requests.into();
    totals_json["unpaired"] = unpaired_total.into();
    let gate = context.gate.map(|g| {
        json!({
            "limit": g.describe(),
            "regressions": totals.regressions,
            "exceeded": g.exceeded(totals.regressions, totals.pairs),
        })
    });
    let report = json!({
        "version": 1,
        "tool": concat!("shadowtap ", env!("CARGO_PKG_VERSION")),
        "generated_at": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "final": context.last,
        "elapsed_seconds": (context.elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "settings": context.settings,
        "gate": gate,
        "totals": totals_json,
        "unpaired": Unpaired::ALL
            .iter()
            .filter_map(|r| Some((r.as_str().to_string(), Value::from(*differ.unpaired.get(r)?))))
            .collect::<Map<String, Value>>(),
        "unpaired_examples": differ
            .unpaired_examples
            .iter()
            .map(|u| json!({"reason": u.reason.as_str(), "detail": u.detail, "target": u.target, "request": u.request}))
            .collect::<Vec<_>>(),
        "targets": targets,
    });
    (report, figures)
}

#[derive(Default)]
struct Totals {
    pairs: u64,
    identical: u64,
    noise_only: u64,
    regressions: u64,
    status_differs: u64,
    body_differs: u64,
}

impl Totals {
    /// One endpoint's figures.
    fn of(e: &EndpointStats, v: &EndpointVerdict) -> Totals {
        Totals {
            pairs: e.pairs,
            identical: e.identical,
            noise_only: v.noise_only,
            regressions: v.regressions,
            status_differs: e.status_differs,
            body_differs: e.body_differs,
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.pairs += other.pairs;
        self.identical += other.identical;
        self.noise_only += other.noise_only;
        self.regressions += other.regressions;
        self.status_differs += other.status_differs;
        self.body_differs += other.body_differs;
    }

    fn to_json(&self) -> Value {
        json!({
            "pairs": self.pairs, "identical": self.identical, "noise_only": self.noise_only,
            "regressions": self.regressions, "status_differs": self.status_differs,
            "body_differs": self.body_differs,
        })
    }
}

fn status_matrix(matrix: &std::collections::HashMap<(u16, u16), u64>) -> Vec<Value> {
    let mut cells: Vec<(&(u16, u16), &u64)> = matrix.iter().collect();
    cells.sort();
    cells
        .into_iter()
        .map(|((original, replayed), count)| json!({"original": original, "replayed": replayed, "count": count}))
        .collect()
}

fn endpoint_json(name: &str, e: &EndpointStats, v: &EndpointVerdict) -> Value {
    let mut fields: Vec<(usize, &FieldStats)> = e.fields.iter().enumerate().collect();
    fields.sort_by(|a, b| {
        let (va, vb) = (&v.fields[a.0], &v.fields[b.0]);
        vb.regressions
            .cmp(&va.regressions)
            .then(a.1.kind.cmp(&b.1.kind))
            .then(b.1.differs.cmp(&a.1.differs))
            .then(a.1.field.cmp(&b.1.field))
    });
    let mut json = Totals::of(e, v).to_json();
    json["endpoint"] = name.into();
    json["latency_ms"] = json!({
        "original": latency(&e.original_latency),
        "replayed": latency(&e.replayed_latency),
    });
    json["fields"] = fields
        .iter()
        .map(|(i, f)| {
            let fv = &v.fields[*i];
            json!({
                "field": f.field,
                "kind": f.kind.as_str(),
                "differs": f.differs,
                "rate": fv.rate,
                "noise_differs": fv.noise_differs,
                "noise_rate": fv.noise_rate,
                "noise": fv.noise.is_some(),
                "noise_source": fv.noise.map(|s| s.as_str()),
                "regressions": fv.regressions,
                "example": f.example.as_ref().map(example_json),
            })
        })
        .collect::<Vec<_>>()
        .into();
    json
}

fn latency(h: &crate::latency::Histogram) -> Value {
    if h.count() == 0 {
        return Value::Null;
    }
    let q = |q: f64| h.quantile_ms(q).map(|ms| (ms * 1000.0).round() / 1000.0);
    json!({"p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "count": h.count()})
}

fn example_json(x: &Example) -> Value {
    json!({
        "id": x.id, "path": x.path,
        "original_value": x.original_value, "replayed_value": x.replayed_value,
        "request": x.request, "original": x.original, "replayed": x.replayed, "diff": x.diff,
    })
}

/// Where the report goes: the HTML page named on the command line and the JSON beside it.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The page.
    pub html: PathBuf,
    /// `REPORT.json` beside it.
    pub json: PathBuf,
}

impl Paths {
    /// For `--output-diff PATH` (`x.html` → `x.json`; `x.json` → `x.html`).
    pub fn new(path: &Path) -> Paths {
        if path.extension().is_some_and(|e| e == "json") {
            Paths {
                html: path.with_extension("html"),
                json: path.to_path_buf(),
            }
        } else {
            Paths {
                html: path.to_path_buf(),
                json: path.with_extension("json"),
            }
        }
    }

    /// Writes both files, each through a temporary file renamed into place.
    pub fn write(&self, report: &Value) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(report).map_err(io::Error::other)?;
        replace(&self.json, &json)?;
        replace(&self.html, crate::html::render(report).as_bytes())
    }
}

fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

/// The lines printed on stderr at exit.
pub fn summary(report: &Value, paths: &Paths) -> String {
    let t = &report["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(0);
    let pct = |k: &str| 100.0 * n(k) as f64 / n("pairs").max(1) as f64;
    let mut text = format!(
        "output-diff: {} pairs: {} identical ({:.1}%), {} noise only ({:.1}%), {} regressions ({:.1}%); {} unpaired; report {}",
        n("pairs"), n("identical"), pct("identical"), n("noise_only"), pct("noise_only"),
        n("regressions"), pct("regressions"), n("unpaired"), paths.html.display()
    );
    for target in report["targets"].as_array().into_iter().flatten() {
        for e in target["endpoints"].as_array().into_iter().flatten() {
            if e["regressions"].as_u64().unwrap_or(0) == 0 {
                continue;
            }
            let worst = e["fields"]
                .as_array()
                .and_then(|f| f.iter().find(|f| !f["noise"].as_bool().unwrap_or(true)))
                .and_then(|f| f["field"].as_str())
                .unwrap_or("?");
            text.push_str(&format!(
                "\n  {} {}: {} of {} pairs regress (first field: {worst})",
                target["name"].as_str().unwrap_or("?"),
                e["endpoint"].as_str().unwrap_or("?"),
                e["regressions"],
                e["pairs"],
            ));
        }
    }
    text
}
