//! Time: the wall clock for production, and a virtual clock that follows
//! tokio's time, so that under a paused runtime a 7-day wait takes no real
//! time and waits still complete in order.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

/// What the engine asks of time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
    /// Completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: DateTime<Utc>)
        -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Sleep in steps, so a wall clock that jumps (NTP, suspend) is
            // re-read instead of trusted for days.
            loop {
                let left = deadline - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(std::time::Duration::from_secs(60))).await;
            }
        })
    }
}

/// A clock that starts at a chosen instant and advances with tokio's time.
///
/// In a runtime started paused (`tokio::runtime::Builder::start_paused`, or
/// `#[tokio::test(start_paused = true)]`), tokio jumps to the next timer
/// whenever every task is waiting, so runs that wait for days finish at once
/// while every wait still ends at its exact virtual instant.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use flowc::providers::{Clock, VirtualClock};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let start = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
/// let clock = VirtualClock::starting_at(start);
/// clock.sleep_until(start + chrono::Duration::days(7)).await;
/// assert_eq!(clock.now(), start + chrono::Duration::days(7));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct VirtualClock {
    start: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl VirtualClock {
    /// A clock that reads `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        VirtualClock {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        self.start + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let offset = (deadline - self.start).to_std().unwrap_or_default();
        let at = self.origin + offset;
        Box::pin(tokio::time::sleep_until(at))
    }
}
