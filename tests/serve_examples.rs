//! The example project behind the real server: signed webhook payloads, as
//! WhatsApp sends them, go over loopback HTTP into `flowc serve`'s service
//! with the examples' flows and flow.toml, and a real SQLite file.
//!
//! A new customer gets the welcome menu (a list); their pick arrives as an
//! interactive `list_reply` and `menu_choice` branches on it; a button tap
//! of the follow-up question arrives as a `button_reply`.

use std::path::Path;
use std::sync::Arc;

use flowc::providers::sqlite::SqliteStore;
use flowc::providers::{Choices, Store};
use serde_json::{json, Value};

mod common;

use common::{Server, SECRET};
const CUSTOMER: &str = "4916098765432";

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
    let media = dir.path().join("media");
    common::start(
        dir,
        store,
        example_program(),
        |builder, recorder| {
            builder
                .ai(recorder.ai())
                .notify(recorder.notify())
                .media_dir(media)
        },
        |_| {},
    )
    .await
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

/// Posts a signed webhook; WhatsApp's delivery must be accepted.
async fn post(server: &Server, body: &Value) {
    assert_eq!(server.post_webhook(body, SECRET).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pick_from_the_welcome_list_is_branched_on() {
    let server = start().await;

    // A new customer writes: the welcome menu goes out as a list, and the
    // assistant answers the question itself.
    post(
        &server,
        &payload(json!({
            "from": CUSTOMER, "id": "wamid.first", "timestamp": now(),
            "type": "text", "text": {"body": "Hello! Do you install on flat roofs?"},
        })),
    )
    .await;
    server
        .eventually("the welcome list", |s| !s.recorder.interactive().is_empty())
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
        .eventually("the assistant's answer", |s| !s.recorder.texts().is_empty())
        .await;

    // The customer picks "Book an on-site visit" from the list.
    post(
        &server,
        &payload(json!({
            "from": CUSTOMER, "id": "wamid.pick", "timestamp": now(),
            "context": {"from": "4930901820", "id": "wamid.test.1"},
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {
                "id": "visit", "title": "Book an on-site visit", "description": "Free of charge, about one hour"}},
        })),
    )
    .await;
    server
        .eventually("the times to choose from", |s| {
            s.recorder.interactive().len() == 2
        })
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
    post(
        &server,
        &payload(json!({
            "from": CUSTOMER, "id": "wamid.tap", "timestamp": now(),
            "context": {"from": "4930901820", "id": "wamid.test.3"},
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "visit_saturdays", "title": "Saturdays"}},
        })),
    )
    .await;
    server
        .eventually("sales hears of the visit", |s| {
            s.recorder.notifications().iter().any(|(channel, message)| {
                channel == "sales"
                    && message.contains(&format!(
                        "+{CUSTOMER} would like an on-site visit (Saturdays)"
                    ))
            })
        })
        .await;
    server
        .eventually("the confirmation", |s| {
            s.recorder
                .texts()
                .iter()
                .any(|t| t.body.starts_with("Thank you! An advisor will call you"))
        })
        .await;
    assert_eq!(server.recorder.ai_requests().len(), 1);
}
