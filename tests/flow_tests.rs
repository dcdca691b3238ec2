//! `flowc test` as users run it: the example flows' own tests pass, and
//! breaking an example (another template, a removed wait, a swapped branch
//! arm) makes its test fail with a diff that points at the difference.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn flowc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("flowc runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

/// A copy of `examples/` in a fresh temporary folder, with `edit` applied to
/// the text of `file`.
fn broken_examples(
    file: &str,
    edit: impl FnOnce(String) -> String,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(&examples).expect("examples folder") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let name = path.file_name().expect("a file name");
            std::fs::copy(&path, dir.path().join(name)).expect("copy");
        }
    }
    let target = dir.path().join(file);
    let text = std::fs::read_to_string(&target).expect("example flow");
    let changed = edit(text.clone());
    assert_ne!(changed, text, "the edit must change {file}");
    std::fs::write(&target, changed).expect("write");
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[test]
fn the_example_flows_pass_their_tests() {
    let output = flowc(&["test", "examples/"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("... ok"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    let summary = last_line(&out);
    let (passed, failed) = summary
        .split_once(" passed, ")
        .unwrap_or_else(|| panic!("summary line: {summary}"));
    assert!(passed.parse::<usize>().expect("a count") >= 20, "{summary}");
    assert_eq!(failed, "0 failed");
}

#[test]
fn filter_selects_tests_by_file_and_name() {
    let output = flowc(&["test", "--filter", "a missed call", "examples/"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert_eq!(last_line(&out), "1 passed, 0 failed");
    assert!(out.contains(
        "test examples/call_follow_up.test.flow: a missed call gets the missed-you template after 10 minutes ... ok"
    ));
}

#[test]
fn a_test_file_runs_its_own_tests_with_its_project() {
    // fault_report.test.flow relies on fault_report.flow and flow.toml
    // beside it; only its own tests run.
    let output = flowc(&["test", "examples/fault_report.test.flow"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.starts_with("running 5 tests\n"), "{out}");
    assert!(
        out.lines()
            .filter(|line| line.starts_with("test ") && !line.starts_with("test result"))
            .all(|line| line.starts_with("test examples/fault_report.test.flow: ")),
        "{out}"
    );
    assert_eq!(last_line(&out), "5 passed, 0 failed");
}

#[test]
fn another_template_fails_with_a_diff_at_the_template() {
    let (_dir, path) = broken_examples("call_follow_up.flow", |text| {
        text.replacen(
            "template: \"appointment_confirmed\"",
            "template: \"appointment_reminder\"",
            1,
        )
    });
    let output = flowc(&["test", path.to_str().expect("utf-8 path")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("a booked appointment is confirmed 10 minutes after the call ... FAILED"),
        "{out}"
    );
    assert!(
        out.contains("`template` is \"appointment_reminder\", expected \"appointment_confirmed\""),
        "{out}"
    );
    assert!(out.contains("- after 10m whatsapp.send_template(sender: \"berlin-office\", template: \"appointment_confirmed\""), "{out}");
    assert!(out.contains("+ after 10m whatsapp.send_template(sender: \"berlin-office\", template: \"appointment_reminder\""), "{out}");
    assert!(last_line(&out).ends_with(" passed, 1 failed"), "{out}");
}

#[test]
fn a_removed_wait_fails_with_a_diff_at_the_time() {
    let (_dir, path) = broken_examples("call_follow_up.flow", |text| {
        text.replacen("    delay 10m\n", "", 1)
    });
    let output = flowc(&[
        "test",
        "--filter",
        "a missed call",
        path.to_str().expect("utf-8 path"),
    ]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("happened after 0s, expected after 10m"),
        "{out}"
    );
    assert!(
        out.contains(
            "- after 10m whatsapp.send_template(template: \"missed_you\", to: \"+4915112345678\")"
        ),
        "{out}"
    );
    assert!(out.contains("+ after 0s whatsapp.send_template(template: \"missed_you\", to: \"+4915112345678\", ...)"), "{out}");
    assert_eq!(last_line(&out), "0 passed, 1 failed");
}

#[test]
fn a_swapped_branch_arm_fails_with_a_diff_at_the_template() {
    let (_dir, path) = broken_examples("call_follow_up.flow", |text| {
        text.replacen("\"no_answer\" =>", "\"SWAP\" =>", 1)
            .replacen("\"callback_requested\" =>", "\"no_answer\" =>", 1)
            .replacen("\"SWAP\" =>", "\"callback_requested\" =>", 1)
    });
    let output = flowc(&["test", path.to_str().expect("utf-8 path")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("`template` is \"callback_scheduled\", expected \"missed_you\""),
        "{out}"
    );
    assert!(
        out.contains("`template` is \"missed_you\", expected \"callback_scheduled\""),
        "{out}"
    );
    assert!(last_line(&out).ends_with(" passed, 2 failed"), "{out}");
}

#[test]
fn tests_that_do_not_check_are_reported_and_nothing_runs() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = dir.path().join("bad.test.flow");
    std::fs::write(
        &file,
        r#"flow f
on call.ended as call {
    log("hi")
}

test "a mistake" {
    given call.ended { customer_phone: "0151 1234", outcom: "x" }
    expect {
        logg("hi")
        fails NoSuchKind
    }
}
"#,
    )
    .expect("write");
    let output = flowc(&["test", file.to_str().expect("utf-8 path")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    for code in ["F3001", "F1003", "F1002", "F1005", "F2002"] {
        assert!(out.contains(code), "{code} missing in:\n{out}");
    }
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let output = flowc(&["test", "no/such/folder"]);
    assert_eq!(output.status.code(), Some(2));
}
