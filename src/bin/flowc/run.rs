//! `flowc run`: runs one event through the flows of a file with the dry-run
//! providers, printing each step, and waits out every delay (at once under
//! `--virtual-time`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use clap::Args;
use flowc::providers::console::Console;
use flowc::providers::scripted_ai::ScriptedAi;
use flowc::providers::setup::providers_from_config;
use flowc::providers::{Ai, Clock, RunOutcome, SystemClock, VirtualClock, WhatsApp};
use flowc::runtime::{Engine, Event, Observer, RunEvent, RunStatus, Value};

use crate::check::{checked_program, usage_error};
use crate::plural;
use flowc::project::Project;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The .flow file (or folder) whose flows the event runs through.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The event, as JSON: {"trigger": "call.ended", "fields": {...}}.
    #[arg(long, value_name = "EVENT.json")]
    event: PathBuf,
    /// The project configuration; by default the flow.toml next to the flows.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Start the clock at this instant (RFC 3339), e.g. 2026-12-01T09:00:00+01:00.
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
    /// Fast-forward through waits instead of sleeping: a 7-day delay takes no time.
    #[arg(long)]
    virtual_time: bool,
    /// Rules for the scripted AI (TOML); by default its built-in rules.
    #[arg(long, value_name = "FILE", conflicts_with = "live")]
    ai_rules: Option<PathBuf>,
    /// Where `whatsapp.download_media` saves files; by default flowc-media
    /// in the system's temporary folder.
    #[arg(long, value_name = "DIR")]
    media_dir: Option<PathBuf>,
    /// Use the providers flow.toml configures: senders with `provider =
    /// "cloud-api"` send REAL WhatsApp messages, assistants with an [ai.NAME]
    /// endpoint ask a real model. Credentials come from the environment.
    #[arg(long)]
    live: bool,
}

pub fn run(args: RunArgs) -> ExitCode {
    let start = match args.now.as_deref().map(DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&Utc)),
        Some(Err(e)) => {
            return usage_error(&format!("--now: {e}; write e.g. 2026-12-01T09:00:00+01:00"))
        }
    };
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if args.virtual_time {
        builder.start_paused(true);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(run_async(args, start))
}

async fn run_async(args: RunArgs, start: Option<DateTime<Utc>>) -> ExitCode {
    // A file in a project is checked with the rest of the project, whose
    // declarations and sends it may rely on; only its own flows run.
    let paths = Project::widen(std::slice::from_ref(&args.file), args.config.as_deref());
    let (project, mut program) =
        match checked_program(&paths, args.config.as_deref(), "nothing was run") {
            Ok(checked) => checked,
            Err(code) => return code,
        };
    if args.file.is_file() {
        if let Some(own) = project.names_of(std::slice::from_ref(&args.file)).first() {
            program = program.only_flows_in(own);
        }
    }
    let event = match flowc::project::read_text(&args.event).map(|text| Event::from_json(&text)) {
        Ok(Ok(event)) => event,
        Ok(Err(error)) => return usage_error(&format!("{}: {error}", args.event.display())),
        Err(error) => return usage_error(&error),
    };
    let console = Arc::new(Console::stdout());
    let (whatsapp, ai, banner): (Arc<dyn WhatsApp>, Arc<dyn Ai>, String) = if args.live {
        let dir = project
            .config
            .as_deref()
            .and_then(|p| p.parent())
            .map(PathBuf::from)
            .unwrap_or_default();
        match providers_from_config(program.config(), &dir, console.clone()) {
            Ok(providers) => {
                let banner = format!(
                    "LIVE run: real sends from {}; real AI for {}",
                    list_or_none(&providers.live_senders),
                    list_or_none(&providers.live_assistants)
                );
                (Arc::new(providers.whatsapp), Arc::new(providers.ai), banner)
            }
            Err(error) => return usage_error(&error),
        }
    } else {
        let ai = match &args.ai_rules {
            Some(path) => match ScriptedAi::from_file(path) {
                Ok(ai) => ai,
                Err(error) => return usage_error(&error),
            },
            None => ScriptedAi::default(),
        };
        let banner = format!(
            "dry run: nothing is sent; AI answers come from the {}",
            ai.describe()
        );
        (console.clone(), Arc::new(ai), banner)
    };
    let clock: Arc<dyn Clock> = match (start, args.virtual_time) {
        (Some(start), _) => Arc::new(VirtualClock::starting_at(start)),
        (None, true) => Arc::new(VirtualClock::starting_at(Utc::now())),
        (None, false) => Arc::new(SystemClock),
    };
    say!("flowc run: {banner}");
    let trace = Trace::new(clock.clone());
    let mut builder =
        Engine::builder().replies_start_flows(program.config().conversations.replies_start_flows);
    if let Some(dir) = &args.media_dir {
        builder = builder.media_dir(dir);
    }
    let engine = builder
        .whatsapp(whatsapp)
        .notify(console.clone())
        .log(console.clone())
        .ai(ai)
        .shared_clock(clock)
        .observer(trace)
        .build();
    if let Err(error) = engine.load(program) {
        return usage_error(&error);
    }
    let mut reports = match engine.dispatch(event).await {
        Ok(reports) => reports,
        Err(error) => return usage_error(&error),
    };
    if reports.is_empty() {
        say!("no flow in {} listens for this event", args.file.display());
    }
    match engine.run_until_idle().await {
        Ok(more) => reports.extend(more),
        Err(error) => return usage_error(&error),
    }
    let outcomes: Vec<&RunOutcome> = reports
        .iter()
        .filter_map(|r| match &r.status {
            RunStatus::Finished(outcome) => Some(outcome),
            // Run until idle would have failed on a run that cannot go on.
            RunStatus::Suspended(_) | RunStatus::Running | RunStatus::NotResumed { .. } => None,
        })
        .collect();
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, RunOutcome::Failed { .. }))
        .count();
    let stopped = outcomes
        .iter()
        .filter(|o| matches!(o, RunOutcome::Stopped))
        .count();
    let completed = outcomes.len() - failed - stopped;
    let sent = engine.store().sent_log().await.map_or(0, |log| log.len());
    say!(
        "\n{}: {completed} completed, {stopped} stopped, {failed} failed; {} {}",
        plural(outcomes.len(), "run"),
        plural(sent, "message"),
        if args.live { "sent" } else { "would be sent" },
    );
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Prints each step of each run with its (possibly virtual) time.
struct Trace {
    clock: Arc<dyn Clock>,
    flows: Mutex<HashMap<String, String>>,
}

impl Trace {
    fn new(clock: Arc<dyn Clock>) -> Self {
        Trace {
            clock,
            flows: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, at: DateTime<Utc>, run: &str, text: &str) {
        let flows = match self.flows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let flow = flows.get(run).map_or(run, String::as_str);
        say!("{}  {flow}: {text}", at.format("%Y-%m-%d %H:%M:%S UTC"));
    }
}

impl Observer for Trace {
    fn event(&self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started {
                run,
                flow,
                trigger,
                at,
            } => {
                if let Ok(mut flows) = self.flows.lock() {
                    flows.insert(run.to_string(), flow.to_string());
                }
                self.line(*at, run, &format!("started by {trigger}"));
            }
            RunEvent::Action {
                run,
                action,
                args,
                at,
            } => {
                let args: Vec<String> = args
                    .iter()
                    .filter(|(_, v)| !v.is_none())
                    .map(|(name, value)| format!("{name}: {}", show(value)))
                    .collect();
                self.line(*at, run, &format!("{action}({})", args.join(", ")));
            }
            RunEvent::ActionDone {
                run,
                action,
                result,
                at,
            } => {
                if !result.is_none() {
                    self.line(*at, run, &format!("{action} returned {}", show(result)));
                }
            }
            RunEvent::ActionFailed {
                run,
                action,
                error,
                at,
            } => {
                self.line(
                    *at,
                    run,
                    &format!("{action} failed: {} ({error})", error.kind()),
                );
            }
            RunEvent::Retry { run, attempt, at } => {
                self.line(
                    self.clock.now(),
                    run,
                    &format!("try {attempt} at {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
                );
            }
            RunEvent::Caught { run, kind } => {
                self.line(self.clock.now(), run, &format!("caught {kind}"))
            }
            RunEvent::Suspended {
                run,
                until,
                waiting_for,
            } => {
                let now = self.clock.now();
                // Whole seconds: the clock moved a little since the run
                // chose the time.
                let wait = (*until - now)
                    .to_std()
                    .map(|d| (d.as_millis() as u64 + 500) / 1000 * 1000)
                    .unwrap_or(0);
                let until = until.format("%Y-%m-%d %H:%M:%S UTC");
                let wait = flowc::duration::format(wait);
                let text = match waiting_for {
                    None => format!("waits {wait} until {until}"),
                    Some(event) => format!(
                        "waits up to {wait} for {} from {}; nothing can answer it in \
                         `flowc run`, so its else block runs at {until} (`flowc test` \
                         answers waits with `then` lines)",
                        event.trigger, event.key
                    ),
                };
                self.line(now, run, &text);
            }
            RunEvent::Resumed { run, at } => self.line(*at, run, "goes on"),
            RunEvent::Held {
                trigger,
                customer,
                sender,
                at,
            } => say!(
                "{}  {trigger} from {customer} to {sender} held: the conversation is handed over",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            RunEvent::Finished { run, outcome, at } => {
                let text = match outcome {
                    RunOutcome::Completed => "completed".to_string(),
                    RunOutcome::Stopped => "stopped".to_string(),
                    RunOutcome::Failed { kind, message } => format!("FAILED: {kind}: {message}"),
                };
                self.line(*at, run, &text);
            }
        }
    }
}

/// A value as the trace shows it: strings quoted and cut when long.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let mut text: String = s.chars().take(80).collect();
            if s.chars().count() > 80 {
                text.push('…');
            }
            format!("{text:?}")
        }
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        Value::Record(fields) => format!(
            "{{ {} }}",
            fields
                .iter()
                .map(|(k, v)| format!("{k}: {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::None => "none".to_string(),
        other => other.to_string(),
    }
}
