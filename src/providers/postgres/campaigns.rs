//! The PostgreSQL tables and statements for campaigns and opt-outs
//! (`campaigns`, `campaign_recipients`, `opt_outs`).

use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::campaign::OptOutRecord;
use crate::providers::campaigns::{
    Campaign, CampaignCounts, CampaignRecipient, CampaignStart, CampaignState, OptChangeRecord,
    RecipientState,
};
use crate::providers::StoreError;

/// The tables, created idempotently by the migration.
pub(super) const SCHEMA: &str = "";

fn unsupported() -> StoreError {
    StoreError::Unsupported("campaigns yet")
}

pub(super) async fn create(
    store: &PostgresStore,
    campaign: Campaign,
    recipients: Vec<CampaignRecipient>,
) -> Result<(), StoreError> {
    let _ = (store, campaign, recipients);
    Err(unsupported())
}

pub(super) async fn get(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<(Campaign, CampaignCounts)>, StoreError> {
    let _ = (store, id);
    Err(unsupported())
}

pub(super) async fn list(store: &PostgresStore) -> Result<Vec<Campaign>, StoreError> {
    let _ = store;
    Err(unsupported())
}

pub(super) async fn set_state(
    store: &PostgresStore,
    id: &str,
    from: &[CampaignState],
    to: CampaignState,
    reason: Option<String>,
) -> Result<bool, StoreError> {
    let _ = (store, id, from, to, reason);
    Err(unsupported())
}

pub(super) async fn claim(
    store: &PostgresStore,
    id: &str,
    now: DateTime<Utc>,
    limit: usize,
    lease_until: DateTime<Utc>,
) -> Result<Vec<CampaignRecipient>, StoreError> {
    let _ = (store, id, now, limit, lease_until);
    Err(unsupported())
}

pub(super) async fn take_tier_slot(
    store: &PostgresStore,
    id: &str,
    line: u64,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let _ = (store, id, line, now, limit);
    Err(unsupported())
}

pub(super) async fn defer(
    store: &PostgresStore,
    id: &str,
    line: u64,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    let _ = (store, id, line, until);
    Err(unsupported())
}

pub(super) async fn finish(
    store: &PostgresStore,
    id: &str,
    line: u64,
    state: RecipientState,
    run_id: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let _ = (store, id, line, state, run_id, at);
    Err(unsupported())
}

pub(super) async fn next_pending(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let _ = (store, id);
    Err(unsupported())
}

pub(super) async fn recipients(
    store: &PostgresStore,
    id: &str,
) -> Result<Vec<CampaignRecipient>, StoreError> {
    let _ = (store, id);
    Err(unsupported())
}

pub(super) async fn starts(
    store: &PostgresStore,
    sender: &str,
    since: DateTime<Utc>,
) -> Result<Vec<CampaignStart>, StoreError> {
    let _ = (store, sender, since);
    Err(unsupported())
}

pub(super) async fn record_opt_change(
    store: &PostgresStore,
    change: OptChangeRecord,
) -> Result<(), StoreError> {
    let _ = (store, change);
    Err(unsupported())
}

pub(super) async fn is_opted_out(store: &PostgresStore, phone: &str) -> Result<bool, StoreError> {
    let _ = (store, phone);
    Err(unsupported())
}

pub(super) async fn opt_outs(store: &PostgresStore) -> Result<Vec<OptOutRecord>, StoreError> {
    let _ = store;
    Err(unsupported())
}

pub(super) async fn import(
    store: &PostgresStore,
    records: Vec<OptOutRecord>,
) -> Result<usize, StoreError> {
    let _ = (store, records);
    Err(unsupported())
}
