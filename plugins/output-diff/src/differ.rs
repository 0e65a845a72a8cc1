//! Pairing and comparing: every message is filed under its request id; once the request and
//! the original response are there, each replayed response (kind 3, `target=NAME`) is compared
//! with the original — after the secondary's answer when a secondary is named, so that a field
//! both differ in is known to be noise for that request. Entries wait at most the timeout, at
//! most `pending` of them at once; whatever leaves unpaired is counted with its reason.

use crate::compare::{
    compare, differing_fields, fingerprint, text_diff, Difference, Prepared, Rules,
};
use crate::endpoint::Endpoints;
use crate::example::shown;
use crate::normalise::{Media, Normalised};
use crate::stats::{per_endpoint, EndpointNoise, Example, TargetStats};
use shadowtap_api::{Kind, Message};
use shadowtap_http1::headers;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Targets remembered; more are compared but not waited for.
const MAX_KNOWN_TARGETS: usize = 16;
/// Examples of unpaired requests kept per reason.
const UNPAIRED_EXAMPLES: usize = 3;
/// Identical-request fingerprints remembered for learning noise.
const LEARNED_REQUESTS: usize = 50_000;

/// Why a request or response was not compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unpaired {
    /// The original response never came.
    NoOriginal,
    /// No replayed response came.
    NoReplay,
    /// The replay failed (`error=` on its kind 3 line).
    ReplayError,
    /// Responses came for a request never seen.
    NoRequest,
    /// The original response was incomplete (`incomplete=N`).
    OriginalIncomplete,
    /// Pushed out by `--output-diff-pending` before it was complete.
    Evicted,
    /// Still incomplete when the run ended.
    PendingAtExit,
}

impl Unpaired {
    /// Every reason, in report order.
    pub const ALL: [Unpaired; 7] = [
        Unpaired::NoOriginal,
        Unpaired::NoReplay,
        Unpaired::ReplayError,
        Unpaired::NoRequest,
        Unpaired::OriginalIncomplete,
        Unpaired::Evicted,
        Unpaired::PendingAtExit,
    ];

    /// The report's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unpaired::NoOriginal => "no_original",
            Unpaired::NoReplay => "no_replay",
            Unpaired::ReplayError => "replay_error",
            Unpaired::NoRequest => "no_request",
            Unpaired::OriginalIncomplete => "original_incomplete",
            Unpaired::Evicted => "evicted",
            Unpaired::PendingAtExit => "pending_at_exit",
        }
    }
}

/// An unpaired request the report shows.
#[derive(Clone, Debug)]
pub struct UnpairedExample {
    /// Why.
    pub reason: Unpaired,
    /// More about it (the replay error).
    pub detail: String,
    /// The target, when one is concerned.
    pub target: String,
    /// The request (masked, cut), or empty when it was never seen.
    pub request: String,
}

/// How the comparison is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--output-diff-secondary`.
    pub secondary: Option<String>,
    /// What is compared.
    pub rules: Rules,
    /// How requests become endpoints.
    pub endpoints: Endpoints,
    /// Body bytes kept per message.
    pub body_limit: usize,
    /// `--output-diff-pending` (at least 1).
    pub pending: usize,
    /// `--output-diff-timeout`.
    pub timeout: Duration,
    /// `--output-diff-max-examples`.
    pub max_examples: usize,
}

/// What a comparison saw that the ledger counts.
pub trait Observer {
    /// A pair was compared at `endpoint`; `identical` when nothing differed.
    fn pair(&mut self, endpoint: &str, identical: bool);
    /// A body could not be undone (compared as it came).
    fn body_problem(&mut self);
}

struct Request {
    endpoint: String,
    /// Method, target and body, hashed: what identical requests share.
    hash: u64,
    message: Message,
}

impl Request {
    /// The request as an example shows it.
    fn shown(&self, body_limit: usize) -> String {
        shown(&Normalised::new(&self.message.payload, body_limit))
    }
}

struct Original {
    prepared: Prepared,
    latency: Option<i64>,
    incomplete: bool,
}

#[derive(Default)]
struct Entry {
    generation: u64,
    request: Option<Request>,
    original: Option<Original>,
    waiting: Vec<Message>,
    /// The counted fields the secondary differed in (once it was compared).
    secondary: Option<Vec<String>>,
    /// Each target that answered, and how often.
    answered: Vec<(Arc<str>, u32)>,
    /// The secondary's replay failed: candidates are not kept waiting for it.
    failed: bool,
    /// Its original was fingerprinted for learning noise.
    learned: bool,
    /// Counted unpaired already (its original is incomplete): later messages are ignored.
    counted: bool,
}

/// The whole comparison's state.
pub struct Differ {
    config: Config,
    entries: HashMap<Box<str>, Entry>,
    order: VecDeque<(Instant, Box<str>, u64)>,
    generation: u64,
    /// Each target seen, with the answers it gives per request (`copies=N`).
    known_targets: Vec<(Arc<str>, u32)>,
    examples_left: usize,
    learned: HashMap<u64, Vec<(u64, u64)>>,
    learned_order: VecDeque<u64>,
    /// Per candidate target.
    pub targets: BTreeMap<String, TargetStats>,
    /// Per endpoint.
    pub noise: HashMap<String, EndpointNoise>,
    /// Requests seen.
    pub requests: u64,
    /// Unpaired, by reason.
    pub unpaired: BTreeMap<Unpaired, u64>,
    /// A few of each reason.
    pub unpaired_examples: Vec<UnpairedExample>,
}

impl Differ {
    /// An empty comparison.
    pub fn new(config: Config) -> Differ {
        Differ {
            examples_left: config.max_examples,
            config,
            entries: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            known_targets: Vec::new(),
            learned: HashMap::new(),
            learned_order: VecDeque::new(),
            targets: BTreeMap::new(),
            noise: HashMap::new(),
            requests: 0,
            unpaired: BTreeMap::new(),
            unpaired_examples: Vec::new(),
        }
    }

    /// Entries waiting now.
    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    /// Files one message and compares what it completes.
    pub fn add(&mut self, msg: Message, now: Instant, observer: &mut dyn Observer) {
        let key = self.key_of(msg.id());
        if !self.entries.contains_key(key.as_str()) {
            self.open_entry(&key, now, observer);
        }
        let entry = self.entries.get_mut(key.as_str()).expect("just opened");
        match msg.kind() {
            Kind::Request => {
                self.requests += 1;
                entry.request = Some(request_of(&msg, &self.config));
            }
            Kind::Response => {
                entry.original = Some(Original {
                    prepared: Prepared::new(&msg.payload, self.config.body_limit),
                    latency: msg.meta.latency(),
                    incomplete: msg.meta.incomplete().is_some(),
                });
            }
            Kind::ReplayedResponse => self.file_replay(&key, msg),
            Kind::Other(_) => return,
        }
        self.progress(&key, false, observer);
    }

    /// The entry an id belongs to: its own, or for an amplified copy `<id>-N` its request's.
    fn key_of(&mut self, id: &str) -> String {
        if !self.entries.contains_key(id) {
            if let Some((base, n)) = id.rsplit_once('-') {
                if !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && self.entries.contains_key(base)
                {
                    return base.to_string();
                }
            }
        }
        id.to_string()
    }

    fn open_entry(&mut self, key: &str, now: Instant, observer: &mut dyn Observer) {
        while self.entries.len() >= self.config.pending {
            let Some((_, oldest, generation)) = self.order.pop_front() else {
                break;
            };
            self.close(&oldest, generation, Some(Unpaired::Evicted), observer);
        }
        self.generation += 1;
        let entry = Entry {
            generation: self.generation,
            ..Entry::default()
        };
        self.entries.insert(key.into(), entry);
        self.order
            .push_back((now + self.config.timeout, key.into(), self.generation));
        // Entries closed early leave their place in the queue behind; dropping those places
        // when they outnumber the live ones keeps the queue within twice the pending entries.
        if self.order.len() > 2 * self.entries.len() + 1024 {
            let entries = &self.entries;
            self.order.retain(|(_, key, generation)| {
                entries
                    .get(key)
                    .is_some_and(|e| e.generation == *generation)
            });
        }
    }

    fn file_replay(&mut self, key: &str, msg: Message) {
        let target: Arc<str> = target_of(&msg).into();
        let copies: u32 = msg
            .meta
            .field("copies")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let room = self.known_targets.len() < MAX_KNOWN_TARGETS;
        match self.known_targets.iter_mut().find(|(t, _)| *t == target) {
            Some((_, known)) => *known = copies,
            None if room => self.known_targets.push((target.clone(), copies)),
            None => {}
        }
        let error = msg.meta.field("error").map(str::to_string);
        let entry = self.entries.get_mut(key).expect("filed");
        match entry.answered.iter_mut().find(|(t, _)| *t == target) {
            Some((_, n)) => *n += 1,
            None => entry.answered.push((target.clone(), 1)),
        }
        match error {
            Some(detail) => {
                if self.config.secondary.as_deref() == Some(&*target) {
                    entry.failed = true;
                }
                let request = entry.request.as_ref().map(|r| r.message.clone());
                self.count_unpaired(Unpaired::ReplayError, detail, target.to_string(), request);
            }
            None => entry.waiting.push(msg),
        }
    }

    /// Compares what the entry allows; closes it when nothing more is expected (or `force`).
    fn progress(&mut self, key: &str, force: bool, observer: &mut dyn Observer) {
        let ready = self
            .entries
            .get(key)
            .is_some_and(|e| e.request.is_some() && e.original.is_some());
        if !ready {
            return;
        }
        // Out of the map while it is worked on (comparing borrows the rest of `self`).
        let mut entry = self.entries.remove(key).expect("ready");
        if entry.original.as_ref().is_some_and(|o| o.incomplete) {
            if !entry.counted {
                entry.counted = true;
                let request = entry.request.as_ref().map(|r| r.message.clone());
                self.count_unpaired(
                    Unpaired::OriginalIncomplete,
                    String::new(),
                    String::new(),
                    request,
                );
            }
            entry.waiting.clear();
            self.entries.insert(key.into(), entry);
            return;
        }
        if !entry.learned {
            entry.learned = true;
            self.learn(&entry);
        }
        self.compare_waiting(&mut entry, key, force, observer);
        if !self.all_answered(&entry) {
            self.entries.insert(key.into(), entry);
        }
    }

    fn all_answered(&self, entry: &Entry) -> bool {
        let secondary = self.config.secondary.as_deref();
        let answers = |target: &str| {
            entry
                .answered
                .iter()
                .find(|(t, _)| &**t == target)
                .map_or(0, |(_, n)| *n)
        };
        entry.waiting.is_empty()
            && secondary.is_none_or(|s| answers(s) > 0)
            && self
                .known_targets
                .iter()
                .all(|(t, copies)| answers(t) >= *copies)
            && entry.answered.iter().any(|(t, _)| Some(&**t) != secondary)
    }

    fn compare_waiting(
        &mut self,
        entry: &mut Entry,
        key: &str,
        force: bool,
        observer: &mut dyn Observer,
    ) {
        let secondary = self.config.secondary.clone();
        if let Some(name) = &secondary {
            // The secondary's answers are never candidates: the first is its noise, and its
            // amplified copies are left out.
            let (answers, candidates) = std::mem::take(&mut entry.waiting)
                .into_iter()
                .partition::<Vec<_>, _>(|m| target_of(m) == name);
            entry.waiting = candidates;
            if let (Some(msg), None) = (answers.first(), &entry.secondary) {
                entry.secondary = Some(self.compare_secondary(entry, msg, observer));
            }
        }
        let wait_for_secondary =
            secondary.is_some() && entry.secondary.is_none() && !entry.failed && !force;
        if wait_for_secondary {
            return;
        }
        for msg in std::mem::take(&mut entry.waiting) {
            self.compare_pair(entry, key, &msg, observer);
        }
    }

    /// The fields the secondary differs in from the original, counted as the endpoint's noise.
    fn compare_secondary(
        &mut self,
        entry: &Entry,
        msg: &Message,
        observer: &mut dyn Observer,
    ) -> Vec<String> {
        let (request, original) = parts(entry);
        let replayed = Prepared::new(&msg.payload, self.config.body_limit);
        if replayed.message.problem.is_some() {
            observer.body_problem();
        }
        let mut fields: Vec<String> = compare(&original.prepared, &replayed, &self.config.rules)
            .into_iter()
            .map(|d| d.field)
            .collect();
        fields.sort_unstable();
        fields.dedup();
        let noise = per_endpoint(&mut self.noise, &request.endpoint);
        noise.secondary_pairs += 1;
        for field in &fields {
            *noise.secondary_differs.entry(field.clone()).or_default() += 1;
        }
        fields
    }

    fn compare_pair(
        &mut self,
        entry: &mut Entry,
        key: &str,
        msg: &Message,
        observer: &mut dyn Observer,
    ) {
        let (request, original) = parts(entry);
        let replayed = Prepared::new(&msg.payload, self.config.body_limit);
        if replayed.message.problem.is_some() || original.prepared.message.problem.is_some() {
            observer.body_problem();
        }
        let differences = compare(&original.prepared, &replayed, &self.config.rules);
        let target = target_of(msg);
        let also = entry.secondary.as_deref().unwrap_or_default();
        let noise = per_endpoint(&mut self.noise, &request.endpoint);
        if !self.targets.contains_key(target) {
            self.targets
                .insert(target.to_string(), TargetStats::default());
        }
        let stats = self.targets.get_mut(target).expect("just made");
        *stats
            .status_matrix
            .entry((original.prepared.message.status, replayed.message.status))
            .or_default() += 1;
        let endpoint = stats.endpoint(&request.endpoint);
        let limit = self.config.body_limit;
        let example = |d: &Difference| {
            example_of(
                d,
                key,
                &request.shown(limit),
                &original.prepared.message,
                &replayed.message,
            )
        };
        endpoint.add_pair(
            &differences,
            also,
            (original.latency, msg.meta.latency()),
            &mut self.examples_left,
            example,
            noise,
        );
        observer.pair(&request.endpoint, differences.is_empty());
    }

    /// Remembers the original's fingerprint under the request's; when an identical request
    /// was answered differently before, the fields that differ are noise for the endpoint.
    fn learn(&mut self, entry: &Entry) {
        let (request, original) = parts(entry);
        let print = fingerprint(&original.prepared, &self.config.rules);
        if let Some(before) = self.learned.get(&request.hash) {
            let fields = differing_fields(before, &print);
            if !fields.is_empty() {
                per_endpoint(&mut self.noise, &request.endpoint)
                    .learned
                    .extend(fields);
            }
        } else {
            if self.learned.len() >= LEARNED_REQUESTS {
                if let Some(old) = self.learned_order.pop_front() {
                    self.learned.remove(&old);
                }
            }
            self.learned_order.push_back(request.hash);
        }
        self.learned.insert(request.hash, print);
    }

    /// Closes entries whose time is up.
    pub fn expire(&mut self, now: Instant, observer: &mut dyn Observer) {
        while let Some((deadline, _, _)) = self.order.front() {
            if *deadline > now {
                break;
            }
            let (_, key, generation) = self.order.pop_front().expect("front");
            self.close(&key, generation, None, observer);
        }
    }

    /// Closes every entry (the run is ending).
    pub fn finish(&mut self, observer: &mut dyn Observer) {
        while let Some((_, key, generation)) = self.order.pop_front() {
            self.close(&key, generation, Some(Unpaired::PendingAtExit), observer);
        }
    }

    /// Compares what can still be compared and counts what is missing: as `reason` when given,
    /// else as what is missing.
    fn close(
        &mut self,
        key: &str,
        generation: u64,
        reason: Option<Unpaired>,
        observer: &mut dyn Observer,
    ) {
        if self
            .entries
            .get(key)
            .is_none_or(|e| e.generation != generation)
        {
            return;
        }
        self.progress(key, true, observer);
        let Some(entry) = self.entries.remove(key) else {
            return;
        };
        if entry.counted {
            return;
        }
        let missing = if entry.request.is_none() {
            Some(Unpaired::NoRequest)
        } else if entry.original.is_none() {
            Some(Unpaired::NoOriginal)
        } else if entry.answered.is_empty() {
            Some(Unpaired::NoReplay)
        } else {
            None
        };
        if let Some(missing) = missing {
            let request = entry.request.map(|r| r.message);
            self.count_unpaired(
                reason.unwrap_or(missing),
                String::new(),
                String::new(),
                request,
            );
        }
    }

    fn count_unpaired(
        &mut self,
        reason: Unpaired,
        detail: String,
        target: String,
        request: Option<Message>,
    ) {
        let count = self.unpaired.entry(reason).or_default();
        *count += 1;
        if *count <= UNPAIRED_EXAMPLES as u64 {
            let limit = self.config.body_limit;
            self.unpaired_examples.push(UnpairedExample {
                reason,
                detail,
                target,
                request: request
                    .map_or_else(String::new, |m| shown(&Normalised::new(&m.payload, limit))),
            });
        }
    }
}

/// The target a replayed response names (`target=NAME`), `replay` when it names none.
fn target_of(msg: &Message) -> &str {
    msg.meta.field("target").unwrap_or("replay")
}

/// The request and original of an entry that has both.
fn parts(entry: &Entry) -> (&Request, &Original) {
    (
        entry.request.as_ref().expect("ready"),
        entry.original.as_ref().expect("ready"),
    )
}

fn request_of(msg: &Message, config: &Config) -> Request {
    let payload = &msg.payload;
    let (method, target) =
        headers::request_line(payload).map_or(("?".to_string(), "/".to_string()), |line| {
            (
                String::from_utf8_lossy(line.method).into_owned(),
                String::from_utf8_lossy(line.target).into_owned(),
            )
        });
    let body_at = headers::layout(payload).head_end;
    let mut hasher = crate::compare::Fnv::default();
    std::hash::Hasher::write(&mut hasher, method.as_bytes());
    std::hash::Hasher::write(&mut hasher, target.as_bytes());
    std::hash::Hasher::write(&mut hasher, &payload[body_at..]);
    Request {
        endpoint: config.endpoints.name(&method, &target),
        hash: std::hash::Hasher::finish(&hasher),
        message: msg.clone(),
    }
}

fn example_of(
    difference: &Difference,
    id: &str,
    request: &str,
    original: &Normalised,
    replayed: &Normalised,
) -> Example {
    let text_body = difference.field == "body"
        && original.media == Media::Text
        && replayed.media == Media::Text;
    Example {
        id: id.to_string(),
        path: difference.path.clone(),
        original_value: difference.original.clone(),
        replayed_value: difference.replayed.clone(),
        request: request.to_string(),
        original: shown(original),
        replayed: shown(replayed),
        diff: text_body.then(|| {
            text_diff(
                &String::from_utf8_lossy(&original.body),
                &String::from_utf8_lossy(&replayed.body),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::Meta;

    #[derive(Default)]
    struct Seen {
        pairs: u64,
        identical: u64,
        problems: u64,
    }

    impl Observer for Seen {
        fn pair(&mut self, _: &str, identical: bool) {
            self.pairs += 1;
            self.identical += u64::from(identical);
        }
        fn body_problem(&mut self) {
            self.problems += 1;
        }
    }

    fn config(secondary: Option<&str>, pending: usize) -> Config {
        Config {
            secondary: secondary.map(str::to_string),
            rules: Rules::new(&[], Vec::new(), false),
            endpoints: Endpoints::default(),
            body_limit: 1 << 16,
            pending,
            timeout: Duration::from_secs(5),
            max_examples: 10,
        }
    }

    fn request(id: &str, path: &str) -> Message {
        let meta = Meta::new(Kind::Request, id, 1, 0).unwrap();
        Message::new(meta, format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n"))
    }

    fn json(kind: Kind, id: &str, target: Option<&str>, body: &str) -> Message {
        let mut meta = Meta::new(kind, id, 1, 1_000_000).unwrap();
        if let Some(target) = target {
            meta = meta.with_field("target", target).unwrap();
        }
        if id.starts_with("amp") && kind == Kind::ReplayedResponse {
            meta = meta.with_field("copies", "2").unwrap();
        }
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Message::new(meta, raw)
    }

    fn failed(id: &str, target: &str) -> Message {
        let meta = Meta::new(Kind::ReplayedResponse, id, 1, 5)
            .and_then(|m| m.with_field("target", target))
            .and_then(|m| m.with_field("error", "timeout"))
            .unwrap();
        Message::new(meta, "")
    }

    fn endpoint<'a>(d: &'a Differ, target: &str, name: &str) -> &'a crate::stats::EndpointStats {
        &d.targets[target].endpoints[name]
    }

    #[test]
    fn pairs_in_any_order_and_closes_complete_entries() {
        let mut d = Differ::new(config(None, 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        // The replay may come before the original (live capture), the request last (files).
        d.add(
            json(Kind::ReplayedResponse, "a", Some("cand"), r#"{"x":1}"#),
            now,
            &mut seen,
        );
        d.add(
            json(Kind::Response, "a", None, r#"{"x":1}"#),
            now,
            &mut seen,
        );
        d.add(request("a", "/users/1"), now, &mut seen);
        d.add(request("b", "/users/2"), now, &mut seen);
        d.add(
            json(Kind::Response, "b", None, r#"{"x":1}"#),
            now,
            &mut seen,
        );
        d.add(
            json(Kind::ReplayedResponse, "b", Some("cand"), r#"{"x":2}"#),
            now,
            &mut seen,
        );
        assert_eq!((seen.pairs, seen.identical), (2, 1));
        assert_eq!(d.pending(), 0);
        let e = endpoint(&d, "cand", "GET /users/{id}");
        assert_eq!((e.pairs, e.identical, e.body_differs), (2, 1, 1));
        assert_eq!(e.fields[0].example.as_ref().unwrap().path, "$.x");
    }

    #[test]
    fn candidates_wait_for_the_secondary_and_shared_differences_are_noise() {
        let mut d = Differ::new(config(Some("sec"), 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        d.add(request("a", "/u"), now, &mut seen);
        d.add(
            json(Kind::Response, "a", None, r#"{"rid":1,"v":1}"#),
            now,
            &mut seen,
        );
        d.add(
            json(
                Kind::ReplayedResponse,
                "a",
                Some("cand"),
                r#"{"rid":2,"v":2}"#,
            ),
            now,
            &mut seen,
        );
        assert_eq!(seen.pairs, 0, "waits for the secondary");
        d.add(
            json(
                Kind::ReplayedResponse,
                "a",
                Some("sec"),
                r#"{"rid":3,"v":1}"#,
            ),
            now,
            &mut seen,
        );
        assert_eq!(seen.pairs, 1);
        assert_eq!(d.pending(), 0);
        assert!(
            !d.targets.contains_key("sec"),
            "the secondary is not a candidate"
        );
        let noise = &d.noise["GET /u"];
        let v = endpoint(&d, "cand", "GET /u").verdict(noise);
        assert_eq!(v.regressions, 1, "$.v is not explained by the secondary");
        assert_eq!(noise.secondary_differs["$.rid"], 1);
    }

    #[test]
    fn amplified_copies_of_the_secondary_are_not_candidates() {
        let mut d = Differ::new(config(Some("sec"), 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        d.add(request("amp", "/u"), now, &mut seen);
        d.add(json(Kind::Response, "amp", None, "{}"), now, &mut seen);
        d.add(
            json(Kind::ReplayedResponse, "amp", Some("sec"), "{}"),
            now,
            &mut seen,
        );
        d.add(
            json(Kind::ReplayedResponse, "amp-1", Some("sec"), "{}"),
            now,
            &mut seen,
        );
        d.add(
            json(Kind::ReplayedResponse, "amp", Some("cand"), "{}"),
            now,
            &mut seen,
        );
        d.add(
            json(Kind::ReplayedResponse, "amp-1", Some("cand"), "{}"),
            now,
            &mut seen,
        );
        assert_eq!(seen.pairs, 2, "only the candidate's two answers");
        assert!(!d.targets.contains_key("sec"));
        assert_eq!(d.noise["GET /u"].secondary_pairs, 1);
    }

    #[test]
    fn a_failed_secondary_does_not_hold_candidates_and_errors_are_counted() {
        let mut d = Differ::new(config(Some("sec"), 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        d.add(request("a", "/u"), now, &mut seen);
        d.add(json(Kind::Response, "a", None, "{}"), now, &mut seen);
        d.add(failed("a", "sec"), now, &mut seen);
        d.add(
            json(Kind::ReplayedResponse, "a", Some("cand"), "{}"),
            now,
            &mut seen,
        );
        assert_eq!(seen.identical, 1);
        assert_eq!(d.unpaired[&Unpaired::ReplayError], 1);
        assert_eq!(d.unpaired_examples[0].detail, "timeout");
        assert!(d.unpaired_examples[0]
            .request
            .starts_with("GET /u HTTP/1.1"));
    }

    #[test]
    fn amplified_copies_are_compared_under_their_request() {
        let mut d = Differ::new(config(None, 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        d.add(request("amp", "/u"), now, &mut seen);
        d.add(json(Kind::Response, "amp", None, "{}"), now, &mut seen);
        d.add(
            json(Kind::ReplayedResponse, "amp", Some("c"), "{}"),
            now,
            &mut seen,
        );
        assert_eq!(d.pending(), 1, "a second copy is expected");
        d.add(
            json(Kind::ReplayedResponse, "amp-1", Some("c"), "{}"),
            now,
            &mut seen,
        );
        assert_eq!(seen.pairs, 2);
        assert_eq!(d.pending(), 0);
        d.finish(&mut seen);
        assert!(d.unpaired.is_empty(), "{:?}", d.unpaired);
    }

    #[test]
    fn what_never_pairs_is_counted_by_reason() {
        let mut d = Differ::new(config(None, 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        d.add(request("no-original", "/u"), now, &mut seen);
        d.add(request("no-replay", "/u"), now, &mut seen);
        d.add(
            json(Kind::Response, "no-replay", None, "{}"),
            now,
            &mut seen,
        );
        d.add(
            json(Kind::ReplayedResponse, "no-request", Some("c"), "{}"),
            now,
            &mut seen,
        );
        let mut cut = json(Kind::Response, "cut", None, "{}");
        cut.meta = cut.meta.marked_incomplete(10);
        d.add(request("cut", "/u"), now, &mut seen);
        d.add(cut, now, &mut seen);
        d.add(
            json(Kind::ReplayedResponse, "cut", Some("c"), "{}"),
            now,
            &mut seen,
        );
        d.expire(now + Duration::from_secs(6), &mut seen);
        assert_eq!(d.pending(), 0);
        let count = |r| d.unpaired.get(&r).copied().unwrap_or(0);
        assert_eq!(count(Unpaired::NoOriginal), 1);
        assert_eq!(count(Unpaired::NoReplay), 1);
        assert_eq!(count(Unpaired::NoRequest), 1);
        assert_eq!(count(Unpaired::OriginalIncomplete), 1);
        assert_eq!(seen.pairs, 0);
    }

    #[test]
    fn pending_is_bounded_and_evictions_counted() {
        let mut d = Differ::new(config(None, 10));
        let mut seen = Seen::default();
        let now = Instant::now();
        for i in 0..1000 {
            d.add(request(&i.to_string(), "/u"), now, &mut seen);
            assert!(d.pending() <= 10);
        }
        assert_eq!(d.unpaired[&Unpaired::Evicted], 990);
        d.finish(&mut seen);
        assert_eq!(d.unpaired[&Unpaired::PendingAtExit], 10);
    }

    #[test]
    fn entries_closed_early_do_not_pile_up_in_the_timeout_queue() {
        let mut d = Differ::new(config(None, 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        for i in 0..10_000 {
            let id = i.to_string();
            d.add(request(&id, "/u"), now, &mut seen);
            d.add(json(Kind::Response, &id, None, "{}"), now, &mut seen);
            d.add(
                json(Kind::ReplayedResponse, &id, Some("c"), "{}"),
                now,
                &mut seen,
            );
        }
        assert_eq!((seen.pairs, d.pending()), (10_000, 0));
        assert!(d.order.len() <= 1024 + 1, "{}", d.order.len());
    }

    #[test]
    fn identical_requests_answered_differently_teach_noise() {
        let mut d = Differ::new(config(None, 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        for (i, rid) in ["1", "2"].iter().enumerate() {
            let id = i.to_string();
            d.add(request(&id, "/same"), now, &mut seen);
            d.add(
                json(
                    Kind::Response,
                    &id,
                    None,
                    &format!(r#"{{"rid":{rid},"v":1}}"#),
                ),
                now,
                &mut seen,
            );
            d.add(
                json(Kind::ReplayedResponse, &id, Some("c"), r#"{"rid":9,"v":2}"#),
                now,
                &mut seen,
            );
        }
        let noise = &d.noise["GET /same"];
        let v = endpoint(&d, "c", "GET /same").verdict(noise);
        let rid = endpoint(&d, "c", "GET /same")
            .fields
            .iter()
            .position(|f| f.field == "$.rid")
            .unwrap();
        assert_eq!(
            v.fields[rid].noise,
            Some(crate::stats::NoiseSource::Learned)
        );
        assert_eq!(v.regressions, 2, "$.v still regresses");
    }

    #[test]
    fn garbage_is_compared_without_panicking() {
        let mut d = Differ::new(config(None, 100));
        let mut seen = Seen::default();
        let now = Instant::now();
        let junk = |kind, id: &str, bytes: &'static [u8]| {
            let mut meta = Meta::new(kind, id, 1, 1).unwrap();
            if kind == Kind::ReplayedResponse {
                meta = meta.with_field("target", "c").unwrap();
            }
            Message::new(meta, bytes)
        };
        d.add(
            junk(Kind::Request, "g", b"\x00\xff garbage"),
            now,
            &mut seen,
        );
        d.add(
            junk(
                Kind::Response,
                "g",
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nxx",
            ),
            now,
            &mut seen,
        );
        d.add(junk(Kind::ReplayedResponse, "g", b""), now, &mut seen);
        assert_eq!(seen.pairs, 1);
        assert_eq!(seen.problems, 1);
    }
}
