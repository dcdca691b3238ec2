//! `flowc campaign start|status|pause|resume|cancel` and `flowc opt-outs
//! export|import`: mass sends of a flow to a recipient list, in the
//! project's SQLite store, the one `flowc serve` uses.
//!
//! `campaign start` records the campaign and drives it in the foreground
//! until it is finished or paused. If it is killed, `flowc serve` on the
//! same store (or `flowc campaign resume ID`) goes on where it stopped:
//! recipients are claimed under a lease, and each is started once.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use flowc::campaign::runner::{CampaignOptions, CampaignOutcome, CampaignStatus};
use flowc::campaign::{read_opt_outs, write_opt_outs, Encoding, QuietHours, RecipientOptions};
use flowc::providers::CampaignState;
use flowc::runtime::Engine;

use crate::check::{checked_program, usage_error};
use crate::serve::{duration_arg, project_dir, project_engine};
use crate::store_args::StoreArgs;

#[derive(Debug, Args)]
pub struct CampaignArgs {
    #[command(subcommand)]
    command: CampaignCommand,
}

#[derive(Debug, Subcommand)]
enum CampaignCommand {
    /// Start a flow once per row of a CSV list, paced by the limits and the
    /// sender's tier; runs until finished or paused.
    Start(StartArgs),
    /// Show one campaign, or all.
    Status(StatusArgs),
    /// Pause a running campaign.
    Pause(TargetArgs),
    /// Resume a paused campaign and drive it until finished or paused.
    Resume(TargetArgs),
    /// Cancel a campaign for good.
    Cancel(TargetArgs),
}

#[derive(Debug, Args)]
struct ProjectArgs {
    /// The project configuration; by default the flow.toml next to the flows.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The store of `flowc serve`: a SQLite file or a PostgreSQL URL; by
    /// default `[store]` of flow.toml, else flows.db next to flow.toml.
    #[arg(long, value_name = "URL", env = "FLOWC_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Print sends instead of making them, whatever flow.toml says.
    #[arg(long)]
    console: bool,
    /// How long claimed recipients and running runs are kept from other
    /// processes (e.g. 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    lease: String,
    /// .flow files, or folders to search for them.
    #[arg(required = true, value_name = "FLOWS")]
    flows: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct StartArgs {
    #[command(flatten)]
    project: ProjectArgs,
    /// The recipient list: a CSV file with a header row naming the
    /// trigger's fields (phone, name, ...).
    #[arg(long, value_name = "FILE")]
    recipients: PathBuf,
    /// The flow to start, when several take a recipient list.
    #[arg(long, value_name = "NAME")]
    flow: Option<String>,
    /// The sender whose tier, quiet hours and quality apply, when flow.toml
    /// has several and the flow does not name exactly one.
    #[arg(long, value_name = "NAME")]
    sender: Option<String>,
    /// Quiet hours in the customers' time zones, e.g. 21:00-08:00, over
    /// `[campaigns]` in flow.toml.
    #[arg(long, value_name = "FROM-TO")]
    quiet_hours: Option<String>,
    /// The campaign's id; by default the flow's name and the time.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// The list's encoding: utf-8, or windows-1252 (Excel's "CSV (Comma
    /// delimited)").
    #[arg(long, value_name = "ENCODING", default_value = "utf-8")]
    encoding: String,
    /// The most rows a list may have.
    #[arg(long, value_name = "N", default_value_t = 250_000)]
    max_rows: u64,
    /// Run the flow once for this number, with the first row's fields, and
    /// record nothing else.
    #[arg(long, value_name = "PHONE", conflicts_with = "dry_run")]
    test_recipient: Option<String>,
    /// Print the list's report and what would be sent; record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Record the campaign and return without sending (`flowc serve` or
    /// `flowc campaign resume` drives it).
    #[arg(long)]
    no_wait: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The campaign; all when left out.
    #[arg(value_name = "ID")]
    id: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// The campaign.
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    project: ProjectArgs,
}

#[derive(Debug, Args)]
pub struct OptOutsArgs {
    #[command(subcommand)]
    command: OptOutsCommand,
}

#[derive(Debug, Subcommand)]
enum OptOutsCommand {
    /// Write the opt-out list as CSV (phone,opted_out_at,source).
    Export(OptOutFile),
    /// Add the numbers of a CSV list (a `phone` column) to the opt-out list.
    Import(OptOutFile),
}

#[derive(Debug, Args)]
struct OptOutFile {
    /// The CSV file; `-` for stdout (export).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| usage_error(&format!("cannot start the runtime: {e}")))
}

pub fn run(args: CampaignArgs) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        match args.command {
            CampaignCommand::Start(start) => start_campaign(start).await,
            CampaignCommand::Status(status) => show_status(status).await,
            CampaignCommand::Pause(target) => change(target, Change::Pause).await,
            CampaignCommand::Resume(target) => change(target, Change::Resume).await,
            CampaignCommand::Cancel(target) => change(target, Change::Cancel).await,
        }
    })
}

pub fn run_opt_outs(args: OptOutsArgs) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        match args.command {
            OptOutsCommand::Export(file) => export(file).await,
            OptOutsCommand::Import(file) => import(file).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => usage_error(&message),
    }
}

/// The checked project and an engine on its store.
async fn engine(args: &ProjectArgs, what: &str) -> Result<Engine, ExitCode> {
    let (project, program) = checked_program(&args.flows, args.config.as_deref(), what)?;
    let lease = duration_arg("--lease", &args.lease, "5m")?;
    let config_dir = project_dir(&project);
    project_engine(
        &program,
        &config_dir,
        args.store.as_deref(),
        lease,
        args.console,
        |builder| builder.media_dir(config_dir.join("media")),
    )
    .await
}

/// The checked project on an engine that touches no store file and sends
/// nothing: what `--dry-run` plans with.
fn planning_engine(args: &ProjectArgs) -> Result<Engine, ExitCode> {
    let (_, program) = checked_program(&args.flows, args.config.as_deref(), "nothing was planned")?;
    let engine = Engine::builder().build();
    engine.load(program).map_err(|error| usage_error(&error))?;
    Ok(engine)
}

async fn start_campaign(args: StartArgs) -> ExitCode {
    let engine = if args.dry_run {
        planning_engine(&args.project)
    } else {
        engine(&args.project, "no campaign was started").await
    };
    let engine = match engine {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let quiet_hours = match args.quiet_hours.as_deref().map(str::parse::<QuietHours>) {
        None => None,
        Some(Ok(quiet)) => Some(quiet),
        Some(Err(error)) => return usage_error(&format!("--quiet-hours: {error}")),
    };
    let encoding = match args.encoding.parse::<Encoding>() {
        Ok(encoding) => encoding,
        Err(error) => return usage_error(&format!("--encoding: {error}")),
    };
    let options = CampaignOptions {
        flow: args.flow.clone(),
        sender: args.sender.clone(),
        quiet_hours,
        id: args.id.clone(),
        recipients: RecipientOptions {
            encoding,
            max_rows: Some(args.max_rows),
            ..RecipientOptions::default()
        },
    };
    if let Some(phone) = &args.test_recipient {
        return test_recipient(&engine, &args.recipients, &options, phone).await;
    }
    if args.dry_run {
        return match engine.plan_campaign(&args.recipients, &options) {
            Ok(plan) => {
                say!("{}", plan.report);
                for event in &plan.preview {
                    say!(
                        "would start `{}` with {}",
                        plan.flow,
                        serde_json::Value::Object(event.fields.clone())
                    );
                }
                let more = plan
                    .report
                    .recipients
                    .saturating_sub(plan.preview.len() as u64);
                if more > 0 {
                    say!("... and {more} more");
                }
                say!(
                    "dry run: flow `{}` on `{}` would start for {} from sender `{}`; nothing was recorded or sent",
                    plan.flow,
                    plan.trigger,
                    crate::plural(usize::try_from(plan.report.recipients).unwrap_or(usize::MAX), "recipient"),
                    plan.sender
                );
                ExitCode::SUCCESS
            }
            Err(error) => campaign_error(&error),
        };
    }
    let (id, plan) = match engine.start_campaign(&args.recipients, options).await {
        Ok(started) => started,
        Err(error) => return campaign_error(&error),
    };
    say!("{}", plan.report);
    say!(
        "campaign {id} started: flow `{}` on `{}`, sender `{}`",
        plan.flow,
        plan.trigger,
        plan.sender
    );
    if args.no_wait {
        return ExitCode::SUCCESS;
    }
    drive(&engine, &id).await
}

/// Runs the flow for one number with the first row's fields.
async fn test_recipient(
    engine: &Engine,
    recipients: &Path,
    options: &CampaignOptions,
    phone: &str,
) -> ExitCode {
    if let Err(problems) = flowc::phone::check_e164(phone) {
        return usage_error(&format!(
            "--test-recipient: \"{phone}\" is not a phone number in E.164 ({}), such as +4915112345678",
            flowc::phone::describe(&problems)
        ));
    }
    let (plan, event) = match engine.test_recipient_event(recipients, options, phone) {
        Ok(found) => found,
        Err(error) => return campaign_error(&error),
    };
    say!("{}", plan.report);
    // Only the campaign's flow, under an id of its own each time.
    let event_id = format!(
        "test-recipient:{phone}:{}",
        engine.clock().now().timestamp_millis()
    );
    match engine.dispatch_once_to(&plan.flow, &event_id, event).await {
        Ok(reports) => {
            for report in reports {
                say!(
                    "test run {} of `{}`: {:?}",
                    report.id,
                    report.flow,
                    report.status
                );
            }
            say!("test recipient {phone}: the flow ran once; no campaign was recorded");
            ExitCode::SUCCESS
        }
        Err(error) => usage_error(&error),
    }
}

/// Drives a campaign to its end or pause, with a progress bar on a
/// terminal (a line per tenth otherwise).
async fn drive(engine: &Engine, id: &str) -> ExitCode {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let progress = {
        let (engine, id) = (engine.clone(), id.to_string());
        tokio::spawn(async move {
            let terminal = std::io::stdout().is_terminal();
            let mut shown_tenth = 0;
            loop {
                let done = tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => false,
                    _ = stopped.changed() => true,
                };
                if let Ok(status) = engine.campaign_status(&id).await {
                    let counts = status.counts;
                    let total = counts.total().max(1);
                    let handled = total - counts.pending;
                    if terminal {
                        let width = 30;
                        let filled = usize::try_from(handled * width / total).unwrap_or(0);
                        print!(
                            "\r[{}{}] {handled}/{total} handled, {} started, {} opted out ",
                            "#".repeat(filled),
                            ".".repeat(usize::try_from(width).unwrap_or(30) - filled),
                            counts.started,
                            counts.skipped_opted_out
                        );
                        use std::io::Write as _;
                        let _ = std::io::stdout().flush();
                    } else {
                        let tenth = handled * 10 / total;
                        if tenth > shown_tenth && !done {
                            shown_tenth = tenth;
                            say!("{handled}/{total} handled");
                        }
                    }
                }
                if done {
                    if terminal {
                        say!();
                    }
                    return;
                }
            }
        })
    };
    let outcome = engine.run_campaign(id).await;
    let _ = stop.send(true);
    let _ = progress.await;
    match outcome {
        Ok(outcome) => {
            match engine.campaign_status(id).await {
                Ok(status) => say!("{}", status_line(&status)),
                Err(error) => return usage_error(&error),
            }
            match outcome {
                CampaignOutcome::Finished | CampaignOutcome::Cancelled => ExitCode::SUCCESS,
                // Paused by the quality guard or a person: not an error,
                // but a script should notice.
                CampaignOutcome::Paused(_) => ExitCode::from(3),
            }
        }
        Err(error) => campaign_error(&error),
    }
}

fn campaign_error(error: &flowc::campaign::runner::CampaignError) -> ExitCode {
    usage_error(error)
}

fn status_line(status: &CampaignStatus) -> String {
    let c = &status.campaign;
    let n = &status.counts;
    let count = |n: u64, word: &str| crate::plural(usize::try_from(n).unwrap_or(usize::MAX), word);
    let mut line = format!(
        "{}: {} (flow `{}`, sender `{}`{}): {} started, {} pending, {} opted out, {}, {}",
        c.id,
        c.state.as_str(),
        c.flow,
        c.sender,
        c.quiet_hours
            .as_deref()
            .map(|q| format!(", quiet hours {q}"))
            .unwrap_or_default(),
        n.started,
        n.pending,
        n.skipped_opted_out,
        count(n.skipped_bad, "bad row"),
        count(n.duplicate, "duplicate")
    );
    if c.state == CampaignState::Paused {
        line.push_str(&format!(
            "\n  paused: {}",
            c.pause_reason.as_deref().unwrap_or("by a person")
        ));
    }
    line
}

async fn show_status(args: StatusArgs) -> ExitCode {
    let store = match args.store.open().await {
        Ok(store) => store,
        Err(error) => return usage_error(&error),
    };
    let engine = Engine::builder().shared_store(store).build();
    let statuses = match &args.id {
        Some(id) => engine.campaign_status(id).await.map(|s| vec![s]),
        None => engine.campaign_statuses().await,
    };
    match statuses {
        Ok(statuses) => {
            if statuses.is_empty() {
                say!("no campaigns");
            }
            for status in statuses {
                say!("{}", status_line(&status));
            }
            ExitCode::SUCCESS
        }
        Err(error) => campaign_error(&error),
    }
}

enum Change {
    Pause,
    Resume,
    Cancel,
}

async fn change(args: TargetArgs, change: Change) -> ExitCode {
    let engine = match engine(&args.project, "the campaign was not changed").await {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let result = match change {
        Change::Pause => engine.pause_campaign(&args.id, None).await,
        Change::Resume => engine.resume_campaign(&args.id).await,
        Change::Cancel => engine.cancel_campaign(&args.id).await,
    };
    if let Err(error) = result {
        return campaign_error(&error);
    }
    if matches!(change, Change::Resume) {
        return drive(&engine, &args.id).await;
    }
    match engine.campaign_status(&args.id).await {
        Ok(status) => {
            say!("{}", status_line(&status));
            ExitCode::SUCCESS
        }
        Err(error) => campaign_error(&error),
    }
}

async fn export(args: OptOutFile) -> Result<(), String> {
    let store = args.store.open().await?;
    let records = store.opt_outs().await.map_err(|e| e.to_string())?;
    if args.file == Path::new("-") {
        let stdout = std::io::stdout();
        write_opt_outs(&mut stdout.lock(), &records).map_err(|e| e.to_string())?;
    } else {
        let mut file = std::fs::File::create(&args.file)
            .map_err(|e| format!("{}: {e}", args.file.display()))?;
        write_opt_outs(&mut file, &records).map_err(|e| e.to_string())?;
        say!(
            "{}: {}",
            args.file.display(),
            crate::plural(records.len(), "opted-out number")
        );
    }
    Ok(())
}

async fn import(args: OptOutFile) -> Result<(), String> {
    let store = args.store.open().await?;
    let file =
        std::fs::File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let imported = read_opt_outs(
        std::io::BufReader::new(file),
        args.file.display().to_string(),
        Encoding::Utf8,
    )
    .map_err(|e| e.to_string())?;
    say!("{imported}");
    let added = store
        .import_opt_outs(imported.records)
        .await
        .map_err(|e| e.to_string())?;
    say!(
        "{} added to the opt-out list",
        crate::plural(added, "number")
    );
    Ok(())
}
