//! Waiting for the customer inside a run (`wait for`), on virtual time: a
//! questionnaire answered in order, a question left unanswered, a reply
//! after the timeout, several runs waiting for the same customer, and the
//! rule whether a reply also starts flows.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use flowc::check::{Compiler, Program};
use flowc::providers::recording::Recorder;
use flowc::providers::{Clock, RunOutcome, VirtualClock, WaitKey};
use flowc::runtime::{Engine, EngineBuilder, Event, RunStatus};
use serde_json::json;

const CONFIG: &str = include_str!("../examples/flow.toml");
const CUSTOMER: &str = "+4917612345678";

/// A questionnaire: three questions, each answered within two hours.
const QUESTIONNAIRE: &str = r#"
flow questionnaire

on whatsapp.message_received as msg {
    if msg.text != "quote" {
        stop
    }
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "House or flat?")
    let building = wait for whatsapp.message_received from msg.phone within 2h else {
        notify("sales", "{msg.phone} did not say what building")
        stop
    }
    whatsapp.send_text(sender: msg.sender_id, to: building.phone, message: "Roof size?")
    let roof = wait for whatsapp.message_received from msg.phone within 2h else {
        notify("sales", "{msg.phone} did not say the roof size")
        stop
    }
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "Yearly consumption?")
    let usage = wait for whatsapp.message_received from msg.phone within 2h else {
        notify("sales", "{msg.phone} did not say the consumption")
        stop
    }
    notify("sales", "{msg.phone}: {building.text}, {roof.text}, {usage.text}")
}
"#;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

fn compile(source: &str) -> Program {
    let mut compiler = Compiler::new();
    compiler.add_source("waits.flow", source);
    compiler.add_config("flow.toml", CONFIG);
    compiler
        .check()
        .into_result()
        .unwrap_or_else(|e| panic!("does not check:\n{e}"))
}

struct Harness {
    engine: Engine,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    messages: usize,
}

impl Harness {
    fn new(source: &str) -> Harness {
        Harness::with(source, |builder| builder)
    }

    fn with(source: &str, configure: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Harness {
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(t("2026-12-01T09:00:00Z")));
        let recorder = Recorder::with_clock(clock.clone());
        let builder = Engine::builder()
            .whatsapp(recorder.whatsapp())
            .ai(recorder.ai())
            .notify(recorder.notify())
            .log(recorder.log())
            .shared_clock(clock.clone());
        let engine = configure(builder).build();
        engine.load(compile(source)).expect("load");
        Harness {
            engine,
            recorder,
            clock,
            messages: 0,
        }
    }

    /// Runs what is due until `at`, then moves the clock there.
    async fn until(&self, at: DateTime<Utc>) {
        while let Some(wake) = self.engine.store().next_wake().await.expect("next wake") {
            if wake > at {
                break;
            }
            self.clock.sleep_until(wake).await;
            self.engine.run_due().await.expect("run due");
        }
        self.clock.sleep_until(at).await;
    }

    /// The customer writes `text` `after` the previous moment.
    async fn say(&mut self, after: Duration, from: &str, text: &str) -> Vec<RunStatus> {
        let at = self.clock.now() + after;
        self.until(at).await;
        self.messages += 1;
        let event = Event::new(
            "whatsapp.message_received",
            json!({
                "phone": from, "text": text, "sender_id": "berlin-office",
                "timestamp": at.to_rfc3339(), "conversation_id": "conv-1",
                "message_id": format!("wamid.{}", self.messages),
            }),
        );
        self.engine
            .dispatch_once(&format!("wamid.{}", self.messages), event)
            .await
            .expect("dispatch")
            .into_iter()
            .map(|r| r.status)
            .collect()
    }

    async fn idle(&self) {
        self.engine.run_until_idle().await.expect("idle");
    }

    fn texts(&self) -> Vec<(String, DateTime<Utc>)> {
        self.recorder
            .whatsapp()
            .attempts()
            .into_iter()
            .map(|a| (format!("{:?}", a.kind), a.at))
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        self.recorder
            .notifications()
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    }

    async fn outcomes(&self) -> Vec<RunOutcome> {
        let history = self.engine.store().run_history().await.expect("history");
        history.into_iter().map(|r| r.outcome).collect()
    }

    async fn waiting(&self, key: &str) -> usize {
        let wait = WaitKey {
            trigger: "whatsapp.message_received".into(),
            key: key.into(),
        };
        self.engine
            .store()
            .waiting_count(&wait)
            .await
            .expect("count")
    }
}

#[tokio::test(start_paused = true)]
async fn three_questions_answered_in_order() {
    let mut h = Harness::new(QUESTIONNAIRE);
    let first = h.say(Duration::zero(), CUSTOMER, "quote").await;
    assert_eq!(first, vec![RunStatus::Suspended(t("2026-12-01T11:00:00Z"))]);
    assert_eq!(h.waiting(CUSTOMER).await, 1);
    h.say(Duration::minutes(5), CUSTOMER, "house").await;
    h.say(Duration::minutes(10), CUSTOMER, "80 m2").await;
    h.say(Duration::hours(1), CUSTOMER, "4500 kWh").await;
    h.idle().await;
    assert_eq!(
        h.notes(),
        vec![format!("{CUSTOMER}: house, 80 m2, 4500 kWh")]
    );
    // Each question right when the previous answer came; the answers
    // started no run of their own.
    let times: Vec<DateTime<Utc>> = h.texts().into_iter().map(|(_, at)| at).collect();
    assert_eq!(
        times,
        vec![
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T09:05:00Z"),
            t("2026-12-01T09:15:00Z"),
        ]
    );
    assert_eq!(h.outcomes().await, vec![RunOutcome::Completed]);
    assert_eq!(h.waiting(CUSTOMER).await, 0);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_question_takes_the_else_block_at_the_timeout() {
    let mut h = Harness::new(QUESTIONNAIRE);
    h.say(Duration::zero(), CUSTOMER, "quote").await;
    h.say(Duration::minutes(30), CUSTOMER, "flat").await;
    h.idle().await;
    assert_eq!(
        h.notes(),
        vec![format!("{CUSTOMER} did not say the roof size")]
    );
    assert_eq!(h.texts().len(), 2);
    assert_eq!(h.outcomes().await, vec![RunOutcome::Stopped]);
    let history = h.engine.store().run_history().await.expect("history");
    assert_eq!(history[0].finished_at, t("2026-12-01T11:30:00Z"));
}

#[tokio::test(start_paused = true)]
async fn a_reply_after_the_timeout_does_not_resume_the_run() {
    let mut h = Harness::new(QUESTIONNAIRE);
    h.say(Duration::zero(), CUSTOMER, "quote").await;
    // Three hours later: the wait timed out at 11:00.
    let late = h.say(Duration::hours(3), CUSTOMER, "house").await;
    h.idle().await;
    assert_eq!(
        h.notes(),
        vec![format!("{CUSTOMER} did not say what building")]
    );
    // The late reply is an ordinary message: it starts the flow, which
    // stops at once ("house" is not "quote").
    assert_eq!(late, vec![RunStatus::Finished(RunOutcome::Stopped)]);
    assert_eq!(
        h.outcomes().await,
        vec![RunOutcome::Stopped, RunOutcome::Stopped]
    );
    assert_eq!(h.texts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn several_runs_waiting_for_the_same_customer_all_get_the_reply() {
    let source = r#"
flow first
on whatsapp.message_received as msg {
    if msg.text != "start" {
        stop
    }
    let reply = wait for whatsapp.message_received from msg.phone within 1d else {
        stop
    }
    notify("first", reply.text)
}

flow second
on whatsapp.message_received as msg {
    if msg.text != "start" {
        stop
    }
    let reply = wait for whatsapp.message_received from msg.phone within 1d else {
        stop
    }
    notify("second", reply.text)
}
"#;
    let mut h = Harness::new(source);
    h.say(Duration::zero(), CUSTOMER, "start").await;
    assert_eq!(h.waiting(CUSTOMER).await, 2);
    // Another customer's message wakes neither.
    h.say(Duration::minutes(1), "+4915112345678", "hello").await;
    assert_eq!(h.waiting(CUSTOMER).await, 2);
    h.say(Duration::minutes(1), CUSTOMER, "yes").await;
    h.idle().await;
    let mut notes = h.notes();
    notes.sort();
    assert_eq!(notes, vec!["yes".to_string(), "yes".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_reply_starts_flows_only_when_configured() {
    let mut quiet = Harness::new(QUESTIONNAIRE);
    quiet.say(Duration::zero(), CUSTOMER, "quote").await;
    let reports = quiet.say(Duration::minutes(1), CUSTOMER, "house").await;
    // Only the waiting run went on.
    assert_eq!(reports.len(), 1);

    let mut both = Harness::with(QUESTIONNAIRE, |b| b.replies_start_flows(true));
    both.say(Duration::zero(), CUSTOMER, "quote").await;
    let reports = both.say(Duration::minutes(1), CUSTOMER, "house").await;
    // The waiting run, and a new run that stops ("house" is not "quote").
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1], RunStatus::Finished(RunOutcome::Stopped));
}

#[tokio::test(start_paused = true)]
async fn the_statement_form_goes_on_after_the_reply_or_the_timeout() {
    let source = r#"
flow nudge
on whatsapp.message_received as msg {
    if msg.text != "start" {
        stop
    }
    wait for whatsapp.message_received from msg.phone within 3d else {
        notify("sales", "no reply")
    }
    notify("sales", "done")
}
"#;
    let mut h = Harness::new(source);
    h.say(Duration::zero(), CUSTOMER, "start").await;
    h.idle().await;
    assert_eq!(h.notes(), vec!["no reply", "done"]);
    h.say(Duration::zero(), CUSTOMER, "start").await;
    h.say(Duration::hours(1), CUSTOMER, "hi").await;
    h.idle().await;
    assert_eq!(h.notes(), vec!["no reply", "done", "done"]);
}

#[tokio::test(start_paused = true)]
async fn a_reply_delivered_again_starts_nothing() {
    let mut h = Harness::new(QUESTIONNAIRE);
    h.say(Duration::zero(), CUSTOMER, "quote").await;
    h.say(Duration::minutes(1), CUSTOMER, "house").await;
    // The same message again (a crash before it left the inbox).
    let event = Event::new(
        "whatsapp.message_received",
        json!({
            "phone": CUSTOMER, "text": "house", "sender_id": "berlin-office",
            "timestamp": "2026-12-01T09:01:00Z", "conversation_id": "conv-1",
            "message_id": "wamid.2",
        }),
    );
    let again = h
        .engine
        .dispatch_once("wamid.2", event)
        .await
        .expect("dispatch");
    assert!(again.is_empty(), "{again:?}");
}

// ---------------------------------------------------------------------------
// What the checker knows about a wait.

/// The codes of the diagnostics of `body` in a flow on `trigger`.
fn codes(trigger: &str, binding: &str, body: &str) -> Vec<String> {
    let mut compiler = Compiler::new();
    compiler.add_source(
        "w.flow",
        format!("flow w\non {trigger} as {binding} {{\n{body}\n}}\n"),
    );
    compiler.add_config("flow.toml", CONFIG);
    let checked = compiler.check();
    checked
        .diagnostics
        .iter()
        .map(|d| d.code.as_str().to_string())
        .collect()
}

#[test]
fn an_answer_opens_the_window_for_free_text() {
    // A call does not open a window; the answer does, for its phone and the key.
    let body = r#"
    whatsapp.send_template(sender: "berlin-office", template: "missed_you", to: call.customer_phone)
    let reply = wait for whatsapp.message_received from call.customer_phone within 3d else {
        stop
    }
    whatsapp.send_text(sender: reply.sender_id, to: reply.phone, message: "Thanks!")
    whatsapp.send_text(sender: reply.sender_id, to: call.customer_phone, message: "Thanks!")
    delay 23h
    whatsapp.send_text(sender: reply.sender_id, to: reply.phone, message: "Still here.")
"#;
    assert_eq!(codes("call.ended", "call", body), Vec::<String>::new());
}

#[test]
fn the_window_closes_a_day_after_the_answer() {
    let body = r#"
    let reply = wait for whatsapp.message_received from call.customer_phone within 3d else {
        stop
    }
    delay 1d
    whatsapp.send_text(sender: reply.sender_id, to: reply.phone, message: "Late.")
"#;
    assert_eq!(codes("call.ended", "call", body), vec!["F3008"]);
}

#[test]
fn without_an_answer_the_wait_counts_against_the_window() {
    // The customer wrote; after a 2-day wait without an answer the window is closed.
    let body = r#"
    wait for whatsapp.message_received from msg.phone within 2d else {
        whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "Hello?")
    }
"#;
    assert_eq!(
        codes("whatsapp.message_received", "msg", body),
        vec!["F3008"]
    );
    // A short wait leaves it open.
    let body = r#"
    wait for whatsapp.message_received from msg.phone within 2h else {
        whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "Hello?")
    }
"#;
    assert_eq!(
        codes("whatsapp.message_received", "msg", body),
        Vec::<String>::new()
    );
}

#[test]
fn the_key_must_fit_the_correlation_field() {
    let body = r#"
    wait for whatsapp.message_received from 42 within 2h else {
        stop
    }
"#;
    assert_eq!(codes("call.ended", "call", body), vec!["F2003"]);
    let body = r#"
    wait for whatsapp.message_received from "0151 1234" within 2h else {
        stop
    }
"#;
    assert_eq!(codes("call.ended", "call", body), vec!["F3001"]);
}

#[test]
fn a_branch_on_the_answer_is_checked_against_the_offered_ids() {
    let body = r#"
    whatsapp.send_buttons(sender: msg.sender_id, to: msg.phone, body: "Yes or no?",
        buttons: [{ id: "yes", title: "Yes" }, { id: "no", title: "No" }])
    let reply = wait for whatsapp.message_received from msg.phone within 1h else {
        stop
    }
    branch reply.reply_id ?? "" {
        "yes" => stop
        "maybe" => stop
        _ => stop
    }
"#;
    assert_eq!(
        codes("whatsapp.message_received", "msg", body),
        vec!["F4008"]
    );
}

#[test]
fn conversations_in_flow_toml() {
    use flowc::config::Config;
    use flowc::source::FileId;

    let (config, diagnostics) = Config::parse("", FileId(0));
    assert!(diagnostics.is_empty());
    assert!(!config.conversations.replies_start_flows);
    let (config, diagnostics) =
        Config::parse("[conversations]\nreplies_start_flows = true\n", FileId(0));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert!(config.conversations.replies_start_flows);
    let (_, diagnostics) = Config::parse(
        "[conversations]\nreplies_start_flows = \"yes\"\nreply_starts = 1\n",
        FileId(0),
    );
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes.len(), 2, "{diagnostics:?}");
}

#[tokio::test(start_paused = true)]
async fn free_text_right_after_the_answer_reaches_a_customer_whose_window_was_closed() {
    let source = r#"
flow after_call
on call.ended as call {
    whatsapp.send_template(sender: "berlin-office", template: "missed_you", to: call.customer_phone)
    let reply = wait for whatsapp.message_received from call.customer_phone within 3d else {
        stop
    }
    whatsapp.send_text(sender: reply.sender_id, to: reply.phone, message: "Thanks for your answer!")
}
"#;
    let mut h = Harness::new(source);
    let call = Event::new(
        "call.ended",
        json!({
            "customer_phone": CUSTOMER, "agent_name": "Jonas", "outcome": "no_answer",
            "ended_at": "2026-12-01T09:00:00Z", "call_id": "c-1",
        }),
    );
    h.engine.dispatch(call).await.expect("dispatch");
    h.say(Duration::hours(5), CUSTOMER, "Call me back").await;
    h.idle().await;
    assert_eq!(h.outcomes().await, vec![RunOutcome::Completed]);
    assert_eq!(h.recorder.texts().len(), 1);
}

/// A project whose own trigger correlates by order, for the redeploy test.
const ORDER_QUESTION: &str = r#"
@correlate(order)
trigger shop.order_answer {
    order: String
    FIELD
}

trigger shop.order_placed {
    order: String
}

flow order_question

on shop.order_placed as placed {
    let answer = wait for shop.order_answer from placed.order within 1d else {
        stop
    }
    notify("sales", "{placed.order}: {answer.choice}")
}
"#;

fn order_project(field: &str) -> String {
    ORDER_QUESTION.replace("FIELD", field)
}

/// Two deploys of a project over one SQLite file, the engines sharing a
/// virtual clock and a recorder.
struct Deploys {
    clock: Arc<dyn Clock>,
    recorder: Recorder,
    store: Arc<flowc::providers::sqlite::SqliteStore>,
    _dir: tempfile::TempDir,
}

impl Deploys {
    fn new() -> Deploys {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = flowc::providers::sqlite::SqliteStore::open(dir.path().join("flows.db"))
            .expect("store");
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(t("2026-12-01T09:00:00Z")));
        Deploys {
            recorder: Recorder::with_clock(clock.clone()),
            clock,
            store: Arc::new(store),
            _dir: dir,
        }
    }

    fn deploy(&self, source: &str) -> Engine {
        let engine = Engine::builder()
            .notify(self.recorder.notify())
            .log(self.recorder.log())
            .shared_clock(self.clock.clone())
            .shared_store(self.store.clone())
            .build();
        engine.load(compile(source)).expect("load");
        engine
    }
}

fn not_resumed(reports: &[flowc::runtime::RunReport]) -> Vec<String> {
    reports
        .iter()
        .filter_map(|r| match &r.status {
            RunStatus::NotResumed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_run_the_new_deploy_cannot_go_on_with_is_kept_for_the_next() {
    use flowc::providers::Store as _;
    let deploys = Deploys::new();
    let first = deploys.deploy(&order_project("choice: String"));
    let placed = Event::new("shop.order_placed", json!({"order": "A-17"}));
    first.dispatch(placed).await.expect("dispatch");

    // A deploy without the flow: the answer is taken for the waiting run,
    // which cannot go on here and goes back to the store with it.
    let without = deploys.deploy("flow other\n\non shop.order_placed as p {\n    stop\n}\n\n@correlate(order)\ntrigger shop.order_answer {\n    order: String\n    choice: String\n}\n\ntrigger shop.order_placed {\n    order: String\n}\n");
    let answer = Event::new(
        "shop.order_answer",
        json!({"order": "A-17", "choice": "red"}),
    );
    let reports = without
        .dispatch_once("answer-1", answer)
        .await
        .expect("dispatch");
    assert_eq!(
        not_resumed(&reports),
        vec!["no loaded program has its flow `order_question`".to_string()]
    );
    assert_eq!(deploys.store.suspended_count().await.expect("count"), 1);
    let error = without
        .run_until_idle()
        .await
        .expect_err("cannot become idle");
    assert!(
        error
            .to_string()
            .contains("no loaded program has its flow `order_question`"),
        "{error}"
    );

    // A deploy whose trigger no longer fits the received answer: kept again.
    let changed = deploys.deploy(&order_project("choice: Int"));
    deploys
        .clock
        .sleep_until(deploys.clock.now() + Duration::minutes(6))
        .await;
    let reports = changed.run_due().await.expect("run due");
    let reasons = not_resumed(&reports);
    assert_eq!(reasons.len(), 1, "{reports:?}");
    assert!(
        reasons[0].starts_with("the event it received no longer fits its trigger"),
        "{}",
        reasons[0]
    );

    // The flow deployed back: the run goes on with the answer it received.
    let fixed = deploys.deploy(&order_project("choice: String"));
    let reports = fixed.run_until_idle().await.expect("idle");
    assert_eq!(
        reports.iter().map(|r| &r.status).collect::<Vec<_>>(),
        vec![&RunStatus::Finished(RunOutcome::Completed)]
    );
    assert_eq!(
        deploys
            .recorder
            .notifications()
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>(),
        vec!["A-17: red".to_string()]
    );
    assert_eq!(deploys.store.suspended_count().await.expect("count"), 0);
}

/// A trigger of the host's whose correlation field is a number: the key is
/// the number's text, and the event reaches the run waiting for it.
const ORDER_UPDATES: &str = r#"
## An order changed.
@correlate(order)
trigger shop.order_update {
    ## The order's number.
    order: Int
    ## Its new status.
    status: String
}

flow tracking

on shop.order_update as update {
    if update.status != "placed" {
        stop
    }
    let next = wait for shop.order_update from update.order within 1h else {
        notify("shop", "no news of order {update.order}")
        stop
    }
    notify("shop", "order {update.order}: {next.status}")
}
"#;

#[tokio::test(start_paused = true)]
async fn a_number_as_the_correlation_key_delivers_to_its_run() {
    let h = Harness::new(ORDER_UPDATES);
    let update = |order: i64, status: &str| {
        Event::new(
            "shop.order_update",
            json!({"order": order, "status": status}),
        )
    };
    let placed = h
        .engine
        .dispatch(update(7, "placed"))
        .await
        .expect("dispatch");
    assert!(matches!(placed[0].status, RunStatus::Suspended(_)));
    let wait = WaitKey {
        trigger: "shop.order_update".into(),
        key: "7".into(),
    };
    let waiting = h.engine.store().waiting_count(&wait).await.expect("count");
    assert_eq!(waiting, 1);
    // Another order's update is not this run's; it starts a run of its own
    // that stops at once.
    h.engine
        .dispatch(update(8, "shipped"))
        .await
        .expect("dispatch");
    assert!(h.notes().is_empty());
    h.engine
        .dispatch(update(7, "shipped"))
        .await
        .expect("dispatch");
    assert_eq!(h.notes(), vec!["order 7: shipped"]);
}
