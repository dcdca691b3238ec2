//! Campaigns as processes: `flowc campaign start` on a real SQLite file
//! sends through the Cloud API (a wiremock Graph API on loopback), is
//! killed with SIGKILL half-way, and `flowc serve` on the same file finishes
//! the campaign: every recipient handled once, bad rows and opted-out
//! customers never sent to, the pacing limit held. And a
//! `phone_number_quality_update` webhook to `flowc serve` pauses a running
//! campaign; `flowc campaign resume` finishes it.
//!
//! Every wait has a deadline; a [`Child`] guard kills its process when the
//! test ends, also when it fails, and prints its output then.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowc::providers::sqlite::SqliteStore;
use flowc::providers::{CampaignState, RunOutcome, Store};
use flowc::serve::webhook::signature_header;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const APP_SECRET: &str = "app-secret-for-tests";
const VERIFY_TOKEN: &str = "verify-token-for-tests";
const SENDER_PATH: &str = "/v21.0/106540352242922";
const MESSAGES_PATH: &str = "/v21.0/106540352242922/messages";

/// The sends per second flow.toml allows in these tests.
const RATE: usize = 500;

fn config(base_url: &str, tier: u32) -> String {
    format!(
        r#"
[whatsapp]
base_url = "{base_url}"
access_token_env = "FLOWC_TEST_TOKEN"
timeout = "10s"

[senders.office]
phone_number_id = "106540352242922"
phone = "+4930901820"

[templates.spring_sale]
language = "en"
category = "marketing"
body = "Hi {{{{1}}}}, 20% off this week. Reply STOP to unsubscribe."

[campaigns]
tier = {tier}

[limits]
sender_per_second = {RATE}
"#
    )
}

const FLOW: &str = r#"
trigger campaign.spring_sale {
    phone: Phone
    name: String
}

flow spring_sale
on campaign.spring_sale as c {
    whatsapp.send_template(sender: "office", template: "spring_sale", to: c.phone, variables: [c.name])
}
"#;

/// A Graph API that accepts every send and records its recipient and time.
struct Graph {
    server: MockServer,
    sends: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Graph {
    async fn start() -> Graph {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(SENDER_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "106540352242922",
                "display_phone_number": "+49 30 901820",
                "status": "CONNECTED",
                "quality_rating": "GREEN",
            })))
            .mount(&server)
            .await;
        let sends = Arc::new(Mutex::new(Vec::new()));
        let log = sends.clone();
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .respond_with(move |request: &Request| {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let to = body["to"].as_str().unwrap_or("").to_string();
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push((to.clone(), Instant::now()));
                let n = log.len();
                ResponseTemplate::new(200).set_body_json(json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": format!("+{to}"), "wa_id": to}],
                    "messages": [{"id": format!("wamid.{n}")}],
                }))
            })
            .mount(&server)
            .await;
        Graph { server, sends }
    }

    fn sends(&self) -> Vec<(String, Instant)> {
        self.sends.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn wait_sends(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.sends().len() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} sends within {within:?}, saw {}",
                self.sends().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A project folder with flow.toml, the flow and the lists.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(graph: &Graph, tier: u32) -> Project {
        let dir = tempfile::tempdir().expect("a temporary folder");
        fs::write(
            dir.path().join("flow.toml"),
            config(&graph.server.uri(), tier),
        )
        .unwrap();
        fs::write(dir.path().join("sale.flow"), FLOW).unwrap();
        Project { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self) -> PathBuf {
        self.path("flows.db")
    }

    /// `flowc ARGS` in the project, with the test's environment.
    fn flowc(&self, args: &[&str], name: &str) -> Process {
        let out = self.path(&format!("{name}.out"));
        let err = self.path(&format!("{name}.err"));
        let child = common::flowc_process(self.dir.path())
            .args(args)
            .env("FLOWC_APP_SECRET", APP_SECRET)
            .env("FLOWC_VERIFY_TOKEN", VERIFY_TOKEN)
            .env("FLOWC_TEST_TOKEN", "EAAGtest-access-token")
            .env("FLOWC_LOG", "info")
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("flowc starts");
        Process {
            child: Some(child),
            out,
            err,
        }
    }

    /// Runs `flowc ARGS` to its end; its exit code and stdout.
    async fn run(&self, args: &[&str], name: &str, within: Duration) -> (i32, String) {
        let mut process = self.flowc(args, name);
        let code = process.wait(within).await;
        (code, fs::read_to_string(&process.out).unwrap_or_default())
    }
}

/// A running flowc; SIGKILLed when dropped, its output printed then if the
/// test is failing.
struct Process {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Process {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return status.code().unwrap_or(-1);
                }
            }
            assert!(
                Instant::now() < deadline,
                "flowc did not end within {within:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn output(&self) -> String {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            read(&self.out),
            read(&self.err)
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `flowc serve` on a free port, once it answers `/healthz`.
async fn serve(project: &Project, name: &str) -> (Process, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let store = project.store().display().to_string();
    let process = project.flowc(
        &[
            "serve",
            "--listen",
            &listen,
            "--store",
            &store,
            "--lease",
            "2s",
            "sale.flow",
        ],
        name,
    );
    let base = format!("http://{listen}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await {
            if response.status().is_success() {
                return (process, base);
            }
        }
        assert!(
            Instant::now() < deadline,
            "flowc serve did not start\n{}",
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A phone number of customer `i`, as written in the list.
fn phone(i: usize) -> String {
    format!("+49151{i:08}")
}

/// Waits until the campaign is in `state`.
async fn wait_state(store: &SqliteStore, id: &str, state: CampaignState, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (campaign, counts) = store.campaign(id).await.unwrap().expect("the campaign");
        if campaign.state == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "campaign {id} is {:?} after {within:?}: {counts:?}",
            campaign.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The most sends that arrived within any one second.
fn busiest_second(sends: &[(String, Instant)]) -> usize {
    let mut times: Vec<Instant> = sends.iter().map(|(_, at)| *at).collect();
    times.sort();
    let mut most = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rows_survive_a_kill_and_each_recipient_is_handled_once() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, 10_000);
    // 10,000 rows: every 200th has a bad number (50), every 100th of the
    // others is on the opt-out list (100).
    let mut list = String::from("phone,name\n");
    let mut opt_outs = String::from("phone\n");
    let mut expected = BTreeSet::new();
    let mut opted_out = BTreeSet::new();
    for i in 0..10_000 {
        if i % 200 == 199 {
            list.push_str(&format!("0151/{i},Bad {i}\n"));
        } else if i % 100 == 50 && opted_out.len() < 100 {
            list.push_str(&format!("{},Opted {i}\n", phone(i)));
            opt_outs.push_str(&format!("{}\n", phone(i)));
            opted_out.insert(phone(i)[1..].to_string());
        } else {
            list.push_str(&format!("{},Customer {i}\n", phone(i)));
            expected.insert(phone(i)[1..].to_string());
        }
    }
    assert_eq!((expected.len(), opted_out.len()), (9_850, 100));
    fs::write(project.path("customers.csv"), list).unwrap();
    fs::write(project.path("opt-outs.csv"), opt_outs).unwrap();
    let (code, out) = project
        .run(
            &[
                "opt-outs",
                "import",
                "opt-outs.csv",
                "--config",
                "flow.toml",
            ],
            "import",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("100 numbers added"), "{out}");

    let started = Instant::now();
    let mut campaign = project.flowc(
        &[
            "campaign",
            "start",
            "sale.flow",
            "--recipients",
            "customers.csv",
            "--id",
            "big",
            "--lease",
            "2s",
        ],
        "start",
    );
    graph.wait_sends(3_000, Duration::from_secs(60)).await;
    campaign.kill();
    let at_kill = graph.sends().len();
    assert!(at_kill < 9_850, "the campaign finished before the kill");

    let store = SqliteStore::open(project.store()).unwrap();
    let (read, counts) = store.campaign("big").await.unwrap().unwrap();
    assert_eq!(read.state, CampaignState::Running);
    assert_eq!((counts.skipped_bad, counts.duplicate), (50, 0));
    assert!(counts.pending > 0);

    // `flowc serve` on the same file drives running campaigns.
    let (_server, _) = serve(&project, "serve").await;
    wait_state(
        &store,
        "big",
        CampaignState::Finished,
        Duration::from_secs(120),
    )
    .await;
    // The runs a kill left mid-way go on once their lease ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.suspended_count().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "runs are left suspended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();

    let (_, counts) = store.campaign("big").await.unwrap().unwrap();
    assert_eq!(counts.started, 9_850);
    assert_eq!(counts.skipped_opted_out, 100);
    assert_eq!(counts.skipped_bad, 50);
    assert_eq!(counts.pending, 0);

    // Nobody twice, nobody opted out, nobody with a bad number.
    let sends = graph.sends();
    let mut per_recipient: HashMap<&str, usize> = HashMap::new();
    for (to, _) in &sends {
        *per_recipient.entry(to.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = per_recipient.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    let sent: BTreeSet<String> = per_recipient.keys().map(|s| s.to_string()).collect();
    assert!(sent.is_subset(&expected), "sent to someone not on the list");
    assert!(sent.is_disjoint(&opted_out));
    // A run killed between claiming its send and WhatsApp's answer is not
    // sent again (WhatsApp has no idempotency key): it ends with
    // DeliveryUnknown, for a person to check. Every other recipient got
    // exactly one message.
    let unknown: BTreeSet<String> = store
        .run_history()
        .await
        .unwrap()
        .into_iter()
        .filter(
            |r| matches!(&r.outcome, RunOutcome::Failed { kind, .. } if kind == "DeliveryUnknown"),
        )
        .filter_map(|r| {
            // `campaign:big:{line}#spring_sale#0`; row i is on line i + 2.
            let line: usize =
                r.id.strip_prefix("campaign:big:")?
                    .split('#')
                    .next()?
                    .parse()
                    .ok()?;
            Some(phone(line - 2)[1..].to_string())
        })
        .collect();
    let handled: BTreeSet<String> = sent.union(&unknown).cloned().collect();
    assert_eq!(
        handled,
        expected,
        "{} sent, {} unknown",
        sent.len(),
        unknown.len()
    );
    assert!(unknown.len() <= 64, "{} runs ended unknown", unknown.len());

    // The pacing limit held, over the kill and the restart.
    let busiest = busiest_second(&sends);
    assert!(busiest <= RATE + RATE / 20, "{busiest} sends in one second");
    eprintln!(
        "10,000 rows: {} sends ({at_kill} before the kill), {} unknown, busiest second {busiest}, {:.1} s in all",
        sends.len(),
        unknown.len(),
        elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quality_drop_webhook_pauses_the_campaign_and_resume_finishes_it() {
    let graph = Graph::start().await;
    let project = Project::new(&graph, 10_000);
    let mut list = String::from("phone,name\n");
    for i in 0..1_500 {
        list.push_str(&format!("{},Customer {i}\n", phone(i)));
    }
    fs::write(project.path("customers.csv"), list).unwrap();
    let (code, out) = project
        .run(
            &[
                "campaign",
                "start",
                "sale.flow",
                "--recipients",
                "customers.csv",
                "--id",
                "sale",
                "--no-wait",
            ],
            "start",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("campaign sale started"), "{out}");

    let (_server, base) = serve(&project, "serve").await;
    graph.wait_sends(200, Duration::from_secs(30)).await;
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{
            "field": "phone_number_quality_update",
            "value": {"display_phone_number": "4930901820", "event": "FLAGGED", "current_limit": "TIER_1K"},
        }]}]
    }))
    .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(format!("{base}/webhook"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            signature_header(APP_SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let store = SqliteStore::open(project.store()).unwrap();
    wait_state(
        &store,
        "sale",
        CampaignState::Paused,
        Duration::from_secs(10),
    )
    .await;
    // What was in flight ends; then nothing more goes out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paused_at = graph.sends().len();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(graph.sends().len(), paused_at);
    assert!(paused_at < 1_500);

    let (code, status) = project
        .run(
            &["campaign", "status", "sale", "--config", "flow.toml"],
            "status",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(code, 0, "{status}");
    assert!(status.contains("sale: paused"), "{status}");
    assert!(
        status.contains("WhatsApp flagged the number 4930901820"),
        "{status}"
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("flowc_campaigns_paused_for_quality_total 1"),
        "{metrics}"
    );

    // A person resumes; the CLI and the service both drive it now, and
    // nobody gets two messages.
    let (code, out) = project
        .run(
            &["campaign", "resume", "sale", "sale.flow", "--lease", "2s"],
            "resume",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(code, 0, "{out}");
    wait_state(
        &store,
        "sale",
        CampaignState::Finished,
        Duration::from_secs(30),
    )
    .await;
    let sends = graph.sends();
    let unique: BTreeSet<&str> = sends.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(unique.len(), sends.len(), "someone got two messages");
    let (_, counts) = store.campaign("sale").await.unwrap().unwrap();
    assert_eq!(counts.started, 1_500);
    assert_eq!(sends.len(), 1_500);
}
