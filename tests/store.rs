//! One behaviour suite for every `Store`: the in-memory store and the SQLite
//! store must agree on everything the engine relies on. Then the guarantees
//! only a durable store gives: reopening, leases, concurrent claims.
//!
//! The suite runs against PostgreSQL too, on a throwaway server the tests
//! start themselves (`common/postgres.rs`), a fresh database per test.

#[path = "common/postgres.rs"]
mod pg;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use flowc::providers::postgres::PostgresStore;
use flowc::providers::sqlite::{SqliteOptions, SqliteStore};
use flowc::providers::{
    Inbound, InboundCheck, InboundQuery, InboxEvent, MemoryStore, PausedConversation, RunOutcome,
    RunRecord, SendState, SentRecord, Store, StoreError, StoredRun, WaitKey, WaitKeyRef,
};
use flowc::runtime::{Frame, Run, Value};
use serde_json::json;

/// A moment in the test's timeline, whole milliseconds (the SQLite store
/// keeps millisecond precision).
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap() + Duration::seconds(secs)
}

fn run(id: &str, wake_at: DateTime<Utc>) -> StoredRun {
    StoredRun {
        id: id.into(),
        flow: "reminder".into(),
        wake_at,
        state: json!({"run": id, "step": 1, "vars": {"name": "Ada"}}),
        delivered: None,
    }
}

fn event(id: &str, received_at: DateTime<Utc>) -> InboxEvent {
    InboxEvent {
        id: id.into(),
        event: json!({"trigger": "message", "fields": {"id": id, "text": "hi"}}),
        received_at,
    }
}

fn record(id: &str, outcome: RunOutcome, finished: i64) -> RunRecord {
    RunRecord {
        id: id.into(),
        flow: "reminder".into(),
        trigger: "message".into(),
        started_at: at(0),
        finished_at: at(finished),
        outcome,
    }
}

fn sent(run_id: &str, message_id: &str, template: Option<&str>, secs: i64) -> SentRecord {
    SentRecord {
        run_id: run_id.into(),
        sender: "berlin-office".into(),
        to: "+4915112345678".into(),
        template: template.map(str::to_string),
        message_id: message_id.into(),
        at: at(secs),
    }
}

fn ids(runs: &[StoredRun]) -> Vec<&str> {
    runs.iter().map(|r| r.id.as_str()).collect()
}

// ---------------------------------------------------------------------------
// The shared suite.

async fn windows_keep_the_later_time(store: &dyn Store) {
    assert_eq!(store.last_inbound("+491", "berlin").await.unwrap(), None);
    store
        .record_inbound("+491", "berlin", at(10))
        .await
        .unwrap();
    assert_eq!(
        store.last_inbound("+491", "berlin").await.unwrap(),
        Some(at(10))
    );
    // An older message arriving late does not move the window back.
    store.record_inbound("+491", "berlin", at(5)).await.unwrap();
    assert_eq!(
        store.last_inbound("+491", "berlin").await.unwrap(),
        Some(at(10))
    );
    store
        .record_inbound("+491", "berlin", at(20))
        .await
        .unwrap();
    assert_eq!(
        store.last_inbound("+491", "berlin").await.unwrap(),
        Some(at(20))
    );
    // Windows are per customer and sender.
    assert_eq!(store.last_inbound("+491", "munich").await.unwrap(), None);
    assert_eq!(store.last_inbound("+492", "berlin").await.unwrap(), None);
    store.record_inbound("+491", "munich", at(3)).await.unwrap();
    assert_eq!(
        store.last_inbound("+491", "munich").await.unwrap(),
        Some(at(3))
    );
    assert_eq!(
        store.last_inbound("+491", "berlin").await.unwrap(),
        Some(at(20))
    );
}

async fn enqueue_event_dedupes(store: &dyn Store) {
    assert!(store.enqueue_event(event("wamid.1", at(1))).await.unwrap());
    // A redelivery, even with another payload, is recognised and ignored.
    let mut redelivered = event("wamid.1", at(2));
    redelivered.event = json!({"trigger": "message", "fields": {"text": "changed"}});
    assert!(!store.enqueue_event(redelivered).await.unwrap());
    assert_eq!(
        store.pending_events(10).await.unwrap(),
        vec![event("wamid.1", at(1))]
    );

    store.finish_event("wamid.1").await.unwrap();
    assert!(store.pending_events(10).await.unwrap().is_empty());
    // After its runs started, the id is still known.
    assert!(!store.enqueue_event(event("wamid.1", at(3))).await.unwrap());
    assert!(store.pending_events(10).await.unwrap().is_empty());

    // Finishing an unknown or already finished event is harmless.
    store.finish_event("wamid.unknown").await.unwrap();
    store.finish_event("wamid.1").await.unwrap();
    assert!(store.enqueue_event(event("wamid.2", at(4))).await.unwrap());
    assert_eq!(
        store.pending_events(10).await.unwrap(),
        vec![event("wamid.2", at(4))]
    );
}

async fn finish_events_takes_a_batch_out_of_the_inbox(store: &dyn Store) {
    for (id, secs) in [("e1", 1), ("e2", 2), ("e3", 3), ("e4", 4)] {
        assert!(store.enqueue_event(event(id, at(secs))).await.unwrap());
    }
    store.finish_events(&[]).await.unwrap();
    assert_eq!(store.pending_count().await.unwrap(), 4);
    // Unknown and already finished ids are harmless, as with finish_event.
    store.finish_event("e2").await.unwrap();
    store
        .finish_events(&["e1", "e2", "e4", "unknown"])
        .await
        .unwrap();
    assert_eq!(
        store.pending_events(10).await.unwrap(),
        vec![event("e3", at(3))]
    );
    // Their ids stay known.
    assert!(!store.enqueue_event(event("e1", at(5))).await.unwrap());
    assert!(!store.enqueue_event(event("e4", at(5))).await.unwrap());
}

/// The window a run begins with: `+491` wrote to `berlin` at 10 s.
fn inbound() -> Inbound<'static> {
    Inbound {
        customer: "+491",
        sender: "berlin",
        at: at(10),
    }
}

async fn the_window_is_at_10s(store: &dyn Store) {
    assert_eq!(
        store.last_inbound("+491", "berlin").await.unwrap(),
        Some(at(10))
    );
}

async fn begin_runs_records_the_window_and_keeps_the_runs(store: &dyn Store) {
    let inbound = inbound();
    let kept = store
        .begin_runs(
            Some(inbound),
            vec![run("b1", at(100)), run("b2", at(50))],
            false,
        )
        .await
        .unwrap();
    assert_eq!(kept, vec![true, true]);
    the_window_is_at_10s(store).await;
    assert_eq!(store.suspended_count().await.unwrap(), 2);
    assert_eq!(store.next_wake().await.unwrap(), Some(at(50)));
    // Like record_inbound, an older message does not move the window back.
    let older = Inbound {
        at: at(5),
        ..inbound
    };
    assert_eq!(
        store
            .begin_runs(Some(older), Vec::new(), false)
            .await
            .unwrap(),
        Vec::<bool>::new()
    );
    the_window_is_at_10s(store).await;
    // Without `only_new`, a run with a known id is replaced, as by save_run.
    let kept = store
        .begin_runs(None, vec![run("b2", at(60))], false)
        .await
        .unwrap();
    assert_eq!(kept, vec![true]);
    assert_eq!(store.next_wake().await.unwrap(), Some(at(60)));
}

async fn begin_runs_only_new_skips_known_runs(store: &dyn Store) {
    store.save_run(run("waiting", at(10))).await.unwrap();
    store
        .record_run(record("finished", RunOutcome::Completed, 2))
        .await
        .unwrap();
    let mut replaced = run("waiting", at(99));
    replaced.state = json!({"run": "waiting", "step": 9});
    let kept = store
        .begin_runs(
            None,
            vec![run("new", at(20)), replaced, run("finished", at(30))],
            true,
        )
        .await
        .unwrap();
    assert_eq!(kept, vec![true, false, false]);
    // The known runs are untouched: the waiting one keeps its state and
    // time, the finished one is not waiting again.
    assert_eq!(store.suspended_count().await.unwrap(), 2);
    assert_eq!(
        store.claim_due_runs(at(20), 10).await.unwrap(),
        vec![run("waiting", at(10)), run("new", at(20))]
    );
}

/// A run as the engine holds it when it begins: one frame, the trigger's
/// record bound.
fn beginning_run(id: &str) -> Run {
    Run {
        id: id.into(),
        flow: "reminder".into(),
        handler: 0,
        trigger: "call.ended".into(),
        started_at: at(0),
        frames: vec![Frame {
            path: Vec::new(),
            next: 0,
            vars: vec![(
                "call".into(),
                Value::record([
                    ("customer_phone", Value::from("+4915112345678")),
                    ("agent_name", Value::None),
                    ("duration", Value::Duration(270_000)),
                ]),
            )],
            attempt: 0,
        }],
        steps: 0,
    }
}

async fn begin_runs_from_keeps_the_runs_as_begun(store: &dyn Store) {
    let (first, second) = (beginning_run("r1"), beginning_run("r2"));
    let kept = store
        .begin_runs_from(
            Some(inbound()),
            &[(&first, at(30)), (&second, at(40))],
            false,
        )
        .await
        .unwrap();
    assert_eq!(kept, vec![true, true]);
    the_window_is_at_10s(store).await;
    assert!(store.run_known("r1").await.unwrap());
    // A second delivery of the event does not begin a known run again.
    let again = beginning_run("r1");
    let kept = store
        .begin_runs_from(None, &[(&again, at(99))], true)
        .await
        .unwrap();
    assert_eq!(kept, vec![false]);
    // One finishes; the other is read back after its lease, encoded as
    // every other store keeps it.
    store
        .record_run(record("r2", RunOutcome::Completed, 2))
        .await
        .unwrap();
    assert_eq!(store.suspended_count().await.unwrap(), 1);
    assert_eq!(
        store.claim_due_runs(at(60), 10).await.unwrap(),
        vec![StoredRun::from_run(&first, at(30))]
    );
}

async fn enqueue_events_dedupes_within_and_across_batches(store: &dyn Store) {
    assert!(store.enqueue_events(Vec::new()).await.unwrap().is_empty());
    assert!(store.enqueue_event(event("wamid.1", at(1))).await.unwrap());
    store.finish_event("wamid.1").await.unwrap();
    assert!(store.enqueue_event(event("wamid.2", at(2))).await.unwrap());

    // Known before (finished, pending), new, the same new id twice in one
    // batch (only the first is new), and a redelivery with another payload.
    let mut changed = event("wamid.3", at(9));
    changed.event = json!({"trigger": "message", "fields": {"text": "changed"}});
    let batch = vec![
        event("wamid.1", at(3)),
        event("wamid.3", at(3)),
        event("wamid.2", at(3)),
        event("wamid.4", at(4)),
        event("wamid.3", at(5)),
        changed,
    ];
    assert_eq!(
        store.enqueue_events(batch).await.unwrap(),
        vec![false, true, false, true, false, false]
    );
    // The first copy of each new id is the one kept.
    assert_eq!(
        store.pending_events(10).await.unwrap(),
        vec![
            event("wamid.2", at(2)),
            event("wamid.3", at(3)),
            event("wamid.4", at(4)),
        ]
    );

    // A later batch and single enqueue know every id of the earlier batch.
    assert_eq!(
        store
            .enqueue_events(vec![event("wamid.4", at(6)), event("wamid.5", at(6))])
            .await
            .unwrap(),
        vec![false, true]
    );
    assert!(!store.enqueue_event(event("wamid.3", at(7))).await.unwrap());
    assert!(!store.enqueue_event(event("wamid.5", at(7))).await.unwrap());
    assert_eq!(store.pending_events(10).await.unwrap().len(), 4);
    assert_eq!(store.pending_count().await.unwrap(), 4);
    store.finish_event("wamid.3").await.unwrap();
    assert_eq!(store.pending_count().await.unwrap(), 3);
}

async fn pending_events_order_and_limit(store: &dyn Store) {
    for (id, secs) in [("c", 3), ("x", 1), ("b", 2), ("m", 1), ("d", 4)] {
        assert!(store.enqueue_event(event(id, at(secs))).await.unwrap());
    }
    let pending_ids =
        |events: Vec<InboxEvent>| -> Vec<String> { events.into_iter().map(|e| e.id).collect() };
    // Oldest first; the same time in id order.
    assert_eq!(
        pending_ids(store.pending_events(10).await.unwrap()),
        ["m", "x", "b", "c", "d"]
    );
    assert_eq!(
        pending_ids(store.pending_events(2).await.unwrap()),
        ["m", "x"]
    );
    assert!(store.pending_events(0).await.unwrap().is_empty());
    store.finish_event("x").await.unwrap();
    store.finish_event("c").await.unwrap();
    assert_eq!(
        pending_ids(store.pending_events(10).await.unwrap()),
        ["m", "b", "d"]
    );
    // Events come back as they went in.
    assert_eq!(
        store.pending_events(1).await.unwrap(),
        vec![event("m", at(1))]
    );
}

async fn send_states_set_get_forget(store: &dyn Store) {
    let key = "run-1/3/0";
    assert_eq!(store.send_state(key).await.unwrap(), None);
    store
        .set_send_state(key, Some(SendState::Started))
        .await
        .unwrap();
    assert_eq!(
        store.send_state(key).await.unwrap(),
        Some(SendState::Started)
    );
    let sent = SendState::Sent {
        message_id: "wamid.abc".into(),
        at: at(7) + Duration::microseconds(123),
    };
    store.set_send_state(key, Some(sent.clone())).await.unwrap();
    assert_eq!(store.send_state(key).await.unwrap(), Some(sent.clone()));
    // Keys are independent.
    assert_eq!(store.send_state("run-1/3/1").await.unwrap(), None);
    store
        .set_send_state("run-1/3/1", Some(SendState::Started))
        .await
        .unwrap();
    assert_eq!(store.send_state(key).await.unwrap(), Some(sent));
    // Forgetting.
    store.set_send_state(key, None).await.unwrap();
    assert_eq!(store.send_state(key).await.unwrap(), None);
    store.set_send_state(key, None).await.unwrap();
    assert_eq!(
        store.send_state("run-1/3/1").await.unwrap(),
        Some(SendState::Started)
    );
}

async fn claim_send_is_first_come(store: &dyn Store) {
    let key = "run-2/0/0";
    assert_eq!(store.claim_send(key).await.unwrap(), None);
    // A second claimer learns the send is under way and does not send.
    assert_eq!(
        store.claim_send(key).await.unwrap(),
        Some(SendState::Started)
    );
    let sent = SendState::Sent {
        message_id: "wamid.x".into(),
        at: at(3),
    };
    store.set_send_state(key, Some(sent.clone())).await.unwrap();
    assert_eq!(store.claim_send(key).await.unwrap(), Some(sent));
}

async fn run_known_covers_waiting_and_finished_runs(store: &dyn Store) {
    assert!(!store.run_known("r-known").await.unwrap());
    store.save_run(run("r-known", at(10))).await.unwrap();
    assert!(store.run_known("r-known").await.unwrap());
    store
        .record_run(RunRecord {
            id: "r-known".into(),
            flow: "f".into(),
            trigger: "call.ended".into(),
            started_at: at(1),
            finished_at: at(2),
            outcome: RunOutcome::Completed,
        })
        .await
        .unwrap();
    assert!(store.run_known("r-known").await.unwrap());
    assert!(!store.run_known("r-other").await.unwrap());
}

async fn save_run_replaces(store: &dyn Store) {
    store.save_run(run("r1", at(10))).await.unwrap();
    let mut later = run("r1", at(20));
    later.state = json!({"run": "r1", "step": 2});
    store.save_run(later.clone()).await.unwrap();
    assert_eq!(store.suspended_count().await.unwrap(), 1);
    assert_eq!(store.next_wake().await.unwrap(), Some(at(20)));
    // The old wake-up time is gone with the old state.
    assert!(store.claim_due_runs(at(15), 10).await.unwrap().is_empty());
    assert_eq!(store.claim_due_runs(at(20), 10).await.unwrap(), vec![later]);

    // Replacing with an earlier time works too.
    store.save_run(run("r2", at(50))).await.unwrap();
    store.save_run(run("r2", at(30))).await.unwrap();
    assert_eq!(
        store.claim_due_runs(at(30), 10).await.unwrap(),
        vec![run("r2", at(30))]
    );
}

async fn claim_due_runs_order_limit_and_due_only(store: &dyn Store) {
    for (id, secs) in [("c", 3), ("b", 1), ("a", 1), ("d", 5), ("future", 100)] {
        store.save_run(run(id, at(secs))).await.unwrap();
    }
    assert!(store.claim_due_runs(at(5), 0).await.unwrap().is_empty());
    assert!(store.claim_due_runs(at(0), 10).await.unwrap().is_empty());
    // Earliest first, the same time in id order, at most `limit`.
    let first = store.claim_due_runs(at(5), 2).await.unwrap();
    assert_eq!(first, vec![run("a", at(1)), run("b", at(1))]);
    // The rest of what is due (wake_at == now is due), with their own
    // wake-up times.
    let second = store.claim_due_runs(at(5), 10).await.unwrap();
    assert_eq!(second, vec![run("c", at(3)), run("d", at(5))]);
    assert!(store.claim_due_runs(at(5), 10).await.unwrap().is_empty());
    assert_eq!(
        ids(&store.claim_due_runs(at(100), 10).await.unwrap()),
        ["future"]
    );
}

async fn a_claimed_run_is_not_claimed_again(store: &dyn Store) {
    store.save_run(run("r1", at(1))).await.unwrap();
    store.save_run(run("r2", at(2))).await.unwrap();
    assert_eq!(
        ids(&store.claim_due_runs(at(2), 10).await.unwrap()),
        ["r1", "r2"]
    );
    // Memory forgets a claimed run; SQLite leases it. Either way a second
    // claim at the same moment does not return it.
    assert!(store.claim_due_runs(at(2), 10).await.unwrap().is_empty());

    // The claimer saves it again: it is due at its new time.
    store.save_run(run("r1", at(10))).await.unwrap();
    assert_eq!(
        store.claim_due_runs(at(10), 10).await.unwrap(),
        vec![run("r1", at(10))]
    );
    // Or records it as finished: it is gone.
    store
        .record_run(record("r2", RunOutcome::Completed, 3))
        .await
        .unwrap();
    store
        .record_run(record("r1", RunOutcome::Completed, 11))
        .await
        .unwrap();
    assert_eq!(store.suspended_count().await.unwrap(), 0);
    assert_eq!(store.next_wake().await.unwrap(), None);
}

async fn record_run_removes_the_suspended_run(store: &dyn Store) {
    store.save_run(run("r1", at(5))).await.unwrap();
    store.save_run(run("r2", at(8))).await.unwrap();
    store
        .record_run(record("r1", RunOutcome::Stopped, 6))
        .await
        .unwrap();
    assert_eq!(store.suspended_count().await.unwrap(), 1);
    assert_eq!(store.next_wake().await.unwrap(), Some(at(8)));
    assert_eq!(
        ids(&store.claim_due_runs(at(1000), 10).await.unwrap()),
        ["r2"]
    );
    // A run that finished without ever waiting has no suspended row.
    store
        .record_run(record("never-waited", RunOutcome::Completed, 7))
        .await
        .unwrap();
    assert_eq!(
        store.run_history().await.unwrap(),
        vec![
            record("r1", RunOutcome::Stopped, 6),
            record("never-waited", RunOutcome::Completed, 7)
        ]
    );
}

async fn next_wake_is_the_earliest(store: &dyn Store) {
    assert_eq!(store.next_wake().await.unwrap(), None);
    store.save_run(run("late", at(50))).await.unwrap();
    assert_eq!(store.next_wake().await.unwrap(), Some(at(50)));
    store.save_run(run("early", at(30))).await.unwrap();
    store.save_run(run("middle", at(40))).await.unwrap();
    assert_eq!(store.next_wake().await.unwrap(), Some(at(30)));
    store
        .record_run(record("early", RunOutcome::Completed, 31))
        .await
        .unwrap();
    assert_eq!(store.next_wake().await.unwrap(), Some(at(40)));
    store.save_run(run("middle", at(60))).await.unwrap();
    assert_eq!(store.next_wake().await.unwrap(), Some(at(50)));
}

async fn suspended_count_counts_runs(store: &dyn Store) {
    assert_eq!(store.suspended_count().await.unwrap(), 0);
    for id in ["a", "b", "c"] {
        store.save_run(run(id, at(10))).await.unwrap();
    }
    assert_eq!(store.suspended_count().await.unwrap(), 3);
    store.save_run(run("b", at(20))).await.unwrap();
    assert_eq!(store.suspended_count().await.unwrap(), 3);
    store
        .record_run(record("a", RunOutcome::Completed, 11))
        .await
        .unwrap();
    assert_eq!(store.suspended_count().await.unwrap(), 2);
}

async fn history_and_sent_log_keep_order(store: &dyn Store) {
    assert!(store.run_history().await.unwrap().is_empty());
    assert!(store.sent_log().await.unwrap().is_empty());
    let failed = RunOutcome::Failed {
        kind: "SendError".into(),
        message: "the template `reminder` was rejected".into(),
    };
    let records = vec![
        record("r-b", RunOutcome::Completed, 5),
        record("r-a", failed, 9),
        record("r-c", RunOutcome::Stopped, 12),
    ];
    for r in &records {
        store.record_run(r.clone()).await.unwrap();
    }
    assert_eq!(store.run_history().await.unwrap(), records);

    let log = vec![
        sent("r-b", "wamid.2", Some("reminder"), 4),
        sent("r-a", "wamid.1", None, 6),
        sent("r-b", "wamid.3", Some("follow_up"), 8),
    ];
    for s in &log {
        store.log_send(s.clone()).await.unwrap();
    }
    assert_eq!(store.sent_log().await.unwrap(), log);
}

// ---------------------------------------------------------------------------
// Every suite function, once per store.

/// The suite functions run once per durable store: SQLite and PostgreSQL.
macro_rules! for_each_durable_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = SqliteStore::open(dir.path().join("flows.db")).unwrap();
                    super::$name(&store).await;
                }
            )*
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    if crate::pg::skipped() {
                        return;
                    }
                    let url = crate::pg::fresh_database().await;
                    let store = PostgresStore::connect(&url).await.unwrap();
                    super::$name(&store).await;
                }
            )*
        }
    };
}

macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let store = MemoryStore::new();
                    super::$name(&store).await;
                }
            )*
        }

        for_each_durable_store!($($name),*);
    };
}

for_each_store!(
    windows_keep_the_later_time,
    enqueue_event_dedupes,
    enqueue_events_dedupes_within_and_across_batches,
    finish_events_takes_a_batch_out_of_the_inbox,
    begin_runs_records_the_window_and_keeps_the_runs,
    begin_runs_only_new_skips_known_runs,
    begin_runs_from_keeps_the_runs_as_begun,
    pending_events_order_and_limit,
    send_states_set_get_forget,
    claim_send_is_first_come,
    run_known_covers_waiting_and_finished_runs,
    save_run_replaces,
    claim_due_runs_order_limit_and_due_only,
    a_claimed_run_is_not_claimed_again,
    record_run_removes_the_suspended_run,
    next_wake_is_the_earliest,
    suspended_count_counts_runs,
    history_and_sent_log_keep_order,
);

// ---------------------------------------------------------------------------
// Runs waiting for the customer (`wait for`), shared suite.

fn wait_key(key: &str) -> WaitKey {
    WaitKey {
        trigger: "whatsapp.message_received".into(),
        key: key.into(),
    }
}

fn reply(text: &str) -> serde_json::Value {
    json!({"trigger": "whatsapp.message_received", "fields": {"text": text}})
}

async fn a_reply_goes_to_every_run_waiting_under_its_key(store: &dyn Store) {
    store
        .save_waiting_run(run("r1", at(100)), wait_key("+491"))
        .await
        .unwrap();
    store
        .save_waiting_run(run("r2", at(200)), wait_key("+491"))
        .await
        .unwrap();
    store
        .save_waiting_run(run("r3", at(100)), wait_key("+492"))
        .await
        .unwrap();
    assert_eq!(store.waiting_count(&wait_key("+491")).await.unwrap(), 2);
    let delivery = store
        .deliver_to_waiting(&wait_key("+491"), Some("e1"), reply("yes"), at(5))
        .await
        .unwrap();
    assert!(delivery.answered);
    let mut got = delivery.runs;
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(ids(&got), vec!["r1", "r2"]);
    assert!(got.iter().all(|r| r.delivered == Some(reply("yes"))));
    assert_eq!(store.waiting_count(&wait_key("+491")).await.unwrap(), 0);
    assert_eq!(store.waiting_count(&wait_key("+492")).await.unwrap(), 1);
    // The same event again answers nobody else; another event finds no one.
    let again = store
        .deliver_to_waiting(&wait_key("+492"), Some("e1"), reply("yes"), at(6))
        .await
        .unwrap();
    assert!(again.answered && again.runs.is_empty());
    assert_eq!(store.waiting_count(&wait_key("+492")).await.unwrap(), 1);
    let other = store
        .deliver_to_waiting(&wait_key("+491"), Some("e2"), reply("no"), at(7))
        .await
        .unwrap();
    assert!(!other.answered && other.runs.is_empty());
}

async fn a_timeout_claimed_first_wins_over_the_reply(store: &dyn Store) {
    store
        .save_waiting_run(run("r1", at(10)), wait_key("+491"))
        .await
        .unwrap();
    let claimed = store.claim_due_runs(at(10), 10).await.unwrap();
    assert_eq!(claimed, vec![run("r1", at(10))]);
    assert_eq!(claimed[0].delivered, None);
    let late = store
        .deliver_to_waiting(&wait_key("+491"), Some("e1"), reply("late"), at(11))
        .await
        .unwrap();
    assert!(!late.answered && late.runs.is_empty());
}

async fn a_reply_delivered_first_wins_over_the_timeout(store: &dyn Store) {
    store
        .save_waiting_run(run("r1", at(10)), wait_key("+491"))
        .await
        .unwrap();
    let delivery = store
        .deliver_to_waiting(&wait_key("+491"), None, reply("yes"), at(9))
        .await
        .unwrap();
    assert_eq!(ids(&delivery.runs), vec!["r1"]);
    // The timeout passes: the run is the reply's (taken, or leased).
    assert!(store.claim_due_runs(at(10), 10).await.unwrap().is_empty());
}

async fn pruning_forgets_old_finished_events_and_what_they_answered(store: &dyn Store) {
    for (id, secs) in [("old-done", 1), ("old-pending", 2), ("new-done", 100)] {
        assert!(store.enqueue_event(event(id, at(secs))).await.unwrap());
    }
    store
        .finish_events(&["old-done", "new-done"])
        .await
        .unwrap();
    for (id, customer) in [("r1", "+491"), ("r2", "+492")] {
        store
            .save_waiting_run(run(id, at(500)), wait_key(customer))
            .await
            .unwrap();
    }
    for (event_id, customer) in [("old-done", "+491"), ("new-done", "+492")] {
        let delivery = store
            .deliver_to_waiting(&wait_key(customer), Some(event_id), reply("yes"), at(3))
            .await
            .unwrap();
        assert!(delivery.answered);
    }

    assert_eq!(store.prune_finished_events(at(50)).await.unwrap(), 1);
    assert_eq!(store.prune_finished_events(at(50)).await.unwrap(), 0);

    // The pruned event is forgotten with the runs it answered: a new run
    // waiting under its key would take it as a new reply.
    store
        .save_waiting_run(run("r3", at(500)), wait_key("+491"))
        .await
        .unwrap();
    let again = store
        .deliver_to_waiting(&wait_key("+491"), Some("old-done"), reply("yes"), at(200))
        .await
        .unwrap();
    assert_eq!(ids(&again.runs), vec!["r3"]);
    assert!(store
        .enqueue_event(event("old-done", at(200)))
        .await
        .unwrap());
    // The pending one and the recent one are still recognised.
    assert!(!store
        .enqueue_event(event("old-pending", at(200)))
        .await
        .unwrap());
    assert!(!store
        .enqueue_event(event("new-done", at(200)))
        .await
        .unwrap());
    let redelivered = store
        .deliver_to_waiting(&wait_key("+492"), Some("new-done"), reply("yes"), at(200))
        .await
        .unwrap();
    assert!(redelivered.answered && redelivered.runs.is_empty());
}

async fn a_run_saved_with_its_received_event_keeps_it(store: &dyn Store) {
    let mut with_reply = run("r1", at(10));
    with_reply.delivered = Some(reply("yes"));
    store.save_run(with_reply.clone()).await.unwrap();
    assert_eq!(
        store.claim_due_runs(at(10), 10).await.unwrap(),
        vec![with_reply]
    );
    // Saved again without it, it is gone.
    store.save_run(run("r1", at(20))).await.unwrap();
    assert_eq!(
        store.claim_due_runs(at(20), 10).await.unwrap(),
        vec![run("r1", at(20))]
    );
}

async fn saving_or_finishing_a_waiting_run_ends_its_wait(store: &dyn Store) {
    store
        .save_waiting_run(run("r1", at(10)), wait_key("+491"))
        .await
        .unwrap();
    store
        .save_waiting_run(run("r2", at(10)), wait_key("+491"))
        .await
        .unwrap();
    store.save_run(run("r1", at(20))).await.unwrap();
    store
        .record_run(record("r2", RunOutcome::Completed, 5))
        .await
        .unwrap();
    assert_eq!(store.waiting_count(&wait_key("+491")).await.unwrap(), 0);
    let delivery = store
        .deliver_to_waiting(&wait_key("+491"), None, reply("yes"), at(6))
        .await
        .unwrap();
    assert!(delivery.runs.is_empty());
    assert_eq!(store.suspended_count().await.unwrap(), 1);
}

async fn inbound_check_tells_a_pause_and_a_possible_delivery(store: &dyn Store) {
    let query = |customer: &'static str, event_id: Option<&'static str>, secs: i64| InboundQuery {
        conversation: Some((customer, "berlin")),
        wait: Some(WaitKeyRef {
            trigger: "whatsapp.message_received",
            key: customer,
        }),
        event_id,
        now: at(secs),
    };
    let nothing = InboundCheck {
        paused: false,
        may_deliver: false,
    };
    // Nothing paused, nobody waiting, no event answered yet.
    assert_eq!(
        store
            .inbound_check(query("+491", Some("e1"), 0))
            .await
            .unwrap(),
        nothing
    );
    store
        .save_waiting_run(run("r1", at(100)), wait_key("+491"))
        .await
        .unwrap();
    let waiting = store.inbound_check(query("+491", None, 0)).await.unwrap();
    assert!(waiting.may_deliver && !waiting.paused);
    assert_eq!(
        store.inbound_check(query("+492", None, 0)).await.unwrap(),
        nothing
    );
    // A question without a wait key never expects a delivery.
    let no_wait = InboundQuery {
        wait: None,
        ..query("+491", None, 0)
    };
    assert_eq!(store.inbound_check(no_wait).await.unwrap(), nothing);
    // The event answered the run: delivered again, it may still be (and
    // then reports `answered`), though nobody waits any more.
    store
        .deliver_to_waiting(&wait_key("+491"), Some("e1"), reply("yes"), at(5))
        .await
        .unwrap();
    assert!(
        store
            .inbound_check(query("+491", Some("e1"), 6))
            .await
            .unwrap()
            .may_deliver
    );
    assert_eq!(
        store
            .inbound_check(query("+491", Some("e2"), 6))
            .await
            .unwrap(),
        nothing
    );
    // A pause holds until it runs out; it is told for its sender only.
    store
        .pause_conversation(PausedConversation {
            customer: "+492".into(),
            sender: "berlin".into(),
            paused_at: at(0),
            until: Some(at(60)),
        })
        .await
        .unwrap();
    assert!(
        store
            .inbound_check(query("+492", None, 59))
            .await
            .unwrap()
            .paused
    );
    assert!(
        !store
            .inbound_check(query("+492", None, 60))
            .await
            .unwrap()
            .paused
    );
    let other_sender = InboundQuery {
        conversation: Some(("+492", "munich")),
        ..query("+492", None, 1)
    };
    assert!(!store.inbound_check(other_sender).await.unwrap().paused);
}

mod waits {
    use super::*;

    for_each_store!(
        a_reply_goes_to_every_run_waiting_under_its_key,
        a_timeout_claimed_first_wins_over_the_reply,
        a_reply_delivered_first_wins_over_the_timeout,
        saving_or_finishing_a_waiting_run_ends_its_wait,
        pruning_forgets_old_finished_events_and_what_they_answered,
        a_run_saved_with_its_received_event_keeps_it,
        inbound_check_tells_a_pause_and_a_possible_delivery,
    );
}

#[tokio::test]
async fn sqlite_a_delivered_reply_survives_a_crash_before_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let lease = SqliteOptions::default().lease;
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .save_waiting_run(run("r1", at(100)), wait_key("+491"))
            .await
            .unwrap();
        let delivery = store
            .deliver_to_waiting(&wait_key("+491"), Some("e1"), reply("yes"), at(5))
            .await
            .unwrap();
        assert_eq!(ids(&delivery.runs), vec!["r1"]);
        // The process dies before the run goes on.
    }
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.claim_due_runs(at(100), 10).await.unwrap().is_empty());
    let back = store.claim_due_runs(at(5) + lease, 10).await.unwrap();
    assert_eq!(ids(&back), vec!["r1"]);
    assert_eq!(back[0].delivered, Some(reply("yes")));
    // The redelivered webhook answers nobody.
    let again = store
        .deliver_to_waiting(&wait_key("+491"), Some("e1"), reply("yes"), at(6))
        .await
        .unwrap();
    assert!(again.answered && again.runs.is_empty());
}

// ---------------------------------------------------------------------------
// SQLite only.

#[tokio::test]
async fn sqlite_data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let sent_state = SendState::Sent {
        message_id: "wamid.9".into(),
        at: at(4),
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        store.record_inbound("+491", "berlin", at(1)).await.unwrap();
        store.enqueue_event(event("e-done", at(1))).await.unwrap();
        store
            .enqueue_event(event("e-pending", at(2)))
            .await
            .unwrap();
        store.finish_event("e-done").await.unwrap();
        store
            .set_send_state("r1/0/0", Some(sent_state.clone()))
            .await
            .unwrap();
        store.save_run(run("r1", at(60))).await.unwrap();
        store.save_run(run("r2", at(90))).await.unwrap();
        store
            .record_run(record("r0", RunOutcome::Completed, 3))
            .await
            .unwrap();
        store
            .log_send(sent("r1", "wamid.9", None, 4))
            .await
            .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.last_inbound("+491", "berlin").await.unwrap(),
        Some(at(1))
    );
    assert_eq!(
        store.pending_events(10).await.unwrap(),
        vec![event("e-pending", at(2))]
    );
    assert!(!store.enqueue_event(event("e-done", at(5))).await.unwrap());
    assert_eq!(store.send_state("r1/0/0").await.unwrap(), Some(sent_state));
    assert_eq!(store.suspended_count().await.unwrap(), 2);
    assert_eq!(store.next_wake().await.unwrap(), Some(at(60)));
    assert_eq!(
        store.claim_due_runs(at(60), 10).await.unwrap(),
        vec![run("r1", at(60))]
    );
    assert_eq!(
        store.run_history().await.unwrap(),
        vec![record("r0", RunOutcome::Completed, 3)]
    );
    assert_eq!(
        store.sent_log().await.unwrap(),
        vec![sent("r1", "wamid.9", None, 4)]
    );
}

#[tokio::test]
async fn sqlite_a_claim_never_finished_is_due_again_after_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let lease = SqliteOptions::default().lease;
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.lease(), lease);
        store.save_run(run("r1", at(0))).await.unwrap();
        assert_eq!(
            store.claim_due_runs(at(0), 10).await.unwrap(),
            vec![run("r1", at(0))]
        );
        // The process dies here: the run is neither saved nor recorded.
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.suspended_count().await.unwrap(), 1);
    assert_eq!(store.next_wake().await.unwrap(), Some(at(0) + lease));
    let just_before = at(0) + lease - Duration::milliseconds(1);
    assert!(store
        .claim_due_runs(just_before, 10)
        .await
        .unwrap()
        .is_empty());
    // Due again when the lease ends; it comes back with its state, and its
    // wake-up time is the lease's end.
    let again = store.claim_due_runs(at(0) + lease, 10).await.unwrap();
    assert_eq!(again, vec![run("r1", at(0) + lease)]);
}

#[tokio::test]
async fn sqlite_the_lease_is_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        lease: Duration::seconds(30),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path().join("flows.db"), options).unwrap();
    store.save_run(run("r1", at(0))).await.unwrap();
    assert_eq!(store.claim_due_runs(at(0), 10).await.unwrap().len(), 1);
    assert!(store.claim_due_runs(at(29), 10).await.unwrap().is_empty());
    assert_eq!(
        ids(&store.claim_due_runs(at(30), 10).await.unwrap()),
        ["r1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_claims_never_return_a_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let first: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let second: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    two_handles_claim_each_run_once(first, second).await;
}

/// Two handles on one store (two processes, two nodes) claiming the same
/// due runs at once: each run is claimed exactly once.
async fn two_handles_claim_each_run_once(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    for i in 0..200 {
        first
            .save_run(run(&format!("run-{i:03}"), at(i % 17)))
            .await
            .unwrap();
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let worker = |store: Arc<dyn Store>, barrier: Arc<tokio::sync::Barrier>| {
        tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_due_runs(at(100), 3).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                for r in claimed {
                    store
                        .record_run(record(&r.id, RunOutcome::Completed, 101))
                        .await
                        .unwrap();
                    mine.push(r.id);
                }
            }
        })
    };
    let a = worker(Arc::clone(&first), Arc::clone(&barrier));
    let b = worker(Arc::clone(&second), Arc::clone(&barrier));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());

    let mut seen = HashSet::new();
    for id in a.iter().chain(&b) {
        assert!(seen.insert(id.clone()), "{id} was claimed twice");
    }
    assert_eq!(seen.len(), 200, "every run is claimed exactly once");
    assert_eq!(first.suspended_count().await.unwrap(), 0);
    assert_eq!(second.run_history().await.unwrap().len(), 200);
}

#[tokio::test]
async fn sqlite_the_database_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let store = SqliteStore::open(&path).unwrap();
    store.save_run(run("r1", at(0))).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn sqlite_corrupt_rows_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let store = SqliteStore::open(&path).unwrap();
    store.save_run(run("r1", at(1))).await.unwrap();
    store.save_run(run("r2", at(2))).await.unwrap();
    store
        .set_send_state("k", Some(SendState::Started))
        .await
        .unwrap();
    store.enqueue_event(event("e1", at(1))).await.unwrap();
    store
        .record_run(record("r0", RunOutcome::Completed, 1))
        .await
        .unwrap();

    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "UPDATE runs SET state = '{not json' WHERE id = 'r1';
         UPDATE sends SET state = '{\"state\":\"exploded\"}' WHERE key = 'k';
         UPDATE events SET event = 'nope' WHERE id = 'e1';
         UPDATE history SET outcome = '[]' WHERE id = 'r0';",
    )
    .unwrap();

    let corrupt_id = |result: Result<_, StoreError>| match result {
        Err(StoreError::Corrupt { id, .. }) => id,
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("expected Corrupt, got a value"),
    };
    assert_eq!(
        corrupt_id(store.claim_due_runs(at(10), 10).await.map(|_| ())),
        "r1"
    );
    // The corrupt run does not hold back the one behind it.
    assert_eq!(
        ids(&store.claim_due_runs(at(10), 10).await.unwrap()),
        ["r2"]
    );
    assert_eq!(corrupt_id(store.send_state("k").await.map(|_| ())), "k");
    assert_eq!(corrupt_id(store.pending_events(10).await.map(|_| ())), "e1");
    assert_eq!(corrupt_id(store.run_history().await.map(|_| ())), "r0");
    // The store keeps working.
    assert_eq!(store.suspended_count().await.unwrap(), 2);
}

#[tokio::test]
async fn sqlite_a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

// ---------------------------------------------------------------------------
// Conversations: paused conversations and bursts, in both stores.

mod conversation_suite {
    use super::*;
    use flowc::providers::{Burst, BurstMessage, PausedConversation};

    fn pause(customer: &str, sender: &str, until: Option<DateTime<Utc>>) -> PausedConversation {
        PausedConversation {
            customer: customer.into(),
            sender: sender.into(),
            paused_at: at(0),
            until,
        }
    }

    fn burst(id: &str, customer: &str, event_id: &str, text: &str, deadline: i64) -> Burst {
        let mut fields = serde_json::Map::new();
        fields.insert("phone".into(), json!(customer));
        fields.insert("text".into(), json!(text));
        Burst {
            id: id.into(),
            flow: "assistant".into(),
            handler: 0,
            trigger: "whatsapp.message_received".into(),
            customer: customer.into(),
            messages: vec![BurstMessage {
                event_id: Some(event_id.into()),
                fields,
            }],
            deadline: at(deadline),
        }
    }

    fn texts(burst: &Burst) -> Vec<&str> {
        burst
            .messages
            .iter()
            .filter_map(|m| m.fields.get("text").and_then(|t| t.as_str()))
            .collect()
    }

    async fn pauses_hold_until_resumed_or_run_out(store: &dyn Store) {
        assert!(!store
            .conversation_paused("+491", "berlin", at(0))
            .await
            .unwrap());
        store
            .pause_conversation(pause("+491", "berlin", None))
            .await
            .unwrap();
        store
            .pause_conversation(pause("+492", "berlin", Some(at(60))))
            .await
            .unwrap();
        assert!(store
            .conversation_paused("+491", "berlin", at(1000))
            .await
            .unwrap());
        // Another sender's conversation with the same customer is not paused.
        assert!(!store
            .conversation_paused("+491", "munich", at(1))
            .await
            .unwrap());
        assert!(store
            .conversation_paused("+492", "berlin", at(59))
            .await
            .unwrap());
        assert!(!store
            .conversation_paused("+492", "berlin", at(60))
            .await
            .unwrap());
        let all = store.paused_conversations().await.unwrap();
        assert_eq!(
            all,
            vec![
                pause("+491", "berlin", None),
                pause("+492", "berlin", Some(at(60)))
            ]
        );
        assert!(store.resume_conversation("+491", "berlin").await.unwrap());
        assert!(!store.resume_conversation("+491", "berlin").await.unwrap());
        assert!(!store
            .conversation_paused("+491", "berlin", at(1))
            .await
            .unwrap());
        // Pausing again replaces the earlier pause.
        store
            .pause_conversation(pause("+492", "berlin", Some(at(120))))
            .await
            .unwrap();
        assert!(store
            .conversation_paused("+492", "berlin", at(100))
            .await
            .unwrap());
        assert_eq!(store.paused_conversations().await.unwrap().len(), 1);
    }

    async fn bursts_collect_until_the_deadline(store: &dyn Store) {
        assert_eq!(store.next_burst_deadline().await.unwrap(), None);
        store
            .add_to_burst(burst("b1", "+491", "m1", "Hi", 8))
            .await
            .unwrap();
        store
            .add_to_burst(burst("b2", "+491", "m2", "a question", 10))
            .await
            .unwrap();
        // Another customer has a burst of their own.
        store
            .add_to_burst(burst("b3", "+492", "m3", "Hello", 9))
            .await
            .unwrap();
        // The same message again (a redelivery) is collected once.
        store
            .add_to_burst(burst("b4", "+491", "m2", "a question", 12))
            .await
            .unwrap();
        assert_eq!(store.next_burst_deadline().await.unwrap(), Some(at(9)));
        assert!(store.claim_due_bursts(at(8), 10).await.unwrap().is_empty());
        let due = store.claim_due_bursts(at(10), 10).await.unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].id, "b3");
        assert_eq!(due[1].id, "b1");
        assert_eq!(texts(&due[1]), ["Hi", "a question"]);
        assert_eq!(due[1].deadline, at(10));
        // Claimed bursts are not claimed again; a new message opens a new
        // burst.
        assert!(store.claim_due_bursts(at(10), 10).await.unwrap().is_empty());
        store
            .add_to_burst(burst("b5", "+491", "m5", "still there?", 20))
            .await
            .unwrap();
        for b in &due {
            store.finish_burst(&b.id).await.unwrap();
        }
        let next = store.claim_due_bursts(at(20), 10).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].id, "b5");
        assert_eq!(texts(&next[0]), ["still there?"]);
        store.finish_burst("b5").await.unwrap();
        assert_eq!(store.next_burst_deadline().await.unwrap(), None);
    }

    async fn claim_due_bursts_respects_the_limit(store: &dyn Store) {
        for i in 0..3 {
            let customer = format!("+49{i}");
            store
                .add_to_burst(burst(
                    &format!("b{i}"),
                    &customer,
                    &format!("m{i}"),
                    "Hi",
                    i,
                ))
                .await
                .unwrap();
        }
        let first = store.claim_due_bursts(at(5), 2).await.unwrap();
        assert_eq!(
            first.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            ["b0", "b1"]
        );
        let rest = store.claim_due_bursts(at(5), 2).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].id, "b2");
    }

    for_each_store!(
        pauses_hold_until_resumed_or_run_out,
        bursts_collect_until_the_deadline,
        claim_due_bursts_respects_the_limit,
    );

    /// A burst claimed by a process that died comes back when the lease
    /// ends; once finished it is gone.
    #[tokio::test]
    async fn sqlite_a_claimed_burst_comes_back_after_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let options = SqliteOptions {
            lease: Duration::seconds(30),
            ..SqliteOptions::default()
        };
        {
            let store = SqliteStore::open_with(&path, options.clone()).unwrap();
            store
                .add_to_burst(burst("b1", "+491", "m1", "Hi", 8))
                .await
                .unwrap();
            assert_eq!(store.claim_due_bursts(at(8), 10).await.unwrap().len(), 1);
        }
        let store = SqliteStore::open_with(&path, options).unwrap();
        assert!(store.claim_due_bursts(at(37), 10).await.unwrap().is_empty());
        let again = store.claim_due_bursts(at(38), 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(texts(&again[0]), ["Hi"]);
        store.finish_burst("b1").await.unwrap();
        assert!(store
            .claim_due_bursts(at(100), 10)
            .await
            .unwrap()
            .is_empty());
    }

    /// Two handles on one fresh PostgreSQL database, each a node of its own
    /// (its own pool and lease name), with `lease`; `None` when PostgreSQL
    /// tests are skipped. Also the database's URL, to connect again.
    pub(super) async fn postgres_nodes(
        lease: Duration,
    ) -> Option<(String, PostgresStore, PostgresStore)> {
        if crate::pg::skipped() {
            return None;
        }
        let url = crate::pg::fresh_database().await;
        let options = flowc::providers::postgres::PostgresOptions {
            lease,
            ..Default::default()
        };
        let a = PostgresStore::connect_with(&url, options.clone())
            .await
            .unwrap();
        let b = PostgresStore::connect_with(&url, options).await.unwrap();
        assert_ne!(a.node(), b.node());
        Some((url, a, b))
    }

    /// A burst claimed by a node that died comes back to another node when
    /// the lease ends; once finished it is gone.
    #[tokio::test]
    async fn postgres_a_claimed_burst_comes_back_after_the_lease() {
        let Some((_, a, b)) = postgres_nodes(Duration::seconds(30)).await else {
            return;
        };
        a.add_to_burst(burst("b1", "+491", "m1", "Hi", 8))
            .await
            .unwrap();
        assert_eq!(a.claim_due_bursts(at(8), 10).await.unwrap().len(), 1);
        drop(a);
        assert!(b.claim_due_bursts(at(37), 10).await.unwrap().is_empty());
        assert_eq!(b.next_burst_deadline().await.unwrap(), Some(at(38)));
        let again = b.claim_due_bursts(at(38), 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(texts(&again[0]), ["Hi"]);
        b.finish_burst("b1").await.unwrap();
        assert!(b.claim_due_bursts(at(100), 10).await.unwrap().is_empty());
    }

    /// Two nodes adding one customer's messages at the same moment: one
    /// burst with every message, and a message both nodes add (a
    /// redelivery) in it once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_concurrent_adds_make_one_burst_with_every_message() {
        let Some((_, a, b)) = postgres_nodes(Duration::seconds(30)).await else {
            return;
        };
        let add = |store: PostgresStore, node: &'static str| async move {
            for i in 0..40 {
                let text = format!("{node}{i}");
                let id = format!("{node}-b{i}");
                store
                    .add_to_burst(burst(&id, "+491", &format!("m-{text}"), &text, 10))
                    .await
                    .unwrap();
                // The same message from both nodes.
                store
                    .add_to_burst(burst(&id, "+491", &format!("shared{i}"), "again", 10))
                    .await
                    .unwrap();
            }
        };
        let (x, y) = tokio::join!(
            tokio::spawn(add(a.clone(), "a")),
            tokio::spawn(add(b.clone(), "b"))
        );
        x.unwrap();
        y.unwrap();
        let due = a.claim_due_bursts(at(10), 10).await.unwrap();
        assert_eq!(due.len(), 1);
        let collected = texts(&due[0]);
        assert_eq!(collected.len(), 120);
        assert_eq!(collected.iter().filter(|t| **t == "again").count(), 40);
        let unique: HashSet<&str> = collected.into_iter().collect();
        assert_eq!(unique.len(), 81);
    }
}

// ---------------------------------------------------------------------------
// Campaigns and opt-outs, in both stores.

mod campaign_suite {
    use super::*;
    use flowc::campaign::OptOutRecord;
    use flowc::providers::{
        Campaign, CampaignRecipient, CampaignState, OptChangeRecord, RecipientState,
    };

    fn campaign(id: &str, sender: &str) -> Campaign {
        Campaign {
            id: id.into(),
            flow: "spring_sale".into(),
            trigger: "campaign.spring_sale".into(),
            sender: sender.into(),
            state: CampaignState::Running,
            pause_reason: None,
            quiet_hours: Some("21:00-08:00".into()),
            source: "customers.csv".into(),
            created_at: at(0),
        }
    }

    fn recipient(line: u64, phone: &str, state: RecipientState) -> CampaignRecipient {
        let mut fields = serde_json::Map::new();
        fields.insert("phone".into(), json!(phone));
        fields.insert("name".into(), json!(format!("Customer {line}")));
        CampaignRecipient {
            line,
            phone: phone.into(),
            fields,
            state,
            run_id: None,
        }
    }

    fn lines(recipients: &[CampaignRecipient]) -> Vec<u64> {
        recipients.iter().map(|r| r.line).collect()
    }

    fn list() -> Vec<CampaignRecipient> {
        vec![
            recipient(2, "+491", RecipientState::Pending),
            recipient(3, "bad", RecipientState::SkippedBad),
            recipient(4, "+492", RecipientState::Pending),
            recipient(5, "+491", RecipientState::Duplicate),
            recipient(6, "+493", RecipientState::Pending),
        ]
    }

    async fn tier_slots_count_customers_across_the_senders_campaigns(store: &dyn Store) {
        let rows = |phones: &[&str]| -> Vec<CampaignRecipient> {
            phones
                .iter()
                .enumerate()
                .map(|(i, phone)| recipient(i as u64 + 2, phone, RecipientState::Pending))
                .collect()
        };
        store
            .create_campaign(campaign("c1", "berlin"), rows(&["+491", "+492", "+493"]))
            .await
            .unwrap();
        store
            .create_campaign(campaign("c2", "berlin"), rows(&["+494", "+491"]))
            .await
            .unwrap();
        store
            .create_campaign(campaign("c3", "munich"), rows(&["+495"]))
            .await
            .unwrap();
        // A tier of 2 customers a day for berlin.
        assert_eq!(store.take_tier_slot("c1", 2, at(0), 2).await.unwrap(), None);
        // Taken again after a crash: the same slot.
        assert_eq!(store.take_tier_slot("c1", 2, at(5), 2).await.unwrap(), None);
        assert_eq!(
            store.take_tier_slot("c1", 3, at(10), 2).await.unwrap(),
            None
        );
        // Full for a third customer, from another campaign of the sender
        // too, until the first start leaves the window.
        let free = Some(at(0) + chrono::Duration::hours(24));
        assert_eq!(
            store.take_tier_slot("c1", 4, at(20), 2).await.unwrap(),
            free
        );
        assert_eq!(
            store.take_tier_slot("c2", 2, at(20), 2).await.unwrap(),
            free
        );
        // A customer already in the window takes no new slot; another
        // sender has a window of its own.
        assert_eq!(
            store.take_tier_slot("c2", 3, at(30), 2).await.unwrap(),
            None
        );
        assert_eq!(
            store.take_tier_slot("c3", 2, at(30), 2).await.unwrap(),
            None
        );
        // The slot's time is the start's, even when finished later.
        store
            .finish_campaign_recipient("c1", 2, RecipientState::Started, None, at(40))
            .await
            .unwrap();
        let starts = store.campaign_starts("berlin", at(0)).await.unwrap();
        assert_eq!(starts.first().map(|s| s.at), Some(at(0)));
        // A day later the first slots are free again.
        let later = at(0) + chrono::Duration::hours(24) + chrono::Duration::seconds(11);
        assert_eq!(store.take_tier_slot("c1", 4, later, 2).await.unwrap(), None);
    }

    async fn a_campaign_is_recorded_with_all_its_rows(store: &dyn Store) {
        store
            .create_campaign(campaign("c1", "berlin"), list())
            .await
            .unwrap();
        let (read, counts) = store.campaign("c1").await.unwrap().unwrap();
        assert_eq!(read, campaign("c1", "berlin"));
        assert_eq!(
            (
                counts.pending,
                counts.skipped_bad,
                counts.duplicate,
                counts.total()
            ),
            (3, 1, 1, 5)
        );
        assert_eq!(store.campaign_recipients("c1").await.unwrap(), list());
        assert_eq!(store.campaigns().await.unwrap(), [campaign("c1", "berlin")]);
        assert!(store.campaign("c2").await.unwrap().is_none());
        // An id is taken once; the second attempt keeps nothing.
        let again = store
            .create_campaign(campaign("c1", "munich"), Vec::new())
            .await;
        assert!(again.is_err());
        assert_eq!(store.campaigns().await.unwrap().len(), 1);
    }

    async fn a_campaign_with_a_repeated_line_is_not_recorded(store: &dyn Store) {
        let rows = vec![
            recipient(2, "+491", RecipientState::Pending),
            recipient(2, "+492", RecipientState::Pending),
        ];
        assert!(store
            .create_campaign(campaign("c1", "berlin"), rows)
            .await
            .is_err());
        assert!(store.campaign("c1").await.unwrap().is_none());
        assert!(store.campaigns().await.unwrap().is_empty());
    }

    async fn claims_take_pending_recipients_in_line_order_under_a_lease(store: &dyn Store) {
        store
            .create_campaign(campaign("c1", "berlin"), list())
            .await
            .unwrap();
        // Nothing before the campaign was created.
        assert!(store
            .claim_campaign_recipients("c1", at(-1), 10, at(60))
            .await
            .unwrap()
            .is_empty());
        let first = store
            .claim_campaign_recipients("c1", at(0), 2, at(60))
            .await
            .unwrap();
        assert_eq!(lines(&first), [2, 4]);
        assert_eq!(first[0].fields["name"], "Customer 2");
        // Leased: another claim gets only the rest.
        let second = store
            .claim_campaign_recipients("c1", at(1), 10, at(61))
            .await
            .unwrap();
        assert_eq!(lines(&second), [6]);
        assert!(store
            .claim_campaign_recipients("c1", at(2), 10, at(62))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.next_campaign_recipient("c1").await.unwrap(),
            Some(at(60))
        );
        // Line 2 started; line 4's claimer died: it comes back after the lease.
        store
            .finish_campaign_recipient(
                "c1",
                2,
                RecipientState::Started,
                Some("run-2".into()),
                at(3),
            )
            .await
            .unwrap();
        let back = store
            .claim_campaign_recipients("c1", at(60), 10, at(120))
            .await
            .unwrap();
        assert_eq!(lines(&back), [4]);
        let (_, counts) = store.campaign("c1").await.unwrap().unwrap();
        assert_eq!((counts.pending, counts.started), (2, 1));
        let recipients = store.campaign_recipients("c1").await.unwrap();
        assert_eq!(recipients[0].run_id.as_deref(), Some("run-2"));
        assert_eq!(recipients[0].state, RecipientState::Started);
    }

    async fn a_deferred_recipient_waits_and_the_others_go_on(store: &dyn Store) {
        store
            .create_campaign(campaign("c1", "berlin"), list())
            .await
            .unwrap();
        let claimed = store
            .claim_campaign_recipients("c1", at(0), 1, at(60))
            .await
            .unwrap();
        assert_eq!(lines(&claimed), [2]);
        store
            .defer_campaign_recipient("c1", 2, at(3600))
            .await
            .unwrap();
        let rest = store
            .claim_campaign_recipients("c1", at(100), 10, at(160))
            .await
            .unwrap();
        assert_eq!(lines(&rest), [4, 6]);
        for line in [4, 6] {
            store
                .finish_campaign_recipient(
                    "c1",
                    line,
                    RecipientState::SkippedOptedOut,
                    None,
                    at(101),
                )
                .await
                .unwrap();
        }
        assert_eq!(
            store.next_campaign_recipient("c1").await.unwrap(),
            Some(at(3600))
        );
        assert!(store
            .claim_campaign_recipients("c1", at(3599), 10, at(4000))
            .await
            .unwrap()
            .is_empty());
        let due = store
            .claim_campaign_recipients("c1", at(3600), 10, at(4000))
            .await
            .unwrap();
        assert_eq!(lines(&due), [2]);
        store
            .finish_campaign_recipient("c1", 2, RecipientState::Started, None, at(3600))
            .await
            .unwrap();
        assert_eq!(store.next_campaign_recipient("c1").await.unwrap(), None);
    }

    async fn state_changes_only_from_the_given_states(store: &dyn Store) {
        store
            .create_campaign(campaign("c1", "berlin"), list())
            .await
            .unwrap();
        let running = [CampaignState::Running];
        let paused = [CampaignState::Paused];
        assert!(store
            .set_campaign_state(
                "c1",
                &running,
                CampaignState::Paused,
                Some("quality".into())
            )
            .await
            .unwrap());
        let (read, _) = store.campaign("c1").await.unwrap().unwrap();
        assert_eq!(read.state, CampaignState::Paused);
        assert_eq!(read.pause_reason.as_deref(), Some("quality"));
        // Not running any more: a second pause changes nothing.
        assert!(!store
            .set_campaign_state("c1", &running, CampaignState::Paused, Some("other".into()))
            .await
            .unwrap());
        assert!(store
            .set_campaign_state("c1", &paused, CampaignState::Running, None)
            .await
            .unwrap());
        let (read, _) = store.campaign("c1").await.unwrap().unwrap();
        assert_eq!(
            (read.state, read.pause_reason),
            (CampaignState::Running, None)
        );
        assert!(!store
            .set_campaign_state("nope", &running, CampaignState::Paused, None)
            .await
            .unwrap());
    }

    async fn the_tier_window_counts_starts_by_sender_and_time(store: &dyn Store) {
        store
            .create_campaign(campaign("c1", "berlin"), list())
            .await
            .unwrap();
        store
            .create_campaign(
                campaign("c2", "munich"),
                vec![recipient(2, "+499", RecipientState::Pending)],
            )
            .await
            .unwrap();
        store
            .finish_campaign_recipient("c1", 4, RecipientState::Started, None, at(20))
            .await
            .unwrap();
        store
            .finish_campaign_recipient("c1", 2, RecipientState::Started, None, at(10))
            .await
            .unwrap();
        store
            .finish_campaign_recipient("c1", 6, RecipientState::SkippedOptedOut, None, at(30))
            .await
            .unwrap();
        store
            .finish_campaign_recipient("c2", 2, RecipientState::Started, None, at(10))
            .await
            .unwrap();
        let starts = store.campaign_starts("berlin", at(0)).await.unwrap();
        let seen: Vec<(&str, DateTime<Utc>)> =
            starts.iter().map(|s| (s.phone.as_str(), s.at)).collect();
        assert_eq!(seen, [("+491", at(10)), ("+492", at(20))]);
        assert_eq!(
            store.campaign_starts("berlin", at(11)).await.unwrap().len(),
            1
        );
        assert_eq!(
            store.campaign_starts("munich", at(0)).await.unwrap().len(),
            1
        );
    }

    async fn opt_outs_are_recorded_reversed_listed_and_imported(store: &dyn Store) {
        assert!(!store.opted_out("+491").await.unwrap());
        store
            .record_opt_change(OptChangeRecord {
                phone: "+491".into(),
                opted_out: true,
                at: at(5),
                source: "message".into(),
            })
            .await
            .unwrap();
        assert!(store.opted_out("+491").await.unwrap());
        let imported = store
            .import_opt_outs(vec![
                OptOutRecord {
                    phone: "+491".into(),
                    opted_out_at: None,
                    source: "import".into(),
                },
                OptOutRecord {
                    phone: "+492".into(),
                    opted_out_at: Some(at(1)),
                    source: "import".into(),
                },
            ])
            .await
            .unwrap();
        assert_eq!(imported, 1);
        assert_eq!(
            store.opt_outs().await.unwrap(),
            [
                OptOutRecord {
                    phone: "+491".into(),
                    opted_out_at: Some(at(5)),
                    source: "message".into(),
                },
                OptOutRecord {
                    phone: "+492".into(),
                    opted_out_at: Some(at(1)),
                    source: "import".into(),
                },
            ]
        );
        store
            .record_opt_change(OptChangeRecord {
                phone: "+491".into(),
                opted_out: false,
                at: at(6),
                source: "message".into(),
            })
            .await
            .unwrap();
        assert!(!store.opted_out("+491").await.unwrap());
        assert_eq!(store.opt_outs().await.unwrap().len(), 1);
    }

    for_each_store!(
        a_campaign_is_recorded_with_all_its_rows,
        a_campaign_with_a_repeated_line_is_not_recorded,
        claims_take_pending_recipients_in_line_order_under_a_lease,
        a_deferred_recipient_waits_and_the_others_go_on,
        state_changes_only_from_the_given_states,
        the_tier_window_counts_starts_by_sender_and_time,
        opt_outs_are_recorded_reversed_listed_and_imported,
        tier_slots_count_customers_across_the_senders_campaigns,
    );

    /// Two stores on one file take tier slots at once: never more than the
    /// tier between them.
    #[tokio::test]
    async fn sqlite_concurrent_tier_slots_never_exceed_the_tier() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        let rows: Vec<CampaignRecipient> = (0..100)
            .map(|i| recipient(i + 2, &format!("+49{i}"), RecipientState::Pending))
            .collect();
        a.create_campaign(campaign("c1", "berlin"), rows)
            .await
            .unwrap();
        let take = |store: SqliteStore, lines: Vec<u64>| async move {
            let mut started = 0;
            for line in lines {
                if store
                    .take_tier_slot("c1", line, at(0), 30)
                    .await
                    .unwrap()
                    .is_none()
                {
                    started += 1;
                }
            }
            started
        };
        let (x, y) = tokio::join!(
            tokio::spawn(take(a.clone(), (2..102).step_by(2).collect())),
            tokio::spawn(take(b.clone(), (3..102).step_by(2).collect()))
        );
        assert_eq!(x.unwrap() + y.unwrap(), 30);
    }

    /// A version 3 file (before campaigns) opens, gets the tables, and
    /// keeps its runs.
    #[tokio::test]
    async fn sqlite_a_version_3_file_gets_the_campaign_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.save_run(run("r1", at(10))).await.unwrap();
        }
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP TABLE campaign_recipients; DROP TABLE campaigns; DROP TABLE opt_outs;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.next_wake().await.unwrap(), Some(at(10)));
        store
            .create_campaign(campaign("c1", "berlin"), list())
            .await
            .unwrap();
        assert!(store.campaign("c1").await.unwrap().is_some());
        let conn = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, flowc::providers::sqlite::SCHEMA_VERSION);
    }

    /// Two stores on one file claim concurrently: no recipient twice.
    #[tokio::test]
    async fn sqlite_concurrent_claims_never_take_a_recipient_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        let rows: Vec<CampaignRecipient> = (0..200)
            .map(|i| recipient(i + 2, &format!("+49{i}"), RecipientState::Pending))
            .collect();
        a.create_campaign(campaign("c1", "berlin"), rows)
            .await
            .unwrap();
        let claim = |store: SqliteStore| async move {
            let mut taken = Vec::new();
            loop {
                let got = store
                    .claim_campaign_recipients("c1", at(0), 7, at(600))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return taken;
                }
                taken.extend(lines(&got));
            }
        };
        let (x, y) = tokio::join!(
            tokio::spawn(claim(a.clone())),
            tokio::spawn(claim(b.clone()))
        );
        let mut all: Vec<u64> = x.unwrap().into_iter().chain(y.unwrap()).collect();
        all.sort_unstable();
        let unique: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(all.len(), 200);
        assert_eq!(unique.len(), 200);
    }

    use super::conversation_suite::postgres_nodes;

    fn numbered(n: u64) -> Vec<CampaignRecipient> {
        (0..n)
            .map(|i| recipient(i + 2, &format!("+49{i}"), RecipientState::Pending))
            .collect()
    }

    /// Two nodes claim concurrently: no recipient twice, none left out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_concurrent_claims_never_take_a_recipient_twice() {
        let Some((_, a, b)) = postgres_nodes(Duration::minutes(5)).await else {
            return;
        };
        a.create_campaign(campaign("c1", "berlin"), numbered(300))
            .await
            .unwrap();
        let claim = |store: PostgresStore| async move {
            let mut taken = Vec::new();
            loop {
                let got = store
                    .claim_campaign_recipients("c1", at(0), 7, at(600))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return taken;
                }
                taken.extend(lines(&got));
            }
        };
        let (x, y) = tokio::join!(
            tokio::spawn(claim(a.clone())),
            tokio::spawn(claim(b.clone()))
        );
        let mut all: Vec<u64> = x.unwrap().into_iter().chain(y.unwrap()).collect();
        all.sort_unstable();
        let unique: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(all.len(), 300);
        assert_eq!(unique.len(), 300);
        // Leased, not taken: due again at the lease's end, to either node.
        assert_eq!(
            b.next_campaign_recipient("c1").await.unwrap(),
            Some(at(600))
        );
        assert_eq!(
            b.claim_campaign_recipients("c1", at(600), 1000, at(1200))
                .await
                .unwrap()
                .len(),
            300
        );
    }

    /// Two nodes take tier slots at once: never more than the tier between
    /// them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_concurrent_tier_slots_never_exceed_the_tier() {
        let Some((_, a, b)) = postgres_nodes(Duration::minutes(5)).await else {
            return;
        };
        a.create_campaign(campaign("c1", "berlin"), numbered(100))
            .await
            .unwrap();
        let take = |store: PostgresStore, lines: Vec<u64>| async move {
            let mut started = 0;
            for line in lines {
                if store
                    .take_tier_slot("c1", line, at(0), 30)
                    .await
                    .unwrap()
                    .is_none()
                {
                    started += 1;
                }
            }
            started
        };
        let (x, y) = tokio::join!(
            tokio::spawn(take(a.clone(), (2..102).step_by(2).collect())),
            tokio::spawn(take(b.clone(), (3..102).step_by(2).collect()))
        );
        assert_eq!(x.unwrap() + y.unwrap(), 30);
        assert_eq!(a.campaign_starts("berlin", at(0)).await.unwrap().len(), 30);
    }

    /// Opt-outs are in the database, not the node: a node connecting later
    /// sees them.
    #[tokio::test]
    async fn postgres_opt_outs_survive_reconnecting() {
        let Some((url, a, _)) = postgres_nodes(Duration::minutes(5)).await else {
            return;
        };
        a.record_opt_change(OptChangeRecord {
            phone: "+491".into(),
            opted_out: true,
            at: at(5),
            source: "message".into(),
        })
        .await
        .unwrap();
        let imported = a
            .import_opt_outs(vec![
                OptOutRecord {
                    phone: "+492".into(),
                    opted_out_at: None,
                    source: "import".into(),
                },
                OptOutRecord {
                    phone: "+491".into(),
                    opted_out_at: None,
                    source: "import".into(),
                },
            ])
            .await
            .unwrap();
        assert_eq!(imported, 1);
        drop(a);
        let later = PostgresStore::connect(&url).await.unwrap();
        assert!(later.opted_out("+491").await.unwrap());
        assert!(later.opted_out("+492").await.unwrap());
        assert!(!later.opted_out("+493").await.unwrap());
        assert_eq!(
            later.opt_outs().await.unwrap(),
            vec![
                OptOutRecord {
                    phone: "+491".into(),
                    opted_out_at: Some(at(5)),
                    source: "message".into(),
                },
                OptOutRecord {
                    phone: "+492".into(),
                    opted_out_at: None,
                    source: "import".into(),
                },
            ]
        );
    }

    /// A list larger than one insert is recorded whole; a line repeated far
    /// into it keeps nothing of the campaign, and the id stays free.
    #[tokio::test]
    async fn postgres_a_long_list_is_recorded_all_or_nothing() {
        let Some((_, a, b)) = postgres_nodes(Duration::minutes(5)).await else {
            return;
        };
        let mut rows = numbered(25_000);
        rows.push(recipient(20_000, "+4999", RecipientState::Pending));
        let refused = a.create_campaign(campaign("c1", "berlin"), rows).await;
        assert!(
            matches!(&refused, Err(StoreError::Backend(m)) if m.contains("line 20000")),
            "{refused:?}"
        );
        assert!(b.campaign("c1").await.unwrap().is_none());
        b.create_campaign(campaign("c1", "berlin"), numbered(25_000))
            .await
            .unwrap();
        let (_, counts) = a.campaign("c1").await.unwrap().unwrap();
        assert_eq!(counts.pending, 25_000);
        let all = a.campaign_recipients("c1").await.unwrap();
        assert_eq!(all.len(), 25_000);
        assert_eq!(all[24_999], numbered(25_000)[24_999]);
        // The id is taken now, from either node.
        assert!(a
            .create_campaign(campaign("c1", "berlin"), numbered(1))
            .await
            .is_err());
    }

    /// A row another program broke is an error naming it, not a panic.
    #[tokio::test]
    async fn postgres_corrupt_rows_are_errors_not_panics() {
        let Some((url, a, _)) = postgres_nodes(Duration::minutes(5)).await else {
            return;
        };
        a.create_campaign(campaign("c1", "berlin"), list())
            .await
            .unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "UPDATE campaign_recipients SET fields = '{not json' WHERE line = 4;
                 UPDATE campaign_recipients SET state = 'lost' WHERE line = 6;
                 UPDATE campaigns SET created_at = 9223372036854775807;",
            )
            .await
            .unwrap();
        let broken = a.campaign_recipients("c1").await;
        assert!(
            matches!(&broken, Err(StoreError::Corrupt { id, .. }) if id.contains("line 4")),
            "{broken:?}"
        );
        let broken = a.campaign("c1").await;
        assert!(
            matches!(&broken, Err(StoreError::Corrupt { reason, .. }) if reason.contains("created_at")),
            "{broken:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL: what only a store shared by several nodes guarantees.

mod postgres_only {
    use super::*;
    use flowc::providers::postgres::{PostgresOptions, SCHEMA_VERSION};

    async fn store() -> Option<(String, PostgresStore)> {
        if crate::pg::skipped() {
            return None;
        }
        let url = crate::pg::fresh_database().await;
        let store = PostgresStore::connect(&url).await.unwrap();
        Some((url, store))
    }

    /// An authority of the test's own, and a server certificate it signed
    /// for `localhost`: (authority PEM, server certificate PEM, key PEM).
    fn test_certificates() -> (String, String, String) {
        let authority_key = rcgen::KeyPair::generate().unwrap();
        let mut authority = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        authority.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        authority
            .distinguished_name
            .push(rcgen::DnType::CommonName, "flowc test authority");
        let authority = authority.self_signed(&authority_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &authority, &authority_key)
            .unwrap();
        (authority.pem(), server.pem(), server_key.serialize_pem())
    }

    #[tokio::test]
    async fn encrypted_connections_verify_the_servers_certificate() {
        if crate::pg::skipped() {
            return;
        }
        let (authority, certificate, key) = test_certificates();
        let cluster = crate::pg::private_tls_cluster(&certificate, &key);
        let url = crate::pg::database_on(&cluster)
            .await
            .replace("127.0.0.1", "localhost");
        let dir = tempfile::tempdir().unwrap();
        let authority_file = dir.path().join("authority.pem");
        std::fs::write(&authority_file, authority).unwrap();
        let trusted = format!(
            "{url}?sslmode=require&sslrootcert={}",
            authority_file.display()
        );

        // Trusted through `sslrootcert`: the store works, encrypted.
        let store = PostgresStore::connect(&trusted).await.unwrap();
        assert!(store.enqueue_event(event("e1", at(1))).await.unwrap());
        let (admin, connection) =
            tokio_postgres::connect(&format!("{}/postgres", cluster.base), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        let encrypted: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE s.ssl AND a.application_name = 'flowc'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(encrypted >= 1, "the store's connections are not encrypted");

        // Against the public roots the test's authority is unknown: refused.
        let error = PostgresStore::connect(&format!("{url}?sslmode=require"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("certificate"), "{error}");
        // The certificate is for localhost, not for the address: refused.
        let error = PostgresStore::connect(&trusted.replace("localhost", "127.0.0.1"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("certificate"), "{error}");
        // A missing authority file is named.
        let error = PostgresStore::connect(&format!("{url}?sslrootcert=/nonexistent/ca.pem"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }

    #[tokio::test]
    async fn nodes_starting_together_migrate_once() {
        let Some((url, _)) = store().await else {
            return;
        };
        let nodes = (0..8).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        });
        for node in nodes {
            node.await.unwrap().unwrap();
        }
    }

    /// A second node on the database at `url`.
    async fn node(url: &str) -> PostgresStore {
        PostgresStore::connect(url).await.unwrap()
    }

    /// A node whose leases last `lease`.
    async fn node_with_lease(url: &str, lease: Duration) -> PostgresStore {
        let options = PostgresOptions {
            lease,
            ..PostgresOptions::default()
        };
        PostgresStore::connect_with(url, options).await.unwrap()
    }

    /// A plain connection to the database, to write what no store would.
    async fn raw(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// A customer's message as the webhook enqueues it.
    fn message(id: &str, phone: Option<&str>, received_at: DateTime<Utc>) -> InboxEvent {
        let mut fields = json!({"id": id, "text": "hi"});
        if let Some(phone) = phone {
            fields["phone"] = json!(phone);
        }
        InboxEvent {
            id: id.into(),
            event: json!({"trigger": "whatsapp.message_received", "fields": fields}),
            received_at,
        }
    }

    fn event_ids(events: Vec<InboxEvent>) -> Vec<String> {
        events.into_iter().map(|e| e.id).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_nodes_claiming_due_runs_never_get_a_run_twice() {
        let Some((url, first)) = store().await else {
            return;
        };
        let first: Arc<dyn Store> = Arc::new(first);
        let second: Arc<dyn Store> = Arc::new(node(&url).await);
        two_handles_claim_each_run_once(first, second).await;
    }

    #[tokio::test]
    async fn a_claim_never_finished_is_due_again_after_the_lease() {
        let Some((url, _)) = store().await else {
            return;
        };
        let lease = Duration::seconds(30);
        {
            let node = node_with_lease(&url, lease).await;
            assert_eq!(node.lease(), lease);
            node.save_run(run("r1", at(0))).await.unwrap();
            assert_eq!(
                node.claim_due_runs(at(0), 10).await.unwrap(),
                vec![run("r1", at(0))]
            );
            // The node dies here: the run is neither saved nor recorded.
        }
        let other = node_with_lease(&url, lease).await;
        assert_eq!(other.suspended_count().await.unwrap(), 1);
        assert_eq!(other.next_wake().await.unwrap(), Some(at(30)));
        let just_before = at(30) - Duration::milliseconds(1);
        assert!(other
            .claim_due_runs(just_before, 10)
            .await
            .unwrap()
            .is_empty());
        // Due again when the lease ends, with its state; its wake-up time
        // is the lease's end.
        assert_eq!(
            other.claim_due_runs(at(30), 10).await.unwrap(),
            vec![run("r1", at(30))]
        );
    }

    #[tokio::test]
    async fn an_event_leased_to_a_node_is_not_handed_to_another_until_the_lease_ends() {
        let Some((url, first)) = store().await else {
            return;
        };
        let second = node(&url).await;
        for (id, secs) in [("e1", 1), ("e2", 2), ("e3", 3)] {
            assert!(first
                .enqueue_event(message(id, None, at(secs)))
                .await
                .unwrap());
        }
        assert_eq!(event_ids(first.pending_events(1).await.unwrap()), ["e1"]);
        // The other node gets the rest, not the leased one.
        assert_eq!(
            event_ids(second.pending_events(10).await.unwrap()),
            ["e2", "e3"]
        );
        // Each node gets its own back, and nothing of the other's.
        assert_eq!(event_ids(first.pending_events(10).await.unwrap()), ["e1"]);
        assert_eq!(
            event_ids(second.pending_events(10).await.unwrap()),
            ["e2", "e3"]
        );
        // A finished event is no one's; every pending one is counted.
        assert_eq!(first.pending_count().await.unwrap(), 3);
        second.finish_events(&["e2", "e3"]).await.unwrap();
        assert!(second.pending_events(10).await.unwrap().is_empty());
        assert_eq!(first.pending_count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn the_events_of_a_node_that_died_go_to_another_after_the_lease() {
        let Some((url, survivor)) = store().await else {
            return;
        };
        {
            // Leases measured by the database's clock; this node's are short.
            let dying = node_with_lease(&url, Duration::milliseconds(200)).await;
            dying
                .enqueue_event(message("e1", None, at(1)))
                .await
                .unwrap();
            assert_eq!(event_ids(dying.pending_events(10).await.unwrap()), ["e1"]);
            // It dies without finishing the event.
        }
        // Well past the lease (the wait only makes the outcome certain).
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_eq!(
            survivor.pending_events(10).await.unwrap(),
            vec![message("e1", None, at(1))]
        );
    }

    #[tokio::test]
    async fn a_customers_later_event_waits_for_the_earlier_one_leased_elsewhere() {
        let Some((url, first)) = store().await else {
            return;
        };
        let second = node(&url).await;
        for (id, phone, secs) in [
            ("ada-1", Some("+491"), 1),
            ("ada-2", Some("+491"), 2),
            ("bob-1", Some("+492"), 3),
            ("anon", None, 4),
            ("ada-3", Some("+491"), 5),
        ] {
            first
                .enqueue_event(message(id, phone, at(secs)))
                .await
                .unwrap();
        }
        assert_eq!(event_ids(first.pending_events(1).await.unwrap()), ["ada-1"]);
        // Ada's later messages wait while her first is leased elsewhere;
        // other customers' and events without a customer go on.
        assert_eq!(
            event_ids(second.pending_events(10).await.unwrap()),
            ["bob-1", "anon"]
        );
        // A message of hers that arrives late, dated before the one being
        // handled, waits as well.
        first
            .enqueue_event(message("ada-0", Some("+491"), at(0)))
            .await
            .unwrap();
        assert_eq!(
            event_ids(second.pending_events(10).await.unwrap()),
            ["bob-1", "anon"]
        );
        // The node holding her first message may take the others.
        assert_eq!(
            event_ids(first.pending_events(10).await.unwrap()),
            ["ada-0", "ada-1", "ada-2", "ada-3"]
        );
        first
            .finish_events(&["ada-0", "ada-1", "ada-2", "ada-3"])
            .await
            .unwrap();
        second.finish_events(&["bob-1", "anon"]).await.unwrap();

        // Once her earlier message is finished, the next goes anywhere.
        first
            .enqueue_event(message("ada-4", Some("+491"), at(6)))
            .await
            .unwrap();
        first
            .enqueue_event(message("ada-5", Some("+491"), at(7)))
            .await
            .unwrap();
        assert_eq!(event_ids(first.pending_events(1).await.unwrap()), ["ada-4"]);
        assert!(second.pending_events(10).await.unwrap().is_empty());
        first.finish_event("ada-4").await.unwrap();
        assert_eq!(
            event_ids(second.pending_events(10).await.unwrap()),
            ["ada-5"]
        );
    }

    #[tokio::test]
    async fn corrupt_rows_are_errors_not_panics() {
        let Some((url, store)) = store().await else {
            return;
        };
        store.save_run(run("r1", at(1))).await.unwrap();
        store.save_run(run("r2", at(2))).await.unwrap();
        let mut compact = run("r3", at(3));
        compact.state = json!("compact state");
        store.save_run(compact).await.unwrap();
        store
            .set_send_state("k", Some(SendState::Started))
            .await
            .unwrap();
        store.enqueue_event(event("e1", at(1))).await.unwrap();
        store
            .record_run(record("r0", RunOutcome::Completed, 1))
            .await
            .unwrap();
        store.record_inbound("+491", "berlin", at(1)).await.unwrap();

        raw(&url)
            .await
            .batch_execute(
                "UPDATE runs SET state = '{not json' WHERE id = 'r1';
                 UPDATE runs SET compact = '\\x00ff'::bytea WHERE id = 'r3';
                 UPDATE sends SET state = '{\"state\":\"exploded\"}' WHERE key = 'k';
                 UPDATE events SET event = 'nope' WHERE id = 'e1';
                 UPDATE history SET outcome = '[]' WHERE id = 'r0';
                 UPDATE windows SET last_inbound = 9223372036854775807;",
            )
            .await
            .unwrap();

        let corrupt_id = |result: Result<(), StoreError>| match result {
            Err(StoreError::Corrupt { id, .. }) => id,
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(()) => panic!("expected Corrupt, got a value"),
        };
        assert_eq!(
            corrupt_id(store.claim_due_runs(at(10), 10).await.map(|_| ())),
            "r1"
        );
        // A corrupt run does not hold back the ones behind it.
        assert_eq!(ids(&store.claim_due_runs(at(10), 1).await.unwrap()), ["r2"]);
        assert_eq!(
            corrupt_id(store.claim_due_runs(at(10), 10).await.map(|_| ())),
            "r3"
        );
        assert!(store.claim_due_runs(at(10), 10).await.unwrap().is_empty());
        assert_eq!(corrupt_id(store.send_state("k").await.map(|_| ())), "k");
        assert_eq!(corrupt_id(store.claim_send("k").await.map(|_| ())), "k");
        assert_eq!(corrupt_id(store.pending_events(10).await.map(|_| ())), "e1");
        assert_eq!(corrupt_id(store.run_history().await.map(|_| ())), "r0");
        assert_eq!(
            corrupt_id(store.last_inbound("+491", "berlin").await.map(|_| ())),
            "window +491/berlin"
        );
        // The store keeps working.
        assert_eq!(store.suspended_count().await.unwrap(), 3);
        store.save_run(run("r4", at(4))).await.unwrap();
        assert_eq!(
            store.claim_due_runs(at(4), 10).await.unwrap(),
            vec![run("r4", at(4))]
        );
    }

    #[tokio::test]
    async fn a_database_with_a_newer_schema_is_refused() {
        let Some((url, store)) = store().await else {
            return;
        };
        drop(store);
        raw(&url)
            .await
            .execute("UPDATE flowc_schema SET version = version + 1", &[])
            .await
            .unwrap();
        let err = PostgresStore::connect(&url).await.unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Backend(_)), "{message}");
        assert!(message.contains("postgres: "), "{message}");
        assert!(
            message.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{message}"
        );
        assert!(
            message.contains(&format!("up to {SCHEMA_VERSION}")),
            "{message}"
        );
        assert!(message.contains("newer"), "{message}");
    }

    #[tokio::test]
    async fn data_survives_dropping_and_reconnecting() {
        let Some((url, store)) = store().await else {
            return;
        };
        let sent_state = SendState::Sent {
            message_id: "wamid.9".into(),
            at: at(4),
        };
        {
            let store = store;
            store.record_inbound("+491", "berlin", at(1)).await.unwrap();
            store.enqueue_event(event("e-done", at(1))).await.unwrap();
            store
                .enqueue_event(event("e-pending", at(2)))
                .await
                .unwrap();
            store.finish_event("e-done").await.unwrap();
            store
                .set_send_state("r1/0/0", Some(sent_state.clone()))
                .await
                .unwrap();
            store.save_run(run("r1", at(60))).await.unwrap();
            let mut compact = run("r2", at(90));
            compact.state = json!("r2 \"compact\" \u{0} state");
            store.save_run(compact).await.unwrap();
            store
                .save_waiting_run(run("r3", at(120)), wait_key("+491"))
                .await
                .unwrap();
            store
                .record_run(record("r0", RunOutcome::Completed, 3))
                .await
                .unwrap();
            store
                .log_send(sent("r1", "wamid.9", None, 4))
                .await
                .unwrap();
            store
                .log_send(sent("r1", "wamid.10", Some("welcome"), 5))
                .await
                .unwrap();
        }

        let store = node(&url).await;
        assert_eq!(
            store.last_inbound("+491", "berlin").await.unwrap(),
            Some(at(1))
        );
        assert_eq!(
            store.pending_events(10).await.unwrap(),
            vec![event("e-pending", at(2))]
        );
        assert!(!store.enqueue_event(event("e-done", at(5))).await.unwrap());
        assert_eq!(store.send_state("r1/0/0").await.unwrap(), Some(sent_state));
        assert_eq!(store.suspended_count().await.unwrap(), 3);
        assert_eq!(store.waiting_count(&wait_key("+491")).await.unwrap(), 1);
        assert_eq!(store.next_wake().await.unwrap(), Some(at(60)));
        assert_eq!(
            store.claim_due_runs(at(90), 10).await.unwrap(),
            vec![run("r1", at(60)), {
                let mut compact = run("r2", at(90));
                compact.state = json!("r2 \"compact\" \u{0} state");
                compact
            }]
        );
        assert_eq!(
            store.run_history().await.unwrap(),
            vec![record("r0", RunOutcome::Completed, 3)]
        );
        assert_eq!(
            store.sent_log().await.unwrap(),
            vec![
                sent("r1", "wamid.9", None, 4),
                sent("r1", "wamid.10", Some("welcome"), 5)
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reply_delivered_on_one_node_is_not_delivered_again_on_another() {
        let Some((url, first)) = store().await else {
            return;
        };
        let second = node(&url).await;
        for id in ["r1", "r2"] {
            first
                .save_waiting_run(run(id, at(100)), wait_key("+491"))
                .await
                .unwrap();
        }
        // The webhook's delivery reaches both nodes at once: one answers
        // both runs, the other none.
        let key = wait_key("+491");
        let (a, b) = tokio::join!(
            first.deliver_to_waiting(&key, Some("e1"), reply("yes"), at(5)),
            second.deliver_to_waiting(&key, Some("e1"), reply("yes"), at(5)),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.answered && b.answered);
        let mut got: Vec<String> = a.runs.iter().chain(&b.runs).map(|r| r.id.clone()).collect();
        got.sort();
        assert_eq!(got, ["r1", "r2"]);
        assert!(a.runs.is_empty() || b.runs.is_empty(), "{a:?} / {b:?}");

        // A run that waits again by now is not answered by a redelivery.
        second
            .save_waiting_run(run("r1", at(200)), wait_key("+491"))
            .await
            .unwrap();
        let check = second
            .inbound_check(InboundQuery {
                conversation: None,
                wait: Some(WaitKeyRef {
                    trigger: "whatsapp.message_received",
                    key: "+491",
                }),
                event_id: Some("e1"),
                now: at(6),
            })
            .await
            .unwrap();
        assert!(check.may_deliver && !check.paused);
        let again = second
            .deliver_to_waiting(&wait_key("+491"), Some("e1"), reply("yes"), at(6))
            .await
            .unwrap();
        assert!(again.answered && again.runs.is_empty());
        assert_eq!(first.waiting_count(&wait_key("+491")).await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_timeout_on_one_node_and_a_reply_on_another_never_both_win() {
        let Some((url, first)) = store().await else {
            return;
        };
        let second = node(&url).await;
        let keys: Vec<String> = (0..60).map(|i| format!("+49{i:03}")).collect();
        for (i, key) in keys.iter().enumerate() {
            first
                .save_waiting_run(run(&format!("r{i:03}"), at(10)), wait_key(key))
                .await
                .unwrap();
        }
        let timeouts = async {
            let mut taken = Vec::new();
            loop {
                let claimed = first.claim_due_runs(at(10), 4).await.unwrap();
                if claimed.is_empty() {
                    return taken;
                }
                assert!(claimed.iter().all(|r| r.delivered.is_none()));
                taken.extend(claimed.into_iter().map(|r| r.id));
            }
        };
        let replies = async {
            let mut taken = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let delivery = second
                    .deliver_to_waiting(&wait_key(key), Some(&format!("e{i}")), reply("yes"), at(9))
                    .await
                    .unwrap();
                assert!(delivery
                    .runs
                    .iter()
                    .all(|r| r.delivered == Some(reply("yes"))));
                taken.extend(delivery.runs.into_iter().map(|r| r.id));
            }
            taken
        };
        let (timeouts, replies) = tokio::join!(timeouts, replies);
        let mut seen = HashSet::new();
        for id in timeouts.iter().chain(&replies) {
            assert!(seen.insert(id.clone()), "{id} was taken twice");
        }
        assert_eq!(seen.len(), keys.len(), "every run is taken once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_nodes_draining_one_inbox_handle_each_event_once_and_each_customer_in_order() {
        let Some((url, first)) = store().await else {
            return;
        };
        let second = node(&url).await;
        // Few customers, whose messages follow each other closely.
        let events: Vec<InboxEvent> = (0..90)
            .map(|i| {
                let phone = format!("+49{}", i % 3);
                message(&format!("e{i:03}"), Some(&phone), at(i))
            })
            .collect();
        first.enqueue_events(events).await.unwrap();
        // What the nodes handled, in the order they handled it.
        let log = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let worker = |store: PostgresStore| {
            let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                loop {
                    let batch = store.pending_events(4).await.unwrap();
                    if batch.is_empty() {
                        return;
                    }
                    for event in &batch {
                        let phone = event.event["fields"]["phone"].as_str().unwrap();
                        log.lock()
                            .unwrap()
                            .push((phone.to_string(), event.id.clone()));
                        // Handling takes a while: the other node claims
                        // meanwhile.
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    let ids: Vec<&str> = batch.iter().map(|e| e.id.as_str()).collect();
                    store.finish_events(&ids).await.unwrap();
                }
            })
        };
        let (a, b) = (worker(first), worker(second));
        a.await.unwrap();
        b.await.unwrap();

        let log = log.lock().unwrap();
        let mut seen = HashSet::new();
        for (_, id) in log.iter() {
            assert!(seen.insert(id.clone()), "{id} was handled twice");
        }
        assert_eq!(seen.len(), 90, "every event is handled");
        let mut last_of: std::collections::HashMap<&str, &str> = Default::default();
        for (phone, id) in log.iter() {
            if let Some(before) = last_of.insert(phone, id) {
                assert!(before < id.as_str(), "{phone}: {id} handled after {before}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Send slots shared by every process on a durable store.

mod pacing {
    use super::*;
    use flowc::providers::SlotRequest;
    use std::collections::HashMap;

    fn request<'a>(sender: &'a str, recipient: &'a str, now: DateTime<Utc>) -> SlotRequest<'a> {
        SlotRequest {
            sender,
            recipient,
            now,
            sender_spacing: Duration::microseconds(12_500),
            recipient_interval: Duration::seconds(6),
        }
    }

    async fn slot(
        store: &dyn Store,
        sender: &str,
        recipient: &str,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        store
            .reserve_send_slot(request(sender, recipient, now))
            .await
            .unwrap()
            .expect("a durable store paces")
    }

    async fn slots_follow_both_limits_and_a_waiting_send_holds_up_no_one(store: &dyn Store) {
        assert!(store.paces_sends());
        let t0 = at(0);
        assert_eq!(slot(store, "shop", "a", t0).await, t0);
        // The second message to `a` waits the pair interval...
        assert_eq!(
            slot(store, "shop", "a", t0).await,
            t0 + Duration::seconds(6)
        );
        // ...without holding up the sender's messages to others.
        assert_eq!(
            slot(store, "shop", "b", t0).await - t0,
            Duration::microseconds(12_500)
        );
        assert_eq!(
            slot(store, "shop", "c", t0).await - t0,
            Duration::microseconds(25_000)
        );
        // Another sender has slots of its own.
        assert_eq!(slot(store, "other", "d", t0).await, t0);
    }

    async fn the_frontier_steps_over_slots_reserved_ahead(store: &dyn Store) {
        let t0 = at(0);
        slot(store, "shop", "a", t0).await;
        // `a` again: ahead, at 6 s.
        let ahead = slot(store, "shop", "a", t0).await;
        assert_eq!(ahead, t0 + Duration::seconds(6));
        // 500 others from 5.99 s on take the frontier; none lands within
        // one spacing of the reserved slot.
        let mut slots = vec![ahead];
        for i in 0..500 {
            slots.push(
                slot(
                    store,
                    "shop",
                    &format!("r{i}"),
                    t0 + Duration::milliseconds(5_990),
                )
                .await,
            );
        }
        slots.sort();
        for pair in slots.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::microseconds(12_500),
                "{pair:?}"
            );
        }
    }

    async fn pruning_forgets_customers_whose_slot_has_passed(store: &dyn Store) {
        let t0 = at(0);
        slot(store, "shop", "a", t0).await;
        // Pruned before the slot: still known, the next message waits.
        store.prune_finished_events(t0).await.unwrap();
        assert_eq!(
            slot(store, "shop", "a", t0).await,
            t0 + Duration::seconds(6)
        );
        // Its next slot is now 12 s. Pruned after that: the row is gone, and
        // a message may go at once, as it could with the row.
        store
            .prune_finished_events(t0 + Duration::seconds(13))
            .await
            .unwrap();
        let later = t0 + Duration::seconds(13);
        assert_eq!(slot(store, "shop", "a", later).await, later);
    }

    /// Several processes (store handles) reserving at once: 200 sends each
    /// of one sender to 100 customers, all asked for at the same moment.
    async fn reserving_at_once_keeps_the_accounts_limits(handles: Vec<Arc<dyn Store>>) {
        let t0 = at(0);
        let mut tasks = Vec::new();
        for handle in &handles {
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                let mut slots = Vec::new();
                for i in 0..200 {
                    let recipient = format!("+4915{:07}", i % 100);
                    slots.push((
                        slot(handle.as_ref(), "shop", &recipient, t0).await,
                        recipient,
                    ));
                }
                slots
            }));
        }
        let mut slots = Vec::new();
        for task in tasks {
            slots.extend(task.await.unwrap());
        }
        slots.sort();
        assert_eq!(slots.len(), 200 * handles.len());
        for pair in slots.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 >= Duration::microseconds(12_500),
                "two sends of the sender closer than 1/80 s: {pair:?}"
            );
        }
        let mut last: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for (slot, recipient) in &slots {
            if let Some(previous) = last.insert(recipient, *slot) {
                assert!(
                    *slot - previous >= Duration::seconds(6),
                    "{recipient} got two messages {} apart",
                    *slot - previous
                );
            }
        }
        let first_second = slots
            .iter()
            .filter(|(s, _)| *s < t0 + Duration::seconds(1))
            .count();
        assert_eq!(first_second, 80);
    }

    for_each_durable_store!(
        slots_follow_both_limits_and_a_waiting_send_holds_up_no_one,
        the_frontier_steps_over_slots_reserved_ahead,
        pruning_forgets_customers_whose_slot_has_passed,
    );

    #[test]
    fn the_memory_store_leaves_pacing_to_the_process() {
        assert!(!MemoryStore::new().paces_sends());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_on_one_sqlite_file_keep_the_accounts_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let handles: Vec<Arc<dyn Store>> = (0..2)
            .map(|_| Arc::new(SqliteStore::open(&path).unwrap()) as Arc<dyn Store>)
            .collect();
        reserving_at_once_keeps_the_accounts_limits(handles).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_on_one_database_keep_the_accounts_limits() {
        if crate::pg::skipped() {
            return;
        }
        let url = crate::pg::fresh_database().await;
        let mut handles: Vec<Arc<dyn Store>> = Vec::new();
        for _ in 0..3 {
            handles.push(Arc::new(PostgresStore::connect(&url).await.unwrap()));
        }
        reserving_at_once_keeps_the_accounts_limits(handles).await;
    }
}
