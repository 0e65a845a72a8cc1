//! The load guard for sharing a busy host: capture pauses while the process uses more CPU or
//! memory than allowed, or outside its sampling windows (`--capture-max-cpu`,
//! `--capture-max-rss`, `--capture-sample 60s/10s`). Paused packets are counted, not hidden.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits the guard enforces.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GuardConfig {
    /// Percent of one core the whole process may use (averaged over the check interval).
    pub max_cpu_percent: Option<f64>,
    /// Resident memory the process may use, in bytes.
    pub max_rss_bytes: Option<u64>,
    /// Capture only during the first `.1` of every `.0`.
    pub sample: Option<(Duration, Duration)>,
}

impl GuardConfig {
    /// True when any limit is set.
    pub fn is_active(&self) -> bool {
        self.max_cpu_percent.is_some() || self.max_rss_bytes.is_some() || self.sample.is_some()
    }
}

const RUNNING: u8 = 0;
const CPU: u8 = 1;
const MEMORY: u8 = 2;
const SAMPLING: u8 = 3;
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A handle on the guard's current verdict (cheap to clone and to ask).
#[derive(Clone, Debug)]
pub struct LoadGuard {
    state: Arc<AtomicU8>,
}

impl LoadGuard {
    /// Starts the monitor thread for `config`.
    pub fn start(config: GuardConfig) -> LoadGuard {
        let state = Arc::new(AtomicU8::new(RUNNING));
        let shared = state.clone();
        std::thread::Builder::new()
            .name("load-guard".into())
            .spawn(move || monitor(config, &shared))
            .expect("spawn the load guard");
        LoadGuard { state }
    }

    /// `Some(why)` while capture is paused: `"cpu"`, `"memory"` or `"sampling"`.
    pub fn paused(&self) -> Option<&'static str> {
        match self.state.load(Relaxed) {
            CPU => Some("cpu"),
            MEMORY => Some("memory"),
            SAMPLING => Some("sampling"),
            _ => None,
        }
    }
}

fn monitor(config: GuardConfig, state: &AtomicU8) {
    let started = Instant::now();
    let mut last = (Instant::now(), cpu_ticks());
    loop {
        std::thread::sleep(CHECK_EVERY);
        let now = (Instant::now(), cpu_ticks());
        let cpu_percent = cpu_percent(last, now);
        last = now;
        let verdict = if config.max_rss_bytes.is_some_and(|max| rss_bytes() > max) {
            MEMORY
        } else if config.max_cpu_percent.is_some_and(|max| cpu_percent > max) {
            CPU
        } else if config
            .sample
            .is_some_and(|(every, window)| !in_window(started.elapsed(), every, window))
        {
            SAMPLING
        } else {
            RUNNING
        };
        state.store(verdict, Relaxed);
    }
}

fn in_window(elapsed: Duration, every: Duration, window: Duration) -> bool {
    let every = every.as_nanos().max(1);
    elapsed.as_nanos() % every < window.as_nanos()
}

fn cpu_percent((t0, ticks0): (Instant, u64), (t1, ticks1): (Instant, u64)) -> f64 {
    let seconds = t1.duration_since(t0).as_secs_f64().max(1e-3);
    let ticks_per_second = 100.0;
    ticks1.saturating_sub(ticks0) as f64 / ticks_per_second / seconds * 100.0
}

/// User + system CPU time of this process in clock ticks (USER_HZ, 100 on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Resident set size of this process.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Parses `INTERVAL/DURATION` (e.g. `60s/10s`).
pub fn parse_sample(text: &str) -> Result<(Duration, Duration), String> {
    let (every, window) = text.split_once('/').ok_or_else(|| {
        format!("invalid sample {text:?} (expected INTERVAL/DURATION, e.g. 60s/10s)")
    })?;
    let every = shadowtap_api::values::parse_duration(every)?;
    let window = shadowtap_api::values::parse_duration(window)?;
    if every.is_zero() || window > every {
        return Err(format!(
            "invalid sample {text:?}: the duration must be within the interval"
        ));
    }
    Ok((every, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_windows() {
        let every = Duration::from_secs(60);
        let window = Duration::from_secs(10);
        assert!(in_window(Duration::from_secs(5), every, window));
        assert!(!in_window(Duration::from_secs(15), every, window));
        assert!(in_window(Duration::from_secs(65), every, window));
        assert_eq!(parse_sample("60s/10s"), Ok((every, window)));
        assert!(parse_sample("10s/60s").is_err());
        assert!(parse_sample("60s").is_err());
    }

    #[test]
    fn process_counters_are_readable() {
        assert!(rss_bytes() > 0);
        let _ = cpu_ticks();
    }

    #[test]
    fn memory_limit_pauses() {
        let guard = LoadGuard::start(GuardConfig {
            max_rss_bytes: Some(1),
            ..GuardConfig::default()
        });
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(guard.paused(), Some("memory"));
    }
}
