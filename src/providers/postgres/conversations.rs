//! The PostgreSQL tables and statements for paused conversations and
//! bursts (`paused`, `bursts`, `burst_seen`).

use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::providers::conversations::{Burst, PausedConversation};
use crate::providers::StoreError;

/// The tables, created idempotently by the migration.
pub(super) const SCHEMA: &str = "";

fn unsupported() -> StoreError {
    StoreError::Unsupported("conversations yet")
}

pub(super) async fn pause(
    store: &PostgresStore,
    pause: PausedConversation,
) -> Result<(), StoreError> {
    let _ = (store, pause);
    Err(unsupported())
}

pub(super) async fn resume(
    store: &PostgresStore,
    customer: &str,
    sender: &str,
) -> Result<bool, StoreError> {
    let _ = (store, customer, sender);
    Err(unsupported())
}

pub(super) async fn paused(store: &PostgresStore) -> Result<Vec<PausedConversation>, StoreError> {
    let _ = store;
    Err(unsupported())
}

pub(super) async fn is_paused(
    store: &PostgresStore,
    customer: &str,
    sender: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let _ = (store, customer, sender, now);
    Err(unsupported())
}

pub(super) async fn add_to_burst(store: &PostgresStore, burst: Burst) -> Result<(), StoreError> {
    let _ = (store, burst);
    Err(unsupported())
}

pub(super) async fn claim_due(
    store: &PostgresStore,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Burst>, StoreError> {
    let _ = (store, now, limit);
    Err(unsupported())
}

pub(super) async fn finish(store: &PostgresStore, id: &str) -> Result<(), StoreError> {
    let _ = (store, id);
    Err(unsupported())
}

pub(super) async fn next_deadline(
    store: &PostgresStore,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let _ = store;
    Err(unsupported())
}
