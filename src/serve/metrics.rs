//! Counters for `/metrics`, in Prometheus' text format: events in, runs
//! started and finished, sends by outcome, and queue depth.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::providers::RunOutcome;
use crate::runtime::{Observer, RunEvent};

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    events: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    runs_started: AtomicU64,
    runs_finished: Mutex<BTreeMap<String, u64>>,
    sends: Mutex<BTreeMap<String, u64>>,
    /// Webhook events dropped, by reason (`unknown_sender`).
    dropped: Mutex<BTreeMap<String, u64>>,
    /// Events held because their conversation is handed over.
    held: AtomicU64,
    /// Campaigns the quality guard paused.
    quality_pauses: AtomicU64,
}

impl Metrics {
    /// Counts an event from `source` (`webhook`, `host`) with `result`
    /// (`accepted`, `duplicate`, `rejected`).
    pub fn event(&self, source: &'static str, result: &'static str) {
        if let Ok(mut events) = self.events.lock() {
            *events.entry((source, result)).or_default() += 1;
        }
    }

    /// Counts a webhook event dropped for `reason` (`unknown_sender`).
    pub fn dropped(&self, reason: &str) {
        Metrics::bump(&self.dropped, reason);
    }

    /// Counts campaigns the quality guard paused.
    pub fn quality_paused(&self, campaigns: usize) {
        self.quality_pauses
            .fetch_add(campaigns as u64, Ordering::Relaxed);
    }

    fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
        if let Ok(mut map) = map.lock() {
            *map.entry(key.to_string()).or_default() += 1;
        }
    }

    /// The text of `/metrics`; `pending_events` and `suspended_runs` are read
    /// from the store at scrape time.
    pub fn render(&self, pending_events: usize, suspended_runs: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP flowc_events_total Events received, by source and result."
        );
        let _ = writeln!(out, "# TYPE flowc_events_total counter");
        if let Ok(events) = self.events.lock() {
            for ((source, result), n) in events.iter() {
                let _ = writeln!(
                    out,
                    "flowc_events_total{{source=\"{source}\",result=\"{result}\"}} {n}"
                );
            }
        }
        let _ = writeln!(out, "# HELP flowc_runs_started_total Runs started.");
        let _ = writeln!(out, "# TYPE flowc_runs_started_total counter");
        let _ = writeln!(
            out,
            "flowc_runs_started_total {}",
            self.runs_started.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowc_runs_finished_total Runs finished, by outcome."
        );
        let _ = writeln!(out, "# TYPE flowc_runs_finished_total counter");
        if let Ok(runs) = self.runs_finished.lock() {
            for (outcome, n) in runs.iter() {
                let _ = writeln!(
                    out,
                    "flowc_runs_finished_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP flowc_sends_total WhatsApp sends, by outcome (sent, or the error kind)."
        );
        let _ = writeln!(out, "# TYPE flowc_sends_total counter");
        if let Ok(sends) = self.sends.lock() {
            for (outcome, n) in sends.iter() {
                let _ = writeln!(out, "flowc_sends_total{{outcome=\"{outcome}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP flowc_webhook_events_dropped_total Webhook events dropped, by reason."
        );
        let _ = writeln!(out, "# TYPE flowc_webhook_events_dropped_total counter");
        if let Ok(dropped) = self.dropped.lock() {
            for (reason, n) in dropped.iter() {
                let _ = writeln!(
                    out,
                    "flowc_webhook_events_dropped_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP flowc_events_held_total Events that started nothing because their conversation is handed over."
        );
        let _ = writeln!(out, "# TYPE flowc_events_held_total counter");
        let _ = writeln!(
            out,
            "flowc_events_held_total {}",
            self.held.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowc_campaigns_paused_for_quality_total Campaigns paused by a drop of their sender's quality."
        );
        let _ = writeln!(
            out,
            "# TYPE flowc_campaigns_paused_for_quality_total counter"
        );
        let _ = writeln!(
            out,
            "flowc_campaigns_paused_for_quality_total {}",
            self.quality_pauses.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowc_pending_events Events received but not yet started."
        );
        let _ = writeln!(out, "# TYPE flowc_pending_events gauge");
        let _ = writeln!(out, "flowc_pending_events {pending_events}");
        let _ = writeln!(
            out,
            "# HELP flowc_suspended_runs Runs waiting in the store."
        );
        let _ = writeln!(out, "# TYPE flowc_suspended_runs gauge");
        let _ = writeln!(out, "flowc_suspended_runs {suspended_runs}");
        out
    }
}

impl Observer for std::sync::Arc<Metrics> {
    fn event(&self, event: &RunEvent<'_>) {
        // The service's log of runs rides on the same events as its counters.
        match event {
            RunEvent::Started {
                run, flow, trigger, ..
            } => {
                self.runs_started.fetch_add(1, Ordering::Relaxed);
                tracing::info!(run, flow, trigger, "run started");
            }
            RunEvent::Finished { run, outcome, .. } => {
                let label = match outcome {
                    RunOutcome::Completed => "completed",
                    RunOutcome::Stopped => "stopped",
                    RunOutcome::Failed { .. } => "failed",
                };
                Metrics::bump(&self.runs_finished, label);
                match outcome {
                    RunOutcome::Failed { kind, message } => {
                        tracing::warn!(
                            run,
                            kind = kind.as_str(),
                            message = message.as_str(),
                            "run failed"
                        )
                    }
                    _ => tracing::info!(run, outcome = label, "run finished"),
                }
            }
            RunEvent::Suspended { run, until } => tracing::info!(run, %until, "run waits"),
            RunEvent::Held {
                trigger,
                customer,
                sender,
                ..
            } => {
                self.held.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    trigger,
                    customer,
                    sender,
                    "event held: the conversation is handed over"
                );
            }
            RunEvent::ActionDone { run, action, .. } if action.starts_with("whatsapp.send_") => {
                Metrics::bump(&self.sends, "sent");
                tracing::info!(run, action, "message sent");
            }
            RunEvent::ActionFailed {
                run, action, error, ..
            } => {
                if action.starts_with("whatsapp.send_") {
                    Metrics::bump(&self.sends, error.kind());
                }
                tracing::warn!(run, action, kind = error.kind(), %error, "action failed");
            }
            _ => {}
        }
    }
}
