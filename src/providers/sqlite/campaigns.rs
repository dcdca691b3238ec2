//! The SQLite tables and statements for campaigns and opt-outs (schema
//! version 4).
//!
//! | table                 | holds                                                        |
//! |-----------------------|--------------------------------------------------------------|
//! | `campaigns`           | `id` (primary key), `flow`, `trigger_name`, `sender`, `state`, `pause_reason`, `quiet_hours`, `source`, `created_at` |
//! | `campaign_recipients` | `(campaign, line)` → `phone`, `fields` JSON, `state`, `run_id`, `not_before`, `started_at`; indexed for claims (pending in line order), the next due time (pending by `not_before`) and the tier (started by sender's time); files of earlier builds get the line-order index when opened |
//! | `opt_outs`            | `phone` (primary key) → `opted_out_at` (NULL: unknown), `source` |
//!
//! A claim is one `BEGIN IMMEDIATE` transaction that selects the pending
//! recipients due at `now` and moves their `not_before` to the end of the
//! lease, so two processes never take the same recipient while it lasts.

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{collect, ctx, execute, floor_ms, limit, text, time, to_json};
use crate::campaign::OptOutRecord;
use crate::providers::campaigns::{
    counts_from, duplicate_campaign, duplicate_line, Campaign, CampaignCounts, CampaignRecipient,
    CampaignStart, CampaignState, OptChangeRecord, RecipientState,
};
use crate::providers::StoreError;

/// The tables, created idempotently by the migration.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS campaigns (
    id           TEXT PRIMARY KEY NOT NULL,
    flow         TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    sender       TEXT NOT NULL,
    state        TEXT NOT NULL,
    pause_reason TEXT,
    quiet_hours  TEXT,
    source       TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS campaign_recipients (
    campaign   TEXT NOT NULL REFERENCES campaigns (id),
    line       INTEGER NOT NULL,
    phone      TEXT NOT NULL,
    fields     TEXT NOT NULL,
    state      TEXT NOT NULL,
    run_id     TEXT,
    not_before INTEGER NOT NULL,
    started_at INTEGER,
    PRIMARY KEY (campaign, line)
);
CREATE INDEX IF NOT EXISTS campaign_recipients_pending
    ON campaign_recipients (campaign, not_before, line) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS campaign_recipients_due
    ON campaign_recipients (campaign, line) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS campaign_recipients_started
    ON campaign_recipients (started_at) WHERE started_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS opt_outs (
    phone        TEXT PRIMARY KEY NOT NULL,
    opted_out_at INTEGER,
    source       TEXT NOT NULL
);
";

fn campaign_state(row: &Row<'_>, i: usize, id: &str) -> Result<CampaignState, StoreError> {
    let raw = text(row, i, id, "state")?;
    CampaignState::parse(&raw)
        .ok_or_else(|| super::corrupt(id, format!("state `{raw}` is not a campaign state")))
}

fn recipient_state(row: &Row<'_>, i: usize, id: &str) -> Result<RecipientState, StoreError> {
    let raw = text(row, i, id, "state")?;
    RecipientState::parse(&raw)
        .ok_or_else(|| super::corrupt(id, format!("state `{raw}` is not a recipient state")))
}

fn optional_text(
    row: &Row<'_>,
    i: usize,
    id: &str,
    what: &str,
) -> Result<Option<String>, StoreError> {
    match row.get_ref(i) {
        Ok(ValueRef::Null) => Ok(None),
        _ => text(row, i, id, what).map(Some),
    }
}

const CAMPAIGN_COLUMNS: &str =
    "id, flow, trigger_name, sender, state, pause_reason, quiet_hours, source, created_at";

fn decode_campaign(row: &Row<'_>) -> Result<Campaign, StoreError> {
    let id = text(row, 0, "<campaign without a text id>", "id")?;
    let what = format!("campaign {id}");
    Ok(Campaign {
        flow: text(row, 1, &what, "flow")?,
        trigger: text(row, 2, &what, "trigger_name")?,
        sender: text(row, 3, &what, "sender")?,
        state: campaign_state(row, 4, &what)?,
        pause_reason: optional_text(row, 5, &what, "pause_reason")?,
        quiet_hours: optional_text(row, 6, &what, "quiet_hours")?,
        source: text(row, 7, &what, "source")?,
        created_at: time(row, 8, &what, "created_at")?,
        id,
    })
}

fn decode_recipient(row: &Row<'_>) -> Result<CampaignRecipient, StoreError> {
    let line: i64 = row.get(0).map_err(ctx("reading a recipient's line"))?;
    let what = format!("campaign recipient on line {line}");
    let fields_text = text(row, 2, &what, "fields")?;
    let fields = serde_json::from_str(&fields_text)
        .map_err(|e| super::corrupt(&what, format!("fields are not a JSON object: {e}")))?;
    Ok(CampaignRecipient {
        line: u64::try_from(line).map_err(|_| super::corrupt(&what, "the line is negative"))?,
        phone: text(row, 1, &what, "phone")?,
        fields,
        state: recipient_state(row, 3, &what)?,
        run_id: optional_text(row, 4, &what, "run_id")?,
    })
}

const RECIPIENT_COLUMNS: &str = "line, phone, fields, state, run_id";

fn line_param(line: u64) -> i64 {
    i64::try_from(line).unwrap_or(i64::MAX)
}

/// The campaign and all its rows in one transaction.
pub(super) fn create(
    conn: &mut Connection,
    campaign: &Campaign,
    recipients: &[CampaignRecipient],
) -> Result<(), StoreError> {
    let what = format!("recording campaign {}", campaign.id);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx(&what))?;
    let inserted = execute(
        &tx,
        "INSERT INTO campaigns (id, flow, trigger_name, sender, state, pause_reason,
             quiet_hours, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
        params![
            campaign.id,
            campaign.flow,
            campaign.trigger,
            campaign.sender,
            campaign.state.as_str(),
            campaign.pause_reason,
            campaign.quiet_hours,
            campaign.source,
            floor_ms(campaign.created_at)
        ],
        &what,
    )?;
    if inserted == 0 {
        return Err(duplicate_campaign(&campaign.id));
    }
    let created = floor_ms(campaign.created_at);
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO campaign_recipients (campaign, line, phone, fields, state, run_id,
                     not_before, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL) ON CONFLICT DO NOTHING",
            )
            .map_err(ctx(&what))?;
        for recipient in recipients {
            let fields = to_json(&recipient.fields, &what)?;
            let n = insert
                .execute(params![
                    campaign.id,
                    line_param(recipient.line),
                    recipient.phone,
                    fields,
                    recipient.state.as_str(),
                    recipient.run_id,
                    created
                ])
                .map_err(ctx(&what))?;
            if n == 0 {
                return Err(duplicate_line(&campaign.id, recipient.line));
            }
        }
    }
    tx.commit().map_err(ctx(&what))
}

pub(super) fn get(
    conn: &Connection,
    id: &str,
) -> Result<Option<(Campaign, CampaignCounts)>, StoreError> {
    let found = collect(
        conn,
        &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1"),
        params![id],
        "reading a campaign",
        decode_campaign,
    )?;
    let Some(campaign) = found.into_iter().next() else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT state, count(*) FROM campaign_recipients WHERE campaign = ?1 GROUP BY state",
        )
        .map_err(ctx("counting a campaign's recipients"))?;
    let mut rows = stmt
        .query(params![id])
        .map_err(ctx("counting a campaign's recipients"))?;
    let mut pairs = Vec::new();
    while let Some(row) = rows
        .next()
        .map_err(ctx("counting a campaign's recipients"))?
    {
        let state = recipient_state(row, 0, id)?;
        let n: i64 = row
            .get(1)
            .map_err(ctx("counting a campaign's recipients"))?;
        pairs.push((state, u64::try_from(n).unwrap_or(0)));
    }
    Ok(Some((campaign, counts_from(pairs))))
}

pub(super) fn list(conn: &Connection) -> Result<Vec<Campaign>, StoreError> {
    collect(
        conn,
        &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at, id"),
        [],
        "reading campaigns",
        decode_campaign,
    )
}

pub(super) fn set_state(
    conn: &Connection,
    id: &str,
    from: &[CampaignState],
    to: CampaignState,
    reason: Option<&str>,
) -> Result<bool, StoreError> {
    // The allowed states as one list: `state IN ('running','paused')`
    // made of the enum's own names, never of outside text.
    let allowed = from
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    if allowed.is_empty() {
        return Ok(false);
    }
    let n = execute(
        conn,
        &format!(
            "UPDATE campaigns SET state = ?2, pause_reason = ?3 WHERE id = ?1 AND state IN ({allowed})"
        ),
        params![id, to.as_str(), reason],
        format_args!("changing the state of campaign {id}"),
    )?;
    Ok(n > 0)
}

pub(super) fn claim(
    conn: &mut Connection,
    id: &str,
    now: DateTime<Utc>,
    n: usize,
    lease_until: DateTime<Utc>,
) -> Result<Vec<CampaignRecipient>, StoreError> {
    let what = format!("claiming recipients of campaign {id}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx(&what))?;
    let claimed = collect(
        &tx,
        &format!(
            // In line order along the index, stopping at the limit: by
            // `not_before`, SQLite would sort every due row of the list for
            // each claim (12 ms per claim at 100,000 rows, against 0.01).
            "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients
             INDEXED BY campaign_recipients_due
             WHERE campaign = ?1 AND state = 'pending' AND not_before <= ?2
             ORDER BY line LIMIT ?3"
        ),
        params![id, floor_ms(now), limit(n)],
        &what,
        decode_recipient,
    )?;
    {
        let mut lease = tx
            .prepare_cached(
                "UPDATE campaign_recipients SET not_before = ?3 WHERE campaign = ?1 AND line = ?2",
            )
            .map_err(ctx(&what))?;
        for recipient in &claimed {
            lease
                .execute(params![
                    id,
                    line_param(recipient.line),
                    floor_ms(lease_until)
                ])
                .map_err(ctx(&what))?;
        }
    }
    tx.commit().map_err(ctx(&what))?;
    Ok(claimed)
}

pub(super) fn defer(
    conn: &Connection,
    id: &str,
    line: u64,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute(
        conn,
        "UPDATE campaign_recipients SET not_before = ?3
         WHERE campaign = ?1 AND line = ?2 AND state = 'pending'",
        params![id, line_param(line), super::ceil_ms(until)],
        format_args!("deferring line {line} of campaign {id}"),
    )?;
    Ok(())
}

pub(super) fn finish(
    conn: &Connection,
    id: &str,
    line: u64,
    state: RecipientState,
    run_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let started_at = (state == RecipientState::Started).then(|| floor_ms(at));
    execute(
        conn,
        "UPDATE campaign_recipients SET state = ?3, run_id = ?4,
             started_at = COALESCE(started_at, ?5)
         WHERE campaign = ?1 AND line = ?2",
        params![id, line_param(line), state.as_str(), run_id, started_at],
        format_args!("recording line {line} of campaign {id}"),
    )?;
    Ok(())
}

/// [`crate::providers::Store::take_tier_slot`] in one `BEGIN IMMEDIATE`
/// transaction, so that processes sharing the file never exceed the tier
/// together.
pub(super) fn take_tier_slot(
    conn: &mut Connection,
    id: &str,
    line: u64,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let what = format!("taking a tier slot for line {line} of campaign {id}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx(&what))?;
    let since = floor_ms(now - chrono::Duration::hours(24));
    // The recipient's phone and its campaign's sender.
    let found: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT r.phone, c.sender FROM campaign_recipients r
             JOIN campaigns c ON c.id = r.campaign
             WHERE r.campaign = ?1 AND r.line = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![id, line_param(line)], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
        })
        .map_err(ctx(&what))?;
    let Some((phone, sender)) = found else {
        return Ok(None);
    };
    // A customer whose conversation the window counts already takes no
    // new slot; anyone else needs one of the `limit`.
    let (counted, used, oldest): (bool, i64, Option<i64>) = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(r.phone = ?2), 0), COUNT(DISTINCT r.phone), MIN(r.started_at)
             FROM campaign_recipients r JOIN campaigns c ON c.id = r.campaign
             WHERE c.sender = ?1 AND r.started_at IS NOT NULL AND r.started_at >= ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![sender, phone, since], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
        })
        .map_err(ctx(&what))?;
    if !counted && used >= i64::from(limit) {
        // Full until the oldest start leaves the window.
        let free_at = oldest
            .and_then(DateTime::from_timestamp_millis)
            .map_or(now, |at| at + chrono::Duration::hours(24));
        return Ok(Some(free_at.max(now)));
    }
    execute(
        &tx,
        "UPDATE campaign_recipients SET started_at = COALESCE(started_at, ?3)
         WHERE campaign = ?1 AND line = ?2",
        params![id, line_param(line), floor_ms(now)],
        &what,
    )?;
    tx.commit().map_err(ctx(&what))?;
    Ok(None)
}

pub(super) fn next_pending(
    conn: &Connection,
    id: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let ms: Option<i64> = conn
        .prepare_cached(
            "SELECT min(not_before) FROM campaign_recipients WHERE campaign = ?1 AND state = 'pending'",
        )
        .and_then(|mut stmt| stmt.query_row(params![id], |row| row.get(0)))
        .map_err(ctx(format_args!("reading the next recipient of campaign {id}")))?;
    ms.map(|ms| {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| super::corrupt(id, format!("not_before {ms} is out of range")))
    })
    .transpose()
}

pub(super) fn recipients(
    conn: &Connection,
    id: &str,
) -> Result<Vec<CampaignRecipient>, StoreError> {
    collect(
        conn,
        &format!(
            "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients WHERE campaign = ?1 ORDER BY line"
        ),
        params![id],
        "reading a campaign's recipients",
        decode_recipient,
    )
}

fn decode_start(row: &Row<'_>) -> Result<CampaignStart, StoreError> {
    let phone = text(row, 0, "<campaign start>", "phone")?;
    Ok(CampaignStart {
        at: time(row, 1, &phone, "started_at")?,
        phone,
    })
}

pub(super) fn starts(
    conn: &Connection,
    sender: &str,
    since: DateTime<Utc>,
) -> Result<Vec<CampaignStart>, StoreError> {
    collect(
        conn,
        "SELECT r.phone, r.started_at FROM campaign_recipients r
         JOIN campaigns c ON c.id = r.campaign
         WHERE r.started_at IS NOT NULL AND r.started_at >= ?2 AND c.sender = ?1
         ORDER BY r.started_at",
        params![sender, floor_ms(since)],
        "reading the tier's window",
        decode_start,
    )
}

pub(super) fn record_opt_change(
    conn: &Connection,
    change: &OptChangeRecord,
) -> Result<(), StoreError> {
    let what = format!("recording the opt-out of {}", change.phone);
    if change.opted_out {
        execute(
            conn,
            "INSERT INTO opt_outs (phone, opted_out_at, source) VALUES (?1, ?2, ?3)
             ON CONFLICT (phone) DO UPDATE
             SET opted_out_at = excluded.opted_out_at, source = excluded.source",
            params![change.phone, floor_ms(change.at), change.source],
            &what,
        )?;
    } else {
        execute(
            conn,
            "DELETE FROM opt_outs WHERE phone = ?1",
            params![change.phone],
            &what,
        )?;
    }
    Ok(())
}

pub(super) fn is_opted_out(conn: &Connection, phone: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM opt_outs WHERE phone = ?1)")
        .and_then(|mut stmt| stmt.query_row(params![phone], |row| row.get::<_, bool>(0)))
        .map_err(ctx(format_args!("looking up the opt-out of {phone}")))
}

fn decode_opt_out(row: &Row<'_>) -> Result<OptOutRecord, StoreError> {
    let phone = text(row, 0, "<opt-out>", "phone")?;
    let opted_out_at = match row.get_ref(1) {
        Ok(ValueRef::Null) => None,
        _ => Some(time(row, 1, &phone, "opted_out_at")?),
    };
    Ok(OptOutRecord {
        source: text(row, 2, &phone, "source")?,
        opted_out_at,
        phone,
    })
}

pub(super) fn opt_outs(conn: &Connection) -> Result<Vec<OptOutRecord>, StoreError> {
    collect(
        conn,
        "SELECT phone, opted_out_at, source FROM opt_outs ORDER BY phone",
        [],
        "reading opt-outs",
        decode_opt_out,
    )
}

pub(super) fn import(conn: &mut Connection, records: &[OptOutRecord]) -> Result<usize, StoreError> {
    let what = "importing opt-outs";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx(what))?;
    let mut added = 0;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO opt_outs (phone, opted_out_at, source) VALUES (?1, ?2, ?3)
                 ON CONFLICT (phone) DO NOTHING",
            )
            .map_err(ctx(what))?;
        for record in records {
            added += insert
                .execute(params![
                    record.phone,
                    record.opted_out_at.map(floor_ms),
                    record.source
                ])
                .map_err(ctx(what))?;
        }
    }
    tx.commit().map_err(ctx(what))?;
    Ok(added)
}
