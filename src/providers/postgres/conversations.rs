//! The PostgreSQL tables and statements for conversations: paused
//! conversations (handoff) and the bursts of `debounce` handlers, shared by
//! every node.
//!
//! | table        | holds                                                        |
//! |--------------|--------------------------------------------------------------|
//! | `paused`     | handed-over conversations: `(customer, sender)` → `paused_at`, `until` (NULL: until resumed) |
//! | `bursts`     | collected messages: `id`, `flow`, `handler`, `trigger_name`, `customer`, `messages` (a JSON array as text), `deadline`, `claimed` |
//! | `burst_seen` | keys of messages added to a burst ([`Burst::message_key`]), so a redelivered one is collected once |
//!
//! Times are BIGINT milliseconds (UTC), rounded as in the SQLite store
//! (deadlines up, everything else down). Text keys are in the `"C"`
//! collation so that listings come in byte order, as in the other stores.
//!
//! Why it is safe when several nodes share the tables:
//!
//! - At most one unclaimed burst exists per (flow, handler, customer): a
//!   partial unique index, which [`add_to_burst`] uses as the arbiter of
//!   one `INSERT ... ON CONFLICT DO UPDATE`. Two nodes adding messages of
//!   one customer at the same moment both land in the same burst (the
//!   second waits for the first's row and appends to it); neither message
//!   is lost.
//! - A message's key is inserted into `burst_seen` with `ON CONFLICT DO
//!   NOTHING` in the same transaction: of two nodes adding the same
//!   message, only the one whose insert wins collects it.
//! - [`claim_due`] is one statement that locks the due bursts with
//!   `FOR UPDATE SKIP LOCKED`, marks them claimed and moves their deadline
//!   to `now + lease`: another node skips them while the claim is being
//!   made and finds them not due after it. A node that dies before the
//!   burst's run is saved loses the lease, and another node claims the
//!   burst again when it ends; the run's id (the burst's id) keeps it from
//!   starting twice.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{corrupt, pg, time, to_json, PostgresStore};
use crate::providers::conversations::{Burst, BurstMessage, PausedConversation};
use crate::providers::millis::{ceil_ms, floor_ms, limit};
use crate::providers::StoreError;

/// The tables, created idempotently by the migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS paused (
    customer  TEXT COLLATE "C" NOT NULL,
    sender    TEXT COLLATE "C" NOT NULL,
    paused_at BIGINT NOT NULL,
    until     BIGINT,
    PRIMARY KEY (customer, sender)
);

CREATE TABLE IF NOT EXISTS bursts (
    id           TEXT COLLATE "C" PRIMARY KEY,
    flow         TEXT NOT NULL,
    handler      BIGINT NOT NULL,
    trigger_name TEXT NOT NULL,
    customer     TEXT NOT NULL,
    messages     TEXT NOT NULL,
    deadline     BIGINT NOT NULL,
    claimed      BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX IF NOT EXISTS bursts_open ON bursts (flow, handler, customer) WHERE NOT claimed;
CREATE INDEX IF NOT EXISTS bursts_deadline ON bursts (deadline, id);

CREATE TABLE IF NOT EXISTS burst_seen (
    key TEXT PRIMARY KEY
);
"#;

pub(super) async fn pause(
    store: &PostgresStore,
    pause: PausedConversation,
) -> Result<(), StoreError> {
    let what = format!("pausing {} with {}", pause.customer, pause.sender);
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO paused (customer, sender, paused_at, until) VALUES ($1, $2, $3, $4)
             ON CONFLICT (customer, sender)
             DO UPDATE SET paused_at = EXCLUDED.paused_at, until = EXCLUDED.until",
        )
        .await
        .map_err(pg(&what))?;
    client
        .execute(
            &statement,
            &[
                &pause.customer,
                &pause.sender,
                &floor_ms(pause.paused_at),
                &pause.until.map(ceil_ms),
            ],
        )
        .await
        .map_err(pg(&what))?;
    Ok(())
}

pub(super) async fn resume(
    store: &PostgresStore,
    customer: &str,
    sender: &str,
) -> Result<bool, StoreError> {
    let what = format!("resuming {customer} with {sender}");
    let client = store.client().await?;
    let n = client
        .execute(
            "DELETE FROM paused WHERE customer = $1 AND sender = $2",
            &[&customer, &sender],
        )
        .await
        .map_err(pg(&what))?;
    Ok(n > 0)
}

fn decode_pause(row: &Row) -> Result<PausedConversation, StoreError> {
    let what = "reading a paused conversation";
    let customer: String = row.try_get(0).map_err(pg(what))?;
    let sender: String = row.try_get(1).map_err(pg(what))?;
    let id = format!("paused {customer}/{sender}");
    let until: Option<i64> = row.try_get(3).map_err(pg(what))?;
    Ok(PausedConversation {
        paused_at: time(row.try_get(2).map_err(pg(what))?, &id, "paused_at")?,
        until: until.map(|ms| time(ms, &id, "until")).transpose()?,
        customer,
        sender,
    })
}

pub(super) async fn paused(store: &PostgresStore) -> Result<Vec<PausedConversation>, StoreError> {
    let what = "reading paused conversations";
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT customer, sender, paused_at, until FROM paused ORDER BY customer, sender",
            &[],
        )
        .await
        .map_err(pg(what))?;
    rows.iter().map(decode_pause).collect()
}

pub(super) async fn is_paused(
    store: &PostgresStore,
    customer: &str,
    sender: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let what = format!("looking up the pause of {customer} with {sender}");
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM paused WHERE customer = $1 AND sender = $2
             AND (until IS NULL OR until > $3))",
        )
        .await
        .map_err(pg(&what))?;
    let row = client
        .query_one(&statement, &[&customer, &sender, &floor_ms(now)])
        .await
        .map_err(pg(&what))?;
    row.try_get(0).map_err(pg(&what))
}

pub(super) async fn add_to_burst(store: &PostgresStore, burst: Burst) -> Result<(), StoreError> {
    let what = format!("adding to burst {}", burst.id);
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg(&what))?;
    // Sorted and without repeats: two nodes recording overlapping keys
    // lock them in the same order, so neither waits for the other in a
    // cycle.
    let mut keys: Vec<String> = burst
        .messages
        .iter()
        .filter_map(|m| m.event_id.as_deref().map(|id| burst.message_key(id)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut fresh_keys: HashSet<String> = HashSet::new();
    if !keys.is_empty() {
        let statement = tx
            .prepare_cached(
                "INSERT INTO burst_seen (key) SELECT unnest($1::text[])
                 ON CONFLICT (key) DO NOTHING RETURNING key",
            )
            .await
            .map_err(pg(&what))?;
        for row in tx.query(&statement, &[&keys]).await.map_err(pg(&what))? {
            fresh_keys.insert(row.try_get(0).map_err(pg(&what))?);
        }
    }
    // A key recorded now goes to its first message: a key repeated within
    // the burst is collected once, as in the other stores.
    let fresh: Vec<&BurstMessage> = burst
        .messages
        .iter()
        .filter(|message| match &message.event_id {
            None => true,
            Some(id) => fresh_keys.remove(&burst.message_key(id)),
        })
        .collect();
    if !fresh.is_empty() {
        // One statement either opens the burst or appends to the open one,
        // arbitrated by the partial unique index: a node adding at the same
        // moment waits for this row and appends after it. Both arrays are
        // serde_json's compact text (`[...]`, never empty), so appending is
        // joining them without the brackets in between, and the stored
        // numbers stay exactly as written.
        let statement = tx
            .prepare_cached(
                "INSERT INTO bursts (id, flow, handler, trigger_name, customer, messages, deadline)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (flow, handler, customer) WHERE NOT claimed
                 DO UPDATE SET
                     messages = left(bursts.messages, -1) || ',' || right(EXCLUDED.messages, -1),
                     deadline = EXCLUDED.deadline",
            )
            .await
            .map_err(pg(&what))?;
        tx.execute(
            &statement,
            &[
                &burst.id,
                &burst.flow,
                &handler_number(burst.handler),
                &burst.trigger,
                &burst.customer,
                &to_json(&fresh, &what)?,
                &ceil_ms(burst.deadline),
            ],
        )
        .await
        .map_err(pg(&what))?;
    }
    tx.commit().await.map_err(pg(&what))
}

fn handler_number(handler: usize) -> i64 {
    i64::try_from(handler).unwrap_or(i64::MAX)
}

/// Decodes `id, flow, handler, trigger_name, customer, messages, deadline`.
fn decode_burst(row: &Row) -> Result<Burst, StoreError> {
    let what = "reading a burst";
    let id: String = row.try_get(0).map_err(pg(what))?;
    let handler: i64 = row.try_get(2).map_err(pg(what))?;
    let messages: String = row.try_get(5).map_err(pg(what))?;
    Ok(Burst {
        flow: row.try_get(1).map_err(pg(what))?,
        handler: usize::try_from(handler)
            .map_err(|_| corrupt(&id, format!("handler {handler} is negative")))?,
        trigger: row.try_get(3).map_err(pg(what))?,
        customer: row.try_get(4).map_err(pg(what))?,
        messages: serde_json::from_str(&messages)
            .map_err(|e| corrupt(&id, format!("messages: {e}")))?,
        deadline: time(row.try_get(6).map_err(pg(what))?, &id, "deadline")?,
        id,
    })
}

pub(super) async fn claim_due(
    store: &PostgresStore,
    now: DateTime<Utc>,
    n: usize,
) -> Result<Vec<Burst>, StoreError> {
    let what = "claiming due bursts";
    let client = store.client().await?;
    // One statement: the due bursts are locked (those another node is
    // claiming right now are skipped), closed, and leased; each comes back
    // with the deadline it had before the lease.
    let statement = client
        .prepare_cached(
            "WITH due AS (
                 SELECT id, deadline FROM bursts WHERE deadline <= $1
                 ORDER BY deadline, id LIMIT $2
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE bursts SET claimed = TRUE, deadline = $3
             FROM due WHERE bursts.id = due.id
             RETURNING bursts.id, bursts.flow, bursts.handler, bursts.trigger_name,
                 bursts.customer, bursts.messages, due.deadline",
        )
        .await
        .map_err(pg(what))?;
    let until = ceil_ms(now + store.lease);
    let rows = client
        .query(&statement, &[&floor_ms(now), &limit(n), &until])
        .await
        .map_err(pg(what))?;
    let mut bursts = rows
        .iter()
        .map(decode_burst)
        .collect::<Result<Vec<_>, _>>()?;
    // RETURNING keeps no order.
    bursts.sort_by(|a, b| (a.deadline, &a.id).cmp(&(b.deadline, &b.id)));
    Ok(bursts)
}

pub(super) async fn finish(store: &PostgresStore, id: &str) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute("DELETE FROM bursts WHERE id = $1", &[&id])
        .await
        .map_err(pg(format_args!("finishing burst {id}")))?;
    Ok(())
}

pub(super) async fn next_deadline(
    store: &PostgresStore,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let what = "reading the next burst deadline";
    let client = store.client().await?;
    let statement = client
        .prepare_cached("SELECT min(deadline) FROM bursts")
        .await
        .map_err(pg(what))?;
    let row = client.query_one(&statement, &[]).await.map_err(pg(what))?;
    let ms: Option<i64> = row.try_get(0).map_err(pg(what))?;
    ms.map(|ms| time(ms, "bursts", "deadline")).transpose()
}
