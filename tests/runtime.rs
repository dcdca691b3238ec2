//! The interpreter's acceptance tests: flows run through `Engine::dispatch`
//! against the recording fakes, in a paused tokio runtime with a virtual
//! clock, so every send is asserted with its exact content and its exact
//! (virtual) time.
//!
//! - the example flows, every branch and error path;
//! - the 24-hour window at run time;
//! - retries after rate limits, the default retry, and what happens after;
//! - catch semantics;
//! - runs as data: suspend in one engine, resume in another;
//! - pacing of 10,000 sends;
//! - bad input: events, providers that panic or hang, the step budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use flowc::check::{Compiler, Program};
use flowc::providers::recording::{EffectKind, Recorder};
use flowc::providers::{
    Clock, MemoryStore, RunOutcome, SenderRef, SenderStatus, SentMessage, Store, StoredRun,
    TemplateMessage, TemplateParameters, TextMessage, VirtualClock, WhatsApp,
};
use flowc::runtime::{
    ActionError, Engine, EngineBuilder, EngineError, EngineLimits, Event, EventError, Observer,
    RunEvent, RunStatus, Value,
};
use serde_json::json;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

const CONFIG: &str = include_str!("../examples/flow.toml");

const CALL_FOLLOW_UP: &str = include_str!("../examples/call_follow_up.flow");
const LEAD_QUALIFICATION: &str = include_str!("../examples/lead_qualification.flow");
const APPOINTMENT_REMINDER: &str = include_str!("../examples/appointment_reminder.flow");
const WELCOME: &str = include_str!("../examples/welcome_new_conversation.flow");
const MESSAGE_LOG: &str = include_str!("../examples/message_log.flow");

const CALL_ENDED: &str = include_str!("../examples/events/call_ended.json");
const MESSAGE_RECEIVED: &str = include_str!("../examples/events/message_received.json");
const MESSAGE_RECEIVED_URGENT: &str =
    include_str!("../examples/events/message_received_urgent.json");
const CONVERSATION_STARTED: &str = include_str!("../examples/events/conversation_started.json");
const APPOINTMENT_BOOKED: &str = include_str!("../examples/events/appointment_booked.json");

/// An RFC 3339 instant.
fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// Checks `source` with the standard declarations and `examples/flow.toml`;
/// panics with the rendered diagnostics when it has errors.
fn compile(name: &str, source: &str) -> Program {
    let mut compiler = Compiler::new();
    compiler.add_source(name, source);
    compiler.add_config("flow.toml", CONFIG);
    compiler
        .check()
        .into_result()
        .unwrap_or_else(|e| panic!("{name} does not check:\n{e}"))
}

/// An engine on the recording fakes with a virtual clock starting at
/// `start`. Must be called inside the (paused) runtime.
struct Harness {
    engine: Engine,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
}

impl Harness {
    fn new(program: Program, start: DateTime<Utc>) -> Harness {
        Harness::with(program, start, |builder| builder)
    }

    /// Like [`Harness::new`], with more settings on the builder.
    fn with(
        program: Program,
        start: DateTime<Utc>,
        configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Harness {
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(start));
        let recorder = Recorder::with_clock(clock.clone());
        let builder = Engine::builder()
            .whatsapp(recorder.whatsapp())
            .ai(recorder.ai())
            .notify(recorder.notify())
            .log(recorder.log())
            .shared_clock(clock.clone());
        let engine = configure(builder).build();
        engine
            .load(program)
            .expect("every action the flows call is implemented");
        Harness {
            engine,
            recorder,
            clock,
        }
    }

    /// Dispatches the event and runs until no run waits any more.
    async fn run(&self, event: Event) {
        self.engine.dispatch(event).await.expect("dispatch");
        self.engine.run_until_idle().await.expect("run until idle");
    }

    /// The recorder's effects, one line each.
    fn transcript(&self) -> Vec<String> {
        self.recorder
            .transcript()
            .lines()
            .map(String::from)
            .collect()
    }

    /// How every run ended, oldest first.
    async fn outcomes(&self) -> Vec<RunOutcome> {
        self.engine
            .store()
            .run_history()
            .await
            .expect("history")
            .into_iter()
            .map(|r| r.outcome)
            .collect()
    }

    /// When each WhatsApp send was tried, failed ones included.
    fn send_attempt_times(&self) -> Vec<DateTime<Utc>> {
        self.recorder
            .whatsapp()
            .attempts()
            .iter()
            .map(|a| a.at)
            .collect()
    }
}

/// An example event with some fields replaced; `null` removes a field.
fn event(json: &str, changes: serde_json::Value) -> Event {
    let mut event = Event::from_json(json).expect("example event parses");
    for (name, value) in changes.as_object().expect("an object of changes") {
        if value.is_null() {
            event.fields.remove(name);
        } else {
            event.fields.insert(name.clone(), value.clone());
        }
    }
    event
}

fn failed(kind: &str, message: &str) -> RunOutcome {
    RunOutcome::Failed {
        kind: kind.into(),
        message: message.into(),
    }
}

fn transient(message: &str) -> ActionError {
    ActionError::Transient {
        message: message.into(),
    }
}

fn berlin_office() -> SenderRef {
    SenderRef {
        name: "berlin-office".into(),
        phone_number_id: "106540352242922".into(),
    }
}

// ---------------------------------------------------------------------------
// call_follow_up
// ---------------------------------------------------------------------------

/// When the example call ended: the clock starts here.
fn call_ended_at() -> DateTime<Utc> {
    t("2026-11-26T14:42:10+01:00")
}

async fn call_follow_up(changes: serde_json::Value) -> Harness {
    let h = Harness::new(
        compile("call_follow_up.flow", CALL_FOLLOW_UP),
        call_ended_at(),
    );
    h.run(event(CALL_ENDED, changes)).await;
    h
}

#[tokio::test(start_paused = true)]
async fn call_follow_up_confirms_a_booked_appointment_ten_minutes_later() {
    let h = call_follow_up(json!({})).await;
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:52:10Z whatsapp.send_template appointment_confirmed (de) from berlin-office to +4915112345678: \
          [\"Anna Schmidt\", \"Jonas Becker\", \"03.12.2026 10:30\", \"Berlin Mitte showroom, Friedrichstraße 68\"]"]
    );
    assert_eq!(
        h.recorder.templates(),
        [TemplateMessage {
            sender: berlin_office(),
            to: "+4915112345678".into(),
            recipient_name: Some("Anna Schmidt".into()),
            template: "appointment_confirmed".into(),
            language: "de".into(),
            parameters: TemplateParameters::Positional(vec![
                "Anna Schmidt".into(),
                "Jonas Becker".into(),
                "03.12.2026 10:30".into(),
                "Berlin Mitte showroom, Friedrichstraße 68".into(),
            ]),
            header: None,
            buttons: Vec::new(),
            body: Some(
                "Hello {{1}}, your appointment with {{2}} on {{3}} is confirmed.\nLocation: {{4}}"
                    .into()
            ),
        }]
    );
    assert_eq!(
        h.recorder.templates()[0].preview().as_deref(),
        Some(
            "Hello Anna Schmidt, your appointment with Jonas Becker on 03.12.2026 10:30 is confirmed.\n\
             Location: Berlin Mitte showroom, Friedrichstraße 68"
        )
    );
    assert_eq!(
        h.recorder.effects()[0].at,
        call_ended_at() + Duration::minutes(10)
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
    let sent = h.engine.store().sent_log().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].template.as_deref(), Some("appointment_confirmed"));
    assert_eq!(sent[0].message_id, "wamid.test.1");
}

#[tokio::test(start_paused = true)]
async fn call_follow_up_asks_a_person_when_appointment_details_are_missing() {
    for missing in ["customer_name", "appointment_date", "location"] {
        let h = call_follow_up(json!({ missing: null })).await;
        assert_eq!(
            h.transcript(),
            ["2026-11-26T13:52:10Z notify team: \"Call call_8f3a2c91 booked an appointment with \
              +4915112345678, but name, date or location is missing. Please confirm the \
              appointment by hand.\""],
            "without {missing}"
        );
        assert!(h.recorder.templates().is_empty());
        assert_eq!(
            h.outcomes().await,
            [RunOutcome::Stopped],
            "without {missing}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn call_follow_up_sends_missed_you_without_variables() {
    let h = call_follow_up(json!({
        "outcome": "no_answer", "customer_name": null, "appointment_date": null,
        "location": null, "duration": null,
    }))
    .await;
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:52:10Z whatsapp.send_template missed_you (en) from berlin-office to +4915112345678"]
    );
    let sent = &h.recorder.templates()[0];
    assert_eq!(sent.parameters, TemplateParameters::Positional(vec![]));
    assert_eq!(sent.recipient_name, None);
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn call_follow_up_schedules_a_callback_with_the_agent_name() {
    let h = call_follow_up(json!({ "outcome": "callback_requested" })).await;
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:52:10Z whatsapp.send_template callback_scheduled (en) from berlin-office to +4915112345678: [\"Jonas Becker\"]"]
    );
    assert_eq!(
        h.recorder.templates()[0].preview().as_deref(),
        Some("Thanks for your call! Jonas Becker will call you back as requested. If you'd like to suggest a time, just reply to this message.")
    );
    assert_eq!(
        h.recorder.templates()[0].recipient_name.as_deref(),
        Some("Anna Schmidt")
    );
}

#[tokio::test(start_paused = true)]
async fn call_follow_up_sends_nothing_to_the_not_interested_and_unknown_outcomes() {
    let h = call_follow_up(json!({ "outcome": "not_interested" })).await;
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:52:10Z log info call_follow_up: \"call call_8f3a2c91: not interested, no follow-up\""]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);

    let h = call_follow_up(json!({ "outcome": "wrong_number" })).await;
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:52:10Z log warn call_follow_up: \"call call_8f3a2c91: no follow-up for outcome wrong_number\""]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn call_follow_up_retries_once_then_logs_and_notifies() {
    let h = Harness::new(
        compile("call_follow_up.flow", CALL_FOLLOW_UP),
        call_ended_at(),
    );
    h.recorder
        .whatsapp()
        .fail_call(1, transient("503 from the API"))
        .fail_call(2, transient("503 from the API"));
    h.run(event(CALL_ENDED, json!({}))).await;
    // `retry 1 times every 1m`: tried at +10m and +11m.
    assert_eq!(
        h.send_attempt_times(),
        [t("2026-11-26T13:52:10Z"), t("2026-11-26T13:53:10Z")]
    );
    assert_eq!(
        h.transcript(),
        [
            "2026-11-26T13:53:10Z log error call_follow_up: \"follow-up after call call_8f3a2c91 failed: \
             Transient: temporary error: 503 from the API\"",
            "2026-11-26T13:53:10Z notify team: \"WhatsApp follow-up to +4915112345678 after call \
             call_8f3a2c91 (appointment_booked) failed: temporary error: 503 from the API. Please \
             follow up by hand.\"",
        ]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn call_follow_up_succeeds_on_the_retry() {
    let h = Harness::new(
        compile("call_follow_up.flow", CALL_FOLLOW_UP),
        call_ended_at(),
    );
    h.recorder
        .whatsapp()
        .fail_call(1, transient("503 from the API"));
    h.run(event(CALL_ENDED, json!({ "outcome": "no_answer" })))
        .await;
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:53:10Z whatsapp.send_template missed_you (en) from berlin-office to +4915112345678"]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn call_follow_up_does_not_retry_a_permanent_error() {
    let h = Harness::new(
        compile("call_follow_up.flow", CALL_FOLLOW_UP),
        call_ended_at(),
    );
    h.recorder.whatsapp().fail_call(
        1,
        ActionError::Undeliverable {
            message: "the number has no WhatsApp account".into(),
        },
    );
    h.run(event(CALL_ENDED, json!({ "outcome": "no_answer" })))
        .await;
    // `retry 1 times` does not repeat what cannot change.
    assert_eq!(h.send_attempt_times(), [t("2026-11-26T13:52:10Z")]);
    assert_eq!(
        h.recorder.notifications(),
        [(
            "team".to_string(),
            "WhatsApp follow-up to +4915112345678 after call call_8f3a2c91 (no_answer) failed: \
             undeliverable: the number has no WhatsApp account. Please follow up by hand."
                .to_string()
        )]
    );
}

// ---------------------------------------------------------------------------
// lead_qualification
// ---------------------------------------------------------------------------

/// When the example message was written: the clock starts here.
fn message_written_at() -> DateTime<Utc> {
    t("2026-11-26T09:15:27+01:00")
}

const LUKAS_QUESTION: &str =
    "Hi, what does a 10 kWp system with battery storage cost for a detached house?";

fn lead_harness() -> Harness {
    Harness::new(
        compile("lead_qualification.flow", LEAD_QUALIFICATION),
        message_written_at(),
    )
}

#[tokio::test(start_paused = true)]
async fn lead_qualification_sends_the_ai_answer_as_text() {
    let h = lead_harness();
    h.recorder
        .ai()
        .answer("A 10 kWp system with battery starts at 14,900 EUR. How large is your roof?");
    h.run(event(MESSAGE_RECEIVED, json!({}))).await;

    let requests = h.recorder.ai_requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.assistant, "lead-qualifier");
    assert_eq!(request.model.as_deref(), Some("gpt-4o-mini"));
    assert!(request
        .instructions
        .as_deref()
        .unwrap()
        .starts_with("You qualify leads for Nordlicht Solar"));
    assert_eq!(request.customer, "+4917612345678");
    assert_eq!(request.message, LUKAS_QUESTION);
    assert_eq!(
        request.variables,
        [
            ("office".to_string(), "berlin-office".to_string()),
            ("source".to_string(), "whatsapp".to_string())
        ]
        .into()
    );
    assert_eq!(
        h.recorder.texts(),
        [TextMessage {
            sender: berlin_office(),
            to: "+4917612345678".into(),
            body: "A 10 kWp system with battery starts at 14,900 EUR. How large is your roof?"
                .into(),
        }]
    );
    assert_eq!(
        h.transcript(),
        [
            READ_RECEIPT.to_string(),
            format!("2026-11-26T08:15:27Z ai.generate_response lead-qualifier for +4917612345678: {LUKAS_QUESTION:?}"),
            "2026-11-26T08:15:27Z whatsapp.send_text from berlin-office to +4917612345678: \
             \"A 10 kWp system with battery starts at 14,900 EUR. How large is your roof?\""
                .to_string(),
        ]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

/// lead_qualification marks the customer's message as read first.
const READ_RECEIPT: &str = "2026-11-26T08:15:27Z whatsapp.mark_read for berlin-office: \
    wamid.HBgNNDkxNzYxMjM0NTY3OBUCABIYFjNFQjBDMUE3RjU2RDBEQzNBNEY2AA== (typing)";

#[tokio::test(start_paused = true)]
async fn lead_qualification_hands_over_when_the_ai_fails() {
    let h = lead_harness();
    let busy = ActionError::Ai {
        message: "model overloaded".into(),
    };
    h.recorder
        .ai()
        .fail_call(1, busy.clone())
        .fail_call(2, busy.clone())
        .fail_call(3, busy);
    h.run(event(MESSAGE_RECEIVED, json!({}))).await;

    // `retry 2 times every 30s backoff 2`: +0, +30s, +30s+60s.
    let tries: Vec<_> = h.recorder.ai().attempts().iter().map(|a| a.at).collect();
    let start = message_written_at();
    assert_eq!(
        tries,
        [
            start,
            start + Duration::seconds(30),
            start + Duration::seconds(90)
        ]
    );
    assert_eq!(
        h.transcript(),
        [
            READ_RECEIPT.to_string(),
            "2026-11-26T08:16:57Z log error lead_qualification: \"assistant could not answer \
             +4917612345678: AiError: AI error: model overloaded\""
                .to_string(),
            format!(
                "2026-11-26T08:16:57Z notify sales: \"The lead assistant could not answer \
                 +4917612345678 (conversation conv_4917612345678_berlin-office_20261126). Please \
                 reply by hand. Their message: {LUKAS_QUESTION}\""
            ),
        ]
    );
    assert!(h.recorder.texts().is_empty());
    assert_eq!(h.outcomes().await, [RunOutcome::Stopped]);
}

#[tokio::test(start_paused = true)]
async fn lead_qualification_notifies_sales_when_the_answer_cannot_be_sent() {
    let h = lead_harness();
    h.recorder
        .ai()
        .answer("Our plans start at 19 EUR per month.");
    h.recorder
        .whatsapp()
        .fail_call(1, transient("502 Bad Gateway"))
        .fail_call(2, transient("502 Bad Gateway"));
    h.run(event(MESSAGE_RECEIVED, json!({}))).await;

    let start = message_written_at();
    assert_eq!(
        h.send_attempt_times(),
        [start, start + Duration::minutes(1)]
    );
    assert_eq!(
        h.transcript(),
        [
            READ_RECEIPT.to_string(),
            format!("2026-11-26T08:15:27Z ai.generate_response lead-qualifier for +4917612345678: {LUKAS_QUESTION:?}"),
            "2026-11-26T08:16:27Z log error lead_qualification: \"answer to +4917612345678 not \
             sent: Transient: temporary error: 502 Bad Gateway\""
                .to_string(),
            "2026-11-26T08:16:27Z notify sales: \"The assistant's answer to +4917612345678 could \
             not be sent (Transient). Please reply by hand: Our plans start at 19 EUR per month.\""
                .to_string(),
        ]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn lead_qualification_cannot_answer_a_message_older_than_a_day() {
    // WhatsApp delivered the message late: it was written 25 hours ago, so
    // the window is already closed. OutsideWindow is not retried.
    let h = lead_harness();
    h.recorder.ai().answer("Hello!");
    h.run(event(
        MESSAGE_RECEIVED,
        json!({ "timestamp": "2026-11-25T07:15:27Z" }),
    ))
    .await;
    assert!(h.recorder.texts().is_empty());
    assert!(h.send_attempt_times().is_empty());
    assert_eq!(
        h.recorder.notifications(),
        [(
            "sales".to_string(),
            "The assistant's answer to +4917612345678 could not be sent (OutsideWindow). Please \
             reply by hand: Hello!"
                .to_string()
        )]
    );
}

// ---------------------------------------------------------------------------
// appointment_reminder
// ---------------------------------------------------------------------------

fn reminder_harness(start: DateTime<Utc>) -> Harness {
    Harness::new(
        compile("appointment_reminder.flow", APPOINTMENT_REMINDER),
        start,
    )
}

/// The reminder's transcript line at `at` with `when` as the date variable.
fn reminder_line(at: &str, when: &str) -> String {
    format!(
        "{at} whatsapp.send_template appointment_reminder (en) from berlin-office to \
         +4915112345678: [\"Anna Schmidt\", \"Jonas Becker\", \"{when}\", \"Berlin Mitte \
         showroom, Friedrichstraße 68\"]"
    )
}

#[tokio::test(start_paused = true)]
async fn appointment_reminder_goes_out_24_hours_before() {
    let h = reminder_harness(t("2026-11-28T09:00:00+01:00"));
    let reports = h
        .engine
        .dispatch(event(APPOINTMENT_BOOKED, json!({})))
        .await
        .unwrap();
    assert_eq!(
        reports[0].status,
        RunStatus::Suspended(t("2026-12-02T09:30:00Z"))
    );
    assert_eq!(h.engine.store().suspended_count().await.unwrap(), 1);
    h.engine.run_until_idle().await.unwrap();

    assert_eq!(
        h.transcript(),
        [reminder_line("2026-12-02T09:30:00Z", "03.12.2026 10:30")]
    );
    let sent = &h.recorder.templates()[0];
    assert_eq!(sent.recipient_name.as_deref(), Some("Anna Schmidt"));
    assert_eq!(
        sent.preview().as_deref(),
        Some(
            "Hi Anna Schmidt, a reminder of your appointment with Jonas Becker on 03.12.2026 10:30.\n\
             Location: Berlin Mitte showroom, Friedrichstraße 68\n\
             Reply to this message if you need to reschedule."
        )
    );
    assert_eq!(h.clock.now(), t("2026-12-02T09:30:00Z"));
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
    assert_eq!(h.engine.store().suspended_count().await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn appointment_reminder_across_the_spring_dst_change() {
    // Booked a week ahead in winter time (CET, +01:00); the appointment is on
    // the day after the change to summer time (CEST, +02:00). The reminder
    // goes out exactly 24 hours before, and shows Berlin's local time.
    for starts_at in ["2026-03-30T10:00:00+02:00", "2026-03-30T08:00:00Z"] {
        let h = reminder_harness(t("2026-03-23T10:00:00+01:00"));
        h.run(event(APPOINTMENT_BOOKED, json!({ "starts_at": starts_at })))
            .await;
        assert_eq!(
            h.transcript(),
            [reminder_line("2026-03-29T08:00:00Z", "30.03.2026 10:00")],
            "starts_at {starts_at}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn appointment_reminder_across_the_autumn_dst_change() {
    // Booked in summer time; the appointment is the day after the change back
    // to winter time.
    let h = reminder_harness(t("2026-10-19T10:00:00+02:00"));
    h.run(event(
        APPOINTMENT_BOOKED,
        json!({ "starts_at": "2026-10-26T09:00:00Z" }),
    ))
    .await;
    assert_eq!(
        h.transcript(),
        [reminder_line("2026-10-25T09:00:00Z", "26.10.2026 10:00")]
    );
}

#[tokio::test(start_paused = true)]
async fn appointment_reminder_skips_appointments_less_than_a_day_ahead() {
    let h = reminder_harness(t("2026-12-02T12:00:00+01:00"));
    let reports = h
        .engine
        .dispatch(event(APPOINTMENT_BOOKED, json!({})))
        .await
        .unwrap();
    assert_eq!(reports[0].status, RunStatus::Finished(RunOutcome::Stopped));
    assert_eq!(
        h.transcript(),
        [
            "2026-12-02T11:00:00Z log info appointment_reminder: \"appointment apt_2026_004711 \
          starts within 24 hours: no reminder\""
        ]
    );
    assert_eq!(h.engine.store().suspended_count().await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn appointment_reminder_exactly_a_day_ahead_is_sent_at_once() {
    let h = reminder_harness(t("2026-12-02T10:30:00+01:00"));
    let reports = h
        .engine
        .dispatch(event(APPOINTMENT_BOOKED, json!({})))
        .await
        .unwrap();
    assert_eq!(
        reports[0].status,
        RunStatus::Finished(RunOutcome::Completed)
    );
    assert_eq!(
        h.transcript(),
        [reminder_line("2026-12-02T09:30:00Z", "03.12.2026 10:30")]
    );
}

#[tokio::test(start_paused = true)]
async fn appointment_reminder_failure_asks_the_team_to_call() {
    let h = reminder_harness(t("2026-11-28T09:00:00+01:00"));
    let whatsapp = h.recorder.whatsapp();
    for n in 1..=4 {
        whatsapp.fail_call(n, transient("503"));
    }
    h.run(event(APPOINTMENT_BOOKED, json!({}))).await;
    // `retry 3 times every 1m`.
    let due = t("2026-12-02T09:30:00Z");
    assert_eq!(
        h.send_attempt_times(),
        (0..4)
            .map(|m| due + Duration::minutes(m))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        h.transcript(),
        [
            "2026-12-02T09:33:00Z log error appointment_reminder: \"reminder for appointment \
             apt_2026_004711 failed: Transient: temporary error: 503\"",
            "2026-12-02T09:33:00Z notify team: \"Reminder to +4915112345678 for the appointment \
             on 03.12.2026 10:30 failed: Transient. Please call the customer.\"",
        ]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

// ---------------------------------------------------------------------------
// welcome_new_conversation
// ---------------------------------------------------------------------------

const WELCOME_TEXT: &str = "Hi, and thanks for contacting Nordlicht Solar! Our digital \
assistant answers your questions right away, and an advisor reads along on weekdays from 8:00 \
to 18:00. Or pick a topic:";

fn welcome_harness() -> Harness {
    Harness::new(
        compile("welcome_new_conversation.flow", WELCOME),
        t("2026-11-26T18:02:44+01:00"),
    )
}

#[tokio::test(start_paused = true)]
async fn welcome_new_conversation_greets_the_customer() {
    let h = welcome_harness();
    h.run(event(CONVERSATION_STARTED, json!({}))).await;
    let welcome = h.recorder.interactive();
    assert_eq!(welcome.len(), 1);
    assert_eq!(welcome[0].sender, berlin_office());
    assert_eq!(welcome[0].to, "+4916098765432");
    assert_eq!(welcome[0].body, WELCOME_TEXT);
    let ids: Vec<&str> = welcome[0]
        .choices
        .all()
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(ids, ["quote", "visit", "fault", "invoice"]);
    assert_eq!(h.recorder.effects()[0].at, t("2026-11-26T17:02:44Z"));
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn welcome_new_conversation_logs_a_failed_welcome() {
    let h = welcome_harness();
    h.recorder.whatsapp().fail_call(
        1,
        ActionError::Undeliverable {
            message: "the customer's app is too old".into(),
        },
    );
    h.run(event(CONVERSATION_STARTED, json!({}))).await;
    assert_eq!(
        h.transcript(),
        [
            "2026-11-26T17:02:44Z log warn welcome_new_conversation: \"welcome to +4916098765432 \
          (conversation conv_4916098765432_berlin-office_20261126) not sent: Undeliverable: \
          undeliverable: the customer's app is too old\""
        ]
    );
    assert!(h.recorder.notifications().is_empty());
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

// ---------------------------------------------------------------------------
// message_log
// ---------------------------------------------------------------------------

async fn message_log(json: &str, text: Option<&str>) -> Harness {
    let h = Harness::new(
        compile("message_log.flow", MESSAGE_LOG),
        t("2026-11-26T09:15:27+01:00"),
    );
    let changes = match text {
        Some(text) => json!({ "text": text }),
        None => json!({}),
    };
    h.run(event(json, changes)).await;
    h
}

/// The first log line of message_log for the example message with `text`.
fn logged(text: &str) -> String {
    format!(
        "2026-11-26T08:15:27Z log info message_log: \"message \
         wamid.HBgNNDkxNzYxMjM0NTY3OBUCABIYFjNFQjBDMUE3RjU2RDBEQzNBNEY2AA== from +4917612345678 \
         to berlin-office in conversation conv_4917612345678_berlin-office_20261126: {text}\""
    )
}

const NO_ROUTE: &str = "2026-11-26T08:15:27Z log debug message_log: \"message \
wamid.HBgNNDkxNzYxMjM0NTY3OBUCABIYFjNFQjBDMUE3RjU2RDBEQzNBNEY2AA==: no team to route to\"";

#[tokio::test(start_paused = true)]
async fn message_log_logs_an_ordinary_message() {
    let h = message_log(MESSAGE_RECEIVED, None).await;
    assert_eq!(h.transcript(), [logged(LUKAS_QUESTION), NO_ROUTE.into()]);
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn message_log_alerts_the_team_about_urgent_messages() {
    let h = message_log(MESSAGE_RECEIVED_URGENT, None).await;
    let text = "Hello, this is urgent: our inverter has shown error E-042 since this morning \
                and the system produces nothing.";
    assert_eq!(
        h.transcript(),
        [
            format!(
                "2026-11-26T08:15:27Z log info message_log: \"message \
                 wamid.HBgNNDkxNTIyMzQ1Njc4ORUCABIYFjRBQzJEOEU5RjE3QjZBMEM1RDMyAA== from \
                 +4915223456789 to munich-office in conversation \
                 conv_4915223456789_munich-office_20261126: {text}\""
            ),
            format!(
                "2026-11-26T08:15:27Z notify team: \"Urgent WhatsApp message from +4915223456789: {text}\""
            ),
            "2026-11-26T08:15:27Z log debug message_log: \"message \
             wamid.HBgNNDkxNTIyMzQ1Njc4ORUCABIYFjRBQzJEOEU5RjE3QjZBMEM1RDMyAA==: no team to route to\""
                .to_string(),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn message_log_routes_by_topic() {
    let cases = [
        (
            "STOP",
            "notify marketing: \"+4917612345678 asked to unsubscribe: remove them from all marketing lists.\"",
        ),
        (
            "  Abmelden ",
            "notify marketing: \"+4917612345678 asked to unsubscribe: remove them from all marketing lists.\"",
        ),
        (
            "I want my Money Back",
            "notify billing: \"Possible refund or cancellation from +4917612345678: I want my Money Back\"",
        ),
        (
            "Frage zur Rechnung 2026-117",
            "notify billing: \"Invoice question from +4917612345678: Frage zur Rechnung 2026-117\"",
        ),
        (
            "where is my invoice?",
            "notify billing: \"Invoice question from +4917612345678: where is my invoice?\"",
        ),
    ];
    for (text, routed) in cases {
        let h = message_log(MESSAGE_RECEIVED, Some(text)).await;
        assert_eq!(
            h.transcript(),
            [logged(text), format!("2026-11-26T08:15:27Z {routed}")],
            "{text:?}"
        );
    }
    // "stop" inside a sentence is not an opt-out (the pattern is anchored).
    let h = message_log(MESSAGE_RECEIVED, Some("please stop by tomorrow")).await;
    assert_eq!(
        h.transcript(),
        [logged("please stop by tomorrow"), NO_ROUTE.into()]
    );
}

#[tokio::test(start_paused = true)]
async fn message_log_urgent_and_routed_in_order() {
    let text = "urgent: cancel my order";
    let h = message_log(MESSAGE_RECEIVED, Some(text)).await;
    assert_eq!(
        h.transcript(),
        [
            logged(text),
            format!("2026-11-26T08:15:27Z notify team: \"Urgent WhatsApp message from +4917612345678: {text}\""),
            format!("2026-11-26T08:15:27Z notify billing: \"Possible refund or cancellation from +4917612345678: {text}\""),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn message_log_logs_failed_notifications_and_goes_on() {
    let h = Harness::new(
        compile("message_log.flow", MESSAGE_LOG),
        t("2026-11-26T09:15:27+01:00"),
    );
    let down = ActionError::NotifyFailed {
        message: "chat is down".into(),
    };
    h.recorder
        .notify()
        .fail_call(1, down.clone())
        .fail_call(2, down);
    let text = "urgent: refund please";
    h.run(event(MESSAGE_RECEIVED, json!({ "text": text })))
        .await;
    assert_eq!(
        h.transcript(),
        [
            logged(text),
            "2026-11-26T08:15:27Z log error message_log: \"could not alert the team about message \
             wamid.HBgNNDkxNzYxMjM0NTY3OBUCABIYFjNFQjBDMUE3RjU2RDBEQzNBNEY2AA==: notification \
             failed: chat is down\""
                .to_string(),
            "2026-11-26T08:15:27Z log error message_log: \"could not route message \
             wamid.HBgNNDkxNzYxMjM0NTY3OBUCABIYFjNFQjBDMUE3RjU2RDBEQzNBNEY2AA==: notification \
             failed: chat is down\""
                .to_string(),
        ]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

// ---------------------------------------------------------------------------
// The 24-hour window at run time
// ---------------------------------------------------------------------------

/// A follow-up after `wait`. The recipient is bound with `let` because the
/// checker rejects a literal wait of 24 hours before free text to `msg.phone`
/// (F3008, see below); the runtime must still refuse it.
fn late_follow_up(wait: &str) -> String {
    format!(
        r#"
flow late_follow_up

on whatsapp.message_received as msg {{
    let customer = msg.phone
    delay {wait}
    whatsapp.send_text(sender: msg.sender_id, to: customer, message: "Did our answer help?")
        catch e {{
            if e.kind == "OutsideWindow" {{
                notify("team", "window closed for {{customer}}: {{e.kind}}: {{e.message}}")
            }} else {{
                notify("team", "unexpected {{e.kind}}")
            }}
        }}
}}
"#
    )
}

fn message_at(at: &str) -> Event {
    event(MESSAGE_RECEIVED, json!({ "timestamp": at }))
}

#[test]
fn the_checker_rejects_free_text_after_a_literal_24_hour_wait() {
    let source = late_follow_up("24h").replace("to: customer", "to: msg.phone");
    let mut compiler = Compiler::new();
    compiler.add_source("late.flow", source);
    compiler.add_config("flow.toml", CONFIG);
    let checked = compiler.check();
    let codes: Vec<&str> = checked
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect();
    assert_eq!(codes, ["F3008"]);
    assert!(checked.program.is_none());
}

#[tokio::test(start_paused = true)]
async fn free_text_after_24_hours_fails_with_outside_window() {
    let start = message_written_at();
    let h = Harness::new(compile("late.flow", &late_follow_up("24h")), start);
    h.run(message_at("2026-11-26T09:15:27+01:00")).await;
    assert!(h.recorder.texts().is_empty());
    assert_eq!(
        h.transcript(),
        [
            "2026-11-27T08:15:27Z notify team: \"window closed for +4917612345678: OutsideWindow: \
          +4917612345678 has not written in the last 24 hours: free text is outside the \
          window, use a template\""
        ]
    );
    // OutsideWindow is permanent: no provider call at all, no retry.
    assert!(h.send_attempt_times().is_empty());
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn free_text_after_23_hours_is_sent() {
    let start = message_written_at();
    let h = Harness::new(compile("late.flow", &late_follow_up("23h")), start);
    h.run(message_at("2026-11-26T09:15:27+01:00")).await;
    assert_eq!(
        h.transcript(),
        ["2026-11-27T07:15:27Z whatsapp.send_text from berlin-office to +4917612345678: \"Did our answer help?\""]
    );
}

#[tokio::test(start_paused = true)]
async fn the_window_follows_the_customers_latest_message() {
    let start = message_written_at();
    let h = Harness::new(compile("late.flow", &late_follow_up("24h")), start);
    h.engine
        .dispatch(message_at("2026-11-26T09:15:27+01:00"))
        .await
        .unwrap();
    // The customer writes again 20 hours later: the first run's send (at
    // +24h) is inside the renewed window; the second run's (at +44h) is not.
    h.clock.sleep_until(start + Duration::hours(20)).await;
    h.engine
        .dispatch(message_at("2026-11-27T05:15:27+01:00"))
        .await
        .unwrap();
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(
        h.transcript(),
        [
            "2026-11-27T08:15:27Z whatsapp.send_text from berlin-office to +4917612345678: \"Did our answer help?\"",
            "2026-11-28T04:15:27Z notify team: \"window closed for +4917612345678: OutsideWindow: \
             +4917612345678 has not written in the last 24 hours: free text is outside the \
             window, use a template\"",
        ]
    );
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

fn retry_flow(retry: &str, catch: bool) -> String {
    let catch = if catch {
        r#"catch e { notify("team", "{e.kind}: {e.message}") }"#
    } else {
        ""
    };
    format!(
        r#"
flow retry_send

on call.ended as call {{
    whatsapp.send_template(sender: "berlin-office", template: "missed_you", to: call.customer_phone)
        {retry}
        {catch}
}}
"#
    )
}

fn rate_limited(retry_after_ms: Option<u64>) -> ActionError {
    ActionError::RateLimited {
        message: "130429: too many messages".into(),
        retry_after_ms,
    }
}

/// Runs `retry_flow` with the first sends failing as given; returns the
/// harness and the start instant.
async fn retry_run(retry: &str, catch: bool, failures: &[ActionError]) -> Harness {
    let h = Harness::new(
        compile("retry.flow", &retry_flow(retry, catch)),
        call_ended_at(),
    );
    for (n, error) in failures.iter().enumerate() {
        h.recorder.whatsapp().fail_call(n + 1, error.clone());
    }
    h.run(event(CALL_ENDED, json!({}))).await;
    h
}

fn after(seconds: i64) -> DateTime<Utc> {
    call_ended_at() + Duration::seconds(seconds)
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_send_waits_for_retry_after_when_it_is_longer() {
    let h = retry_run(
        "retry 2 times every 1m",
        true,
        &[rate_limited(Some(90_000))],
    )
    .await;
    assert_eq!(h.send_attempt_times(), [after(0), after(90)]);
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:43:40Z whatsapp.send_template missed_you (en) from berlin-office to +4915112345678"]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_send_waits_for_the_interval_when_it_is_longer() {
    let h = retry_run(
        "retry 2 times every 2m",
        true,
        &[rate_limited(Some(90_000))],
    )
    .await;
    assert_eq!(h.send_attempt_times(), [after(0), after(120)]);
    assert_eq!(h.recorder.templates().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn backoff_multiplies_the_interval_and_retry_after_still_counts() {
    let h = retry_run(
        "retry 3 times every 1m backoff 2",
        true,
        &[transient("1"), transient("2"), transient("3")],
    )
    .await;
    // 1m, 2m, 4m.
    assert_eq!(
        h.send_attempt_times(),
        [after(0), after(60), after(180), after(420)]
    );
    assert_eq!(h.recorder.templates().len(), 1);

    let limited = rate_limited(Some(150_000));
    let h = retry_run(
        "retry 3 times every 1m backoff 2",
        true,
        &[limited.clone(), limited.clone(), limited.clone(), limited],
    )
    .await;
    // max(1m, 150s), max(2m, 150s), max(4m, 150s); then the catch.
    assert_eq!(
        h.send_attempt_times(),
        [after(0), after(150), after(300), after(540)]
    );
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:51:10Z notify team: \"RateLimited: rate limited: 130429: too many messages\""]
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_retry_clause_a_rate_limit_is_retried_once_after_a_minute() {
    let h = retry_run("", true, &[rate_limited(None)]).await;
    assert_eq!(h.send_attempt_times(), [after(0), after(60)]);
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:43:10Z whatsapp.send_template missed_you (en) from berlin-office to +4915112345678"]
    );

    // The provider's retry-after wins when it is longer than the minute.
    let h = retry_run("", true, &[rate_limited(Some(90_000))]).await;
    assert_eq!(h.send_attempt_times(), [after(0), after(90)]);
    assert_eq!(h.recorder.templates().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_second_rate_limit_reaches_the_catch() {
    let h = retry_run(
        "",
        true,
        &[rate_limited(Some(90_000)), rate_limited(Some(90_000))],
    )
    .await;
    assert_eq!(h.send_attempt_times(), [after(0), after(90)]);
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:43:40Z notify team: \"RateLimited: rate limited: 130429: too many messages\""]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
}

#[tokio::test(start_paused = true)]
async fn a_second_rate_limit_without_a_catch_fails_the_run() {
    let h = retry_run("", false, &[rate_limited(None), rate_limited(None)]).await;
    assert_eq!(h.send_attempt_times(), [after(0), after(60)]);
    let history = h.engine.store().run_history().await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].flow, "retry_send");
    assert_eq!(history[0].trigger, "call.ended");
    assert_eq!(history[0].started_at, after(0));
    assert_eq!(history[0].finished_at, after(60));
    assert_eq!(
        history[0].outcome,
        failed("RateLimited", "rate limited: 130429: too many messages")
    );
    // The engine logs the failure.
    assert_eq!(
        h.transcript(),
        [format!(
            "2026-11-26T13:43:10Z log error retry_send: \"run {} failed: RateLimited: rate \
             limited: 130429: too many messages\"",
            history[0].id
        )]
    );
}

// ---------------------------------------------------------------------------
// Catch semantics
// ---------------------------------------------------------------------------

/// A host action, `crm.sync(step)`, that fails for the steps in `failures`
/// with the given kind, and records every step it was called with.
fn crm(
    failures: &[(&str, &str)],
) -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(EngineBuilder) -> EngineBuilder + use<>,
) {
    let failures: Arc<HashMap<String, String>> = Arc::new(
        failures
            .iter()
            .map(|(step, kind)| (step.to_string(), kind.to_string()))
            .collect(),
    );
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let configure = move |builder: EngineBuilder| {
        let failures = failures.clone();
        let log = log.clone();
        builder.action("crm.sync", move |args: HashMap<String, Value>| {
            let step = args
                .get("step")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            log.lock().unwrap().push(step.clone());
            let result = match failures.get(&step) {
                Some(kind) => Err(ActionError::Custom {
                    kind: kind.clone(),
                    message: format!("{step} failed"),
                }),
                None => Ok(Value::None),
            };
            async move { result }
        })
    };
    (calls, configure)
}

const CRM_DECLARATIONS: &str = r#"
## The CRM is down.
error CrmDown
## The CRM rejected the data.
error CrmInvalid
## Syncs a step to the CRM.
action crm.sync(step: String) raises CrmDown, CrmInvalid
"#;

/// Runs `flow` (with the CRM declarations) for a call with `outcome`;
/// returns the log lines, the CRM steps called, and how the run ended.
async fn crm_run(
    flow: &str,
    outcome: &str,
    failures: &[(&str, &str)],
) -> (Vec<String>, Vec<String>, RunOutcome) {
    let source = format!("{CRM_DECLARATIONS}\n{flow}");
    let (calls, configure) = crm(failures);
    let h = Harness::with(compile("crm.flow", &source), call_ended_at(), configure);
    h.run(event(CALL_ENDED, json!({ "outcome": outcome })))
        .await;
    let logs = h
        .recorder
        .logs()
        .into_iter()
        .filter(|(_, level, _)| level == "info")
        .map(|(_, _, message)| message)
        .collect();
    let calls = calls.lock().unwrap().clone();
    let outcome = h.outcomes().await.pop().expect("the run ended");
    (logs, calls, outcome)
}

#[tokio::test(start_paused = true)]
async fn catches_are_tried_in_order_specific_kind_first() {
    let flow = r#"
flow catch_order
on call.ended as call {
    crm.sync(step: call.outcome)
        catch CrmDown e { log("specific: {e.kind}: {e.message}") }
        catch e { log("catch-all: {e.kind}: {e.message}") }
    log("after")
}
"#;
    let failures = [("down", "CrmDown"), ("invalid", "CrmInvalid")];
    let (logs, _, outcome) = crm_run(flow, "down", &failures).await;
    assert_eq!(logs, ["specific: CrmDown: down failed", "after"]);
    assert_eq!(outcome, RunOutcome::Completed);
    let (logs, _, _) = crm_run(flow, "invalid", &failures).await;
    assert_eq!(logs, ["catch-all: CrmInvalid: invalid failed", "after"]);
    let (logs, _, _) = crm_run(flow, "fine", &failures).await;
    assert_eq!(logs, ["after"]);
}

#[tokio::test(start_paused = true)]
async fn a_catch_all_first_takes_every_kind() {
    let flow = r#"
flow catch_all_first
on call.ended as call {
    crm.sync(step: call.outcome)
        catch e { log("catch-all: {e.kind}") }
        catch CrmDown e { log("specific: {e.kind}") }
}
"#;
    // The checker warns that the second catch can never run...
    let mut compiler = Compiler::new();
    compiler.add_source("crm.flow", format!("{CRM_DECLARATIONS}\n{flow}"));
    let checked = compiler.check();
    let codes: Vec<&str> = checked
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect();
    assert_eq!(codes, ["F4007"]);
    // ... and indeed it does not.
    let (logs, _, _) = crm_run(flow, "down", &[("down", "CrmDown")]).await;
    assert_eq!(logs, ["catch-all: CrmDown"]);
}

#[tokio::test(start_paused = true)]
async fn an_error_in_a_catch_block_goes_to_the_outer_statement() {
    let flow = r#"
flow nested
on call.ended as call {
    if call.outcome != "" {
        crm.sync(step: "first")
            catch CrmDown e {
                log("inner caught {e.kind}")
                crm.sync(step: "in-catch")
                log("not reached: rest of the catch block")
            }
            catch CrmInvalid e2 {
                log("WRONG: the same statement caught its own catch's {e2.kind}")
            }
        log("not reached: rest of the if block")
    }
        catch CrmInvalid e {
            log("outer caught {e.kind}: {e.message}")
        }
    log("after")
}
"#;
    let failures = [("first", "CrmDown"), ("in-catch", "CrmInvalid")];
    let (logs, calls, outcome) = crm_run(flow, "x", &failures).await;
    assert_eq!(
        logs,
        [
            "inner caught CrmDown",
            "outer caught CrmInvalid: in-catch failed",
            "after"
        ]
    );
    assert_eq!(calls, ["first", "in-catch"]);
    assert_eq!(outcome, RunOutcome::Completed);
}

#[tokio::test(start_paused = true)]
async fn an_error_in_a_catch_block_with_no_outer_catch_fails_the_run() {
    let flow = r#"
flow nested
on call.ended as call {
    crm.sync(step: "first")
        catch CrmDown e {
            crm.sync(step: "in-catch")
        }
        catch CrmInvalid e2 {
            log("WRONG: the same statement caught its own catch's {e2.kind}")
        }
    log("not reached")
}
"#;
    let failures = [("first", "CrmDown"), ("in-catch", "CrmInvalid")];
    let (logs, _, outcome) = crm_run(flow, "x", &failures).await;
    assert!(logs.is_empty(), "{logs:?}");
    assert_eq!(outcome, failed("CrmInvalid", "in-catch failed"));
}

#[tokio::test(start_paused = true)]
async fn a_catch_on_a_branch_takes_errors_raised_in_its_arms() {
    let flow = r#"
flow routed
on call.ended as call {
    branch call.outcome {
        "a" => crm.sync(step: "arm-a")
        "b" => {
            log("in b")
            crm.sync(step: "arm-b")
                catch CrmInvalid e { log("arm b caught its own {e.kind}") }
            crm.sync(step: "arm-b-2")
            log("not reached")
        }
        _ => log("no sync")
    }
        catch e { log("branch caught {e.kind}: {e.message}") }
    log("after branch")
}
"#;
    let failures = [
        ("arm-a", "CrmDown"),
        ("arm-b", "CrmInvalid"),
        ("arm-b-2", "CrmDown"),
    ];
    let (logs, calls, outcome) = crm_run(flow, "a", &failures).await;
    assert_eq!(
        logs,
        ["branch caught CrmDown: arm-a failed", "after branch"]
    );
    assert_eq!(calls, ["arm-a"]);
    assert_eq!(outcome, RunOutcome::Completed);

    let (logs, calls, _) = crm_run(flow, "b", &failures).await;
    assert_eq!(
        logs,
        [
            "in b",
            "arm b caught its own CrmInvalid",
            "branch caught CrmDown: arm-b-2 failed",
            "after branch"
        ]
    );
    assert_eq!(calls, ["arm-b", "arm-b-2"]);

    let (logs, calls, _) = crm_run(flow, "c", &failures).await;
    assert_eq!(logs, ["no sync", "after branch"]);
    assert!(calls.is_empty());
}

#[tokio::test(start_paused = true)]
async fn stop_and_fail_end_the_run() {
    let flow = r#"
flow ends
on call.ended as call {
    crm.sync(step: call.outcome)
        catch CrmDown e {
            log("stopping")
            stop
        }
        catch CrmInvalid e {
            fail "cannot sync call {call.call_id}: {e.message}"
        }
    log("synced")
}
"#;
    let failures = [("down", "CrmDown"), ("invalid", "CrmInvalid")];
    let (logs, _, outcome) = crm_run(flow, "down", &failures).await;
    assert_eq!(logs, ["stopping"]);
    assert_eq!(outcome, RunOutcome::Stopped);

    let (logs, _, outcome) = crm_run(flow, "invalid", &failures).await;
    assert!(logs.is_empty());
    assert_eq!(
        outcome,
        failed("Fail", "cannot sync call call_8f3a2c91: invalid failed")
    );

    let (logs, _, outcome) = crm_run(flow, "fine", &failures).await;
    assert_eq!(logs, ["synced"]);
    assert_eq!(outcome, RunOutcome::Completed);
}

#[tokio::test(start_paused = true)]
async fn an_uncaught_host_error_fails_the_run_with_its_kind() {
    let flow = r#"
flow uncaught
on call.ended as call {
    crm.sync(step: call.outcome)
    log("not reached")
}
"#;
    let (logs, calls, outcome) = crm_run(flow, "down", &[("down", "CrmDown")]).await;
    assert!(logs.is_empty());
    // Not a retryable kind: called once.
    assert_eq!(calls, ["down"]);
    assert_eq!(outcome, failed("CrmDown", "down failed"));
}

#[tokio::test(start_paused = true)]
async fn a_host_error_kind_declared_retryable_is_retried_once_by_default() {
    let source = r#"
## The CRM is busy for a moment.
@retryable
error CrmBusy
action crm.sync(step: String) raises CrmBusy

flow busy
on call.ended as call {
    crm.sync(step: call.outcome)
    log("synced")
}
"#;
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let h = Harness::with(compile("busy.flow", source), call_ended_at(), |b| {
        b.action("crm.sync", move |_: HashMap<String, Value>| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(ActionError::Custom {
                        kind: "CrmBusy".into(),
                        message: "try again".into(),
                    })
                } else {
                    Ok(Value::None)
                }
            }
        })
    });
    h.run(event(CALL_ENDED, json!({}))).await;
    // docs/language.md: "kinds declared @retryable ... are retried once after
    // one minute".
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:43:10Z log info busy: \"synced\""]
    );
}

// ---------------------------------------------------------------------------
// Runs are data
// ---------------------------------------------------------------------------

const NURTURE: &str = r#"
flow nurture

on call.ended as call {
    let first = call.customer_name ?? "there"
    let ended = format(call.ended_at, "%d.%m.%Y %H:%M", tz: "Europe/Berlin")
    if call.outcome == "no_answer" {
        log("waiting three days for {first}")
        delay 3d
        whatsapp.send_template(
            sender: "berlin-office",
            template: "still_interested",
            to: call.customer_phone,
            variables: [first, call.agent_name],
        )
        log("still_interested sent to {first}, call of {ended} took {call.duration ?? 0s}")
    }
    log("done with {call.call_id}")
}
"#;

fn nurture_event() -> Event {
    event(CALL_ENDED, json!({ "outcome": "no_answer" }))
}

#[tokio::test(start_paused = true)]
async fn a_suspended_run_is_json_that_a_new_engine_resumes() {
    let start = call_ended_at();
    let wake = start + Duration::days(3);

    // The run without interruption.
    let whole = Harness::new(compile("nurture.flow", NURTURE), start);
    whole.run(nurture_event()).await;
    let expected = whole.transcript();
    assert_eq!(
        expected,
        [
            "2026-11-26T13:42:10Z log info nurture: \"waiting three days for Anna Schmidt\"",
            "2026-11-29T13:42:10Z whatsapp.send_template still_interested (en) from berlin-office to +4915112345678: [\"Anna Schmidt\", \"Jonas Becker\"]",
            "2026-11-29T13:42:10Z log info nurture: \"still_interested sent to Anna Schmidt, call of 26.11.2026 14:42 took 4m30s\"",
            "2026-11-29T13:42:10Z log info nurture: \"done with call_8f3a2c91\"",
        ]
    );

    // Engine A starts the run; it waits in A's store.
    let store_a = Arc::new(MemoryStore::new());
    let a = Harness::with(compile("nurture.flow", NURTURE), start, |b| {
        b.shared_store(store_a.clone())
    });
    let reports = a.engine.dispatch(nurture_event()).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, RunStatus::Suspended(wake));
    let run_id = reports[0].id.clone();
    assert_eq!(store_a.suspended_count().await.unwrap(), 1);
    assert!(store_a
        .claim_due_runs(wake - Duration::seconds(1), 10)
        .await
        .unwrap()
        .is_empty());

    // Three days later the run is due; take it out and keep it as text.
    a.clock.sleep_until(wake).await;
    let mut due = store_a.claim_due_runs(a.clock.now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let stored = due.pop().unwrap();
    assert_eq!(stored.id, run_id);
    assert_eq!(stored.flow, "nurture");
    assert_eq!(stored.wake_at, wake);
    let text = serde_json::to_string_pretty(&stored).unwrap();
    let before = a.transcript();
    drop(a);
    drop(store_a);

    // Engine B: built from scratch in a "new process" at the wake-up time,
    // with its own store and the program compiled again from source.
    let b = Harness::new(compile("nurture.flow", NURTURE), wake);
    let stored: StoredRun = serde_json::from_str(&text).unwrap();
    let report = b.engine.resume(stored).await.unwrap();
    assert_eq!(report.id, run_id);
    assert_eq!(report.status, RunStatus::Finished(RunOutcome::Completed));
    b.engine.run_until_idle().await.unwrap();

    let resumed: Vec<String> = before.into_iter().chain(b.transcript()).collect();
    assert_eq!(resumed, expected);
    let history = b.engine.store().run_history().await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, run_id);
    assert_eq!(history[0].started_at, start);
    assert_eq!(history[0].finished_at, wake);
    assert_eq!(history[0].outcome, RunOutcome::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_run_waiting_for_a_retry_is_data_too() {
    // The first send fails; the run waits a minute for the retry in A and
    // is finished by B, which must not count the failed try twice.
    let source = retry_flow("retry 1 times every 1m", true);
    let store_a = Arc::new(MemoryStore::new());
    let a = Harness::with(compile("retry.flow", &source), call_ended_at(), |b| {
        b.shared_store(store_a.clone())
    });
    a.recorder.whatsapp().fail_call(1, transient("503"));
    a.engine
        .dispatch(event(CALL_ENDED, json!({})))
        .await
        .unwrap();
    a.clock.sleep_until(after(60)).await;
    let stored = store_a
        .claim_due_runs(a.clock.now(), 10)
        .await
        .unwrap()
        .remove(0);
    let text = serde_json::to_string(&stored).unwrap();
    drop(a);

    let b = Harness::new(compile("retry.flow", &source), after(60));
    b.recorder.whatsapp().fail_call(1, transient("503 again"));
    b.engine
        .resume(serde_json::from_str(&text).unwrap())
        .await
        .unwrap();
    // One retry was allowed and it is used up: the catch runs.
    assert_eq!(
        b.transcript(),
        ["2026-11-26T13:43:10Z notify team: \"Transient: temporary error: 503 again\""]
    );
}

// ---------------------------------------------------------------------------
// Pacing
// ---------------------------------------------------------------------------

const BLAST: &str = r#"
flow blast
on call.ended as call {
    whatsapp.send_template(sender: "berlin-office", template: "missed_you", to: call.customer_phone)
}
"#;

fn recipient(i: usize) -> String {
    format!("+49151{:08}", 10_000_000 + i)
}

fn call_to(phone: &str) -> Event {
    event(
        CALL_ENDED,
        json!({ "outcome": "no_answer", "customer_phone": phone }),
    )
}

/// The sends' recipients and times, in the order they happened.
fn sends(recorder: &Recorder) -> Vec<(String, DateTime<Utc>)> {
    recorder
        .effects()
        .into_iter()
        .filter_map(|e| match e.kind {
            EffectKind::Template(m) => Some((m.to, e.at)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_sends_are_paced_per_sender_and_recipient() {
    const RECIPIENTS: usize = 10_000;
    const REPEATED: usize = 100;
    let started = std::time::Instant::now();
    let start = call_ended_at();
    let h = Harness::new(compile("blast.flow", BLAST), start);

    let mut tasks = tokio::task::JoinSet::new();
    // Every recipient once, then 100 of them again: all at the same instant.
    for i in (0..RECIPIENTS).chain(0..REPEATED) {
        let engine = h.engine.clone();
        let event = call_to(&recipient(i));
        tasks.spawn(async move { engine.dispatch(event).await });
    }
    while let Some(joined) = tasks.join_next().await {
        let reports = joined.expect("dispatch does not panic").expect("dispatch");
        assert_eq!(
            reports[0].status,
            RunStatus::Finished(RunOutcome::Completed)
        );
    }

    let sends = sends(&h.recorder);
    assert_eq!(sends.len(), RECIPIENTS + REPEATED);
    let mut per_recipient: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    for (to, at) in &sends {
        per_recipient.entry(to).or_default().push(*at);
    }
    assert_eq!(per_recipient.len(), RECIPIENTS);
    for i in 0..RECIPIENTS {
        let times = &per_recipient[recipient(i).as_str()];
        let expected = if i < REPEATED { 2 } else { 1 };
        assert_eq!(times.len(), expected, "{}", recipient(i));
        // The pair rate: at most one message every 6 seconds.
        if let [first, second] = times[..] {
            assert!(
                second - first >= Duration::seconds(6),
                "{} got messages at {first} and {second}",
                recipient(i)
            );
        }
    }

    // The sender's throughput: in every window of one second, at most 80.
    let mut times: Vec<DateTime<Utc>> = sends.iter().map(|(_, at)| *at).collect();
    times.sort();
    for (i, window_start) in times.iter().enumerate() {
        if let Some(eighty_first) = times.get(i + 80) {
            assert!(
                *eighty_first - *window_start >= Duration::seconds(1),
                "81 sends between {window_start} and {eighty_first}"
            );
        }
    }
    // And the pacing wastes no time: 10,100 sends at 80 a second take
    // 126.25 seconds.
    assert_eq!(times[0], start);
    let last = *times.last().unwrap() - start;
    assert!(
        last < Duration::milliseconds(126_300),
        "the last send was {last} after the first"
    );
    eprintln!(
        "{} sends paced over {last} of virtual time in {:?}",
        sends.len(),
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_send_waiting_for_its_recipient_does_not_hold_up_the_others() {
    let start = call_ended_at();
    let h = Harness::new(compile("blast.flow", BLAST), start);
    let mut tasks = tokio::task::JoinSet::new();
    for phone in ["+4915112345678", "+4915112345678", "+4917612345678"] {
        let engine = h.engine.clone();
        let event = call_to(phone);
        tasks.spawn(async move { engine.dispatch(event).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap().unwrap();
    }
    let sends = sends(&h.recorder);
    let at = |phone: &str| -> Vec<Duration> {
        sends
            .iter()
            .filter(|(to, _)| to == phone)
            .map(|(_, at)| *at - start)
            .collect()
    };
    assert_eq!(
        at("+4915112345678"),
        [Duration::zero(), Duration::seconds(6)]
    );
    // pacing.rs: "each send gets the earliest slot that keeps its sender
    // under the throughput limit and its recipient under the pair rate":
    // for the other recipient that is 12.5 ms (13 ms on tokio's 1 ms
    // timer), not after the repeated recipient's 6 seconds.
    assert!(
        at("+4917612345678")[0] <= Duration::milliseconds(13),
        "{:?}",
        at("+4917612345678")
    );
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// Dispatches a bad event to call_follow_up; returns the error's text after
/// asserting that nothing started.
async fn rejected(event: Event) -> (EventError, String) {
    let h = Harness::new(
        compile("call_follow_up.flow", CALL_FOLLOW_UP),
        call_ended_at(),
    );
    let error = match h.engine.dispatch(event).await {
        Err(EngineError::Event(error)) => error,
        other => panic!("expected an event error, got {other:?}"),
    };
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.engine.store().suspended_count().await.unwrap(), 0);
    assert!(h.engine.store().run_history().await.unwrap().is_empty());
    assert!(h.recorder.effects().is_empty());
    let text = error.to_string();
    (error, text)
}

#[tokio::test(start_paused = true)]
async fn bad_events_are_rejected_naming_the_field() {
    let (error, text) = rejected(event(CALL_ENDED, json!({ "duration": 270 }))).await;
    assert_eq!(
        error,
        EventError::BadField {
            trigger: "call.ended".into(),
            field: "duration".into(),
            problem: "expected Duration, found a number".into(),
        }
    );
    assert_eq!(
        text,
        "field `duration` of event `call.ended`: expected Duration, found a number"
    );

    let (error, text) = rejected(event(
        CALL_ENDED,
        json!({ "customer_phone": "0151/12345678" }),
    ))
    .await;
    assert!(
        matches!(&error, EventError::BadField { field, .. } if field == "customer_phone"),
        "{error:?}"
    );
    assert_eq!(
        text,
        "field `customer_phone` of event `call.ended`: \"0151/12345678\" is not an E.164 phone \
         number: no leading + and country code; '/' is not allowed"
    );

    let (error, text) = rejected(event(CALL_ENDED, json!({ "ended_at": "yesterday" }))).await;
    assert!(
        matches!(&error, EventError::BadField { field, .. } if field == "ended_at"),
        "{error:?}"
    );
    assert!(text.starts_with("field `ended_at` of event `call.ended`: \"yesterday\" is not an RFC 3339 date and time"), "{text}");

    let (error, text) = rejected(event(CALL_ENDED, json!({ "agent_name": null }))).await;
    assert_eq!(
        error,
        EventError::MissingField {
            trigger: "call.ended".into(),
            field: "agent_name".into(),
            ty: "String".into(),
        }
    );
    assert_eq!(
        text,
        "event `call.ended` is missing the field `agent_name` (String)"
    );

    let (_, text) = rejected(event(CALL_ENDED, json!({ "outcom": "no_answer" }))).await;
    assert_eq!(
        text,
        "event `call.ended` has no field `outcom`; did you mean `outcome`?"
    );

    let mut unknown = event(CALL_ENDED, json!({}));
    unknown.trigger = "call.endet".into();
    let (error, text) = rejected(unknown).await;
    assert_eq!(
        error,
        EventError::UnknownTrigger {
            name: "call.endet".into(),
            suggestion: Some("call.ended".into()),
        }
    );
    assert_eq!(
        text,
        "unknown trigger `call.endet`; did you mean `call.ended`?"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_value_deep_in_an_event_is_named_by_its_path() {
    let source = r#"
type OrderItem {
    sku: String
    qty: Int
}
trigger shop.order_placed {
    phone: Phone
    items: [OrderItem]
}
flow orders
on shop.order_placed as order {
    log("order for {order.phone}")
}
"#;
    let h = Harness::new(compile("orders.flow", source), call_ended_at());
    let bad = Event::new(
        "shop.order_placed",
        json!({
            "phone": "+4915112345678",
            "items": [{ "sku": "PV-10", "qty": 1 }, { "sku": "BAT-5", "qty": "two" }],
        }),
    );
    let error = h.engine.dispatch(bad).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "field `items.1.qty` of event `shop.order_placed`: expected Int, found a string"
    );
    assert!(h.recorder.effects().is_empty());
}

/// A WhatsApp provider whose sends panic or never answer.
struct Broken {
    panics: bool,
    calls: AtomicUsize,
}

#[async_trait]
impl WhatsApp for Broken {
    async fn send_template(&self, _: &TemplateMessage) -> Result<SentMessage, ActionError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.panics {
            panic!("the provider has a bug");
        }
        std::future::pending().await
    }

    async fn send_text(&self, _: &TextMessage) -> Result<SentMessage, ActionError> {
        unreachable!("the test sends templates only")
    }

    async fn sender_status(&self, _: &SenderRef) -> Result<SenderStatus, ActionError> {
        Ok(SenderStatus::online())
    }
}

async fn broken_provider_run(panics: bool) -> (Harness, Arc<Broken>) {
    let broken = Arc::new(Broken {
        panics,
        calls: AtomicUsize::new(0),
    });
    let provider = broken.clone();
    let h = Harness::with(
        compile("retry.flow", &retry_flow("", true)),
        call_ended_at(),
        |b| {
            b.whatsapp(provider).limits(EngineLimits {
                provider_timeout: std::time::Duration::from_secs(5),
                ..EngineLimits::default()
            })
        },
    );
    h.run(event(CALL_ENDED, json!({}))).await;
    (h, broken)
}

#[tokio::test(start_paused = true)]
async fn a_panicking_provider_fails_the_action_not_the_engine() {
    let (h, broken) = broken_provider_run(true).await;
    // Transient is retried once after a minute, then caught.
    assert_eq!(broken.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:43:10Z notify team: \"Transient: temporary error: the WhatsApp provider crashed\""]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
    // The engine goes on working.
    h.run(event(CALL_ENDED, json!({}))).await;
    assert_eq!(broken.calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        h.outcomes().await,
        [RunOutcome::Completed, RunOutcome::Completed]
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_provider_times_out() {
    let (h, broken) = broken_provider_run(false).await;
    // Times out after 5 s. A send that timed out may have been delivered, so
    // it is not retried (nothing goes out twice): the catch takes it.
    assert_eq!(broken.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        h.transcript(),
        ["2026-11-26T13:42:15Z notify team: \"Timeout: no answer within 5000 ms\""]
    );
    assert_eq!(h.outcomes().await, [RunOutcome::Completed]);
    assert!(h.engine.store().sent_log().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_host_action_that_panics_when_called_fails_the_action() {
    let source = format!(
        "{CRM_DECLARATIONS}\n{}",
        r#"
flow crashing
on call.ended as call {
    crm.sync(step: "x")
        catch e { log("caught {e.kind}") }
}
"#
    );
    let h = Harness::with(compile("crm.flow", &source), call_ended_at(), |b| {
        b.action("crm.sync", |_: HashMap<String, Value>| {
            if true {
                panic!("the host's handler has a bug");
            }
            async { Ok(Value::None) }
        })
    });
    let engine = h.engine.clone();
    let dispatched =
        tokio::spawn(async move { engine.dispatch(event(CALL_ENDED, json!({}))).await }).await;
    assert!(dispatched.is_ok(), "dispatch panicked");
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(h.recorder.logs().len(), 1);
    assert_eq!(h.recorder.logs()[0].2, "caught Transient");
}

#[tokio::test(start_paused = true)]
async fn the_step_budget_ends_a_run() {
    let source = r#"
flow chatty
on call.ended as call {
    log("1")
    log("2")
    log("3")
    log("4")
    log("5")
    log("6")
    log("7")
}
"#;
    let h = Harness::with(compile("chatty.flow", source), call_ended_at(), |b| {
        b.limits(EngineLimits {
            step_budget: 5,
            ..EngineLimits::default()
        })
    });
    let reports = h
        .engine
        .dispatch(event(CALL_ENDED, json!({})))
        .await
        .unwrap();
    let outcome = failed("StepBudget", "the run took more than 5 steps");
    assert_eq!(reports[0].status, RunStatus::Finished(outcome.clone()));
    let logs: Vec<String> = h.recorder.logs().into_iter().map(|(_, _, m)| m).collect();
    assert_eq!(
        logs,
        [
            "1".to_string(),
            "2".into(),
            "3".into(),
            "4".into(),
            "5".into(),
            format!(
                "run {} failed: StepBudget: the run took more than 5 steps",
                reports[0].id
            ),
        ]
    );
    assert_eq!(h.outcomes().await, [outcome]);
}

/// Each loaded program checks events against its own declarations: a
/// trigger declared only by the second program starts its flows.
#[tokio::test(start_paused = true)]
async fn events_for_a_trigger_of_a_second_program_start_its_flows() {
    let h = Harness::new(
        compile("call_follow_up.flow", CALL_FOLLOW_UP),
        t("2026-11-28T09:00:00+01:00"),
    );
    h.engine
        .load(compile("appointment_reminder.flow", APPOINTMENT_REMINDER))
        .expect("every action the flows call is implemented");
    let reports = h
        .engine
        .dispatch(event(APPOINTMENT_BOOKED, json!({})))
        .await
        .expect("appointment.booked is declared by a loaded program");
    assert_eq!(reports.len(), 1);
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(
        h.transcript(),
        [reminder_line("2026-12-02T09:30:00Z", "03.12.2026 10:30")]
    );
}

/// Counts the runs that started.
#[derive(Default, Clone)]
struct Starts(Arc<AtomicUsize>);

impl Observer for Starts {
    fn event(&self, event: &RunEvent<'_>) {
        if let RunEvent::Started { .. } = event {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_bad_event_starts_no_run_even_among_good_ones() {
    let starts = Starts::default();
    let observer = starts.clone();
    let h = Harness::with(
        compile("call_follow_up.flow", CALL_FOLLOW_UP),
        call_ended_at(),
        |b| b.observer(observer),
    );
    h.engine
        .dispatch(event(CALL_ENDED, json!({})))
        .await
        .unwrap();
    assert!(h
        .engine
        .dispatch(event(
            CALL_ENDED,
            json!({ "customer_phone": "+49 151 12345678" })
        ))
        .await
        .is_err());
    h.engine
        .dispatch(event(CALL_ENDED, json!({ "outcome": "no_answer" })))
        .await
        .unwrap();
    h.engine.run_until_idle().await.unwrap();
    assert_eq!(starts.0.load(Ordering::SeqCst), 2);
    assert_eq!(h.recorder.templates().len(), 2);
}

#[test]
fn loading_a_flow_whose_host_action_has_no_implementation_fails() {
    let source =
        "action crm.sync(step: String)\nflow f\non call.ended as call {\n    crm.sync(\"x\")\n}\n";
    let engine = Engine::builder().build();
    let program = engine.compile(source).expect("the flow checks");
    let error = engine.load(program).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no implementation for `crm.sync`: register them with `EngineBuilder::action`"
    );
}

#[tokio::test]
async fn dispatch_once_to_starts_only_the_named_flow() {
    let recorder = Recorder::new();
    let engine = Engine::builder().notify(recorder.notify()).build();
    let program = engine
        .compile(
            "trigger shop.sale { phone: Phone }\n\nflow offer\non shop.sale as s {\n    notify(\"sales\", \"offer to {s.phone}\")\n}\n\nflow audit\non shop.sale as s {\n    notify(\"audit\", \"sale event for {s.phone}\")\n}\n",
        )
        .expect("checks");
    engine.load(program).expect("load");
    let event = || Event::new("shop.sale", json!({"phone": "+4915112345678"}));
    let reports = engine
        .dispatch_once_to("offer", "row-1", event())
        .await
        .expect("dispatch");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].flow, "offer");
    assert_eq!(
        recorder.notifications(),
        [("sales".to_string(), "offer to +4915112345678".to_string())]
    );
    // The same id again runs nothing again; plain dispatch starts both.
    engine
        .dispatch_once_to("offer", "row-1", event())
        .await
        .expect("dispatch");
    assert_eq!(recorder.notifications().len(), 1);
    assert_eq!(engine.dispatch(event()).await.expect("dispatch").len(), 2);
    assert_eq!(recorder.notifications().len(), 3);
}
