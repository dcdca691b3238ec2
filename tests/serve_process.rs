//! `flowc serve` as a process: signed webhooks in, Cloud API sends out (to a
//! wiremock Graph API on loopback), SIGKILL at chosen points and a restart on
//! the same SQLite database. Each message is sent exactly once, and a wait
//! that fell due while the service was down runs right after it starts.
//!
//! Every test builds its own project in a temporary folder, starts the real
//! binary (`CARGO_BIN_EXE_flowc`) on a free port with `--lease 2s`, and bounds
//! every wait with a deadline. A [`Server`] guard kills its process when it
//! goes out of scope, also when a test fails, and then prints the process's
//! log.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowc::serve::webhook::signature_header;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

const APP_SECRET: &str = "app-secret-for-tests";
const VERIFY_TOKEN: &str = "verify-token-for-tests";
const ACCESS_TOKEN: &str = "EAAGtest-access-token";
const EVENTS_TOKEN: &str = "events-token-for-tests";
const PHONE_NUMBER_ID: &str = "106540352242922";
const SENDER_PATH: &str = "/v21.0/106540352242922";
const MESSAGES_PATH: &str = "/v21.0/106540352242922/messages";
/// The customer of most tests, as WhatsApp writes it (`from`, `wa_id`).
const ANNA: &str = "4915112345678";
/// Another customer.
const BEN: &str = "4915112345679";
/// A customer whose messages must never start anything.
const MALLORY: &str = "4915112345670";

/// How long a server may take to answer `/healthz` after it is spawned.
const STARTUP: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
[whatsapp]
base_url = "{BASE_URL}"
access_token_env = "FLOWC_TEST_TOKEN"
timeout = "10s"

[senders.office]
phone_number_id = "106540352242922"
phone = "+4930901820"

[templates.received]
language = "en"
category = "utility"
body = "Hello {{1}}, we got your message: {{2}}"

[templates.follow_up]
language = "en"
category = "utility"
body = "Hello, we are still here if you need anything."
"#;

// ---------------------------------------------------------------------------
// The Graph API mock
// ---------------------------------------------------------------------------

/// A request to the messages endpoint, as the mock saw it.
#[derive(Debug, Clone)]
struct Send {
    at: Instant,
    body: Value,
    authorization: Option<String>,
}

/// A wiremock Graph API: the sender is CONNECTED and GREEN; every send is
/// accepted with `wamid.N` and recorded with the time it arrived.
struct Graph {
    server: MockServer,
    sends: Arc<Mutex<Vec<Send>>>,
    status_reads: Arc<AtomicUsize>,
}

impl Graph {
    async fn start() -> Graph {
        Graph::with_delays(Duration::ZERO, Duration::ZERO).await
    }

    /// `send_delay`: how long every send's answer takes;
    /// `first_status_delay`: how long the first sender-status read takes.
    async fn with_delays(send_delay: Duration, first_status_delay: Duration) -> Graph {
        let server = MockServer::start().await;
        let status_reads = Arc::new(AtomicUsize::new(0));
        let reads = status_reads.clone();
        Mock::given(method("GET"))
            .and(path(SENDER_PATH))
            .respond_with(move |_: &Request| {
                let n = reads.fetch_add(1, Ordering::SeqCst);
                let answer = ResponseTemplate::new(200).set_body_json(json!({
                    "id": PHONE_NUMBER_ID,
                    "display_phone_number": "+49 30 901820",
                    "status": "CONNECTED",
                    "quality_rating": "GREEN",
                }));
                if n == 0 {
                    answer.set_delay(first_status_delay)
                } else {
                    answer
                }
            })
            .mount(&server)
            .await;
        let sends = Arc::new(Mutex::new(Vec::new()));
        let log = sends.clone();
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .respond_with(move |request: &Request| {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push(Send {
                    at: Instant::now(),
                    body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
                    authorization: request
                        .headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from),
                });
                let n = log.len();
                ResponseTemplate::new(200)
                    .set_body_json(json!({
                        "messaging_product": "whatsapp",
                        "contacts": [{"input": "+4915112345678", "wa_id": ANNA}],
                        "messages": [{"id": format!("wamid.{n}")}],
                    }))
                    .set_delay(send_delay)
            })
            .mount(&server)
            .await;
        Graph {
            server,
            sends,
            status_reads,
        }
    }

    fn uri(&self) -> String {
        self.server.uri()
    }

    fn sends(&self) -> Vec<Send> {
        self.sends.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until at least `n` sends arrived; panics at the deadline.
    async fn wait_sends(&self, n: usize, within: Duration) -> Vec<Send> {
        let deadline = Instant::now() + within;
        loop {
            let sends = self.sends();
            if sends.len() >= n {
                return sends;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} sends within {within:?}, the mock saw {}: {:#?}",
                sends.len(),
                bodies(&sends)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn bodies(sends: &[Send]) -> Vec<Value> {
    sends.iter().map(|s| s.body.clone()).collect()
}

/// The exact body of a template send to `to` (digits).
fn template_body(to: &str, template: &str, variables: &[&str]) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {"name": template, "language": {"code": "en"}},
    });
    if !variables.is_empty() {
        let parameters: Vec<Value> = variables
            .iter()
            .map(|v| json!({"type": "text", "text": v}))
            .collect();
        body["template"]["components"] = json!([{"type": "body", "parameters": parameters}]);
    }
    body
}

// ---------------------------------------------------------------------------
// The project and the process
// ---------------------------------------------------------------------------

/// A project folder: flow.toml pointing at the mock, the flows, the store.
struct Project {
    dir: tempfile::TempDir,
    flows: Vec<PathBuf>,
    starts: AtomicUsize,
}

impl Project {
    fn new(graph: &Graph, flows: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().expect("a temporary folder");
        fs::write(
            dir.path().join("flow.toml"),
            CONFIG.replace("{BASE_URL}", &graph.uri()),
        )
        .expect("flow.toml is written");
        let flows = flows
            .iter()
            .map(|(name, source)| {
                let file = dir.path().join(name);
                fs::write(&file, source).expect("the flow is written");
                file
            })
            .collect();
        Project {
            dir,
            flows,
            starts: AtomicUsize::new(0),
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("flows.db")
    }

    /// Starts `flowc serve` and waits until `/healthz` answers 200. A start
    /// that loses its port to another test is retried on another port.
    async fn serve(&self) -> Server {
        for _ in 0..3 {
            let n = self.starts.fetch_add(1, Ordering::SeqCst);
            let mut server = self.spawn(n);
            match server.wait_healthy().await {
                Ok(()) => return server,
                Err(log) if log.contains("cannot listen") => continue,
                Err(log) => {
                    server.dumped = true;
                    panic!("flowc serve did not start:\n{log}");
                }
            }
        }
        panic!("flowc serve found no free port in three tries");
    }

    fn spawn(&self, n: usize) -> Server {
        let port = free_port();
        let log = self.dir.path().join(format!("serve-{n}.log"));
        let out = self.dir.path().join(format!("serve-{n}.out"));
        let child = common::flowc_process(self.dir.path())
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--store")
            .arg(self.store())
            .arg("--lease")
            .arg("2s")
            .args(&self.flows)
            .env("FLOWC_APP_SECRET", APP_SECRET)
            .env("FLOWC_VERIFY_TOKEN", VERIFY_TOKEN)
            .env("FLOWC_TEST_TOKEN", ACCESS_TOKEN)
            .env("FLOWC_EVENTS_TOKEN", EVENTS_TOKEN)
            .env("FLOWC_LOG", "info")
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("flowc serve starts");
        Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
            out,
            client: client(),
            dumped: false,
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

/// A running `flowc serve`; killed (SIGKILL) when dropped. When the test is
/// failing, its log and output are printed.
struct Server {
    child: Option<Child>,
    base: String,
    log: PathBuf,
    out: PathBuf,
    client: reqwest::Client,
    dumped: bool,
}

impl Server {
    async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}\n{}", self.logs()));
                }
            }
            if let Ok(response) = self.client.get(self.url("/healthz")).send().await {
                if response.status() == StatusCode::OK {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no healthy answer within {STARTUP:?}\n{}",
                    self.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn logs(&self) -> String {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- log ({}) ---\n{}--- stdout ---\n{}",
            self.log.display(),
            read(&self.log),
            read(&self.out)
        )
    }

    /// SIGKILL, and reap the process.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    async fn post_webhook(&self, body: &[u8]) -> (StatusCode, String) {
        let signature = signature_header(APP_SECRET.as_bytes(), body);
        self.post_webhook_with(body, Some(&signature)).await
    }

    async fn post_webhook_with(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = self
            .client
            .post(self.url("/webhook"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await.expect("the webhook answers");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    async fn post_event(&self, token: Option<&str>, body: &Value) -> (StatusCode, String) {
        let mut request = self.client.post(self.url("/events")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("/events answers");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("the server answers");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    async fn metrics(&self) -> String {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, StatusCode::OK, "/metrics: {text}");
        text
    }

    /// Waits until every `(series, value)` of `wanted` shows in `/metrics`.
    async fn wait_metrics(&self, wanted: &[(&str, f64)], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.metrics().await;
            if wanted
                .iter()
                .all(|(series, value)| metric(&text, series) == *value)
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "expected {wanted:?} within {within:?}; /metrics:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && !self.dumped {
            eprintln!("{}", self.logs());
        }
    }
}

/// The value of one series (`name` or `name{labels}`) in `/metrics`; 0 when
/// it is not there.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

fn envelope(value: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }))
    .expect("JSON")
}

fn metadata() -> Value {
    json!({"display_phone_number": "4930901820", "phone_number_id": PHONE_NUMBER_ID})
}

fn text_message(id: &str, from: &str, name: &str, text: &str) -> Vec<u8> {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [{"from": from, "id": id, "timestamp": "1764000000",
                      "type": "text", "text": {"body": text}}],
    }))
}

/// A template's quick reply, without a contact (so without a name).
fn button_reply(id: &str, from: &str, text: &str) -> Vec<u8> {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "messages": [{"from": from, "id": id, "timestamp": "1764000010",
                      "context": {"from": "4930901820", "id": "wamid.1"},
                      "type": "button", "button": {"payload": "CONFIRM", "text": text}}],
    }))
}

fn status(message_id: &str, recipient: &str, status: &str) -> Vec<u8> {
    let mut entry = json!({"id": message_id, "status": status, "timestamp": "1764000100",
                           "recipient_id": recipient});
    if status == "failed" {
        entry["errors"] = json!([{"code": 131026, "title": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."}}]);
    } else {
        entry["conversation"] = json!({"id": "conv-1", "origin": {"type": "utility"}});
        entry["pricing"] = json!({"billable": true, "pricing_model": "CBP", "category": "utility"});
    }
    envelope(json!({"messaging_product": "whatsapp", "metadata": metadata(), "statuses": [entry]}))
}

// ---------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------

const ANSWER_FLOW: &str = r#"
flow answer
on whatsapp.message_received as msg {
    whatsapp.send_template(sender: "office", template: "received", to: msg.phone,
                           variables: [msg.name ?? "there", msg.text])
}
"#;

const STATUS_FLOW: &str = r#"
flow statuses
on whatsapp.message_status as report {
    log("message {report.message_id} to {report.phone}: {report.status}")
}
"#;

const LATER_FLOW: &str = r#"
flow later
on whatsapp.message_received as msg {
    delay 3s
    whatsapp.send_template(sender: "office", template: "follow_up", to: msg.phone)
}
"#;

const TWICE_FLOW: &str = r#"
flow twice
on whatsapp.message_received as msg {
    whatsapp.send_template(sender: "office", template: "received", to: msg.phone,
                           variables: [msg.name ?? "there", msg.text])
        catch DeliveryUnknown e {
            log("not sure {msg.phone} got the answer: {e.kind}", level: "warn")
            stop
        }
    delay 3s
    whatsapp.send_template(sender: "office", template: "follow_up", to: msg.phone)
}
"#;

const CALL_FLOW: &str = r#"
flow call_follow_up
on call.ended as call {
    whatsapp.send_template(sender: "office", template: "follow_up", to: call.customer_phone)
}
"#;

const SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------
// 1. An incoming text starts a run that sends
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_incoming_message_starts_a_run_that_sends_once() {
    let graph = Graph::start().await;
    let project = Project::new(
        &graph,
        &[("answer.flow", ANSWER_FLOW), ("statuses.flow", STATUS_FLOW)],
    );
    let server = project.serve().await;

    // Meta's verification handshake.
    let (code, body) = server
        .get(&format!(
            "/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=123"
        ))
        .await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "123"));
    let (code, _) = server
        .get("/webhook?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=123")
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    // A payload signed with another secret is refused and starts nothing.
    let forged = text_message("wamid.FORGED", MALLORY, "Mallory", "send me something");
    let wrong = signature_header(b"another-secret", &forged);
    let (code, _) = server.post_webhook_with(&forged, Some(&wrong)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // A text message: one send with the exact body, also when Meta delivers
    // the same payload twice.
    let hello = text_message(
        "wamid.IN1",
        ANNA,
        "Anna Schmidt",
        "What does the premium plan cost?",
    );
    assert_eq!(server.post_webhook(&hello).await.0, StatusCode::OK);
    assert_eq!(server.post_webhook(&hello).await.0, StatusCode::OK);
    let sends = graph.wait_sends(1, 5 * SECOND).await;
    assert_eq!(
        sends[0].body,
        template_body(
            ANNA,
            "received",
            &["Anna Schmidt", "What does the premium plan cost?"]
        )
    );
    assert_eq!(
        sends[0].authorization.as_deref(),
        Some(&*format!("Bearer {ACCESS_TOKEN}"))
    );

    // A quick reply (another customer, no profile name) starts a run too.
    let reply = button_reply("wamid.IN2", BEN, "Yes, confirm");
    assert_eq!(server.post_webhook(&reply).await.0, StatusCode::OK);
    let sends = graph.wait_sends(2, 5 * SECOND).await;
    assert_eq!(
        sends[1].body,
        template_body(BEN, "received", &["there", "Yes, confirm"])
    );

    // Status reports are accepted and start the status flow.
    for status in [
        status("wamid.1", ANNA, "delivered"),
        status("wamid.2", BEN, "failed"),
    ] {
        let (code, text) = server.post_webhook(&status).await;
        assert_eq!(code, StatusCode::OK, "{text}");
    }

    let text = server
        .wait_metrics(
            &[
                ("flowc_runs_started_total", 4.0),
                ("flowc_runs_finished_total{outcome=\"completed\"}", 4.0),
                // The store catches up with the counters a moment later.
                ("flowc_pending_events", 0.0),
                ("flowc_suspended_runs", 0.0),
            ],
            5 * SECOND,
        )
        .await;
    assert_eq!(
        metric(
            &text,
            "flowc_events_total{source=\"webhook\",result=\"accepted\"}"
        ),
        4.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "flowc_events_total{source=\"webhook\",result=\"duplicate\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "flowc_events_total{source=\"webhook\",result=\"rejected\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "flowc_sends_total{outcome=\"sent\"}"),
        2.0,
        "{text}"
    );

    // Nothing more arrives: no second send of the duplicate, none for the
    // forged payload.
    tokio::time::sleep(SECOND).await;
    let sends = graph.sends();
    assert_eq!(sends.len(), 2, "{:#?}", bodies(&sends));
    assert!(sends.iter().all(|s| s.body["to"] != MALLORY));
    // The status flow logged both reports.
    let out = fs::read_to_string(&server.out).unwrap_or_default()
        + &fs::read_to_string(&server.log).unwrap_or_default();
    assert!(
        out.contains("message wamid.1 to +4915112345678: delivered"),
        "{}",
        server.logs()
    );
    assert!(
        out.contains("message wamid.2 to +4915112345679: failed"),
        "{}",
        server.logs()
    );
}

// ---------------------------------------------------------------------------
// 2. Killed before the send
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_before_its_send_sends_once_when_due() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, &[("later.flow", LATER_FLOW)]);
    let mut server = project.serve().await;

    let t0 = Instant::now();
    let hello = text_message("wamid.IN1", ANNA, "Anna Schmidt", "Hi");
    assert_eq!(server.post_webhook(&hello).await.0, StatusCode::OK);
    server
        .wait_metrics(
            &[
                ("flowc_runs_started_total", 1.0),
                ("flowc_suspended_runs", 1.0),
                ("flowc_pending_events", 0.0),
            ],
            2 * SECOND,
        )
        .await;
    server.kill();
    assert!(graph.sends().is_empty(), "nothing is sent before the delay");

    let server = project.serve().await;
    let sends = graph.wait_sends(1, 8 * SECOND).await;
    let due = sends[0].at.duration_since(t0);
    assert!(
        due >= Duration::from_millis(2950),
        "sent {due:?} after the event, before the 3s delay"
    );
    assert!(
        due <= Duration::from_millis(4500),
        "sent {due:?} after the event: late"
    );
    assert_eq!(sends[0].body, template_body(ANNA, "follow_up", &[]));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(graph.sends().len(), 1, "{:#?}", bodies(&graph.sends()));
    let text = server.metrics().await;
    assert_eq!(metric(&text, "flowc_suspended_runs"), 0.0, "{text}");
    assert_eq!(
        metric(&text, "flowc_runs_finished_total{outcome=\"completed\"}"),
        1.0,
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// 3. A wait that falls due while the server is down
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_that_fell_due_while_down_runs_right_after_the_start() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, &[("later.flow", LATER_FLOW)]);
    let mut server = project.serve().await;

    let t0 = Instant::now();
    let hello = text_message("wamid.IN1", ANNA, "Anna Schmidt", "Hi");
    assert_eq!(server.post_webhook(&hello).await.0, StatusCode::OK);
    server
        .wait_metrics(
            &[("flowc_suspended_runs", 1.0), ("flowc_pending_events", 0.0)],
            2 * SECOND,
        )
        .await;
    server.kill();

    // Down for 5 s: the run falls due at 3 s.
    tokio::time::sleep((t0 + 5 * SECOND).saturating_duration_since(Instant::now())).await;
    assert!(
        graph.sends().is_empty(),
        "nothing can be sent while the server is down"
    );
    let restarted = Instant::now();
    let _server = project.serve().await;
    let up = Instant::now();
    let sends = graph.wait_sends(1, 4 * SECOND).await;
    assert!(sends[0].at >= restarted);
    let after = sends[0].at.saturating_duration_since(up);
    assert!(after <= 2 * SECOND, "sent {after:?} after the restart");
    assert_eq!(sends[0].body, template_body(ANNA, "follow_up", &[]));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(graph.sends().len(), 1, "{:#?}", bodies(&graph.sends()));
}

// ---------------------------------------------------------------------------
// 4. Killed after the send
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_after_its_first_send_does_not_repeat_it() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, &[("twice.flow", TWICE_FLOW)]);
    let mut server = project.serve().await;

    let t0 = Instant::now();
    let hello = text_message("wamid.IN1", ANNA, "Anna Schmidt", "Hi");
    assert_eq!(server.post_webhook(&hello).await.0, StatusCode::OK);
    graph.wait_sends(1, 3 * SECOND).await;
    // The send is recorded (the observer counts it after the store has the
    // message id) and the run waits in the store.
    server
        .wait_metrics(
            &[
                ("flowc_sends_total{outcome=\"sent\"}", 1.0),
                ("flowc_suspended_runs", 1.0),
                ("flowc_pending_events", 0.0),
            ],
            2 * SECOND,
        )
        .await;
    server.kill();

    let _server = project.serve().await;
    let sends = graph.wait_sends(2, 8 * SECOND).await;
    assert_eq!(
        sends[0].body,
        template_body(ANNA, "received", &["Anna Schmidt", "Hi"])
    );
    assert_eq!(sends[1].body, template_body(ANNA, "follow_up", &[]));
    let second = sends[1].at.duration_since(t0);
    assert!(
        second >= Duration::from_millis(2950),
        "second send after {second:?}, before the delay"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(graph.sends().len(), 2, "{:#?}", bodies(&graph.sends()));
}

/// Killed while the send is on the wire: its outcome is unknown, so it is not
/// made again; the flow's `catch DeliveryUnknown` runs instead.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_during_its_send_does_not_send_again() {
    let graph = Graph::with_delays(3 * SECOND, Duration::ZERO).await;
    let project = Project::new(&graph, &[("twice.flow", TWICE_FLOW)]);
    let mut server = project.serve().await;

    let hello = text_message("wamid.IN1", ANNA, "Anna Schmidt", "Hi");
    assert_eq!(server.post_webhook(&hello).await.0, StatusCode::OK);
    graph.wait_sends(1, 3 * SECOND).await;
    server.kill();

    let server = project.serve().await;
    server
        .wait_metrics(
            &[("flowc_sends_total{outcome=\"DeliveryUnknown\"}", 1.0)],
            6 * SECOND,
        )
        .await;
    tokio::time::sleep(SECOND).await;
    let sends = graph.sends();
    assert_eq!(sends.len(), 1, "{:#?}", bodies(&sends));
    let text = server.metrics().await;
    assert_eq!(metric(&text, "flowc_suspended_runs"), 0.0, "{text}");
    assert_eq!(metric(&text, "flowc_pending_events"), 0.0, "{text}");
}

// ---------------------------------------------------------------------------
// 5. Bad requests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn bad_webhook_requests_are_refused_and_the_server_keeps_running() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, &[("answer.flow", ANSWER_FLOW)]);
    let mut server = project.serve().await;

    // Not JSON, correctly signed: 400 naming the problem.
    let (code, text) = server
        .post_webhook(b"{\"object\": \"whatsapp_business_account\", ")
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("not valid JSON"), "{text}");

    // JSON missing a key every payload has.
    let (code, text) = server
        .post_webhook(br#"{"object": "whatsapp_business_account"}"#)
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("entry"), "{text}");

    // A message without `from`.
    let body = envelope(
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
        "messages": [{"id": "wamid.X", "timestamp": "1764000000", "type": "text", "text": {"body": "hi"}}]}),
    );
    let (code, text) = server.post_webhook(&body).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("messages[0].from"), "{text}");

    // No signature, and a malformed one: 401, also for a good payload.
    let hello = text_message("wamid.IN1", ANNA, "Anna Schmidt", "Hi");
    assert_eq!(
        server.post_webhook_with(&hello, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.post_webhook_with(&hello, Some("sha256=zz")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.post_webhook_with(&hello, Some("sha1=0123")).await.0,
        StatusCode::UNAUTHORIZED
    );

    // More than 1 MiB: 413, signed or not.
    let mut huge =
        b"{\"object\": \"whatsapp_business_account\", \"entry\": [], \"pad\": \"".to_vec();
    huge.extend(vec![b'x'; (1 << 20) + 1024]);
    huge.extend(b"\"}");
    assert_eq!(
        server.post_webhook(&huge).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        server.post_webhook_with(&huge, None).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Still running and healthy; nothing was sent or started.
    assert!(server.is_running(), "{}", server.logs());
    assert_eq!(server.get("/healthz").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(graph.sends().is_empty(), "{:#?}", bodies(&graph.sends()));
    let text = server.metrics().await;
    assert_eq!(metric(&text, "flowc_runs_started_total"), 0.0, "{text}");
    assert_eq!(
        metric(
            &text,
            "flowc_events_total{source=\"webhook\",result=\"accepted\"}"
        ),
        0.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "flowc_events_total{source=\"webhook\",result=\"rejected\"}"
        ) >= 6.0,
        "{text}"
    );

    // And it still works.
    assert_eq!(server.post_webhook(&hello).await.0, StatusCode::OK);
    graph.wait_sends(1, 5 * SECOND).await;
}

/// A signed payload for another product of the same Meta app (a page,
/// Instagram) is answered 200 and ignored: `PayloadError::http_status` says
/// so, because refusing it makes Meta retry for days and may disable the
/// subscription.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_object_is_answered_200_and_ignored() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, &[("answer.flow", ANSWER_FLOW)]);
    let mut server = project.serve().await;

    let body =
        br#"{"object": "page", "entry": [{"id": "1", "time": 1764000000, "messaging": []}]}"#;
    let (code, text) = server.post_webhook(body).await;
    assert_eq!(code, StatusCode::OK, "{text}");
    assert!(server.is_running());
    assert!(graph.sends().is_empty());
}

// ---------------------------------------------------------------------------
// Host events
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn host_events_need_the_bearer_token_and_fitting_fields() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, &[("call.flow", CALL_FLOW)]);
    let mut server = project.serve().await;

    let event = json!({"id": "call_8f3a2c91", "trigger": "call.ended", "fields": {
        "customer_phone": "+4915112345678", "customer_name": "Anna Schmidt", "agent_name": "Jonas Becker",
        "outcome": "no_answer", "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "call_8f3a2c91"}});

    // Without or with a wrong token: 401, nothing starts.
    assert_eq!(
        server.post_event(None, &event).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.post_event(Some("guess"), &event).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A field that does not fit its type: 422 naming it.
    let mut bad = event.clone();
    bad["id"] = json!("call_bad");
    bad["fields"]["customer_phone"] = json!("0151/12345678");
    let (code, text) = server.post_event(Some(EVENTS_TOKEN), &bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("customer_phone"), "{text}");

    // A missing field, an unknown field: 422 naming it.
    let mut missing = event.clone();
    missing["id"] = json!("call_missing");
    missing["fields"]
        .as_object_mut()
        .expect("fields")
        .remove("agent_name");
    let (code, text) = server.post_event(Some(EVENTS_TOKEN), &missing).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("agent_name"), "{text}");
    let mut unknown = event.clone();
    unknown["id"] = json!("call_unknown");
    unknown["fields"]["agnet_name"] = json!("Jonas");
    let (code, text) = server.post_event(Some(EVENTS_TOKEN), &unknown).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("agnet_name"), "{text}");

    // The good event: 202 and one send; the same id again: 202, no second.
    let (code, text) = server.post_event(Some(EVENTS_TOKEN), &event).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{text}");
    let sends = graph.wait_sends(1, 5 * SECOND).await;
    assert_eq!(sends[0].body, template_body(ANNA, "follow_up", &[]));
    let (code, text) = server.post_event(Some(EVENTS_TOKEN), &event).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{text}");
    assert!(text.contains("duplicate"), "{text}");

    let text = server
        .wait_metrics(
            &[("flowc_runs_finished_total{outcome=\"completed\"}", 1.0)],
            3 * SECOND,
        )
        .await;
    assert_eq!(
        metric(
            &text,
            "flowc_events_total{source=\"host\",result=\"accepted\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "flowc_events_total{source=\"host\",result=\"duplicate\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "flowc_events_total{source=\"host\",result=\"rejected\"}"
        ),
        5.0,
        "{text}"
    );
    assert_eq!(metric(&text, "flowc_runs_started_total"), 1.0, "{text}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(graph.sends().len(), 1, "{:#?}", bodies(&graph.sends()));
    assert!(server.is_running());
}

// ---------------------------------------------------------------------------
// Runs executed twice
// ---------------------------------------------------------------------------

/// Killed before the send's intent is recorded (the sender-status read is
/// slow) and down for longer than the lease. At the restart the inbox still
/// holds the event (it is finished only after its runs suspend or end), and
/// the store holds the run saved under a lease that has expired: the inbox
/// worker re-dispatches the event and the timer resumes the stored run.
/// Only one message may reach the customer.
#[tokio::test(flavor = "multi_thread")]

async fn a_run_killed_before_its_send_and_down_past_the_lease_sends_once() {
    let graph = Graph::with_delays(Duration::ZERO, 5 * SECOND).await;
    let project = Project::new(&graph, &[("answer.flow", ANSWER_FLOW)]);
    let mut server = project.serve().await;

    let hello = text_message("wamid.IN1", ANNA, "Anna Schmidt", "Hi");
    assert_eq!(server.post_webhook(&hello).await.0, StatusCode::OK);
    // The run is saved and reading the sender's status.
    let deadline = Instant::now() + 3 * SECOND;
    while graph.status_reads.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the sender status was never read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    // Past the 2 s lease.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let server = project.serve().await;
    graph.wait_sends(1, 5 * SECOND).await;
    // The per-recipient pacing holds a second copy for 6 s.
    tokio::time::sleep(7 * SECOND).await;
    let sends = graph.sends();
    let text = server.metrics().await;
    assert_eq!(sends.len(), 1, "{:#?}\n{text}", bodies(&sends));
    // One execution of the run, which sent: not a second one that finds the
    // first's send under way and fails with a false `DeliveryUnknown`.
    assert_eq!(
        metric(&text, "flowc_sends_total{outcome=\"DeliveryUnknown\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "flowc_runs_finished_total{outcome=\"failed\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "flowc_runs_finished_total{outcome=\"completed\"}"),
        1.0,
        "{text}"
    );
}

/// Two messages from one customer within the pacing interval (one message
/// per 6 s per recipient): the second run waits for its slot longer than
/// the 2 s lease, so the timer claims its stored state and runs it a second
/// time. The send states must still keep it to one message per run.
#[tokio::test(flavor = "multi_thread")]

async fn a_run_paced_past_its_lease_sends_once() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, &[("answer.flow", ANSWER_FLOW)]);
    let server = project.serve().await;

    let first = text_message("wamid.IN1", ANNA, "Anna Schmidt", "Hi");
    let second = text_message("wamid.IN2", ANNA, "Anna Schmidt", "Are you there?");
    assert_eq!(server.post_webhook(&first).await.0, StatusCode::OK);
    let first_sent = graph.wait_sends(1, 3 * SECOND).await[0].at;
    assert_eq!(server.post_webhook(&second).await.0, StatusCode::OK);
    // The second answer goes out 6 s after the first; a second copy of its
    // run would take the slot after that, 12 s after the first.
    graph.wait_sends(2, 9 * SECOND).await;
    tokio::time::sleep(
        (first_sent + Duration::from_millis(13_500)).saturating_duration_since(Instant::now()),
    )
    .await;
    let sends = graph.sends();
    let text = server.metrics().await;
    assert_eq!(sends.len(), 2, "{:#?}\n{text}", bodies(&sends));
}

// ---------------------------------------------------------------------------
// Waiting for the customer (`wait for`) across a SIGKILL.

/// Asks, waits for the answer, and branches on it; a template when no answer
/// comes within `{WITHIN}`.
const QUESTION_FLOW: &str = r#"
flow question
on whatsapp.message_received as msg {
    if msg.text != "quote" {
        stop
    }
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "House or flat?")
    let answer = wait for whatsapp.message_received from msg.phone within {WITHIN} else {
        whatsapp.send_template(sender: msg.sender_id, template: "follow_up", to: msg.phone)
        stop
    }
    branch answer.text {
        "house" => whatsapp.send_text(sender: msg.sender_id, to: answer.phone, message: "Noted: a house")
        _ => whatsapp.send_text(sender: msg.sender_id, to: answer.phone, message: "Noted: something else")
    }
}
"#;

/// A text message written now: its 24-hour window is open.
fn text_message_now(id: &str, from: &str, text: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "contacts": [{"profile": {"name": "Anna Schmidt"}, "wa_id": from}],
        "messages": [{"from": from, "id": id, "timestamp": now.to_string(),
                      "type": "text", "text": {"body": text}}],
    }))
}

fn text_of(send: &Send) -> &str {
    send.body["text"]["body"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_after_a_restart_resumes_the_waiting_run_in_the_right_branch() {
    let graph = Graph::start().await;
    let flow = QUESTION_FLOW.replace("{WITHIN}", "1h");
    let project = Project::new(&graph, &[("question.flow", &flow)]);
    let mut server = project.serve().await;

    let ask = text_message_now("wamid.Q1", ANNA, "quote");
    assert_eq!(server.post_webhook(&ask).await.0, StatusCode::OK);
    let sends = graph.wait_sends(1, 5 * SECOND).await;
    assert_eq!(text_of(&sends[0]), "House or flat?");
    server
        .wait_metrics(
            &[("flowc_suspended_runs", 1.0), ("flowc_pending_events", 0.0)],
            2 * SECOND,
        )
        .await;
    // Killed between the question and its answer.
    server.kill();

    let server = project.serve().await;
    let answer = text_message_now("wamid.Q2", ANNA, "house");
    assert_eq!(server.post_webhook(&answer).await.0, StatusCode::OK);
    // Meta delivers the answer twice: it is handed over once.
    assert_eq!(server.post_webhook(&answer).await.0, StatusCode::OK);
    // The answer goes at least the pair interval (6 s) after the question:
    // the send slots are in the store, so a restart does not forget them.
    let sends = graph.wait_sends(2, 10 * SECOND).await;
    assert_eq!(text_of(&sends[1]), "Noted: a house");
    let gap = sends[1].at.duration_since(sends[0].at);
    assert!(
        gap >= Duration::from_millis(5_990),
        "answered {gap:?} after the question"
    );
    server
        .wait_metrics(
            &[("flowc_suspended_runs", 0.0), ("flowc_pending_events", 0.0)],
            2 * SECOND,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // No timeout template, no second answer.
    assert_eq!(graph.sends().len(), 2, "{:#?}", bodies(&graph.sends()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_unanswered_while_down_takes_the_timeout_branch_and_a_late_answer_is_ordinary() {
    let graph = Graph::start().await;
    let flow = QUESTION_FLOW.replace("{WITHIN}", "2s");
    let project = Project::new(&graph, &[("question.flow", &flow)]);
    let mut server = project.serve().await;

    let ask = text_message_now("wamid.Q1", ANNA, "quote");
    assert_eq!(server.post_webhook(&ask).await.0, StatusCode::OK);
    graph.wait_sends(1, 5 * SECOND).await;
    server
        .wait_metrics(&[("flowc_suspended_runs", 1.0)], 2 * SECOND)
        .await;
    server.kill();
    // Down past the timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let server = project.serve().await;
    let sends = graph.wait_sends(2, 5 * SECOND).await;
    assert_eq!(sends[1].body, template_body(ANNA, "follow_up", &[]));
    // The answer comes too late: it starts the flow afresh, which stops
    // ("house" is not "quote"), and resumes nothing.
    let late = text_message_now("wamid.Q2", ANNA, "house");
    assert_eq!(server.post_webhook(&late).await.0, StatusCode::OK);
    server
        .wait_metrics(
            &[("flowc_suspended_runs", 0.0), ("flowc_pending_events", 0.0)],
            3 * SECOND,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(graph.sends().len(), 2, "{:#?}", bodies(&graph.sends()));
}
