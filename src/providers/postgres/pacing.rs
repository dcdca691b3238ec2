//! Send slots for the whole account, shared by every node, so that a
//! sender's throughput and a recipient's pair rate are the limits of the
//! WhatsApp account, not of each process.
//!
//! | table               | holds                                                        |
//! |---------------------|--------------------------------------------------------------|
//! | `pacing_senders`    | `sender` → `frontier`: the earliest time (µs) after every slot handed out in order |
//! | `pacing_reserved`   | `(sender, at)`: slots reserved ahead of the frontier, for sends that wait for their recipient |
//! | `pacing_recipients` | `recipient` → `next_at` (µs): the earliest time of the recipient's next message |
//!
//! A reservation is one transaction that locks the sender's row (`INSERT
//! ... ON CONFLICT DO UPDATE` takes the row lock), so the nodes hand out one
//! sender's slots one after the other; then the recipient's row. Locks are
//! always taken in that order, so two reservations never deadlock.
//!
//! Most sends are due at once: they take the sender's frontier and move it
//! one spacing on. A send that must wait for its recipient (a second message
//! within the pair interval) takes a slot ahead, recorded in
//! `pacing_reserved`, and does not move the frontier: as in the process-local
//! [`Pacer`](crate::runtime::Pacer), it does not hold up the sender's sends
//! to other customers. The frontier steps over reserved slots when it reaches
//! them, and forgets them once it has passed. Every two slots of a sender are
//! at least one spacing apart, across all nodes.

use chrono::{DateTime, Utc};

use super::{pg, PostgresStore};
use crate::providers::{SlotRequest, StoreError};

/// The tables, created idempotently by the migration.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pacing_senders (
    sender   TEXT PRIMARY KEY,
    frontier BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS pacing_reserved (
    sender TEXT NOT NULL,
    at     BIGINT NOT NULL,
    PRIMARY KEY (sender, at)
);

CREATE TABLE IF NOT EXISTS pacing_recipients (
    recipient TEXT PRIMARY KEY,
    next_at   BIGINT NOT NULL
);
";

/// Locks the sender's row (creating it) and reads its frontier.
const LOCK_SENDER: &str = "INSERT INTO pacing_senders (sender, frontier) VALUES ($1, 0)
     ON CONFLICT (sender) DO UPDATE SET frontier = pacing_senders.frontier
     RETURNING frontier";

/// Locks the recipient's row (creating it) and reads its next time.
const LOCK_RECIPIENT: &str = "INSERT INTO pacing_recipients (recipient, next_at) VALUES ($1, 0)
     ON CONFLICT (recipient) DO UPDATE SET next_at = pacing_recipients.next_at
     RETURNING next_at";

/// The reserved slots that could be too close to a slot at or after `$2`.
const RESERVED_FROM: &str =
    "SELECT at FROM pacing_reserved WHERE sender = $1 AND at > $2 ORDER BY at";

/// Reserves the slot of one send; see the module documentation.
pub(super) async fn reserve(
    store: &PostgresStore,
    request: SlotRequest<'_>,
) -> Result<DateTime<Utc>, StoreError> {
    let spacing = micros_of(request.sender_spacing).max(1);
    let interval = micros_of(request.recipient_interval).max(0);
    let now = request.now.timestamp_micros();
    let mut client = store.client().await?;
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting a send slot"))?;
    let lock_sender = tx
        .prepare_cached(LOCK_SENDER)
        .await
        .map_err(pg("reserving a send slot"))?;
    let frontier: i64 = tx
        .query_one(&lock_sender, &[&request.sender])
        .await
        .map_err(pg("locking the sender's pacing"))?
        .get(0);
    let lock_recipient = tx
        .prepare_cached(LOCK_RECIPIENT)
        .await
        .map_err(pg("reserving a send slot"))?;
    let recipient_next: i64 = tx
        .query_one(&lock_recipient, &[&request.recipient])
        .await
        .map_err(pg("locking the recipient's pacing"))?
        .get(0);

    let frontier = frontier.max(now);
    let earliest = recipient_next.max(now);
    let ahead = earliest > frontier;
    let start = if ahead { earliest } else { frontier };
    let reserved_from = tx
        .prepare_cached(RESERVED_FROM)
        .await
        .map_err(pg("reserving a send slot"))?;
    let reserved: Vec<i64> = tx
        .query(&reserved_from, &[&request.sender, &(start - spacing)])
        .await
        .map_err(pg("reading reserved send slots"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let slot = first_free(start, spacing, &reserved);

    if ahead {
        tx.execute(
            "INSERT INTO pacing_reserved (sender, at) VALUES ($1, $2)",
            &[&request.sender, &slot],
        )
        .await
        .map_err(pg("reserving a send slot ahead"))?;
    } else {
        tx.execute(
            "UPDATE pacing_senders SET frontier = $2 WHERE sender = $1",
            &[&request.sender, &(slot + spacing)],
        )
        .await
        .map_err(pg("moving the sender's pacing on"))?;
        // Reserved slots the frontier has passed can no longer be in the way.
        tx.execute(
            "DELETE FROM pacing_reserved WHERE sender = $1 AND at <= $2",
            &[&request.sender, &slot],
        )
        .await
        .map_err(pg("forgetting passed send slots"))?;
    }
    tx.execute(
        "UPDATE pacing_recipients SET next_at = GREATEST(next_at, $2) WHERE recipient = $1",
        &[&request.recipient, &(slot + interval)],
    )
    .await
    .map_err(pg("recording the recipient's next slot"))?;
    tx.commit().await.map_err(pg("committing a send slot"))?;
    DateTime::from_timestamp_micros(slot).ok_or_else(|| {
        StoreError::Backend(format!("postgres: send slot {slot} µs is out of range"))
    })
}

/// The earliest time at or after `start` that is at least `spacing` away
/// from every slot in `reserved` (ascending).
fn first_free(start: i64, spacing: i64, reserved: &[i64]) -> i64 {
    let mut slot = start;
    for &taken in reserved {
        if taken >= slot.saturating_add(spacing) {
            break;
        }
        if taken > slot.saturating_sub(spacing) {
            slot = taken.saturating_add(spacing);
        }
    }
    slot
}

/// A duration in whole microseconds, rounded up so spacing is never less
/// than asked.
fn micros_of(duration: chrono::Duration) -> i64 {
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
    fn a_slot_keeps_its_distance_from_reserved_ones() {
        // Nothing reserved: the start itself.
        assert_eq!(first_free(100, 10, &[]), 100);
        // A reserved slot 5 after the start is too close: after it.
        assert_eq!(first_free(100, 10, &[105]), 115);
        // Far enough on both sides.
        assert_eq!(first_free(100, 10, &[80, 110]), 100);
        // A run of reserved slots is stepped over; a gap of two spacings fits.
        assert_eq!(first_free(100, 10, &[95, 108, 118, 140]), 128);
    }

    #[test]
    fn spacing_is_rounded_up_to_whole_microseconds() {
        assert_eq!(micros_of(chrono::Duration::nanoseconds(12_500_001)), 12_501);
        assert_eq!(micros_of(chrono::Duration::milliseconds(6_000)), 6_000_000);
    }
}
