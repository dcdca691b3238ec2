//! `flowc templates pull`: copies the templates approved at Meta into the
//! catalog in flow.toml.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use flowc::catalog::{merge_templates, MergeReport};
use flowc::config::Config;
use flowc::providers::cloud_api::{CloudApi, CloudApiSettings};
use flowc::providers::Secret;
use flowc::source::FileId;

use crate::check::usage_error;

#[derive(Debug, Args)]
pub struct TemplatesArgs {
    #[command(subcommand)]
    command: TemplatesCommand,
}

#[derive(Debug, Subcommand)]
enum TemplatesCommand {
    /// Read the business account's templates from the WhatsApp Cloud API and
    /// write the approved ones into flow.toml's [templates] catalog.
    Pull(PullArgs),
}

#[derive(Debug, Args)]
struct PullArgs {
    /// The project configuration to update.
    #[arg(long, value_name = "FILE", default_value = "flow.toml")]
    config: PathBuf,
    /// Show what would change without writing the file.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: TemplatesArgs) -> ExitCode {
    match args.command {
        TemplatesCommand::Pull(pull) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
            };
            runtime.block_on(pull_templates(pull))
        }
    }
}

async fn pull_templates(args: PullArgs) -> ExitCode {
    let text = match flowc::project::read_text(&args.config) {
        Ok(text) => text,
        Err(error) => return usage_error(&error),
    };
    let (config, diagnostics) = Config::parse(&text, FileId(0));
    if let Some(problem) = diagnostics.iter().find(|d| d.is_error()) {
        return usage_error(&format!(
            "{} has errors ({}): run `flowc check` on your flows to see them",
            args.config.display(),
            problem.message
        ));
    }
    let Some(whatsapp) = config.whatsapp else {
        return usage_error(&format!(
            "{} has no [whatsapp] table: add one with business_account_id to pull templates",
            args.config.display()
        ));
    };
    if whatsapp.business_account_id.is_none() {
        return usage_error(&"[whatsapp] needs business_account_id (WhatsApp Manager > Account tools) to pull templates");
    }
    let token = match Secret::from_env(&whatsapp.access_token_env) {
        Ok(token) => token,
        Err(error) => return usage_error(&error),
    };
    let mut settings = CloudApiSettings::new(token);
    settings.base_url = whatsapp.base_url.clone();
    settings.api_version = whatsapp.api_version.clone();
    settings.business_account_id = whatsapp.business_account_id.clone();
    settings.timeout = whatsapp.timeout;
    let api = match CloudApi::new(settings) {
        Ok(api) => api,
        Err(error) => return usage_error(&error),
    };
    let templates = match api.fetch_templates().await {
        Ok(templates) => templates,
        Err(error) => {
            eprintln!("error: reading the templates failed: {error}");
            return ExitCode::from(1);
        }
    };
    let (merged, report) = match merge_templates(&text, &templates) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    print_report(&report, templates.len());
    if args.dry_run || merged == text {
        if merged == text {
            say!("{} is up to date", args.config.display());
        } else {
            say!("--dry-run: {} was not changed", args.config.display());
        }
        return ExitCode::SUCCESS;
    }
    match write_atomically(&args.config, &merged) {
        Ok(()) => {
            say!("wrote {}", args.config.display());
            ExitCode::SUCCESS
        }
        Err(error) => usage_error(&format!("cannot write {}: {error}", args.config.display())),
    }
}

fn print_report(report: &MergeReport, read: usize) {
    say!("read {read} templates from the WhatsApp Business account");
    for name in &report.added {
        say!("  added      {name}");
    }
    for name in &report.updated {
        say!("  updated    {name}");
    }
    for (name, status) in &report.not_approved {
        say!("  NOT APPROVED {name}: {status} at Meta; flows that send it will fail (kept in flow.toml)");
    }
    for (name, reason) in &report.skipped {
        say!("  skipped    {name}: {reason}");
    }
    say!("  {} unchanged", report.unchanged.len());
}

/// Writes next to the file and renames over it, so a crash leaves either the
/// old or the new flow.toml, never half of one.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = dir.join(format!(
        ".{}.flowc-tmp",
        path.file_name()
            .map_or("flow.toml".into(), |n| n.to_string_lossy())
    ));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}
