//! `flowc campaign` and `flowc opt-outs` as processes: what a person sees
//! for bad lists (missing columns, a wrong encoding, bad numbers and
//! duplicates, too many rows), unknown senders and campaigns, and invalid
//! settings, as snapshots; and that none of them records anything.

use std::path::Path;
use std::process::Command;

const CONFIG: &str = r#"
[senders.office]
phone_number_id = "106540352242922"
phone = "+4930901820"

[templates.spring_sale]
language = "en"
category = "marketing"
body = "Hi {{1}}, 20% off this week. Reply STOP to unsubscribe."
"#;

const FLOW: &str = r#"
trigger campaign.spring_sale {
    phone: Phone
    name: String
}

flow spring_sale
on campaign.spring_sale as c {
    whatsapp.send_template(sender: "office", template: "spring_sale", to: c.phone, variables: [c.name])
}
"#;

fn project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("flow.toml"), config).unwrap();
    std::fs::write(dir.path().join("sale.flow"), FLOW).unwrap();
    dir
}

/// Runs flowc in `dir`; exit code, stdout and stderr in one text.
fn flowc(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("flowc runs");
    format!(
        "exit code: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn start(dir: &Path, list: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "campaign",
        "start",
        "sale.flow",
        "--recipients",
        list,
        "--console",
    ];
    args.extend_from_slice(extra);
    flowc(dir, &args)
}

/// Nothing was recorded: no campaign in the store.
fn assert_nothing_recorded(dir: &Path) {
    let out = flowc(dir, &["campaign", "status"]);
    assert!(out.contains("no campaigns"), "{out}");
}

#[test]
fn a_missing_column_is_refused_with_the_header_line() {
    let dir = project(CONFIG);
    std::fs::write(
        dir.path().join("list.csv"),
        "phone,nom\n+4915100000001,Anna\n",
    )
    .unwrap();
    insta::assert_snapshot!(start(dir.path(), "list.csv", &[]));
    assert_nothing_recorded(dir.path());
}

#[test]
fn a_wrong_encoding_is_refused_with_the_line() {
    let dir = project(CONFIG);
    let mut bytes = b"phone,name\n+4915100000001,Anna\n+4915100000002,J".to_vec();
    bytes.extend_from_slice(&[0xFC]); // "ü" in Windows-1252
    bytes.extend_from_slice(b"rgen\n");
    std::fs::write(dir.path().join("list.csv"), bytes).unwrap();
    insta::assert_snapshot!(start(dir.path(), "list.csv", &[]));
    assert_nothing_recorded(dir.path());
}

#[test]
fn bad_numbers_and_duplicates_are_reported_by_line_in_a_dry_run() {
    let dir = project(CONFIG);
    std::fs::write(
        dir.path().join("list.csv"),
        "phone,name\n+4915100000001,Anna\n0151/1234567,Ben\n+4915100000002,Cem\n+4915100000001,Anna\n+49 151 00000003,Dora\n",
    )
    .unwrap();
    insta::assert_snapshot!(start(dir.path(), "list.csv", &["--dry-run"]));
    assert_nothing_recorded(dir.path());
}

#[test]
fn a_million_rows_are_refused_at_the_limit_with_the_line() {
    let dir = project(CONFIG);
    let mut list = String::with_capacity(30 * 1_000_000);
    list.push_str("phone,name\n");
    for i in 0..1_000_000u64 {
        list.push_str(&format!("+49151{i:08},Customer\n"));
    }
    std::fs::write(dir.path().join("list.csv"), list).unwrap();
    insta::assert_snapshot!(start(dir.path(), "list.csv", &["--max-rows", "100000"]));
    assert_nothing_recorded(dir.path());
}

#[test]
fn an_unknown_sender_and_an_unknown_campaign_are_usage_errors() {
    let dir = project(CONFIG);
    std::fs::write(
        dir.path().join("list.csv"),
        "phone,name\n+4915100000001,Anna\n",
    )
    .unwrap();
    insta::assert_snapshot!(
        "unknown_sender",
        start(dir.path(), "list.csv", &["--sender", "munich"])
    );
    insta::assert_snapshot!(
        "unknown_campaign",
        flowc(dir.path(), &["campaign", "status", "spring"])
    );
}

#[test]
fn invalid_campaign_settings_are_a_diagnostic() {
    let dir = project(&format!("{CONFIG}\n[campaigns]\ntierr = 5\n"));
    std::fs::write(
        dir.path().join("list.csv"),
        "phone,name\n+4915100000001,Anna\n",
    )
    .unwrap();
    insta::assert_snapshot!(start(dir.path(), "list.csv", &[]));
}

#[test]
fn a_campaign_runs_and_its_status_shows_the_counts() {
    let dir = project(CONFIG);
    std::fs::write(
        dir.path().join("list.csv"),
        "phone,name\n+4915100000001,Anna\n0151/1234567,Ben\n+4915100000002,Cem\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("stop.csv"), "phone\n+4915100000002\n").unwrap();
    let imported = flowc(dir.path(), &["opt-outs", "import", "stop.csv"]);
    assert!(imported.contains("1 number added"), "{imported}");
    let out = start(dir.path(), "list.csv", &["--id", "spring"]);
    assert!(out.starts_with("exit code: 0"), "{out}");
    assert!(out.contains("to +4915100000001"), "{out}");
    assert!(!out.contains("to +4915100000002"), "{out}");
    insta::assert_snapshot!(flowc(dir.path(), &["campaign", "status", "spring"]));
    let again = flowc(dir.path(), &["campaign", "resume", "spring", "sale.flow"]);
    assert!(
        again.contains("campaign `spring` is finished: it cannot be resumed"),
        "{again}"
    );
    let exported = flowc(dir.path(), &["opt-outs", "export", "-"]);
    assert!(exported.contains("+4915100000002,,import"), "{exported}");
}

#[test]
fn a_test_recipient_gets_the_first_rows_fields_and_nothing_is_recorded() {
    let dir = project(CONFIG);
    std::fs::write(
        dir.path().join("list.csv"),
        "phone,name\n0151/1234567,Ben\n+4915100000001,Anna\n+4915100000002,Cem\n",
    )
    .unwrap();
    let out = start(
        dir.path(),
        "list.csv",
        &["--test-recipient", "+4915199999999"],
    );
    assert!(out.starts_with("exit code: 0"), "{out}");
    assert!(out.contains("to +4915199999999"), "{out}");
    assert!(out.contains("Hi Anna"), "{out}");
    assert!(!out.contains("to +4915100000001"), "{out}");
    assert!(out.contains("no campaign was recorded"), "{out}");
    assert_nothing_recorded(dir.path());
    insta::assert_snapshot!(
        "bad_test_recipient",
        start(dir.path(), "list.csv", &["--test-recipient", "0151 999"])
    );
}

/// The example campaign: its dry run reports the bad row and the duplicate
/// by line, picks the sender the flow names, and leaves no store file.
#[test]
fn the_example_campaigns_dry_run_records_nothing() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for file in [
        "flow.toml",
        "ai_rules.toml",
        "spring_sale.flow",
        "customers.csv",
    ] {
        std::fs::copy(examples.join(file), dir.path().join(file)).expect("copy");
    }
    let out = flowc(
        dir.path(),
        &[
            "campaign",
            "start",
            "spring_sale.flow",
            "--recipients",
            "customers.csv",
            "--dry-run",
        ],
    );
    assert!(out.starts_with("exit code: 0\n"), "{out}");
    assert!(
        out.contains(
            "customers.csv: 6 rows, 4 recipients, 1 skipped (1 bad phone number), 1 duplicate\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("  line 7: +436641234567 is already on line 3\n"),
        "{out}"
    );
    assert!(
        out.contains("would start for 4 recipients from sender `berlin-office`; nothing was recorded or sent"),
        "{out}"
    );
    assert!(!dir.path().join("flows.db").exists());
}
