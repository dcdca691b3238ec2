//! `flowc fmt` and `flowc::format`: the layout is idempotent, keeps what
//! flows mean (syntax tree and checked program, spans aside), keeps every
//! comment, and the command reports and exits as documented.

use std::path::{Path, PathBuf};
use std::process::Command;

use flowc::check::{Compiler, Program};
use flowc::format::{format_source, same_syntax, without_spans, FormatError};
use flowc::source::FileId;
use proptest::prelude::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.flow` file in examples/, tests included.
fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ is readable")
        .map(|e| e.expect("examples/ is readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "flow"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the examples are missing");
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The comments of a text, found independently of the formatter: a `#`
/// outside a string or a `matches /regex/`.
fn comments(text: &str) -> Vec<String> {
    let regex = regex::Regex::new(r"matches\s*/(\\.|[^/\n])*/").expect("valid regex");
    let text = regex.replace_all(text, "matches /regex/");
    let mut found = Vec::new();
    for line in text.lines() {
        let (mut in_string, mut escaped) = (false, false);
        for (i, c) in line.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                '#' if !in_string => {
                    found.push(line[i..].trim_end().to_string());
                    break;
                }
                _ => {}
            }
        }
    }
    found
}

/// Asserts the properties every formatted text has; returns it.
fn assert_formats_well(name: &str, text: &str) -> String {
    let once = format_source(text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
    let twice = format_source(&once).unwrap_or_else(|e| panic!("{name} (again): {e}\n{once}"));
    assert_eq!(once, twice, "{name}: formatting is not idempotent");
    let (before, _) = flowc::syntax::parse(FileId(0), text);
    let (after, diagnostics) = flowc::syntax::parse(FileId(0), &once);
    assert!(diagnostics.is_empty(), "{name}: the result does not parse");
    assert!(
        same_syntax(&before, &after),
        "{name}: the syntax tree changed"
    );
    once
}

#[test]
fn examples_are_formatted_and_stable() {
    for path in examples() {
        let text = read(&path);
        let formatted = assert_formats_well(&path.display().to_string(), &text);
        assert_eq!(
            formatted,
            text,
            "{} is not formatted: run `flowc fmt examples/`",
            path.display()
        );
    }
}

#[test]
fn std_declarations_format_stably() {
    for (name, text) in flowc::check::STD_DECLARATIONS {
        let formatted = assert_formats_well(name, text);
        assert_eq!(comments(&formatted), comments(text), "{name}");
    }
}

#[test]
fn every_comment_of_every_example_survives_reformatting() {
    for path in examples() {
        let text = read(&path);
        // Squash the layout (re-indent everything) so the formatter has to
        // place each comment again, not just keep the text.
        let squashed: String = text.lines().map(|l| format!("  {}\n", l.trim())).collect();
        let formatted = assert_formats_well(&path.display().to_string(), &squashed);
        assert_eq!(comments(&formatted), comments(&text), "{}", path.display());
        assert_eq!(formatted, text, "{}", path.display());
    }
}

fn program(files: &[(String, String)]) -> Program {
    let mut compiler = Compiler::new();
    compiler.add_config("flow.toml", read(&root().join("examples/flow.toml")));
    for (name, text) in files {
        compiler.add_source(name.clone(), text.clone());
    }
    let checked = compiler.check();
    let plain = checked.render_plain();
    checked.program.unwrap_or_else(|| panic!("{plain}"))
}

fn meaning(program: &Program) -> String {
    without_spans(&format!(
        "{:?}",
        (
            program.flows(),
            program.tests(),
            program.called_actions(),
            program.schemas()
        )
    ))
}

#[test]
fn the_checked_program_of_the_examples_is_unchanged() {
    let mut before = Vec::new();
    let mut after = Vec::new();
    for path in examples() {
        let text = read(&path);
        // A messier layout than the files have, so formatting does work.
        let messy: String = text.lines().map(|l| format!("{}\n", l.trim())).collect();
        let name = path.display().to_string();
        after.push((name.clone(), format_source(&messy).expect("formats")));
        before.push((name, text));
    }
    assert_eq!(meaning(&program(&before)), meaning(&program(&after)));
}

const MESSY: &str = r##"# header comment


## A trigger doc
@opens_window(phone)
trigger   shop.order_paid{
  ## the order id
  order_id:String,
   phone : Phone  # trailing on field
   items: [ { sku: String, qty: Int } ]?
}
action shop.refund( order_id: String, amount: Float = 0.0 ) -> String raises Busy,Slow
type T {}
error   E # why
flow   messy   # the flow
on shop.order_paid as o{   # after brace
  let x=format(o.order_id,"%d" , tz:"Europe/Berlin")# after let

  # before if



  if (o.order_id=="a" or o.phone==none) and not -(1+2)>3 { stop } else if x=="b"{
     log("#not a comment {x}")   } else {}
  branch o.order_id {
    "a"|"b" => log("ab")   # arm trailing
    matches   /a#b\/c/ => { notify("team", "x") }
    contains "z" => notify("team", "z")
       retry 2 times every 1m30s backoff 1.5
    _=>stop
  } catch Busy|Slow e { fail "no: {e.message}" }
  whatsapp.send_template(sender: "berlin-office", template: "order_paid", to: o.phone, # sender first
     # the variables
     variables: [o.order_id, "a very long string that makes the line too long to fit", x], name: "x")
  delay until   now() + 1h
}
test "messy" {  # a test
given shop.order_paid at "2026-01-01T00:00:00Z" { order_id: "1", phone: "+4915112345678" }
with inbound from "+4915112345678" to "berlin-office" 2h ago
with failure Busy on shop.refund call 1
expect { after 1h log("x", level: "info") # t
completes }
}
# end comment
"##;

#[test]
fn a_messy_file_gets_the_canonical_layout() {
    let formatted = assert_formats_well("messy", MESSY);
    assert_eq!(comments(&formatted), comments(MESSY));
    insta::assert_snapshot!(formatted);
}

#[test]
fn crlf_and_a_byte_order_mark_become_plain_lines() {
    let text = "\u{FEFF}flow a\r\non call.ended as call {\r\n  # c\r\n  delay 10m # t\r\n}\r\n";
    assert_eq!(
        assert_formats_well("crlf", text),
        "flow a\non call.ended as call {\n    # c\n    delay 10m # t\n}\n"
    );
}

#[test]
fn comments_inside_test_data_stay_with_their_fields() {
    let text = "test \"t\" {\n    given call.ended {\n        # who\n        customer_phone: \"+4915112345678\", # the customer\n        outcome: \"x\", call_id: \"c-1\",\n    }\n    # the world\n    with sender \"berlin-office\" offline\n    expect {\n        # nothing is sent\n        completes # and it ends\n    }\n}\n";
    assert_eq!(assert_formats_well("test data", text), text);
}

#[test]
fn handler_options_and_conversation_facts_get_the_canonical_layout() {
    let text = "flow f\non whatsapp.message_received as msg   via  \"berlin-office\" ,\"munich-office\"  debounce   8s{\n log(msg.text)\n}\ntest \"t\" {\n given whatsapp.message_received { phone: \"+4915112345678\", text: \"hi\", sender_id: \"berlin-office\", timestamp: \"2026-12-01T09:00:00Z\", conversation_id: \"c\", message_id: \"m\" }\n with conversation \"+4915112345678\"  to \"berlin-office\" handed   over\n expect { nothing   runs }\n}\n";
    let formatted = assert_formats_well("options", text);
    assert!(
        formatted.contains(
            "on whatsapp.message_received as msg debounce 8s via \"berlin-office\", \"munich-office\" {"
        ),
        "{formatted}"
    );
    assert!(
        formatted.contains(
            "    with conversation \"+4915112345678\" to \"berlin-office\" handed over\n"
        ),
        "{formatted}"
    );
    assert!(formatted.contains("        nothing runs\n"), "{formatted}");
}

#[test]
fn a_repeated_handler_option_is_refused_not_dropped() {
    for text in [
        "flow f\non whatsapp.message_received as msg debounce 8s debounce 5s {\n    log(msg.text)\n}\n",
        "flow f\non whatsapp.message_received as msg via \"a\" via \"b\" {\n    log(msg.text)\n}\n",
        "flow f\non whatsapp.message_received as msg via \"a\", \"a\" {\n    log(msg.text)\n}\n",
    ] {
        match format_source(text) {
            Err(FormatError::Syntax(diagnostics)) => assert!(
                diagnostics.iter().any(|d| d.code == flowc::diag::Code::RepeatedOption),
                "{diagnostics:?}"
            ),
            other => panic!("expected F0004 for {text:?}, got {other:?}"),
        }
    }
}

#[test]
fn a_comment_inside_an_expression_is_refused_not_moved() {
    let text = "flow f\non call.ended as call {\n    if call.duration > 1m # long\n        and call.outcome == \"x\" {\n        stop\n    }\n}\n";
    match format_source(text) {
        Err(FormatError::Comment(span)) => assert_eq!(&text[span.range()], "# long"),
        other => panic!("expected a comment error, got {other:?}"),
    }
}

#[test]
fn a_text_that_does_not_parse_is_refused() {
    let error = format_source("flow f\non call.ended as call {\n    log(\n}\n").unwrap_err();
    assert!(matches!(error, FormatError::Syntax(_)));
    assert!(error.diagnostics().has_errors());
}

// ---------------------------------------------------------------------------
// Generated flows
// ---------------------------------------------------------------------------

/// Spaces, or sometimes a newline, between tokens.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(" ".to_string()),
        1 => Just("  ".to_string()),
        1 => Just("\n    ".to_string()),
    ]
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("call.customer_phone".to_string()),
        Just("call.outcome".to_string()),
        Just("\"text #not a comment {call.outcome}\"".to_string()),
        Just("10m".to_string()),
        Just("42".to_string()),
        Just("2.5".to_string()),
        Just("none".to_string()),
        Just("true".to_string()),
        Just("\"a long string that takes up a good part of the line on its own\"".to_string()),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                gap(),
                prop_oneof![Just("+"), Just("=="), Just("and"), Just("??")],
                inner.clone()
            )
                .prop_map(|(a, g, op, b)| format!("{a}{g}{op} {b}")),
            inner.clone().prop_map(|e| format!("( {e} )")),
            inner.clone().prop_map(|e| format!("not {e}")),
            prop::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(" ,"))),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let fields: Vec<String> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("k{i} :{v}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
            (prop::collection::vec(inner, 0..5), gap()).prop_map(|(args, g)| {
                let args: Vec<String> = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        if i % 2 == 1 {
                            format!("n{i}: {a}")
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                format!("format({}{g})", args.join(",  "))
            }),
        ]
    })
}

/// A comment to put before or after a statement, or nothing.
fn comment() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some("# a comment, with \"quotes\" and {braces}".to_string())),
        1 => Just(Some("## doc-like".to_string())),
    ]
}

fn stmt() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        expr().prop_map(|e| format!("let x = {e}")),
        expr().prop_map(|e| format!("log({e})")),
        (expr(), expr(), expr()).prop_map(|(a, b, c)| format!(
            "whatsapp.send_template(sender: {a}, template: {b}, to: {c})\n retry 1 times every 1m"
        )),
        (expr(), expr(), comment()).prop_map(|(a, b, c)| {
            let c = c.map(|c| format!("{c}\n")).unwrap_or_default();
            format!("notify({a},\n{c} {b}) # after the call")
        }),
        Just("delay 10m".to_string()),
        Just("delay until now() + 1h".to_string()),
        Just("stop".to_string()),
        expr().prop_map(|e| format!("fail {e}")),
    ];
    let with_comments =
        (comment(), leaf, comment(), prop::bool::ANY).prop_map(|(before, s, after, blank)| {
            let mut out = String::new();
            if blank {
                out.push_str("\n\n\n");
            }
            if let Some(c) = before {
                out.push_str(&format!("{c}\n"));
            }
            out.push_str(&s);
            if let Some(c) = after {
                out.push_str(&format!("   {c}"));
            }
            out.push('\n');
            out
        });
    with_comments.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            (expr(), prop::collection::vec(inner.clone(), 0..3), prop::collection::vec(inner.clone(), 0..2))
                .prop_map(|(c, a, b)| format!("if {c} {{\n{}}} else {{{}}}\n", a.concat(), b.concat())),
            (expr(), prop::collection::vec(inner.clone(), 1..3), inner.clone()).prop_map(|(s, arms, last)| {
                let arms: String = arms
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("\"arm{i}\" | contains \"#x\" => {{\n{a}}}\n"))
                    .collect();
                format!("branch {s} {{\n{arms}matches /a#b/ => {{\n{last}}}\n_ => stop\n}}\n catch Transient e {{ log(e.message) }}\n")
            }),
            (prop::bool::ANY, expr(), prop::collection::vec(inner.clone(), 0..2)).prop_map(|(bound, key, body)| {
                let head = if bound { "let reply = " } else { "" };
                format!("{head}wait   for whatsapp.message_received from {key}\n within 2h else {{\n{}stop\n}}\n", body.concat())
            }),
        ]
    })
}

fn flow() -> impl Strategy<Value = String> {
    (comment(), prop::collection::vec(stmt(), 0..6)).prop_map(|(head, stmts)| {
        let head = head.map(|c| format!("{c}\n")).unwrap_or_default();
        format!(
            "{head}flow generated\non call.ended as call {{\n{}}}\n",
            stmts.concat()
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_flows_format_idempotently_and_keep_their_meaning(text in flow()) {
        let (_, diagnostics) = flowc::syntax::parse(FileId(0), &text);
        prop_assert!(diagnostics.is_empty(), "{text}");
        let formatted = assert_formats_well("generated", &text);
        prop_assert_eq!(comments(&formatted), comments(&text));
        prop_assert!(formatted.lines().all(|l| l == l.trim_end()));
    }
}

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

fn flowc(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("flowc runs")
}

const TIDY: &str = "flow tidy\n\non call.ended as call {\n    delay 10m\n}\n";
const UNTIDY: &str = "flow untidy\non call.ended as call {\n  delay   10m }\n";
const BROKEN: &str = "flow broken\non call.ended as call {\n    delay\n";

#[test]
fn check_lists_the_files_that_would_change_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::fs::write(dir.path().join("tidy.flow"), TIDY).expect("write");
    std::fs::write(dir.path().join("sub/untidy.flow"), UNTIDY).expect("write");
    std::fs::write(dir.path().join("notes.txt"), UNTIDY).expect("write");

    let out = flowc(&["fmt", "--check", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["./sub/untidy.flow"]);
    // --check writes nothing.
    assert_eq!(read(&dir.path().join("sub/untidy.flow")), UNTIDY);

    let out = flowc(&["fmt", "."], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        read(&dir.path().join("sub/untidy.flow")),
        "flow untidy\non call.ended as call {\n    delay 10m\n}\n"
    );
    assert_eq!(read(&dir.path().join("notes.txt")), UNTIDY);
    // No temporary files are left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");

    let out = flowc(&["fmt", "--check", "."], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_file_that_does_not_parse_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("broken.flow"), BROKEN).expect("write");
    std::fs::write(dir.path().join("untidy.flow"), UNTIDY).expect("write");
    let out = flowc(&["fmt", "broken.flow", "untidy.flow"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("F0001"), "{stdout}");
    assert!(stdout.contains("broken.flow:3:10"), "{stdout}");
    assert_eq!(read(&dir.path().join("broken.flow")), BROKEN);
    // The other files are still formatted.
    assert_ne!(read(&dir.path().join("untidy.flow")), UNTIDY);
}

#[test]
fn a_dash_formats_standard_input_to_standard_output() {
    use std::io::Write as _;
    let run = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("flowc runs");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("flowc ends")
    };
    let out = run(&["fmt", "-"], UNTIDY);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "flow untidy\non call.ended as call {\n    delay 10m\n}\n"
    );

    let out = run(&["fmt", "--check", "-"], UNTIDY);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["fmt", "--check", "-"], TIDY);
    assert_eq!(out.status.code(), Some(0));

    // Standard output carries only formatted text: the syntax error goes to
    // standard error.
    let out = run(&["fmt", "-"], BROKEN);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("F0001") && stderr.contains("<stdin>:3:10"),
        "{stderr}"
    );
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = flowc(&["fmt", "nowhere.flow"], dir.path());
    assert_eq!(out.status.code(), Some(2));
}
