//! Rate limits as queueing: each send gets the earliest slot that keeps its
//! sender under the throughput limit and its recipient under the pair rate,
//! and waits for it. Nothing fails for being fast; it just waits.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Pacing limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Messages per second per sender (WhatsApp's default: 80).
    pub sender_per_second: f64,
    /// Minimum time between two messages to the same recipient (about 6 s).
    pub recipient_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sender_per_second: 80.0,
            recipient_interval: Duration::seconds(6),
        }
    }
}

#[derive(Debug, Default)]
struct Slots {
    sender_next: HashMap<String, DateTime<Utc>>,
    recipient_next: HashMap<String, DateTime<Utc>>,
}

/// Hands out send slots.
#[derive(Debug)]
pub struct Pacer {
    limits: Limits,
    slots: Mutex<Slots>,
}

impl Pacer {
    /// A pacer with these limits.
    pub fn new(limits: Limits) -> Self {
        Pacer {
            limits,
            slots: Mutex::new(Slots::default()),
        }
    }

    /// Reserves the earliest slot at or after `now` for a message from
    /// `sender` to `recipient`.
    pub fn reserve(&self, sender: &str, recipient: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut slots = match self.slots.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let spacing_ns = (1e9 / self.limits.sender_per_second.max(0.001)).ceil() as i64;
        let sender_next = slots.sender_next.get(sender).copied().unwrap_or(now);
        let recipient_next = slots.recipient_next.get(recipient).copied().unwrap_or(now);
        let slot = now.max(sender_next).max(recipient_next);
        slots
            .sender_next
            .insert(sender.to_string(), slot + Duration::nanoseconds(spacing_ns));
        slots
            .recipient_next
            .insert(recipient.to_string(), slot + self.limits.recipient_interval);
        // Keep memory bounded: recipients whose slot has passed need no entry.
        if slots.recipient_next.len() > 100_000 {
            slots.recipient_next.retain(|_, next| *next > now);
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_respect_both_limits() {
        let pacer = Pacer::new(Limits::default());
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let a = pacer.reserve("s", "r1", t0);
        let b = pacer.reserve("s", "r2", t0);
        let c = pacer.reserve("s", "r1", t0);
        assert_eq!(a, t0);
        assert_eq!(b - a, Duration::nanoseconds(12_500_000));
        assert_eq!(c - a, Duration::seconds(6));
    }
}
