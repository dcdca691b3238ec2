//! Campaigns through the library on virtual time: a list becomes one run
//! per recipient, bad rows, duplicates and opted-out customers are skipped
//! and counted, each recipient is started once, the tier holds across a
//! restart, quiet hours defer in the customer's zone, a quality drop pauses
//! and a resume finishes, stop words opt customers out of marketing.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use flowc::campaign::runner::{CampaignError, CampaignOptions, CampaignOutcome};
use flowc::campaign::{OptOutRecord, QualityUpdate};
use flowc::check::{Compiler, Program};
use flowc::providers::recording::{EffectKind, Recorder};
use flowc::providers::{
    CampaignState, Clock, MemoryStore, RecipientState, SenderStatus, Store, VirtualClock,
};
use flowc::runtime::{Engine, Event, RunStatus};
use serde_json::json;

const FLOWS: &str = r#"
trigger campaign.spring_sale {
    phone: Phone
    name: String
}

flow spring_sale
on campaign.spring_sale as c {
    whatsapp.send_template(sender: "berlin-office", template: "spring_sale", to: c.phone, variables: [c.name])
}

flow stop_words
on whatsapp.message_received as msg {
    whatsapp.send_template(sender: msg.sender_id, template: "spring_sale", to: msg.phone, variables: ["you"])
        catch OptedOut e { log("not sent: {e.kind}") }
}
"#;

fn config(campaigns: &str) -> String {
    format!(
        r#"
[senders.berlin-office]
phone_number_id = "106540352242922"
phone = "+4930901820"

[templates.spring_sale]
language = "en"
category = "marketing"
body = "Hi {{{{1}}}}, 20% off this week. Reply STOP to unsubscribe."

[campaigns]
{campaigns}
"#
    )
}

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

fn compile(campaigns: &str) -> Program {
    let mut compiler = Compiler::new();
    compiler.add_source("sale.flow", FLOWS);
    compiler.add_config("flow.toml", config(campaigns));
    compiler
        .check()
        .into_result()
        .unwrap_or_else(|e| panic!("does not check:\n{e}"))
}

struct Harness {
    engine: Engine,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
    campaigns: String,
}

impl Harness {
    fn new(campaigns: &str, start: &str) -> Harness {
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(t(start)));
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        Harness::on(campaigns, clock, store)
    }

    fn on(campaigns: &str, clock: Arc<dyn Clock>, store: Arc<dyn Store>) -> Harness {
        let recorder = Recorder::with_clock(clock.clone());
        let engine = Engine::builder()
            .whatsapp(recorder.whatsapp())
            .notify(recorder.notify())
            .log(recorder.log())
            .shared_clock(clock.clone())
            .shared_store(store.clone())
            .build();
        engine.load(compile(campaigns)).expect("load");
        Harness {
            engine,
            recorder,
            clock,
            store,
            dir: tempfile::tempdir().expect("a temporary folder"),
            campaigns: campaigns.to_string(),
        }
    }

    /// The same store and clock, a new engine: a restarted process.
    fn restart(&self) -> Harness {
        Harness::on(&self.campaigns, self.clock.clone(), self.store.clone())
    }

    fn list(&self, rows: &[&str]) -> PathBuf {
        let path = self.dir.path().join("customers.csv");
        let mut text = String::from("phone,name\n");
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        std::fs::write(&path, text).expect("the list is written");
        path
    }

    async fn start(&self, rows: &[&str]) -> String {
        let options = CampaignOptions {
            id: Some("spring".into()),
            ..CampaignOptions::default()
        };
        let (id, _) = self
            .engine
            .start_campaign(&self.list(rows), options)
            .await
            .expect("the campaign starts");
        id
    }

    /// Recipients of the sends, in order, with the time they went out.
    fn sends(&self) -> Vec<(String, DateTime<Utc>)> {
        self.recorder
            .effects()
            .into_iter()
            .filter_map(|e| match e.kind {
                EffectKind::Template(message) => Some((message.to, e.at)),
                _ => None,
            })
            .collect()
    }

    fn sent_to(&self) -> Vec<String> {
        self.sends().into_iter().map(|(to, _)| to).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_list_starts_one_run_per_recipient_and_skips_bad_rows_duplicates_and_opt_outs() {
    let h = Harness::new("tier = 1000", "2026-06-01T09:00:00Z");
    h.store
        .import_opt_outs(vec![OptOutRecord {
            phone: "+4915100000004".into(),
            opted_out_at: None,
            source: "import".into(),
        }])
        .await
        .unwrap();
    let id = h
        .start(&[
            "+4915100000001,Anna",
            "0151/1234,Bad",
            "+4915100000002,Ben",
            "+4915100000001,Anna again",
            "+4915100000004,Opted",
            "+4915100000005,Eve",
        ])
        .await;
    let status = h.engine.campaign_status(&id).await.unwrap();
    assert_eq!(status.campaign.state, CampaignState::Running);
    assert_eq!(status.counts.pending, 4);
    assert_eq!(status.counts.skipped_bad, 1);
    assert_eq!(status.counts.duplicate, 1);

    let outcome = h.engine.run_campaign(&id).await.unwrap();
    assert_eq!(outcome, CampaignOutcome::Finished);
    assert_eq!(
        h.sent_to(),
        ["+4915100000001", "+4915100000002", "+4915100000005"]
    );
    let status = h.engine.campaign_status(&id).await.unwrap();
    assert_eq!(status.campaign.state, CampaignState::Finished);
    assert_eq!(
        (
            status.counts.started,
            status.counts.skipped_opted_out,
            status.counts.pending
        ),
        (3, 1, 0)
    );
    assert_eq!(status.counts.total(), 6);
    let recipients = h.store.campaign_recipients(&id).await.unwrap();
    let started = recipients
        .iter()
        .find(|r| r.line == 2)
        .expect("the first row");
    assert_eq!(started.state, RecipientState::Started);
    assert_eq!(
        started.run_id.as_deref(),
        Some("campaign:spring:2#spring_sale#0")
    );

    // Driving it again, or from a restarted process, sends nothing more.
    assert_eq!(
        h.engine.run_campaign(&id).await.unwrap(),
        CampaignOutcome::Finished
    );
    assert_eq!(h.sends().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_recipient_claimed_before_a_crash_is_started_once() {
    let h = Harness::new("tier = 1000", "2026-06-01T09:00:00Z");
    let id = h
        .start(&["+4915100000001,Anna", "+4915100000002,Ben"])
        .await;
    // A process claimed both and started Anna's run, then died before
    // recording it.
    let now = h.clock.now();
    let claimed = h
        .store
        .claim_campaign_recipients(&id, now, 10, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let event = Event::new(
        "campaign.spring_sale",
        json!({"phone": "+4915100000001", "name": "Anna"}),
    );
    h.engine
        .dispatch_once(&format!("campaign:{id}:2"), event)
        .await
        .unwrap();
    assert_eq!(h.sends().len(), 1);

    // Another process takes over once the lease ends.
    let other = h.restart();
    assert_eq!(
        other.engine.run_campaign(&id).await.unwrap(),
        CampaignOutcome::Finished
    );
    assert!(other.clock.now() >= now + Duration::minutes(5));
    let all: Vec<String> = h.sent_to().into_iter().chain(other.sent_to()).collect();
    assert_eq!(all, ["+4915100000001", "+4915100000002"]);
}

#[tokio::test(start_paused = true)]
async fn the_tier_holds_across_a_restart() {
    let h = Harness::new("tier = 2", "2026-06-01T09:00:00Z");
    let start = h.clock.now();
    let id = h
        .start(&[
            "+4915100000001,A",
            "+4915100000002,B",
            "+4915100000003,C",
            "+4915100000004,D",
            "+4915100000005,E",
        ])
        .await;
    // Pause after the first two: the runner waits for the window.
    let driver = {
        let engine = h.engine.clone();
        let id = id.clone();
        tokio::spawn(async move { engine.run_campaign(&id).await })
    };
    h.clock.sleep_until(start + Duration::hours(1)).await;
    assert_eq!(h.sends().len(), 2);
    h.engine
        .pause_campaign(&id, Some("a person paused it".into()))
        .await
        .unwrap();
    let outcome = driver.await.unwrap().unwrap();
    assert_eq!(
        outcome,
        CampaignOutcome::Paused(Some("a person paused it".into()))
    );

    // A new process knows the two conversations of the last 24 hours.
    let other = h.restart();
    other.engine.resume_campaign(&id).await.unwrap();
    assert_eq!(
        other.engine.run_campaign(&id).await.unwrap(),
        CampaignOutcome::Finished
    );
    let later = other.sends();
    assert_eq!(later.len(), 3);
    assert!(
        later
            .iter()
            .all(|(_, at)| *at >= start + Duration::hours(24)),
        "{later:?}"
    );
    // Two per rolling day: the fifth waits another day.
    assert!(later[2].1 >= start + Duration::hours(48), "{later:?}");
}

#[tokio::test(start_paused = true)]
async fn quiet_hours_defer_in_the_customers_zone_and_the_others_go_on() {
    // 20:00 UTC in December: 21:00 in Berlin (quiet), 17:00 in São Paulo.
    let h = Harness::new(
        "tier = 1000\nquiet_hours = \"20:00-08:00\"",
        "2026-12-01T20:00:00Z",
    );
    let id = h
        .start(&["+4915100000001,Anna", "+5511912345678,Bruna"])
        .await;
    assert_eq!(
        h.engine.run_campaign(&id).await.unwrap(),
        CampaignOutcome::Finished
    );
    let sends = h.sends();
    assert_eq!(
        sends[0],
        ("+5511912345678".into(), t("2026-12-01T20:00:00Z"))
    );
    // 08:00 in Berlin (CET).
    assert_eq!(
        sends[1],
        ("+4915100000001".into(), t("2026-12-02T07:00:00Z"))
    );
    assert_eq!(sends.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_quality_drop_pauses_the_senders_campaigns_and_a_resume_finishes() {
    let h = Harness::new("tier = 2", "2026-06-01T09:00:00Z");
    let start = h.clock.now();
    let id = h
        .start(&["+4915100000001,A", "+4915100000002,B", "+4915100000003,C"])
        .await;
    let driver = {
        let engine = h.engine.clone();
        let id = id.clone();
        tokio::spawn(async move { engine.run_campaign(&id).await })
    };
    h.clock.sleep_until(start + Duration::hours(1)).await;
    let update = QualityUpdate::from_value(&json!({
        "display_phone_number": "4930901820",
        "event": "FLAGGED",
        "current_limit": "TIER_1K",
    }))
    .unwrap();
    let paused = h.engine.on_quality_update(&update).await.unwrap();
    assert_eq!(paused, std::slice::from_ref(&id));
    let CampaignOutcome::Paused(Some(reason)) = driver.await.unwrap().unwrap() else {
        panic!("the campaign did not pause");
    };
    assert!(reason.contains("flagged"), "{reason}");
    let status = h.engine.campaign_status(&id).await.unwrap();
    assert_eq!(
        status.campaign.pause_reason.as_deref(),
        Some(reason.as_str())
    );
    assert_eq!(status.counts.pending, 1);
    let notes = h.recorder.notifications();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].0, "team");
    assert!(notes[0].1.contains("spring"), "{notes:?}");

    // Only a person resumes.
    assert!(matches!(
        h.engine.run_campaign(&id).await.unwrap(),
        CampaignOutcome::Paused(_)
    ));
    h.engine.resume_campaign(&id).await.unwrap();
    assert_eq!(
        h.engine.run_campaign(&id).await.unwrap(),
        CampaignOutcome::Finished
    );
    assert_eq!(h.sends().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_rating_read_below_the_threshold_pauses_and_a_resume_holds_until_the_next_drop() {
    let h = Harness::new("tier = 2", "2026-06-01T09:00:00Z");
    let start = h.clock.now();
    let rating = |quality: &str| SenderStatus {
        online: true,
        quality: quality.into(),
        detail: "CONNECTED".into(),
    };
    let id = h
        .start(&["+4915100000001,A", "+4915100000002,B", "+4915100000003,C"])
        .await;
    let driver = {
        let engine = h.engine.clone();
        let id = id.clone();
        tokio::spawn(async move { engine.run_campaign(&id).await })
    };
    // Two went out; while the runner waits for the tier, the rating drops.
    h.clock.sleep_until(start + Duration::hours(1)).await;
    assert_eq!(h.sends().len(), 2);
    h.recorder
        .whatsapp()
        .set_sender_status("berlin-office", rating("YELLOW"));
    let CampaignOutcome::Paused(Some(reason)) = driver.await.unwrap().unwrap() else {
        panic!("the campaign did not pause");
    };
    assert_eq!(
        reason,
        "sender `berlin-office`: the quality rating dropped from GREEN to YELLOW \
         (campaigns pause below GREEN)"
    );
    assert_eq!(h.sends().len(), 2);
    assert_eq!(h.recorder.notifications().len(), 1);

    // A person resumes while it is still YELLOW: that holds.
    h.engine.resume_campaign(&id).await.unwrap();
    assert_eq!(
        h.engine.run_campaign(&id).await.unwrap(),
        CampaignOutcome::Finished
    );
    assert_eq!(h.sends().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_campaign_does_not_begin_below_the_threshold() {
    let h = Harness::new("tier = 1000", "2026-06-01T09:00:00Z");
    h.recorder.whatsapp().set_sender_status(
        "berlin-office",
        SenderStatus {
            online: true,
            quality: "RED".into(),
            detail: "CONNECTED".into(),
        },
    );
    let id = h.start(&["+4915100000001,A"]).await;
    let outcome = h.engine.run_campaign(&id).await.unwrap();
    assert!(
        matches!(&outcome, CampaignOutcome::Paused(Some(r)) if r.contains("the quality rating is RED")),
        "{outcome:?}"
    );
    assert!(h.sends().is_empty());
}

#[tokio::test(start_paused = true)]
async fn pause_resume_and_cancel_check_the_state() {
    let h = Harness::new("tier = 1000", "2026-06-01T09:00:00Z");
    let id = h.start(&["+4915100000001,A"]).await;
    assert!(matches!(
        h.engine.resume_campaign(&id).await,
        Err(CampaignError::State { .. })
    ));
    h.engine.cancel_campaign(&id).await.unwrap();
    assert_eq!(
        h.engine.run_campaign(&id).await.unwrap(),
        CampaignOutcome::Cancelled
    );
    assert!(h.sends().is_empty());
    let error = h.engine.pause_campaign(&id, None).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "campaign `spring` is cancelled: it cannot be paused"
    );
    assert!(matches!(
        h.engine.campaign_status("nope").await,
        Err(CampaignError::Unknown(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_list_with_a_problem_records_nothing() {
    let h = Harness::new("tier = 1000", "2026-06-01T09:00:00Z");
    let path = h.dir.path().join("bad.csv");
    std::fs::write(&path, "phone,nom\n+4915100000001,Anna\n").unwrap();
    let error = h
        .engine
        .start_campaign(&path, CampaignOptions::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("line 1"), "{error}");
    assert!(h.store.campaigns().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stop_word_opts_out_of_marketing_and_a_start_word_back_in() {
    let h = Harness::new("", "2026-06-01T09:00:00Z");
    let mut n = 0;
    let mut say = |text: &str| {
        n += 1;
        (
            format!("wamid.{n}"),
            Event::new(
                "whatsapp.message_received",
                json!({
                    "phone": "+4915112345678", "text": text, "sender_id": "berlin-office",
                    "timestamp": "2026-06-01T09:00:00Z", "conversation_id": "c",
                    "message_id": format!("wamid.{n}"),
                }),
            ),
        )
    };
    // An ordinary sentence with a stop word in it opts nobody out.
    let (id, event) = say("cancel my appointment please");
    h.engine.dispatch_once(&id, event).await.unwrap();
    assert!(!h.store.opted_out("+4915112345678").await.unwrap());
    assert_eq!(h.sends().len(), 1);

    // The stop word is recorded before the flow runs: its marketing send
    // fails with OptedOut, before any call to WhatsApp.
    let (id, event) = say("  Stopp bitte ");
    let reports = h.engine.dispatch_once(&id, event).await.unwrap();
    assert!(matches!(reports[0].status, RunStatus::Finished(_)));
    assert!(h.store.opted_out("+4915112345678").await.unwrap());
    assert_eq!(h.sends().len(), 1);
    assert!(h
        .recorder
        .logs()
        .iter()
        .any(|(_, _, line)| line == "not sent: OptedOut"));

    let (id, event) = say("START");
    h.engine.dispatch_once(&id, event).await.unwrap();
    assert!(!h.store.opted_out("+4915112345678").await.unwrap());
    assert_eq!(h.sends().len(), 2);
}
