//! `flowc test`: runs the `test` blocks of a checked [`Program`] on virtual
//! time with the recording fakes, and compares what the flows did with what
//! the tests expect.
//!
//! Each test gets a fresh engine: recording fakes for WhatsApp, the AI,
//! notifications and logs, an in-memory store, and a [`VirtualClock`] in a
//! paused tokio runtime that starts when the test's event happens, so a
//! 7-day wait takes no real time. The flows a test runs are those of its own
//! file and, for `NAME.test.flow`, those of `NAME.flow` beside it (all flows
//! when neither has any).
//!
//! ```
//! use flowc::check::Compiler;
//!
//! let mut compiler = Compiler::new();
//! compiler.add_source("hello.flow", r#"
//! flow hello
//! on call.ended as call {
//!     delay 10m
//!     notify("team", "call {call.call_id} ended")
//! }
//!
//! test "the team hears of every call after 10 minutes" {
//!     given call.ended {
//!         customer_phone: "+4915112345678", agent_name: "Jonas", outcome: "no_answer",
//!         ended_at: "2026-12-01T10:00:00+01:00", call_id: "c-1",
//!     }
//!     expect {
//!         after 10m notify("team", "call c-1 ended")
//!         completes
//!     }
//! }
//! "#);
//! let program = compiler.check().into_result().unwrap();
//! let results = flowc::testing::run_tests(&program, None);
//! assert_eq!(results.len(), 1);
//! assert!(results[0].passed(), "{}", results[0].report());
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value as J;

use crate::check::test_defs::{ExpectedEffect, ExpectedOutcome, Fact, LaterKind};
use crate::check::{CheckedTest, Program};
use crate::providers::recording::{Effect, EffectKind, Recorder};
use crate::providers::{
    Choice, Choices, Clock, MediaSource, MemoryStore, RunOutcome, SenderStatus, Store,
    TemplateButtonParameter, TemplateHeader, TemplateParameters, VirtualClock,
};
use crate::runtime::{ActionError, Engine, Event};

/// What became of one test.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// The file the test is written in.
    pub file: String,
    /// The test's name.
    pub name: String,
    /// Where it is written, as `file:line`.
    pub location: String,
    /// `None` when it passed.
    pub failure: Option<TestFailure>,
}

impl TestResult {
    /// Whether the flows did what the test expects.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// The failure report (empty for a passed test).
    pub fn report(&self) -> String {
        self.failure
            .as_ref()
            .map(TestFailure::render)
            .unwrap_or_default()
    }
}

/// Why a test failed.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFailure {
    /// One sentence on the first difference, or on why the flows could not run.
    pub summary: String,
    /// Expected and actual effects, line by line; empty when nothing ran.
    pub diff: Vec<DiffLine>,
}

impl TestFailure {
    /// The summary, then the diff: `- expected`, `+ actual`, `  both`.
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.summary);
        if !self.diff.is_empty() {
            out.push_str("expected (-) and actual (+) effects:\n");
            for line in &self.diff {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

/// One line of a failure's diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    /// Expected and happened.
    Same(String),
    /// Expected, did not happen (as written).
    Expected(String),
    /// Happened, not expected (as it happened).
    Actual(String),
}

impl std::fmt::Display for DiffLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiffLine::Same(line) => write!(f, "  {line}"),
            DiffLine::Expected(line) => write!(f, "- {line}"),
            DiffLine::Actual(line) => write!(f, "+ {line}"),
        }
    }
}

/// Runs every test of `program` whose `file: name` contains `filter`, in
/// source order.
pub fn run_tests(program: &Program, filter: Option<&str>) -> Vec<TestResult> {
    program
        .tests()
        .iter()
        .filter(|test| filter.is_none_or(|f| full_name(test).contains(f)))
        .map(|test| run_test(program, test))
        .collect()
}

/// `file: name`, as reports show it and `--filter` matches it.
pub fn full_name(test: &CheckedTest) -> String {
    format!("{}: {}", test.file, test.name)
}

/// Runs one test of `program`.
pub fn run_test(program: &Program, test: &CheckedTest) -> TestResult {
    let (line, _) = program
        .sources()
        .get(test.span.file)
        .line_col(test.span.start as usize);
    let location = format!("{}:{}", test.file, line + 1);
    let failure = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime.block_on(execute(program, test)),
        Err(e) => Some(TestFailure {
            summary: format!("could not start the test runtime: {e}"),
            diff: Vec::new(),
        }),
    };
    TestResult {
        file: test.file.clone(),
        name: test.name.clone(),
        location,
        failure,
    }
}

/// The flows a test runs: its file's and its sibling's, else all.
fn program_for(program: &Program, test: &CheckedTest) -> Program {
    let sibling = test
        .file
        .strip_suffix(".test.flow")
        .map(|stem| format!("{stem}.flow"));
    let mut own = program.only_flows_in(&test.file);
    if let Some(sibling) = &sibling {
        own.flows.extend(program.only_flows_in(sibling).flows);
    }
    if own.flows.is_empty() {
        program.clone()
    } else {
        own
    }
}

/// A failure of the given kind, as the fakes return it.
fn scripted_error(kind: &str) -> ActionError {
    let message = "failure given by the test".to_string();
    match kind {
        "TemplateNotFound" => ActionError::TemplateNotFound {
            template: "(given by the test)".into(),
            reason: message,
        },
        "TemplateParams" => ActionError::TemplateParams {
            template: "(given by the test)".into(),
            reason: message,
        },
        "SenderOffline" => ActionError::SenderOffline {
            sender: "(given by the test)".into(),
            reason: message,
        },
        "InvalidPhone" => ActionError::InvalidPhone {
            phone: "(given by the test)".into(),
            reason: message,
        },
        "OutsideWindow" => ActionError::OutsideWindow {
            recipient: "(given by the test)".into(),
        },
        "DeliveryUnknown" => ActionError::DeliveryUnknown {
            recipient: "(given by the test)".into(),
        },
        "MessageTooLong" => ActionError::MessageTooLong {
            chars: 4097,
            max: 4096,
        },
        "RateLimited" => ActionError::RateLimited {
            message,
            retry_after_ms: None,
        },
        "QualityLimited" => ActionError::QualityLimited { message },
        "Undeliverable" => ActionError::Undeliverable { message },
        "InvalidRequest" => ActionError::InvalidRequest { message },
        "Unauthorized" => ActionError::Unauthorized { message },
        "Transient" => ActionError::Transient { message },
        "Timeout" => ActionError::Timeout { after_ms: 30_000 },
        "AiError" => ActionError::Ai { message },
        "NotifyFailed" => ActionError::NotifyFailed { message },
        "MediaError" => ActionError::Media { message },
        "InvalidDate" => ActionError::InvalidDate { message },
        other => ActionError::Custom {
            kind: other.to_string(),
            message,
        },
    }
}

fn not_run(summary: String) -> Option<TestFailure> {
    Some(TestFailure {
        summary,
        diff: Vec::new(),
    })
}

/// Runs the test; `None` when it passed.
async fn execute(program: &Program, test: &CheckedTest) -> Option<TestFailure> {
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(test.start));
    let recorder = Recorder::with_clock(clock.clone());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for fact in &test.facts {
        match fact {
            Fact::Inbound {
                customer,
                sender,
                ago_ms,
            } => {
                let ago =
                    chrono::Duration::milliseconds(i64::try_from(*ago_ms).unwrap_or(i64::MAX));
                let at = test.start.checked_sub_signed(ago).unwrap_or(test.start);
                if let Err(e) = store.record_inbound(customer, sender, at).await {
                    return not_run(format!("could not give the inbound message: {e}"));
                }
            }
            Fact::HandedOver { customer, sender } => {
                let pause = crate::providers::PausedConversation {
                    customer: customer.clone(),
                    sender: sender.clone(),
                    paused_at: test.start,
                    until: None,
                };
                if let Err(e) = store.pause_conversation(pause).await {
                    return not_run(format!("could not hand the conversation over: {e}"));
                }
            }
            Fact::SenderOffline(sender) => {
                recorder.whatsapp().set_sender_status(
                    sender,
                    SenderStatus {
                        online: false,
                        quality: "UNKNOWN".into(),
                        detail: "offline (given by the test)".into(),
                    },
                );
            }
            Fact::AiAnswer(text) => {
                recorder.ai().answer(text);
            }
            Fact::Failure { kind, action, call } => {
                let error = scripted_error(kind);
                match action.as_str() {
                    send if send.starts_with("whatsapp.send_") => {
                        recorder.whatsapp().fail_call(*call, error);
                    }
                    other if other.starts_with("whatsapp.") => {
                        recorder.whatsapp().fail_action_call(other, *call, error);
                    }
                    "ai.generate_response" => {
                        recorder.ai().fail_call(*call, error);
                    }
                    _ => {
                        recorder.notify().fail_call(*call, error);
                    }
                }
            }
        }
    }
    let program = program_for(program, test);
    // A new engine over the same store, clock and fakes: what a process
    // that starts (again) has.
    let start_engine = || {
        let engine = Engine::builder()
            .whatsapp(recorder.whatsapp())
            .ai(recorder.ai())
            .notify(recorder.notify())
            .log(recorder.log())
            .shared_clock(clock.clone())
            .shared_store(store.clone())
            .replies_start_flows(program.config().conversations.replies_start_flows)
            .build();
        engine.load(program.clone()).map(|()| engine)
    };
    let mut engine = match start_engine() {
        Ok(engine) => engine,
        Err(e) => return not_run(format!("the flows cannot run: {e}")),
    };
    let event = Event::new(test.trigger.clone(), J::Object(test.fields.clone()));
    if let Err(e) = engine.dispatch(event).await {
        return not_run(format!("the event was not accepted: {e}"));
    }
    // Each later event at its time, after what was due before it.
    for later in &test.then {
        let ms = i64::try_from(later.after_ms).unwrap_or(i64::MAX);
        let at = test
            .start
            .checked_add_signed(chrono::Duration::milliseconds(ms))
            .unwrap_or(test.start);
        if let Err(e) = run_due_until(&engine, &store, &clock, at).await {
            return not_run(format!("the runs did not go on: {e}"));
        }
        match &later.kind {
            LaterKind::Event { trigger, fields } => {
                let event = Event::new(trigger.clone(), J::Object(fields.clone()));
                if let Err(e) = engine.dispatch(event).await {
                    return not_run(format!("the later `{trigger}` event was not accepted: {e}"));
                }
            }
            LaterKind::Restart => match start_engine() {
                Ok(restarted) => engine = restarted,
                Err(e) => return not_run(format!("the flows cannot run after the restart: {e}")),
            },
        }
    }
    if let Err(e) = engine.run_until_idle().await {
        return not_run(format!("the runs did not finish: {e}"));
    }
    let outcomes: Vec<RunOutcome> = match store.run_history().await {
        Ok(history) => history.into_iter().map(|r| r.outcome).collect(),
        Err(e) => return not_run(format!("could not read how the runs ended: {e}")),
    };
    let actual = actual_effects(&recorder.effects(), test.start);
    compare(
        &test.expectations,
        &actual,
        test.outcome.as_ref(),
        &outcomes,
    )
}

/// Resumes every run due until `at`, then moves the clock to `at`.
async fn run_due_until(
    engine: &Engine,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    at: DateTime<Utc>,
) -> Result<(), crate::runtime::EngineError> {
    while let Some(wake) = store.next_wake().await? {
        if wake > at {
            break;
        }
        clock.sleep_until(wake).await;
        engine.run_due().await?;
    }
    clock.sleep_until(at).await;
    Ok(())
}

/// The recorded effects as calls. A send of a local `file` is one call, as
/// the flow wrote it: its upload (made inside the send) is folded into it.
fn actual_effects(effects: &[Effect], start: DateTime<Utc>) -> Vec<Actual> {
    let mut actual: Vec<Actual> = Vec::with_capacity(effects.len());
    let mut uploaded: Option<(&str, &str)> = None;
    for effect in effects {
        if let EffectKind::Upload { path, media_id, .. } = &effect.kind {
            uploaded = Some((media_id, path));
            actual.push(Actual::from_effect(effect, start));
            continue;
        }
        let mut call = Actual::from_effect(effect, start);
        if let (EffectKind::Media(message), Some((media_id, path))) = (&effect.kind, uploaded) {
            if message.source == MediaSource::Id(media_id.to_string()) {
                actual.pop();
                call.args.insert("media_id", J::Null);
                call.args.insert("file", J::String(path.to_string()));
            }
        }
        uploaded = None;
        actual.push(call);
    }
    actual
}

/// An effect as a call: the action and its arguments by parameter name.
#[derive(Debug, Clone)]
struct Actual {
    after_ms: u64,
    action: &'static str,
    args: BTreeMap<&'static str, J>,
    /// The order arguments are shown in.
    order: &'static [&'static str],
}

impl Actual {
    fn from_effect(effect: &Effect, start: DateTime<Utc>) -> Actual {
        let after_ms = u64::try_from((effect.at - start).num_milliseconds()).unwrap_or(0);
        let s = |text: &str| J::String(text.to_string());
        let (action, order, args): (&'static str, &'static [&'static str], Vec<(&str, J)>) =
            match &effect.kind {
                EffectKind::Template(m) => (
                    "whatsapp.send_template",
                    &[
                        "sender",
                        "template",
                        "to",
                        "name",
                        "variables",
                        "header",
                        "buttons",
                    ],
                    vec![
                        (
                            "header",
                            match &m.header {
                                None => J::Null,
                                Some(TemplateHeader::Text { text, .. }) => s(text),
                                Some(TemplateHeader::Media { source, .. }) => match source {
                                    MediaSource::Link(file) | MediaSource::Id(file) => s(file),
                                },
                            },
                        ),
                        (
                            "buttons",
                            if m.buttons.is_empty() {
                                J::Null
                            } else {
                                J::Array(
                                    m.buttons
                                        .iter()
                                        .map(|b| match &b.parameter {
                                            TemplateButtonParameter::Payload(text)
                                            | TemplateButtonParameter::UrlSuffix(text)
                                            | TemplateButtonParameter::CouponCode(text) => s(text),
                                        })
                                        .collect(),
                                )
                            },
                        ),
                        ("sender", s(&m.sender.name)),
                        ("template", s(&m.template)),
                        ("to", s(&m.to)),
                        ("name", m.recipient_name.as_deref().map_or(J::Null, s)),
                        (
                            "variables",
                            match &m.parameters {
                                TemplateParameters::Positional(values) if values.is_empty() => {
                                    J::Null
                                }
                                TemplateParameters::Positional(values) => {
                                    J::Array(values.iter().map(|v| s(v)).collect())
                                }
                                TemplateParameters::Named(pairs) => J::Object(
                                    pairs.iter().map(|(k, v)| (k.clone(), s(v))).collect(),
                                ),
                            },
                        ),
                    ],
                ),
                EffectKind::Text(m) => (
                    "whatsapp.send_text",
                    &["sender", "to", "message"],
                    vec![
                        ("sender", s(&m.sender.name)),
                        ("to", s(&m.to)),
                        ("message", s(&m.body)),
                    ],
                ),
                EffectKind::Ai(r) => (
                    "ai.generate_response",
                    &["assistant", "customer", "message", "variables"],
                    vec![
                        ("assistant", s(&r.assistant)),
                        ("customer", s(&r.customer)),
                        ("message", s(&r.message)),
                        (
                            "variables",
                            if r.variables.is_empty() {
                                J::Null
                            } else {
                                J::Object(
                                    r.variables.iter().map(|(k, v)| (k.clone(), s(v))).collect(),
                                )
                            },
                        ),
                    ],
                ),
                EffectKind::Interactive(m) => {
                    let opt = |text: &Option<String>| text.as_deref().map_or(J::Null, s);
                    let choice = |c: &Choice| {
                        let mut fields = serde_json::Map::new();
                        fields.insert("id".into(), s(&c.id));
                        fields.insert("title".into(), s(&c.title));
                        if let Some(description) = &c.description {
                            fields.insert("description".into(), s(description));
                        }
                        J::Object(fields)
                    };
                    let mut args = vec![
                        ("sender", s(&m.sender.name)),
                        ("to", s(&m.to)),
                        ("body", s(&m.body)),
                        ("header", opt(&m.header)),
                        ("footer", opt(&m.footer)),
                    ];
                    match &m.choices {
                        Choices::Buttons(buttons) => {
                            args.push(("buttons", J::Array(buttons.iter().map(choice).collect())));
                            (
                                "whatsapp.send_buttons",
                                &["sender", "to", "body", "buttons", "header", "footer"],
                                args,
                            )
                        }
                        Choices::List { button, sections } => {
                            args.push(("button", s(button)));
                            let sections = sections
                                .iter()
                                .map(|section| {
                                    let mut fields = serde_json::Map::new();
                                    if let Some(title) = &section.title {
                                        fields.insert("title".into(), s(title));
                                    }
                                    fields.insert(
                                        "rows".into(),
                                        J::Array(section.rows.iter().map(choice).collect()),
                                    );
                                    J::Object(fields)
                                })
                                .collect();
                            args.push(("sections", J::Array(sections)));
                            (
                                "whatsapp.send_list",
                                &[
                                    "sender", "to", "body", "button", "sections", "header",
                                    "footer",
                                ],
                                args,
                            )
                        }
                    }
                }
                EffectKind::Media(m) => {
                    let (link, media_id) = match &m.source {
                        MediaSource::Link(link) => (s(link), J::Null),
                        MediaSource::Id(id) => (J::Null, s(id)),
                    };
                    (
                        m.kind.send_action(),
                        &[
                            "sender", "to", "link", "media_id", "file", "caption", "filename",
                        ],
                        vec![
                            ("sender", s(&m.sender.name)),
                            ("to", s(&m.to)),
                            ("link", link),
                            ("media_id", media_id),
                            ("caption", m.caption.as_deref().map_or(J::Null, s)),
                            ("filename", m.filename.as_deref().map_or(J::Null, s)),
                        ],
                    )
                }
                EffectKind::Upload {
                    sender,
                    path,
                    mime_type,
                    ..
                } => (
                    "whatsapp.upload_media",
                    &["sender", "file", "mime_type"],
                    vec![
                        ("sender", s(sender)),
                        ("file", s(path)),
                        ("mime_type", s(mime_type)),
                    ],
                ),
                EffectKind::Download {
                    sender, media_id, ..
                } => (
                    "whatsapp.download_media",
                    &["sender", "media_id"],
                    vec![("sender", s(sender)), ("media_id", s(media_id))],
                ),
                EffectKind::Read(receipt) => (
                    "whatsapp.mark_read",
                    &["sender", "message_id", "typing"],
                    vec![
                        ("sender", s(&receipt.sender.name)),
                        ("message_id", s(&receipt.message_id)),
                        ("typing", J::Bool(receipt.typing)),
                    ],
                ),
                EffectKind::Notify { channel, message } => (
                    "notify",
                    &["channel", "message"],
                    vec![("channel", s(channel)), ("message", s(message))],
                ),
                EffectKind::Log { level, message, .. } => (
                    "log",
                    &["message", "level"],
                    vec![("message", s(message)), ("level", s(level))],
                ),
            };
        let args = args
            .into_iter()
            .filter_map(|(name, value)| order.iter().find(|n| **n == name).map(|n| (*n, value)))
            .collect();
        Actual {
            after_ms,
            action,
            args,
            order,
        }
    }

    fn matches(&self, expected: &ExpectedEffect) -> bool {
        self.action == expected.action
            && expected.after_ms.is_none_or(|ms| ms == self.after_ms)
            && expected
                .args
                .iter()
                .all(|(name, value)| self.args.get(name.as_str()).unwrap_or(&J::Null) == value)
    }

    /// As a line: with the arguments `like` wrote when it is the same action
    /// (then `...` when there are more), else every argument that is set.
    fn render(&self, like: Option<&ExpectedEffect>) -> String {
        let same = like.filter(|e| e.action == self.action);
        let mut parts: Vec<String> = Vec::new();
        let mut more = false;
        match same {
            Some(expected) => {
                for (name, _) in &expected.args {
                    let value = self.args.get(name.as_str()).unwrap_or(&J::Null);
                    parts.push(format!("{name}: {}", render_value(value)));
                }
                more = self
                    .args
                    .iter()
                    .any(|(n, v)| !v.is_null() && !expected.args.iter().any(|(e, _)| e == n));
            }
            None => {
                for name in self.order {
                    if let Some(value) = self.args.get(name).filter(|v| !v.is_null()) {
                        parts.push(format!("{name}: {}", render_value(value)));
                    }
                }
            }
        }
        if more {
            parts.push("...".into());
        }
        let after = if self.after_ms > 0 || like.is_some_and(|e| e.after_ms.is_some()) {
            format!("after {} ", crate::duration::format(self.after_ms))
        } else {
            String::new()
        };
        format!("{after}{}({})", self.action, parts.join(", "))
    }
}

/// An expectation as written.
fn render_expected(expected: &ExpectedEffect) -> String {
    let after = expected
        .after_ms
        .map(|ms| format!("after {} ", crate::duration::format(ms)))
        .unwrap_or_default();
    let args: Vec<String> = expected
        .args
        .iter()
        .map(|(name, value)| format!("{name}: {}", render_value(value)))
        .collect();
    format!("{after}{}({})", expected.action, args.join(", "))
}

/// A value in flow syntax.
fn render_value(value: &J) -> String {
    match value {
        J::Null => "none".into(),
        J::String(s) => format!("{s:?}"),
        J::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(render_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        J::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{k}: {}", render_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn render_outcome(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Completed => "completes".into(),
        RunOutcome::Stopped => "stops".into(),
        RunOutcome::Failed { kind, message } => format!("fails {kind} ({message})"),
    }
}

fn outcome_matches(expected: Option<&ExpectedOutcome>, actual: &RunOutcome) -> bool {
    match (expected, actual) {
        (None, RunOutcome::Failed { .. }) => false,
        (None, _) => true,
        (Some(ExpectedOutcome::Completes), RunOutcome::Completed) => true,
        (Some(ExpectedOutcome::Stops), RunOutcome::Stopped) => true,
        (Some(ExpectedOutcome::Fails(kind)), RunOutcome::Failed { kind: actual, .. }) => {
            kind == actual
        }
        _ => false,
    }
}

/// Why the first differing pair differs, in one sentence.
fn why(index: usize, expected: Option<&ExpectedEffect>, actual: Option<&Actual>) -> String {
    let n = index + 1;
    match (expected, actual) {
        (Some(e), Some(a)) if e.action != a.action => format!(
            "effect {n}: expected `{}`, but the flow called `{}`",
            e.action, a.action
        ),
        (Some(e), Some(a)) => {
            if let Some((name, value)) = e
                .args
                .iter()
                .find(|(name, value)| a.args.get(name.as_str()).unwrap_or(&J::Null) != value)
            {
                let got = a.args.get(name.as_str()).unwrap_or(&J::Null);
                format!(
                    "effect {n} ({}): `{name}` is {}, expected {}",
                    e.action,
                    render_value(got),
                    render_value(value)
                )
            } else {
                format!(
                    "effect {n} ({}): happened after {}, expected after {}",
                    e.action,
                    crate::duration::format(a.after_ms),
                    e.after_ms
                        .map_or("any time".into(), crate::duration::format)
                )
            }
        }
        (Some(e), None) => format!("effect {n}: expected `{}`, but it did not happen", e.action),
        (None, Some(a)) => format!(
            "effect {n}: `{}` happened, but the test does not expect it",
            a.action
        ),
        (None, None) => format!("effect {n} differs"),
    }
}

/// Compares in order; `None` when everything matches.
fn compare(
    expected: &[ExpectedEffect],
    actual: &[Actual],
    outcome: Option<&ExpectedOutcome>,
    outcomes: &[RunOutcome],
) -> Option<TestFailure> {
    // Longest common subsequence of matching effects, so one missing or
    // extra effect does not make every later line a difference.
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if actual[j].matches(&expected[i]) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    enum Op {
        Same(usize),
        Missing(usize),
        Extra(usize),
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && actual[j].matches(&expected[i]) && lcs[i][j] == lcs[i + 1][j + 1] + 1 {
            ops.push(Op::Same(i));
            i += 1;
            j += 1;
        } else if i < n && (j >= m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(Op::Missing(i));
            i += 1;
        } else {
            ops.push(Op::Extra(j));
            j += 1;
        }
    }
    let mut diff = Vec::new();
    let mut first: Option<String> = None;
    let mut k = 0;
    while k < ops.len() {
        if let Op::Same(i) = ops[k] {
            diff.push(DiffLine::Same(render_expected(&expected[i])));
            k += 1;
            continue;
        }
        // A hunk: the expected and actual lines up to the next match.
        let mut missing = Vec::new();
        let mut extra = Vec::new();
        while k < ops.len() {
            match ops[k] {
                Op::Same(_) => break,
                Op::Missing(i) => missing.push(&expected[i]),
                Op::Extra(j) => extra.push((j, &actual[j])),
            }
            k += 1;
        }
        if first.is_none() {
            let index = extra.first().map_or(k, |(j, _)| *j);
            let index = match ops.get(k.saturating_sub(missing.len() + extra.len())) {
                Some(Op::Missing(i)) if extra.is_empty() => *i,
                _ => index,
            };
            first = Some(why(
                index,
                missing.first().copied(),
                extra.first().map(|(_, a)| *a),
            ));
        }
        for e in &missing {
            diff.push(DiffLine::Expected(render_expected(e)));
        }
        for (pos, (_, a)) in extra.iter().enumerate() {
            diff.push(DiffLine::Actual(a.render(missing.get(pos).copied())));
        }
    }
    let outcome_ok = match outcome {
        Some(ExpectedOutcome::NothingRuns) => outcomes.is_empty(),
        _ => !outcomes.is_empty() && outcomes.iter().all(|o| outcome_matches(outcome, o)),
    };
    let expected_outcome = match outcome {
        None => "(completes or stops)".to_string(),
        Some(ExpectedOutcome::Completes) => "completes".into(),
        Some(ExpectedOutcome::Stops) => "stops".into(),
        Some(ExpectedOutcome::Fails(kind)) => format!("fails {kind}"),
        Some(ExpectedOutcome::NothingRuns) => "nothing runs".into(),
    };
    if outcome_ok {
        if outcome.is_some() {
            diff.push(DiffLine::Same(expected_outcome));
        }
    } else {
        diff.push(DiffLine::Expected(expected_outcome.clone()));
        let actual_outcome = if outcomes.is_empty() {
            "(no flow ran)".to_string()
        } else {
            outcomes
                .iter()
                .map(render_outcome)
                .collect::<Vec<_>>()
                .join("; ")
        };
        diff.push(DiffLine::Actual(actual_outcome.clone()));
        if first.is_none() {
            first = Some(format!(
                "the run should end with `{expected_outcome}`, but it {}",
                actual_outcome
                    .replace("completes", "completed")
                    .replace("stops", "stopped")
                    .replace("fails", "failed with")
            ));
        }
    }
    first.map(|summary| TestFailure {
        summary: format!("first difference: {summary}"),
        diff,
    })
}
