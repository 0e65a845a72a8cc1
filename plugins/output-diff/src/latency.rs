//! Latency percentiles in fixed memory: a log-linear histogram of microseconds (16 buckets per
//! power of two, so a percentile is within about 6 % of the truth), 1 µs to about 19 hours.

/// Buckets per power of two.
const SUB: u64 = 16;
/// Powers of two covered beyond the first 16 µs.
const POWERS: usize = 36;
const BUCKETS: usize = SUB as usize * (POWERS + 1);

/// A latency histogram.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u32; BUCKETS]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

impl Histogram {
    /// Adds one latency, in nanoseconds (negative ones are counted as 0).
    pub fn add(&mut self, nanos: i64) {
        let micros = (nanos.max(0) / 1000) as u64;
        let slot = &mut self.counts[bucket(micros)];
        *slot = slot.saturating_add(1);
        self.total += 1;
    }

    /// Samples added.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..1) in milliseconds; `None` without samples.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Some(midpoint(i) / 1000.0);
            }
        }
        Some(midpoint(BUCKETS - 1) / 1000.0)
    }
}

fn bucket(micros: u64) -> usize {
    if micros < SUB {
        return micros as usize;
    }
    let power = 63 - micros.leading_zeros() as u64; // ≥ 4
    let shift = power - 4;
    let sub = (micros >> shift) - SUB;
    let index = (shift + 1) * SUB + sub;
    (index as usize).min(BUCKETS - 1)
}

/// The middle of bucket `i`, in microseconds.
fn midpoint(i: usize) -> f64 {
    let i = i as u64;
    if i < SUB {
        return i as f64;
    }
    let shift = i / SUB - 1;
    let low = (SUB + i % SUB) << shift;
    low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_close() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in 1..=1000 {
            h.add(ms * 1_000_000);
        }
        for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = h.quantile_ms(q).unwrap();
            assert!((got - want).abs() / want < 0.07, "p{q}: {got} vs {want}");
        }
        h.add(-5);
        h.add(i64::MAX);
        assert_eq!(h.count(), 1002);
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for micros in 0..100_000u64 {
            let b = bucket(micros);
            assert!(b >= last);
            assert!(midpoint(b) <= micros as f64 * 1.07 + 1.0);
            last = b;
        }
    }
}
