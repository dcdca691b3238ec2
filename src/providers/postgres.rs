//! A durable [`Store`] in PostgreSQL, shared by several `flowc serve` nodes
//! so that they behave as one engine.
//!
//! # Tables
//!
//! | table     | holds                                                        |
//! |-----------|--------------------------------------------------------------|
//! | `events`  | the inbox: `id` (primary key), `event` JSON text, `received_at`, `done`, the `customer` (the event's `fields.phone`), and the lease: `owner` (a node) and `lease_until` |
//! | `windows` | 24-hour windows: `(customer, sender)` → `last_inbound`        |
//! | `runs`    | suspended runs: `id`, `flow`, `wake_at` (indexed), and the state: `state` (JSON text) or, for a string state, `compact` (its UTF-8 bytes) |
//! | `history` | finished runs, in the order they were recorded (`seq`)       |
//! | `sent`    | sent messages, in the order they were logged (`seq`)         |
//! | `sends`   | send states by key, for exactly-once sends                   |
//! | `waits`   | `wait for` registrations: `run_id` (primary key) → `trigger_name`, `wait_key` (indexed) |
//! | `deliveries` | the event a waiting run received: `run_id` → `event` JSON, until the run is saved or finished |
//! | `answered` | ids of events that answered waiting runs, so a redelivery answers none |
//!
//! Paused conversations and bursts have tables of their own, described in
//! `conversations`; so have campaigns and opt-outs (`campaigns`) and the
//! send slots shared by the nodes (`pacing`).
//!
//! The schema version is kept in `flowc_schema`. [`PostgresStore::connect`]
//! creates missing tables (idempotently, in one transaction, under an
//! advisory lock so nodes starting together do it once) and refuses a
//! database written by a newer flowc. Ids the store orders by are
//! `COLLATE "C"`, so the order is the bytes' order, as in SQLite, whatever
//! the database's collation.
//!
//! # Timestamps
//!
//! Every timestamp is a `BIGINT` of milliseconds since the Unix epoch, UTC,
//! rounded as in the SQLite store: a wake-up time *up* (a run never wakes
//! early), every other time down. Send states and payloads are JSON text,
//! kept exactly as written.
//!
//! Two clocks are involved, each for one purpose. The times the engine
//! passes in (`now` of [`Store::claim_due_runs`], the times of runs and
//! events) are its own, as with every store. The inbox's leases, which no
//! caller passes a time for, are measured by the *database's* clock
//! (`clock_timestamp()`), so the nodes agree on them however their clocks
//! drift.
//!
//! # What each node claims, and how
//!
//! Every handle (every node) has a name of its own ([`PostgresStore::node`]).
//! Nothing is read and then written in two steps where another node could
//! come in between: a claim is one statement (or one transaction) that
//! locks the rows it takes with `FOR UPDATE SKIP LOCKED` and leases them;
//! uniqueness is the primary keys' (`INSERT ... ON CONFLICT`).
//!
//! - **Due runs.** [`Store::claim_due_runs`] takes the earliest due runs in
//!   one transaction (`SELECT ... FOR UPDATE SKIP LOCKED`), moves their
//!   wake-up time to `now + lease` ([`PostgresOptions::lease`], 5 minutes
//!   by default), ends their `wait for` registrations and answers them with
//!   their original wake-up times. Two nodes never get the same run while
//!   its lease lasts; a node that dies with a run loses nothing: the run is
//!   due again when the lease ends, and another node resumes it. A run
//!   whose step takes longer than the lease may be claimed a second time,
//!   so the lease must be longer than any single step (sends are still
//!   deduplicated by the send states).
//! - **The inbox.** [`Store::pending_events`] is a claim too. It answers
//!   the undone events, oldest first (`received_at`, then `id`), that are
//!   not leased to another node, and leases them to this node until the
//!   database's now + lease. Events already leased to this node come back
//!   to it, so a node that asks again gets its own events. A customer's
//!   messages are handled in order, by one node at a time: an event is not
//!   handed out while another undone event of the same customer is leased
//!   to another node (events without a phone number have no customer and
//!   no order). The customer's later messages go to the node that has
//!   their earlier ones; when those are finished ([`Store::finish_events`])
//!   the next ones go to whichever node asks first; when a node dies, its events go to another node
//!   after the lease. Inbox claims take turns under an advisory transaction
//!   lock, so each sees every earlier claim: without it, two claims at
//!   once could each hand out one message of the same customer.
//! - **Replies.** [`Store::deliver_to_waiting`] records the event's id as
//!   answered first (the primary key makes two nodes handed the same
//!   webhook take turns: the second finds it answered and delivers to no
//!   run), then locks the waiting runs' rows, takes the registrations that
//!   are still there and leases the runs as a claim does. A timeout claimed
//!   on another node took its run's registration in the same transaction,
//!   so exactly one of the reply and the timeout wins. Every statement that
//!   touches a run and its registration locks the run's row first, so two
//!   of them never wait on each other.
//! - **Sends.** [`Store::claim_send`] inserts `Started` unless a state is
//!   recorded (`ON CONFLICT DO NOTHING`): the first node to insert owns the
//!   send.
//!
//! # Retention and durability
//!
//! An inbox event's id stays in `events` after it is finished: that is how
//! a redelivered webhook is recognised. [`Store::prune_finished_events`]
//! forgets finished events older than a horizon, with their `answered`
//! ids; `flowc serve` calls it every hour (`--keep-events`). `history` and
//! `sent` are append-only; their order is the order the inserts began, so
//! records of two nodes written at the same moment may be in either order.
//!
//! A write the store has answered is committed: it survives the node
//! crashing or being killed, and as much as the server's own settings
//! promise beyond that (`synchronous_commit`, replication). Leases survive
//! everything: a node that restarts under a new name finds its old leases
//! running out, like any other node's.
//!
//! # Connections
//!
//! A store keeps a pool of connections ([`PostgresOptions::pool_size`]);
//! every operation takes one for its duration, so operations of one node
//! run in parallel. Statements are prepared once per connection. The
//! operations the engine makes for each event are few and single
//! statements where they can be: [`Store::enqueue_events`],
//! [`Store::begin_runs`] (window and runs, arrays through `UNNEST`) and
//! [`Store::finish_events`] are one round trip each, whatever the batch.
//!
//! Connections use TLS as the URL's `sslmode` asks (`prefer` by default),
//! verifying the server's certificate against the Mozilla roots or the
//! URL's `sslrootcert=FILE` (see `tls`). A connection that is lost (the
//! server restarted, a failover) is dropped from the pool and a new one is
//! made for the next operation, so a database that is away for a few
//! seconds costs the operations of those seconds, not the node.
//!
//! # Example
//!
//! Two nodes on one database (here two handles in one process; in service,
//! two `flowc serve` processes on two machines): a due run is claimed by
//! exactly one of them.
//!
//! ```no_run
//! use chrono::Utc;
//! use flowc::providers::postgres::{PostgresOptions, PostgresStore};
//! use flowc::providers::{Store, StoredRun};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), flowc::providers::StoreError> {
//! let url = "postgres://flowc@db.internal/flows?sslmode=require";
//! let options = PostgresOptions {
//!     lease: chrono::Duration::minutes(1),
//!     ..PostgresOptions::default()
//! };
//! let node_a = PostgresStore::connect_with(url, options.clone()).await?;
//! let node_b = PostgresStore::connect_with(url, options).await?;
//! let now = Utc::now();
//! node_a
//!     .save_run(StoredRun {
//!         id: "run-1".into(),
//!         flow: "reminder".into(),
//!         wake_at: now,
//!         state: serde_json::json!({"step": 2}),
//!         delivered: None,
//!     })
//!     .await?;
//! let (a, b) = tokio::join!(node_a.claim_due_runs(now, 10), node_b.claim_due_runs(now, 10));
//! assert_eq!(a?.len() + b?.len(), 1);
//! # Ok(())
//! # }
//! ```

use std::fmt::Display;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

mod campaigns;
mod conversations;
mod pacing;
mod tls;

use super::campaigns::{
    Campaign, CampaignCounts, CampaignRecipient, CampaignStart, CampaignState, OptChangeRecord,
    RecipientState,
};
use super::conversations::{Burst, PausedConversation};
use super::millis::{ceil_ms, floor_ms, from_ms, limit};
use super::store::{
    corrupt, to_json, Delivery, Inbound, InboundCheck, InboundQuery, InboxEvent, RunOutcome,
    RunRecord, SendState, SentRecord, SlotRequest, Store, StoreError, StoredRun, WaitKey,
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
    /// for the server, before failing (5 seconds by default; a
    /// `connect_timeout` in the URL sets the latter instead). A failed
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
        let (driver_url, root_file) = tls::split_root_cert(url);
        let mut config: tokio_postgres::Config = driver_url.parse().map_err(|e| {
            StoreError::Backend(format!(
                "postgres: {} is not a connection URL: {e}",
                redact(url)
            ))
        })?;
        // The URL's own `connect_timeout` wins over the option.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("flowc");
        }
        let manager = Manager::from_config(
            config,
            tls::connector(root_file.as_deref())?,
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
            .map_err(|e| StoreError::Backend(format!("postgres: no connection: {}", chain(&e))))
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

/// The tables of runs, the inbox, windows, history, sends and `wait for`.
/// Ids that the store orders by are `COLLATE "C"`: byte order, the order
/// the SQLite store gives, whatever the database's default collation.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    event       TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    done        BOOLEAN NOT NULL DEFAULT FALSE,
    customer    TEXT,
    owner       TEXT,
    lease_until BIGINT
);
CREATE INDEX IF NOT EXISTS events_pending ON events (received_at, id) WHERE NOT done;
CREATE INDEX IF NOT EXISTS events_pending_by_customer ON events (customer)
    WHERE NOT done AND customer IS NOT NULL;

CREATE TABLE IF NOT EXISTS windows (
    customer     TEXT NOT NULL,
    sender       TEXT NOT NULL,
    last_inbound BIGINT NOT NULL,
    PRIMARY KEY (customer, sender)
);

CREATE TABLE IF NOT EXISTS runs (
    id      TEXT COLLATE "C" PRIMARY KEY,
    flow    TEXT NOT NULL,
    wake_at BIGINT NOT NULL,
    state   TEXT,
    compact BYTEA,
    CHECK ((state IS NULL) <> (compact IS NULL))
);
CREATE INDEX IF NOT EXISTS runs_wake_at ON runs (wake_at, id);

CREATE TABLE IF NOT EXISTS history (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL,
    flow         TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    outcome      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_id ON history (id);

CREATE TABLE IF NOT EXISTS sent (
    seq        BIGSERIAL PRIMARY KEY,
    run_id     TEXT NOT NULL,
    sender     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    template   TEXT,
    message_id TEXT NOT NULL,
    sent_at    BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS sends (
    key   TEXT PRIMARY KEY,
    state TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS waits (
    run_id       TEXT COLLATE "C" PRIMARY KEY,
    trigger_name TEXT NOT NULL,
    wait_key     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS waits_by_key ON waits (trigger_name, wait_key);

CREATE TABLE IF NOT EXISTS deliveries (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    event  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS answered (
    event_id TEXT PRIMARY KEY
);
"#;

/// The key of the advisory lock that makes inbox claims take turns, so
/// that each claim sees every earlier one ("inbox" in ASCII).
const INBOX_LOCK: i64 = 0x0069_6e62_6f78;

// Statements used by more than one operation, or long enough to name.

/// Takes the inbox's turn and reads the database's clock, which every
/// node's inbox leases are measured by.
const INBOX_TURN: &str = "SELECT pg_advisory_xact_lock($1)::text,
            (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Leases the undone events this node may handle (`$1` the node, `$2` now
/// in ms, `$3` the limit, `$4` the lease's end): not leased to another node,
/// and no other undone event of the same customer leased to another node.
/// (Not only older ones: a message that arrives late, with an earlier time
/// than one already being handled, still waits for that node.)
const INBOX_CLAIM: &str = "
WITH free AS (
    SELECT e.id FROM events e
    WHERE NOT e.done
      AND (e.owner IS NULL OR e.owner = $1 OR e.lease_until <= $2)
      AND (e.customer IS NULL OR NOT EXISTS (
            SELECT 1 FROM events o
            WHERE o.customer = e.customer AND NOT o.done
              AND o.owner <> $1 AND o.lease_until > $2))
    ORDER BY e.received_at, e.id
    LIMIT $3
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE events e SET owner = $1, lease_until = $4
FROM free WHERE e.id = free.id
RETURNING e.id, e.event, e.received_at";

/// Whether a run with this id is suspended or finished.
const RUN_KNOWN: &str = "SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1)
     OR EXISTS (SELECT 1 FROM history WHERE id = $1)";

/// Whether an event could answer waiting runs (see `may_deliver`).
const MAY_DELIVER: &str =
    "SELECT EXISTS (SELECT 1 FROM waits WHERE trigger_name = $1 AND wait_key = $2)
         OR EXISTS (SELECT 1 FROM answered WHERE event_id = $3)";

/// Leases the due runs (`$1` now, `$2` the limit, `$3` the lease's end),
/// ends the `wait for` registrations of the runs it takes, and answers
/// them with their original wake-up times and their delivered events.
const CLAIM_DUE_RUNS: &str = "
WITH due AS (
    SELECT id, wake_at FROM runs WHERE wake_at <= $1
    ORDER BY wake_at, id LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE runs r SET wake_at = $3 FROM due WHERE r.id = due.id
    RETURNING r.id, r.flow, due.wake_at, r.state, r.compact
), unwaited AS (
    DELETE FROM waits WHERE run_id IN (SELECT id FROM claimed)
)
SELECT c.id, c.flow, c.wake_at, c.state, c.compact, d.event
FROM claimed c LEFT JOIN deliveries d ON d.run_id = c.id
ORDER BY c.wake_at, c.id";

/// Saves a run (`$1`..`$5`), ends its `wait for` registration, and keeps
/// the event delivered to it (`$6`) or forgets the one it had. The run's
/// row is written first (the CTEs depend on it): every statement that
/// touches a run and its registration locks the run's row first, so two
/// of them never wait on each other.
const SAVE_RUN: &str = "
WITH saved AS (
    INSERT INTO runs (id, flow, wake_at, state, compact) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (id) DO UPDATE SET flow = EXCLUDED.flow, wake_at = EXCLUDED.wake_at,
        state = EXCLUDED.state, compact = EXCLUDED.compact
    RETURNING id
), unwaited AS (
    DELETE FROM waits WHERE run_id IN (SELECT id FROM saved)
), undelivered AS (
    DELETE FROM deliveries WHERE run_id IN (SELECT id FROM saved) AND $6::text IS NULL
)
INSERT INTO deliveries (run_id, event) SELECT id, $6 FROM saved WHERE $6::text IS NOT NULL
ON CONFLICT (run_id) DO UPDATE SET event = EXCLUDED.event";

/// Saves a run (`$1`..`$5`) waiting under `$6`/`$7`, run row first.
const SAVE_WAITING_RUN: &str = "
WITH saved AS (
    INSERT INTO runs (id, flow, wake_at, state, compact) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (id) DO UPDATE SET flow = EXCLUDED.flow, wake_at = EXCLUDED.wake_at,
        state = EXCLUDED.state, compact = EXCLUDED.compact
    RETURNING id
), undelivered AS (
    DELETE FROM deliveries WHERE run_id IN (SELECT id FROM saved)
)
INSERT INTO waits (run_id, trigger_name, wait_key) SELECT id, $6, $7 FROM saved
ON CONFLICT (run_id) DO UPDATE
SET trigger_name = EXCLUDED.trigger_name, wait_key = EXCLUDED.wait_key";

/// Records a finished run (`$1`..`$6`) and forgets the suspended run, its
/// registration and delivered event, the run's row first.
const RECORD_RUN: &str = "
WITH recorded AS (
    INSERT INTO history (id, flow, trigger_name, started_at, finished_at, outcome)
    VALUES ($1, $2, $3, $4, $5, $6)
), gone AS (
    DELETE FROM runs WHERE id = $1 RETURNING id
), unwaited AS (
    DELETE FROM waits WHERE run_id = $1 AND (SELECT count(*) FROM gone) >= 0
)
DELETE FROM deliveries WHERE run_id = $1 AND (SELECT count(*) FROM gone) >= 0";

/// Records the window (`$1`..`$3`, when `$1` is not null) and keeps the
/// runs (arrays `$4`..`$8`, in order); with `$9` (only new) a run whose id
/// is suspended or finished is left alone. Answers the ids kept.
const BEGIN_RUNS: &str = "
WITH opened AS (
    INSERT INTO windows (customer, sender, last_inbound)
    SELECT $1::text, $2::text, $3::bigint WHERE $1::text IS NOT NULL
    ON CONFLICT (customer, sender)
    DO UPDATE SET last_inbound = GREATEST(windows.last_inbound, EXCLUDED.last_inbound)
)
INSERT INTO runs (id, flow, wake_at, state, compact)
SELECT u.id, u.flow, u.wake_at, u.state, u.compact
FROM UNNEST($4::text[], $5::text[], $6::bigint[], $7::text[], $8::bytea[])
     WITH ORDINALITY AS u (id, flow, wake_at, state, compact, n)
WHERE NOT ($9::boolean AND EXISTS (SELECT 1 FROM history h WHERE h.id = u.id))
ORDER BY u.n
ON CONFLICT (id) DO UPDATE SET flow = EXCLUDED.flow, wake_at = EXCLUDED.wake_at,
    state = EXCLUDED.state, compact = EXCLUDED.compact
WHERE NOT $9::boolean
RETURNING id";

/// Hands an event (`$4`) to the runs waiting under `$1`/`$2`: locks their
/// rows first (in id order), then takes the registrations that are still
/// there (a timeout claimed meanwhile took its run's), keeps the event
/// with each and leases the runs until `$3`.
const DELIVER: &str = "
WITH locked AS (
    SELECT id FROM runs
    WHERE id IN (SELECT run_id FROM waits WHERE trigger_name = $1 AND wait_key = $2)
    ORDER BY id
    FOR UPDATE
), taken AS (
    DELETE FROM waits
    WHERE trigger_name = $1 AND wait_key = $2 AND run_id IN (SELECT id FROM locked)
    RETURNING run_id
), kept AS (
    INSERT INTO deliveries (run_id, event) SELECT run_id, $4 FROM taken
    ON CONFLICT (run_id) DO UPDATE SET event = EXCLUDED.event
    RETURNING run_id
)
UPDATE runs r SET wake_at = $3 FROM kept WHERE r.id = kept.run_id
RETURNING r.id, r.flow, r.wake_at, r.state, r.compact";

/// A run as its `runs` row.
struct RunRow {
    id: String,
    flow: String,
    wake_at: i64,
    /// The state as JSON text, unless it is a string.
    state: Option<String>,
    /// A string state (the engine's compact form) as its UTF-8 bytes: as
    /// JSON text every quote in it would be escaped, and as TEXT it could
    /// not hold a NUL character.
    compact: Option<Vec<u8>>,
}

impl RunRow {
    fn new(run: StoredRun) -> Result<RunRow, StoreError> {
        let (state, compact) = match run.state {
            serde_json::Value::String(text) => (None, Some(text.into_bytes())),
            other => (
                Some(to_json(&other, format!("saving run {}", run.id))?),
                None,
            ),
        };
        Ok(RunRow {
            wake_at: ceil_ms(run.wake_at),
            id: run.id,
            flow: run.flow,
            state,
            compact,
        })
    }
}

/// Column `i` of a row; a column of another type than the schema's is a
/// backend error (the table is not flowc's), not corruption of a row.
fn column<'a, T: FromSql<'a>>(row: &'a Row, i: usize, what: &str) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| StoreError::Backend(format!("postgres: reading {what}: {e}")))
}

/// A time column (milliseconds) of the row of `id`.
fn time_column(row: &Row, i: usize, id: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    time(column(row, i, what)?, id, what)
}

/// The time of the stored milliseconds `ms` (column `what` of `id`); out of
/// chrono's range is corruption.
fn time(ms: i64, id: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    from_ms(ms).ok_or_else(|| corrupt(id, format!("{what} {ms} is out of range")))
}

/// A JSON text column of the row of `id`.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    i: usize,
    id: &str,
    what: &str,
) -> Result<T, StoreError> {
    let raw: &str = column(row, i, what)?;
    serde_json::from_str(raw).map_err(|e| corrupt(id, format!("{what} is not valid: {e}")))
}

/// Decodes `id, flow, wake_at, state, compact` (and, at `delivered`, the
/// delivered event if the query has it).
fn decode_run(row: &Row, delivered: Option<usize>) -> Result<StoredRun, StoreError> {
    let id: String = column(row, 0, "a run's id")?;
    let compact: Option<&[u8]> = column(row, 4, "a run's state")?;
    let state = match compact {
        Some(bytes) => serde_json::Value::String(
            String::from_utf8(bytes.to_vec())
                .map_err(|_| corrupt(&id, "state is not valid UTF-8"))?,
        ),
        None => json_column(row, 3, &id, "state")?,
    };
    let delivered = match delivered {
        Some(i) => {
            let raw: Option<&str> = column(row, i, "a delivered event")?;
            raw.map(|raw| {
                serde_json::from_str(raw).map_err(|e| {
                    corrupt(&id, format!("the delivered event is not valid JSON: {e}"))
                })
            })
            .transpose()?
        }
        None => None,
    };
    Ok(StoredRun {
        flow: column(row, 1, "a run's flow")?,
        wake_at: time_column(row, 2, &id, "wake_at")?,
        state,
        delivered,
        id,
    })
}

/// Decodes `id, event, received_at` of an `events` row.
fn decode_event(row: &Row) -> Result<InboxEvent, StoreError> {
    let id: String = column(row, 0, "an event's id")?;
    Ok(InboxEvent {
        event: json_column(row, 1, &id, "event")?,
        received_at: time_column(row, 2, &id, "received_at")?,
        id,
    })
}

fn decode_record(row: &Row) -> Result<RunRecord, StoreError> {
    let id: String = column(row, 0, "a finished run's id")?;
    Ok(RunRecord {
        flow: column(row, 1, "a finished run's flow")?,
        trigger: column(row, 2, "a finished run's trigger")?,
        started_at: time_column(row, 3, &id, "started_at")?,
        finished_at: time_column(row, 4, &id, "finished_at")?,
        outcome: json_column::<RunOutcome>(row, 5, &id, "outcome")?,
        id,
    })
}

fn decode_sent(row: &Row) -> Result<SentRecord, StoreError> {
    let message_id: String = column(row, 4, "a sent message's id")?;
    let id = format!("sent message {message_id}");
    Ok(SentRecord {
        run_id: column(row, 0, "a sent message's run")?,
        sender: column(row, 1, "a sent message's sender")?,
        to: column(row, 2, "a sent message's recipient")?,
        template: column(row, 3, "a sent message's template")?,
        at: time_column(row, 5, &id, "sent_at")?,
        message_id,
    })
}

/// The customer an inbox event belongs to, whose events are handled in
/// order: the phone number in its fields (`fields.phone`), if it has one.
fn customer_of(event: &serde_json::Value) -> Option<&str> {
    event.get("fields")?.get("phone")?.as_str()
}

/// Runs a prepared (cached) query.
async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: impl Display + Send + Sync,
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(pg(&what))?;
    client.query(&statement, params).await.map_err(pg(&what))
}

/// Runs a prepared (cached) query that answers one row.
async fn query_one<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: impl Display + Send + Sync,
) -> Result<Row, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(pg(&what))?;
    client
        .query_one(&statement, params)
        .await
        .map_err(pg(&what))
}

/// Runs a prepared (cached) statement; how many rows it changed.
async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: impl Display + Send + Sync,
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(pg(&what))?;
    client.execute(&statement, params).await.map_err(pg(&what))
}

/// A count as a `usize`.
fn count(row: &Row, what: &str) -> Result<usize, StoreError> {
    let n: i64 = column(row, 0, what)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Whether an event of `trigger` with correlation `key` could answer
/// waiting runs: one waits under the key, or the event (by its id)
/// answered before. A read: most messages answer no run, and need no
/// write transaction.
async fn may_deliver<C: GenericClient>(
    client: &C,
    trigger: &str,
    key: &str,
    event_id: Option<&str>,
) -> Result<bool, StoreError> {
    let row = query_one(
        client,
        MAY_DELIVER,
        &[&trigger, &key, &event_id.unwrap_or("")],
        "delivering an event to waiting runs",
    )
    .await?;
    column(&row, 0, "whether an event may be delivered")
}

/// The send state of `key`, if one is recorded.
async fn read_send_state<C: GenericClient>(
    client: &C,
    key: &str,
) -> Result<Option<SendState>, StoreError> {
    let rows = query(
        client,
        "SELECT state FROM sends WHERE key = $1",
        &[&key],
        format!("reading send state {key}"),
    )
    .await?;
    rows.first()
        .map(|row| json_column(row, 0, key, "send state"))
        .transpose()
}

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
        None => chain(e),
    }
}

/// An error with its causes, which say what actually went wrong ("error
/// performing TLS handshake: invalid peer certificate: UnknownIssuer").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their cause's words.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[async_trait]
impl Store for PostgresStore {
    // -- runs, events, windows, history and sends (this file) ------------

    async fn enqueue_event(&self, event: InboxEvent) -> Result<bool, StoreError> {
        Ok(self.enqueue_events(vec![event]).await?.first() == Some(&true))
    }

    /// One statement for the whole batch (one round trip, one commit):
    /// every event is kept, or on an error none is.
    async fn enqueue_events(&self, events: Vec<InboxEvent>) -> Result<Vec<bool>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Only the first copy of an id in the batch can be new: the others
        // are not sent, so the statement never meets an id twice.
        let mut first_copies = std::collections::HashSet::with_capacity(events.len());
        let is_first: Vec<bool> = events
            .iter()
            .map(|event| first_copies.insert(event.id.as_str()))
            .collect();
        let mut ids = Vec::new();
        let mut bodies = Vec::new();
        let mut times = Vec::new();
        let mut customers = Vec::new();
        for (event, _) in events.iter().zip(&is_first).filter(|(_, first)| **first) {
            ids.push(event.id.as_str());
            bodies.push(to_json(
                &event.event,
                format!("enqueuing event {}", event.id),
            )?);
            times.push(floor_ms(event.received_at));
            customers.push(customer_of(&event.event));
        }
        let client = self.client().await?;
        let rows = query(
            &client,
            "INSERT INTO events (id, event, received_at, customer)
             SELECT u.id, u.event, u.received_at, u.customer
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[])
                  AS u (id, event, received_at, customer)
             ON CONFLICT (id) DO NOTHING
             RETURNING id",
            &[&ids, &bodies, &times, &customers],
            "enqueuing events",
        )
        .await?;
        let new = rows
            .iter()
            .map(|row| column::<String>(row, 0, "an enqueued event's id"))
            .collect::<Result<std::collections::HashSet<_>, _>>()?;
        Ok(events
            .iter()
            .zip(is_first)
            .map(|(event, first)| first && new.contains(&event.id))
            .collect())
    }

    /// A claim across nodes (see the [module documentation](self)): the
    /// undone events this node may handle now, oldest first, leased to it.
    async fn pending_events(&self, n: usize) -> Result<Vec<InboxEvent>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let what = "claiming pending events";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg(what))?;
        let turn = query_one(&tx, INBOX_TURN, &[&INBOX_LOCK], what).await?;
        let now_ms: i64 = column(&turn, 1, "the database's clock")?;
        let until = now_ms.saturating_add(self.lease.num_milliseconds());
        let rows = query(
            &tx,
            INBOX_CLAIM,
            &[&self.node, &now_ms, &limit(n), &until],
            what,
        )
        .await?;
        tx.commit().await.map_err(pg(what))?;
        let mut events = rows
            .iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        Ok(events)
    }

    async fn pending_count(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let what = "counting pending events";
        let row = query_one(
            &client,
            "SELECT count(*) FROM events WHERE NOT done",
            &[],
            what,
        )
        .await?;
        count(&row, what)
    }

    async fn finish_event(&self, id: &str) -> Result<(), StoreError> {
        self.finish_events(&[id]).await
    }

    /// One statement: every event is marked, or on an error none is.
    async fn finish_events(&self, ids: &[&str]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        execute(
            &client,
            "UPDATE events SET done = TRUE, owner = NULL, lease_until = NULL
             WHERE id = ANY($1::text[]) AND NOT done",
            &[&ids],
            "finishing events",
        )
        .await?;
        Ok(())
    }

    async fn prune_finished_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let what = "pruning finished events";
        let row = query_one(
            &client,
            "WITH pruned AS (
                 DELETE FROM events WHERE done AND received_at < $1 RETURNING id
             ), forgotten AS (
                 DELETE FROM answered WHERE event_id IN (SELECT id FROM pruned)
             ), paced AS (
                 DELETE FROM pacing_recipients WHERE next_at < $2
             )
             SELECT count(*) FROM pruned",
            &[&floor_ms(before), &before.timestamp_micros()],
            what,
        )
        .await?;
        count(&row, what)
    }

    async fn send_state(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        let client = self.client().await?;
        read_send_state(&client, key).await
    }

    /// First come across nodes: the insert decides. When the row it met is
    /// forgotten before it can be read (a failed send being given up on
    /// another node), the claim is tried again, a few times.
    async fn claim_send(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        const ATTEMPTS: usize = 3;
        let started = to_json(&SendState::Started, format!("claiming send {key}"))?;
        let client = self.client().await?;
        for _ in 0..ATTEMPTS {
            let inserted = execute(
                &client,
                "INSERT INTO sends (key, state) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &started],
                format!("claiming send {key}"),
            )
            .await?;
            if inserted == 1 {
                return Ok(None);
            }
            if let Some(state) = read_send_state(&client, key).await? {
                return Ok(Some(state));
            }
        }
        Err(StoreError::Backend(format!(
            "postgres: claiming send {key}: its state was recorded and forgotten \
             {ATTEMPTS} times while claiming"
        )))
    }

    async fn run_known(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = query_one(&client, RUN_KNOWN, &[&id], format!("looking up run {id}")).await?;
        column(&row, 0, "whether a run is known")
    }

    async fn set_send_state(&self, key: &str, state: Option<SendState>) -> Result<(), StoreError> {
        let what = format!("setting send state {key}");
        let client = self.client().await?;
        match state {
            Some(state) => {
                let body = to_json(&state, &what)?;
                execute(
                    &client,
                    "INSERT INTO sends (key, state) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state",
                    &[&key, &body],
                    what,
                )
                .await
            }
            None => execute(&client, "DELETE FROM sends WHERE key = $1", &[&key], what).await,
        }?;
        Ok(())
    }

    async fn record_inbound(
        &self,
        customer: &str,
        sender: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.begin_runs(
            Some(Inbound {
                customer,
                sender,
                at,
            }),
            Vec::new(),
            false,
        )
        .await?;
        Ok(())
    }

    async fn last_inbound(
        &self,
        customer: &str,
        sender: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT last_inbound FROM windows WHERE customer = $1 AND sender = $2",
            &[&customer, &sender],
            format!("reading the window of {customer} with {sender}"),
        )
        .await?;
        rows.first()
            .map(|row| {
                time_column(
                    row,
                    0,
                    &format!("window {customer}/{sender}"),
                    "last_inbound",
                )
            })
            .transpose()
    }

    /// One statement: the run, the end of its registration, its event.
    async fn save_run(&self, mut run: StoredRun) -> Result<(), StoreError> {
        let delivered = run
            .delivered
            .take()
            .map(|event| to_json(&event, format!("saving run {}", run.id)))
            .transpose()?;
        let row = RunRow::new(run)?;
        let client = self.client().await?;
        execute(
            &client,
            SAVE_RUN,
            &[
                &row.id,
                &row.flow,
                &row.wake_at,
                &row.state,
                &row.compact,
                &delivered,
            ],
            format!("saving run {}", row.id),
        )
        .await?;
        Ok(())
    }

    /// The window and every run in one statement (one round trip, one
    /// commit): all of it is kept, or on an error none of it.
    async fn begin_runs(
        &self,
        inbound: Option<Inbound<'_>>,
        runs: Vec<StoredRun>,
        only_new: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let rows = runs
            .into_iter()
            .map(RunRow::new)
            .collect::<Result<Vec<_>, StoreError>>()?;
        // One row per id, as saving them one after the other would leave
        // it: the first copy when only new runs are kept (the later ones
        // find it known), else the last (each replaces the one before).
        let mut chosen: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            match chosen.entry(row.id.as_str()) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(i);
                }
                std::collections::hash_map::Entry::Occupied(mut slot) if !only_new => {
                    slot.insert(i);
                }
                std::collections::hash_map::Entry::Occupied(_) => {}
            }
        }
        let sent: Vec<&RunRow> = rows
            .iter()
            .enumerate()
            .filter(|(i, row)| chosen.get(row.id.as_str()) == Some(i))
            .map(|(_, row)| row)
            .collect();
        let ids: Vec<&str> = sent.iter().map(|r| r.id.as_str()).collect();
        let flows: Vec<&str> = sent.iter().map(|r| r.flow.as_str()).collect();
        let wakes: Vec<i64> = sent.iter().map(|r| r.wake_at).collect();
        let states: Vec<Option<&str>> = sent.iter().map(|r| r.state.as_deref()).collect();
        let compacts: Vec<Option<&[u8]>> = sent.iter().map(|r| r.compact.as_deref()).collect();
        let (customer, sender, at) = match &inbound {
            Some(i) => (Some(i.customer), Some(i.sender), Some(floor_ms(i.at))),
            None => (None, None, None),
        };
        let what = match &inbound {
            Some(i) if rows.is_empty() => {
                format!("recording inbound from {} to {}", i.customer, i.sender)
            }
            _ => "beginning runs".to_string(),
        };
        let client = self.client().await?;
        let kept = query(
            &client,
            BEGIN_RUNS,
            &[
                &customer, &sender, &at, &ids, &flows, &wakes, &states, &compacts, &only_new,
            ],
            what,
        )
        .await?
        .iter()
        .map(|row| column::<String>(row, 0, "a kept run's id"))
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
        Ok(rows
            .iter()
            .enumerate()
            .map(|(i, row)| chosen.get(row.id.as_str()) == Some(&i) && kept.contains(&row.id))
            .collect())
    }

    /// Leases the due runs (see the [module documentation](self)) in one
    /// transaction. A row that cannot be decoded is leased alone (the
    /// claim is rolled back first), so it does not hold back the runs
    /// behind it, and reported as [`StoreError::Corrupt`]; the next claim
    /// returns the others. It comes back every lease until it is repaired
    /// or deleted.
    async fn claim_due_runs(
        &self,
        now: DateTime<Utc>,
        n: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let what = "claiming due runs";
        let until = ceil_ms(now + self.lease);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg(what))?;
        let rows = query(
            &tx,
            CLAIM_DUE_RUNS,
            &[&floor_ms(now), &limit(n), &until],
            what,
        )
        .await?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            match decode_run(row, Some(5)) {
                Ok(run) => runs.push(run),
                Err(e) => {
                    tx.rollback().await.map_err(pg(what))?;
                    let id: String = column(row, 0, "a run's id")?;
                    execute(
                        &client,
                        "UPDATE runs SET wake_at = $1 WHERE id = $2",
                        &[&until, &id],
                        format!("leasing the corrupt run {id}"),
                    )
                    .await?;
                    return Err(e);
                }
            }
        }
        tx.commit().await.map_err(pg(what))?;
        Ok(runs)
    }

    async fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "SELECT min(wake_at) FROM runs",
            &[],
            "reading the next wake-up time",
        )
        .await?;
        let ms: Option<i64> = column(&row, 0, "the next wake-up time")?;
        ms.map(|ms| {
            from_ms(ms).ok_or_else(|| corrupt("runs", format!("wake_at {ms} is out of range")))
        })
        .transpose()
    }

    async fn suspended_count(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let what = "counting suspended runs";
        let row = query_one(&client, "SELECT count(*) FROM runs", &[], what).await?;
        count(&row, what)
    }

    async fn record_run(&self, record: RunRecord) -> Result<(), StoreError> {
        let what = format!("recording run {}", record.id);
        let outcome = to_json(&record.outcome, &what)?;
        let client = self.client().await?;
        execute(
            &client,
            RECORD_RUN,
            &[
                &record.id,
                &record.flow,
                &record.trigger,
                &floor_ms(record.started_at),
                &floor_ms(record.finished_at),
                &outcome,
            ],
            what,
        )
        .await?;
        Ok(())
    }

    /// In the order the records were written (`seq`). Records written at
    /// the same moment on two nodes are in the order their inserts began.
    async fn run_history(&self) -> Result<Vec<RunRecord>, StoreError> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT id, flow, trigger_name, started_at, finished_at, outcome
             FROM history ORDER BY seq",
            &[],
            "reading the run history",
        )
        .await?
        .iter()
        .map(decode_record)
        .collect()
    }

    async fn log_send(&self, record: SentRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO sent (run_id, sender, recipient, template, message_id, sent_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &record.run_id,
                &record.sender,
                &record.to,
                &record.template,
                &record.message_id,
                &floor_ms(record.at),
            ],
            format!("logging sent message {}", record.message_id),
        )
        .await?;
        Ok(())
    }

    async fn sent_log(&self) -> Result<Vec<SentRecord>, StoreError> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT run_id, sender, recipient, template, message_id, sent_at
             FROM sent ORDER BY seq",
            &[],
            "reading the sent log",
        )
        .await?
        .iter()
        .map(decode_sent)
        .collect()
    }

    /// One statement: the run, its registration.
    async fn save_waiting_run(&self, run: StoredRun, wait: WaitKey) -> Result<(), StoreError> {
        let row = RunRow::new(run)?;
        let client = self.client().await?;
        execute(
            &client,
            SAVE_WAITING_RUN,
            &[
                &row.id,
                &row.flow,
                &row.wake_at,
                &row.state,
                &row.compact,
                &wait.trigger,
                &wait.key,
            ],
            format!("saving waiting run {}", row.id),
        )
        .await?;
        Ok(())
    }

    /// A read first (most messages answer no run), then one transaction:
    /// the event's id is recorded as answered first, so two nodes handed
    /// the same event take turns and the second finds it answered; the
    /// waiting runs' rows are locked before their registrations are taken,
    /// so a timeout claimed on another node and the reply never both win.
    /// Without a run to answer, the transaction is rolled back and the id
    /// is not recorded.
    async fn deliver_to_waiting(
        &self,
        wait: &WaitKey,
        event_id: Option<&str>,
        event: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        let what = "delivering an event to waiting runs";
        let mut client = self.client().await?;
        if !may_deliver(&client, &wait.trigger, &wait.key, event_id).await? {
            return Ok(Delivery::default());
        }
        let body = to_json(&event, what)?;
        let until = ceil_ms(now + self.lease);
        let tx = client.transaction().await.map_err(pg(what))?;
        if let Some(id) = event_id {
            let first = execute(
                &tx,
                "INSERT INTO answered (event_id) VALUES ($1) ON CONFLICT (event_id) DO NOTHING",
                &[&id],
                what,
            )
            .await?;
            if first == 0 {
                tx.rollback().await.map_err(pg(what))?;
                return Ok(Delivery {
                    runs: Vec::new(),
                    answered: true,
                });
            }
        }
        let rows = query(
            &tx,
            DELIVER,
            &[&wait.trigger, &wait.key, &until, &body],
            what,
        )
        .await?;
        let mut runs = rows
            .iter()
            .map(|row| decode_run(row, None))
            .collect::<Result<Vec<_>, _>>()?;
        if runs.is_empty() {
            tx.rollback().await.map_err(pg(what))?;
            return Ok(Delivery::default());
        }
        tx.commit().await.map_err(pg(what))?;
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        for run in &mut runs {
            run.delivered = Some(event.clone());
        }
        Ok(Delivery {
            runs,
            answered: true,
        })
    }

    async fn waiting_count(&self, wait: &WaitKey) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let what = "counting waiting runs";
        let row = query_one(
            &client,
            "SELECT count(*) FROM waits WHERE trigger_name = $1 AND wait_key = $2",
            &[&wait.trigger, &wait.key],
            what,
        )
        .await?;
        count(&row, what)
    }

    /// The pause (asked of `postgres/conversations.rs`) and the waits read
    /// at once, on two connections.
    async fn inbound_check(&self, query: InboundQuery<'_>) -> Result<InboundCheck, StoreError> {
        let paused = async {
            match query.conversation {
                Some((customer, sender)) => {
                    conversations::is_paused(self, customer, sender, query.now).await
                }
                None => Ok(false),
            }
        };
        let may_deliver = async {
            match query.wait {
                Some(wait) => {
                    let client = self.client().await?;
                    may_deliver(&client, wait.trigger, wait.key, query.event_id).await
                }
                None => Ok(false),
            }
        };
        let (paused, may_deliver) = tokio::try_join!(paused, may_deliver)?;
        Ok(InboundCheck {
            paused,
            may_deliver,
        })
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
    /// One round trip that touches no table: a count of the runs would
    /// scan them on every health check.
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(pg("answering a health check"))
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
