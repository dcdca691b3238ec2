//! A durable [`Store`] in one SQLite database file, so waiting runs, the
//! inbox and the exactly-once send states survive a restart.
//!
//! # Tables
//!
//! | table     | holds                                                        |
//! |-----------|--------------------------------------------------------------|
//! | `events`  | the inbox: `id` (primary key), `event` JSON, `received_at`, `done` |
//! | `windows` | 24-hour windows: `(customer, sender)` → `last_inbound`        |
//! | `runs`    | suspended runs: `id`, `flow`, `wake_at`, `state` (JSON text, or a string state's bytes as a BLOB; indexed by `wake_at`) |
//! | `history` | finished runs, in the order they were recorded               |
//! | `sent`    | sent messages, in the order they were logged                 |
//! | `sends`   | send states by key, for exactly-once sends                   |
//! | `waits`   | `wait for` registrations: `run_id` (primary key) → `trigger_name`, `wait_key` (indexed) |
//! | `deliveries` | the event a waiting run received: `run_id` → `event` JSON, until the run is saved or finished |
//! | `answered` | ids of events that answered waiting runs, so a redelivery answers none |
//!
//! Paused conversations and bursts have tables of their own, described in
//! `conversations` (`paused`, `bursts`, `burst_seen`); so have campaigns and
//! opt-outs, in `campaigns` (`campaigns`, `campaign_recipients`, `opt_outs`).
//!
//! The schema version is kept in `PRAGMA user_version`. [`SqliteStore::open`]
//! creates missing tables (idempotently, in one transaction) and refuses a
//! database written by a newer flowc.
//!
//! # Timestamps
//!
//! Every timestamp is stored as integer milliseconds since the Unix epoch,
//! UTC. Sub-millisecond parts are dropped in the direction that is safe:
//! a wake-up time is rounded *up* (a run never wakes early), every other time
//! is rounded down (a customer's window closes early rather than late).
//! Send states and the events' payloads are JSON and keep full precision.
//!
//! # Retention
//!
//! An inbox event's id stays in `events` after [`Store::finish_event`]: that
//! is how a redelivered webhook is recognised. Finished events are small, but
//! they accumulate; a host that wants to bound the file calls
//! [`Store::prune_finished_events`] with a horizon longer than any
//! redelivery it expects (WhatsApp retries for up to about a week);
//! `flowc serve` does so every hour (`--keep-events`). The `answered` ids
//! of pruned events go with them.
//! `history` and `sent` are append-only as well.
//!
//! # Durability
//!
//! The database runs in WAL mode. With the default `synchronous=NORMAL`, a
//! committed write survives the process crashing or being killed, but the
//! last few commits may be lost (never corrupted) if the machine loses power
//! or the OS crashes. [`SqliteOptions::synchronous_full`] makes every commit
//! wait for an fsync of the log, so it also survives power loss, at the cost
//! of slower writes.
//!
//! # One connection, one thread
//!
//! A store owns one connection, kept by a thread of its own: every operation
//! is sent to that thread and answered through a channel. Operations run one
//! after the other as before, but without a blocking-pool thread and a lock
//! hand-off per call, which under load cost more than the statements
//! themselves. An operation that panics is rolled back and answered with an
//! error; the connection goes on serving the next one. The thread ends, and
//! the connection closes, when the last handle on the store is dropped.
//!
//! Because every call waits for its turn on that thread, the operations the
//! engine makes for each event are few and large: [`Store::begin_runs`]
//! records the window and saves an event's runs in one transaction, and
//! [`Store::finish_events`] marks a batch of events done in one. Every
//! statement is prepared once per connection.
//!
//! # Leases
//!
//! [`Store::claim_due_runs`] does not delete the runs it returns: in one
//! `BEGIN IMMEDIATE` transaction it selects the due runs and moves their
//! wake-up time to `now + lease` ([`SqliteOptions::lease`], 5 minutes by
//! default). The caller then saves the run again or records it as finished;
//! if the process dies in between, the run is due again when the lease ends
//! and another worker resumes it. Several processes (or several
//! `SqliteStore` handles) may claim from the same file: a run is never
//! returned twice while its lease lasts. A run whose resumption takes longer
//! than the lease may be claimed a second time, so the lease must be longer
//! than any single step of a run (sends are still deduplicated by the send
//! states).
//!
//! # Example
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use flowc::providers::sqlite::SqliteStore;
//! use flowc::providers::{Store, StoredRun};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), flowc::providers::StoreError> {
//! let store = SqliteStore::in_memory()?;
//! let wake_at = Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap();
//! store
//!     .save_run(StoredRun {
//!         id: "run-1".into(),
//!         flow: "reminder".into(),
//!         wake_at,
//!         state: serde_json::json!({"step": 2}),
//!         delivered: None,
//!     })
//!     .await?;
//! assert_eq!(store.next_wake().await?, Some(wake_at));
//!
//! // Nothing is due a second early; at the wake-up time the run is claimed
//! // once, and a second claim at the same moment finds it leased.
//! assert!(store.claim_due_runs(wake_at - chrono::Duration::seconds(1), 10).await?.is_empty());
//! let claimed = store.claim_due_runs(wake_at, 10).await?;
//! assert_eq!(claimed.len(), 1);
//! assert_eq!(claimed[0].wake_at, wake_at);
//! assert!(store.claim_due_runs(wake_at, 10).await?.is_empty());
//! # Ok(())
//! # }
//! ```

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

mod campaigns;
mod conversations;
mod pacing;

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

/// The schema version this build writes (`PRAGMA user_version`).
///
/// - 1: the tables above.
/// - 2: a run's `state` may also be a BLOB: the engine's compact state (a
///   JSON string in [`StoredRun::state`]) stored as its UTF-8 bytes, without
///   JSON quoting. Version 1 files need no change (their TEXT states are
///   still read); the version goes up so that an older flowc, which cannot
///   read BLOB states, refuses the file instead of calling its runs corrupt.
/// - 3: paused conversations and bursts (`paused`, `bursts`, `burst_seen`), and
///   the `waits`, `deliveries` and `answered` tables of `wait for`
///   ([`WAITS_SCHEMA`]). Older files get them empty.
/// - 4: campaigns, their recipients and the opt-out list (`campaigns`,
///   `campaign_recipients`, `opt_outs`, described in `campaigns`). Older
///   files get them empty.
pub const SCHEMA_VERSION: i64 = 4;

/// The tables of runs waiting for the customer (`wait for`), kept apart
/// from `runs` so that a run's row stays the same whether it waits for a
/// time or for an event.
const WAITS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS waits (
    run_id       TEXT PRIMARY KEY NOT NULL,
    trigger_name TEXT NOT NULL,
    wait_key     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS waits_by_key ON waits (trigger_name, wait_key);

CREATE TABLE IF NOT EXISTS deliveries (
    run_id TEXT PRIMARY KEY NOT NULL,
    event  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS answered (
    event_id TEXT PRIMARY KEY NOT NULL
);
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id          TEXT PRIMARY KEY NOT NULL,
    event       TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_pending ON events (received_at, id) WHERE done = 0;

CREATE TABLE IF NOT EXISTS windows (
    customer     TEXT NOT NULL,
    sender       TEXT NOT NULL,
    last_inbound INTEGER NOT NULL,
    PRIMARY KEY (customer, sender)
);

CREATE TABLE IF NOT EXISTS runs (
    id      TEXT PRIMARY KEY NOT NULL,
    flow    TEXT NOT NULL,
    wake_at INTEGER NOT NULL,
    state   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_wake_at ON runs (wake_at, id);

CREATE TABLE IF NOT EXISTS history (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,
    flow         TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_id ON history (id);

CREATE TABLE IF NOT EXISTS sent (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL,
    sender     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    template   TEXT,
    message_id TEXT NOT NULL,
    sent_at    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS sends (
    key   TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL
);
";

/// How a [`SqliteStore`] opens its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` instead of `NORMAL`: every commit is fsynced, so
    /// it survives power loss and OS crashes, not only process crashes.
    /// Off by default.
    pub synchronous_full: bool,
    /// How long a claimed run stays leased to its claimer before it is due
    /// again (5 minutes by default). Must be positive, and longer than any
    /// single step of a run.
    pub lease: chrono::Duration,
    /// How long an operation waits for another connection's write lock
    /// before failing (5 seconds by default).
    pub busy_timeout: StdDuration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: false,
            lease: chrono::Duration::minutes(5),
            busy_timeout: StdDuration::from_secs(5),
        }
    }
}

/// A [`Store`] in a SQLite database: durable, shareable between processes
/// that open the same file. See the [module documentation](self).
///
/// Cloning gives another handle on the same connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    jobs: std::sync::mpsc::Sender<Job>,
    lease: chrono::Duration,
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` with the
    /// default [`SqliteOptions`]. This blocks on file I/O: call it at
    /// start-up or from a blocking task.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database file at `path`: WAL mode,
    /// the chosen `synchronous` level, busy timeout, foreign keys, and the
    /// schema migrated to [`SCHEMA_VERSION`]. Fails if the file was written
    /// by a newer flowc, or if the file system does not support WAL.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref();
        let shown = path.display();
        let conn = Connection::open(path).map_err(ctx(format!("opening {shown}")))?;
        let conn = prepare(conn, &options, true).map_err(|e| match e {
            StoreError::Backend(m) => StoreError::Backend(format!("{shown}: {m}")),
            other => other,
        })?;
        Ok(SqliteStore {
            jobs: connection_thread(conn)?,
            lease: options.lease,
            path: Some(path.to_path_buf()),
        })
    }

    /// A private database in memory, for tests: same schema and semantics,
    /// nothing survives the store.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let options = SqliteOptions::default();
        let conn = Connection::open_in_memory().map_err(ctx("opening an in-memory database"))?;
        let conn = prepare(conn, &options, false)?;
        Ok(SqliteStore {
            jobs: connection_thread(conn)?,
            lease: options.lease,
            path: None,
        })
    }

    /// The database file, or `None` for [`SqliteStore::in_memory`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How long a claimed run stays leased.
    pub fn lease(&self) -> chrono::Duration {
        self.lease
    }

    /// Runs `f` with the connection on the connection's thread. Once sent,
    /// `f` runs to its end even if the caller stops waiting, like a
    /// statement already handed to the database.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // A transaction open in `f` rolls back as the panic unwinds.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| {
                    Err(StoreError::Backend(
                        "sqlite: an operation panicked and was rolled back".into(),
                    ))
                });
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| {
            StoreError::Backend("sqlite: the connection's thread has stopped".into())
        })?;
        answered.await.map_err(|_| {
            StoreError::Backend("sqlite: the connection's thread stopped before answering".into())
        })?
    }
}

/// Whether an event of `trigger` with correlation `key` could answer waiting
/// runs: one waits under the key, or the event (by its id) answered before.
/// A read: most messages answer no run, and need no write transaction.
fn may_deliver(
    conn: &Connection,
    trigger: &str,
    key: &str,
    event_id: Option<&str>,
) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM waits WHERE trigger_name = ?1 AND wait_key = ?2)
             OR EXISTS (SELECT 1 FROM answered WHERE event_id = ?3)",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![trigger, key, event_id.unwrap_or("")], |row| {
            row.get::<_, bool>(0)
        })
    })
    .map_err(ctx("delivering an event to waiting runs"))
}

/// One operation for the connection's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Starts the thread that owns `conn` and runs the operations sent to it, in
/// order, until every sender is gone.
fn connection_thread(mut conn: Connection) -> Result<std::sync::mpsc::Sender<Job>, StoreError> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("flowc-sqlite".into())
        .spawn(move || {
            while let Ok(job) = queue.recv() {
                job(&mut conn);
            }
        })
        .map_err(|e| {
            StoreError::Backend(format!("sqlite: starting the connection's thread: {e}"))
        })?;
    Ok(jobs)
}

/// Sets the pragmas and migrates the schema.
fn prepare(
    mut conn: Connection,
    options: &SqliteOptions,
    file: bool,
) -> Result<Connection, StoreError> {
    if options.lease <= chrono::Duration::zero() {
        return Err(StoreError::Backend(format!(
            "sqlite: the lease must be positive, not {}",
            options.lease
        )));
    }
    conn.busy_timeout(options.busy_timeout)
        .map_err(ctx("setting the busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(ctx("switching to WAL mode"))?;
    if file && !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "sqlite: the database cannot use WAL mode (journal mode is `{mode}`); \
             keep it on a local file system"
        )));
    }
    let synchronous = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(ctx("setting synchronous"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(ctx("enabling foreign keys"))?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx("starting the migration"))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(ctx("reading the schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "sqlite: the database has schema version {version}, newer than the version \
             {SCHEMA_VERSION} this flowc supports; upgrade flowc to open it"
        )));
    }
    tx.execute_batch(SCHEMA)
        .map_err(ctx("creating the tables"))?;
    tx.execute_batch(conversations::SCHEMA)
        .map_err(ctx("creating the conversation tables"))?;
    tx.execute_batch(WAITS_SCHEMA)
        .map_err(ctx("creating the tables of waiting runs"))?;
    tx.execute_batch(campaigns::SCHEMA)
        .map_err(ctx("creating the campaign tables"))?;
    tx.execute_batch(pacing::SCHEMA)
        .map_err(ctx("creating the pacing tables"))?;
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(ctx("writing the schema version"))?;
    }
    tx.commit().map_err(ctx("committing the migration"))
}

/// Maps a rusqlite error to [`StoreError::Backend`] with what was being done.
fn ctx(what: impl Display) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("sqlite: {what}: {e}"))
}

/// Reads column `i` of a row as text; anything else is corruption of `id`.
fn text(row: &Row<'_>, i: usize, id: &str, what: &str) -> Result<String, StoreError> {
    match row.get_ref(i) {
        Ok(ValueRef::Text(bytes)) => String::from_utf8(bytes.to_vec())
            .map_err(|_| corrupt(id, format!("{what} is not valid UTF-8"))),
        Ok(other) => Err(corrupt(
            id,
            format!("{what} is {}, not text", other.data_type()),
        )),
        Err(e) => Err(StoreError::Backend(format!("sqlite: reading {what}: {e}"))),
    }
}

fn opt_text(row: &Row<'_>, i: usize, id: &str, what: &str) -> Result<Option<String>, StoreError> {
    match row.get_ref(i) {
        Ok(ValueRef::Null) => Ok(None),
        _ => text(row, i, id, what).map(Some),
    }
}

fn time(row: &Row<'_>, i: usize, id: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    let ms = match row.get_ref(i) {
        Ok(ValueRef::Integer(ms)) => ms,
        Ok(other) => {
            return Err(corrupt(
                id,
                format!("{what} is {}, not integer milliseconds", other.data_type()),
            ))
        }
        Err(e) => return Err(StoreError::Backend(format!("sqlite: reading {what}: {e}"))),
    };
    from_ms(ms).ok_or_else(|| corrupt(id, format!("{what} {ms} is out of range")))
}

fn json<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    i: usize,
    id: &str,
    what: &str,
) -> Result<T, StoreError> {
    let raw = text(row, i, id, what)?;
    serde_json::from_str(&raw).map_err(|e| corrupt(id, format!("{what} is not valid: {e}")))
}

/// Decodes `id, flow, wake_at, state` of a `runs` row.
fn decode_run(row: &Row<'_>) -> Result<StoredRun, StoreError> {
    let id = text(row, 0, "<run without a text id>", "id")?;
    Ok(StoredRun {
        flow: text(row, 1, &id, "flow")?,
        wake_at: time(row, 2, &id, "wake_at")?,
        state: match row.get_ref(3) {
            // Schema 2: a string state kept as its bytes.
            Ok(ValueRef::Blob(bytes)) => serde_json::Value::String(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| corrupt(&id, "state is not valid UTF-8"))?,
            ),
            _ => json(row, 3, &id, "state")?,
        },
        delivered: None,
        id,
    })
}

fn decode_event(row: &Row<'_>) -> Result<InboxEvent, StoreError> {
    let id = text(row, 0, "<event without a text id>", "id")?;
    Ok(InboxEvent {
        event: json(row, 1, &id, "event")?,
        received_at: time(row, 2, &id, "received_at")?,
        id,
    })
}

fn decode_record(row: &Row<'_>) -> Result<RunRecord, StoreError> {
    let id = text(row, 0, "<history row without a text id>", "id")?;
    Ok(RunRecord {
        flow: text(row, 1, &id, "flow")?,
        trigger: text(row, 2, &id, "trigger")?,
        started_at: time(row, 3, &id, "started_at")?,
        finished_at: time(row, 4, &id, "finished_at")?,
        outcome: json::<RunOutcome>(row, 5, &id, "outcome")?,
        id,
    })
}

fn decode_sent(row: &Row<'_>) -> Result<SentRecord, StoreError> {
    let id = format!(
        "sent message {}",
        text(row, 4, "<sent row without a text message id>", "message_id")?
    );
    Ok(SentRecord {
        run_id: text(row, 0, &id, "run_id")?,
        sender: text(row, 1, &id, "sender")?,
        to: text(row, 2, &id, "recipient")?,
        template: opt_text(row, 3, &id, "template")?,
        message_id: text(row, 4, &id, "message_id")?,
        at: time(row, 5, &id, "sent_at")?,
    })
}

/// Runs a query and decodes every row, stopping at the first bad one.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &str,
    decode: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(ctx(what))?;
    let mut rows = stmt.query(params).map_err(ctx(what))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(ctx(what))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

// Statements used by more than one operation. Every statement is prepared
// once per connection (`prepare_cached`): preparing costs more than running
// most of them.

const FINISH_EVENT: &str = "UPDATE events SET done = 1 WHERE id = ?1";

const RECORD_INBOUND: &str =
    "INSERT INTO windows (customer, sender, last_inbound) VALUES (?1, ?2, ?3)
     ON CONFLICT (customer, sender)
     DO UPDATE SET last_inbound = max(last_inbound, excluded.last_inbound)";

const RUN_KNOWN: &str = "SELECT EXISTS (SELECT 1 FROM runs WHERE id = ?1)
     OR EXISTS (SELECT 1 FROM history WHERE id = ?1)";

const SAVE_RUN: &str = "INSERT INTO runs (id, flow, wake_at, state) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (id) DO UPDATE
     SET flow = excluded.flow, wake_at = excluded.wake_at, state = excluded.state";

/// Runs a statement that changes rows; how many it changed.
fn execute(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: impl Display,
) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(ctx(what))
}

/// A run as its `runs` row: id, flow, wake-up time, state.
struct RunRow {
    id: String,
    flow: String,
    wake_at: i64,
    state: rusqlite::types::Value,
}

impl RunRow {
    fn new(run: StoredRun) -> Result<RunRow, StoreError> {
        // A string state (the engine's compact form) is kept as its bytes:
        // as JSON text every quote in it would be escaped.
        let state = match run.state {
            serde_json::Value::String(text) => rusqlite::types::Value::Blob(text.into_bytes()),
            other => rusqlite::types::Value::Text(to_json(
                &other,
                format_args!("saving run {}", run.id),
            )?),
        };
        Ok(RunRow {
            wake_at: ceil_ms(run.wake_at),
            id: run.id,
            flow: run.flow,
            state,
        })
    }

    fn save(&self, conn: &Connection) -> Result<(), StoreError> {
        execute(
            conn,
            SAVE_RUN,
            params![self.id, self.flow, self.wake_at, self.state],
            format_args!("saving run {}", self.id),
        )?;
        Ok(())
    }
}

fn record_inbound(
    conn: &Connection,
    customer: &str,
    sender: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute(
        conn,
        RECORD_INBOUND,
        params![customer, sender, floor_ms(at)],
        format_args!("recording inbound from {customer} to {sender}"),
    )?;
    Ok(())
}

fn run_known(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached(RUN_KNOWN)
        .and_then(|mut stmt| stmt.query_row(params![id], |row| row.get::<_, bool>(0)))
        .map_err(ctx(format_args!("looking up run {id}")))
}

/// Forgets a run's `wait for` registration and the event delivered to it:
/// the run was saved again, claimed at its timeout, or finished.
fn clear_wait(conn: &Connection, id: &str) -> Result<(), StoreError> {
    execute(
        conn,
        "DELETE FROM waits WHERE run_id = ?1",
        params![id],
        format_args!("forgetting the wait of run {id}"),
    )?;
    execute(
        conn,
        "DELETE FROM deliveries WHERE run_id = ?1",
        params![id],
        format_args!("forgetting the event delivered to run {id}"),
    )?;
    Ok(())
}

/// The event delivered to a run, if any.
fn delivered(conn: &Connection, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT event FROM deliveries WHERE run_id = ?1")
        .and_then(|mut stmt| stmt.query_row(params![id], |row| row.get(0)).optional())
        .map_err(ctx(format_args!("reading the event delivered to run {id}")))?;
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|e| corrupt(id, format!("the delivered event is not valid JSON: {e}")))
    })
    .transpose()
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue_event(&self, event: InboxEvent) -> Result<bool, StoreError> {
        let body = to_json(&event.event, format_args!("enqueuing event {}", event.id))?;
        self.call(move |conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO events (id, event, received_at, done) VALUES (?1, ?2, ?3, 0)
                     ON CONFLICT (id) DO NOTHING",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![event.id, body, floor_ms(event.received_at)])
                })
                .map_err(ctx(format_args!("enqueuing event {}", event.id)))?;
            Ok(inserted == 1)
        })
        .await
    }

    /// The whole batch in one `BEGIN IMMEDIATE` transaction (one commit):
    /// every event is kept, or on an error none is.
    async fn enqueue_events(&self, events: Vec<InboxEvent>) -> Result<Vec<bool>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = events
            .into_iter()
            .map(|event| {
                let body = to_json(&event.event, format_args!("enqueuing event {}", event.id))?;
                Ok((event.id, body, floor_ms(event.received_at)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx("enqueuing events: starting the transaction"))?;
            let mut new = Vec::with_capacity(rows.len());
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO events (id, event, received_at, done) VALUES (?1, ?2, ?3, 0)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .map_err(ctx("enqueuing events"))?;
                for (id, body, received_at) in &rows {
                    let inserted = stmt
                        .execute(params![id, body, received_at])
                        .map_err(ctx(format_args!("enqueuing event {id}")))?;
                    new.push(inserted == 1);
                }
            }
            tx.commit().map_err(ctx("enqueuing events: committing"))?;
            Ok(new)
        })
        .await
    }

    async fn pending_events(&self, n: usize) -> Result<Vec<InboxEvent>, StoreError> {
        self.call(move |conn| {
            collect(
                conn,
                "SELECT id, event, received_at FROM events WHERE done = 0
                 ORDER BY received_at, id LIMIT ?1",
                params![limit(n)],
                "reading pending events",
                decode_event,
            )
        })
        .await
    }

    async fn pending_count(&self) -> Result<usize, StoreError> {
        self.call(|conn| {
            let n: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM events WHERE done = 0")
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
                .map_err(ctx("counting pending events"))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn finish_event(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.call(move |conn| {
            execute(
                conn,
                FINISH_EVENT,
                params![id],
                format_args!("finishing event {id}"),
            )?;
            Ok(())
        })
        .await
    }

    /// All of them in one `BEGIN IMMEDIATE` transaction (one commit).
    async fn finish_events(&self, ids: &[&str]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx("finishing events: starting the transaction"))?;
            for id in &ids {
                execute(
                    &tx,
                    FINISH_EVENT,
                    params![id],
                    format_args!("finishing event {id}"),
                )?;
            }
            tx.commit().map_err(ctx("finishing events: committing"))
        })
        .await
    }

    async fn prune_finished_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let horizon = before;
        let before = floor_ms(before);
        self.call(move |conn| {
            let what = "pruning finished events";
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx(what))?;
            execute(
                &tx,
                "DELETE FROM answered WHERE event_id IN
                     (SELECT id FROM events WHERE done = 1 AND received_at < ?1)",
                params![before],
                what,
            )?;
            let pruned = execute(
                &tx,
                "DELETE FROM events WHERE done = 1 AND received_at < ?1",
                params![before],
                what,
            )?;
            pacing::prune(&tx, horizon)?;
            tx.commit().map_err(ctx(what))?;
            Ok(pruned)
        })
        .await
    }

    async fn send_state(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        let key = key.to_string();
        self.call(move |conn| {
            let raw: Option<rusqlite::types::Value> = conn
                .prepare_cached("SELECT state FROM sends WHERE key = ?1")
                .and_then(|mut stmt| stmt.query_row(params![key], |row| row.get(0)).optional())
                .map_err(ctx(format_args!("reading send state {key}")))?;
            match raw {
                None => Ok(None),
                Some(rusqlite::types::Value::Text(raw)) => serde_json::from_str(&raw)
                    .map(Some)
                    .map_err(|e| corrupt(&key, format!("send state is not valid: {e}"))),
                Some(other) => Err(corrupt(
                    &key,
                    format!("send state is {}, not text", other.data_type()),
                )),
            }
        })
        .await
    }

    async fn claim_send(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        let started = to_json(&SendState::Started, format_args!("claiming send {key}"))?;
        let inserted = {
            let key = key.to_string();
            self.call(move |conn| {
                execute(
                    conn,
                    "INSERT INTO sends (key, state) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    params![key, started],
                    format_args!("claiming send {key}"),
                )
            })
            .await?
        };
        if inserted == 1 {
            Ok(None)
        } else {
            self.send_state(key).await
        }
    }

    async fn run_known(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.call(move |conn| run_known(conn, &id)).await
    }

    async fn set_send_state(&self, key: &str, state: Option<SendState>) -> Result<(), StoreError> {
        let key = key.to_string();
        let body = state
            .as_ref()
            .map(|s| to_json(s, format_args!("setting send state {key}")))
            .transpose()?;
        self.call(move |conn| {
            let what = format_args!("setting send state {key}");
            match body {
                Some(body) => execute(
                    conn,
                    "INSERT INTO sends (key, state) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                    params![key, body],
                    what,
                ),
                None => execute(conn, "DELETE FROM sends WHERE key = ?1", params![key], what),
            }?;
            Ok(())
        })
        .await
    }

    async fn record_inbound(
        &self,
        customer: &str,
        sender: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (customer, sender) = (customer.to_string(), sender.to_string());
        self.call(move |conn| record_inbound(conn, &customer, &sender, at))
            .await
    }

    async fn last_inbound(
        &self,
        customer: &str,
        sender: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (customer, sender) = (customer.to_string(), sender.to_string());
        self.call(move |conn| {
            let what = format!("reading the window of {customer} with {sender}");
            let mut stmt = conn
                .prepare_cached(
                    "SELECT last_inbound FROM windows WHERE customer = ?1 AND sender = ?2",
                )
                .map_err(ctx(&what))?;
            let mut rows = stmt.query(params![customer, sender]).map_err(ctx(&what))?;
            match rows.next().map_err(ctx(&what))? {
                None => Ok(None),
                Some(row) => time(
                    row,
                    0,
                    &format!("window {customer}/{sender}"),
                    "last_inbound",
                )
                .map(Some),
            }
        })
        .await
    }

    async fn save_run(&self, mut run: StoredRun) -> Result<(), StoreError> {
        let delivered = run
            .delivered
            .take()
            .map(|event| to_json(&event, format_args!("saving run {}", run.id)))
            .transpose()?;
        let row = RunRow::new(run)?;
        self.call(move |conn| {
            let what = format!("saving run {}", row.id);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx(&what))?;
            row.save(&tx)?;
            clear_wait(&tx, &row.id)?;
            if let Some(event) = delivered {
                execute(
                    &tx,
                    "INSERT INTO deliveries (run_id, event) VALUES (?1, ?2)",
                    params![row.id, event],
                    &what,
                )?;
            }
            tx.commit().map_err(ctx(&what))
        })
        .await
    }

    /// The window and every run in one `BEGIN IMMEDIATE` transaction (one
    /// commit instead of one per call).
    async fn begin_runs(
        &self,
        inbound: Option<Inbound<'_>>,
        runs: Vec<StoredRun>,
        only_new: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let inbound = inbound.map(|i| (i.customer.to_string(), i.sender.to_string(), i.at));
        let rows = runs
            .into_iter()
            .map(RunRow::new)
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx("beginning runs: starting the transaction"))?;
            if let Some((customer, sender, at)) = &inbound {
                record_inbound(&tx, customer, sender, *at)?;
            }
            let mut kept = Vec::with_capacity(rows.len());
            for row in &rows {
                let keep = !(only_new && run_known(&tx, &row.id)?);
                if keep {
                    row.save(&tx)?;
                }
                kept.push(keep);
            }
            tx.commit().map_err(ctx("beginning runs: committing"))?;
            Ok(kept)
        })
        .await
    }

    /// Leases the due runs (see the [module documentation](self)). A row
    /// that cannot be decoded is leased too, so it does not hold back the
    /// runs behind it, and reported as [`StoreError::Corrupt`]; the next
    /// claim returns the others. It comes back every lease until it is
    /// repaired or deleted.
    async fn claim_due_runs(
        &self,
        now: DateTime<Utc>,
        n: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let now_ms = floor_ms(now);
        let until = ceil_ms(now + self.lease);
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx("claiming due runs: starting the transaction"))?;
            let mut runs = Vec::new();
            let mut bad: Option<(String, StoreError)> = None;
            {
                let what = "claiming due runs";
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, flow, wake_at, state FROM runs WHERE wake_at <= ?1
                         ORDER BY wake_at, id LIMIT ?2",
                    )
                    .map_err(ctx(what))?;
                let mut rows = stmt.query(params![now_ms, limit(n)]).map_err(ctx(what))?;
                while let Some(row) = rows.next().map_err(ctx(what))? {
                    match decode_run(row) {
                        Ok(run) => runs.push(run),
                        Err(e) => {
                            let id: Option<String> = row.get(0).ok();
                            match id {
                                Some(id) => bad = Some((id, e)),
                                None => return Err(e),
                            }
                            break;
                        }
                    }
                }
            }
            let leased: Vec<&str> = match &bad {
                Some((id, _)) => vec![id.as_str()],
                None => runs.iter().map(|r| r.id.as_str()).collect(),
            };
            {
                let mut stmt = tx
                    .prepare_cached("UPDATE runs SET wake_at = ?1 WHERE id = ?2")
                    .map_err(ctx("claiming due runs: leasing"))?;
                for id in leased {
                    stmt.execute(params![until, id])
                        .map_err(ctx(format_args!("claiming due runs: leasing run {id}")))?;
                }
            }
            // A run whose `wait for` timed out loses its registration in the
            // same transaction: a reply from now on finds nothing. A run
            // that received an event before a crash gets it back.
            if bad.is_none() {
                for run in &mut runs {
                    run.delivered = delivered(&tx, &run.id)?;
                    if run.delivered.is_none() {
                        clear_wait(&tx, &run.id)?;
                    }
                }
            }
            tx.commit().map_err(ctx("claiming due runs: committing"))?;
            match bad {
                Some((_, e)) => Err(e),
                None => Ok(runs),
            }
        })
        .await
    }

    async fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.call(|conn| {
            let ms: Option<i64> = conn
                .prepare_cached("SELECT min(wake_at) FROM runs")
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
                .map_err(ctx("reading the next wake-up time"))?;
            ms.map(|ms| {
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| corrupt("runs", format!("wake_at {ms} is out of range")))
            })
            .transpose()
        })
        .await
    }

    async fn suspended_count(&self) -> Result<usize, StoreError> {
        self.call(|conn| {
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM runs")
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
                .map_err(ctx("counting suspended runs"))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn record_run(&self, record: RunRecord) -> Result<(), StoreError> {
        let outcome = to_json(&record.outcome, format_args!("recording run {}", record.id))?;
        self.call(move |conn| {
            let what = format!("recording run {}", record.id);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx(&what))?;
            execute(
                &tx,
                "INSERT INTO history (id, flow, trigger_name, started_at, finished_at, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    record.id,
                    record.flow,
                    record.trigger,
                    floor_ms(record.started_at),
                    floor_ms(record.finished_at),
                    outcome
                ],
                &what,
            )?;
            execute(
                &tx,
                "DELETE FROM runs WHERE id = ?1",
                params![record.id],
                &what,
            )?;
            clear_wait(&tx, &record.id)?;
            tx.commit().map_err(ctx(&what))
        })
        .await
    }

    async fn run_history(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.call(|conn| {
            collect(
                conn,
                "SELECT id, flow, trigger_name, started_at, finished_at, outcome
                 FROM history ORDER BY seq",
                [],
                "reading the run history",
                decode_record,
            )
        })
        .await
    }

    async fn log_send(&self, record: SentRecord) -> Result<(), StoreError> {
        self.call(move |conn| {
            execute(
                conn,
                "INSERT INTO sent (run_id, sender, recipient, template, message_id, sent_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    record.run_id,
                    record.sender,
                    record.to,
                    record.template,
                    record.message_id,
                    floor_ms(record.at)
                ],
                format_args!("logging sent message {}", record.message_id),
            )?;
            Ok(())
        })
        .await
    }

    async fn sent_log(&self) -> Result<Vec<SentRecord>, StoreError> {
        self.call(|conn| {
            collect(
                conn,
                "SELECT run_id, sender, recipient, template, message_id, sent_at
                 FROM sent ORDER BY seq",
                [],
                "reading the sent log",
                decode_sent,
            )
        })
        .await
    }

    async fn pause_conversation(&self, pause: PausedConversation) -> Result<(), StoreError> {
        self.call(move |conn| conversations::pause(conn, &pause))
            .await
    }

    async fn resume_conversation(&self, customer: &str, sender: &str) -> Result<bool, StoreError> {
        let (customer, sender) = (customer.to_string(), sender.to_string());
        self.call(move |conn| conversations::resume(conn, &customer, &sender))
            .await
    }

    async fn paused_conversations(&self) -> Result<Vec<PausedConversation>, StoreError> {
        self.call(|conn| conversations::paused(conn)).await
    }

    async fn conversation_paused(
        &self,
        customer: &str,
        sender: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (customer, sender) = (customer.to_string(), sender.to_string());
        self.call(move |conn| conversations::is_paused(conn, &customer, &sender, now))
            .await
    }

    async fn add_to_burst(&self, burst: Burst) -> Result<(), StoreError> {
        self.call(move |conn| conversations::add_to_burst(conn, burst))
            .await
    }

    async fn claim_due_bursts(
        &self,
        now: DateTime<Utc>,
        n: usize,
    ) -> Result<Vec<Burst>, StoreError> {
        let lease = self.lease;
        self.call(move |conn| conversations::claim_due(conn, now, n, lease))
            .await
    }

    async fn finish_burst(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.call(move |conn| conversations::finish(conn, &id))
            .await
    }

    async fn next_burst_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.call(|conn| conversations::next_deadline(conn)).await
    }

    /// The run, its registration, in one transaction.
    async fn save_waiting_run(&self, run: StoredRun, wait: WaitKey) -> Result<(), StoreError> {
        let row = RunRow::new(run)?;
        self.call(move |conn| {
            let what = format!("saving waiting run {}", row.id);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx(&what))?;
            row.save(&tx)?;
            clear_wait(&tx, &row.id)?;
            execute(
                &tx,
                "INSERT INTO waits (run_id, trigger_name, wait_key) VALUES (?1, ?2, ?3)",
                params![row.id, wait.trigger, wait.key],
                &what,
            )?;
            tx.commit().map_err(ctx(&what))
        })
        .await
    }

    /// One `BEGIN IMMEDIATE` transaction: the registrations go, the event
    /// is kept with each run, and the runs are leased as by
    /// [`Store::claim_due_runs`].
    async fn deliver_to_waiting(
        &self,
        wait: &WaitKey,
        event_id: Option<&str>,
        event: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        let body = to_json(&event, "delivering an event to waiting runs")?;
        let wait = wait.clone();
        let event_id = event_id.map(str::to_string);
        let until = ceil_ms(now + self.lease);
        self.call(move |conn| {
            let what = "delivering an event to waiting runs";
            // Most messages answer no run: a read decides that without a
            // write transaction (the connection thread serializes this
            // store's calls, so nothing registers in between).
            if !may_deliver(conn, &wait.trigger, &wait.key, event_id.as_deref())? {
                return Ok(Delivery::default());
            }
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx(what))?;
            if let Some(id) = &event_id {
                let known = tx
                    .prepare_cached("SELECT 1 FROM answered WHERE event_id = ?1")
                    .and_then(|mut stmt| stmt.exists(params![id]))
                    .map_err(ctx(what))?;
                if known {
                    return Ok(Delivery {
                        runs: Vec::new(),
                        answered: true,
                    });
                }
            }
            let ids: Vec<String> = tx
                .prepare_cached(
                    "SELECT run_id FROM waits WHERE trigger_name = ?1 AND wait_key = ?2
                     ORDER BY run_id",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![wait.trigger, wait.key], |row| row.get(0))?
                        .collect()
                })
                .map_err(ctx(what))?;
            let mut runs = Vec::with_capacity(ids.len());
            for id in &ids {
                execute(
                    &tx,
                    "DELETE FROM waits WHERE run_id = ?1",
                    params![id],
                    what,
                )?;
                execute(
                    &tx,
                    "INSERT OR REPLACE INTO deliveries (run_id, event) VALUES (?1, ?2)",
                    params![id, body],
                    what,
                )?;
                execute(
                    &tx,
                    "UPDATE runs SET wake_at = ?1 WHERE id = ?2",
                    params![until, id],
                    what,
                )?;
                let run = tx
                    .prepare_cached("SELECT id, flow, wake_at, state FROM runs WHERE id = ?1")
                    .and_then(|mut stmt| {
                        stmt.query_row(params![id], |row| Ok(decode_run(row)))
                            .optional()
                    })
                    .map_err(ctx(what))?;
                if let Some(run) = run {
                    let mut run = run?;
                    run.delivered = Some(event.clone());
                    runs.push(run);
                }
            }
            if let (Some(id), false) = (&event_id, runs.is_empty()) {
                execute(
                    &tx,
                    "INSERT OR IGNORE INTO answered (event_id) VALUES (?1)",
                    params![id],
                    what,
                )?;
            }
            tx.commit().map_err(ctx(what))?;
            Ok(Delivery {
                answered: !runs.is_empty(),
                runs,
            })
        })
        .await
    }

    /// Both reads in one call to the connection's thread.
    async fn inbound_check(&self, query: InboundQuery<'_>) -> Result<InboundCheck, StoreError> {
        let conversation = query
            .conversation
            .map(|(customer, sender)| (customer.to_string(), sender.to_string()));
        let wait = query
            .wait
            .map(|wait| (wait.trigger.to_string(), wait.key.to_string()));
        let event_id = query.event_id.map(str::to_string);
        let now = query.now;
        self.call(move |conn| {
            let paused = match &conversation {
                Some((customer, sender)) => conversations::is_paused(conn, customer, sender, now)?,
                None => false,
            };
            let may_deliver = match &wait {
                Some((trigger, key)) => may_deliver(conn, trigger, key, event_id.as_deref())?,
                None => false,
            };
            Ok(InboundCheck {
                paused,
                may_deliver,
            })
        })
        .await
    }

    async fn waiting_count(&self, wait: &WaitKey) -> Result<usize, StoreError> {
        let wait = wait.clone();
        self.call(move |conn| {
            let n: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM waits WHERE trigger_name = ?1 AND wait_key = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![wait.trigger, wait.key], |row| row.get(0))
                })
                .map_err(ctx("counting waiting runs"))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn create_campaign(
        &self,
        campaign: Campaign,
        recipients: Vec<CampaignRecipient>,
    ) -> Result<(), StoreError> {
        self.call(move |conn| campaigns::create(conn, &campaign, &recipients))
            .await
    }

    async fn campaign(&self, id: &str) -> Result<Option<(Campaign, CampaignCounts)>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| campaigns::get(conn, &id)).await
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.call(|conn| campaigns::list(conn)).await
    }

    async fn set_campaign_state(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
        reason: Option<String>,
    ) -> Result<bool, StoreError> {
        let (id, from) = (id.to_string(), from.to_vec());
        self.call(move |conn| campaigns::set_state(conn, &id, &from, to, reason.as_deref()))
            .await
    }

    async fn claim_campaign_recipients(
        &self,
        id: &str,
        now: DateTime<Utc>,
        n: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<CampaignRecipient>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| campaigns::claim(conn, &id, now, n, lease_until))
            .await
    }

    async fn defer_campaign_recipient(
        &self,
        id: &str,
        line: u64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.call(move |conn| campaigns::defer(conn, &id, line, until))
            .await
    }

    async fn finish_campaign_recipient(
        &self,
        id: &str,
        line: u64,
        state: RecipientState,
        run_id: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.call(move |conn| campaigns::finish(conn, &id, line, state, run_id.as_deref(), at))
            .await
    }

    async fn next_campaign_recipient(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| campaigns::next_pending(conn, &id))
            .await
    }

    async fn campaign_recipients(&self, id: &str) -> Result<Vec<CampaignRecipient>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| campaigns::recipients(conn, &id))
            .await
    }

    async fn campaign_starts(
        &self,
        sender: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<CampaignStart>, StoreError> {
        let sender = sender.to_string();
        self.call(move |conn| campaigns::starts(conn, &sender, since))
            .await
    }

    async fn take_tier_slot(
        &self,
        id: &str,
        line: u64,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| campaigns::take_tier_slot(conn, &id, line, now, limit))
            .await
    }

    /// Every process on the file paces under the same limits.
    async fn reserve_send_slot(
        &self,
        request: SlotRequest<'_>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (sender, recipient) = (request.sender.to_string(), request.recipient.to_string());
        let (now, sender_spacing, recipient_interval) = (
            request.now,
            request.sender_spacing,
            request.recipient_interval,
        );
        self.call(move |conn| {
            let request = SlotRequest {
                sender: &sender,
                recipient: &recipient,
                now,
                sender_spacing,
                recipient_interval,
            };
            pacing::reserve(conn, &request).map(Some)
        })
        .await
    }

    fn paces_sends(&self) -> bool {
        true
    }

    async fn record_opt_change(&self, change: OptChangeRecord) -> Result<(), StoreError> {
        self.call(move |conn| campaigns::record_opt_change(conn, &change))
            .await
    }

    async fn opted_out(&self, phone: &str) -> Result<bool, StoreError> {
        let phone = phone.to_string();
        self.call(move |conn| campaigns::is_opted_out(conn, &phone))
            .await
    }

    async fn opt_outs(&self) -> Result<Vec<OptOutRecord>, StoreError> {
        self.call(|conn| campaigns::opt_outs(conn)).await
    }

    async fn import_opt_outs(&self, records: Vec<OptOutRecord>) -> Result<usize, StoreError> {
        self.call(move |conn| campaigns::import(conn, &records))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn run(id: &str, wake_at: DateTime<Utc>) -> StoredRun {
        StoredRun {
            id: id.into(),
            flow: "reminder".into(),
            wake_at,
            state: serde_json::json!({"id": id}),
            delivered: None,
        }
    }

    #[test]
    fn default_options() {
        let options = SqliteOptions::default();
        assert!(!options.synchronous_full);
        assert_eq!(options.lease, chrono::Duration::minutes(5));
        assert_eq!(options.busy_timeout, StdDuration::from_secs(5));
    }

    /// A pragma's value, read on the store's connection.
    async fn pragma<T: rusqlite::types::FromSql + Send + 'static>(
        store: &SqliteStore,
        name: &'static str,
    ) -> T {
        store
            .call(move |conn| {
                conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                    .map_err(ctx("reading a pragma"))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn open_sets_pragmas_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.path(), Some(path.as_path()));
        assert_eq!(pragma::<String>(&store, "journal_mode").await, "wal");
        assert_eq!(pragma::<i64>(&store, "synchronous").await, 1, "NORMAL");
        assert_eq!(pragma::<i64>(&store, "foreign_keys").await, 1);
        assert_eq!(pragma::<i64>(&store, "user_version").await, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn synchronous_full_is_a_setting() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            synchronous_full: true,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(dir.path().join("flows.db"), options).unwrap();
        assert_eq!(pragma::<i64>(&store, "synchronous").await, 2, "FULL");
    }

    #[test]
    fn a_non_positive_lease_is_refused() {
        let options = SqliteOptions {
            lease: chrono::Duration::zero(),
            ..SqliteOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteStore::open_with(dir.path().join("flows.db"), options).unwrap_err();
        assert!(err.to_string().contains("lease must be positive"), "{err}");
    }

    #[tokio::test]
    async fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.save_run(run("r1", at(1))).await.unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.suspended_count().await.unwrap(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Backend(_)));
        assert!(message.contains("newer"), "{message}");
        assert!(message.contains("flows.db"), "{message}");
    }

    #[test]
    fn an_unopenable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteStore::open(dir.path().join("missing/dir/flows.db")).unwrap_err();
        assert!(err.to_string().contains("opening"), "{err}");
    }

    #[tokio::test]
    async fn a_wake_time_is_rounded_up_never_early() {
        let store = SqliteStore::in_memory().unwrap();
        let wake = at(10) + chrono::Duration::microseconds(1_500);
        store.save_run(run("r1", wake)).await.unwrap();
        // 1.5 ms past the second: not due at 1 ms, due at 2 ms.
        let one_ms = at(10) + chrono::Duration::milliseconds(1);
        assert!(store.claim_due_runs(one_ms, 10).await.unwrap().is_empty());
        let two_ms = at(10) + chrono::Duration::milliseconds(2);
        let claimed = store.claim_due_runs(two_ms, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].wake_at, two_ms);
    }

    #[tokio::test]
    async fn a_panicking_operation_is_rolled_back_and_the_store_goes_on() {
        let store = SqliteStore::in_memory().unwrap();
        let err = store
            .call(|conn| -> Result<(), StoreError> {
                let tx = conn.transaction().map_err(ctx("begin"))?;
                tx.execute(
                    "INSERT INTO runs (id, flow, wake_at, state) VALUES ('r', 'f', 0, '{}')",
                    [],
                )
                .map_err(ctx("insert"))?;
                panic!("a bug in an operation");
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(store.suspended_count().await.unwrap(), 0, "rolled back");
        assert!(!store.run_known("r").await.unwrap());
    }

    /// Makes every statement that touches a row with id `bad` in `table`
    /// fail, so a batch containing it fails halfway.
    async fn fail_on_bad_row(store: &SqliteStore, table: &'static str, when: &'static str) {
        store
            .call(move |conn| {
                conn.execute_batch(&format!(
                    "CREATE TRIGGER fail_{table} BEFORE {when} ON {table}
                     WHEN NEW.id = 'bad' BEGIN SELECT RAISE(ABORT, 'refused'); END;"
                ))
                .map_err(ctx("creating a failing trigger"))
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn begin_runs_keeps_nothing_when_one_run_fails() {
        let store = SqliteStore::in_memory().unwrap();
        fail_on_bad_row(&store, "runs", "INSERT").await;
        let inbound = Inbound {
            customer: "+491",
            sender: "berlin",
            at: at(1),
        };
        let err = store
            .begin_runs(
                Some(inbound),
                vec![run("good", at(2)), run("bad", at(3))],
                true,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert_eq!(store.last_inbound("+491", "berlin").await.unwrap(), None);
        assert_eq!(store.suspended_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn finish_events_marks_nothing_when_one_fails() {
        let store = SqliteStore::in_memory().unwrap();
        for id in ["good", "bad"] {
            let event = InboxEvent {
                id: id.into(),
                event: serde_json::json!({"trigger": "message"}),
                received_at: at(1),
            };
            assert!(store.enqueue_event(event).await.unwrap());
        }
        fail_on_bad_row(&store, "events", "UPDATE").await;
        assert!(store.finish_events(&["good", "bad"]).await.is_err());
        assert_eq!(store.pending_count().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_corrupt_claim_does_not_block_the_runs_behind_it() {
        let store = SqliteStore::in_memory().unwrap();
        store.save_run(run("a-bad", at(1))).await.unwrap();
        store.save_run(run("b-good", at(2))).await.unwrap();
        store
            .call(|conn| {
                conn.execute("UPDATE runs SET state = x'00ff' WHERE id = 'a-bad'", [])
                    .map_err(ctx("corrupting a run"))
            })
            .await
            .unwrap();
        match store.claim_due_runs(at(5), 10).await {
            Err(StoreError::Corrupt { id, reason }) => {
                assert_eq!(id, "a-bad");
                assert!(reason.contains("state"), "{reason}");
            }
            other => panic!("expected corrupt, got {other:?}"),
        }
        let claimed = store.claim_due_runs(at(5), 10).await.unwrap();
        assert_eq!(claimed, vec![run("b-good", at(2))]);
    }
}
