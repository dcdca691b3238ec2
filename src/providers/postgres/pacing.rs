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
//! A reservation is one call of the function `flowc_reserve_send_slot`
//! (created with the tables), which locks the sender's row (`INSERT ... ON
//! CONFLICT DO UPDATE` takes the row lock), so the nodes hand out one
//! sender's slots one after the other; then the recipient's row. Locks are
//! always taken in that order, so two reservations never deadlock, and they
//! are held only while the function runs: one round trip, not a
//! transaction's several.
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
use crate::providers::millis::micros_of;
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

-- Locks the sender's row, then the recipient's (always in this order, so
-- two reservations never deadlock); takes the frontier, or a slot ahead
-- for a send that waits for its recipient; steps over reserved slots
-- closer than one spacing; records what it took. Times in microseconds.
CREATE OR REPLACE FUNCTION flowc_reserve_send_slot(
    p_sender TEXT, p_recipient TEXT, p_now BIGINT, p_spacing BIGINT, p_interval BIGINT
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_frontier BIGINT;
    v_next     BIGINT;
    v_ahead    BOOLEAN;
    v_slot     BIGINT;
    v_taken    BIGINT;
BEGIN
    INSERT INTO pacing_senders (sender, frontier) VALUES (p_sender, 0)
        ON CONFLICT (sender) DO UPDATE SET frontier = pacing_senders.frontier
        RETURNING frontier INTO v_frontier;
    INSERT INTO pacing_recipients (recipient, next_at) VALUES (p_recipient, 0)
        ON CONFLICT (recipient) DO UPDATE SET next_at = pacing_recipients.next_at
        RETURNING next_at INTO v_next;
    v_frontier := GREATEST(v_frontier, p_now);
    v_next := GREATEST(v_next, p_now);
    v_ahead := v_next > v_frontier;
    v_slot := CASE WHEN v_ahead THEN v_next ELSE v_frontier END;
    FOR v_taken IN
        SELECT at FROM pacing_reserved
        WHERE sender = p_sender AND at > v_slot - p_spacing ORDER BY at
    LOOP
        EXIT WHEN v_taken >= v_slot + p_spacing;
        v_slot := v_taken + p_spacing;
    END LOOP;
    IF v_ahead THEN
        INSERT INTO pacing_reserved (sender, at) VALUES (p_sender, v_slot);
    ELSE
        UPDATE pacing_senders SET frontier = v_slot + p_spacing WHERE sender = p_sender;
        -- Reserved slots the frontier has passed can no longer be in the way.
        DELETE FROM pacing_reserved WHERE sender = p_sender AND at <= v_slot;
    END IF;
    UPDATE pacing_recipients SET next_at = GREATEST(next_at, v_slot + p_interval)
        WHERE recipient = p_recipient;
    RETURN v_slot;
END
$$;
";

/// One reservation as one call: the function runs in the statement's own
/// transaction, so the sender's row is locked only while it runs, not for
/// several round trips.
const RESERVE: &str = "SELECT flowc_reserve_send_slot($1, $2, $3, $4, $5)";

/// Reserves the slot of one send; see the module documentation.
pub(super) async fn reserve(
    store: &PostgresStore,
    request: SlotRequest<'_>,
) -> Result<DateTime<Utc>, StoreError> {
    let spacing = micros_of(request.sender_spacing).max(1);
    let interval = micros_of(request.recipient_interval).max(0);
    let now = request.now.timestamp_micros();
    let client = store.client().await?;
    let statement = client
        .prepare_cached(RESERVE)
        .await
        .map_err(pg("reserving a send slot"))?;
    let slot: i64 = client
        .query_one(
            &statement,
            &[
                &request.sender,
                &request.recipient,
                &now,
                &spacing,
                &interval,
            ],
        )
        .await
        .map_err(pg("reserving a send slot"))?
        .get(0);
    DateTime::from_timestamp_micros(slot).ok_or_else(|| {
        StoreError::Backend(format!("postgres: send slot {slot} µs is out of range"))
    })
}
