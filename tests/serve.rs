//! The service in-process on a loopback port, over a real SQLite file: signed
//! webhooks start runs, duplicates start nothing, bad signatures get 401, the
//! first message of a conversation also starts `conversation_started`.

use std::sync::Arc;
use std::time::Duration;

use flowc::check::Compiler;
use flowc::providers::recording::Recorder;
use flowc::providers::sqlite::SqliteStore;
use flowc::providers::{Secret, Store};
use flowc::runtime::{Engine, EngineLimits, Limits};
use flowc::serve::webhook::signature_header;
use flowc::serve::{Metrics, ServeOptions, Service};
use serde_json::json;

const SECRET: &str = "app-secret";

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

struct Server {
    base: String,
    recorder: Recorder,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("flows.db")).expect("store"));
    let mut compiler = Compiler::new();
    compiler.add_source("flows.flow", FLOWS);
    compiler.add_config("flow.toml", CONFIG);
    let program = compiler.check().into_result().expect("flows check");
    let recorder = Recorder::new();
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::builder()
        .whatsapp(recorder.whatsapp())
        .log(recorder.log())
        .shared_store(store.clone())
        .observer(metrics.clone())
        // Two answers to one customer in a test: no 6 s pair-rate wait.
        .limits(EngineLimits {
            pacing: Limits {
                recipient_interval: chrono::Duration::milliseconds(10),
                ..Limits::default()
            },
            ..EngineLimits::default()
        })
        .build();
    engine.load(program.clone()).expect("load");
    let mut options = ServeOptions::new(Secret::new(SECRET), Secret::new("verify-me"));
    options.events_token = Some(Secret::new("host-token"));
    options.poll_interval = Duration::from_millis(50);
    let service = Service::new(engine, program, metrics, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(flowc::serve::serve(service, listener, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        recorder,
        store,
        client: reqwest::Client::new(),
        _dir: dir,
        stop: Some(stop),
    }
}

impl Server {
    async fn post_webhook(&self, body: &serde_json::Value, secret: &str) -> reqwest::StatusCode {
        let bytes = serde_json::to_vec(body).expect("json");
        self.client
            .post(format!("{}/webhook", self.base))
            .header(
                "x-hub-signature-256",
                signature_header(secret.as_bytes(), &bytes),
            )
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .expect("request")
            .status()
    }

    /// Waits until `done` holds, for at most five seconds.
    async fn eventually(&self, what: &str, done: impl Fn(&Server) -> bool) {
        for _ in 0..100 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }
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
