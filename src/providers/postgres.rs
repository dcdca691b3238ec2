//! A durable [`Store`] in PostgreSQL, shared by several `flowc serve` nodes
//! so that they behave as one engine.
//!
//! (Module documentation: tables, leases, what each node claims and how the
//! limits hold across nodes; written with the implementation.)

use std::fmt::Display;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

mod campaigns;
mod conversations;
mod pacing;

use super::campaigns::{
    Campaign, CampaignCounts, CampaignRecipient, CampaignStart, CampaignState, OptChangeRecord,
    RecipientState,
};
use super::conversations::{Burst, PausedConversation};
use super::store::{
    Delivery, Inbound, InboundCheck, InboundQuery, InboxEvent, RunRecord, SendState, SentRecord,
    SlotRequest, Store, StoreError, StoredRun, WaitKey,
};
use crate::campaign::OptOutRecord;

/// The schema version this build writes (table `flowc_schema`).
///
/// - 1: every table of the SQLite store's version 4, in PostgreSQL types,
///   and the pacing tables of several nodes.
pub const SCHEMA_VERSION: i64 = 1;

/// The key of the advisory lock the migration holds, so that nodes starting
/// at once migrate one after the other ("flowc" in ASCII).
const MIGRATION_LOCK: i64 = 0x0066_6c6f_7763;

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// How long a claimed run, event, burst or campaign recipient stays
    /// leased to the node that claimed it before another node may take it
    /// (5 minutes by default). Must be positive, and longer than any single
    /// step of a run.
    pub lease: chrono::Duration,
    /// The most connections the node keeps open (16 by default).
    pub pool_size: usize,
    /// How long an operation waits for a connection, and a new connection
    /// for the server, before failing (5 seconds by default). A failed
    /// operation is retried by the engine's loops, so a database that is
    /// away for a few seconds pauses the work instead of losing it.
    pub connect_timeout: StdDuration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            lease: chrono::Duration::minutes(5),
            pool_size: 16,
            connect_timeout: StdDuration::from_secs(5),
        }
    }
}

/// A [`Store`] in a PostgreSQL database, shared by every node that connects
/// to it. See the [module documentation](self).
///
/// Cloning gives another handle on the same pool (and the same node).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    lease: chrono::Duration,
    /// This handle's name in the leases it takes: the host, the process and
    /// a random part, so no two nodes share it.
    node: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("node", &self.node)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`)
    /// with the default [`PostgresOptions`], and migrates its schema.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects to the database at `url` and migrates its schema to
    /// [`SCHEMA_VERSION`], under an advisory lock so nodes starting together
    /// do it once. Fails if the database was written by a newer flowc, or
    /// if the server cannot be reached within the connect timeout.
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, StoreError> {
        if options.lease <= chrono::Duration::zero() {
            return Err(StoreError::Backend(format!(
                "postgres: the lease must be positive, not {}",
                options.lease
            )));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Backend(format!(
                "postgres: {} is not a connection URL: {e}",
                redact(url)
            ))
        })?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("flowc");
        }
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("postgres: {e}")))?;
        let store = PostgresStore {
            pool,
            lease: options.lease,
            node: node_name(),
        };
        store.migrate().await.map_err(|e| match e {
            StoreError::Backend(m) => StoreError::Backend(format!("{}: {m}", redact(url))),
            other => other,
        })?;
        Ok(store)
    }

    /// How long a claim stays leased.
    pub fn lease(&self) -> chrono::Duration {
        self.lease
    }

    /// This node's name in the leases it holds.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("postgres: no connection: {e}")))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting the migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg("taking the migration lock"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS flowc_schema (
                 only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                 version  BIGINT NOT NULL
             )",
        )
        .await
        .map_err(pg("creating the schema table"))?;
        let found: Option<i64> = tx
            .query_opt("SELECT version FROM flowc_schema", &[])
            .await
            .map_err(pg("reading the schema version"))?
            .map(|row| row.get(0));
        if let Some(version) = found {
            if version > SCHEMA_VERSION {
                return Err(StoreError::Backend(format!(
                    "postgres: the database has schema version {version}, written by a newer \
                     flowc; this one knows up to {SCHEMA_VERSION}"
                )));
            }
            if version == SCHEMA_VERSION {
                return tx.commit().await.map_err(pg("ending the migration"));
            }
        }
        for (what, schema) in [
            ("runs and events", SCHEMA),
            ("conversations", conversations::SCHEMA),
            ("campaigns", campaigns::SCHEMA),
            ("pacing", pacing::SCHEMA),
        ] {
            tx.batch_execute(schema)
                .await
                .map_err(pg(format!("creating the tables of {what}")))?;
        }
        tx.execute(
            "INSERT INTO flowc_schema (only_row, version) VALUES (TRUE, $1)
             ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(pg("writing the schema version"))?;
        tx.commit().await.map_err(pg("ending the migration"))
    }
}

/// The tables of runs, the inbox, windows, history and sends.
const SCHEMA: &str = "";

/// A URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &user_info[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A name no other node has: host, process id and a random part.
fn node_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string());
    let random = std::collections::hash_map::RandomState::new();
    let salt = std::hash::BuildHasher::hash_one(&random, std::time::SystemTime::now());
    format!("{host}/{}/{:08x}", std::process::id(), salt as u32)
}

/// Maps a driver error to a [`StoreError`] that says what was being done.
fn pg(what: impl Display) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Backend(format!("postgres: {what}: {}", describe(&e)))
}

/// The server's message when it sent one (the driver's own `Display` says
/// only "db error"), else the driver's.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn unsupported() -> StoreError {
    StoreError::Unsupported("this yet")
}

#[async_trait]
impl Store for PostgresStore {
    // -- runs, events, windows, history and sends (this file) ------------

    async fn enqueue_event(&self, event: InboxEvent) -> Result<bool, StoreError> {
        let _ = event;
        Err(unsupported())
    }
    async fn pending_events(&self, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        let _ = limit;
        Err(unsupported())
    }
    async fn finish_event(&self, id: &str) -> Result<(), StoreError> {
        let _ = id;
        Err(unsupported())
    }
    async fn prune_finished_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let _ = before;
        Err(unsupported())
    }
    async fn send_state(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        let _ = key;
        Err(unsupported())
    }
    async fn claim_send(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        let _ = key;
        Err(unsupported())
    }
    async fn run_known(&self, id: &str) -> Result<bool, StoreError> {
        let _ = id;
        Err(unsupported())
    }
    async fn set_send_state(&self, key: &str, state: Option<SendState>) -> Result<(), StoreError> {
        let _ = (key, state);
        Err(unsupported())
    }
    async fn record_inbound(
        &self,
        customer: &str,
        sender: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _ = (customer, sender, at);
        Err(unsupported())
    }
    async fn last_inbound(
        &self,
        customer: &str,
        sender: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _ = (customer, sender);
        Err(unsupported())
    }
    async fn save_run(&self, run: StoredRun) -> Result<(), StoreError> {
        let _ = run;
        Err(unsupported())
    }
    async fn begin_runs(
        &self,
        inbound: Option<Inbound<'_>>,
        runs: Vec<StoredRun>,
        only_new: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let _ = (inbound, runs, only_new);
        Err(unsupported())
    }
    async fn claim_due_runs(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let _ = (now, limit);
        Err(unsupported())
    }
    async fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Err(unsupported())
    }
    async fn suspended_count(&self) -> Result<usize, StoreError> {
        Err(unsupported())
    }
    async fn record_run(&self, record: RunRecord) -> Result<(), StoreError> {
        let _ = record;
        Err(unsupported())
    }
    async fn run_history(&self) -> Result<Vec<RunRecord>, StoreError> {
        Err(unsupported())
    }
    async fn log_send(&self, record: SentRecord) -> Result<(), StoreError> {
        let _ = record;
        Err(unsupported())
    }
    async fn sent_log(&self) -> Result<Vec<SentRecord>, StoreError> {
        Err(unsupported())
    }
    async fn save_waiting_run(&self, run: StoredRun, wait: WaitKey) -> Result<(), StoreError> {
        let _ = (run, wait);
        Err(unsupported())
    }
    async fn deliver_to_waiting(
        &self,
        wait: &WaitKey,
        event_id: Option<&str>,
        event: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        let _ = (wait, event_id, event, now);
        Err(unsupported())
    }
    async fn waiting_count(&self, wait: &WaitKey) -> Result<usize, StoreError> {
        let _ = wait;
        Err(unsupported())
    }
    async fn inbound_check(&self, query: InboundQuery<'_>) -> Result<InboundCheck, StoreError> {
        let _ = query;
        Err(unsupported())
    }

    // -- pacing across nodes (postgres/pacing.rs) -------------------------

    async fn reserve_send_slot(
        &self,
        request: SlotRequest<'_>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        pacing::reserve(self, request).await.map(Some)
    }
    fn paces_sends(&self) -> bool {
        true
    }

    // -- conversations (postgres/conversations.rs) ------------------------

    async fn pause_conversation(&self, pause: PausedConversation) -> Result<(), StoreError> {
        conversations::pause(self, pause).await
    }
    async fn resume_conversation(&self, customer: &str, sender: &str) -> Result<bool, StoreError> {
        conversations::resume(self, customer, sender).await
    }
    async fn paused_conversations(&self) -> Result<Vec<PausedConversation>, StoreError> {
        conversations::paused(self).await
    }
    async fn conversation_paused(
        &self,
        customer: &str,
        sender: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        conversations::is_paused(self, customer, sender, now).await
    }
    async fn add_to_burst(&self, burst: Burst) -> Result<(), StoreError> {
        conversations::add_to_burst(self, burst).await
    }
    async fn claim_due_bursts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Burst>, StoreError> {
        conversations::claim_due(self, now, limit).await
    }
    async fn finish_burst(&self, id: &str) -> Result<(), StoreError> {
        conversations::finish(self, id).await
    }
    async fn next_burst_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        conversations::next_deadline(self).await
    }

    // -- campaigns and opt-outs (postgres/campaigns.rs) -------------------

    async fn create_campaign(
        &self,
        campaign: Campaign,
        recipients: Vec<CampaignRecipient>,
    ) -> Result<(), StoreError> {
        campaigns::create(self, campaign, recipients).await
    }
    async fn campaign(&self, id: &str) -> Result<Option<(Campaign, CampaignCounts)>, StoreError> {
        campaigns::get(self, id).await
    }
    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        campaigns::list(self).await
    }
    async fn set_campaign_state(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
        reason: Option<String>,
    ) -> Result<bool, StoreError> {
        campaigns::set_state(self, id, from, to, reason).await
    }
    async fn claim_campaign_recipients(
        &self,
        id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<CampaignRecipient>, StoreError> {
        campaigns::claim(self, id, now, limit, lease_until).await
    }
    async fn take_tier_slot(
        &self,
        id: &str,
        line: u64,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        campaigns::take_tier_slot(self, id, line, now, limit).await
    }
    async fn defer_campaign_recipient(
        &self,
        id: &str,
        line: u64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        campaigns::defer(self, id, line, until).await
    }
    async fn finish_campaign_recipient(
        &self,
        id: &str,
        line: u64,
        state: RecipientState,
        run_id: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        campaigns::finish(self, id, line, state, run_id, at).await
    }
    async fn next_campaign_recipient(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        campaigns::next_pending(self, id).await
    }
    async fn campaign_recipients(&self, id: &str) -> Result<Vec<CampaignRecipient>, StoreError> {
        campaigns::recipients(self, id).await
    }
    async fn campaign_starts(
        &self,
        sender: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<CampaignStart>, StoreError> {
        campaigns::starts(self, sender, since).await
    }
    async fn record_opt_change(&self, change: OptChangeRecord) -> Result<(), StoreError> {
        campaigns::record_opt_change(self, change).await
    }
    async fn opted_out(&self, phone: &str) -> Result<bool, StoreError> {
        campaigns::is_opted_out(self, phone).await
    }
    async fn opt_outs(&self) -> Result<Vec<OptOutRecord>, StoreError> {
        campaigns::opt_outs(self).await
    }
    async fn import_opt_outs(&self, records: Vec<OptOutRecord>) -> Result<usize, StoreError> {
        campaigns::import(self, records).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            redact("postgres://flowc:s3cret@db:5432/flows"),
            "postgres://flowc:***@db:5432/flows"
        );
        assert_eq!(
            redact("postgres://flowc@db/flows"),
            "postgres://flowc@db/flows"
        );
        assert_eq!(redact("host=db user=flowc"), "host=db user=flowc");
    }
}
