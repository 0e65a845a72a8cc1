//! Reporting the ledger: the summary line at exit and the periodic `--stats` line, as text
//! or (`--stats-format json`) one JSON object per line.

use crate::cli::StatsFormat;
use shadowtap_api::ledger::Snapshot;
use shadowtap_api::Ledger;
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Prints `[stats] <summary> || <rates>` to stderr every `interval` until `stop` is dropped:
/// the totals, then per plugin (and per capture worker) messages/s in and out, packets/s and
/// drops/s over the last interval. With JSON, each is followed by `{"event":"stats",…}`.
pub fn start_stats(
    ledger: Arc<Ledger>,
    interval: Duration,
    format: StatsFormat,
) -> (crossbeam_channel::Sender<()>, JoinHandle<()>) {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let handle = thread::Builder::new()
        .name("stats".into())
        .spawn(move || {
            let mut previous = (Instant::now(), ledger.snapshot());
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stop_rx.recv_timeout(interval)
            {
                let now = (Instant::now(), ledger.snapshot());
                let seconds = now.0.duration_since(previous.0).as_secs_f64().max(1e-3);
                eprintln!(
                    "[stats] {} || {}",
                    ledger.summary(),
                    rates(&previous.1, &now.1, seconds)
                );
                if format == StatsFormat::Json {
                    eprintln!("{}", ledger.summary_json("stats"));
                }
                previous = now;
            }
        })
        .expect("spawn stats thread");
    (stop_tx, handle)
}

/// `label in X/s out Y/s [packets Z/s] [dropped W/s]` for every plugin, over `seconds`.
pub fn rates(before: &[Snapshot], after: &[Snapshot], seconds: f64) -> String {
    let earlier: HashMap<&str, &Snapshot> = before.iter().map(|s| (s.label.as_str(), s)).collect();
    let per_second = |now: u64, then: u64| (now.saturating_sub(then)) as f64 / seconds;
    after
        .iter()
        .map(|now| {
            let then = earlier.get(now.label.as_str());
            let field = |f: fn(&Snapshot) -> u64| per_second(f(now), then.map_or(0, |t| f(t)));
            let mut text = format!(
                "{} in {:.0}/s out {:.0}/s",
                now.label,
                field(|s| s.received),
                field(|s| s.passed)
            );
            let packets = |s: &Snapshot| {
                s.extra
                    .iter()
                    .find(|(n, _)| n == "packets")
                    .map_or(0, |(_, v)| *v)
            };
            if now.extra.iter().any(|(n, _)| n == "packets") {
                text.push_str(&format!(
                    " packets {:.0}/s",
                    per_second(packets(now), then.map_or(0, |t| packets(t)))
                ));
            }
            let dropped = field(Snapshot::dropped);
            if dropped > 0.0 {
                text.push_str(&format!(" dropped {dropped:.0}/s"));
            }
            text
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The final line printed to stderr at exit (with JSON, followed by the JSON summary).
pub fn final_summary(ledger: &Ledger, format: StatsFormat) -> String {
    let text = format!("shadowtap: {}", ledger.summary());
    match format {
        StatsFormat::Text => text,
        StatsFormat::Json => format!("{text}\n{}", ledger.summary_json("summary")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::{Reason, Role};

    #[test]
    fn json_summary_follows_the_text_line_and_balances() {
        let ledger = Ledger::new();
        let input = ledger.register("input-file[a.gor]", Role::Input);
        input.add_refused(Reason::Malformed, 1);
        input.add_in(2);
        input.add_out(2);
        let text = final_summary(&ledger, StatsFormat::Json);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("shadowtap: input-file[a.gor] in 3 out 2"));
        assert!(lines[1].starts_with(r#"{"event":"summary""#), "{text}");
        shadowtap_api::testkit::assert_ledger_balances(lines[1]);
        assert_eq!(final_summary(&ledger, StatsFormat::Text), lines[0]);
    }
}
