//! Renders a diff report (REPORT.json, schema version 1) as one self-contained HTML5 page.
//!
//! The page answers "did staging break anything": a verdict, the totals, a status matrix and
//! an endpoints table per target, then per endpoint its differing fields with one example
//! each. Everything is rendered here; the inline script only sorts, filters and marks the page
//! ready. Nothing is loaded from outside (and the page's CSP forbids it). Every string taken
//! from the report goes through [`escape`]; missing or mistyped keys render as empty or zero.

use serde_json::Value;
use std::fmt::Write as _;

/// Renders `report` as a complete HTML page.
pub fn render(report: &Value) -> String {
    let mut out = String::with_capacity(64 * 1024);
    head(&mut out, report);
    out.push_str("<body>\n<main>\n");
    header(&mut out, report);
    totals(&mut out, report);
    settings(&mut out, report);
    for (i, t) in list(report, "targets").iter().enumerate() {
        target(&mut out, i, t);
    }
    unpaired_examples(&mut out, report);
    out.push_str("</main>\n<script>\n");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push('\u{FFFD}'),
            _ => out.push(c),
        }
    }
    out
}

// ---- reading the report leniently -------------------------------------------------------

fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

fn count(v: &Value, key: &str) -> u64 {
    let n = get(v, key);
    n.as_u64()
        .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

fn float(v: &Value, key: &str) -> Option<f64> {
    get(v, key).as_f64().filter(|f| f.is_finite())
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    get(v, key).as_str().unwrap_or("")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    get(v, key).as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A scalar as display text: strings bare, numbers and booleans as JSON, null as empty.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "—".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{:.1}%", r * 100.0))
}

fn ms(v: f64) -> String {
    match v {
        v if v < 1.0 => format!("{v:.2}"),
        v if v < 100.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
    }
}

// ---- page sections ----------------------------------------------------------------------

fn head(out: &mut String, report: &Value) {
    let (_, verdict, _) = verdict(report);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
    );
    if !is_final(report) {
        out.push_str("<meta http-equiv=\"refresh\" content=\"10\">\n");
    }
    let _ = writeln!(out, "<title>shadowtap diff — {}</title>", escape(verdict));
    let _ = writeln!(out, "<style>\n{STYLE}</style>\n</head>");
}

fn is_final(report: &Value) -> bool {
    get(report, "final").as_bool().unwrap_or(false)
}

/// (css class, headline, explanation) of the gate.
fn verdict(report: &Value) -> (&'static str, &'static str, String) {
    let gate = get(report, "gate");
    if !gate.is_object() {
        return (
            "none",
            "No gate",
            "no --max-regressions limit was set".into(),
        );
    }
    let detail = format!(
        "{} regressions, limit {}",
        count(gate, "regressions"),
        scalar(get(gate, "limit"))
    );
    if get(gate, "exceeded").as_bool().unwrap_or(false) {
        ("bad", "Gate exceeded", detail)
    } else {
        ("good", "Gate passed", detail)
    }
}

fn header(out: &mut String, report: &Value) {
    let (class, headline, detail) = verdict(report);
    let state = if is_final(report) {
        "<span class=\"state final\">final</span>"
    } else {
        "<span class=\"state running\">running (refreshes)</span>"
    };
    let generated = text(report, "generated_at");
    let meta: Vec<String> = [
        escape(text(report, "tool")),
        if generated.is_empty() {
            String::new()
        } else {
            format!("generated {}", escape(generated))
        },
        float(report, "elapsed_seconds").map_or(String::new(), |s| format!("{s:.1} s")),
        state.to_string(),
    ]
    .into_iter()
    .filter(|part| !part.is_empty())
    .collect();
    let _ = write!(
        out,
        "<header class=\"top\">\n<div>\n<h1>Shadow traffic diff</h1>\n<p class=\"meta\">{}</p>\n</div>\n\
         <div class=\"verdict {class}\"><strong>{headline}</strong><span>{}</span></div>\n</header>\n",
        meta.join(" · "),
        escape(&detail),
    );
}

fn totals(out: &mut String, report: &Value) {
    let t = get(report, "totals");
    let pairs = count(t, "pairs");
    let regressions = count(t, "regressions");
    out.push_str("<section class=\"cards\">\n");
    card(
        out,
        "Pairs",
        &pairs.to_string(),
        &format!("of {} requests", count(t, "requests")),
        "",
    );
    card(
        out,
        "Identical",
        &pct(count(t, "identical"), pairs),
        &format!("{} pairs", count(t, "identical")),
        "",
    );
    card(
        out,
        "Noise only",
        &pct(count(t, "noise_only"), pairs),
        &format!("{} pairs", count(t, "noise_only")),
        "",
    );
    let bad = if regressions > 0 { "bad" } else { "good" };
    card(
        out,
        "Regressions",
        &regressions.to_string(),
        &pct(regressions, pairs),
        bad,
    );
    card(
        out,
        "Unpaired",
        &count(t, "unpaired").to_string(),
        "requests without a pair",
        "",
    );
    out.push_str("</section>\n");
    unpaired_reasons(out, report);
}

fn card(out: &mut String, label: &str, value: &str, sub: &str, class: &str) {
    let _ = writeln!(
        out,
        "<div class=\"card {class}\"><div class=\"label\">{label}</div>\
         <div class=\"big\">{}</div><div class=\"sub\">{}</div></div>",
        escape(value),
        escape(sub)
    );
}

fn unpaired_reasons(out: &mut String, report: &Value) {
    let Some(reasons) = get(report, "unpaired").as_object() else {
        return;
    };
    let chips: Vec<String> = reasons
        .iter()
        .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k, n)))
        .map(|(k, n)| {
            format!(
                "<span class=\"chip\">{} <b>{n}</b></span>",
                escape(&k.replace('_', " "))
            )
        })
        .collect();
    if !chips.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"reasons\">Unpaired: {}</p>",
            chips.join(" ")
        );
    }
}

fn settings(out: &mut String, report: &Value) {
    let s = get(report, "settings");
    if !s.is_object() {
        return;
    }
    let joined = |key: &str| {
        let items: Vec<String> = list(s, key).iter().map(|v| escape(&scalar(v))).collect();
        if items.is_empty() {
            "none".to_string()
        } else {
            format!("<code>{}</code>", items.join("</code> <code>"))
        }
    };
    let _ = writeln!(
        out,
        "<details class=\"settings\"><summary>Settings</summary><dl>\
         <dt>Secondary</dt><dd>{}</dd><dt>Unordered arrays</dt><dd>{}</dd>\
         <dt>Max regressions</dt><dd>{}</dd><dt>Ignored headers</dt><dd>{}</dd>\
         <dt>Ignored paths</dt><dd>{}</dd><dt>Routes</dt><dd>{}</dd></dl></details>",
        or_none(&scalar(get(s, "secondary"))),
        get(s, "unordered_arrays").as_bool().unwrap_or(false),
        or_none(&scalar(get(s, "max_regressions"))),
        joined("ignored_headers"),
        joined("ignored_paths"),
        joined("routes"),
    );
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "none".into()
    } else {
        escape(s)
    }
}

// ---- one target -------------------------------------------------------------------------

fn target(out: &mut String, index: usize, t: &Value) {
    let id = format!("t{index}");
    let _ = writeln!(
        out,
        "<section class=\"target\" id=\"{id}\">\n<h2>Target <span class=\"name\">{}</span></h2>",
        escape(text(t, "name"))
    );
    status_matrix(out, list(t, "status_matrix"));
    endpoints_table(out, &id, list(t, "endpoints"));
    for (i, e) in list(t, "endpoints").iter().enumerate() {
        endpoint_details(out, &format!("{id}-e{i}"), e);
    }
    out.push_str("</section>\n");
}

fn status_matrix(out: &mut String, cells: &[Value]) {
    out.push_str("<h3>Status codes</h3>\n");
    if cells.is_empty() {
        out.push_str("<p class=\"muted\">No pairs yet.</p>\n");
        return;
    }
    let mut rows: Vec<String> = cells.iter().map(|c| scalar(get(c, "original"))).collect();
    let mut cols: Vec<String> = cells.iter().map(|c| scalar(get(c, "replayed"))).collect();
    for v in [&mut rows, &mut cols] {
        v.sort_by_key(|s| (s.parse::<u64>().unwrap_or(u64::MAX), s.clone()));
        v.dedup();
    }
    out.push_str(
        "<table class=\"matrix\">\n<thead><tr><th class=\"corner\">original ↓ · replayed →</th>",
    );
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in &rows {
        let _ = write!(out, "<tr><th>{}</th>", escape(r));
        for c in &cols {
            matrix_cell(out, cells, r, c);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn matrix_cell(out: &mut String, cells: &[Value], row: &str, col: &str) {
    let n: u64 = cells
        .iter()
        .filter(|c| scalar(get(c, "original")) == row && scalar(get(c, "replayed")) == col)
        .map(|c| count(c, "count"))
        .sum();
    let class = match (row == col, n) {
        (true, _) => "diag",
        (false, 0) => "zero",
        (false, _) => "off",
    };
    let shown = if n == 0 { String::new() } else { n.to_string() };
    let _ = write!(out, "<td class=\"{class}\">{shown}</td>");
}

fn endpoints_table(out: &mut String, scope: &str, endpoints: &[Value]) {
    let _ = writeln!(
        out,
        "<div class=\"bar\"><h3>Endpoints</h3>\
         <input class=\"filter\" type=\"search\" placeholder=\"Filter endpoints…\" data-scope=\"{scope}\" aria-label=\"Filter endpoints\">\
         <span class=\"legend\"><i class=\"sw o\"></i>original <i class=\"sw r\"></i>replayed (ms)</span></div>"
    );
    if endpoints.is_empty() {
        out.push_str("<p class=\"muted\">No endpoints yet.</p>\n");
        return;
    }
    out.push_str(
        "<table class=\"endpoints sortable\">\n<thead><tr><th>Endpoint</th><th>Pairs</th>\
         <th>Identical</th><th>Status differs</th><th>Body differs</th><th>Noise only</th>\
         <th>Regressions</th><th>Latency p50 / p95 / p99</th></tr></thead>\n<tbody>\n",
    );
    for (i, e) in endpoints.iter().enumerate() {
        endpoint_row(out, &format!("{scope}-e{i}"), e);
    }
    out.push_str("</tbody></table>\n");
}

fn endpoint_row(out: &mut String, id: &str, e: &Value) {
    let name = escape(text(e, "endpoint"));
    let pairs = count(e, "pairs");
    let regressions = count(e, "regressions");
    let bad = if regressions > 0 { " bad" } else { "" };
    let _ = write!(
        out,
        "<tr class=\"endpoint\" data-endpoint=\"{name}\"><td class=\"ep{bad}\"><a href=\"#{id}\">{name}</a></td>\
         <td class=\"num\" data-v=\"{pairs}\">{pairs}</td>"
    );
    for key in ["identical", "status_differs", "body_differs", "noise_only"] {
        let n = count(e, key);
        let _ = write!(
            out,
            "<td class=\"num\" data-v=\"{}\" title=\"{n} pairs\">{}</td>",
            ratio(n, pairs),
            pct(n, pairs)
        );
    }
    let lat = get(e, "latency_ms");
    let p95 = float(get(lat, "replayed"), "p95").unwrap_or(-1.0);
    let _ = writeln!(
        out,
        "<td class=\"num regs{bad}\" data-v=\"{regressions}\">{regressions}</td>\
         <td class=\"lat\" data-v=\"{p95}\">{}</td></tr>",
        latency_svg(lat)
    );
}

/// Three rows (p50, p95, p99), each an original and a replayed bar on a shared scale.
fn latency_svg(lat: &Value) -> String {
    let (o, r) = (get(lat, "original"), get(lat, "replayed"));
    let rows: Vec<(&str, Option<f64>, Option<f64>)> = ["p50", "p95", "p99"]
        .iter()
        .map(|k| (*k, float(o, k), float(r, k)))
        .collect();
    let max = rows
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .fold(0.0_f64, f64::max);
    if rows.iter().all(|(_, a, b)| a.is_none() && b.is_none()) {
        return "<span class=\"muted\">no samples</span>".into();
    }
    let mut svg = String::from(
        "<svg class=\"latency\" width=\"230\" height=\"48\" viewBox=\"0 0 230 48\" role=\"img\">",
    );
    for (i, (label, a, b)) in rows.iter().enumerate() {
        latency_row(&mut svg, i as f64 * 16.0, label, *a, *b, max);
    }
    svg.push_str("</svg>");
    svg
}

fn latency_row(svg: &mut String, y: f64, label: &str, a: Option<f64>, b: Option<f64>, max: f64) {
    let width = |v: Option<f64>| match (v, max > 0.0) {
        (Some(v), true) => (v / max * 120.0).max(1.0),
        _ => 0.0,
    };
    let show = |v: Option<f64>| v.map_or("–".to_string(), ms);
    let _ = write!(
        svg,
        "<g><title>{label}: original {} ms, replayed {} ms</title>\
         <text x=\"0\" y=\"{ty}\" class=\"lbl\">{label}</text>\
         <rect x=\"26\" y=\"{y1}\" width=\"{wa:.1}\" height=\"6\" class=\"o\"/>\
         <rect x=\"26\" y=\"{y2}\" width=\"{wb:.1}\" height=\"6\" class=\"r\"/>\
         <text x=\"152\" y=\"{ty}\" class=\"val\">{} → {}</text></g>",
        show(a),
        show(b),
        show(a),
        show(b),
        ty = y + 11.0,
        y1 = y + 1.0,
        y2 = y + 8.0,
        wa = width(a),
        wb = width(b),
    );
}

// ---- per-endpoint details ---------------------------------------------------------------

fn endpoint_details(out: &mut String, id: &str, e: &Value) {
    let name = escape(text(e, "endpoint"));
    let regressions = count(e, "regressions");
    let fields = list(e, "fields");
    let open = if regressions > 0 { " open" } else { "" };
    let badge = if regressions > 0 {
        format!("<span class=\"badge bad\">{regressions} regressions</span>")
    } else {
        "<span class=\"badge good\">no regressions</span>".into()
    };
    let _ = writeln!(
        out,
        "<details class=\"ep-details\" id=\"{id}\" data-endpoint=\"{name}\"{open}>\
         <summary><span class=\"ep-name\">{name}</span> {badge} <span class=\"muted\">{} pairs · {} differing fields</span></summary>",
        count(e, "pairs"),
        fields.len()
    );
    if fields.is_empty() {
        out.push_str("<p class=\"muted\">No field differed.</p>\n");
    } else {
        fields_table(out, fields);
        for f in fields {
            field_example(out, f);
        }
    }
    out.push_str("</details>\n");
}

fn fields_table(out: &mut String, fields: &[Value]) {
    out.push_str(
        "<table class=\"fields\">\n<thead><tr><th>Field</th><th>Kind</th><th>Rate</th>\
         <th>Noise rate</th><th>Noise</th><th>Regressions</th></tr></thead>\n<tbody>\n",
    );
    for f in fields {
        let noise = if get(f, "noise").as_bool().unwrap_or(false) {
            let source = text(f, "noise_source");
            let source = if source.is_empty() {
                String::new()
            } else {
                format!(" ({})", escape(source))
            };
            format!("<span class=\"badge noise\">noise{source}</span>")
        } else {
            "<span class=\"muted\">no</span>".into()
        };
        let regressions = count(f, "regressions");
        let bad = if regressions > 0 { " bad" } else { "" };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\" title=\"{} pairs\">{}</td>\
             <td class=\"num\" title=\"{} pairs\">{}</td><td>{noise}</td><td class=\"num regs{bad}\">{regressions}</td></tr>",
            escape(text(f, "field")),
            escape(text(f, "kind")),
            count(f, "differs"),
            rate(float(f, "rate")),
            count(f, "noise_differs"),
            rate(float(f, "noise_rate")),
        );
    }
    out.push_str("</tbody></table>\n");
}

/// How the differing value is found in a response text.
enum Mark<'a> {
    Value(&'a str),
    Header(&'a str),
    StatusLine,
    Nothing,
}

fn marks<'a>(field: &'a Value, ex: &'a Value) -> (Mark<'a>, Mark<'a>) {
    let path = match text(ex, "path") {
        "" => text(field, "field"),
        p => p,
    };
    let value = |key| get(ex, key).as_str().map_or(Mark::Nothing, Mark::Value);
    if path == "status" || text(field, "kind") == "status" {
        (Mark::StatusLine, Mark::StatusLine)
    } else if let Some(name) = path.strip_prefix("header:") {
        (Mark::Header(name), Mark::Header(name))
    } else if path.starts_with('$') {
        (value("original_value"), value("replayed_value"))
    } else {
        (Mark::Nothing, Mark::Nothing)
    }
}

fn field_example(out: &mut String, f: &Value) {
    let ex = get(f, "example");
    if !ex.is_object() {
        return;
    }
    let open = if count(f, "regressions") > 0 {
        " open"
    } else {
        ""
    };
    let (mo, mr) = marks(f, ex);
    let change = match (
        scalar(get(ex, "original_value")),
        scalar(get(ex, "replayed_value")),
    ) {
        (a, b) if a.is_empty() && b.is_empty() => String::new(),
        (a, b) => format!(
            " <code class=\"was\">{}</code> → <code class=\"now\">{}</code>",
            or_absent(&a),
            or_absent(&b)
        ),
    };
    let _ = writeln!(
        out,
        "<details class=\"example\"{open}><summary>Example for <code>{}</code>{change}</summary>\n<div class=\"sides\">",
        escape(text(f, "field"))
    );
    pre_block(out, "Request", &escape(text(ex, "request").trim_end()));
    pre_block(
        out,
        "Original response",
        &marked(text(ex, "original").trim_end(), &mo),
    );
    pre_block(
        out,
        "Replayed response",
        &marked(text(ex, "replayed").trim_end(), &mr),
    );
    out.push_str("</div>\n");
    if let Some(diff) = get(ex, "diff").as_str() {
        diff_block(out, diff);
    }
    out.push_str("</details>\n");
}

fn or_absent(s: &str) -> String {
    if s.is_empty() {
        "(absent)".into()
    } else {
        escape(s)
    }
}

fn pre_block(out: &mut String, title: &str, html: &str) {
    let _ = writeln!(
        out,
        "<figure><figcaption>{title}</figcaption><pre>{html}</pre></figure>"
    );
}

fn diff_block(out: &mut String, diff: &str) {
    out.push_str("<figure class=\"diff\"><figcaption>Body diff</figcaption><pre>");
    for line in diff.lines() {
        let class = match line.as_bytes().first() {
            Some(b'+') => "add",
            Some(b'-') => "del",
            Some(b'@') => "hunk",
            _ => "ctx",
        };
        let _ = write!(out, "<span class=\"{class}\">{}</span>", escape(line));
    }
    out.push_str("</pre></figure>\n");
}

/// `raw` escaped, with the part selected by `mark` wrapped in `<mark>`.
fn marked(raw: &str, mark: &Mark) -> String {
    let range = match mark {
        Mark::Value(v) => find_value(raw, v),
        Mark::Header(name) => find_header(raw, name),
        Mark::StatusLine => raw
            .lines()
            .next()
            .map(|l| (0, l.trim_end_matches('\r').len())),
        Mark::Nothing => None,
    };
    match range {
        Some((a, b)) if a < b => format!(
            "{}<mark>{}</mark>{}",
            escape(&raw[..a]),
            escape(&raw[a..b]),
            escape(&raw[b..])
        ),
        _ => escape(raw),
    }
}

fn body_start(raw: &str) -> usize {
    raw.find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.find("\n\n").map(|i| i + 2))
        .unwrap_or(0)
}

/// First occurrence of `value` in the body, else anywhere in the text.
fn find_value(raw: &str, value: &str) -> Option<(usize, usize)> {
    if value.is_empty() {
        return None;
    }
    let start = body_start(raw);
    raw[start..]
        .find(value)
        .map(|i| i + start)
        .or_else(|| raw.find(value))
        .map(|i| (i, i + value.len()))
}

/// The line of header `name` (case-insensitive) in the head of the message.
fn find_header(raw: &str, name: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    for line in raw.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if content.is_empty() {
            return None;
        }
        if let Some((key, _)) = content.split_once(':') {
            if offset > 0 && key.trim().eq_ignore_ascii_case(name) {
                return Some((offset, offset + content.len()));
            }
        }
        offset += line.len();
    }
    None
}

fn chip(reason: &str) -> String {
    if reason.is_empty() {
        return String::new();
    }
    format!(
        "<span class=\"chip\">{}</span>",
        escape(&reason.replace('_', " "))
    )
}

fn unpaired_examples(out: &mut String, report: &Value) {
    let examples = list(report, "unpaired_examples");
    if examples.is_empty() {
        return;
    }
    out.push_str(
        "<section class=\"unpaired\">\n<h2>Unpaired examples</h2>\n<table class=\"fields\">\n\
         <thead><tr><th>Reason</th><th>Target</th><th>Detail</th><th>Request</th></tr></thead>\n<tbody>\n",
    );
    for ex in examples {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            chip(text(ex, "reason")),
            escape(text(ex, "target")),
            escape(text(ex, "detail")),
            escape(text(ex, "request").trim_end()),
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

/// The page's stylesheet: calm greys, red only where something regressed.
const STYLE: &str = r#":root{--bg:#f4f5f7;--card:#fff;--ink:#1f2430;--muted:#687082;--line:#e2e5ea;
--bad:#b8322a;--bad-bg:#fbeceb;--good:#2c7a4b;--good-bg:#e7f3ec;--o:#93a6bd;--r:#e08a2e;--mark:#ffe27a}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,"DejaVu Sans",sans-serif}
main{max-width:1220px;margin:0 auto;padding:24px}
h1{font-size:21px;margin:0 0 2px}
h2{font-size:17px;margin:22px 0 6px}
h2 .name{font-family:ui-monospace,"DejaVu Sans Mono",monospace}
h3{font-size:14px;margin:18px 0 8px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.meta,.muted{color:var(--muted)}
.meta{margin:0;font-size:13px}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
header.top,.card,section.target,section.unpaired,.settings{background:var(--card);border:1px solid var(--line);border-radius:10px}
header.top{display:flex;justify-content:space-between;align-items:center;gap:16px;padding:16px 20px}
.verdict{border-radius:8px;padding:10px 18px;text-align:right;min-width:220px}
.verdict strong{display:block;font-size:19px}
.verdict span{font-size:13px}
.verdict.bad{background:var(--bad-bg);color:var(--bad)}
.verdict.good{background:var(--good-bg);color:var(--good)}
.verdict.none{background:#eef0f3;color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;margin-top:16px}
.card{padding:14px 18px}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.card .big{font-size:30px;font-weight:650;margin:2px 0;font-variant-numeric:tabular-nums}
.card.bad .big{color:var(--bad)}
.card.good .big{color:var(--good)}
.card .sub{color:var(--muted);font-size:12px}
.chip{display:inline-block;background:#eceef2;border-radius:999px;padding:1px 10px;margin:2px;font-size:12px;color:var(--ink)}
.reasons{margin:10px 2px 0;color:var(--muted);font-size:13px}
.settings{margin-top:12px;padding:8px 16px;font-size:13px}
.settings summary{cursor:pointer;color:var(--muted)}
.settings dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:10px 0 4px}
.settings dt{color:var(--muted)}
.settings dd{margin:0}
.settings code{background:#f1f3f5;border-radius:4px;padding:0 4px}
section.target,section.unpaired{padding:2px 20px 20px;margin-top:20px}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
thead th{font-size:12px;color:var(--muted);font-weight:600;background:#f8f9fb;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.sortable thead th{cursor:pointer;user-select:none}
table.sortable thead th:hover{color:var(--ink)}
th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"}
table.matrix{width:auto}
table.matrix thead th:not(.corner){text-align:right}
table.matrix td{text-align:right;min-width:70px;font-variant-numeric:tabular-nums}
table.matrix tbody th{background:#f8f9fb;color:var(--muted);font-size:12px}
table.matrix th.corner{font-weight:500}
td.diag{color:var(--ink)}
td.off{background:var(--bad-bg);color:var(--bad);font-weight:650}
td.ep a{color:var(--ink);text-decoration:none;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
td.ep a:hover{text-decoration:underline}
td.ep.bad{box-shadow:inset 4px 0 var(--bad)}
td.ep.bad a,td.regs.bad{color:var(--bad);font-weight:650}
tr.endpoint:has(td.bad){background:#fff8f7}
td.lat{padding:2px 10px;width:240px}
.bar{display:flex;align-items:center;gap:16px}
.bar h3{margin-right:8px}
input.filter{padding:5px 10px;border:1px solid var(--line);border-radius:6px;width:260px;font:inherit}
.legend{margin-left:auto;color:var(--muted);font-size:12px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 12px;vertical-align:-1px}
.sw.o{background:var(--o)}
.sw.r{background:var(--r)}
svg.latency{display:block}
svg.latency rect.o{fill:var(--o)}
svg.latency rect.r{fill:var(--r)}
svg.latency text{font-size:10px;fill:var(--muted);font-family:ui-monospace,"DejaVu Sans Mono",monospace}
svg.latency text.val{fill:var(--ink)}
details.ep-details{border:1px solid var(--line);border-radius:8px;margin-top:12px;padding:0 14px 4px}
details.ep-details>summary{padding:10px 0;cursor:pointer}
.ep-name{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-weight:650}
.badge{font-size:12px;border-radius:999px;padding:1px 9px;font-weight:600;white-space:nowrap}
.badge.bad{background:var(--bad-bg);color:var(--bad)}
.badge.good{background:var(--good-bg);color:var(--good)}
.badge.noise{background:#eceef2;color:var(--muted);font-weight:500}
table.fields{margin-bottom:6px}
details.example{margin:10px 0 14px;border-left:3px solid var(--line);padding-left:12px}
details.example>summary{cursor:pointer;font-size:13px}
code.was{background:var(--bad-bg);border-radius:4px;padding:0 4px}
code.now{background:#fff3d6;border-radius:4px;padding:0 4px}
.sides{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:10px}
figure{margin:8px 0 0}
figcaption{font-size:12px;color:var(--muted);margin-bottom:3px}
pre{margin:0;background:#f7f8fa;border:1px solid var(--line);border-radius:6px;padding:8px 10px;line-height:1.45;
white-space:pre-wrap;overflow-wrap:anywhere;max-height:22em;overflow:auto}
mark{background:var(--mark);color:inherit;border-radius:2px;padding:0 1px}
.diff pre span{display:block;padding:0 4px}
.diff .add{background:#e4f3e8;color:#1d6a39}
.diff .del{background:#fbeceb;color:#a02a22}
.diff .hunk{color:#6553c8}
.unpaired td{vertical-align:top}
.unpaired pre{max-height:12em}
.state.running{background:#fff3d6;color:#8a5a00;border-radius:999px;padding:0 8px}
@media (max-width:900px){.cards{grid-template-columns:repeat(2,1fr)}.sides{grid-template-columns:1fr}}
"#;

/// Sorting, filtering and the `data-ready` marker; it must not throw on any page `render` makes.
const SCRIPT: &str = r#"(function () {
  "use strict";
  function key(row, i) {
    var cell = row.cells[i];
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    return v === null ? cell.textContent.trim().toLowerCase() : parseFloat(v) || 0;
  }
  function sortBy(table, th) {
    var body = table.tBodies[0];
    if (!body) return;
    var i = th.cellIndex;
    var asc = th.getAttribute("aria-sort") === "descending";
    Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i), y = key(b, i);
      var c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead || !table.tHead.rows[0]) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.title = "Sort";
      th.addEventListener("click", function () { sortBy(table, th); });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    input.addEventListener("input", function () {
      var scope = document.getElementById(input.getAttribute("data-scope") || "");
      if (!scope) return;
      var q = input.value.trim().toLowerCase();
      scope.querySelectorAll("[data-endpoint]").forEach(function (el) {
        el.hidden = q !== "" && (el.getAttribute("data-endpoint") || "").toLowerCase().indexOf(q) < 0;
      });
    });
  });
  document.body.setAttribute("data-ready", "1");
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escape_neutralises_markup() {
        let hostile = "</script><img src=x onerror=alert(1)>";
        assert_eq!(
            escape(hostile),
            "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(escape(r#"a"b'c&d"#), "a&quot;b&#39;c&amp;d");
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn hostile_strings_never_reach_the_page_raw() {
        let hostile = "</script><img src=x onerror=alert(1)>";
        let report = json!({
            "version": 1, "tool": hostile, "generated_at": hostile,
            "gate": { "limit": hostile, "regressions": 1, "exceeded": true },
            "settings": { "secondary": hostile, "ignored_headers": [hostile], "routes": [hostile] },
            "unpaired": { hostile: 1 },
            "unpaired_examples": [{ "reason": hostile, "detail": hostile, "target": hostile, "request": hostile }],
            "targets": [{ "name": hostile,
                "status_matrix": [{ "original": hostile, "replayed": 500, "count": 1 }],
                "endpoints": [{ "endpoint": hostile, "pairs": 1, "regressions": 1,
                    "fields": [{ "field": hostile, "kind": hostile, "noise": true, "noise_source": hostile,
                        "example": { "path": "$.x", "original_value": hostile, "replayed_value": hostile,
                            "request": hostile, "original": hostile, "replayed": hostile, "diff": hostile } }] }] }]
        });
        let page = render(&report);
        assert!(!page.contains("<img"), "raw markup leaked");
        assert_eq!(
            page.matches("</script>").count(),
            1,
            "only the page's own script closes"
        );
        assert!(page.contains("<mark>&lt;/script&gt;&lt;img"));
    }

    /// A compact report: one JSON-field regression, one 200→500 endpoint, one identical one.
    fn small_report() -> Value {
        let example = |path: &str, o: &str, r: &str, orig: &str, repl: &str| {
            json!({ "path": path, "original_value": o, "replayed_value": r,
                "request": "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", "original": orig, "replayed": repl })
        };
        json!({ "version": 1, "final": true, "gate": { "limit": "0", "regressions": 3, "exceeded": true },
            "totals": { "requests": 12, "pairs": 10, "identical": 7, "regressions": 3, "unpaired": 2 },
            "unpaired": { "replay_error": 2, "evicted": 0 },
            "targets": [{ "name": "candidate",
                "status_matrix": [{ "original": 200, "replayed": 200, "count": 8 },
                    { "original": 200, "replayed": 500, "count": 2 }],
                "endpoints": [
                    { "endpoint": "GET /users/{id}", "pairs": 4, "identical": 3, "regressions": 1,
                      "fields": [{ "field": "$.plan", "kind": "body", "regressions": 1,
                        "example": example("$.plan", "\"pro\"", "\"free\"",
                            "HTTP/1.1 200 OK\r\nETag: 1\r\n\r\n{\"plan\":\"pro\"}",
                            "HTTP/1.1 200 OK\r\nETag: 2\r\n\r\n{\"plan\":\"free\"}") },
                        { "field": "header:etag", "kind": "header", "noise": true, "noise_source": "learned",
                          "example": example("header:etag", "1", "2",
                            "HTTP/1.1 200 OK\r\nETag: 1\r\n\r\n{}", "HTTP/1.1 200 OK\r\nETag: 2\r\n\r\n{}") }] },
                    { "endpoint": "POST /orders", "pairs": 2, "regressions": 2, "status_differs": 2,
                      "fields": [{ "field": "status", "kind": "status", "regressions": 2,
                        "example": { "path": "status", "original": "HTTP/1.1 200 OK\r\n\r\n{}",
                          "replayed": "HTTP/1.1 500 Internal Server Error\r\n\r\noops",
                          "diff": "@@ -1 +1 @@\n-{}\n+oops\n" } }] },
                    { "endpoint": "GET /health", "pairs": 4, "identical": 4, "fields": [] }] }] })
    }

    #[test]
    fn full_report_renders_one_row_per_endpoint() {
        let page = render(&small_report());
        assert_eq!(page.matches("<tr class=\"endpoint\"").count(), 3);
        assert!(page.contains("<tr class=\"endpoint\" data-endpoint=\"GET /users/{id}\">"));
        assert!(page.contains("Gate exceeded"));
        assert!(
            !page.contains("http-equiv=\"refresh\""),
            "final reports do not refresh"
        );
        assert_eq!(page.matches("<details class=\"ep-details\"").count(), 3);
        assert!(page.contains("<span class=\"chip\">replay error <b>2</b></span>"));
        assert!(!page.contains("evicted"), "zero reasons are not listed");
    }

    #[test]
    fn differing_values_are_marked() {
        let page = render(&small_report());
        assert!(page.contains("<mark>&quot;pro&quot;</mark>"));
        assert!(page.contains("<mark>&quot;free&quot;</mark>"));
        assert!(page.contains("<mark>ETag: 1</mark>"));
        assert!(page.contains("<mark>HTTP/1.1 500 Internal Server Error</mark>"));
        assert!(page.contains("<span class=\"add\">+oops</span>"));
        assert!(page.contains("<span class=\"hunk\">@@ -1 +1 @@</span>"));
    }

    #[test]
    fn status_matrix_highlights_off_diagonal() {
        let page = render(&small_report());
        assert!(page.contains("<td class=\"off\">2</td>"));
        assert!(page.contains("<td class=\"diag\">8</td>"));
    }

    #[test]
    fn page_is_self_contained() {
        let page = render(&small_report());
        for needle in ["http://", "https://", "src=\"", "<link", "@import", "url("] {
            assert!(!page.contains(needle), "page refers outside: {needle}");
        }
    }

    #[test]
    fn minimal_and_partial_reports_render() {
        let page = render(&json!({ "version": 1 }));
        assert!(page.contains("No gate"));
        assert!(page.contains("http-equiv=\"refresh\" content=\"10\""));
        assert!(page.contains("running (refreshes)"));
        let partial = json!({ "version": 1, "gate": { "limit": "1.5%", "regressions": 0, "exceeded": false },
            "targets": [{ "name": "candidate", "endpoints": [{ "endpoint": "GET /", "latency_ms": null,
                "fields": [{ "field": "status", "example": null }] },
                { "endpoint": "GET /b", "latency_ms": { "original": null, "replayed": { "p50": 1.0, "p95": null } } }] },
                {}] });
        let page = render(&partial);
        assert!(page.contains("Gate passed"));
        assert!(page.contains("no samples"));
        assert_eq!(page.matches("<tr class=\"endpoint\"").count(), 2);
    }

    #[test]
    fn header_mark_skips_status_line_and_body() {
        let raw = "HTTP/1.1 200 OK\r\nETag: a\r\n\r\netag: body";
        assert_eq!(find_header(raw, "etag"), Some((17, 24)));
        assert_eq!(find_header(raw, "missing"), None);
        assert_eq!(
            find_value("HTTP/1.1 200 OK\r\n\r\n200", "200"),
            Some((19, 22))
        );
    }
}
