//! Send slots kept in the SQLite file, so that every process using it
//! (`flowc serve` and a `flowc campaign start` beside it) paces its sends
//! under the same limits: the account's, not each process's.
//!
//! | table               | holds                                                        |
//! |---------------------|--------------------------------------------------------------|
//! | `pacing_senders`    | `sender` → `frontier`: the earliest time (µs) after every slot handed out in order |
//! | `pacing_reserved`   | `(sender, at)`: slots reserved ahead of the frontier, for sends that wait for their recipient |
//! | `pacing_recipients` | `recipient` → `next_at` (µs): the earliest time of the recipient's next message |
//!
//! The same tables and rules as the PostgreSQL store's (`postgres/pacing.rs`),
//! there in a database function, here in one `BEGIN IMMEDIATE` transaction:
//! most sends take the sender's frontier and move it one spacing on; a send
//! that must wait for its recipient takes a slot ahead and holds up none of
//! the sender's sends to others; every two slots of a sender are at least
//! one spacing apart.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::ctx;
use crate::providers::millis::micros_of;
use crate::providers::{SlotRequest, StoreError};

/// The tables, created idempotently when the file is opened.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pacing_senders (
    sender   TEXT PRIMARY KEY NOT NULL,
    frontier INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS pacing_reserved (
    sender TEXT NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (sender, at)
);

CREATE TABLE IF NOT EXISTS pacing_recipients (
    recipient TEXT PRIMARY KEY NOT NULL,
    next_at   INTEGER NOT NULL
);
";

/// Reserves the slot of one send; see the module documentation.
pub(super) fn reserve(
    conn: &mut Connection,
    request: &SlotRequest<'_>,
) -> Result<DateTime<Utc>, StoreError> {
    let what = "reserving a send slot";
    let spacing = micros_of(request.sender_spacing).max(1);
    let interval = micros_of(request.recipient_interval).max(0);
    let now = request.now.timestamp_micros();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx(what))?;
    let frontier: i64 = tx
        .prepare_cached("SELECT frontier FROM pacing_senders WHERE sender = ?1")
        .and_then(|mut s| s.query_row([request.sender], |row| row.get(0)).optional())
        .map_err(ctx(what))?
        .unwrap_or(0);
    let recipient_next: i64 = tx
        .prepare_cached("SELECT next_at FROM pacing_recipients WHERE recipient = ?1")
        .and_then(|mut s| {
            s.query_row([request.recipient], |row| row.get(0))
                .optional()
        })
        .map_err(ctx(what))?
        .unwrap_or(0);
    let frontier = frontier.max(now);
    let earliest = recipient_next.max(now);
    let ahead = earliest > frontier;
    let start = if ahead { earliest } else { frontier };
    let reserved: Vec<i64> = tx
        .prepare_cached("SELECT at FROM pacing_reserved WHERE sender = ?1 AND at > ?2 ORDER BY at")
        .and_then(|mut s| {
            s.query_map(params![request.sender, start - spacing], |row| row.get(0))?
                .collect()
        })
        .map_err(ctx(what))?;
    let slot = first_free(start, spacing, &reserved);
    if ahead {
        tx.prepare_cached("INSERT INTO pacing_reserved (sender, at) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![request.sender, slot]))
            .map_err(ctx(what))?;
    } else {
        tx.prepare_cached(
            "INSERT INTO pacing_senders (sender, frontier) VALUES (?1, ?2)
             ON CONFLICT (sender) DO UPDATE SET frontier = excluded.frontier",
        )
        .and_then(|mut s| s.execute(params![request.sender, slot + spacing]))
        .map_err(ctx(what))?;
        // Reserved slots the frontier has passed can no longer be in the way.
        tx.prepare_cached("DELETE FROM pacing_reserved WHERE sender = ?1 AND at <= ?2")
            .and_then(|mut s| s.execute(params![request.sender, slot]))
            .map_err(ctx(what))?;
    }
    tx.prepare_cached(
        "INSERT INTO pacing_recipients (recipient, next_at) VALUES (?1, ?2)
         ON CONFLICT (recipient) DO UPDATE SET next_at = max(next_at, excluded.next_at)",
    )
    .and_then(|mut s| s.execute(params![request.recipient, slot + interval]))
    .map_err(ctx(what))?;
    tx.commit().map_err(ctx(what))?;
    DateTime::from_timestamp_micros(slot)
        .ok_or_else(|| StoreError::Backend(format!("sqlite: send slot {slot} µs is out of range")))
}

/// Forgets the recipients whose next slot is before `before` (µs): any
/// send now may go to them at once, so their rows say nothing.
pub(super) fn prune(tx: &Connection, before: DateTime<Utc>) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM pacing_recipients WHERE next_at < ?1",
        [before.timestamp_micros()],
    )
    .map_err(ctx("pruning send slots"))?;
    Ok(())
}

/// The earliest time at or after `start` that is at least `spacing` away
/// from every slot in `reserved` (ascending, all after `start - spacing`).
fn first_free(start: i64, spacing: i64, reserved: &[i64]) -> i64 {
    let mut slot = start;
    for &taken in reserved {
        if taken >= slot.saturating_add(spacing) {
            break;
        }
        slot = taken.saturating_add(spacing);
    }
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_keeps_its_distance_from_reserved_ones() {
        assert_eq!(first_free(100, 10, &[]), 100);
        // A reserved slot 5 after the start is too close: after it.
        assert_eq!(first_free(100, 10, &[105]), 115);
        // Far enough after it.
        assert_eq!(first_free(100, 10, &[110]), 100);
        // A run of reserved slots is stepped over; a gap of two spacings fits.
        assert_eq!(first_free(100, 10, &[95, 108, 118, 140]), 128);
    }
}
