//! Replay pacing, the one implementation every replaying input uses (`--input-file`'s
//! `|200%` and `--input-file-speed`, `--input-pcap-speed`, `--input-kafka-offset N|200%`).
//!
//! A [`Pacer`] takes each message's original timestamp and says when it is due: the gap to
//! the previous timestamp, divided by the speed (2.0 = twice as fast) and capped by an
//! optional longest wait, added to the previous message's deadline. The first message is due
//! at once, so a capture from last year starts now. A timestamp earlier than the latest one
//! seen (out of order) is due at once and does not move the clock back. When the pipeline
//! held the input back, the deadlines it missed are caught up at most [`MAX_CATCH_UP`] late,
//! so a stall is not followed by a burst of everything that would have been sent meanwhile.
//!
//! [`RatePacer`] spaces events evenly instead (`--output-http-rate N`: N a second).
//!
//! [`Gaps`] is the arithmetic alone (no clock), for summaries such as `--input-file-dry-run`;
//! [`parse_speed`] is the value grammar of every speed flag.

use crate::plugin::Shutdown;
use std::time::{Duration, Instant};

/// Waits shorter than this are not slept (a sleep costs more than it is worth).
pub const MIN_SLEEP: Duration = Duration::from_micros(100);

/// How far behind its schedule a pacer lets itself fall before it forgets the missed time.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// A speed flag's value that is not a positive factor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid speed {text:?} (examples: {examples})")]
pub struct SpeedError {
    /// The value given.
    pub text: String,
    /// Valid examples for the flag.
    pub examples: &'static str,
}

/// Reads a speed factor: `2x`, `2X`, `200%` or `2` (twice as fast), `0.5` or `50%` (half).
/// Zero, negative, infinite and unreadable values are refused.
pub fn parse_speed(text: &str) -> Result<f64, SpeedError> {
    let trimmed = text.trim();
    let (number, scale) = match trimmed.strip_suffix('%') {
        Some(n) => (n, 0.01),
        None => (trimmed.strip_suffix(['x', 'X']).unwrap_or(trimmed), 1.0),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| SpeedError {
            text: text.to_string(),
            examples: "2x, 200%, 0.5",
        })
}

/// The scaled, capped gap before each timestamp, given the ones before it.
#[derive(Debug, Clone)]
pub struct Gaps {
    speed: f64,
    max_wait: Duration,
    last: Option<i64>,
}

impl Gaps {
    /// Gaps at `speed` (a factor that is not positive and finite counts as 1), never longer
    /// than `max_wait` (zero: no cap).
    pub fn new(speed: f64, max_wait: Duration) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Gaps {
            speed,
            max_wait,
            last: None,
        }
    }

    /// The wait before the message stamped `timestamp_ns`: `None` for the first one and for
    /// one older than the latest seen (which is kept).
    pub fn next(&mut self, timestamp_ns: i64) -> Option<Duration> {
        let last = self.last.replace(timestamp_ns)?;
        if timestamp_ns < last {
            self.last = Some(last);
            return None;
        }
        let scaled = (timestamp_ns.abs_diff(last) as f64 / self.speed) as u64;
        let wait = Duration::from_nanos(scaled);
        Some(if self.max_wait.is_zero() {
            wait
        } else {
            wait.min(self.max_wait)
        })
    }
}

/// Says when each message of a timed stream is due, and sleeps until then.
#[derive(Debug, Clone)]
pub struct Pacer {
    gaps: Gaps,
    deadline: Option<Instant>,
}

impl Pacer {
    /// Paces at `speed` (2.0 = twice as fast; not positive and finite: 1).
    pub fn new(speed: f64) -> Self {
        Pacer {
            gaps: Gaps::new(speed, Duration::ZERO),
            deadline: None,
        }
    }

    /// The same pacer, never waiting longer than `max_wait` between two messages (zero: no
    /// cap).
    pub fn with_max_wait(self, max_wait: Duration) -> Self {
        Pacer {
            gaps: Gaps::new(self.gaps.speed, max_wait),
            ..self
        }
    }

    /// When the message stamped `timestamp_ns` is due, if that is worth sleeping for
    /// (`None`: send it now).
    pub fn due(&mut self, timestamp_ns: i64) -> Option<Instant> {
        self.due_from(timestamp_ns, Instant::now())
    }

    /// [`Pacer::due`] with the current time given.
    pub fn due_from(&mut self, timestamp_ns: i64, now: Instant) -> Option<Instant> {
        let deadline = match (self.gaps.next(timestamp_ns), self.deadline) {
            (Some(wait), Some(previous)) => previous + wait,
            _ => now,
        };
        let floor = now.checked_sub(MAX_CATCH_UP).unwrap_or(now);
        self.deadline = Some(deadline.max(floor));
        (deadline > now + MIN_SLEEP).then_some(deadline)
    }

    /// Sleeps until the message stamped `timestamp_ns` is due; false if shutdown began
    /// (before or while sleeping).
    pub fn wait(&mut self, timestamp_ns: i64, shutdown: &Shutdown) -> bool {
        match self.due(timestamp_ns) {
            Some(deadline) => shutdown.sleep_until(deadline),
            None => !shutdown.is_triggered(),
        }
    }
}

/// Spaces events `1/rate` seconds apart, however many threads take turns at it (behind a
/// lock): each [`RatePacer::reserve`] takes the next free slot. Slots missed while nobody
/// asked are not made up for later.
#[derive(Debug, Clone)]
pub struct RatePacer {
    interval: Duration,
    next: Option<Instant>,
}

/// The longest interval a [`RatePacer`] keeps (a rate of less than one event a day is one a
/// day), so that no slot lies beyond what a clock can hold.
const LONGEST_INTERVAL: Duration = Duration::from_secs(86_400);

impl RatePacer {
    /// `per_second` events a second (not positive and finite: no spacing at all).
    pub fn new(per_second: f64) -> Self {
        let interval = if per_second.is_finite() && per_second > 0.0 {
            Duration::try_from_secs_f64(1.0 / per_second)
                .unwrap_or(LONGEST_INTERVAL)
                .min(LONGEST_INTERVAL)
        } else {
            Duration::ZERO
        };
        RatePacer {
            interval,
            next: None,
        }
    }

    /// Reserves the next slot; returns how long to wait for it.
    pub fn reserve(&mut self) -> Duration {
        self.reserve_from(Instant::now())
    }

    /// [`RatePacer::reserve`] with the current time given.
    pub fn reserve_from(&mut self, now: Instant) -> Duration {
        let slot = self.next.map_or(now, |next| next.max(now));
        self.next = Some(slot + self.interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn speeds_parse() {
        assert_eq!(parse_speed("2x"), Ok(2.0));
        assert_eq!(parse_speed(" 2X "), Ok(2.0));
        assert_eq!(parse_speed("200%"), Ok(2.0));
        assert_eq!(parse_speed("50 %"), Ok(0.5));
        assert_eq!(parse_speed("0.5"), Ok(0.5));
        for bad in ["0", "-1", "0%", "inf", "NaN", "fast", "", "%", "x", "1e400"] {
            let err = parse_speed(bad).unwrap_err();
            assert_eq!(err.text, bad);
            assert!(err.to_string().starts_with("invalid speed"), "{err}");
        }
    }

    #[test]
    fn gaps_scale_cap_and_skip_backwards() {
        let mut gaps = Gaps::new(2.0, Duration::from_millis(300));
        assert_eq!(gaps.next(0), None);
        assert_eq!(gaps.next(400 * MS), Some(Duration::from_millis(200)));
        assert_eq!(gaps.next(100), None);
        assert_eq!(gaps.next(2_400 * MS), Some(Duration::from_millis(300)));
    }

    #[test]
    fn gaps_survive_extreme_timestamps_and_bad_speeds() {
        let mut gaps = Gaps::new(0.0, Duration::ZERO);
        assert_eq!(gaps.next(i64::MIN), None);
        assert!(gaps.next(i64::MAX).is_some());
        let mut nan = Gaps::new(f64::NAN, Duration::ZERO);
        nan.next(0);
        assert_eq!(nan.next(5 * MS), Some(Duration::from_millis(5)));
    }

    #[test]
    fn deadlines_follow_the_original_spacing_divided_by_speed() {
        let mut pacer = Pacer::new(2.0);
        let start = Instant::now();
        assert_eq!(
            pacer.due_from(1_000 * MS, start),
            None,
            "the first is due now"
        );
        assert_eq!(
            pacer.due_from(1_100 * MS, start),
            Some(start + Duration::from_millis(50))
        );
        // Deadlines add up from the previous deadline, not from when the caller asks.
        assert_eq!(
            pacer.due_from(1_300 * MS, start + Duration::from_millis(50)),
            Some(start + Duration::from_millis(150))
        );
        // Out of order: due at once; the clock does not go back.
        assert_eq!(pacer.due_from(0, start + Duration::from_millis(150)), None);
        assert_eq!(
            pacer.due_from(1_500 * MS, start + Duration::from_millis(150)),
            Some(start + Duration::from_millis(250))
        );
    }

    #[test]
    fn max_wait_caps_each_gap() {
        let mut pacer = Pacer::new(1.0).with_max_wait(Duration::from_millis(10));
        let start = Instant::now();
        pacer.due_from(0, start);
        assert_eq!(
            pacer.due_from(60_000 * MS, start),
            Some(start + Duration::from_millis(10))
        );
    }

    #[test]
    fn a_stall_is_caught_up_at_most_max_catch_up_late() {
        let mut pacer = Pacer::new(1.0);
        let start = Instant::now();
        pacer.due_from(0, start);
        // Held back ten seconds: the missed schedule is forgotten beyond MAX_CATCH_UP.
        let later = start + Duration::from_secs(10);
        assert_eq!(pacer.due_from(10 * MS, later), None);
        let expected = later - MAX_CATCH_UP + Duration::from_millis(1_500);
        assert_eq!(pacer.due_from(1_510 * MS, later), Some(expected));
    }

    #[test]
    fn tiny_gaps_are_not_slept() {
        let mut pacer = Pacer::new(1.0);
        let start = Instant::now();
        pacer.due_from(0, start);
        assert_eq!(pacer.due_from(50_000, start), None);
    }

    #[test]
    fn wait_sleeps_and_stops_at_shutdown() {
        let (trigger, shutdown) = Shutdown::new();
        let mut pacer = Pacer::new(1.0);
        let started = Instant::now();
        assert!(pacer.wait(0, &shutdown));
        assert!(pacer.wait(30 * MS, &shutdown));
        assert!(started.elapsed() >= Duration::from_millis(30));
        trigger.trigger();
        let stopped = Instant::now();
        assert!(!pacer.wait(10_000 * MS, &shutdown));
        assert!(!pacer.wait(10_000 * MS + 1, &shutdown));
        assert!(stopped.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn rate_pacer_hands_out_evenly_spaced_slots() {
        let mut pacer = RatePacer::new(100.0);
        let start = Instant::now();
        let waits: Vec<Duration> = (0..3).map(|_| pacer.reserve_from(start)).collect();
        assert_eq!(
            waits,
            [0, 10, 20].map(Duration::from_millis),
            "three callers at once"
        );
        // Idle for a second: the slots missed meanwhile are not made up for.
        let later = start + Duration::from_secs(1);
        assert_eq!(pacer.reserve_from(later), Duration::ZERO);
        assert_eq!(pacer.reserve_from(later), Duration::from_millis(10));
    }

    #[test]
    fn rate_pacer_survives_extreme_rates() {
        let now = Instant::now();
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut pacer = RatePacer::new(rate);
            assert_eq!(pacer.reserve_from(now), Duration::ZERO);
            assert_eq!(pacer.reserve_from(now), Duration::ZERO, "{rate}");
        }
        let mut slow = RatePacer::new(1e-300);
        slow.reserve_from(now);
        assert_eq!(slow.reserve_from(now), LONGEST_INTERVAL);
    }

    #[test]
    fn rate_pacer_spaces_real_time() {
        let mut pacer = RatePacer::new(100.0);
        let started = Instant::now();
        for _ in 0..11 {
            std::thread::sleep(pacer.reserve());
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(95), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
}
