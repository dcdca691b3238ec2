//! The SQLite tables and statements for conversations: paused
//! conversations (handoff) and the bursts of `debounce` handlers.
//!
//! | table           | holds                                                        |
//! |-----------------|--------------------------------------------------------------|
//! | `paused`        | handed-over conversations: `(customer, sender)` → `paused_at`, `until` (NULL: until resumed) |
//! | `bursts`        | collected messages: `id`, `flow`, `handler`, `trigger_name`, `customer`, `messages` JSON, `deadline`, `claimed` |
//! | `burst_seen`    | keys of messages added to a burst, so a redelivered one is collected once |
//!
//! At most one unclaimed burst exists per (flow, handler, customer) (a
//! partial unique index). Claiming a burst marks it claimed and moves its
//! deadline to `now + lease`: a process that dies before the burst's run is
//! saved gets it back when the lease ends, and the run's id (the burst's
//! id) keeps it from starting twice.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{ceil_ms, collect, corrupt, ctx, execute, floor_ms, limit, time, to_json};
use crate::providers::conversations::{Burst, BurstMessage, PausedConversation};
use crate::providers::StoreError;

/// The tables, created idempotently by the migration.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS paused (
    customer  TEXT NOT NULL,
    sender    TEXT NOT NULL,
    paused_at INTEGER NOT NULL,
    until     INTEGER,
    PRIMARY KEY (customer, sender)
);

CREATE TABLE IF NOT EXISTS bursts (
    id           TEXT PRIMARY KEY NOT NULL,
    flow         TEXT NOT NULL,
    handler      INTEGER NOT NULL,
    trigger_name TEXT NOT NULL,
    customer     TEXT NOT NULL,
    messages     TEXT NOT NULL,
    deadline     INTEGER NOT NULL,
    claimed      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS bursts_open ON bursts (flow, handler, customer) WHERE claimed = 0;
CREATE INDEX IF NOT EXISTS bursts_deadline ON bursts (deadline, id);

CREATE TABLE IF NOT EXISTS burst_seen (
    key TEXT PRIMARY KEY NOT NULL
);
";

pub(super) fn pause(conn: &Connection, pause: &PausedConversation) -> Result<(), StoreError> {
    execute(
        conn,
        "INSERT INTO paused (customer, sender, paused_at, until) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (customer, sender)
         DO UPDATE SET paused_at = excluded.paused_at, until = excluded.until",
        params![
            pause.customer,
            pause.sender,
            floor_ms(pause.paused_at),
            pause.until.map(ceil_ms)
        ],
        format_args!("pausing {} with {}", pause.customer, pause.sender),
    )?;
    Ok(())
}

pub(super) fn resume(conn: &Connection, customer: &str, sender: &str) -> Result<bool, StoreError> {
    let n = execute(
        conn,
        "DELETE FROM paused WHERE customer = ?1 AND sender = ?2",
        params![customer, sender],
        format_args!("resuming {customer} with {sender}"),
    )?;
    Ok(n > 0)
}

fn decode_pause(row: &Row<'_>) -> Result<PausedConversation, StoreError> {
    let customer: String = row.get(0).map_err(ctx("reading a paused conversation"))?;
    let sender: String = row.get(1).map_err(ctx("reading a paused conversation"))?;
    let id = format!("paused {customer}/{sender}");
    let until = match row.get_ref(3) {
        Ok(rusqlite::types::ValueRef::Null) => None,
        _ => Some(time(row, 3, &id, "until")?),
    };
    Ok(PausedConversation {
        paused_at: time(row, 2, &id, "paused_at")?,
        customer,
        sender,
        until,
    })
}

pub(super) fn paused(conn: &Connection) -> Result<Vec<PausedConversation>, StoreError> {
    collect(
        conn,
        "SELECT customer, sender, paused_at, until FROM paused ORDER BY customer, sender",
        [],
        "reading paused conversations",
        decode_pause,
    )
}

pub(super) fn is_paused(
    conn: &Connection,
    customer: &str,
    sender: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM paused WHERE customer = ?1 AND sender = ?2
         AND (until IS NULL OR until > ?3))",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![customer, sender, floor_ms(now)], |row| {
            row.get::<_, bool>(0)
        })
    })
    .map_err(ctx(format_args!(
        "looking up the pause of {customer} with {sender}"
    )))
}

pub(super) fn add_to_burst(conn: &mut Connection, burst: Burst) -> Result<(), StoreError> {
    let what = format!("adding to burst {}", burst.id);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx(&what))?;
    let mut fresh: Vec<BurstMessage> = Vec::with_capacity(burst.messages.len());
    for message in &burst.messages {
        if let Some(id) = &message.event_id {
            let inserted = execute(
                &tx,
                "INSERT OR IGNORE INTO burst_seen (key) VALUES (?1)",
                params![burst.message_key(id)],
                &what,
            )?;
            if inserted == 0 {
                continue;
            }
        }
        fresh.push(message.clone());
    }
    if !fresh.is_empty() {
        let open: Option<(String, String)> = tx
            .prepare_cached(
                "SELECT id, messages FROM bursts
                 WHERE flow = ?1 AND handler = ?2 AND customer = ?3 AND claimed = 0",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![burst.flow, handler_number(burst.handler), burst.customer],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
            })
            .map_err(ctx(&what))?;
        let deadline = ceil_ms(burst.deadline);
        match open {
            Some((id, messages)) => {
                let mut messages: Vec<BurstMessage> = serde_json::from_str(&messages)
                    .map_err(|e| corrupt(&id, format!("messages: {e}")))?;
                messages.extend(fresh);
                execute(
                    &tx,
                    "UPDATE bursts SET messages = ?1, deadline = ?2 WHERE id = ?3",
                    params![to_json(&messages, &what)?, deadline, id],
                    &what,
                )?;
            }
            None => {
                execute(
                    &tx,
                    "INSERT INTO bursts (id, flow, handler, trigger_name, customer, messages, deadline)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        burst.id,
                        burst.flow,
                        handler_number(burst.handler),
                        burst.trigger,
                        burst.customer,
                        to_json(&fresh, &what)?,
                        deadline
                    ],
                    &what,
                )?;
            }
        }
    }
    tx.commit().map_err(ctx(&what))
}

fn handler_number(handler: usize) -> i64 {
    i64::try_from(handler).unwrap_or(i64::MAX)
}

fn decode_burst(row: &Row<'_>) -> Result<Burst, StoreError> {
    let id: String = row.get(0).map_err(ctx("reading a burst"))?;
    let handler: i64 = row.get(2).map_err(ctx("reading a burst"))?;
    let messages: String = row.get(5).map_err(ctx("reading a burst"))?;
    Ok(Burst {
        flow: row.get(1).map_err(ctx("reading a burst"))?,
        handler: usize::try_from(handler)
            .map_err(|_| corrupt(&id, format!("handler {handler} is negative")))?,
        trigger: row.get(3).map_err(ctx("reading a burst"))?,
        customer: row.get(4).map_err(ctx("reading a burst"))?,
        messages: serde_json::from_str(&messages)
            .map_err(|e| corrupt(&id, format!("messages: {e}")))?,
        deadline: time(row, 6, &id, "deadline")?,
        id,
    })
}

pub(super) fn claim_due(
    conn: &mut Connection,
    now: DateTime<Utc>,
    n: usize,
    lease: chrono::Duration,
) -> Result<Vec<Burst>, StoreError> {
    let what = "claiming due bursts";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx(what))?;
    let bursts = collect(
        &tx,
        "SELECT id, flow, handler, trigger_name, customer, messages, deadline FROM bursts
         WHERE deadline <= ?1 ORDER BY deadline, id LIMIT ?2",
        params![floor_ms(now), limit(n)],
        what,
        decode_burst,
    )?;
    let until = ceil_ms(now + lease);
    for burst in &bursts {
        execute(
            &tx,
            "UPDATE bursts SET claimed = 1, deadline = ?1 WHERE id = ?2",
            params![until, burst.id],
            what,
        )?;
    }
    tx.commit().map_err(ctx(what))?;
    Ok(bursts)
}

pub(super) fn finish(conn: &Connection, id: &str) -> Result<(), StoreError> {
    execute(
        conn,
        "DELETE FROM bursts WHERE id = ?1",
        params![id],
        format_args!("finishing burst {id}"),
    )?;
    Ok(())
}

pub(super) fn next_deadline(conn: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let ms: Option<i64> = conn
        .prepare_cached("SELECT min(deadline) FROM bursts")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .map_err(ctx("reading the next burst deadline"))?;
    ms.map(|ms| {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| corrupt("bursts", format!("deadline {ms} is out of range")))
    })
    .transpose()
}
