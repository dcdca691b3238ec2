//! `flowc fmt`: rewrite `.flow` files in the canonical layout, or with
//! `--check` list the files that are not (for CI).
//!
//! A file that does not parse is reported as `flowc check` reports it and is
//! never written; files are replaced atomically (a temporary file in the same
//! folder, then a rename), and only when their text changes.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use flowc::check::Checked;
use flowc::format::{format_source, FormatError};
use flowc::project::Project;
use flowc::source::SourceMap;

use crate::check::{print_diagnostics, write_diagnostics, Format};
use crate::plural;

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Change nothing: list the files that are not formatted and exit with 1
    /// if there are any.
    #[arg(long)]
    check: bool,
    /// .flow files, or folders to search for them; `-` formats standard
    /// input to standard output (for editors).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(args: FmtArgs) -> ExitCode {
    if args.paths.len() == 1 && args.paths[0] == Path::new("-") {
        return format_stdin(args.check);
    }
    let files = match Project::discover(&args.paths, None) {
        Ok(project) => project.flows,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    let mut io_error = false;
    let mut changed = 0;
    for path in &files {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("error: cannot read {}: {error}", path.display());
                io_error = true;
                continue;
            }
        };
        let formatted = match format_source(&text) {
            Ok(formatted) => formatted,
            Err(error) => {
                report(path, &text, &error, Output::Stdout);
                failed = true;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        changed += 1;
        if args.check {
            say!("{}", path.display());
        } else if let Err(error) = write_atomically(path, &formatted) {
            eprintln!("error: cannot write {}: {error}", path.display());
            io_error = true;
        }
    }
    if !args.check && changed > 0 {
        eprintln!("formatted {}", plural(changed, "file"));
    }
    if io_error {
        ExitCode::from(2)
    } else if failed || (args.check && changed > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `flowc fmt -`: the formatted text on standard output, or with `--check`
/// nothing and exit code 1 when it would change. Text that does not parse is
/// reported and nothing is printed on standard output.
fn format_stdin(check: bool) -> ExitCode {
    let mut text = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("error: cannot read standard input: {error}");
        return ExitCode::from(2);
    }
    match format_source(&text) {
        Ok(formatted) if check => {
            if formatted == text {
                ExitCode::SUCCESS
            } else {
                say!("<stdin>");
                ExitCode::from(1)
            }
        }
        Ok(formatted) => {
            use std::io::Write as _;
            match std::io::stdout().lock().write_all(formatted.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: cannot write standard output: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Err(error) => {
            report(Path::new("<stdin>"), &text, &error, Output::Stderr);
            ExitCode::from(1)
        }
    }
}

/// Where [`report`] prints the diagnostics: standard output as `flowc check`
/// does, or standard error when standard output carries the formatted text.
enum Output {
    Stdout,
    Stderr,
}

/// Prints why a file was left alone, as `flowc check` prints diagnostics.
fn report(path: &Path, text: &str, error: &FormatError, output: Output) {
    let mut sources = SourceMap::new();
    // The first file of a new map is FileId(0), which the spans point into.
    sources.add(path.display().to_string(), text);
    let checked = Checked {
        sources: Arc::new(sources),
        diagnostics: error.diagnostics(),
        program: None,
    };
    match output {
        Output::Stdout => print_diagnostics(&checked, Format::Human),
        Output::Stderr => {
            let stderr = std::io::stderr();
            let terminal = stderr.is_terminal();
            write_diagnostics(&checked, Format::Human, &mut stderr.lock(), terminal);
        }
    }
    eprintln!("error: {} was not formatted: {error}", path.display());
}

/// Writes next to the file, then renames over it: a reader (or a crash)
/// sees the old text or the new one, never half of it.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.fmt-{}.tmp", std::process::id()));
    let result = std::fs::write(&temp, text).and_then(|()| {
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&temp, meta.permissions())?;
        }
        std::fs::rename(&temp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
