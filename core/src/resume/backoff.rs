//! Full-jitter exponential back-off with a deterministic, seeded generator.

use std::time::Duration;

use super::BackoffConfig;

/// The pause before each retry: full-jitter exponential back-off (a delay drawn
/// between zero and a ceiling that grows with each consecutive failure), with a
/// small seeded generator (SplitMix64) for the jitter. The reader's machine backs off
/// with it, and drivers retrying appends use it too, so that many clients that
/// failed together do not retry in step.
///
/// ```
/// use std::time::Duration;
/// use gapless_core::resume::{Backoff, BackoffConfig};
///
/// let mut backoff = Backoff::new(BackoffConfig::default(), 42);
/// let first = backoff.next_delay(None);
/// assert!(first <= Duration::from_millis(100));
/// // A server's `Retry-After` is a floor.
/// assert!(backoff.next_delay(Some(Duration::from_secs(2))) >= Duration::from_secs(2));
/// backoff.reset();
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    state: u64,
}

impl Backoff {
    /// A back-off on the schedule `cfg`, its jitter drawn from `seed` (give each
    /// client its own).
    pub fn new(cfg: BackoffConfig, seed: u64) -> Self {
        Backoff {
            cfg,
            attempt: 0,
            state: seed,
        }
    }

    /// Forgets past failures: the next delay starts from the initial ceiling again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        let grown =
            self.cfg.initial.as_secs_f64() * self.cfg.factor.powi(self.attempt.min(1_000) as i32);
        let capped = grown.min(self.cfg.max.as_secs_f64());
        if capped.is_finite() && capped >= 0.0 {
            // In nanoseconds by hand: Duration's float conversions are large in the
            // browser package. The cast saturates; `max` bounds it anyway.
            Duration::from_nanos((capped * 1e9) as u64)
        } else {
            self.cfg.max
        }
    }

    /// The delay before the next retry, at least `floor`; counts one more failure.
    pub fn next_delay(&mut self, floor: Option<Duration>) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let jittered = Duration::from_nanos((ceiling.as_nanos() as f64 * unit) as u64);
        // A server's `Retry-After` is a floor, up to the schedule's ceiling: one that
        // asks for a year does not stall the reader for one.
        floor.map_or(jittered, |f| jittered.max(f.min(self.cfg.max)))
    }

    /// As [`Backoff::next_delay`], but at least half the ceiling ("equal jitter"):
    /// for retries counted against a limit, whose pauses must add up to about the
    /// schedule's time (full jitter halves it, on average).
    pub fn next_delay_at_least_half(&mut self, floor: Option<Duration>) -> Duration {
        let half = self.ceiling() / 2;
        let jittered = half + self.next_delay(None) / 2;
        floor.map_or(jittered, |f| jittered.max(f.min(self.cfg.max)))
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_at_least_half_stay_between_half_the_ceiling_and_it() {
        let mut b = Backoff::new(BackoffConfig::default(), 7);
        for _ in 0..50 {
            let c = b.ceiling();
            let d = b.next_delay_at_least_half(None);
            assert!(d >= c / 2 && d <= c, "{d:?} not within half of {c:?}");
        }
        let floor = Duration::from_secs(3);
        assert!(b.next_delay_at_least_half(Some(floor)) >= floor);
    }

    #[test]
    fn ceilings_grow_by_factor_and_cap() {
        let mut b = Backoff::new(BackoffConfig::default(), 1);
        let mut last = Duration::ZERO;
        for n in 0..100 {
            let c = b.ceiling();
            let d = b.next_delay(None);
            assert!(d <= c, "delay {d:?} above ceiling {c:?}");
            assert!(c >= last);
            assert!(c <= Duration::from_secs(60));
            if n == 0 {
                assert_eq!(c, Duration::from_millis(100));
            }
            last = c;
        }
        assert_eq!(last, Duration::from_secs(60));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn retry_after_is_a_floor_and_jitter_is_spread() {
        let mut b = Backoff::new(BackoffConfig::default(), 42);
        assert!(b.next_delay(Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        // Up to the schedule's ceiling.
        let year = Duration::from_secs(365 * 24 * 3600);
        assert_eq!(b.next_delay(Some(year)), BackoffConfig::default().max);
        let mut b = Backoff::new(BackoffConfig::default(), 42);
        let delays: Vec<Duration> = (0..50)
            .map(|_| {
                let d = b.next_delay(None);
                b.reset();
                d
            })
            .collect();
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 40, "jitter should vary: {delays:?}");
    }

    #[test]
    fn same_seed_same_schedule() {
        let run = |seed| {
            let mut b = Backoff::new(BackoffConfig::default(), seed);
            (0..10).map(|_| b.next_delay(None)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
