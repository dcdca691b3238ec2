//! Sends survive crashes exactly once: a run resumed from a state saved
//! before its send does not send again when the send was recorded, and does
//! not resend blindly when its outcome is unknown.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use flowc::check::Compiler;
use flowc::providers::recording::Recorder;
use flowc::providers::{Clock, MemoryStore, RunOutcome, Store, StoredRun, VirtualClock};
use flowc::runtime::{ActionError, Engine, Event};

const FLOW: &str = r#"
flow follow_up
on call.ended as call {
    delay 1h
    whatsapp.send_template(sender: "office", template: "missed_you", to: call.customer_phone)
        catch DeliveryUnknown e {
            notify("team", "check {call.customer_phone}: {e.kind}")
            stop
        }
    delay 1h
    notify("team", "followed up {call.customer_phone}")
}
"#;

const CONFIG: &str = r#"
[senders.office]
phone_number_id = "106540352242922"

[templates.missed_you]
language = "en"
category = "utility"
body = "Hello, we tried to call you."
"#;

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc)
}

fn engine(store: Arc<dyn Store>, clock: Arc<dyn Clock>, recorder: &Recorder) -> Engine {
    let mut compiler = Compiler::new();
    compiler.add_source("follow_up.flow", FLOW);
    compiler.add_config("flow.toml", CONFIG);
    let program = compiler.check().into_result().expect("the flow checks");
    let engine = Engine::builder()
        .whatsapp(recorder.whatsapp())
        .notify(recorder.notify())
        .log(recorder.log())
        .shared_clock(clock)
        .shared_store(store)
        .build();
    engine.load(program).expect("no host actions");
    engine
}

fn event() -> Event {
    Event::new(
        "call.ended",
        serde_json::json!({"customer_phone": "+4915112345678", "agent_name": "Jonas",
            "outcome": "no_answer", "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c-1"}),
    )
}

/// Dispatches, lets the first wait end, and returns the run as stored before
/// the send: the state a process that crashes after the send resumes from.
async fn state_before_the_send(engine: &Engine, clock: &Arc<dyn Clock>) -> StoredRun {
    engine
        .dispatch_once("wamid.1", event())
        .await
        .expect("dispatch");
    clock.sleep_until(start() + Duration::hours(1)).await;
    let mut due = engine
        .store()
        .claim_due_runs(clock.now(), 10)
        .await
        .expect("claim");
    assert_eq!(due.len(), 1);
    due.remove(0)
}

#[tokio::test(start_paused = true)]
async fn a_run_resumed_after_its_send_does_not_send_again() {
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(start()));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = Recorder::with_clock(clock.clone());
    let engine_a = engine(store.clone(), clock.clone(), &first);
    let before = state_before_the_send(&engine_a, &clock).await;

    // Process A sends, then "crashes": its progress after the send is lost,
    // the run is back in the store as it was before the send.
    engine_a.resume(before.clone()).await.expect("resume in A");
    assert_eq!(first.templates().len(), 1);
    store
        .save_run(before)
        .await
        .expect("put the old state back");
    drop(engine_a);

    // Process B resumes the old state on the same store.
    let second = Recorder::with_clock(clock.clone());
    let engine_b = engine(store.clone(), clock.clone(), &second);
    engine_b.run_until_idle().await.expect("B finishes the run");
    assert!(second.templates().is_empty(), "B sent the message again");
    assert_eq!(
        second.notifications(),
        [("team".to_string(), "followed up +4915112345678".to_string())]
    );
    assert_eq!(store.sent_log().await.expect("log").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_that_crashed_before_its_send_sends_after_restart() {
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(start()));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = Recorder::with_clock(clock.clone());
    let engine_a = engine(store.clone(), clock.clone(), &first);
    let before = state_before_the_send(&engine_a, &clock).await;
    // A crashes before the send: the claimed run goes back under its lease.
    store.save_run(before).await.expect("lease");
    drop(engine_a);

    let second = Recorder::with_clock(clock.clone());
    let engine_b = engine(store.clone(), clock.clone(), &second);
    engine_b.run_until_idle().await.expect("B finishes the run");
    assert!(first.templates().is_empty());
    assert_eq!(second.templates().len(), 1);
    assert_eq!(store.sent_log().await.expect("log").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_send_with_an_unknown_outcome_is_not_sent_again() {
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(start()));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = Recorder::with_clock(clock.clone());
    // The call times out: WhatsApp may or may not have the message.
    first
        .whatsapp()
        .fail_call(1, ActionError::Timeout { after_ms: 15_000 });
    let engine_a = engine(store.clone(), clock.clone(), &first);
    let before = state_before_the_send(&engine_a, &clock).await;
    engine_a.resume(before.clone()).await.expect("resume in A");
    // The timeout is not retried (it could reach the customer twice); the
    // flow has no catch for Timeout, so the run failed in A.
    let history = store.run_history().await.expect("history");
    assert!(matches!(&history[0].outcome, RunOutcome::Failed { kind, .. } if kind == "Timeout"));

    // Had A crashed instead, B resumes the old state: the intent is there
    // without an answer, so B does not send and the flow's catch takes over.
    store
        .save_run(before)
        .await
        .expect("put the old state back");
    let second = Recorder::with_clock(clock.clone());
    let engine_b = engine(store.clone(), clock.clone(), &second);
    engine_b.run_until_idle().await.expect("B finishes the run");
    assert!(second.templates().is_empty());
    assert!(second.whatsapp().attempts().is_empty(), "B called the API");
    assert_eq!(
        second.notifications(),
        [(
            "team".to_string(),
            "check +4915112345678: DeliveryUnknown".to_string()
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn the_same_event_dispatched_twice_sends_once() {
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(start()));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let recorder = Recorder::with_clock(clock.clone());
    let engine = engine(store.clone(), clock.clone(), &recorder);
    engine
        .dispatch_once("wamid.7", event())
        .await
        .expect("first");
    engine
        .dispatch_once("wamid.7", event())
        .await
        .expect("again");
    assert_eq!(store.suspended_count().await.expect("count"), 1);
    engine.run_until_idle().await.expect("finish");
    assert_eq!(recorder.templates().len(), 1);
}
