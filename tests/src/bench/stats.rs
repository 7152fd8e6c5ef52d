//! Latency summaries (percentiles of measured durations) and medians of repeated runs.

use std::time::Duration;

use super::arrival::Stamps;

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

/// One delivery's latencies: from its sending to its being read, and to its arrival
/// (when the kernel gave a receive time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// From sending to reading.
    pub read: Duration,
    /// From sending to arriving in the reader's socket.
    pub arrived: Option<Duration>,
}

impl Delivery {
    /// The delivery of what was sent at `sent` and read at `stamps` (one clock).
    ///
    /// ```
    /// use std::time::Duration;
    /// use gapless_tests::bench::arrival::Stamps;
    /// use gapless_tests::bench::stats::Delivery;
    ///
    /// let ms = Duration::from_millis;
    /// let d = Delivery::of(ms(10), Stamps { read: ms(13), arrived: Some(ms(11)) });
    /// assert_eq!((d.read, d.arrived), (ms(3), Some(ms(1))));
    /// ```
    pub fn of(sent: Duration, stamps: Stamps) -> Delivery {
        Delivery {
            read: stamps.read.saturating_sub(sent),
            arrived: stamps.arrived.map(|at| at.saturating_sub(sent)),
        }
    }

    /// The shape of the read latencies, and of the arrival latencies when every
    /// delivery has one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gapless_tests::bench::stats::Delivery;
    ///
    /// let ms = Duration::from_millis;
    /// let all = vec![Delivery { read: ms(2), arrived: Some(ms(1)) }];
    /// let (read, arrived) = Delivery::latencies(all);
    /// assert_eq!((read.max_ms, arrived.map(|a| a.max_ms)), (2.0, Some(1.0)));
    ///
    /// let some = vec![Delivery { read: ms(2), arrived: None }];
    /// assert_eq!(Delivery::latencies(some).1, None);
    /// ```
    pub fn latencies(samples: Vec<Delivery>) -> (Latency, Option<Latency>) {
        let arrived: Option<Vec<Duration>> = samples.iter().map(|d| d.arrived).collect();
        let read = samples.into_iter().map(|d| d.read).collect();
        (Latency::of(read), arrived.map(Latency::of))
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
