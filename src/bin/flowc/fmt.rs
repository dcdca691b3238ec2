//! `flowc fmt`: rewrite `.flow` files in the canonical layout, or with
//! `--check` list the files that are not (for CI).
//!
//! A file that does not parse is reported as `flowc check` reports it and is
//! never written; files are replaced atomically (a temporary file in the same
//! folder, then a rename), and only when their text changes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use flowc::check::Checked;
use flowc::format::{format_source, FormatError};
use flowc::source::SourceMap;

use crate::check::{print_diagnostics, Format};
use crate::plural;

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Change nothing: list the files that are not formatted and exit with 1
    /// if there are any.
    #[arg(long)]
    check: bool,
    /// .flow files, or folders to search for them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(args: FmtArgs) -> ExitCode {
    let files = match collect(&args.paths) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("error: {message}");
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
                report(path, &text, &error);
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

/// Prints why a file was left alone, as `flowc check` prints diagnostics.
fn report(path: &Path, text: &str, error: &FormatError) {
    let mut sources = SourceMap::new();
    // The first file of a new map is FileId(0), which the spans point into.
    sources.add(path.display().to_string(), text);
    let checked = Checked {
        sources: Arc::new(sources),
        diagnostics: error.diagnostics(),
        program: None,
    };
    print_diagnostics(&checked, Format::Human);
    eprintln!("error: {} was not formatted: {error}", path.display());
}

/// The files named, and the `.flow` files under the folders named, sorted
/// and without duplicates.
fn collect(paths: &[PathBuf]) -> Result<BTreeSet<PathBuf>, String> {
    let mut files = BTreeSet::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.is_file() {
            files.insert(path.clone());
        } else {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut BTreeSet<PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "flow") {
            files.insert(path);
        }
    }
    Ok(())
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
