//! Timestamps as integer milliseconds since the Unix epoch (UTC), the way
//! the durable stores keep them, with the rounding rules they share: a
//! wake-up time is rounded *up* (nothing is due early), every other time
//! down (a customer's window closes early rather than late).

use chrono::{DateTime, Utc};

/// Milliseconds, rounded down.
pub(crate) fn floor_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Milliseconds, rounded up, so a run is never due before its time.
pub(crate) fn ceil_ms(t: DateTime<Utc>) -> i64 {
    let ms = t.timestamp_millis();
    if t.timestamp_subsec_nanos() % 1_000_000 == 0 {
        ms
    } else {
        ms.saturating_add(1)
    }
}

/// The time of `ms`, or `None` when it is outside chrono's range.
pub(crate) fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// A row limit as SQL's integer; a limit too large to say is no limit.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A duration in whole microseconds, rounded up so that a spacing is never
/// less than asked.
pub(crate) fn micros_of(duration: chrono::Duration) -> i64 {
    match duration.num_microseconds() {
        Some(us) if duration - chrono::Duration::microseconds(us) > chrono::Duration::zero() => {
            us.saturating_add(1)
        }
        Some(us) => us,
        None => i64::MAX / 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_is_rounded_up_to_whole_microseconds() {
        assert_eq!(micros_of(chrono::Duration::nanoseconds(12_500_001)), 12_501);
        assert_eq!(micros_of(chrono::Duration::milliseconds(6_000)), 6_000_000);
    }
}
