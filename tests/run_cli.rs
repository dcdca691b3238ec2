//! `flowc run` as a real process: the dry run of the example flows with
//! virtual time, every example event, and the exit codes for bad events and
//! flows with errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `flowc run ARGS...` in the crate's folder, colour variables cleared.
fn flowc_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .current_dir(manifest_dir())
        .env_remove("CLICOLOR_FORCE")
        .env_remove("FORCE_COLOR")
        .env("NO_COLOR", "1")
        .arg("run")
        .args(args)
        .output()
        .expect("flowc runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

#[track_caller]
fn assert_exit(output: &Output, expected: i32) {
    assert_eq!(
        output.status.code(),
        Some(expected),
        "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Writes `text` to `name` in a new temporary folder.
fn temp_file(name: &str, text: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

#[test]
fn the_appointment_reminder_is_printed_24_hours_before_in_berlin_time() {
    let started = Instant::now();
    let output = flowc_run(&[
        "examples/appointment_reminder.flow",
        "--event",
        "examples/events/appointment_booked.json",
        "--virtual-time",
        "--now",
        "2026-11-28T09:00:00+01:00",
    ]);
    assert_exit(&output, 0);
    // Four days of waiting take no real time.
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = stdout(&output);

    assert!(
        out.contains(
            "2026-11-28 08:00:00 UTC  appointment_reminder: waits 4d1h30m until 2026-12-02 09:30:00 UTC\n\
             2026-12-02 09:30:00 UTC  appointment_reminder: goes on\n"
        ),
        "{out}"
    );
    // The send, at 24 hours before 10:30+01:00, and what would be sent.
    let send = "2026-12-02 09:30:00 UTC  appointment_reminder: whatsapp.send_template(sender: \
        \"berlin-office\", template: \"appointment_reminder\", to: \"+4915112345678\", name: \
        \"Anna Schmidt\", variables: [\"Anna Schmidt\", \"Jonas Becker\", \"03.12.2026 10:30\", \
        \"Berlin Mitte showroom, Friedrichstraße 68\"])\n";
    let dry_run = concat!(
        "  [dry-run]   WhatsApp template \"appointment_reminder\" (en) from berlin-office to +4915112345678 (Anna Schmidt)\n",
        "              variables: \"Anna Schmidt\", \"Jonas Becker\", \"03.12.2026 10:30\", \"Berlin Mitte showroom, Friedrichstraße 68\"\n",
        "              message:   Hi Anna Schmidt, a reminder of your appointment with Jonas Becker on 03.12.2026 10:30.\n",
        "                         Location: Berlin Mitte showroom, Friedrichstraße 68\n",
        "                         Reply to this message if you need to reschedule.\n",
    );
    assert!(out.contains(&format!("{send}{dry_run}")), "{out}");
    assert_eq!(out.matches("[dry-run]   WhatsApp").count(), 1, "{out}");
    assert!(
        out.ends_with("\n1 run: 1 completed, 0 stopped, 0 failed; 1 message would be sent\n"),
        "{out}"
    );
}

/// What each example event does to the example flows at the `--now` below.
const EXPECTED: &[(&str, &str)] = &[
    (
        "appointment_booked.json",
        "1 run: 1 completed, 0 stopped, 0 failed; 1 message would be sent",
    ),
    // A booked appointment: confirmed; re_engagement is for missed calls.
    (
        "call_ended.json",
        "2 runs: 1 completed, 1 stopped, 0 failed; 1 message would be sent",
    ),
    (
        "conversation_started.json",
        "1 run: 1 completed, 0 stopped, 0 failed; 1 message would be sent",
    ),
    // Text: the assistant answers and the log records it; menu_choice and
    // customer_files have nothing to do.
    (
        "message_received.json",
        "4 runs: 2 completed, 2 stopped, 0 failed; 1 message would be sent",
    ),
    // A PDF with a caption: saved, logged, and the assistant reads the caption.
    (
        "message_received_document.json",
        "4 runs: 3 completed, 1 stopped, 0 failed; 1 message would be sent",
    ),
    // A pick from the menu: menu_choice answers, the assistant does not.
    (
        "message_received_reply.json",
        "4 runs: 2 completed, 2 stopped, 0 failed; 1 message would be sent",
    ),
    // To the Munich number: fault_report also answers, once the burst's
    // 8 seconds have passed.
    (
        "message_received_urgent.json",
        "5 runs: 3 completed, 2 stopped, 0 failed; 2 messages would be sent",
    ),
    (
        "order_placed.json",
        "1 run: 1 completed, 0 stopped, 0 failed; 1 message would be sent",
    ),
];

#[test]
fn every_example_event_runs_through_the_example_flows() {
    let mut events: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join("examples/events"))
        .expect("examples/events")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    events.sort();
    assert!(events.len() >= EXPECTED.len(), "{events:?}");
    for path in &events {
        let name = path.file_name().unwrap().to_str().unwrap();
        let event = format!("examples/events/{name}");
        // The evening of the messages' day: their 24-hour windows are open,
        // the appointment is days ahead.
        let output = flowc_run(&[
            "examples/",
            "--event",
            &event,
            "--virtual-time",
            "--now",
            "2026-11-26T19:00:00+01:00",
        ]);
        assert_exit(&output, 0);
        let out = stdout(&output);
        assert!(!out.contains("FAILED"), "{name}:\n{out}");
        match EXPECTED.iter().find(|(file, _)| *file == name) {
            Some((_, summary)) => {
                assert!(out.ends_with(&format!("\n{summary}\n")), "{name}:\n{out}")
            }
            None => assert!(out.contains(" 0 failed;"), "{name}:\n{out}"),
        }
    }
}

const BOOKING_WITHOUT_LOCATION: &str = r#"{
  "trigger": "appointment.booked",
  "fields": {
    "booking_id": "apt_2026_004712",
    "customer_name": "Anna Schmidt",
    "phone": "+4915112345678",
    "starts_at": "2026-12-03T10:30:00+01:00",
    "agent_name": "Jonas Becker"
  }
}"#;

#[test]
fn an_event_missing_a_field_exits_2_naming_it() {
    let (_dir, event) = temp_file("booking.json", BOOKING_WITHOUT_LOCATION);
    let output = flowc_run(&[
        "examples/",
        "--event",
        event.to_str().unwrap(),
        "--virtual-time",
        "--now",
        "2026-11-28T09:00:00+01:00",
    ]);
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: event `appointment.booked` is missing the field `location` (String)\n"
    );
    assert!(
        !stdout(&output).contains("started by"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn an_event_with_a_bad_phone_exits_2_naming_the_field() {
    let (_dir, event) = temp_file(
        "call.json",
        r#"{"trigger": "call.ended", "fields": {
            "customer_phone": "+49 (0) 151 12345678", "agent_name": "Jonas Becker",
            "outcome": "no_answer", "ended_at": "2026-11-26T14:42:10+01:00", "call_id": "c-2"}}"#,
    );
    let output = flowc_run(&[
        "examples/",
        "--event",
        event.to_str().unwrap(),
        "--virtual-time",
    ]);
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(
        err.starts_with(
            "error: field `customer_phone` of event `call.ended`: \"+49 (0) 151 12345678\" is \
             not an E.164 phone number"
        ),
        "{err}"
    );
    assert!(!stdout(&output).contains("started by"));
}

#[test]
fn an_event_with_a_wrong_type_or_an_unknown_trigger_exits_2() {
    let (_dir, event) = temp_file(
        "call.json",
        r#"{"trigger": "call.ended", "fields": {
            "customer_phone": "+4915112345678", "agent_name": "Jonas Becker",
            "outcome": "no_answer", "ended_at": "2026-11-26T14:42:10+01:00", "call_id": 42}}"#,
    );
    let output = flowc_run(&["examples/", "--event", event.to_str().unwrap()]);
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: field `call_id` of event `call.ended`: expected String, found a number\n"
    );

    let (_dir, event) = temp_file("call.json", r#"{"trigger": "call.finished", "fields": {}}"#);
    let output = flowc_run(&["examples/", "--event", event.to_str().unwrap()]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("unknown trigger `call.finished`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn flows_with_errors_exit_1_and_run_nothing() {
    let dir = TempDir::new().expect("temp dir");
    std::fs::copy(
        manifest_dir().join("examples/flow.toml"),
        dir.path().join("flow.toml"),
    )
    .expect("copy flow.toml");
    let flow = std::fs::read_to_string(manifest_dir().join("examples/call_follow_up.flow"))
        .expect("read the example")
        .replace("template: \"missed_you\"", "template: \"missed_yuo\"");
    std::fs::write(dir.path().join("call_follow_up.flow"), flow).expect("write");

    let output = flowc_run(&[
        dir.path().to_str().unwrap(),
        "--event",
        "examples/events/call_ended.json",
        "--virtual-time",
        "--now",
        "2026-11-26T14:42:10+01:00",
    ]);
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert!(out.contains("F3004"), "{out}");
    assert!(
        out.contains("template `missed_yuo` is not in the catalog"),
        "{out}"
    );
    assert!(!out.contains("started by"), "{out}");
    assert!(!out.contains("[dry-run]"), "{out}");
    assert_eq!(
        stderr(&output),
        "error: the flows have errors; nothing was run\n"
    );
}

#[test]
fn a_wait_for_the_customer_says_what_it_waits_for_and_times_out() {
    let event =
        std::fs::read_to_string(manifest_dir().join("examples/events/message_received_reply.json"))
            .expect("example event")
            .replace("\"visit\"", "\"quote\"");
    let (_dir, path) = temp_file("quote.json", &event);
    let output = flowc_run(&[
        "examples/lead_qualification.flow",
        "--event",
        path.to_str().expect("UTF-8 path"),
        "--virtual-time",
        "--now",
        "2026-11-26T09:21:40+01:00",
    ]);
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(
        out.contains(
            "2026-11-26 08:21:40 UTC  lead_qualification: waits up to 1h for \
             whatsapp.message_received from +4917612345678; nothing can answer it in \
             `flowc run`, so its else block runs at 2026-11-26 09:21:40 UTC (`flowc test` \
             answers waits with `then` lines)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("2026-11-26 09:21:40 UTC  lead_qualification: goes on\n"),
        "{out}"
    );
    assert!(
        out.contains("1 run: 0 completed, 1 stopped, 0 failed"),
        "{out}"
    );
}
