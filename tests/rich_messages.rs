//! Rich messages at run time: reply buttons and lists, media by link and by
//! local file, downloads and read receipts, run through `Engine::dispatch`
//! against the recording fakes on virtual time.
//!
//! Values a flow computes are checked before any provider call: a message
//! the Cloud API would refuse fails with a clear error and nothing is sent.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use flowc::check::{Compiler, Program};
use flowc::providers::recording::Recorder;
use flowc::providers::{
    Choice, Choices, Clock, MediaSource, MemoryStore, RunOutcome, Store, VirtualClock,
};
use flowc::runtime::{Engine, Event};
use serde_json::json;

const CONFIG: &str = include_str!("../examples/flow.toml");

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .expect("a valid instant")
}

/// A flow answering `whatsapp.message_received` with `body`, checked with
/// the examples' flow.toml.
fn program(body: &str) -> Program {
    let source = format!("flow rich\n\non whatsapp.message_received as msg {{\n{body}\n}}\n");
    let mut compiler = Compiler::new();
    compiler.add_source("rich.flow", &source);
    compiler.add_config("flow.toml", CONFIG);
    compiler
        .check()
        .into_result()
        .unwrap_or_else(|e| panic!("the flow does not check:\n{e}\n{source}"))
}

/// A message from +4917612345678 to berlin-office, written `ago` before the
/// start, with `text`.
fn message(text: &str, ago: chrono::Duration) -> Event {
    Event::new(
        "whatsapp.message_received",
        json!({
            "phone": "+4917612345678",
            "text": text,
            "sender_id": "berlin-office",
            "timestamp": (start() - ago).to_rfc3339(),
            "conversation_id": "conv-1",
            "message_id": "wamid.in.1",
            "kind": "text",
        }),
    )
}

struct Run {
    recorder: Recorder,
    outcomes: Vec<RunOutcome>,
    media_dir: tempfile::TempDir,
}

/// Runs `body` for one message and returns what happened.
async fn run(body: &str, event: Event, prepare: impl FnOnce(&Recorder)) -> Run {
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(start()));
    let recorder = Recorder::with_clock(clock.clone());
    prepare(&recorder);
    let store = Arc::new(MemoryStore::new());
    let media_dir = tempfile::tempdir().expect("a temporary directory");
    let engine = Engine::builder()
        .whatsapp(recorder.whatsapp())
        .notify(recorder.notify())
        .log(recorder.log())
        .shared_clock(clock)
        .shared_store(store.clone())
        .media_dir(media_dir.path().join("media"))
        .build();
    engine.load(program(body)).expect("builtin actions only");
    engine.dispatch(event).await.expect("dispatch");
    engine.run_until_idle().await.expect("run until idle");
    let outcomes = store
        .run_history()
        .await
        .expect("history")
        .into_iter()
        .map(|record| record.outcome)
        .collect();
    Run {
        recorder,
        outcomes,
        media_dir,
    }
}

fn failed_with(run: &Run, kind: &str, words: &str) {
    match run.outcomes.as_slice() {
        [RunOutcome::Failed {
            kind: actual,
            message,
        }] => {
            assert_eq!(actual, kind, "{message}");
            assert!(message.contains(words), "{message:?} should say {words:?}");
        }
        other => panic!("expected one run failing with {kind}, got {other:?}"),
    }
}

fn choice(id: &str, title: &str, description: Option<&str>) -> Choice {
    Choice {
        id: id.into(),
        title: title.into(),
        description: description.map(String::from),
    }
}

#[tokio::test(start_paused = true)]
async fn buttons_and_lists_go_out_with_every_part() {
    let run = run(
        r#"
    whatsapp.send_buttons(
        sender: msg.sender_id, to: msg.phone, header: "Your visit",
        body: "Shall we confirm Tuesday 10:30?", footer: "Nordlicht Solar",
        buttons: [{ id: "confirm", title: "Yes, confirm" }, { id: "reschedule", title: "Another time" }],
    )
    whatsapp.send_list(
        sender: msg.sender_id, to: msg.phone, body: "Which plan?", button: "Choose a plan",
        sections: [
            { title: "Plans", rows: [{ id: "basic", title: "Basic", description: "19 EUR / month" }] },
            { title: "Other", rows: [{ id: "call", title: "Call me" }] },
        ],
    )
"#,
        message("hi", chrono::Duration::minutes(1)),
        |_| {},
    )
    .await;
    assert_eq!(run.outcomes, [RunOutcome::Completed]);
    let sent = run.recorder.interactive();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].header.as_deref(), Some("Your visit"));
    assert_eq!(sent[0].footer.as_deref(), Some("Nordlicht Solar"));
    assert_eq!(
        sent[0].choices,
        Choices::Buttons(vec![
            choice("confirm", "Yes, confirm", None),
            choice("reschedule", "Another time", None)
        ])
    );
    let Choices::List { button, sections } = &sent[1].choices else {
        panic!("a list: {:?}", sent[1].choices);
    };
    assert_eq!(button, "Choose a plan");
    assert_eq!(sections[0].title.as_deref(), Some("Plans"));
    assert_eq!(
        sections[0].rows,
        [choice("basic", "Basic", Some("19 EUR / month"))]
    );
    assert_eq!(sections[1].rows, [choice("call", "Call me", None)]);
}

#[tokio::test(start_paused = true)]
async fn computed_duplicate_ids_fail_before_anything_is_sent() {
    let run = run(
        r#"
    whatsapp.send_buttons(
        sender: msg.sender_id, to: msg.phone, body: "Pick one",
        buttons: [{ id: msg.text, title: "A" }, { id: msg.text, title: "B" }],
    )
"#,
        message("same", chrono::Duration::minutes(1)),
        |_| {},
    )
    .await;
    failed_with(
        &run,
        "InvalidRequest",
        "buttons[1].id: `id` \"same\" appears twice",
    );
    assert!(run.recorder.interactive().is_empty());
}

#[tokio::test(start_paused = true)]
async fn rich_messages_need_the_customers_window() {
    let run = run(
        r#"
    whatsapp.send_image(sender: msg.sender_id, to: msg.phone, link: "https://example.com/roof.jpg")
"#,
        // The customer wrote two days ago: the window has closed.
        message("hi", chrono::Duration::days(2)),
        |_| {},
    )
    .await;
    failed_with(&run, "OutsideWindow", "+4917612345678");
    assert!(run.recorder.media().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_computed_link_of_the_wrong_type_is_a_media_error() {
    let run = run(
        r#"
    whatsapp.send_image(sender: msg.sender_id, to: msg.phone, link: msg.text)
"#,
        message(
            "https://example.com/invoice.pdf",
            chrono::Duration::minutes(1),
        ),
        |_| {},
    )
    .await;
    failed_with(&run, "MediaError", "cannot be sent as an image");
}

#[tokio::test(start_paused = true)]
async fn a_local_file_is_uploaded_then_sent_by_its_id() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let invoice = dir.path().join("invoice-1234.pdf");
    std::fs::write(&invoice, b"%PDF-1.7 invoice").expect("write the invoice");
    let body = format!(
        r#"
    whatsapp.send_document(
        sender: msg.sender_id, to: msg.phone, file: "{}",
        filename: "Invoice 1234.pdf", caption: "Your invoice",
    )
"#,
        invoice.display()
    );
    let run = run(&body, message("hi", chrono::Duration::minutes(1)), |_| {}).await;
    assert_eq!(run.outcomes, [RunOutcome::Completed]);
    let transcript = run.recorder.transcript();
    assert!(
        transcript.contains("whatsapp.upload_media for berlin-office")
            && transcript.contains("(application/pdf, 16 bytes) as media.test.1"),
        "{transcript}"
    );
    let sent = run.recorder.media();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].source, MediaSource::Id("media.test.1".into()));
    assert_eq!(sent[0].filename.as_deref(), Some("Invoice 1234.pdf"));
    assert_eq!(sent[0].caption.as_deref(), Some("Your invoice"));
}

#[tokio::test(start_paused = true)]
async fn a_missing_local_file_fails_the_send_and_sends_nothing() {
    let run = run(
        r#"
    whatsapp.send_document(sender: msg.sender_id, to: msg.phone, file: "/nonexistent/invoice.pdf")
"#,
        message("hi", chrono::Duration::minutes(1)),
        |_| {},
    )
    .await;
    failed_with(
        &run,
        "MediaError",
        "cannot read the file \"/nonexistent/invoice.pdf\"",
    );
    assert!(run.recorder.media().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_download_is_saved_whole_with_its_checksum() {
    let photo = b"\xff\xd8\xff\xe0 a roof photo".to_vec();
    let run = run(
        r#"
    let photo = whatsapp.download_media(sender: msg.sender_id, media_id: "1234567890")
    log("{photo.path} {photo.mime_type} {photo.bytes} {photo.sha256}")
"#,
        message("here is my roof", chrono::Duration::minutes(1)),
        |recorder| {
            recorder
                .whatsapp()
                .set_media("1234567890", "image/jpeg", photo.clone());
        },
    )
    .await;
    assert_eq!(run.outcomes, [RunOutcome::Completed]);
    let saved = run.media_dir.path().join("media").join("1234567890.jpg");
    assert_eq!(std::fs::read(&saved).expect("the saved photo"), photo);
    let logs = run.recorder.logs();
    let line = &logs[0].2;
    assert!(
        line.starts_with(&format!("{} image/jpeg {} ", saved.display(), photo.len())),
        "{line}"
    );
    let sha = line.rsplit(' ').next().unwrap_or_default();
    assert_eq!(sha.len(), 64, "{line}");
}

#[tokio::test(start_paused = true)]
async fn a_download_over_the_limit_fails_and_saves_nothing() {
    let run = run(
        r#"
    whatsapp.download_media(sender: msg.sender_id, media_id: "big", max_bytes: 10)
"#,
        message("a video", chrono::Duration::minutes(1)),
        |recorder| {
            recorder
                .whatsapp()
                .set_media("big", "video/mp4", vec![0; 4096]);
        },
    )
    .await;
    failed_with(&run, "MediaError", "4 KB");
    assert!(!run.media_dir.path().join("media").exists());
}

#[tokio::test(start_paused = true)]
async fn read_receipts_show_typing_when_asked() {
    let run = run(
        r#"
    whatsapp.mark_read(sender: msg.sender_id, message_id: msg.message_id, typing: true)
    whatsapp.mark_read(sender: msg.sender_id, message_id: msg.message_id)
"#,
        message("hi", chrono::Duration::minutes(1)),
        |_| {},
    )
    .await;
    assert_eq!(run.outcomes, [RunOutcome::Completed]);
    let transcript = run.recorder.transcript();
    assert!(
        transcript.contains("whatsapp.mark_read for berlin-office: wamid.in.1 (typing)\n")
            && transcript.ends_with("whatsapp.mark_read for berlin-office: wamid.in.1\n"),
        "{transcript}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_login_code_goes_out_with_its_copy_code_button() {
    use flowc::providers::{TemplateButton, TemplateButtonParameter};
    let send = |code: &str| {
        format!(
            "    let code = \"{code}\" ?? \"\"\n    whatsapp.send_template(sender: \"berlin-office\", template: \"login_code\", to: msg.phone, variables: [code], buttons: [code])"
        )
    };
    let sent = run(
        &send("482193"),
        message("login", chrono::Duration::zero()),
        |_| {},
    )
    .await;
    assert_eq!(sent.outcomes, vec![RunOutcome::Completed]);
    let templates = sent.recorder.templates();
    assert_eq!(
        templates[0].buttons,
        vec![TemplateButton {
            index: 0,
            parameter: TemplateButtonParameter::UrlSuffix("482193".into()),
        }]
    );

    // A computed code longer than a copy-code button copies: nothing is sent.
    let long = run(
        &send("4821934821934821"),
        message("login", chrono::Duration::zero()),
        |_| {},
    )
    .await;
    failed_with(
        &long,
        "TemplateParams",
        "a copy-code button copies at most 15",
    );
    assert!(long.recorder.templates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn computed_values_get_the_declared_limits() {
    let title = run(
        r#"
    whatsapp.send_buttons(
        sender: msg.sender_id, to: msg.phone, body: "Pick one",
        buttons: [{ id: "a", title: msg.text }],
    )
"#,
        message(
            "a title far too long for a button",
            chrono::Duration::minutes(1),
        ),
        |_| {},
    )
    .await;
    failed_with(
        &title,
        "InvalidRequest",
        "buttons[0].title: 33 characters, more than the 20 allowed",
    );
    assert!(title.recorder.interactive().is_empty());

    let caption = run(
        r#"
    whatsapp.send_image(sender: msg.sender_id, to: msg.phone, link: "https://example.com/a.jpg", caption: msg.text)
"#,
        message(&"x".repeat(1025), chrono::Duration::minutes(1)),
        |_| {},
    )
    .await;
    failed_with(&caption, "MessageTooLong", "1025");
}
