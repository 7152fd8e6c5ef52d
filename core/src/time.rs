//! The driver-supplied clock: a point in time as milliseconds on the driver's monotonic clock.

use std::time::Duration;

/// A point on the driver's monotonic clock, in whole milliseconds since an origin the
/// driver chooses (usually the moment it started).
///
/// The core never reads a clock: every method that needs "now" takes a `Time`. That
/// keeps the state machines deterministic and lets tests run on a virtual clock.
///
/// ```
/// use gapless_core::Time;
/// use std::time::Duration;
///
/// let t = Time::from_millis(1_000);
/// assert_eq!(t + Duration::from_millis(250), Time::from_millis(1_250));
/// assert_eq!(Time::from_millis(1_250).saturating_since(t), Duration::from_millis(250));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The driver clock's origin.
    pub const ZERO: Time = Time(0);

    /// A time `ms` milliseconds after the driver clock's origin.
    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }

    /// Milliseconds since the driver clock's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this time is; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Time {
    type Output = Time;

    fn add(self, rhs: Duration) -> Time {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(ms))
    }
}
