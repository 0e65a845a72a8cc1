//! Streaming aggregates: per candidate target and endpoint, how many pairs were compared and how
//! they came out, each differing field with its rate and one example, the original × replayed
//! status matrix and both latency histograms; per endpoint, the noise seen between the
//! original and the secondary and between answers to identical requests. Memory is bounded by
//! the caps below, whatever the traffic.
//!
//! A pair's verdict is decided when the report is written, not when it is compared: whether a
//! field is noise depends on rates still being counted. So each pair is kept as its
//! *signature*, the set of fields that differed from the original and not from the secondary
//! in the same request, counted per endpoint; a signature is a regression when one of its
//! fields is not noise.

use crate::compare::{field_hash, Difference, FieldKind};
use crate::latency::Histogram;
use std::collections::{HashMap, HashSet};

/// Endpoints kept per target; later ones are counted under [`OTHER_ENDPOINTS`].
pub const MAX_ENDPOINTS: usize = 2000;
/// The endpoint that holds the endpoints beyond [`MAX_ENDPOINTS`].
pub const OTHER_ENDPOINTS: &str = "(other endpoints)";
/// Fields kept per endpoint; later ones are counted under `(other fields)`.
const MAX_FIELDS: usize = 256;
/// Distinct signatures kept per endpoint; a pair with a new one beyond this is judged at once.
const MAX_SIGNATURES: usize = 256;

/// Diffy's thresholds: a field that also differs in the noise is still a regression when the
/// candidate's rate exceeds the noise rate by more than 20 % relatively and 3 points absolutely.
const RELATIVE_THRESHOLD: f64 = 0.2;
const ABSOLUTE_THRESHOLD: f64 = 0.03;

/// One example of a field that differs, as the report shows it.
#[derive(Clone, Debug)]
pub struct Example {
    /// The request's id.
    pub id: String,
    /// Where exactly.
    pub path: String,
    /// The original's value.
    pub original_value: String,
    /// The replayed value.
    pub replayed_value: String,
    /// The request, masked and cut.
    pub request: String,
    /// The original response, normalised, masked and cut.
    pub original: String,
    /// The replayed response.
    pub replayed: String,
    /// A unified line diff, for text bodies.
    pub diff: Option<String>,
}

/// What is known of one field of one endpoint.
#[derive(Debug)]
pub struct FieldStats {
    /// The counted field.
    pub field: String,
    /// Its kind.
    pub kind: FieldKind,
    /// Pairs where the replayed value differed from the original.
    pub differs: u64,
    /// The first example.
    pub example: Option<Example>,
}

/// One candidate's pairs of one endpoint.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Pairs compared.
    pub pairs: u64,
    /// Pairs with no difference at all.
    pub identical: u64,
    /// Pairs whose status differed.
    pub status_differs: u64,
    /// Pairs whose body differed.
    pub body_differs: u64,
    /// Pairs whose every difference the secondary showed too (noise whatever the rates).
    noise_in_request: u64,
    /// Pairs judged when their signature could not be kept: (regressions, noise only).
    judged_early: (u64, u64),
    signatures: HashMap<Vec<u16>, u64>,
    /// The fields, in the order first seen.
    pub fields: Vec<FieldStats>,
    index: HashMap<String, u16>,
    /// Original latency.
    pub original_latency: Histogram,
    /// Replayed latency.
    pub replayed_latency: Histogram,
}

/// Noise seen at one endpoint.
#[derive(Debug, Default)]
pub struct EndpointNoise {
    /// Requests whose secondary answer was compared with the original.
    pub secondary_pairs: u64,
    /// Per field, how often the secondary differed from the original.
    pub secondary_differs: HashMap<String, u64>,
    /// Fields (by [`field_hash`]) seen to differ between answers to identical requests.
    pub learned: HashSet<u64>,
}

/// Why a field is noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseSource {
    /// It differs between the original and the secondary at a rate the candidate's does not
    /// exceed by Diffy's thresholds.
    Secondary,
    /// It differed between production's answers to identical requests.
    Learned,
}

impl NoiseSource {
    /// `secondary` or `learned`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoiseSource::Secondary => "secondary",
            NoiseSource::Learned => "learned",
        }
    }
}

/// A field's figures at report time.
#[derive(Clone, Debug)]
pub struct FieldVerdict {
    /// Candidate vs original rate.
    pub rate: f64,
    /// How often the noise showed it.
    pub noise_differs: u64,
    /// The noise rate.
    pub noise_rate: f64,
    /// Whether it is noise, and why.
    pub noise: Option<NoiseSource>,
    /// Pairs it made a regression.
    pub regressions: u64,
}

/// An endpoint's figures at report time.
#[derive(Clone, Debug, Default)]
pub struct EndpointVerdict {
    /// Pairs that differ only in noise.
    pub noise_only: u64,
    /// Pairs with a difference that is not noise.
    pub regressions: u64,
    /// Per field, in the order of [`EndpointStats::fields`].
    pub fields: Vec<FieldVerdict>,
}

impl EndpointStats {
    /// Counts one pair: its differences from the original, the fields (counted names) the
    /// secondary also differed in for the same request, the latencies; `example` builds the
    /// example of a field that has none yet while `examples_left` allows.
    pub fn add_pair(
        &mut self,
        differences: &[Difference],
        also_in_secondary: &[String],
        latencies: (Option<i64>, Option<i64>),
        examples_left: &mut usize,
        mut example: impl FnMut(&Difference) -> Example,
        noise: &EndpointNoise,
    ) {
        self.pairs += 1;
        if let Some(ns) = latencies.0 {
            self.original_latency.add(ns);
        }
        if let Some(ns) = latencies.1 {
            self.replayed_latency.add(ns);
        }
        if differences.is_empty() {
            self.identical += 1;
            return;
        }
        if differences.iter().any(|d| d.kind == FieldKind::Status) {
            self.status_differs += 1;
        }
        if differences.iter().any(|d| d.kind == FieldKind::Body) {
            self.body_differs += 1;
        }
        let mut signature: Vec<u16> = Vec::new();
        for difference in differences {
            let index = self.field_index(difference);
            let stats = &mut self.fields[usize::from(index)];
            stats.differs += 1;
            if stats.example.is_none() && *examples_left > 0 {
                *examples_left -= 1;
                stats.example = Some(example(difference));
            }
            if !also_in_secondary.contains(&difference.field) {
                signature.push(index);
            }
        }
        signature.sort_unstable();
        signature.dedup();
        if signature.is_empty() {
            self.noise_in_request += 1;
        } else if let Some(count) = self.signatures.get_mut(&signature) {
            *count += 1;
        } else if self.signatures.len() < MAX_SIGNATURES {
            self.signatures.insert(signature, 1);
        } else if self.is_regression(&signature, &self.noise_of_fields(noise)) {
            self.judged_early.0 += 1;
        } else {
            self.judged_early.1 += 1;
        }
    }

    fn field_index(&mut self, difference: &Difference) -> u16 {
        let field =
            if self.fields.len() >= MAX_FIELDS && !self.index.contains_key(&difference.field) {
                "(other fields)"
            } else {
                difference.field.as_str()
            };
        if let Some(&index) = self.index.get(field) {
            return index;
        }
        let index = self.fields.len() as u16;
        self.index.insert(field.to_string(), index);
        self.fields.push(FieldStats {
            field: field.to_string(),
            kind: difference.kind,
            differs: 0,
            example: None,
        });
        index
    }

    /// Each field's rates and whether it is noise now, and why (its regressions still 0).
    fn noise_of_fields(&self, noise: &EndpointNoise) -> Vec<FieldVerdict> {
        self.fields
            .iter()
            .map(|f| {
                let rate = f.differs as f64 / self.pairs.max(1) as f64;
                let noise_differs = noise.secondary_differs.get(&f.field).copied().unwrap_or(0);
                let noise_rate = noise_differs as f64 / noise.secondary_pairs.max(1) as f64;
                let source = if noise_differs > 0 && !beyond_noise(rate, noise_rate) {
                    Some(NoiseSource::Secondary)
                } else if noise.learned.contains(&field_hash("", &f.field)) {
                    Some(NoiseSource::Learned)
                } else {
                    None
                };
                FieldVerdict {
                    rate,
                    noise_differs,
                    noise_rate,
                    noise: source,
                    regressions: 0,
                }
            })
            .collect()
    }

    fn is_regression(&self, signature: &[u16], fields: &[FieldVerdict]) -> bool {
        signature
            .iter()
            .any(|&i| fields[usize::from(i)].noise.is_none())
    }

    /// The verdicts as of now.
    pub fn verdict(&self, noise: &EndpointNoise) -> EndpointVerdict {
        let mut fields = self.noise_of_fields(noise);
        let (mut regressions, mut noise_only) = self.judged_early;
        noise_only += self.noise_in_request;
        for (signature, &count) in &self.signatures {
            if !self.is_regression(signature, &fields) {
                noise_only += count;
                continue;
            }
            regressions += count;
            for &i in signature {
                let field = &mut fields[usize::from(i)];
                if field.noise.is_none() {
                    field.regressions += count;
                }
            }
        }
        EndpointVerdict {
            noise_only,
            regressions,
            fields,
        }
    }
}

/// Diffy's rule: the candidate's rate is beyond the noise when it is higher by more than the
/// relative and the absolute thresholds.
fn beyond_noise(rate: f64, noise_rate: f64) -> bool {
    let gap = rate - noise_rate;
    gap > 0.0 && gap / (rate + noise_rate) > RELATIVE_THRESHOLD && gap > ABSOLUTE_THRESHOLD
}

/// The value kept for `endpoint`, made on first use; once [`MAX_ENDPOINTS`] are kept, new
/// endpoints share [`OTHER_ENDPOINTS`].
pub fn per_endpoint<'a, V: Default>(map: &'a mut HashMap<String, V>, endpoint: &str) -> &'a mut V {
    let key = if map.contains_key(endpoint) || map.len() < MAX_ENDPOINTS {
        endpoint
    } else {
        OTHER_ENDPOINTS
    };
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("just made")
}

/// One candidate target's aggregates.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// Per endpoint.
    pub endpoints: HashMap<String, EndpointStats>,
    /// (original status, replayed status) → pairs.
    pub status_matrix: HashMap<(u16, u16), u64>,
}

impl TargetStats {
    /// The endpoint's aggregates (the overflow endpoint beyond [`MAX_ENDPOINTS`]).
    pub fn endpoint(&mut self, name: &str) -> &mut EndpointStats {
        per_endpoint(&mut self.endpoints, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(field: &str, kind: FieldKind) -> Difference {
        Difference {
            field: field.into(),
            kind,
            path: field.into(),
            original: "a".into(),
            replayed: "b".into(),
        }
    }

    fn example(d: &Difference) -> Example {
        Example {
            id: "1".into(),
            path: d.path.clone(),
            original_value: d.original.clone(),
            replayed_value: d.replayed.clone(),
            request: String::new(),
            original: String::new(),
            replayed: String::new(),
            diff: None,
        }
    }

    #[test]
    fn a_field_the_secondary_also_shows_is_noise_and_another_is_a_regression() {
        let mut noise = EndpointNoise::default();
        let mut e = EndpointStats::default();
        let mut budget = 10;
        for i in 0..100 {
            noise.secondary_pairs += 1;
            *noise.secondary_differs.entry("$.rid".into()).or_default() += 1;
            let mut d = vec![diff("$.rid", FieldKind::Body)];
            if i % 2 == 0 {
                d.push(diff("$.plan", FieldKind::Body));
            }
            let both = ["$.rid".to_string()];
            e.add_pair(
                &d,
                &both,
                (Some(1_000_000), Some(2_000_000)),
                &mut budget,
                example,
                &noise,
            );
        }
        let v = e.verdict(&noise);
        assert_eq!((v.regressions, v.noise_only), (50, 50));
        assert_eq!(v.fields[0].noise, Some(NoiseSource::Secondary));
        assert_eq!(v.fields[1].noise, None);
        assert_eq!(v.fields[1].regressions, 50);
        assert_eq!(budget, 8);
        assert_eq!(e.body_differs, 100);
    }

    #[test]
    fn learned_noise_and_unexplained_rates() {
        let mut noise = EndpointNoise::default();
        noise.learned.insert(field_hash("", "$.time"));
        noise.secondary_pairs = 100;
        noise.secondary_differs.insert("$.flaky".into(), 5);
        let mut e = EndpointStats::default();
        let mut budget = 0;
        let none: [String; 0] = [];
        for _ in 0..100 {
            let d = [
                diff("$.time", FieldKind::Body),
                diff("$.flaky", FieldKind::Body),
            ];
            e.add_pair(&d, &none, (None, None), &mut budget, example, &noise);
        }
        let v = e.verdict(&noise);
        assert_eq!(v.fields[0].noise, Some(NoiseSource::Learned));
        // 100 % against a 5 % noise rate: beyond the noise.
        assert_eq!(v.fields[1].noise, None);
        assert_eq!(v.regressions, 100);
        assert!(e.fields.iter().all(|f| f.example.is_none()));
    }

    #[test]
    fn signatures_and_fields_stay_bounded() {
        let noise = EndpointNoise::default();
        let mut e = EndpointStats::default();
        let mut budget = 0;
        let none: [String; 0] = [];
        for i in 0..5000 {
            let d = [diff(&format!("$.f{i}"), FieldKind::Body)];
            e.add_pair(&d, &none, (None, None), &mut budget, example, &noise);
        }
        assert!(e.fields.len() <= MAX_FIELDS + 1);
        assert!(e.signatures.len() <= MAX_SIGNATURES);
        assert_eq!(e.verdict(&noise).regressions, 5000);
        let mut t = TargetStats::default();
        for i in 0..MAX_ENDPOINTS + 10 {
            t.endpoint(&format!("GET /{i}")).pairs += 1;
        }
        assert_eq!(t.endpoints.len(), MAX_ENDPOINTS + 1);
        assert_eq!(t.endpoints[OTHER_ENDPOINTS].pairs, 10);
    }
}
