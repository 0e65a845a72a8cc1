//! Warnings a peer can provoke at will, written at a bounded rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    held: u64,
}

/// One line per `interval`; lines held back in between are reported as "N more like this".
#[derive(Debug)]
pub struct Warnings {
    source: &'static str,
    interval: Duration,
    state: Mutex<State>,
}

impl Warnings {
    /// Warnings of `source` (a plugin name), at most one line per `interval`.
    pub fn new(source: &'static str, interval: Duration) -> Self {
        Warnings {
            source,
            interval,
            state: Mutex::default(),
        }
    }

    /// Writes `what` unless a line was written less than an interval ago.
    pub fn warn(&self, what: impl FnOnce() -> String) {
        let mut state = self.state.lock().expect("warnings lock");
        let now = Instant::now();
        if state
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            state.held += 1;
            return;
        }
        let held = std::mem::take(&mut state.held);
        state.last = Some(now);
        drop(state);
        let line = what();
        if held > 0 {
            tracing::warn!("{}: {held} more like this", self.source);
        }
        tracing::warn!("{}: {line}", self.source);
    }

    /// Reports the lines still held back (at the end of a run).
    pub fn finish(&self) {
        let held = std::mem::take(&mut self.state.lock().expect("warnings lock").held);
        if held > 0 {
            tracing::warn!("{}: {held} more like this", self.source);
        }
    }
}

impl Default for Warnings {
    fn default() -> Self {
        Warnings::new("listener", Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_within_an_interval() {
        let warnings = Warnings::new("x", Duration::from_secs(60));
        let mut written = 0;
        for _ in 0..100 {
            warnings.warn(|| {
                written += 1;
                "bad".into()
            });
        }
        assert_eq!(written, 1);
        assert_eq!(warnings.state.lock().unwrap().held, 99);
        warnings.finish();
        assert_eq!(warnings.state.lock().unwrap().held, 0);
    }
}
