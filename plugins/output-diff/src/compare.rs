//! Comparing two normalised responses field by field: the status, each header field that is
//! not ignored, and the body by media type — JSON structurally by path (`$.items[3].price`,
//! counted under `$.items[*].price`), text as a whole with a line diff for the example, any
//! other body by size and hash.

use crate::example::cut_point;
use crate::normalise::{Media, Normalised, TRANSPORT_FIELDS};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

/// Most differences recorded for one comparison; the rest are counted under `(more)`.
const MAX_DIFFERENCES: usize = 64;
/// Longest value kept in a difference.
const MAX_VALUE: usize = 256;
/// How an absent value is shown.
pub const ABSENT: &str = "(absent)";

/// Header fields ignored unless asked otherwise: they differ on every answer.
pub const DEFAULT_IGNORED_HEADERS: &[&str] = &[
    "date",
    "expires",
    "age",
    "last-modified",
    "etag",
    "server-timing",
];

/// What part of a response a field is, in the order a reader looks for a cause in (the
/// report lists fields so).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldKind {
    /// The status code.
    Status,
    /// A header field.
    Header,
    /// The body or a part of it.
    Body,
}

impl FieldKind {
    /// `status`, `header` or `body`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Status => "status",
            FieldKind::Header => "header",
            FieldKind::Body => "body",
        }
    }
}

/// One field that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The field as counted: `status`, `header:etag`, `body`, `$.items[*].price`.
    pub field: String,
    /// Its kind.
    pub kind: FieldKind,
    /// Where exactly: `$.items[3].price` (the field itself for status and headers).
    pub path: String,
    /// The original's value (JSON text for JSON values), cut to 256 characters.
    pub original: String,
    /// The replayed value.
    pub replayed: String,
}

/// Why a `--output-diff-ignore-path` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not a JSONPath of keys, `*`, `[N]`, `[*]` and `..`.
    #[error("{path:?}: {problem} (a path looks like $.items[*].price or $..request_id)")]
    Syntax {
        /// The path.
        path: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// One step of a JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    AnyKey,
    AnyIndex,
    /// `..`: any number of steps.
    Deep,
}

/// A `--output-diff-ignore-path` pattern; it ignores the subtree it names.
#[derive(Clone, Debug)]
pub struct PathPattern {
    steps: Vec<Step>,
}

impl PathPattern {
    /// Parses `$.a.b`, `$.items[*].id`, `$.items[0]`, `$..request_id`, `$.a.*`.
    pub fn parse(text: &str) -> Result<PathPattern, PathError> {
        let steps = parse_steps(text, true).map_err(|problem| PathError::Syntax {
            path: text.to_string(),
            problem,
        })?;
        Ok(PathPattern { steps })
    }

    /// Parses every pattern.
    pub fn parse_all(texts: &[String]) -> Result<Vec<PathPattern>, PathError> {
        texts.iter().map(|t| PathPattern::parse(t)).collect()
    }

    /// True when `path` (a counted field such as `$.items[*].id`) is this pattern's node or
    /// inside it.
    fn covers(&self, path: &[Step]) -> bool {
        covers(&self.steps, path)
    }
}

fn covers(pattern: &[Step], path: &[Step]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((Step::Deep, rest)) => (0..=path.len()).any(|skip| covers(rest, &path[skip..])),
        Some((step, rest)) => match path.split_first() {
            None => false,
            Some((given, path_rest)) => step_matches(step, given) && covers(rest, path_rest),
        },
    }
}

fn step_matches(pattern: &Step, given: &Step) -> bool {
    match (pattern, given) {
        (Step::AnyKey, Step::Key(_)) | (Step::AnyIndex, Step::AnyIndex) => true,
        (Step::Key(a), Step::Key(b)) => a == b,
        _ => false,
    }
}

/// Steps of a path; `pattern` allows `*`, `[N]` and `..` (a counted path has only keys and
/// `[*]`).
fn parse_steps(text: &str, pattern: bool) -> Result<Vec<Step>, &'static str> {
    let rest = text.strip_prefix('$').ok_or("it must start with $")?;
    let bytes = rest.as_bytes();
    let mut steps = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if rest[at..].starts_with("..") && pattern {
            steps.push(Step::Deep);
            at += 1; // the key that follows starts with the second dot
            continue;
        }
        match bytes[at] {
            b'.' => {
                let end = rest[at + 1..]
                    .find(['.', '['])
                    .map_or(rest.len(), |i| at + 1 + i);
                let key = &rest[at + 1..end];
                if key.is_empty() {
                    return Err("an empty key");
                }
                steps.push(if key == "*" && pattern {
                    Step::AnyKey
                } else {
                    Step::Key(key.to_string())
                });
                at = end;
            }
            b'[' => {
                let (step, len) = bracket_step(&rest[at..])?;
                steps.push(step);
                at += len;
            }
            _ => return Err("expected . or ["),
        }
    }
    Ok(steps)
}

/// `[*]`, `[3]` or `["key"]` at the start of `text`, and its length.
fn bracket_step(text: &str) -> Result<(Step, usize), &'static str> {
    if let Some(quoted) = text.strip_prefix("[\"") {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    if !quoted[i + 1..].starts_with(']') {
                        return Err("a quoted key must end with \"]");
                    }
                    let key: String = serde_json::from_str(&format!("\"{}\"", &quoted[..i]))
                        .map_err(|_| "a quoted key is not a JSON string")?;
                    return Ok((Step::Key(key), 2 + i + 2));
                }
                _ => escaped = false,
            }
        }
        return Err("an unterminated quoted key");
    }
    let end = text.find(']').ok_or("an unterminated [")?;
    let inner = &text[1..end];
    if inner == "*" || (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit())) {
        Ok((Step::AnyIndex, end + 1))
    } else {
        Err("[…] holds *, a number or a quoted key")
    }
}

/// What is compared and what is not.
#[derive(Clone, Debug)]
pub struct Rules {
    ignored_headers: HashSet<String>,
    ignored_paths: Vec<PathPattern>,
    unordered_arrays: bool,
}

impl Rules {
    /// The default ignored headers, plus `extra_headers` (any case) and `paths`.
    pub fn new(extra_headers: &[String], paths: Vec<PathPattern>, unordered_arrays: bool) -> Rules {
        let ignored_headers = DEFAULT_IGNORED_HEADERS
            .iter()
            .chain(TRANSPORT_FIELDS)
            .map(|h| h.to_string())
            .chain(extra_headers.iter().map(|h| h.to_ascii_lowercase()))
            .collect();
        Rules {
            ignored_headers,
            ignored_paths: paths,
            unordered_arrays,
        }
    }

    /// The ignored header names, sorted (for the report).
    pub fn ignored_headers(&self) -> Vec<String> {
        let mut names: Vec<String> = self.ignored_headers.iter().cloned().collect();
        names.sort();
        names.push("x-request-id-like (request/correlation/trace ids)".into());
        names
    }

    fn ignores_header(&self, lower: &str) -> bool {
        self.ignored_headers.contains(lower) || is_request_id_like(lower)
    }

    fn ignores_path(&self, field: &str) -> bool {
        if self.ignored_paths.is_empty() {
            return false;
        }
        let Ok(steps) = parse_steps(field, false) else {
            return false;
        };
        self.ignored_paths.iter().any(|p| p.covers(&steps))
    }
}

/// Header fields that carry per-request ids.
fn is_request_id_like(lower: &str) -> bool {
    const PARTS: &[&str] = &[
        "request-id",
        "requestid",
        "correlation-id",
        "trace-id",
        "traceid",
        "span-id",
    ];
    PARTS.iter().any(|p| lower.contains(p))
        || matches!(
            lower,
            "traceparent" | "tracestate" | "b3" | "x-amzn-trace-id" | "x-cloud-trace-context"
        )
        || lower.starts_with("x-b3-")
}

/// A normalised response with its JSON body parsed once (it is compared with several replays).
#[derive(Debug)]
pub struct Prepared {
    /// The response.
    pub message: Normalised,
    /// Its body as JSON, when it is JSON and parses.
    pub json: Option<Value>,
}

impl Prepared {
    /// Normalises `raw` (at most `limit` body bytes) and parses a JSON body.
    pub fn new(raw: &[u8], limit: usize) -> Prepared {
        let message = Normalised::new(raw, limit);
        let json = (message.media == Media::Json)
            .then(|| serde_json::from_slice(&message.body).ok())
            .flatten();
        Prepared { message, json }
    }
}

/// Every difference between `original` and `replayed` under `rules`.
pub fn compare(original: &Prepared, replayed: &Prepared, rules: &Rules) -> Vec<Difference> {
    let mut out = Differences::default();
    if original.message.status != replayed.message.status {
        out.push(
            "status".into(),
            FieldKind::Status,
            "status".into(),
            original.message.status.to_string(),
            replayed.message.status.to_string(),
        );
    }
    compare_headers(&original.message, &replayed.message, rules, &mut out);
    compare_bodies(original, replayed, rules, &mut out);
    out.list
}

#[derive(Default)]
struct Differences {
    list: Vec<Difference>,
    more: usize,
}

impl Differences {
    fn push(
        &mut self,
        field: String,
        kind: FieldKind,
        path: String,
        original: String,
        replayed: String,
    ) {
        if self.list.len() >= MAX_DIFFERENCES {
            self.more += 1;
            if self.more == 1 {
                self.list.push(Difference {
                    field: "(more)".into(),
                    kind,
                    path: "(more differences)".into(),
                    original: String::new(),
                    replayed: String::new(),
                });
            }
            return;
        }
        self.list.push(Difference {
            field,
            kind,
            path,
            original: cut(original),
            replayed: cut(replayed),
        });
    }
}

fn cut(mut value: String) -> String {
    if let Some(end) = cut_point(&value, MAX_VALUE) {
        value.truncate(end);
        value.push('…');
    }
    value
}

/// The compared header fields: (lower-case name, values joined by ", "), sorted by name,
/// borrowed from the message unless joined. `Set-Cookie` is compared by the cookies' names only.
fn compared_headers<'a>(message: &'a Normalised, rules: &Rules) -> Vec<(&'a str, Cow<'a, str>)> {
    let mut fields: Vec<(&str, Cow<str>)> = Vec::with_capacity(message.fields.len());
    for field in message
        .fields
        .iter()
        .filter(|f| !rules.ignores_header(&f.lower))
    {
        let value = if field.lower == "set-cookie" {
            field.value.split('=').next().unwrap_or("").trim()
        } else {
            field.value.as_str()
        };
        match fields.iter_mut().find(|(name, _)| *name == field.lower) {
            Some((_, joined)) => {
                let joined = joined.to_mut();
                joined.push_str(", ");
                joined.push_str(value);
            }
            None => fields.push((&field.lower, Cow::Borrowed(value))),
        }
    }
    if let Some((_, cookies)) = fields.iter_mut().find(|(n, _)| *n == "set-cookie") {
        let mut names: Vec<&str> = cookies.split(", ").collect();
        names.sort_unstable();
        *cookies = Cow::Owned(names.join(", "));
    }
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    fields
}

fn compare_headers(
    original: &Normalised,
    replayed: &Normalised,
    rules: &Rules,
    out: &mut Differences,
) {
    let a = compared_headers(original, rules);
    let b = compared_headers(replayed, rules);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (name, left, right) = match order {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                if a[i - 1].1 == b[j - 1].1 {
                    continue;
                }
                (a[i - 1].0, a[i - 1].1.to_string(), b[j - 1].1.to_string())
            }
            std::cmp::Ordering::Less => {
                i += 1;
                (a[i - 1].0, a[i - 1].1.to_string(), ABSENT.to_string())
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (b[j - 1].0, ABSENT.to_string(), b[j - 1].1.to_string())
            }
        };
        let field = format!("header:{name}");
        out.push(field.clone(), FieldKind::Header, field, left, right);
    }
}

fn compare_bodies(original: &Prepared, replayed: &Prepared, rules: &Rules, out: &mut Differences) {
    if let (Some(a), Some(b)) = (&original.json, &replayed.json) {
        let mut walk = Walk {
            rules,
            out,
            path: JsonPath::root(),
        };
        walk.value(a, b);
        return;
    }
    let (a, b) = (&original.message.body, &replayed.message.body);
    if a == b {
        return;
    }
    let textual = |p: &Prepared| {
        p.message.media != Media::Other && std::str::from_utf8(&p.message.body).is_ok()
    };
    let (left, right) = if textual(original) && textual(replayed) {
        (summary_text(a), summary_text(b))
    } else {
        (summary_bytes(a), summary_bytes(b))
    };
    out.push("body".into(), FieldKind::Body, "body".into(), left, right);
}

/// The first line of a text body (cut), as its value in a difference.
fn summary_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let lines = text.lines().count();
    let first = text.lines().next().unwrap_or("");
    format!("{lines} lines, {} bytes: {first}", body.len())
}

/// Size and hash, for bodies compared as bytes.
fn summary_bytes(body: &[u8]) -> String {
    format!("{} bytes, hash {:016x}", body.len(), hash_of(body))
}

/// A stable 64-bit hash (FNV-1a) of `bytes`.
pub fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = Fnv::default();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// FNV-1a: fast for the short keys hashed here, and the same in every run.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A structural walk of two JSON values, keeping the path as it goes.
struct Walk<'a> {
    rules: &'a Rules,
    out: &'a mut Differences,
    path: JsonPath,
}

/// Where a walk is in a JSON document: exactly (`$.items[3].price`) and as the field it is
/// counted under (`$.items[*].price`).
struct JsonPath {
    concrete: String,
    general: String,
}

/// A place to return to after a step ([`JsonPath::back`]).
type Mark = (usize, usize);

impl JsonPath {
    fn root() -> JsonPath {
        JsonPath {
            concrete: String::from("$"),
            general: String::from("$"),
        }
    }

    fn key(&mut self, key: &str) -> Mark {
        let mark = (self.concrete.len(), self.general.len());
        push_key(&mut self.concrete, key);
        push_key(&mut self.general, key);
        mark
    }

    fn index(&mut self, index: usize) -> Mark {
        let mark = (self.concrete.len(), self.general.len());
        let _ = write!(self.concrete, "[{index}]");
        self.general.push_str("[*]");
        mark
    }

    fn back(&mut self, (concrete, general): Mark) {
        self.concrete.truncate(concrete);
        self.general.truncate(general);
    }
}

impl Walk<'_> {
    fn value(&mut self, a: &Value, b: &Value) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (key, left) in x {
                    self.step_key(key, |w| match y.get(key) {
                        Some(right) => w.value(left, right),
                        None => w.differ(Some(left), None),
                    });
                }
                for (key, right) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                    self.step_key(key, |w| w.differ(None, Some(right)));
                }
            }
            (Value::Array(x), Value::Array(y)) if self.rules.unordered_arrays => {
                let (x, y) = (sorted(x), sorted(y));
                self.elements(&x, &y);
            }
            (Value::Array(x), Value::Array(y)) => {
                let (x, y): (Vec<&Value>, Vec<&Value>) = (x.iter().collect(), y.iter().collect());
                self.elements(&x, &y);
            }
            (Value::Number(x), Value::Number(y)) if numbers_equal(x, y) => {}
            _ if a == b => {}
            _ => self.differ(Some(a), Some(b)),
        }
    }

    fn elements(&mut self, x: &[&Value], y: &[&Value]) {
        for i in 0..x.len().max(y.len()) {
            self.step_index(i, |w| match (x.get(i), y.get(i)) {
                (Some(l), Some(r)) => w.value(l, r),
                (l, r) => w.differ(l.copied(), r.copied()),
            });
        }
    }

    fn step_key(&mut self, key: &str, inner: impl FnOnce(&mut Self)) {
        let mark = self.path.key(key);
        inner(self);
        self.path.back(mark);
    }

    fn step_index(&mut self, index: usize, inner: impl FnOnce(&mut Self)) {
        let mark = self.path.index(index);
        inner(self);
        self.path.back(mark);
    }

    fn differ(&mut self, a: Option<&Value>, b: Option<&Value>) {
        if self.rules.ignores_path(&self.path.general) {
            return;
        }
        let show = |v: Option<&Value>| v.map_or_else(|| ABSENT.to_string(), |v| v.to_string());
        self.out.push(
            self.path.general.clone(),
            FieldKind::Body,
            self.path.concrete.clone(),
            show(a),
            show(b),
        );
    }
}

/// `.key` for identifier-like keys, `["key"]` otherwise.
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !key.as_bytes()[0].is_ascii_digit();
    if plain && key != "*" {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&Value::String(key.to_string()).to_string());
        path.push(']');
    }
}

/// The elements in a canonical order (by their JSON text), for unordered comparison.
fn sorted(values: &[Value]) -> Vec<&Value> {
    let mut keyed: Vec<(String, &Value)> = values.iter().map(|v| (v.to_string(), v)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, v)| v).collect()
}

/// `1` and `1.0` are the same number; integers beyond 2^53 are compared exactly.
fn numbers_equal(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
        (Some(a), Some(b), _, _) => a == b,
        (_, _, Some(a), Some(b)) => a == b,
        _ => x.as_f64() == y.as_f64(),
    }
}

/// What a response says, field by field, as hashes: (hash of the counted field, hash of its
/// values). Two answers to identical requests whose fingerprints differ in a field show that
/// the field is noise. Sorted by field hash.
pub fn fingerprint(response: &Prepared, rules: &Rules) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(16);
    out.push((hash_of(b"status"), u64::from(response.message.status)));
    for (name, value) in compared_headers(&response.message, rules) {
        out.push((field_hash("header:", name), hash_of(value.as_bytes())));
    }
    match &response.json {
        Some(json) => {
            leaves(json, &mut JsonPath::root(), rules, &mut out);
        }
        None => out.push((hash_of(b"body"), hash_of(&response.message.body))),
    }
    out.sort_unstable();
    // Leaves counted under one field (array elements) are summed into one value.
    out.dedup_by(|later, first| {
        if later.0 == first.0 {
            first.1 = first.1.wrapping_add(later.1);
            true
        } else {
            false
        }
    });
    out
}

/// The hash a counted field name is known by (`prefix` + `name`, hashed as one string).
pub fn field_hash(prefix: &str, name: &str) -> u64 {
    let mut hasher = Fnv::default();
    hasher.write(prefix.as_bytes());
    hasher.write(name.as_bytes());
    hasher.finish()
}

fn leaves(value: &Value, path: &mut JsonPath, rules: &Rules, out: &mut Vec<(u64, u64)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let mark = path.key(key);
                leaves(inner, path, rules, out);
                path.back(mark);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                let mark = path.index(i);
                leaves(inner, path, rules, out);
                path.back(mark);
            }
        }
        leaf => {
            if rules.ignores_path(&path.general) {
                return;
            }
            let mut hasher = Fnv::default();
            hasher.write(path.concrete.as_bytes());
            let _ = write!(HashWriter(&mut hasher), "{leaf}");
            out.push((field_hash("", &path.general), hasher.finish()));
        }
    }
}

/// Feeds formatted text to a hasher without building the string.
struct HashWriter<'a>(&'a mut Fnv);

impl std::fmt::Write for HashWriter<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.write(text.as_bytes());
        Ok(())
    }
}

/// The counted fields whose values differ between two fingerprints (or that one lacks).
pub fn differing_fields(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                if x.1 != y.1 {
                    out.push(x.0);
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(x.0);
                i += 1;
            }
            (Some(x), None) => {
                out.push(x.0);
                i += 1;
            }
            (_, Some(y)) => {
                out.push(y.0);
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// A unified line diff of two texts for an example (at most 80 lines).
pub fn text_diff(original: &str, replayed: &str) -> String {
    let diff = similar::TextDiff::from_lines(original, replayed);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header("original", "replayed")
        .to_string();
    let mut lines: Vec<&str> = text.lines().take(81).collect();
    if lines.len() > 80 {
        lines.truncate(80);
        lines.push("… (diff cut at 80 lines)");
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_response(body: &str) -> Prepared {
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Prepared::new(raw.as_bytes(), 1 << 20)
    }

    fn fields(diffs: &[Difference]) -> Vec<&str> {
        diffs.iter().map(|d| d.path.as_str()).collect()
    }

    #[test]
    fn json_differences_are_paths() {
        let rules = Rules::new(&[], Vec::new(), false);
        let a = json_response(r#"{"id":1,"items":[{"price":3},{"price":4}],"gone":true,"n":1}"#);
        let b = json_response(r#"{"id":1,"items":[{"price":3},{"price":5}],"new":null,"n":1.0}"#);
        let diffs = compare(&a, &b, &rules);
        assert_eq!(fields(&diffs), ["$.gone", "$.items[1].price", "$.new"]);
        assert_eq!(diffs[1].field, "$.items[*].price");
        assert_eq!(
            (diffs[1].original.as_str(), diffs[1].replayed.as_str()),
            ("4", "5")
        );
        assert_eq!(diffs[0].replayed, ABSENT);
    }

    #[test]
    fn arrays_are_ordered_unless_told_otherwise() {
        let a = json_response(r#"{"tags":["a","b"]}"#);
        let b = json_response(r#"{"tags":["b","a"]}"#);
        assert_eq!(
            compare(&a, &b, &Rules::new(&[], Vec::new(), false)).len(),
            2
        );
        assert!(compare(&a, &b, &Rules::new(&[], Vec::new(), true)).is_empty());
    }

    #[test]
    fn ignored_paths_cover_their_subtree() {
        let paths = ["$.meta", "$..request_id", "$.items[*].ts", "$[\"odd key\"]"]
            .iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect();
        let rules = Rules::new(&[], paths, false);
        let a = json_response(
            r#"{"meta":{"t":1},"x":{"request_id":"a"},"items":[{"ts":1,"v":1}],"odd key":1}"#,
        );
        let b = json_response(
            r#"{"meta":{"t":2},"x":{"request_id":"b"},"items":[{"ts":2,"v":2}],"odd key":2}"#,
        );
        assert_eq!(fields(&compare(&a, &b, &rules)), ["$.items[0].v"]);
        for bad in ["meta", "$.", "$[x]", "$[\"a", "$.a b["] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_compare_without_the_noisy_ones() {
        let rules = Rules::new(&["X-Build".into()], Vec::new(), false);
        let a = Prepared::new(
            b"HTTP/1.1 200 OK\r\nDate: a\r\nX-Request-Id: 1\r\nX-Build: 1\r\nSet-Cookie: s=1; Path=/\r\nCache-Control: no\r\nVary: a\r\n\r\n",
            64,
        );
        let b = Prepared::new(
            b"HTTP/1.1 404 Not Found\r\nDate: b\r\nX-Request-Id: 2\r\nX-Build: 2\r\nSet-Cookie: s=2; Path=/\r\nCache-Control: yes\r\nX-New: 1\r\n\r\n",
            64,
        );
        let diffs = compare(&a, &b, &rules);
        assert_eq!(
            fields(&diffs),
            [
                "status",
                "header:cache-control",
                "header:vary",
                "header:x-new"
            ]
        );
        assert_eq!(diffs[2].replayed, ABSENT);
    }

    #[test]
    fn text_and_binary_bodies() {
        let rules = Rules::new(&[], Vec::new(), false);
        let text = |b: &str| {
            Prepared::new(
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n{b}").as_bytes(),
                1024,
            )
        };
        let diffs = compare(&text("<p>\na\n</p>"), &text("<p>\nb\n</p>"), &rules);
        assert_eq!(fields(&diffs), ["body"]);
        assert!(text_diff("<p>\na\n</p>\n", "<p>\nb\n</p>\n").contains("-a\n+b"));
        let bin = |b: &[u8]| {
            let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n".to_vec();
            raw.extend_from_slice(b);
            Prepared::new(&raw, 1024)
        };
        let diffs = compare(&bin(b"\x89PNG1"), &bin(b"\x89PNG2"), &rules);
        assert!(diffs[0].original.starts_with("5 bytes, hash "));
        assert!(compare(&bin(b"same"), &bin(b"same"), &rules).is_empty());
    }

    #[test]
    fn hostile_documents_stay_bounded() {
        let rules = Rules::new(&[], Vec::new(), false);
        let many: Vec<String> = (0..1000).map(|i| format!("\"k{i}\":{i}")).collect();
        let a = json_response(&format!("{{{}}}", many.join(",")));
        let b = json_response("{}");
        let diffs = compare(&a, &b, &rules);
        assert_eq!(diffs.len(), MAX_DIFFERENCES + 1);
        assert_eq!(diffs.last().unwrap().field, "(more)");
        // Too deep for serde_json (recursion limit): compared as text, not a stack overflow.
        let deep = "[".repeat(100_000);
        let a = json_response(&deep);
        assert!(a.json.is_none());
        let long = "x".repeat(10_000);
        let diffs = compare(&json_response(&format!("{{\"a\":\"{long}\"}}")), &b, &rules);
        assert!(diffs[0].original.chars().count() <= MAX_VALUE + 1);
    }

    #[test]
    fn fingerprints_name_the_fields_that_differ() {
        let rules = Rules::new(&[], Vec::new(), false);
        let a = fingerprint(
            &json_response(r#"{"id":1,"rid":"x","items":[1,2]}"#),
            &rules,
        );
        let b = fingerprint(
            &json_response(r#"{"id":1,"rid":"y","items":[1,2]}"#),
            &rules,
        );
        assert_eq!(differing_fields(&a, &b), [field_hash("", "$.rid")]);
        let c = fingerprint(
            &json_response(r#"{"id":1,"rid":"x","items":[2,1]}"#),
            &rules,
        );
        assert_eq!(differing_fields(&a, &c), [field_hash("", "$.items[*]")]);
        assert!(differing_fields(&a, &a).is_empty());
    }
}
