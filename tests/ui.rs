//! UI tests: one failing example per diagnostic code, with its exact output.
//!
//! Every code in [`Code::ALL`] has a folder `tests/ui/<CODE>_<slug>/`, e.g.
//! `tests/ui/F3001_phone-not-e164/`, holding:
//!
//! - `bad.flow`: a small flow that makes the checker report that code, and no
//!   other code;
//! - `ok.flow`: the same flow, corrected, which must check without any
//!   diagnostic;
//! - `flow.toml` (optional): the configuration both flows are checked with;
//! - `ok.toml` (optional): the configuration `ok.flow` is checked with instead,
//!   for codes whose mistake is in `flow.toml` itself (F5001, F5002);
//! - `bad.out`: every diagnostic of `bad.flow` (with `flow.toml`), rendered
//!   as `flowc check` prints them to a pipe.
//!
//! The files are added to the compiler under their bare names (`bad.flow`,
//! `flow.toml`), so the snapshots do not depend on where the repository is.
//!
//! After changing a message on purpose, rewrite the snapshots with
//! `FLOWC_BLESS=1 cargo test --test ui` and review the change in `git diff`.

use std::fs;
use std::path::{Path, PathBuf};

use flowc::check::{Checked, Compiler};
use flowc::diag::render::{self, Style};
use flowc::diag::Code;

/// The width `flowc check` renders with when piped.
const RENDER_WIDTH: usize = 100;

/// The folder with one subfolder per code.
fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

/// Whether snapshots are rewritten instead of compared.
fn blessing() -> bool {
    std::env::var_os("FLOWC_BLESS").is_some_and(|v| v == "1")
}

/// The name a folder for `code` must have, e.g. `F3001_phone-not-e164`.
fn folder_name(code: Code) -> String {
    format!("{}_{}", code.as_str(), code.slug())
}

/// The code a folder name stands for, if it is exactly `<CODE>_<slug>` of a
/// code in the table.
fn code_of_folder(name: &str) -> Option<Code> {
    Code::ALL
        .iter()
        .copied()
        .find(|code| folder_name(*code) == name)
}

/// Every subfolder of `tests/ui/`, sorted by name.
fn example_folders() -> Vec<PathBuf> {
    let dir = ui_dir();
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut folders: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_dir())
        .collect();
    folders.sort();
    folders
}

/// The folder's name as text.
fn name_of(folder: &Path) -> String {
    folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a file of an example folder, which must exist.
fn read(folder: &Path, file: &str) -> String {
    let path = folder.join(file);
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("tests/ui/{}: cannot read {file}: {e}", name_of(folder)))
}

/// Reads a file of an example folder if it is there.
fn read_optional(folder: &Path, file: &str) -> Option<String> {
    let path = folder.join(file);
    path.exists().then(|| read(folder, file))
}

/// Checks one flow, with a configuration if given, under stable names.
fn check(flow: &str, flow_name: &str, config: Option<(&str, &str)>) -> Checked {
    let mut compiler = Compiler::new();
    compiler.add_source(flow_name, flow);
    if let Some((config_name, config_text)) = config {
        compiler.add_config(config_name, config_text);
    }
    compiler.check()
}

/// All diagnostics rendered as `flowc check` prints them to a pipe.
fn render_all(checked: &Checked) -> String {
    checked
        .diagnostics
        .iter()
        .map(|d| render::human(d, &checked.sources, Style::Plain, RENDER_WIDTH))
        .collect()
}

/// A line diff of `expected` and `actual`: ` ` lines both have, `-` lines
/// only expected has, `+` lines only actual has (longest common subsequence).
fn line_diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    // common[i][j]: length of the longest common subsequence of old[i..] and new[j..].
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            out.push_str(&format!("  {}\n", old[i]));
            i += 1;
            j += 1;
        } else if i < old.len() && (j == new.len() || common[i + 1][j] >= common[i][j + 1]) {
            out.push_str(&format!("- {}\n", old[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", new[j]));
            j += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("(the two differ in the newline at the end)\n");
    }
    out
}

/// Compares `rendered` with the folder's `bad.out`, or rewrites `bad.out`
/// when blessing; returns the problem, if any.
fn compare_or_bless_output(folder: &Path, rendered: &str) -> Option<String> {
    let name = name_of(folder);
    if blessing() {
        fs::write(folder.join("bad.out"), rendered)
            .unwrap_or_else(|e| panic!("tests/ui/{name}: cannot write bad.out: {e}"));
        return None;
    }
    let Some(expected) = read_optional(folder, "bad.out") else {
        return Some(format!(
            "tests/ui/{name}/bad.out is missing: \
             write it with `FLOWC_BLESS=1 cargo test --test ui`"
        ));
    };
    let expected = expected.replace("\r\n", "\n");
    (expected != rendered).then(|| {
        format!(
            "tests/ui/{name}/bad.out differs from the output \
             (`-` expected, `+` actual; FLOWC_BLESS=1 rewrites it):\n{}",
            line_diff(&expected, rendered)
        )
    })
}

/// Checks one example folder; returns what is wrong with it, if anything.
fn check_example(folder: &Path) -> Vec<String> {
    let name = name_of(folder);
    let Some(code) = code_of_folder(&name) else {
        return vec![format!(
            "tests/ui/{name}: the folder name is not `<CODE>_<slug>` of a known code"
        )];
    };
    let mut problems = Vec::new();

    // The failing example: only the folder's code, at least once, and
    // exactly the output in bad.out.
    let config = read_optional(folder, "flow.toml");
    let bad = check(
        &read(folder, "bad.flow"),
        "bad.flow",
        config.as_deref().map(|text| ("flow.toml", text)),
    );
    let rendered = render_all(&bad);
    if bad.diagnostics.is_empty() {
        problems.push(format!(
            "tests/ui/{name}/bad.flow: expected {code}, but the check found nothing"
        ));
    }
    let other_codes: Vec<&str> = bad
        .diagnostics
        .iter()
        .filter(|d| d.code != code)
        .map(|d| d.code.as_str())
        .collect();
    if !other_codes.is_empty() {
        problems.push(format!(
            "tests/ui/{name}/bad.flow: expected only {code}, but the check also found {}:\n{rendered}",
            other_codes.join(", ")
        ));
    }
    problems.extend(compare_or_bless_output(folder, &rendered));

    // The corrected example: no diagnostics at all.
    let (ok_config_name, ok_config) = match read_optional(folder, "ok.toml") {
        Some(text) => ("ok.toml", Some(text)),
        None => ("flow.toml", config),
    };
    let ok = check(
        &read(folder, "ok.flow"),
        "ok.flow",
        ok_config.as_deref().map(|text| (ok_config_name, text)),
    );
    if !ok.diagnostics.is_empty() {
        problems.push(format!(
            "tests/ui/{name}/ok.flow: expected no diagnostics, found:\n{}",
            render_all(&ok)
        ));
    }
    problems
}

#[test]
fn every_example_reports_its_code_and_matches_its_output() {
    let problems: Vec<String> = example_folders()
        .iter()
        .flat_map(|folder| check_example(folder))
        .collect();
    assert!(
        problems.is_empty(),
        "{} problem(s) in tests/ui:\n\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_code_has_an_example_and_every_example_a_code() {
    let folders: Vec<String> = example_folders().iter().map(|f| name_of(f)).collect();
    let missing: Vec<String> = Code::ALL
        .iter()
        .map(|code| folder_name(*code))
        .filter(|wanted| !folders.contains(wanted))
        .collect();
    let unknown: Vec<&String> = folders
        .iter()
        .filter(|name| code_of_folder(name).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "codes without an example folder in tests/ui: {}",
        missing.join(", ")
    );
    assert!(
        unknown.is_empty(),
        "folders in tests/ui that are not `<CODE>_<slug>` of a code in Code::ALL: {unknown:?}"
    );
}

#[test]
fn line_diff_marks_changed_lines() {
    let diff = line_diff("a\nb\nc\n", "a\nx\nc\n");
    assert_eq!(diff, "  a\n- b\n+ x\n  c\n");
}
