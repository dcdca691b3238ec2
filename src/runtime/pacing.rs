//! Rate limits as queueing: each send gets the earliest slot that keeps its
//! sender under the throughput limit and its recipient under the pair rate,
//! and waits for it. Nothing fails for being fast; it just waits.

use std::collections::BTreeMap;
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

/// The times a sender is busy: merged intervals `[start, end)` in
/// nanoseconds since the epoch, each reservation blocking one spacing.
#[derive(Debug, Default)]
struct Busy {
    intervals: BTreeMap<i64, i64>,
}

impl Busy {
    /// Reserves the earliest instant at or after `earliest` that is at least
    /// `spacing` away from every other reservation.
    fn reserve(&mut self, earliest: i64, spacing: i64) -> i64 {
        // Most sends want a slot at or after the start of the last busy
        // interval: then the slot is the later of `earliest` and that
        // interval's end, and it extends the interval or starts the next.
        match self.intervals.last_entry() {
            Some(mut last) if earliest >= *last.key() => {
                let end = *last.get();
                let t = earliest.max(end);
                if t == end {
                    *last.get_mut() = t.saturating_add(spacing);
                } else {
                    self.intervals.insert(t, t.saturating_add(spacing));
                }
                t
            }
            Some(_) => self.reserve_between(earliest, spacing),
            None => {
                self.intervals
                    .insert(earliest, earliest.saturating_add(spacing));
                earliest
            }
        }
    }

    /// [`Busy::reserve`] for a slot wanted before the last interval: the
    /// first gap wide enough, searched from `earliest`.
    fn reserve_between(&mut self, earliest: i64, spacing: i64) -> i64 {
        let mut t = earliest;
        if let Some((_, &end)) = self.intervals.range(..=t).next_back() {
            t = t.max(end);
        }
        // Skip intervals that start too soon after `t` to fit one spacing.
        while let Some((&start, &end)) = self.intervals.range(t..).next() {
            if start >= t.saturating_add(spacing) {
                break;
            }
            t = end;
        }
        let mut start = t;
        let mut end = t.saturating_add(spacing);
        if let Some((&s, &e)) = self.intervals.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.intervals.remove(&s);
            }
        }
        if let Some((&s, &e)) = self.intervals.range(start..).next() {
            if s <= end {
                end = end.max(e);
                self.intervals.remove(&s);
            }
        }
        self.intervals.insert(start, end);
        t
    }

    /// Forgets intervals that ended before `before`.
    fn prune(&mut self, before: i64) {
        self.intervals.retain(|_, end| *end >= before);
    }
}

#[derive(Debug, Default)]
struct Slots {
    senders: rustc_hash::FxHashMap<String, Busy>,
    recipient_next: ahash::HashMap<String, DateTime<Utc>>,
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

    /// The limits slots are handed out under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The least time between two sends of one sender.
    pub fn sender_spacing(&self) -> Duration {
        Duration::nanoseconds(spacing_ns(self.limits.sender_per_second))
    }

    /// Reserves the earliest slot at or after `now` for a message from
    /// `sender` to `recipient`: at least `recipient_interval` after the
    /// recipient's last message, and spaced from the sender's other sends so
    /// the sender stays under its throughput. A send waiting for its
    /// recipient does not hold up the sender's sends to others.
    pub fn reserve(&self, sender: &str, recipient: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut slots = match self.slots.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let spacing_ns = spacing_ns(self.limits.sender_per_second);
        let Slots {
            senders,
            recipient_next,
        } = &mut *slots;
        // The recipient is hashed once (a keyed hash: recipients come from
        // outside) and its entry updated in place.
        let known_recipient = recipient_next.get_mut(recipient);
        let earliest = match &known_recipient {
            Some(next) => now.max(**next),
            None => now,
        };
        let earliest_ns = nanos(earliest);
        // Looked up before inserting, so a known sender costs no allocation.
        if !senders.contains_key(sender) {
            senders.insert(sender.to_string(), Busy::default());
        }
        let Some(busy) = senders.get_mut(sender) else {
            unreachable!("the sender is in the map: it was just inserted");
        };
        if busy.intervals.len() > 10_000 {
            busy.prune(nanos(now));
        }
        let slot_ns = busy.reserve(earliest_ns, spacing_ns);
        let slot = earliest + Duration::nanoseconds(slot_ns - earliest_ns);
        let next = slot + self.limits.recipient_interval;
        match known_recipient {
            Some(known) => *known = next,
            None => {
                recipient_next.insert(recipient.to_string(), next);
            }
        }
        // Keep memory bounded: recipients whose slot has passed need no entry.
        if slots.recipient_next.len() > 100_000 {
            slots.recipient_next.retain(|_, next| *next > now);
        }
        slot
    }
}

/// Nanoseconds between two sends at `per_second`.
fn spacing_ns(per_second: f64) -> i64 {
    (1e9 / per_second.max(0.001)).ceil() as i64
}

/// Nanoseconds since the epoch, saturating far outside chrono's range.
fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
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

    #[test]
    fn a_send_waiting_for_its_recipient_does_not_hold_up_others() {
        let pacer = Pacer::new(Limits::default());
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let first = pacer.reserve("s", "a", t0);
        let second_to_a = pacer.reserve("s", "a", t0);
        let to_b = pacer.reserve("s", "b", t0);
        assert_eq!(first, t0);
        assert_eq!(second_to_a - t0, Duration::seconds(6));
        assert_eq!(to_b - t0, Duration::nanoseconds(12_500_000));
        // A slot between two reservations is used when it fits.
        let to_c = pacer.reserve("s", "c", t0);
        assert_eq!(to_c - t0, Duration::nanoseconds(25_000_000));
    }

    #[test]
    fn the_shortcut_after_the_last_interval_gives_the_searched_slot() {
        let (mut quick, mut searched) = (Busy::default(), Busy::default());
        let mut seed: u64 = 7;
        for _ in 0..5_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            // Times in a window the reservations soon fill: wanted before
            // the last interval (searched) as well as after it.
            let earliest = ((seed >> 33) % 2_000) as i64 - 300 + (seed >> 20 & 0xff) as i64;
            let spacing = 1 + ((seed >> 12) % 40) as i64;
            assert_eq!(
                quick.reserve(earliest, spacing),
                searched.reserve_between(earliest, spacing)
            );
            assert_eq!(quick.intervals, searched.intervals);
        }
    }

    #[test]
    fn busy_intervals_merge_and_keep_spacing() {
        let mut busy = Busy::default();
        assert_eq!(busy.reserve(100, 10), 100);
        assert_eq!(busy.reserve(100, 10), 110);
        assert_eq!(busy.reserve(50, 10), 50);
        assert_eq!(busy.reserve(55, 10), 60);
        // 60..70 and 70 would be free but 95 is closer than 10 to 100.
        assert_eq!(busy.reserve(95, 10), 120);
        assert_eq!(busy.reserve(70, 10), 70);
        assert_eq!(busy.reserve(70, 10), 80);
    }
}
