//! The service in-process on a loopback port, over a real SQLite file: signed
//! webhooks start runs, duplicates start nothing, bad signatures get 401, the
//! first message of a conversation also starts `conversation_started`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flowc::check::Compiler;
use flowc::providers::sqlite::SqliteStore;
use flowc::providers::{
    Burst, InboxEvent, PausedConversation, RunRecord, Secret, SendState, SentRecord, Store,
    StoreError, StoredRun,
};
use flowc::serve::webhook::signature_header;
use serde_json::json;

mod common;

use common::{Server, SECRET};

const FLOWS: &str = r#"
flow answer
on whatsapp.message_received as msg {
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "Got it: {msg.text}")
}

flow greet
on whatsapp.conversation_started as convo {
    log("new conversation with {convo.phone}")
}

flow delivery
on whatsapp.message_status as report {
    log("{report.message_id} is {report.status}")
}

flow follow_up
on call.ended as call {
    log("call {call.call_id} ended")
}
"#;

const CONFIG: &str = r#"
[senders.office]
phone_number_id = "106540352242922"
"#;

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("flows.db")).expect("store"));
    start_with(dir, store).await
}

async fn start_with(dir: tempfile::TempDir, store: Arc<dyn Store>) -> Server {
    let mut compiler = Compiler::new();
    compiler.add_source("flows.flow", FLOWS);
    compiler.add_config("flow.toml", CONFIG);
    let program = compiler.check().into_result().expect("flows check");
    common::start(
        dir,
        store,
        program,
        |builder, _| builder,
        |options| options.events_token = Some(Secret::new("host-token")),
    )
    .await
}

fn text_payload(message_id: &str, text: &str) -> serde_json::Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Anna Schmidt"}, "wa_id": "4915112345678"}],
        "messages": [{"from": "4915112345678", "id": message_id, "timestamp": chrono::Utc::now().timestamp().to_string(),
                      "type": "text", "text": {"body": text}}]}}]}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_message_starts_its_runs_once() {
    let server = start().await;
    let payload = text_payload("wamid.A1", "What does it cost?");
    assert_eq!(server.post_webhook(&payload, SECRET).await, 200);
    server
        .eventually("the answer", |s| s.recorder.texts().len() == 1)
        .await;
    let text = &server.recorder.texts()[0];
    assert_eq!(text.to, "+4915112345678");
    assert_eq!(text.body, "Got it: What does it cost?");
    // The first message of the customer also started a conversation.
    server
        .eventually("the conversation log", |s| {
            s.recorder
                .logs()
                .iter()
                .any(|(_, _, m)| m == "new conversation with +4915112345678")
        })
        .await;

    // Meta delivers the same payload again: nothing new starts.
    assert_eq!(server.post_webhook(&payload, SECRET).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.recorder.texts().len(), 1);

    // A second message in the open conversation starts no new conversation.
    assert_eq!(
        server
            .post_webhook(&text_payload("wamid.A2", "Thanks"), SECRET)
            .await,
        200
    );
    server
        .eventually("the second answer", |s| s.recorder.texts().len() == 2)
        .await;
    let conversations = server
        .recorder
        .logs()
        .iter()
        .filter(|(_, _, m)| m.starts_with("new conversation"))
        .count();
    assert_eq!(conversations, 1);
    assert!(server
        .store
        .pending_events(10)
        .await
        .expect("inbox")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn handled_events_are_forgotten_after_the_retention() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("flows.db")).expect("store"));
    // Two messages handled before the service started: 20 days and 1 day ago.
    for (id, days) in [("wamid.OLD", 20), ("wamid.RECENT", 1)] {
        let event = InboxEvent {
            id: id.into(),
            event: json!({}),
            received_at: chrono::Utc::now() - chrono::Duration::days(days),
        };
        assert!(store.enqueue_event(event).await.expect("enqueue"));
        store.finish_event(id).await.expect("finish");
    }
    // The default retention is 14 days; the service prunes as it starts.
    let server = start_with(dir, store).await;
    let mut pruned = false;
    for _ in 0..200 {
        let metrics = server
            .client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        if metrics.contains("flowc_events_pruned_total 1\n") {
            pruned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pruned, "the service never pruned the old event");

    // Meta redelivering the recent one is still recognised; the forgotten
    // one is taken as new.
    for id in ["wamid.RECENT", "wamid.OLD"] {
        let payload = text_payload(id, "Still there?");
        assert_eq!(server.post_webhook(&payload, SECRET).await, 200);
    }
    server
        .eventually("the answer", |s| s.recorder.texts().len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.recorder.texts().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_and_bodies_start_nothing() {
    let server = start().await;
    let payload = text_payload("wamid.B1", "hello");
    assert_eq!(server.post_webhook(&payload, "wrong-secret").await, 401);
    let unsigned = server
        .client
        .post(format!("{}/webhook", server.base))
        .body(serde_json::to_vec(&payload).expect("json"))
        .send()
        .await
        .expect("request");
    assert_eq!(unsigned.status(), 401);
    let malformed = b"{\"object\": ";
    let response = server
        .client
        .post(format!("{}/webhook", server.base))
        .header(
            "x-hub-signature-256",
            signature_header(SECRET.as_bytes(), malformed),
        )
        .body(malformed.to_vec())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let huge = vec![b' '; 2 << 20];
    let response = server
        .client
        .post(format!("{}/webhook", server.base))
        .header(
            "x-hub-signature-256",
            signature_header(SECRET.as_bytes(), &huge),
        )
        .body(huge)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.recorder.texts().is_empty());
    assert!(server.recorder.logs().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_health_metrics_and_host_events() {
    let server = start().await;
    let get = |path: String| {
        let client = server.client.clone();
        async move { client.get(path).send().await.expect("request") }
    };
    let ok = get(format!(
        "{}/webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
        server.base
    ))
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "1158201444");
    let refused = get(format!(
        "{}/webhook?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
        server.base
    ))
    .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(get(format!("{}/healthz", server.base)).await.status(), 200);

    let event = json!({"id": "crm-77", "trigger": "call.ended", "fields": {"customer_phone": "+4915112345678",
        "agent_name": "Jonas", "outcome": "no_answer", "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c-77"}});
    let post = |token: &'static str, body: serde_json::Value| {
        let client = server.client.clone();
        let url = format!("{}/events", server.base);
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request")
        }
    };
    assert_eq!(post("wrong", event.clone()).await.status(), 401);
    assert_eq!(post("host-token", event.clone()).await.status(), 202);
    let mut bad = event.clone();
    bad["id"] = json!("crm-78");
    bad["fields"]["customer_phone"] = json!("0151/12345678");
    let rejected = post("host-token", bad).await;
    assert_eq!(rejected.status(), 422);
    assert!(rejected
        .text()
        .await
        .expect("body")
        .contains("customer_phone"));
    server
        .eventually("the host event's run", |s| {
            s.recorder
                .logs()
                .iter()
                .any(|(_, _, m)| m == "call c-77 ended")
        })
        .await;

    let status = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "statuses": [{"id": "wamid.S1", "status": "delivered", "timestamp": "1764000100", "recipient_id": "4915112345678"}]}}]}]});
    assert_eq!(server.post_webhook(&status, SECRET).await, 200);
    server
        .eventually("the status run", |s| {
            s.recorder
                .logs()
                .iter()
                .any(|(_, _, m)| m == "wamid.S1 is delivered")
        })
        .await;
    let metrics = get(format!("{}/metrics", server.base))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("flowc_events_total{source=\"host\",result=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowc_events_total{source=\"webhook\",result=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("flowc_runs_started_total 2"), "{metrics}");
    assert!(metrics.contains("flowc_pending_events 0"), "{metrics}");
}

/// A SQLite store whose inbox commits can be made to fail or to take long,
/// and that remembers the largest batch it was given.
struct GatedStore {
    inner: SqliteStore,
    fail: AtomicBool,
    delay: Duration,
    largest_batch: AtomicUsize,
}

impl GatedStore {
    fn new(dir: &tempfile::TempDir, delay: Duration) -> Arc<GatedStore> {
        Arc::new(GatedStore {
            inner: SqliteStore::open(dir.path().join("flows.db")).expect("store"),
            fail: AtomicBool::new(false),
            delay,
            largest_batch: AtomicUsize::new(0),
        })
    }
}

#[async_trait::async_trait]
impl Store for GatedStore {
    async fn enqueue_event(&self, event: InboxEvent) -> Result<bool, StoreError> {
        Ok(self.enqueue_events(vec![event]).await?[0])
    }
    async fn enqueue_events(&self, events: Vec<InboxEvent>) -> Result<Vec<bool>, StoreError> {
        self.largest_batch.fetch_max(events.len(), Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk full".into()));
        }
        self.inner.enqueue_events(events).await
    }
    async fn pending_events(&self, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        self.inner.pending_events(limit).await
    }
    async fn prune_finished_events(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, StoreError> {
        self.inner.prune_finished_events(before).await
    }
    async fn pending_count(&self) -> Result<usize, StoreError> {
        self.inner.pending_count().await
    }
    async fn finish_event(&self, id: &str) -> Result<(), StoreError> {
        self.inner.finish_event(id).await
    }
    async fn send_state(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        self.inner.send_state(key).await
    }
    async fn claim_send(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        self.inner.claim_send(key).await
    }
    async fn run_known(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.run_known(id).await
    }
    async fn set_send_state(&self, key: &str, state: Option<SendState>) -> Result<(), StoreError> {
        self.inner.set_send_state(key, state).await
    }
    async fn record_inbound(
        &self,
        customer: &str,
        sender: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.inner.record_inbound(customer, sender, at).await
    }
    async fn last_inbound(
        &self,
        customer: &str,
        sender: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.inner.last_inbound(customer, sender).await
    }
    async fn save_run(&self, run: StoredRun) -> Result<(), StoreError> {
        self.inner.save_run(run).await
    }
    async fn claim_due_runs(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.inner.claim_due_runs(now, limit).await
    }
    async fn next_wake(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.inner.next_wake().await
    }
    async fn suspended_count(&self) -> Result<usize, StoreError> {
        self.inner.suspended_count().await
    }
    async fn record_run(&self, record: RunRecord) -> Result<(), StoreError> {
        self.inner.record_run(record).await
    }
    async fn run_history(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.run_history().await
    }
    async fn log_send(&self, record: SentRecord) -> Result<(), StoreError> {
        self.inner.log_send(record).await
    }
    async fn sent_log(&self) -> Result<Vec<SentRecord>, StoreError> {
        self.inner.sent_log().await
    }
    async fn pause_conversation(&self, pause: PausedConversation) -> Result<(), StoreError> {
        self.inner.pause_conversation(pause).await
    }
    async fn resume_conversation(&self, customer: &str, sender: &str) -> Result<bool, StoreError> {
        self.inner.resume_conversation(customer, sender).await
    }
    async fn paused_conversations(&self) -> Result<Vec<PausedConversation>, StoreError> {
        self.inner.paused_conversations().await
    }
    async fn conversation_paused(
        &self,
        customer: &str,
        sender: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.conversation_paused(customer, sender, now).await
    }
    async fn add_to_burst(&self, burst: Burst) -> Result<(), StoreError> {
        self.inner.add_to_burst(burst).await
    }
    async fn claim_due_bursts(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Burst>, StoreError> {
        self.inner.claim_due_bursts(now, limit).await
    }
    async fn finish_burst(&self, id: &str) -> Result<(), StoreError> {
        self.inner.finish_burst(id).await
    }
    async fn next_burst_deadline(
        &self,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.inner.next_burst_deadline().await
    }
}

async fn metric(server: &Server, line: &str) -> Option<u64> {
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
}

const ACCEPTED: &str = "flowc_events_total{source=\"webhook\",result=\"accepted\"}";
const DUPLICATE: &str = "flowc_events_total{source=\"webhook\",result=\"duplicate\"}";

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_webhooks_are_committed_together_and_deduplicated() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Each commit takes a while, so the requests arriving meanwhile wait
    // for the next one and are committed together.
    let gated = GatedStore::new(&dir, Duration::from_millis(100));
    let server = start_with(dir, gated.clone()).await;
    // 48 messages, and 16 of them delivered twice at the same time.
    let ids: Vec<String> = (0..64).map(|i| format!("wamid.C{}", i % 48)).collect();
    let posts = ids.iter().map(|id| {
        let payload = text_payload(id, "hello");
        let server = &server;
        async move { server.post_webhook(&payload, SECRET).await }
    });
    let statuses = futures_join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(gated.largest_batch.load(Ordering::SeqCst) > 1);
    assert_eq!(metric(&server, ACCEPTED).await, Some(48));
    assert_eq!(metric(&server, DUPLICATE).await, Some(16));
    // Every id is known: a later delivery is a duplicate.
    for i in 0..48 {
        let event = InboxEvent {
            id: format!("wamid.C{i}"),
            event: json!({}),
            received_at: chrono::Utc::now(),
        };
        assert!(!server.store.enqueue_event(event).await.expect("store"));
    }
    assert_eq!(
        server
            .post_webhook(&text_payload("wamid.C7", "again"), SECRET)
            .await,
        200
    );
    assert_eq!(metric(&server, DUPLICATE).await, Some(17));
    server
        .eventually("48 answers", |s| s.recorder.texts().len() == 48)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_commit_answers_every_waiting_request_503_and_keeps_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gated = GatedStore::new(&dir, Duration::from_millis(50));
    let server = start_with(dir, gated.clone()).await;
    gated.fail.store(true, Ordering::SeqCst);
    let posts = (0..16).map(|i| {
        let payload = text_payload(&format!("wamid.F{i}"), "hello");
        let server = &server;
        async move { server.post_webhook(&payload, SECRET).await }
    });
    let statuses = futures_join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    assert_eq!(metric(&server, ACCEPTED).await, None);
    assert!(server
        .store
        .pending_events(100)
        .await
        .expect("inbox")
        .is_empty());

    // Meta delivers them again once the store is back: all are new.
    gated.fail.store(false, Ordering::SeqCst);
    let posts = (0..16).map(|i| {
        let payload = text_payload(&format!("wamid.F{i}"), "hello");
        let server = &server;
        async move { server.post_webhook(&payload, SECRET).await }
    });
    let statuses = futures_join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(metric(&server, ACCEPTED).await, Some(16));
    assert_eq!(metric(&server, DUPLICATE).await, None);
    server
        .eventually("16 answers", |s| s.recorder.texts().len() == 16)
        .await;
}

/// Runs the futures concurrently (on this task) and returns their outputs
/// in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}
