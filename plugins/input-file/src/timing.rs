//! Replay timing: original gaps between records, scaled by speed and capped by max-wait,
//! and the dry-run summary that adds them up.

use crate::merge::Merger;
use shadowtap_api::Shutdown;
use std::time::{Duration, Instant};

/// Gaps shorter than this are not slept (a sleep costs more than it is worth).
const MIN_SLEEP: Duration = Duration::from_micros(100);

/// The wait before a record whose timestamp is `timestamp`, given the previous one.
#[derive(Debug)]
struct Gaps {
    speed: f64,
    max_wait: Duration,
    last: Option<i64>,
}

impl Gaps {
    fn new(speed: f64, max_wait: Duration) -> Self {
        Gaps {
            speed,
            max_wait,
            last: None,
        }
    }

    /// `None` for the first record and for out-of-order timestamps (no wait).
    fn next(&mut self, timestamp: i64) -> Option<Duration> {
        let last = self.last.replace(timestamp)?;
        if timestamp < last {
            self.last = Some(last);
            return None;
        }
        let mut wait = Duration::from_nanos(((timestamp - last) as f64 / self.speed) as u64);
        if !self.max_wait.is_zero() {
            wait = wait.min(self.max_wait);
        }
        Some(wait)
    }
}

/// Sleeps between records so they leave with their original spacing.
pub struct Pacer {
    gaps: Gaps,
    deadline: Option<Instant>,
}

impl Pacer {
    /// Paces at `speed` (2.0 = twice as fast), never waiting more than `max_wait` (0 = no cap).
    pub fn new(speed: f64, max_wait: Duration) -> Self {
        Pacer {
            gaps: Gaps::new(speed, max_wait),
            deadline: None,
        }
    }

    /// Waits until the record stamped `timestamp` is due; false if shutdown began.
    pub fn wait_for(&mut self, timestamp: i64, shutdown: &Shutdown) -> bool {
        let now = Instant::now();
        let deadline = match (self.gaps.next(timestamp), self.deadline) {
            (Some(wait), Some(previous)) => previous + wait,
            _ => now,
        };
        self.deadline = Some(deadline.max(now - Duration::from_secs(1)));
        if deadline > now + MIN_SLEEP {
            return shutdown.sleep_until(deadline);
        }
        !shutdown.is_triggered()
    }
}

/// What `--input-file-dry-run` prints.
#[derive(Debug, Default)]
pub struct DryRunSummary {
    /// Files processed.
    pub files: u64,
    records: u64,
    bytes: u64,
    out_of_order: u64,
    total_wait: Duration,
    max_wait: Option<Duration>,
    min_wait: Option<Duration>,
    first_wait: Option<Duration>,
}

impl DryRunSummary {
    /// Reads every record of `merger` and adds up the waits a replay would make.
    pub fn read_all(&mut self, merger: &mut Merger, speed: f64, max_wait: Duration) {
        let mut gaps = Gaps::new(speed, max_wait);
        let mut first = true;
        while let Some(msg) = merger.next_message() {
            self.records += 1;
            match gaps.next(msg.meta.timestamp()) {
                Some(wait) => self.add_wait(wait),
                None if !first => self.out_of_order += 1,
                None => {}
            }
            first = false;
        }
        self.bytes += merger.totals().1;
    }

    fn add_wait(&mut self, wait: Duration) {
        self.first_wait.get_or_insert(wait);
        self.total_wait += wait;
        self.max_wait = Some(self.max_wait.map_or(wait, |m| m.max(wait)));
        self.min_wait = Some(self.min_wait.map_or(wait, |m| m.min(wait)));
    }

    /// The summary in GoReplay's wording.
    pub fn render(&self) -> String {
        let longest_go_duration = Duration::from_nanos(i64::MAX as u64);
        format!(
            "Records found: {}\nFiles processed: {}\nBytes processed: {}\nMax wait: {}\nMin wait: {}\nFirst wait: {}\nIt will take `{}` to replay at current speed.\nFound {} records with out of order timestamp\n",
            self.records,
            self.files,
            self.bytes,
            go_duration(self.max_wait.unwrap_or_default()),
            go_duration(self.min_wait.unwrap_or(longest_go_duration)),
            go_duration(self.first_wait.unwrap_or_default()),
            go_duration(self.total_wait),
            self.out_of_order,
        )
    }
}

/// Formats a duration as Go's `time.Duration.String` does (`1h2m3.5s`, `1.5ms`, `0s`).
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = match nanos {
            n if n < 1_000 => ("ns", 1),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(10)), "10ns");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(
            go_duration(Duration::from_nanos(i64::MAX as u64)),
            "2562047h47m16.854775807s"
        );
    }

    #[test]
    fn gaps_scale_cap_and_skip_backwards() {
        let mut gaps = Gaps::new(2.0, Duration::from_millis(300));
        assert_eq!(gaps.next(0), None);
        assert_eq!(gaps.next(400_000_000), Some(Duration::from_millis(200)));
        assert_eq!(gaps.next(100), None);
        assert_eq!(gaps.next(2_400_000_000), Some(Duration::from_millis(300)));
    }
}
