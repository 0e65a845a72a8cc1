//! The dry-run summary: the waits a replay would make (the gaps of
//! `shadowtap_api::pacing`, scaled by speed and capped by max-wait), added up.

use crate::merge::Merger;
use shadowtap_api::pacing::Gaps;
use std::time::Duration;

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
}
