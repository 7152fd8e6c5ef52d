//! Latency summaries (percentiles of measured durations) and medians of repeated runs.

use std::time::Duration;

/// The shape of a set of latency samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    /// How many samples.
    pub count: usize,
    /// The median, in milliseconds.
    pub p50_ms: f64,
    /// The 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// The largest sample, in milliseconds.
    pub max_ms: f64,
}

impl Latency {
    /// Summarises `samples` (sorted here; empty gives zeros).
    ///
    /// ```
    /// use std::time::Duration;
    /// use gapless_tests::bench::stats::Latency;
    ///
    /// let samples = (1..=100).map(Duration::from_millis).collect();
    /// let l = Latency::of(samples);
    /// assert_eq!((l.count, l.p50_ms, l.p99_ms, l.max_ms), (100, 50.0, 99.0, 100.0));
    /// ```
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            // Nearest-rank percentile.
            let rank = (q * samples.len() as f64).ceil().max(1.0) as usize;
            ms(samples[rank.min(samples.len()) - 1])
        };
        Latency {
            count: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }
}

/// A duration in (fractional) milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of `values` (the lower middle for an even count); `None` when empty.
///
/// ```
/// use gapless_tests::bench::stats::median;
///
/// assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
/// assert_eq!(median(&[]), None);
/// ```
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[(v.len() - 1) / 2])
}
