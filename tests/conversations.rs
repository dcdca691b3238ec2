//! Conversations: bursts (`debounce`), handing a conversation to a person,
//! and several numbers (`via`, routing by `phone_number_id`). First on the
//! engine with virtual time, then through the service on a loopback port
//! over a real SQLite file.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use flowc::check::{Compiler, Program};
use flowc::providers::recording::Recorder;
use flowc::providers::sqlite::SqliteStore;
use flowc::providers::{Clock, MemoryStore, Store, VirtualClock};
use flowc::runtime::{Engine, Event};
use serde_json::json;

mod common;

use common::{Server, SECRET};

const CONFIG: &str = include_str!("../examples/flow.toml");

const CUSTOMER: &str = "+4917612345678";

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

fn compile(source: &str, config: &str) -> Program {
    let mut compiler = Compiler::new();
    compiler.add_source("flows.flow", source);
    compiler.add_config("flow.toml", config);
    compiler
        .check()
        .into_result()
        .unwrap_or_else(|e| panic!("the flows do not check:\n{e}"))
}

/// A customer's message to `sender` at `at`.
fn message(id: &str, sender: &str, text: &str, at: DateTime<Utc>) -> Event {
    Event::new(
        "whatsapp.message_received",
        json!({
            "phone": CUSTOMER,
            "text": text,
            "sender_id": sender,
            "timestamp": at.to_rfc3339(),
            "conversation_id": format!("{CUSTOMER}:{sender}"),
            "message_id": id,
        }),
    )
}

struct Harness {
    engine: Engine,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
}

impl Harness {
    fn new(source: &str, start: DateTime<Utc>) -> Harness {
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(start));
        let recorder = Recorder::with_clock(clock.clone());
        let engine = Engine::builder()
            .whatsapp(recorder.whatsapp())
            .ai(recorder.ai())
            .notify(recorder.notify())
            .log(recorder.log())
            .store(MemoryStore::new())
            .shared_clock(clock.clone())
            .build();
        engine.load(compile(source, CONFIG)).expect("load");
        Harness {
            engine,
            recorder,
            clock,
        }
    }

    /// Moves the virtual clock on by `secs` seconds, running what falls due.
    async fn after(&self, secs: i64) {
        let until = self.clock.now() + Duration::seconds(secs);
        while let Some(due) = self.engine.next_due().await.expect("next due") {
            if due > until {
                break;
            }
            self.clock.sleep_until(due).await;
            self.engine.run_due().await.expect("run due");
        }
        self.clock.sleep_until(until).await;
    }

    async fn send(&self, id: &str, sender: &str, text: &str) {
        let event = message(id, sender, text, self.clock.now());
        self.engine
            .dispatch_once(id, event)
            .await
            .expect("dispatch");
    }

    fn ai_messages(&self) -> Vec<String> {
        self.recorder
            .ai_requests()
            .into_iter()
            .map(|r| r.message)
            .collect()
    }
}

const ASSISTANT: &str = r#"
flow support_assistant
on whatsapp.message_received as msg debounce 8s {
    let answer = ai.generate_response(assistant: "support", customer: msg.phone, message: msg.text)
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: answer.text)
}

flow message_log
on whatsapp.message_received as msg {
    log("{msg.phone}: {msg.text}")
}
"#;

#[tokio::test(start_paused = true)]
async fn three_messages_within_five_seconds_make_one_ai_call() {
    let h = Harness::new(ASSISTANT, t("2026-11-26T09:00:00Z"));
    h.send("wamid.1", "berlin-office", "Hi").await;
    h.after(2).await;
    h.send("wamid.2", "berlin-office", "I have a question")
        .await;
    h.after(3).await;
    h.send("wamid.3", "berlin-office", "about my invoice").await;
    // Seven seconds after the last message: still collecting.
    h.after(7).await;
    assert!(h.ai_messages().is_empty());
    h.after(1).await;
    assert_eq!(h.ai_messages(), ["Hi\nI have a question\nabout my invoice"]);
    assert_eq!(h.recorder.texts().len(), 1);
    // Flows without `debounce` saw every message.
    assert_eq!(h.recorder.logs().len(), 3);

    // A fourth message after the pause starts a new burst.
    h.after(60).await;
    h.send("wamid.4", "berlin-office", "Thanks!").await;
    h.after(8).await;
    assert_eq!(
        h.ai_messages(),
        ["Hi\nI have a question\nabout my invoice", "Thanks!"]
    );
    // The same message delivered again is not collected twice.
    h.send("wamid.4", "berlin-office", "Thanks!").await;
    h.after(60).await;
    assert_eq!(h.ai_messages().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_burst_handed_over_before_its_pause_ends_starts_nothing() {
    let h = Harness::new(ASSISTANT, t("2026-11-26T09:00:00Z"));
    h.send("wamid.1", "berlin-office", "Hi").await;
    h.after(2).await;
    h.engine
        .pause_conversation(CUSTOMER, "berlin-office", None)
        .await
        .expect("pause");
    h.after(60).await;
    assert!(h.ai_messages().is_empty());
    assert_eq!(h.engine.next_due().await.expect("next due"), None);
}

#[tokio::test(start_paused = true)]
async fn a_joined_burst_keeps_the_last_messages_fields() {
    let h = Harness::new(
        r#"
flow echo
on whatsapp.message_received as msg debounce 2s {
    log("{msg.message_id}|{msg.text}")
}
"#,
        t("2026-11-26T09:00:00Z"),
    );
    h.send("wamid.a", "berlin-office", "one").await;
    h.send("wamid.b", "berlin-office", "two").await;
    h.after(3).await;
    let logs: Vec<String> = h.recorder.logs().into_iter().map(|(_, _, m)| m).collect();
    assert_eq!(logs, ["wamid.b|one\ntwo"]);
}

const HANDOFF: &str = r#"
flow assistant
on whatsapp.message_received as msg {
    if msg.text contains "person" {
        whatsapp.hand_over(customer: msg.phone, sender: msg.sender_id, for: 1h)
        notify("support", "{msg.phone} asks for a person")
        stop
    }
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "Automated answer to: {msg.text}")
}
"#;

#[tokio::test(start_paused = true)]
async fn a_handed_over_conversation_gets_no_automated_reply_until_for_passes() {
    let h = Harness::new(HANDOFF, t("2026-11-26T09:00:00Z"));
    h.send("wamid.1", "berlin-office", "I want to talk to a person")
        .await;
    assert_eq!(h.recorder.notifications().len(), 1);
    let paused = h.engine.paused_conversations().await.expect("paused");
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].customer, CUSTOMER);
    assert_eq!(paused[0].sender, "berlin-office");

    h.after(60).await;
    h.send("wamid.2", "berlin-office", "Hello?").await;
    assert!(h.recorder.texts().is_empty());
    // The message still opened the window.
    let last = h
        .engine
        .store()
        .last_inbound(CUSTOMER, "berlin-office")
        .await
        .expect("window");
    assert_eq!(last, Some(h.clock.now()));
    // Another number's conversation with the customer is not handed over.
    h.send("wamid.3", "munich-office", "Hi Munich").await;
    assert_eq!(h.recorder.texts().len(), 1);

    // An hour after the handoff, automation answers again.
    h.after(3600).await;
    h.send("wamid.4", "berlin-office", "Anyone?").await;
    let texts: Vec<String> = h.recorder.texts().into_iter().map(|t| t.body).collect();
    assert_eq!(
        texts,
        [
            "Automated answer to: Hi Munich",
            "Automated answer to: Anyone?"
        ]
    );
    assert!(h
        .engine
        .paused_conversations()
        .await
        .expect("paused")
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_engine_pauses_and_resumes_conversations() {
    let h = Harness::new(HANDOFF, t("2026-11-26T09:00:00Z"));
    h.engine
        .pause_conversation(CUSTOMER, "berlin-office", None)
        .await
        .expect("pause");
    h.send("wamid.1", "berlin-office", "Hi").await;
    h.after(86_400).await;
    h.send("wamid.2", "berlin-office", "Hi again").await;
    assert!(h.recorder.texts().is_empty());
    assert!(h
        .engine
        .resume_conversation(CUSTOMER, "berlin-office")
        .await
        .expect("resume"));
    h.send("wamid.3", "berlin-office", "Third try").await;
    assert_eq!(h.recorder.texts().len(), 1);
}

const TWO_OFFICES: &str = r#"
flow berlin_desk
on whatsapp.message_received as msg via "berlin-office" {
    log("berlin: {msg.text}")
}

flow munich_desk
on whatsapp.message_received as msg via "munich-office" {
    log("munich: {msg.text}")
}

flow every_office
on whatsapp.message_received as msg via "berlin-office", "munich-office" {
    log("any: {msg.text}")
}
"#;

#[tokio::test(start_paused = true)]
async fn via_starts_only_the_named_senders_handlers() {
    let h = Harness::new(TWO_OFFICES, t("2026-11-26T09:00:00Z"));
    h.send("wamid.1", "berlin-office", "to Berlin").await;
    h.send("wamid.2", "munich-office", "to Munich").await;
    let mut logs: Vec<String> = h.recorder.logs().into_iter().map(|(_, _, m)| m).collect();
    logs.sort();
    assert_eq!(
        logs,
        [
            "any: to Berlin",
            "any: to Munich",
            "berlin: to Berlin",
            "munich: to Munich"
        ]
    );
}

// ---------------------------------------------------------------------------
// The service on a loopback port.

const BERLIN_ID: &str = "106540352242922";
const MUNICH_ID: &str = "107655463353033";

const SERVICE_CONFIG: &str = r#"
[senders.berlin-office]
phone_number_id = "106540352242922"

[senders.munich-office]
phone_number_id = "107655463353033"
"#;

const SERVICE_FLOWS: &str = r#"
flow berlin_desk
on whatsapp.message_received as msg via "berlin-office" {
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "Berlin here: {msg.text}")
}

flow munich_desk
on whatsapp.message_received as msg via "munich-office" {
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "Munich here: {msg.text}")
}
"#;

async fn start() -> Server {
    start_with_flows(SERVICE_FLOWS).await
}

async fn start_with_flows(flows: &str) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("flows.db")).expect("store"));
    common::start(
        dir,
        store,
        compile(flows, SERVICE_CONFIG),
        |builder, _| builder,
        |_| {},
    )
    .await
}

impl Server {
    async fn metric(&self, line: &str) -> Option<u64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body");
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
    }

    /// Waits until the inbox is empty, for at most five seconds.
    async fn settled(&self) {
        for _ in 0..100 {
            if self.store.pending_count().await.expect("inbox") == 0 {
                // Its runs are done too: they run before the event leaves.
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!("the inbox did not empty");
    }
}

/// A text message from the customer to the number `phone_number_id`.
fn payload(phone_number_id: &str, message_id: &str, text: &str) -> serde_json::Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Lukas Meyer"}, "wa_id": "4917612345678"}],
        "messages": [{"from": "4917612345678", "id": message_id, "timestamp": Utc::now().timestamp().to_string(),
                      "type": "text", "text": {"body": text}}]}}]}]})
}

const DROPPED: &str = "flowc_webhook_events_dropped_total{reason=\"unknown_sender\"}";
const HELD: &str = "flowc_events_held_total";

#[tokio::test(flavor = "multi_thread")]
async fn two_senders_webhooks_go_to_their_own_flows() {
    let server = start().await;
    assert_eq!(
        server
            .post_webhook(&payload(BERLIN_ID, "wamid.B1", "Hallo Berlin"), SECRET)
            .await,
        200
    );
    assert_eq!(
        server
            .post_webhook(&payload(MUNICH_ID, "wamid.M1", "Servus München"), SECRET)
            .await,
        200
    );
    server.settled().await;
    let mut texts: Vec<(String, String)> = server
        .recorder
        .texts()
        .into_iter()
        .map(|t| (t.sender.name, t.body))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            (
                "berlin-office".to_string(),
                "Berlin here: Hallo Berlin".to_string()
            ),
            (
                "munich-office".to_string(),
                "Munich here: Servus München".to_string()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_number_is_dropped_and_counted() {
    let server = start().await;
    assert_eq!(server.metric(DROPPED).await, None);
    assert_eq!(
        server
            .post_webhook(&payload("999999999999999", "wamid.X1", "Hi"), SECRET)
            .await,
        200
    );
    server.settled().await;
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert!(server.recorder.texts().is_empty());
    assert_eq!(server.metric(DROPPED).await, Some(1));
    // Nothing of it reached the inbox or any window.
    assert_eq!(
        server
            .store
            .last_inbound(CUSTOMER, "berlin-office")
            .await
            .expect("window"),
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handed_over_conversation_is_held_by_the_service() {
    let server = start().await;
    server
        .engine
        .pause_conversation(CUSTOMER, "berlin-office", None)
        .await
        .expect("pause");
    assert_eq!(
        server
            .post_webhook(&payload(BERLIN_ID, "wamid.B1", "Hallo?"), SECRET)
            .await,
        200
    );
    server.settled().await;
    assert!(server.recorder.texts().is_empty());
    // The message, and the conversation it started, are both held.
    assert_eq!(server.metric(HELD).await, Some(2));
    // Held, not lost: the message was recorded and opened the window.
    assert!(server
        .store
        .last_inbound(CUSTOMER, "berlin-office")
        .await
        .expect("window")
        .is_some());
    // The Munich number's conversation is automated as before.
    assert_eq!(
        server
            .post_webhook(&payload(MUNICH_ID, "wamid.M1", "Servus"), SECRET)
            .await,
        200
    );
    server.settled().await;
    assert_eq!(server.recorder.texts().len(), 1);

    server
        .engine
        .resume_conversation(CUSTOMER, "berlin-office")
        .await
        .expect("resume");
    assert_eq!(
        server
            .post_webhook(&payload(BERLIN_ID, "wamid.B2", "Jetzt?"), SECRET)
            .await,
        200
    );
    server.settled().await;
    assert_eq!(server.recorder.texts().len(), 2);
}

const BURST_FLOWS: &str = r#"
flow assistant
on whatsapp.message_received as msg debounce 1s via "berlin-office" {
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "You wrote: {msg.text}")
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_service_answers_a_burst_once_after_the_pause() {
    let server = start_with_flows(BURST_FLOWS).await;
    for (id, text) in [
        ("wamid.1", "Hi"),
        ("wamid.2", "I have a question"),
        ("wamid.3", "about my invoice"),
    ] {
        assert_eq!(
            server
                .post_webhook(&payload(BERLIN_ID, id, text), SECRET)
                .await,
            200
        );
    }
    server.settled().await;
    // Collected, not answered yet; then answered once the pause is over.
    assert!(server.recorder.texts().is_empty());
    for _ in 0..100 {
        if !server.recorder.texts().is_empty() {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    let texts: Vec<String> = server
        .recorder
        .texts()
        .into_iter()
        .map(|t| t.body)
        .collect();
    assert_eq!(
        texts,
        ["You wrote: Hi\nI have a question\nabout my invoice"]
    );
}

// ---------------------------------------------------------------------------
// `flowc conversation` on a project's store.

fn flowc(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowc"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("flowc runs");
    (
        output.status.code().expect("flowc exits"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn flowc_conversation_pauses_lists_and_resumes() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("flow.toml"), SERVICE_CONFIG).expect("flow.toml");
    let (code, _, err) = flowc(dir.path(), &["conversation", "pause", CUSTOMER]);
    assert_eq!(code, 2);
    assert!(err.contains("several senders"), "{err}");
    let (code, _, err) = flowc(
        dir.path(),
        &[
            "conversation",
            "pause",
            CUSTOMER,
            "--sender",
            "berlin-ofice",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `berlin-office`?"), "{err}");
    let (code, _, err) = flowc(
        dir.path(),
        &[
            "conversation",
            "pause",
            "015112345678",
            "--sender",
            "berlin-office",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("is not a phone number in E.164"), "{err}");
    let (code, _, err) = flowc(
        dir.path(),
        &[
            "conversation",
            "pause",
            CUSTOMER,
            "--sender",
            "berlin-office",
            "--for",
            "soon",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--for"), "{err}");

    let (code, out, err) = flowc(
        dir.path(),
        &[
            "conversation",
            "pause",
            CUSTOMER,
            "--sender",
            "berlin-office",
            "--for",
            "4h",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("handed over until"), "{out}");
    let (code, out, _) = flowc(dir.path(), &["conversation", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(CUSTOMER) && out.contains("berlin-office"),
        "{out}"
    );

    // The service's store sees the pause.
    let store = SqliteStore::open(dir.path().join("flows.db")).expect("store");
    assert!(store
        .conversation_paused(CUSTOMER, "berlin-office", Utc::now())
        .await
        .expect("paused"));
    drop(store);

    let (code, out, _) = flowc(
        dir.path(),
        &[
            "conversation",
            "resume",
            CUSTOMER,
            "--sender",
            "berlin-office",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("automation resumed"), "{out}");
    let (_, out, _) = flowc(dir.path(), &["conversation", "list"]);
    assert!(out.contains("no conversation is handed over"), "{out}");
}
