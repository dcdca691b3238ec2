//! `flowc check` run as a real process: exit codes, human and JSON output,
//! configuration lookup, and usage errors.
//!
//! Tests that change a flow copy `examples/` into a temporary folder first; the
//! examples themselves are only ever read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `flowc` command run in `dir`, with colour-related variables cleared so
/// that the host's environment cannot change the output.
fn flowc_in(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowc"));
    command
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("FORCE_COLOR")
        .env_remove("COLUMNS");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("flowc runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("flowc exits normally")
}

/// Asserts the exit code, showing the output when it differs.
#[track_caller]
fn assert_exit(output: &Output, expected: i32) {
    assert_eq!(
        code(output),
        expected,
        "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout(output),
        stderr(output)
    );
}

/// `examples/` (flows, flow.toml, events) copied into a fresh temporary folder.
fn copy_examples() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    copy_dir(&manifest_dir().join("examples"), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replaces exactly one occurrence of `from` in the file.
fn replace_once(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} should occur exactly once in {}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `flowc check --format json ARGS...` in `dir` and parses every line.
fn check_json(dir: &Path, args: &[&str]) -> (Output, Vec<Value>) {
    let output = run(flowc_in(dir).args(["check", "--format", "json"]).args(args));
    let diagnostics = json_lines(&stdout(&output));
    (output, diagnostics)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line:?}"))
        })
        .collect()
}

fn codes(diagnostics: &[Value]) -> Vec<&str> {
    diagnostics
        .iter()
        .map(|d| d["code"].as_str().expect("code is a string"))
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line as u64, column as u64)
}

/// The byte span `[start, end)` of a JSON diagnostic.
fn span_of(diagnostic: &Value) -> (usize, usize) {
    let span = diagnostic["span"].as_array().expect("span is an array");
    assert_eq!(span.len(), 2, "span has two offsets: {diagnostic}");
    (
        span[0].as_u64().unwrap() as usize,
        span[1].as_u64().unwrap() as usize,
    )
}

const ESC: char = '\u{1b}';

/// How many `.flow` files `examples/` has (directly; it has no subfolders
/// with flows).
fn example_flows() -> usize {
    std::fs::read_dir(manifest_dir().join("examples"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "flow")
        })
        .count()
}

/// The summary line for the examples plus `extra` files.
fn summary(extra: usize, errors: &str, warnings: &str) -> String {
    format!(
        "checked {} files: {errors}, {warnings}\n",
        example_flows() + extra
    )
}

// ---------------------------------------------------------------------------
// The examples pass
// ---------------------------------------------------------------------------

#[test]
fn examples_check_clean_with_summary() {
    let output = run(flowc_in(manifest_dir()).args(["check", "examples/"]));
    assert_exit(&output, 0);
    let out = stdout(&output);
    let flows = example_flows();
    assert_eq!(
        out,
        format!("checked {flows} files: 0 errors, 0 warnings\n"),
        "the only output is the summary line"
    );
    assert_eq!(stderr(&output), "");
}

#[test]
fn examples_give_no_json_lines() {
    let (output, diagnostics) = check_json(manifest_dir(), &["examples"]);
    assert_exit(&output, 0);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(stdout(&output), "", "JSON output has no summary line");
}

#[test]
fn single_files_and_folders_can_be_mixed() {
    let dir = copy_examples();
    let output =
        run(flowc_in(dir.path()).args(["check", "call_follow_up.flow", "lead_qualification.flow"]));
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "checked 2 files: 0 errors, 0 warnings\n");

    // A flow in a subfolder is found too.
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::rename(
        dir.path().join("message_log.flow"),
        dir.path().join("nested/message_log.flow"),
    )
    .unwrap();
    let output = run(flowc_in(dir.path()).args(["check", "."]));
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), summary(0, "0 errors", "0 warnings"));
}

// ---------------------------------------------------------------------------
// The issue's acceptance
// ---------------------------------------------------------------------------

#[test]
fn bad_phone_literal_is_f3001_on_exactly_the_literal() {
    let dir = copy_examples();
    let file = dir.path().join("appointment_reminder.flow");
    replace_once(&file, "to: appt.phone,", "to: \"0151/12345678\",");
    let text = std::fs::read_to_string(&file).unwrap();
    let literal = "\"0151/12345678\"";
    let offset = text.find(literal).unwrap();

    let (output, diagnostics) = check_json(dir.path(), &["."]);
    assert_exit(&output, 1);
    assert_eq!(codes(&diagnostics), ["F3001"], "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["message"], "phone number is not in E.164 format");
    assert!(
        d["file"]
            .as_str()
            .unwrap()
            .ends_with("appointment_reminder.flow"),
        "{d}"
    );
    let (start, end) = span_of(d);
    assert_eq!((start, end), (offset, offset + literal.len()));
    assert_eq!(&text[start..end], literal);
    let (line, column) = line_col(&text, offset);
    assert_eq!(d["line"], line);
    assert_eq!(d["column"], column);
    assert!(d["label"].as_str().unwrap().contains('/'), "{d}");
    assert!(d["help"].as_str().unwrap().contains("+49"), "{d}");

    // The human report underlines the same characters.
    let output = run(flowc_in(dir.path()).args(["check", "."]));
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert!(out.contains("F3001"), "{out}");
    assert!(out.contains("phone number is not in E.164 format"), "{out}");
    assert!(
        out.contains(&format!("appointment_reminder.flow:{line}:{column}]")),
        "{out}"
    );
    assert_underlined(&out, line as usize, literal);
    assert!(
        out.ends_with(&format!(
            "{}for more on a code, run `flowc explain F3001`\n",
            summary(0, "1 error", "0 warnings")
        )),
        "{out}"
    );
}

/// In miette's report, the line under source line `line` underlines exactly
/// the characters of `snippet`.
#[track_caller]
fn assert_underlined(report: &str, line: usize, snippet: &str) {
    let lines: Vec<&str> = report.lines().collect();
    let prefix = format!(" {line} │ ");
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with(prefix.trim_start()))
        .unwrap_or_else(|| panic!("no source line {line} in\n{report}"));
    let source: Vec<char> = lines[at].chars().collect();
    let under: Vec<char> = lines[at + 1].chars().collect();
    let gutter = source.iter().position(|&c| c == '│').unwrap();
    assert_eq!(
        under.iter().position(|&c| c == '·'),
        Some(gutter),
        "{report}"
    );
    let code: String = source[gutter + 2..].iter().collect();
    let snippet_col = code.find(snippet).expect("snippet on the line");
    let snippet_col = code[..snippet_col].chars().count();
    let marks: String = under[gutter + 2..].iter().collect();
    let first = marks.chars().position(|c| c != ' ').unwrap();
    let width = marks[marks.char_indices().nth(first).unwrap().0..]
        .chars()
        .take_while(|c| matches!(c, '─' | '┬' | '^'))
        .count();
    assert_eq!(
        (first, width),
        (snippet_col, snippet.chars().count()),
        "underline does not match {snippet:?}\n{report}"
    );
}

#[test]
fn unknown_template_is_f3004_with_suggestion() {
    let dir = copy_examples();
    let file = dir.path().join("call_follow_up.flow");
    replace_once(&file, "template: \"missed_you\"", "template: \"missed_yu\"");
    let text = std::fs::read_to_string(&file).unwrap();

    let (output, diagnostics) = check_json(dir.path(), &["."]);
    assert_exit(&output, 1);
    assert_eq!(codes(&diagnostics), ["F3004"], "{diagnostics:#?}");
    let d = &diagnostics[0];
    let (start, end) = span_of(d);
    assert_eq!(&text[start..end], "\"missed_yu\"");
    let help = d["help"].as_str().unwrap();
    assert!(help.contains("did you mean `missed_you`"), "{help}");

    let out = stdout(&run(flowc_in(dir.path()).args(["check", "."])));
    assert!(out.contains("did you mean `missed_you`"), "{out}");
}

#[test]
fn send_text_after_a_call_is_f3008() {
    let dir = copy_examples();
    write(
        dir.path(),
        "call_text.flow",
        r#"flow call_text

on call.ended as call {
    whatsapp.send_text(sender: "berlin-office", to: call.customer_phone, message: "Thanks for your call!")
}
"#,
    );
    let (output, diagnostics) = check_json(dir.path(), &["."]);
    assert_exit(&output, 1);
    assert_eq!(codes(&diagnostics), ["F3008"], "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert!(d["file"].as_str().unwrap().ends_with("call_text.flow"));
    assert_eq!(d["line"], 4);
    assert!(d["label"].as_str().unwrap().contains("call.ended"), "{d}");
    assert!(d["help"].as_str().unwrap().contains("send_template"), "{d}");
}

// ---------------------------------------------------------------------------
// JSON output
// ---------------------------------------------------------------------------

const JSON_KEYS: [&str; 9] = [
    "code", "severity", "message", "file", "line", "column", "span", "label", "help",
];

#[test]
fn json_is_one_object_per_line_with_the_documented_keys() {
    let dir = copy_examples();
    write(
        dir.path(),
        "mixed.flow",
        "flow mixed\n\
         on whatsapp.message_received as msg {\n\
         \x20   whatsapp.send_text(sender: msg.sender_id, to: \"+4915112345678\", message: \"hi\")\n\
         \x20   whatsapp.send_template(sender: \"berlin-office\", template: \"missed_you\", to: \"0151/1\")\n\
         \x20   log(\"{msg.nope}\")\n\
         }\n\
         flow broken\n\
         on call.ended as call {\n\
         \x20   log(\n\
         }\n",
    );
    let (output, diagnostics) = check_json(dir.path(), &["."]);
    assert_exit(&output, 1);
    assert!(diagnostics.len() >= 4, "{diagnostics:#?}");
    assert_eq!(output.stdout.last(), Some(&b'\n'));
    let expected: BTreeSet<&str> = JSON_KEYS.into_iter().collect();
    let text = std::fs::read_to_string(dir.path().join("mixed.flow")).unwrap();
    for d in &diagnostics {
        let object = d.as_object().expect("each line is an object");
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys, expected, "{d}");
        let code = d["code"].as_str().unwrap();
        assert!(
            code.len() == 5
                && code.starts_with('F')
                && code[1..].bytes().all(|b| b.is_ascii_digit()),
            "{code}"
        );
        assert!(matches!(d["severity"].as_str(), Some("error" | "warning")));
        assert!(!d["message"].as_str().unwrap().is_empty());
        assert!(d["file"].as_str().unwrap().ends_with("mixed.flow"));
        let (start, end) = span_of(d);
        assert!(start <= end && end <= text.len(), "{d}");
        let (line, column) = line_col(&text, start);
        assert_eq!(
            (d["line"].as_u64(), d["column"].as_u64()),
            (Some(line), Some(column))
        );
        assert!(d["label"].is_string(), "{d}");
        assert!(d["help"].is_string() || d["help"].is_null(), "{d}");
    }
    let found: BTreeSet<&str> = codes(&diagnostics).into_iter().collect();
    for code in ["F3009", "F3001", "F1003", "F0001"] {
        assert!(found.contains(code), "{code} missing from {found:?}");
    }
    assert!(diagnostics.iter().any(|d| d["severity"] == "warning"));
    // Sorted by position within the file.
    let starts: Vec<usize> = diagnostics.iter().map(|d| span_of(d).0).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
}

#[test]
fn warnings_alone_exit_zero() {
    let dir = copy_examples();
    write(
        dir.path(),
        "warn.flow",
        r#"flow warn
on whatsapp.message_received as msg {
    whatsapp.send_text(sender: msg.sender_id, to: "+4915112345678", message: "hi")
}
"#,
    );
    let (output, diagnostics) = check_json(dir.path(), &["."]);
    assert_exit(&output, 0);
    assert_eq!(codes(&diagnostics), ["F3009"]);
    assert_eq!(diagnostics[0]["severity"], "warning");

    let output = run(flowc_in(dir.path()).args(["check", "."]));
    assert_exit(&output, 0);
    assert!(stdout(&output).ends_with(&format!(
        "{}for more on a code, run `flowc explain F3009`\n",
        summary(1, "0 errors", "1 warning")
    )));
}

#[test]
fn json_strings_are_escaped() {
    let dir = TempDir::new().unwrap();
    // Quotes, backslashes, tabs and non-ASCII in the offending text.
    write(
        dir.path(),
        "escape.flow",
        "flow ünïcode\non call.ended as call {\n    log(\"tab\\there \\\"quoted\\\" {call.nöpe}\")\n}\n",
    );
    let text = std::fs::read_to_string(dir.path().join("escape.flow")).unwrap();
    let (output, diagnostics) = check_json(dir.path(), &["escape.flow"]);
    assert_exit(&output, 1);
    assert!(!diagnostics.is_empty());
    for d in &diagnostics {
        // Columns count characters, not bytes; spans stay on char boundaries.
        let (start, end) = span_of(d);
        assert!(
            text.is_char_boundary(start) && text.is_char_boundary(end),
            "{d}"
        );
        let (line, column) = line_col(&text, start);
        assert_eq!(
            (d["line"].as_u64(), d["column"].as_u64()),
            (Some(line), Some(column))
        );
    }
}

#[test]
fn closed_stdout_still_gives_the_exit_code() {
    let dir = copy_examples();
    replace_once(
        &dir.path().join("appointment_reminder.flow"),
        "to: appt.phone,",
        "to: \"0151/12345678\",",
    );
    let mut child = flowc_in(dir.path())
        .args(["check", "."])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `flowc check . | head -0`
    let output = child.wait_with_output().unwrap();
    assert_exit(&output, 1);
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

// ---------------------------------------------------------------------------
// Colour
// ---------------------------------------------------------------------------

#[test]
fn piped_output_is_plain() {
    let dir = copy_examples();
    replace_once(
        &dir.path().join("appointment_reminder.flow"),
        "to: appt.phone,",
        "to: \"0151/12345678\",",
    );
    let output = run(flowc_in(dir.path()).args(["check", "."]));
    assert_exit(&output, 1);
    assert!(!stdout(&output).contains(ESC), "{:?}", stdout(&output));
    assert!(!stderr(&output).contains(ESC));

    let output = run(flowc_in(dir.path())
        .env("NO_COLOR", "1")
        .args(["check", "."]));
    assert_exit(&output, 1);
    assert!(!stdout(&output).contains(ESC), "{:?}", stdout(&output));
    assert!(stdout(&output).contains("F3001"));

    let output = run(flowc_in(dir.path())
        .env("NO_COLOR", "1")
        .args(["check", "--format", "json", "."]));
    assert!(!stdout(&output).contains(ESC));
}

/// Runs `flowc check .` in `dir` on a pseudo-terminal through util-linux
/// `script`; `None` where `script` is not available.
fn check_on_terminal(dir: &Path, no_color: bool) -> Option<String> {
    let mut command = Command::new("script");
    command
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .args([
            "-qec",
            &format!("'{}' check .", env!("CARGO_BIN_EXE_flowc")),
            "/dev/null",
        ]);
    if no_color {
        command.env("NO_COLOR", "1");
    }
    let output = command.output().ok()?;
    output.status.code()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn terminal_output_is_coloured_unless_no_color() {
    let dir = copy_examples();
    replace_once(
        &dir.path().join("appointment_reminder.flow"),
        "to: appt.phone,",
        "to: \"0151/12345678\",",
    );
    let Some(coloured) = check_on_terminal(dir.path(), false) else {
        eprintln!("skipped: util-linux `script` is not available");
        return;
    };
    if !coloured.contains("F3001") {
        eprintln!("skipped: `script` did not run flowc: {coloured:?}");
        return;
    }
    assert!(
        coloured.contains(ESC),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = check_on_terminal(dir.path(), true).unwrap();
    assert!(plain.contains("F3001"), "{plain:?}");
    assert!(!plain.contains(ESC), "NO_COLOR turns colour off: {plain:?}");
}

#[test]
fn usage_errors_are_plain_when_piped() {
    let output = run(flowc_in(manifest_dir()).args(["check", "--bogus", "examples"]));
    assert_exit(&output, 2);
    assert!(!stderr(&output).contains(ESC), "{:?}", stderr(&output));
}

// ---------------------------------------------------------------------------
// Usage and I/O errors: exit 2 with `error:` on stderr
// ---------------------------------------------------------------------------

#[track_caller]
fn assert_usage_error(output: &Output, mentions: &[&str]) {
    assert_exit(output, 2);
    let err = stderr(output);
    assert!(err.starts_with("error: "), "stderr: {err:?}");
    for word in mentions {
        assert!(err.contains(word), "{word:?} not in stderr {err:?}");
    }
    assert_eq!(stdout(output), "", "nothing on stdout");
}

#[test]
fn missing_path_is_exit_2() {
    let dir = copy_examples();
    let output = run(flowc_in(dir.path()).args(["check", "no_such.flow"]));
    assert_usage_error(&output, &["no_such.flow", "does not exist"]);

    // Also when a good path comes first.
    let output = run(flowc_in(dir.path()).args(["check", "call_follow_up.flow", "missing_dir/"]));
    assert_usage_error(&output, &["missing_dir"]);
}

#[test]
fn folder_without_flows_is_exit_2() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let output = run(flowc_in(dir.path()).args(["check", "empty"]));
    assert_usage_error(&output, &["no .flow files", "empty"]);

    // Other files, and a flow.toml, are not flows.
    write(dir.path(), "other/notes.txt", "flow x\n");
    write(dir.path(), "other/flow.toml", "");
    write(dir.path(), "other/x.flow.bak", "flow x\n");
    let output = run(flowc_in(dir.path()).args(["check", "other"]));
    assert_usage_error(&output, &["no .flow files", "other"]);
}

#[test]
fn non_utf8_file_is_exit_2() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("latin1.flow"), b"flow caf\xe9\n").unwrap();
    let output = run(flowc_in(dir.path()).args(["check", "latin1.flow"]));
    assert_usage_error(&output, &["latin1.flow", "UTF-8", "offset 8"]);

    // Found through a folder as well.
    let output = run(flowc_in(dir.path()).args(["check", "."]));
    assert_usage_error(&output, &["latin1.flow", "UTF-8"]);
}

#[test]
fn non_utf8_config_is_exit_2() {
    let dir = copy_examples();
    std::fs::write(dir.path().join("flow.toml"), b"[senders.\xff]\n").unwrap();
    let output = run(flowc_in(dir.path()).args(["check", "."]));
    assert_usage_error(&output, &["flow.toml", "UTF-8"]);
}

#[test]
fn missing_config_is_exit_2() {
    let dir = copy_examples();
    let output = run(flowc_in(dir.path()).args(["check", "--config", "nowhere/flow.toml", "."]));
    assert_usage_error(&output, &["nowhere/flow.toml", "does not exist"]);
}

#[test]
fn config_that_is_a_folder_is_exit_2() {
    let dir = copy_examples();
    let output = run(flowc_in(dir.path()).args(["check", "--config", "events", "."]));
    assert_usage_error(&output, &["events"]);
}

#[test]
fn unknown_flag_is_exit_2() {
    let output = run(flowc_in(manifest_dir()).args(["check", "--bogus", "examples"]));
    assert_usage_error(&output, &["--bogus"]);

    let output = run(flowc_in(manifest_dir()).args(["check", "--format", "xml", "examples"]));
    assert_usage_error(&output, &["xml"]);

    let output = run(flowc_in(manifest_dir()).args(["check"]));
    assert_usage_error(&output, &["PATH"]);

    let output = run(flowc_in(manifest_dir()).args(["frobnicate"]));
    assert_usage_error(&output, &["frobnicate"]);
}

#[test]
fn help_exits_zero() {
    let output = run(flowc_in(manifest_dir()).args(["check", "--help"]));
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("--config"), "{out}");
    assert!(out.contains("--format"), "{out}");
}

// ---------------------------------------------------------------------------
// Configuration lookup
// ---------------------------------------------------------------------------

/// A project folder with `call_follow_up.flow` and no flow.toml, and a
/// configuration elsewhere that has no `berlin-office` sender.
fn project_and_foreign_config() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::copy(
        manifest_dir().join("examples/call_follow_up.flow"),
        flows.join("call_follow_up.flow"),
    )
    .unwrap();
    let config = std::fs::read_to_string(manifest_dir().join("examples/flow.toml")).unwrap();
    let config = config.replace("[senders.berlin-office]", "[senders.hamburg-office]");
    let config_path = write(dir.path(), "settings/production.toml", &config);
    (dir, config_path)
}

#[test]
fn config_given_elsewhere_is_used() {
    let (dir, config) = project_and_foreign_config();
    let (output, diagnostics) =
        check_json(dir.path(), &["--config", config.to_str().unwrap(), "flows"]);
    assert_exit(&output, 1);
    assert!(!diagnostics.is_empty());
    for d in &diagnostics {
        assert_eq!(d["code"], "F3003", "{d}");
        assert!(
            d["message"].as_str().unwrap().contains("berlin-office"),
            "{d}"
        );
        assert!(d["file"].as_str().unwrap().ends_with("call_follow_up.flow"));
        assert!(
            d["help"].as_str().unwrap().contains("hamburg-office"),
            "{d}"
        );
    }
}

#[test]
fn config_option_overrides_the_flow_toml_next_to_the_flows() {
    let (dir, config) = project_and_foreign_config();
    std::fs::copy(
        manifest_dir().join("examples/flow.toml"),
        dir.path().join("flows/flow.toml"),
    )
    .unwrap();
    // The flow.toml next to the flows knows berlin-office ...
    let (output, diagnostics) = check_json(dir.path(), &["flows"]);
    assert_exit(&output, 0);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    // ... but --config wins.
    let (output, diagnostics) =
        check_json(dir.path(), &["--config", config.to_str().unwrap(), "flows"]);
    assert_exit(&output, 1);
    assert!(codes(&diagnostics).iter().all(|c| *c == "F3003"));
}

#[test]
fn flow_toml_next_to_a_flow_file_is_found() {
    let (dir, _) = project_and_foreign_config();
    write(
        dir.path(),
        "flows/flow.toml",
        "[senders.munich-office]\nphone_number_id = \"1\"\nphone = \"+4989215400\"\n",
    );
    let (output, diagnostics) = check_json(dir.path(), &["flows/call_follow_up.flow"]);
    assert_exit(&output, 1);
    let found: BTreeSet<&str> = codes(&diagnostics).into_iter().collect();
    assert!(found.contains("F3003"), "{found:?}");
    assert!(found.contains("F3004"), "{found:?}");
}

#[test]
fn without_flow_toml_config_checks_are_skipped() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "unconfigured.flow",
        r#"flow unconfigured
on whatsapp.message_received as msg {
    let answer = ai.generate_response(assistant: "nobody", customer: msg.phone, message: msg.text)
    whatsapp.send_text(sender: "no-such-sender", to: msg.phone, message: answer.text)
    whatsapp.send_template(sender: "other-sender", template: "never_approved", to: msg.phone)
}
"#,
    );
    let output = run(flowc_in(dir.path()).args(["check", "unconfigured.flow"]));
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "checked 1 file: 0 errors, 0 warnings\n");

    // The checks that need no configuration still run.
    replace_once(
        &dir.path().join("unconfigured.flow"),
        "to: msg.phone)",
        "to: \"0151 1234\")",
    );
    let (output, diagnostics) = check_json(dir.path(), &["unconfigured.flow"]);
    assert_exit(&output, 1);
    assert_eq!(codes(&diagnostics), ["F3001"]);

    // The same flow with the examples' configuration: every unknown name.
    let config = manifest_dir().join("examples/flow.toml");
    let (output, diagnostics) = check_json(
        dir.path(),
        &["--config", config.to_str().unwrap(), "unconfigured.flow"],
    );
    assert_exit(&output, 1);
    let found: BTreeSet<&str> = codes(&diagnostics).into_iter().collect();
    for code in ["F3001", "F3003", "F3004", "F3006"] {
        assert!(found.contains(code), "{code} missing from {found:?}");
    }
}

#[test]
fn invalid_config_is_a_diagnostic_in_the_config_file() {
    let dir = copy_examples();
    write(dir.path(), "flow.toml", "[senders.x]\nphone = 12\n");
    let (output, diagnostics) = check_json(dir.path(), &["."]);
    assert_exit(&output, 1);
    let in_config: Vec<&Value> = diagnostics
        .iter()
        .filter(|d| d["file"].as_str().unwrap().ends_with("flow.toml"))
        .collect();
    assert!(!in_config.is_empty(), "{diagnostics:#?}");
    assert!(in_config
        .iter()
        .all(|d| d["code"].as_str().unwrap().starts_with("F5")));

    write(dir.path(), "flow.toml", "[senders\n");
    let (output, diagnostics) = check_json(dir.path(), &["."]);
    assert_exit(&output, 1);
    assert!(codes(&diagnostics).contains(&"F5001"), "{diagnostics:#?}");
}

// ---------------------------------------------------------------------------
// Every mistake is reported
// ---------------------------------------------------------------------------

#[test]
fn all_mistakes_of_a_file_are_reported() {
    let dir = copy_examples();
    let path = write(
        dir.path(),
        "three.flow",
        r#"flow three_mistakes
on call.ended as call {
    whatsapp.send_template(sender: "berlin-office", template: "missed_yu", to: call.customer_phone)
    log("{call.custmer_name}")
    let t = format(now(), "%Y", tz: "Europe/Berln")
}
"#,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let (output, diagnostics) = check_json(dir.path(), &["three.flow"]);
    assert_exit(&output, 1);
    assert_eq!(
        codes(&diagnostics),
        ["F3004", "F1003", "F3007"],
        "{diagnostics:#?}"
    );
    let snippets: Vec<&str> = diagnostics
        .iter()
        .map(|d| {
            let (s, e) = span_of(d);
            &text[s..e]
        })
        .collect();
    assert_eq!(
        snippets,
        ["\"missed_yu\"", "custmer_name", "\"Europe/Berln\""]
    );

    let output = run(flowc_in(dir.path()).args(["check", "three.flow"]));
    assert!(stdout(&output).ends_with(
        "checked 1 file: 3 errors, 0 warnings\nfor more on a code, run `flowc explain F3004`\n"
    ));
}

#[test]
fn explain_prints_a_codes_reference_and_suggests_for_a_typo() {
    let dir = copy_examples();
    let output = run(flowc_in(dir.path()).args(["explain", "f3001"]));
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(
        text.starts_with(
            "F3001 `phone-not-e164`: A phone number literal is not in strict E.164 format.\n\nWhy:"
        ),
        "{text}"
    );
    assert!(text.contains("Instead:"), "{text}");
    assert_eq!(
        stdout(&run(
            flowc_in(dir.path()).args(["explain", "phone-not-e164"])
        )),
        text
    );

    let output = run(flowc_in(dir.path()).args(["explain", "phone-not-e146"]));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: `phone-not-e146` is not a diagnostic code; did you mean `phone-not-e164`?\n"
    );
}

#[test]
fn a_syntax_error_does_not_hide_the_next_flow() {
    let dir = copy_examples();
    let path = write(
        dir.path(),
        "recover.flow",
        r#"flow first
on call.ended as call {
    log("a" +)
}

flow second
on call.ended as call {
    delay 10m
    branch call.outcome {
        "x" => log("y"
    }
}

flow third
on call.ended as call {
    whatsapp.send_template(sender: "berlin-office", template: "missed_you", to: "0151/12345678")
}

flow fourth
on call.ended as call {
    log(]
}
"#,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let (output, diagnostics) = check_json(dir.path(), &["recover.flow"]);
    assert_exit(&output, 1);
    assert_eq!(
        codes(&diagnostics),
        ["F0001", "F0001", "F3001", "F0001"],
        "{diagnostics:#?}"
    );
    let lines: Vec<u64> = diagnostics
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 11, 16, 21]);
    let (s, e) = span_of(&diagnostics[2]);
    assert_eq!(&text[s..e], "\"0151/12345678\"");
    for d in &diagnostics[..2] {
        let message = d["message"].as_str().unwrap();
        assert!(message.starts_with("expected"), "{message}");
        assert!(
            !message.contains("item_at"),
            "no pest rule names: {message}"
        );
    }
}

#[test]
fn errors_in_one_file_do_not_hide_another_file() {
    let dir = copy_examples();
    write(
        dir.path(),
        "a_broken.flow",
        "flow broken\non call.ended as call {\n",
    );
    replace_once(
        &dir.path().join("call_follow_up.flow"),
        "template: \"missed_you\"",
        "template: \"missed_yu\"",
    );
    let (output, diagnostics) = check_json(dir.path(), &["."]);
    assert_exit(&output, 1);
    let pairs: Vec<(&str, &str)> = diagnostics
        .iter()
        .map(|d| {
            let file = d["file"].as_str().unwrap();
            (
                d["code"].as_str().unwrap(),
                file.rsplit('/').next().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [("F0001", "a_broken.flow"), ("F3004", "call_follow_up.flow")]
    );
}

#[test]
fn declarations_in_one_file_are_visible_in_another() {
    let dir = copy_examples();
    let reminder = dir.path().join("appointment_reminder.flow");
    let text = std::fs::read_to_string(&reminder).unwrap();
    let split = text.find("flow appointment_reminder").unwrap();
    std::fs::write(dir.path().join("a_declarations.flow"), &text[..split]).unwrap();
    std::fs::write(&reminder, &text[split..]).unwrap();
    let output = run(flowc_in(dir.path()).args(["check", "."]));
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), summary(1, "0 errors", "0 warnings"));

    // Without the declarations the trigger is unknown.
    let (output, diagnostics) = check_json(dir.path(), &["appointment_reminder.flow"]);
    assert_exit(&output, 1);
    assert_eq!(codes(&diagnostics)[0], "F1001");
}

/// Known bug: a file named twice (directly and through its folder, or through
/// two overlapping folders) is read twice, so every flow in it is reported as
/// F1006 defined twice. `Project::discover` only drops adjacent duplicates and
/// does not compare canonical paths.
#[test]
fn a_file_named_twice_is_checked_once() {
    let output =
        run(flowc_in(manifest_dir()).args(["check", "examples/call_follow_up.flow", "examples/"]));
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), summary(0, "0 errors", "0 warnings"));

    let output = run(flowc_in(manifest_dir()).args(["check", "examples", "./examples/"]));
    assert_exit(&output, 0);
}

#[test]
fn empty_and_comment_only_files_are_fine() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "empty.flow", "");
    write(
        dir.path(),
        "comments.flow",
        "# nothing here yet\n## not a doc either\n",
    );
    write(dir.path(), "bom.flow", "\u{FEFF}# a BOM first\n");
    let output = run(flowc_in(dir.path()).args(["check", "."]));
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "checked 3 files: 0 errors, 0 warnings\n");
}
