//! `flowc check`: parse and check flows, print every diagnostic.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use flowc::check::Checked;
use flowc::diag::render::{self, JsonDiagnostic, Style};
use flowc::project::Project;

use crate::plural;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The project configuration; by default the flow.toml next to the flows.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// .flow files, or folders to search for them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// miette's report, in colour on a terminal.
    Human,
    /// One JSON object per diagnostic and line.
    Json,
}

pub fn run(args: CheckArgs) -> ExitCode {
    let project = match Project::discover(&args.paths, args.config.as_deref()) {
        Ok(project) => project,
        Err(error) => return usage_error(&error),
    };
    let compiler = match project.compiler() {
        Ok(compiler) => compiler,
        Err(error) => return usage_error(&error),
    };
    let checked = compiler.check();
    print_diagnostics(&checked, args.format);
    if args.format == Format::Human {
        say!(
            "{}",
            summary(
                project.flows.len(),
                checked.diagnostics.error_count(),
                checked.diagnostics.warning_count()
            )
        );
        if let Some(first) = checked.diagnostics.iter().next() {
            say!(
                "for more on a code, run `flowc explain {}`",
                first.code.as_str()
            );
        }
    }
    if checked.diagnostics.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Finds, reads and checks the flows under `paths` for a command that runs
/// them: diagnostics are printed, and a project with errors stops the command
/// with exit code 1 (`what` says what did not happen).
pub fn checked_program(
    paths: &[PathBuf],
    config: Option<&std::path::Path>,
    what: &str,
) -> Result<(Project, flowc::check::Program), ExitCode> {
    let project = Project::discover(paths, config).map_err(|error| usage_error(&error))?;
    let checked = project
        .compiler()
        .map_err(|error| usage_error(&error))?
        .check();
    if !checked.diagnostics.is_empty() {
        print_diagnostics(&checked, Format::Human);
    }
    match checked.program {
        Some(program) => Ok((project, program)),
        None => {
            eprintln!("error: the flows have errors; {what}");
            Err(ExitCode::from(1))
        }
    }
}

/// Prints every diagnostic to stdout. A closed stdout (`| head`) is not an
/// error: the exit code still tells the result.
pub fn print_diagnostics(checked: &Checked, format: Format) {
    let stdout = std::io::stdout();
    let colored = stdout.is_terminal();
    write_diagnostics(checked, format, &mut stdout.lock(), colored);
}

/// Writes the diagnostics to `out`, in colour when `terminal` says it is one
/// (and `NO_COLOR` is not set).
pub fn write_diagnostics(
    checked: &Checked,
    format: Format,
    out: &mut dyn std::io::Write,
    terminal: bool,
) {
    let _ = match format {
        Format::Json => checked.diagnostics.iter().try_for_each(|d| {
            let json = JsonDiagnostic::new(d, &checked.sources);
            serde_json::to_writer(&mut *out, &json).map_err(std::io::Error::other)?;
            writeln!(out)
        }),
        Format::Human => {
            let style = if terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) {
                Style::Color
            } else {
                Style::Plain
            };
            let width = terminal_width();
            checked.diagnostics.iter().try_for_each(|d| {
                out.write_all(render::human(d, &checked.sources, style, width).as_bytes())
            })
        }
    };
}

fn summary(files: usize, errors: usize, warnings: usize) -> String {
    format!(
        "checked {}: {}, {}",
        plural(files, "file"),
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

pub fn usage_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}
