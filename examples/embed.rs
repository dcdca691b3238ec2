//! Embedding flowc: check a flow together with its `flow.toml`, run an event
//! through it, fast-forward through its wait, and print what was sent.
//!
//! ```sh
//! cargo run --example embed
//! ```
//!
//! The providers here are the recording fakes, which keep what the flow did
//! for the host to inspect; `flowc::providers::console::Console` prints
//! instead, and a real deployment plugs in its WhatsApp and AI clients. No
//! network is used, and the 10-minute wait takes no real time.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use flowc::check::Compiler;
use flowc::providers::recording::Recorder;
use flowc::providers::{Clock, VirtualClock};
use flowc::runtime::{Engine, Event, RunStatus};

/// The flow, as a customer would write it.
const FLOW: &str = r#"
flow call_follow_up

on call.ended as call {
    delay 10m
    branch call.outcome {
        "no_answer" => whatsapp.send_template(
            sender: "berlin-office",
            template: "missed_you",
            to: call.customer_phone,
            variables: [call.customer_name ?? "there", call.agent_name],
        )
        _ => log("no follow-up for outcome {call.outcome}")
    }
}
"#;

/// The project's senders and approved templates.
const CONFIG: &str = r#"
[senders.berlin-office]
phone_number_id = "106540352242922"

[templates.missed_you]
language = "en"
category = "utility"
body = "Hello {{1}}, {{2}} tried to call you today. Reply here or call us back any time."
"#;

/// What the phone system sends when a call ends.
const EVENT: &str = r#"{
    "trigger": "call.ended",
    "fields": {
        "customer_phone": "+4915112345678",
        "customer_name": "Anna",
        "agent_name": "Jonas",
        "outcome": "no_answer",
        "ended_at": "2026-12-01T10:00:00+01:00",
        "call_id": "call_1"
    }
}"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A paused runtime: tokio jumps to the next timer whenever all tasks
    // wait, so every wait ends at once, at its exact virtual instant.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        // 1. Check the flow; the program is the runtime's input.
        let mut compiler = Compiler::new();
        compiler.add_source("call_follow_up.flow", FLOW);
        compiler.add_config("flow.toml", CONFIG);
        let program = compiler.check().into_result()?;

        // 2. An engine on recording providers and a virtual clock.
        let start = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::starting_at(start));
        let recorder = Recorder::with_clock(clock.clone());
        let engine = Engine::builder()
            .whatsapp(recorder.whatsapp())
            .log(recorder.log())
            .shared_clock(clock)
            .build();
        engine.load(program)?;

        // 3. Dispatch the event: the run starts and waits in the store.
        for report in engine.dispatch(Event::from_json(EVENT)?).await? {
            if let RunStatus::Suspended(until) = report.status {
                println!("{} waits until {until}", report.flow);
            }
        }

        // 4. Fast-forward: resume waiting runs until none is left.
        engine.run_until_idle().await?;

        // 5. What was sent, with the (virtual) time of each send.
        print!("{}", recorder.transcript());
        for template in recorder.templates() {
            println!("{}", template.preview().unwrap_or_default());
        }
        Ok(())
    })
}
