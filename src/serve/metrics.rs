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
    /// Ids of handled events forgotten after the retention.
    pruned: AtomicU64,
    /// Due runs the loaded flows could not go on with.
    not_resumed: AtomicU64,
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

    /// Counts `n` handled events whose ids were forgotten.
    pub fn pruned(&self, n: usize) {
        self.pruned.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a due run the loaded flows could not go on with.
    pub fn not_resumed(&self) {
        self.not_resumed.fetch_add(1, Ordering::Relaxed);
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
        let events: Vec<(String, u64)> = self.events.lock().map_or_else(
            |_| Vec::new(),
            |events| {
                events
                    .iter()
                    .map(|((source, result), n)| {
                        (format!("source=\"{source}\",result=\"{result}\""), *n)
                    })
                    .collect()
            },
        );
        family(
            &mut out,
            "flowc_events_total",
            "counter",
            "Events received, by source and result.",
            &events,
        );
        let count = |n: &AtomicU64| [(String::new(), n.load(Ordering::Relaxed))];
        family(
            &mut out,
            "flowc_runs_started_total",
            "counter",
            "Runs started.",
            &count(&self.runs_started),
        );
        family(
            &mut out,
            "flowc_runs_finished_total",
            "counter",
            "Runs finished, by outcome.",
            &labelled("outcome", &self.runs_finished),
        );
        family(
            &mut out,
            "flowc_sends_total",
            "counter",
            "WhatsApp sends, by outcome (sent, or the error kind).",
            &labelled("outcome", &self.sends),
        );
        family(
            &mut out,
            "flowc_webhook_events_dropped_total",
            "counter",
            "Webhook events dropped, by reason.",
            &labelled("reason", &self.dropped),
        );
        family(
            &mut out,
            "flowc_events_held_total",
            "counter",
            "Events that started nothing because their conversation is handed over.",
            &count(&self.held),
        );
        family(
            &mut out,
            "flowc_events_pruned_total",
            "counter",
            "Handled events forgotten after the retention (--keep-events).",
            &count(&self.pruned),
        );
        family(
            &mut out,
            "flowc_campaigns_paused_for_quality_total",
            "counter",
            "Campaigns paused by a drop of their sender's quality.",
            &count(&self.quality_pauses),
        );
        family(
            &mut out,
            "flowc_runs_not_resumed_total",
            "counter",
            "Due runs kept back because the loaded flows cannot go on with them (a deploy removed their flow or changed what they saved).",
            &count(&self.not_resumed),
        );
        family(
            &mut out,
            "flowc_pending_events",
            "gauge",
            "Events received but not yet started.",
            &[(String::new(), pending_events as u64)],
        );
        family(
            &mut out,
            "flowc_suspended_runs",
            "gauge",
            "Runs waiting in the store.",
            &[(String::new(), suspended_runs as u64)],
        );
        out
    }
}

/// One metric family in Prometheus' text format: its help and type, then a
/// line per sample (`labels` written inside braces unless empty).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The samples of a counter kept by one label's value.
fn labelled(label: &str, map: &Mutex<BTreeMap<String, u64>>) -> Vec<(String, u64)> {
    map.lock().map_or_else(
        |_| Vec::new(),
        |map| {
            map.iter()
                .map(|(value, n)| (format!("{label}=\"{value}\""), *n))
                .collect()
        },
    )
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
            RunEvent::Suspended {
                run,
                until,
                waiting_for: None,
            } => tracing::info!(run, %until, "run waits"),
            RunEvent::Suspended {
                run,
                until,
                waiting_for: Some(wait),
            } => {
                tracing::info!(run, %until, trigger = %wait.trigger, key = %wait.key, "run waits for an event")
            }
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
