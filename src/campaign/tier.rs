//! The messaging tier: how many business-initiated conversations a sender
//! may open in any rolling 24 hours (250 for unverified businesses, then 1K,
//! 10K, 100K, unlimited; WhatsApp also reports 50 and 2K).
//!
//! [`TierWindow`] counts the conversations a sender opened and says when the
//! next one may start. It is pure: the caller gives the times (from its
//! store after a restart, then as it sends) and the current time.
//!
//! WhatsApp counts unique customers: a second template to a customer whose
//! conversation is still open in the window does not use another slot.
//! [`TierWindow::record_for`] and [`TierWindow::is_counted`] keep that apart;
//! [`TierWindow::record`] counts a conversation without a customer.
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use flowc::campaign::tier::{TierLimit, TierWindow};
//!
//! let mut window = TierWindow::new(TierLimit::Limited(2));
//! let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
//! assert!(window.record_for("+4915112345678", t0));
//! assert!(window.record_for("+4915112345679", t0 + Duration::hours(1)));
//! // A second send to the first customer is free.
//! assert!(!window.record_for("+4915112345678", t0 + Duration::hours(2)));
//! // A third customer waits until the first conversation is 24 hours old.
//! assert_eq!(window.next_slot(t0 + Duration::hours(2)), t0 + Duration::hours(24));
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A messaging tier's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TierLimit {
    /// At most this many business-initiated conversations per rolling 24 h.
    Limited(u32),
    /// No limit.
    Unlimited,
}

impl TierLimit {
    /// The tier of unverified businesses.
    pub const DEFAULT: TierLimit = TierLimit::Limited(250);

    /// A limit as WhatsApp's webhooks write it: `TIER_50`, `TIER_250`,
    /// `TIER_1K`, `TIER_2K`, `TIER_10K`, `TIER_100K`, `TIER_UNLIMITED`.
    /// `TIER_NOT_SET` (a number that has not sent yet) and unknown values
    /// are `None`.
    pub fn from_api(text: &str) -> Option<TierLimit> {
        let rest = text.trim().strip_prefix("TIER_")?;
        match rest {
            "NOT_SET" => None,
            _ => rest.parse().ok(),
        }
    }

    /// The limit as a number, `None` when unlimited.
    pub fn max(self) -> Option<u32> {
        match self {
            TierLimit::Limited(n) => Some(n),
            TierLimit::Unlimited => None,
        }
    }
}

impl Default for TierLimit {
    fn default() -> Self {
        TierLimit::DEFAULT
    }
}

impl FromStr for TierLimit {
    type Err = String;

    /// `250`, `1000`, `1K`, `10k`, `100K`, `unlimited`, or the webhook's
    /// `TIER_1K` forms.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        let t = t.strip_prefix("TIER_").unwrap_or(t);
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(TierLimit::Unlimited);
        }
        let (digits, factor) = match t.strip_suffix(['K', 'k']) {
            Some(d) => (d, 1000),
            None => (t, 1),
        };
        match digits
            .parse::<u32>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
        {
            Some(n) if n > 0 => Ok(TierLimit::Limited(n)),
            _ => Err(format!(
                "\"{text}\" is not a messaging tier; use 250, 1K, 10K, 100K or unlimited"
            )),
        }
    }
}

impl fmt::Display for TierLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TierLimit::Unlimited => f.write_str("unlimited"),
            TierLimit::Limited(n) if n % 1000 == 0 => write!(f, "{}K", n / 1000),
            TierLimit::Limited(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for TierLimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TierLimit {
    /// A string (`"1K"`) or a number (`1000`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(0) => Err(serde::de::Error::custom("a messaging tier is at least 1")),
            Raw::Number(n) => Ok(TierLimit::Limited(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A sender's business-initiated conversations in the rolling window.
#[derive(Debug, Clone)]
pub struct TierWindow {
    limit: TierLimit,
    window: TimeDelta,
    /// When each counted conversation opened, oldest first.
    opened: VecDeque<DateTime<Utc>>,
    /// The customers among them: when their counted conversation opened.
    customers: HashMap<String, DateTime<Utc>>,
}

impl TierWindow {
    /// An empty window of 24 hours.
    pub fn new(limit: TierLimit) -> Self {
        TierWindow::with_window(limit, TimeDelta::hours(24))
    }

    /// An empty window of another length (for tests and other providers).
    pub fn with_window(limit: TierLimit, window: TimeDelta) -> Self {
        TierWindow {
            limit,
            window,
            opened: VecDeque::new(),
            customers: HashMap::new(),
        }
    }

    /// A window holding conversations opened at `times` (any order), as a
    /// store reports them after a restart.
    pub fn from_times(limit: TierLimit, times: impl IntoIterator<Item = DateTime<Utc>>) -> Self {
        let mut window = TierWindow::new(limit);
        let mut times: Vec<_> = times.into_iter().collect();
        times.sort_unstable();
        window.opened = times.into();
        window
    }

    /// The limit.
    pub fn limit(&self) -> TierLimit {
        self.limit
    }

    /// Changes the limit (a tier upgrade or downgrade); the counted
    /// conversations stay.
    pub fn set_limit(&mut self, limit: TierLimit) {
        self.limit = limit;
    }

    /// Counts a conversation opened at `at`.
    pub fn record(&mut self, at: DateTime<Utc>) {
        match self.opened.back() {
            Some(last) if *last > at => {
                let i = self.opened.partition_point(|t| *t <= at);
                self.opened.insert(i, at);
            }
            _ => self.opened.push_back(at),
        }
    }

    /// Counts a conversation with `customer` opened at `at`, unless one with
    /// them is already counted in the window; whether it was counted.
    pub fn record_for(&mut self, customer: &str, at: DateTime<Utc>) -> bool {
        if self.is_counted(customer, at) {
            return false;
        }
        self.customers.insert(customer.to_string(), at);
        self.record(at);
        true
    }

    /// Whether a conversation with `customer` is counted in the window at
    /// `now`, so sending to them again uses no slot.
    pub fn is_counted(&self, customer: &str, now: DateTime<Utc>) -> bool {
        self.customers
            .get(customer)
            .is_some_and(|opened| *opened + self.window > now)
    }

    /// Conversations counted at `now`: those opened in the last 24 hours.
    pub fn count(&self, now: DateTime<Utc>) -> usize {
        self.opened.len() - self.expired(now)
    }

    /// How many conversations may still open at `now`; `None` when
    /// unlimited.
    pub fn remaining(&self, now: DateTime<Utc>) -> Option<usize> {
        self.limit
            .max()
            .map(|max| (max as usize).saturating_sub(self.count(now)))
    }

    /// When the next conversation may open: `now` when the count is under the
    /// limit, else when enough of the counted ones have left the window.
    pub fn next_slot(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(max) = self.limit.max() else {
            return now;
        };
        let expired = self.expired(now);
        let count = self.opened.len() - expired;
        let max = max as usize;
        if count < max {
            return now;
        }
        if max == 0 {
            return DateTime::<Utc>::MAX_UTC;
        }
        // The count drops below the limit when the (count - max + 1)-th
        // oldest conversation leaves.
        self.opened[expired + count - max] + self.window
    }

    /// Forgets conversations that left the window by `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let expired = self.expired(now);
        self.opened.drain(..expired);
        let window = self.window;
        self.customers.retain(|_, opened| *opened + window > now);
    }

    /// How many of the oldest conversations left the window by `now`.
    fn expired(&self, now: DateTime<Utc>) -> usize {
        self.opened.partition_point(|t| *t + self.window <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + TimeDelta::hours(h)
    }

    #[test]
    fn limits_parse_and_print() {
        assert_eq!("1K".parse(), Ok(TierLimit::Limited(1000)));
        assert_eq!("100k".parse(), Ok(TierLimit::Limited(100_000)));
        assert_eq!("250".parse(), Ok(TierLimit::Limited(250)));
        assert_eq!("Unlimited".parse(), Ok(TierLimit::Unlimited));
        assert!("0".parse::<TierLimit>().is_err());
        assert!("lots".parse::<TierLimit>().is_err());
        assert_eq!(
            TierLimit::from_api("TIER_2K"),
            Some(TierLimit::Limited(2000))
        );
        assert_eq!(TierLimit::from_api("TIER_50"), Some(TierLimit::Limited(50)));
        assert_eq!(
            TierLimit::from_api("TIER_UNLIMITED"),
            Some(TierLimit::Unlimited)
        );
        assert_eq!(TierLimit::from_api("TIER_NOT_SET"), None);
        assert_eq!(TierLimit::Limited(10_000).to_string(), "10K");
        assert_eq!(TierLimit::Limited(250).to_string(), "250");
        assert_eq!(
            serde_json::from_str::<TierLimit>("1000").unwrap(),
            TierLimit::Limited(1000)
        );
        assert_eq!(
            serde_json::from_str::<TierLimit>("\"10K\"").unwrap(),
            TierLimit::Limited(10_000)
        );
        assert_eq!(
            serde_json::to_string(&TierLimit::Unlimited).unwrap(),
            "\"unlimited\""
        );
    }

    #[test]
    fn under_the_limit_is_now() {
        let w = TierWindow::from_times(TierLimit::Limited(3), [t(0), t(1)]);
        assert_eq!(w.next_slot(t(2)), t(2));
        assert_eq!(w.remaining(t(2)), Some(1));
    }

    #[test]
    fn at_the_limit_waits_for_the_oldest() {
        let w = TierWindow::from_times(TierLimit::Limited(3), [t(5), t(1), t(3)]);
        assert_eq!(w.count(t(6)), 3);
        assert_eq!(w.next_slot(t(6)), t(25));
        // Exactly 24 hours later the oldest has left.
        assert_eq!(w.count(t(25)), 2);
        assert_eq!(w.next_slot(t(25)), t(25));
    }

    #[test]
    fn over_the_limit_after_a_downgrade() {
        let mut w = TierWindow::from_times(TierLimit::Limited(4), [t(0), t(1), t(2), t(3)]);
        w.set_limit(TierLimit::Limited(2));
        // Below 2 means 1 left: three must leave, the third oldest at 26.
        assert_eq!(w.next_slot(t(4)), t(26));
        assert_eq!(w.remaining(t(4)), Some(0));
    }

    #[test]
    fn unlimited_never_waits() {
        let w = TierWindow::from_times(TierLimit::Unlimited, (0..1000).map(|_| t(0)));
        assert_eq!(w.next_slot(t(1)), t(1));
        assert_eq!(w.remaining(t(1)), None);
    }

    #[test]
    fn records_out_of_order_stay_sorted_and_prune() {
        let mut w = TierWindow::new(TierLimit::Limited(2));
        w.record(t(10));
        w.record(t(2));
        assert_eq!(w.next_slot(t(11)), t(26));
        w.prune(t(27));
        assert_eq!(w.count(t(27)), 1);
        assert_eq!(w.next_slot(t(27)), t(27));
    }

    #[test]
    fn a_customer_counts_once_per_window() {
        let mut w = TierWindow::new(TierLimit::Limited(1));
        assert!(w.record_for("+4915112345678", t(0)));
        assert!(w.is_counted("+4915112345678", t(23)));
        assert!(!w.record_for("+4915112345678", t(23)));
        assert_eq!(w.count(t(23)), 1);
        // After the window, a new conversation counts again.
        assert!(!w.is_counted("+4915112345678", t(24)));
        assert!(w.record_for("+4915112345678", t(24)));
        w.prune(t(30));
        assert_eq!(w.count(t(30)), 1);
    }
}
