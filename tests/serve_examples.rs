//! The example project behind the real server: signed webhook payloads, as
//! WhatsApp sends them, go over loopback HTTP into `flowc serve`'s service
//! with the examples' flows and flow.toml, and a real SQLite file.
//!
//! A new customer gets the welcome menu (a list); their pick arrives as an
//! interactive `list_reply` and `menu_choice` branches on it; a button tap
//! of the follow-up question arrives as a `button_reply`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flowc::providers::recording::Recorder;
use flowc::providers::sqlite::SqliteStore;
use flowc::providers::{Choices, Secret, Store};
use flowc::runtime::{Engine, EngineLimits, Limits};
use flowc::serve::webhook::signature_header;
use flowc::serve::{Metrics, ServeOptions, Service};
use serde_json::{json, Value};

const SECRET: &str = "app-secret";
const CUSTOMER: &str = "4916098765432";

struct Server {
    base: String,
    recorder: Recorder,
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

/// The examples, checked as `flowc serve examples/` checks them.
fn example_program() -> flowc::check::Program {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut compiler = flowc::check::Compiler::new();
    let mut names: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples/")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "flow"))
        .collect();
    names.sort();
    for path in names {
        let source = std::fs::read_to_string(&path).expect("an example");
        compiler.add_source(path.display().to_string(), &source);
    }
    let config = std::fs::read_to_string(examples.join("flow.toml")).expect("flow.toml");
    compiler.add_config("flow.toml", &config);
    compiler
        .check()
        .into_result()
        .unwrap_or_else(|e| panic!("the examples do not check:\n{e}"))
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("flows.db")).expect("store"));
    let program = example_program();
    let recorder = Recorder::new();
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::builder()
        .whatsapp(recorder.whatsapp())
        .ai(recorder.ai())
        .notify(recorder.notify())
        .log(recorder.log())
        .shared_store(store)
        .media_dir(dir.path().join("media"))
        .observer(metrics.clone())
        // Several answers to one customer in a test: no 6 s pair-rate wait.
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
        client: reqwest::Client::new(),
        _dir: dir,
        stop: Some(stop),
    }
}

/// A webhook with one message from the customer to berlin-office.
fn payload(message: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4930901820", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sophie Wagner"}, "wa_id": CUSTOMER}],
        "messages": [message]}}]}]})
}

fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

impl Server {
    async fn post(&self, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        let status = self
            .client
            .post(format!("{}/webhook", self.base))
            .header(
                "x-hub-signature-256",
                signature_header(SECRET.as_bytes(), &bytes),
            )
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 200);
    }

    /// Waits until `done` holds, for at most ten seconds.
    async fn eventually(&self, what: &str, done: impl Fn(&Recorder) -> bool) {
        for _ in 0..200 {
            if done(&self.recorder) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}; so far:\n{}",
            self.recorder.transcript()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pick_from_the_welcome_list_is_branched_on() {
    let server = start().await;

    // A new customer writes: the welcome menu goes out as a list, and the
    // assistant answers the question itself.
    server
        .post(&payload(json!({
            "from": CUSTOMER, "id": "wamid.first", "timestamp": now(),
            "type": "text", "text": {"body": "Hello! Do you install on flat roofs?"},
        })))
        .await;
    server
        .eventually("the welcome list", |r| !r.interactive().is_empty())
        .await;
    let welcome = &server.recorder.interactive()[0];
    assert_eq!(welcome.to, format!("+{CUSTOMER}"));
    let Choices::List { button, sections } = &welcome.choices else {
        panic!("the welcome is a list: {:?}", welcome.choices);
    };
    assert_eq!(button, "Choose a topic");
    let ids: Vec<&str> = sections
        .iter()
        .flat_map(|s| &s.rows)
        .map(|row| row.id.as_str())
        .collect();
    assert_eq!(ids, ["quote", "visit", "fault", "invoice"]);
    server
        .eventually("the assistant's answer", |r| !r.texts().is_empty())
        .await;

    // The customer picks "Book an on-site visit" from the list.
    server
        .post(&payload(json!({
            "from": CUSTOMER, "id": "wamid.pick", "timestamp": now(),
            "context": {"from": "4930901820", "id": "wamid.test.1"},
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {
                "id": "visit", "title": "Book an on-site visit", "description": "Free of charge, about one hour"}},
        })))
        .await;
    server
        .eventually("the times to choose from", |r| r.interactive().len() == 2)
        .await;
    let times = &server.recorder.interactive()[1];
    let Choices::Buttons(buttons) = &times.choices else {
        panic!("buttons: {:?}", times.choices);
    };
    let ids: Vec<&str> = buttons.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(
        ids,
        ["visit_mornings", "visit_afternoons", "visit_saturdays"]
    );
    // The pick is not a question for the assistant: it answered once only.
    assert_eq!(server.recorder.ai_requests().len(), 1);

    // The customer taps "Saturdays": sales hears of it, the customer gets a confirmation.
    server
        .post(&payload(json!({
            "from": CUSTOMER, "id": "wamid.tap", "timestamp": now(),
            "context": {"from": "4930901820", "id": "wamid.test.3"},
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "visit_saturdays", "title": "Saturdays"}},
        })))
        .await;
    server
        .eventually("sales hears of the visit", |r| {
            r.notifications().iter().any(|(channel, message)| {
                channel == "sales"
                    && message.contains(&format!(
                        "+{CUSTOMER} would like an on-site visit (Saturdays)"
                    ))
            })
        })
        .await;
    server
        .eventually("the confirmation", |r| {
            r.texts()
                .iter()
                .any(|t| t.body.starts_with("Thank you! An advisor will call you"))
        })
        .await;
    assert_eq!(server.recorder.ai_requests().len(), 1);
}
