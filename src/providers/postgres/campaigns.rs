//! The PostgreSQL tables and statements for campaigns and opt-outs, shared
//! by every node.
//!
//! | table                 | holds                                                        |
//! |-----------------------|--------------------------------------------------------------|
//! | `campaigns`           | `id` (primary key), `flow`, `trigger_name`, `sender` (indexed, for the tier), `state`, `pause_reason`, `quiet_hours`, `source`, `created_at` |
//! | `campaign_recipients` | `(campaign, line)` → `phone`, `fields` (a JSON object as text), `state`, `run_id`, `not_before`, `started_at`; indexed for claims (pending in line order), the next due time (pending by `not_before`) and the tier (starts by campaign and time) |
//! | `opt_outs`            | `phone` (primary key) → `opted_out_at` (NULL: unknown), `source` |
//!
//! Times are BIGINT milliseconds (UTC), rounded as in the SQLite store.
//! Text keys are in the `"C"` collation so that listings come in byte
//! order, as in the other stores.
//!
//! Why it is safe when several nodes share the tables:
//!
//! - [`create`] records the campaign and all its rows in one transaction
//!   (rows in batches of one `INSERT ... SELECT FROM unnest(...)` each); a
//!   campaign id taken by another node is refused by the primary key
//!   (`ON CONFLICT DO NOTHING`), and nothing is kept.
//! - [`claim`] is one statement that locks the pending recipients due at
//!   `now` with `FOR UPDATE SKIP LOCKED` and moves their `not_before` to
//!   the end of the lease: two nodes never take the same recipient while
//!   the lease lasts, and a node that dies with recipients loses nothing
//!   (they are due again when the lease ends).
//! - [`take_tier_slot`] counts the sender's starts of the last 24 hours and
//!   records the new start in one transaction holding an advisory lock
//!   keyed by the sender (`pg_advisory_xact_lock(hashtext('tier:' ||
//!   sender))`): nodes take one sender's slots one after the other, each
//!   counting (read committed: a fresh snapshot per statement) every start
//!   the one before committed, so together they never exceed the tier.
//! - Opt-outs are keyed by the number: recording one is an upsert, an
//!   import one `INSERT ... ON CONFLICT DO NOTHING` that counts the rows it
//!   added.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{corrupt, pg, time, to_json, PostgresStore};
use crate::campaign::OptOutRecord;
use crate::providers::campaigns::{
    counts_from, duplicate_campaign, duplicate_line, Campaign, CampaignCounts, CampaignRecipient,
    CampaignStart, CampaignState, OptChangeRecord, RecipientState,
};
use crate::providers::millis::{ceil_ms, floor_ms, limit};
use crate::providers::StoreError;

/// The tables, created idempotently by the migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS campaigns (
    id           TEXT COLLATE "C" PRIMARY KEY,
    flow         TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    sender       TEXT NOT NULL,
    state        TEXT NOT NULL,
    pause_reason TEXT,
    quiet_hours  TEXT,
    source       TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_sender ON campaigns (sender);

CREATE TABLE IF NOT EXISTS campaign_recipients (
    campaign   TEXT COLLATE "C" NOT NULL REFERENCES campaigns (id),
    line       BIGINT NOT NULL,
    phone      TEXT NOT NULL,
    fields     TEXT NOT NULL,
    state      TEXT NOT NULL,
    run_id     TEXT,
    not_before BIGINT NOT NULL,
    started_at BIGINT,
    PRIMARY KEY (campaign, line)
);
CREATE INDEX IF NOT EXISTS campaign_recipients_pending
    ON campaign_recipients (campaign, not_before, line) WHERE state = 'pending';
-- A claim walks the pending rows in line order and stops after `limit`
-- due ones, instead of sorting every due row of the campaign (14 times
-- faster on a campaign of 100,000).
CREATE INDEX IF NOT EXISTS campaign_recipients_due
    ON campaign_recipients (campaign, line) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS campaign_recipients_started
    ON campaign_recipients (campaign, started_at) WHERE started_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS opt_outs (
    phone        TEXT COLLATE "C" PRIMARY KEY,
    opted_out_at BIGINT,
    source       TEXT NOT NULL
);
"#;

/// How many recipient rows one insert statement carries: large enough that
/// 100,000 rows take a few round trips, small enough to keep each message
/// to the server a few megabytes.
const ROWS_PER_INSERT: usize = 10_000;

const CAMPAIGN_COLUMNS: &str =
    "id, flow, trigger_name, sender, state, pause_reason, quiet_hours, source, created_at";

fn decode_campaign(row: &Row) -> Result<Campaign, StoreError> {
    let reading = "reading a campaign";
    let id: String = row.try_get(0).map_err(pg(reading))?;
    let what = format!("campaign {id}");
    let state: String = row.try_get(4).map_err(pg(reading))?;
    Ok(Campaign {
        flow: row.try_get(1).map_err(pg(reading))?,
        trigger: row.try_get(2).map_err(pg(reading))?,
        sender: row.try_get(3).map_err(pg(reading))?,
        state: CampaignState::parse(&state)
            .ok_or_else(|| corrupt(&what, format!("state `{state}` is not a campaign state")))?,
        pause_reason: row.try_get(5).map_err(pg(reading))?,
        quiet_hours: row.try_get(6).map_err(pg(reading))?,
        source: row.try_get(7).map_err(pg(reading))?,
        created_at: time(row.try_get(8).map_err(pg(reading))?, &what, "created_at")?,
        id,
    })
}

fn recipient_state(raw: &str, what: &str) -> Result<RecipientState, StoreError> {
    RecipientState::parse(raw)
        .ok_or_else(|| corrupt(what, format!("state `{raw}` is not a recipient state")))
}

const RECIPIENT_COLUMNS: &str = "line, phone, fields, state, run_id";

/// Decodes [`RECIPIENT_COLUMNS`].
fn decode_recipient(row: &Row) -> Result<CampaignRecipient, StoreError> {
    let reading = "reading a campaign recipient";
    let line: i64 = row.try_get(0).map_err(pg(reading))?;
    let what = format!("campaign recipient on line {line}");
    let fields: String = row.try_get(2).map_err(pg(reading))?;
    let state: String = row.try_get(3).map_err(pg(reading))?;
    Ok(CampaignRecipient {
        line: u64::try_from(line).map_err(|_| corrupt(&what, "the line is negative"))?,
        phone: row.try_get(1).map_err(pg(reading))?,
        fields: serde_json::from_str(&fields)
            .map_err(|e| corrupt(&what, format!("fields are not a JSON object: {e}")))?,
        state: recipient_state(&state, &what)?,
        run_id: row.try_get(4).map_err(pg(reading))?,
    })
}

fn line_param(line: u64) -> i64 {
    i64::try_from(line).unwrap_or(i64::MAX)
}

/// The first line that comes twice in `recipients`, in list order.
fn repeated_line(recipients: &[CampaignRecipient]) -> Option<u64> {
    let mut seen = HashSet::with_capacity(recipients.len());
    recipients
        .iter()
        .map(|r| r.line)
        .find(|line| !seen.insert(*line))
}

/// The campaign and all its rows in one transaction.
pub(super) async fn create(
    store: &PostgresStore,
    campaign: Campaign,
    recipients: Vec<CampaignRecipient>,
) -> Result<(), StoreError> {
    let what = format!("recording campaign {}", campaign.id);
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg(&what))?;
    let created = floor_ms(campaign.created_at);
    let inserted = tx
        .execute(
            "INSERT INTO campaigns (id, flow, trigger_name, sender, state, pause_reason,
                 quiet_hours, source, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
            &[
                &campaign.id,
                &campaign.flow,
                &campaign.trigger,
                &campaign.sender,
                &campaign.state.as_str(),
                &campaign.pause_reason,
                &campaign.quiet_hours,
                &campaign.source,
                &created,
            ],
        )
        .await
        .map_err(pg(&what))?;
    if inserted == 0 {
        return Err(duplicate_campaign(&campaign.id));
    }
    // The campaign is new, so its rows can only collide with each other:
    // found here, before anything is sent (dropping the transaction rolls
    // the campaign back).
    if let Some(line) = repeated_line(&recipients) {
        return Err(duplicate_line(&campaign.id, line));
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO campaign_recipients (campaign, line, phone, fields, state, run_id,
                 not_before, started_at)
             SELECT $1, line, phone, fields, state, run_id, $2, NULL
             FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
                 AS listed (line, phone, fields, state, run_id)",
        )
        .await
        .map_err(pg(&what))?;
    for batch in recipients.chunks(ROWS_PER_INSERT) {
        let lines: Vec<i64> = batch.iter().map(|r| line_param(r.line)).collect();
        let phones: Vec<&str> = batch.iter().map(|r| r.phone.as_str()).collect();
        let fields = batch
            .iter()
            .map(|r| to_json(&r.fields, &what))
            .collect::<Result<Vec<String>, _>>()?;
        let states: Vec<&str> = batch.iter().map(|r| r.state.as_str()).collect();
        let run_ids: Vec<Option<&str>> = batch.iter().map(|r| r.run_id.as_deref()).collect();
        tx.execute(
            &statement,
            &[
                &campaign.id,
                &created,
                &lines,
                &phones,
                &fields,
                &states,
                &run_ids,
            ],
        )
        .await
        .map_err(pg(&what))?;
    }
    tx.commit().await.map_err(pg(&what))
}

pub(super) async fn get(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<(Campaign, CampaignCounts)>, StoreError> {
    let client = store.client().await?;
    let found = client
        .query_opt(
            &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(pg(format_args!("reading campaign {id}")))?;
    let Some(row) = found else {
        return Ok(None);
    };
    let campaign = decode_campaign(&row)?;
    let counting = format!("counting the recipients of campaign {id}");
    let statement = client
        .prepare_cached(
            "SELECT state, count(*) FROM campaign_recipients WHERE campaign = $1 GROUP BY state",
        )
        .await
        .map_err(pg(&counting))?;
    let mut pairs = Vec::new();
    for row in client
        .query(&statement, &[&id])
        .await
        .map_err(pg(&counting))?
    {
        let state: String = row.try_get(0).map_err(pg(&counting))?;
        let n: i64 = row.try_get(1).map_err(pg(&counting))?;
        pairs.push((recipient_state(&state, id)?, u64::try_from(n).unwrap_or(0)));
    }
    Ok(Some((campaign, counts_from(pairs))))
}

pub(super) async fn list(store: &PostgresStore) -> Result<Vec<Campaign>, StoreError> {
    let what = "reading campaigns";
    let client = store.client().await?;
    let rows = client
        .query(
            &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at, id"),
            &[],
        )
        .await
        .map_err(pg(what))?;
    rows.iter().map(decode_campaign).collect()
}

pub(super) async fn set_state(
    store: &PostgresStore,
    id: &str,
    from: &[CampaignState],
    to: CampaignState,
    reason: Option<String>,
) -> Result<bool, StoreError> {
    if from.is_empty() {
        return Ok(false);
    }
    let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let client = store.client().await?;
    // One statement: the state is checked and changed atomically, so of two
    // nodes changing it at once only one sees the state it moves from.
    let n = client
        .execute(
            "UPDATE campaigns SET state = $2, pause_reason = $3
             WHERE id = $1 AND state = ANY($4::text[])",
            &[&id, &to.as_str(), &reason, &allowed],
        )
        .await
        .map_err(pg(format_args!("changing the state of campaign {id}")))?;
    Ok(n > 0)
}

pub(super) async fn claim(
    store: &PostgresStore,
    id: &str,
    now: DateTime<Utc>,
    n: usize,
    lease_until: DateTime<Utc>,
) -> Result<Vec<CampaignRecipient>, StoreError> {
    let what = format!("claiming recipients of campaign {id}");
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            // Returns RECIPIENT_COLUMNS.
            "WITH due AS (
                 SELECT line FROM campaign_recipients
                 WHERE campaign = $1 AND state = 'pending' AND not_before <= $2
                 ORDER BY line LIMIT $3
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE campaign_recipients AS r SET not_before = $4
             FROM due WHERE r.campaign = $1 AND r.line = due.line
             RETURNING r.line, r.phone, r.fields, r.state, r.run_id",
        )
        .await
        .map_err(pg(&what))?;
    let rows = client
        .query(
            &statement,
            &[&id, &floor_ms(now), &limit(n), &floor_ms(lease_until)],
        )
        .await
        .map_err(pg(&what))?;
    let mut claimed = rows
        .iter()
        .map(decode_recipient)
        .collect::<Result<Vec<_>, _>>()?;
    // RETURNING keeps no order.
    claimed.sort_by_key(|r| r.line);
    Ok(claimed)
}

/// [`crate::providers::Store::take_tier_slot`] in one transaction under an
/// advisory lock keyed by the sender, so that nodes never exceed the tier
/// together.
pub(super) async fn take_tier_slot(
    store: &PostgresStore,
    id: &str,
    line: u64,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let what = format!("taking a tier slot for line {line} of campaign {id}");
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg(&what))?;
    // The recipient's phone and its campaign's sender.
    let statement = tx
        .prepare_cached(
            "SELECT r.phone, c.sender FROM campaign_recipients r
             JOIN campaigns c ON c.id = r.campaign
             WHERE r.campaign = $1 AND r.line = $2",
        )
        .await
        .map_err(pg(&what))?;
    let Some(row) = tx
        .query_opt(&statement, &[&id, &line_param(line)])
        .await
        .map_err(pg(&what))?
    else {
        return Ok(None);
    };
    let phone: String = row.try_get(0).map_err(pg(&what))?;
    let sender: String = row.try_get(1).map_err(pg(&what))?;
    // Held until the transaction ends: the next node taking a slot of this
    // sender counts this one's start.
    let statement = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtext('tier:' || $1::text))")
        .await
        .map_err(pg(&what))?;
    tx.execute(&statement, &[&sender])
        .await
        .map_err(pg(&what))?;
    // A customer whose conversation the window counts already takes no
    // new slot; anyone else needs one of the `limit`.
    let statement = tx
        .prepare_cached(
            "SELECT COALESCE(bool_or(r.phone = $2), FALSE), count(DISTINCT r.phone),
                 min(r.started_at)
             FROM campaign_recipients r JOIN campaigns c ON c.id = r.campaign
             WHERE c.sender = $1 AND r.started_at IS NOT NULL AND r.started_at >= $3",
        )
        .await
        .map_err(pg(&what))?;
    let since = floor_ms(now - chrono::Duration::hours(24));
    let window = tx
        .query_one(&statement, &[&sender, &phone, &since])
        .await
        .map_err(pg(&what))?;
    let counted: bool = window.try_get(0).map_err(pg(&what))?;
    let used: i64 = window.try_get(1).map_err(pg(&what))?;
    let oldest: Option<i64> = window.try_get(2).map_err(pg(&what))?;
    if !counted && used >= i64::from(limit) {
        // Full until the oldest start leaves the window.
        let free_at = match oldest {
            Some(ms) => time(ms, id, "started_at")? + chrono::Duration::hours(24),
            None => now,
        };
        return Ok(Some(free_at.max(now)));
    }
    let statement = tx
        .prepare_cached(
            "UPDATE campaign_recipients SET started_at = COALESCE(started_at, $3)
             WHERE campaign = $1 AND line = $2",
        )
        .await
        .map_err(pg(&what))?;
    tx.execute(&statement, &[&id, &line_param(line), &floor_ms(now)])
        .await
        .map_err(pg(&what))?;
    tx.commit().await.map_err(pg(&what))?;
    Ok(None)
}

pub(super) async fn defer(
    store: &PostgresStore,
    id: &str,
    line: u64,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    let what = format!("deferring line {line} of campaign {id}");
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "UPDATE campaign_recipients SET not_before = $3
             WHERE campaign = $1 AND line = $2 AND state = 'pending'",
        )
        .await
        .map_err(pg(&what))?;
    client
        .execute(&statement, &[&id, &line_param(line), &ceil_ms(until)])
        .await
        .map_err(pg(&what))?;
    Ok(())
}

pub(super) async fn finish(
    store: &PostgresStore,
    id: &str,
    line: u64,
    state: RecipientState,
    run_id: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let what = format!("recording line {line} of campaign {id}");
    // The tier slot taken before the start keeps its time.
    let started_at = (state == RecipientState::Started).then(|| floor_ms(at));
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "UPDATE campaign_recipients SET state = $3, run_id = $4,
                 started_at = COALESCE(started_at, $5)
             WHERE campaign = $1 AND line = $2",
        )
        .await
        .map_err(pg(&what))?;
    client
        .execute(
            &statement,
            &[
                &id,
                &line_param(line),
                &state.as_str(),
                &run_id,
                &started_at,
            ],
        )
        .await
        .map_err(pg(&what))?;
    Ok(())
}

pub(super) async fn next_pending(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let what = format!("reading the next recipient of campaign {id}");
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT min(not_before) FROM campaign_recipients
             WHERE campaign = $1 AND state = 'pending'",
        )
        .await
        .map_err(pg(&what))?;
    let row = client
        .query_one(&statement, &[&id])
        .await
        .map_err(pg(&what))?;
    let ms: Option<i64> = row.try_get(0).map_err(pg(&what))?;
    ms.map(|ms| time(ms, id, "not_before")).transpose()
}

pub(super) async fn recipients(
    store: &PostgresStore,
    id: &str,
) -> Result<Vec<CampaignRecipient>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients
                 WHERE campaign = $1 ORDER BY line"
            ),
            &[&id],
        )
        .await
        .map_err(pg(format_args!("reading the recipients of campaign {id}")))?;
    rows.iter().map(decode_recipient).collect()
}

pub(super) async fn starts(
    store: &PostgresStore,
    sender: &str,
    since: DateTime<Utc>,
) -> Result<Vec<CampaignStart>, StoreError> {
    let what = format!("reading the tier's window of {sender}");
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT r.phone, r.started_at FROM campaign_recipients r
             JOIN campaigns c ON c.id = r.campaign
             WHERE r.started_at IS NOT NULL AND r.started_at >= $2 AND c.sender = $1
             ORDER BY r.started_at, r.campaign, r.line",
        )
        .await
        .map_err(pg(&what))?;
    let rows = client
        .query(&statement, &[&sender, &floor_ms(since)])
        .await
        .map_err(pg(&what))?;
    rows.iter()
        .map(|row| {
            let phone: String = row.try_get(0).map_err(pg(&what))?;
            Ok(CampaignStart {
                at: time(row.try_get(1).map_err(pg(&what))?, &phone, "started_at")?,
                phone,
            })
        })
        .collect()
}

pub(super) async fn record_opt_change(
    store: &PostgresStore,
    change: OptChangeRecord,
) -> Result<(), StoreError> {
    let what = format!("recording the opt-out of {}", change.phone);
    let client = store.client().await?;
    if change.opted_out {
        client
            .execute(
                "INSERT INTO opt_outs (phone, opted_out_at, source) VALUES ($1, $2, $3)
                 ON CONFLICT (phone) DO UPDATE
                 SET opted_out_at = EXCLUDED.opted_out_at, source = EXCLUDED.source",
                &[&change.phone, &floor_ms(change.at), &change.source],
            )
            .await
            .map_err(pg(&what))?;
    } else {
        client
            .execute("DELETE FROM opt_outs WHERE phone = $1", &[&change.phone])
            .await
            .map_err(pg(&what))?;
    }
    Ok(())
}

pub(super) async fn is_opted_out(store: &PostgresStore, phone: &str) -> Result<bool, StoreError> {
    let what = format!("looking up the opt-out of {phone}");
    let client = store.client().await?;
    let statement = client
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM opt_outs WHERE phone = $1)")
        .await
        .map_err(pg(&what))?;
    let row = client
        .query_one(&statement, &[&phone])
        .await
        .map_err(pg(&what))?;
    row.try_get(0).map_err(pg(&what))
}

pub(super) async fn opt_outs(store: &PostgresStore) -> Result<Vec<OptOutRecord>, StoreError> {
    let what = "reading opt-outs";
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT phone, opted_out_at, source FROM opt_outs ORDER BY phone",
            &[],
        )
        .await
        .map_err(pg(what))?;
    rows.iter()
        .map(|row| {
            let phone: String = row.try_get(0).map_err(pg(what))?;
            let opted_out_at: Option<i64> = row.try_get(1).map_err(pg(what))?;
            Ok(OptOutRecord {
                opted_out_at: opted_out_at
                    .map(|ms| time(ms, &phone, "opted_out_at"))
                    .transpose()?,
                source: row.try_get(2).map_err(pg(what))?,
                phone,
            })
        })
        .collect()
}

/// One statement (so one transaction): a number opted out already keeps
/// its record, and a number repeated in `records` counts once.
pub(super) async fn import(
    store: &PostgresStore,
    records: Vec<OptOutRecord>,
) -> Result<usize, StoreError> {
    let what = "importing opt-outs";
    if records.is_empty() {
        return Ok(0);
    }
    let phones: Vec<&str> = records.iter().map(|r| r.phone.as_str()).collect();
    let times: Vec<Option<i64>> = records
        .iter()
        .map(|r| r.opted_out_at.map(floor_ms))
        .collect();
    let sources: Vec<&str> = records.iter().map(|r| r.source.as_str()).collect();
    let client = store.client().await?;
    let added = client
        .execute(
            "INSERT INTO opt_outs (phone, opted_out_at, source)
             SELECT phone, opted_out_at, source
             FROM unnest($1::text[], $2::bigint[], $3::text[])
                 WITH ORDINALITY AS imported (phone, opted_out_at, source, position)
             ORDER BY position
             ON CONFLICT (phone) DO NOTHING",
            &[&phones, &times, &sources],
        )
        .await
        .map_err(pg(what))?;
    Ok(usize::try_from(added).unwrap_or(usize::MAX))
}
