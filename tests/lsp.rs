//! The language server, driven as an editor drives it: the real `flowc lsp`
//! binary over stdio with Content-Length framed JSON-RPC (diagnostics,
//! completion, hover, definition, formatting, shutdown), plus in-process tests
//! of position conversion and a property test that random edits never break
//! the server. Every read has a timeout, so a hung server fails the test
//! instead of hanging CI.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use flowc::lsp::documents::{path_to_uri, Document, LineIndex};
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use lsp_types::{Position, Range, TextDocumentContentChangeEvent};
use proptest::prelude::*;
use serde_json::{json, Value};

/// How long any single answer may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
[senders.berlin-office]
phone_number_id = "106540352242922"

[templates.missed_you]
language = "en"
category = "utility"
body = "Hello, we tried to reach you."

[assistants.lead-qualifier]
model = "gpt-4o-mini"
instructions = "You qualify solar leads."
"#;

/// An editor talking to `flowc lsp` over its stdin and stdout.
struct Editor {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    /// Notifications that arrived while waiting for something else.
    notifications: Vec<Value>,
    next_id: i64,
}

impl Editor {
    fn start(root: &Path) -> Editor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .arg("lsp")
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("flowc lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("Content-Length header")];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let value: Value = serde_json::from_slice(&body).expect("JSON body");
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let mut editor = Editor {
            child,
            stdin,
            incoming,
            notifications: Vec::new(),
            next_id: 0,
        };
        let root_uri = path_to_uri(root).expect("root uri");
        let init = editor.request(
            "initialize",
            json!({ "processId": null, "rootUri": root_uri, "capabilities": {} }),
        );
        assert!(init["capabilities"]["hoverProvider"]
            .as_bool()
            .unwrap_or(false));
        editor.notify("initialized", json!({}));
        editor
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn next(&mut self) -> Value {
        self.incoming
            .recv_timeout(TIMEOUT)
            .expect("the server answers in time")
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.next();
            if message["id"] == json!(id) {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return message["result"].clone();
            }
            self.notifications.push(message);
        }
    }

    /// The next diagnostics published for `uri` that satisfy `wanted`.
    fn diagnostics(&mut self, uri: &str, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let matches = |m: &Value| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(i) = self.notifications.iter().position(matches) {
                let message = self.notifications.remove(i);
                let list = message["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if wanted(&list) {
                    return list;
                }
                continue;
            }
            assert!(Instant::now() < deadline, "no wanted diagnostics for {uri}");
            let message = self.next();
            self.notifications.push(message);
        }
    }

    fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": text } }),
        );
    }

    fn change(&mut self, uri: &str, version: i32, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": text }] }),
        );
    }

    fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        self.request(
            method,
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } }),
        )
    }

    /// `shutdown` then `exit`; the process must end successfully.
    fn shut_down(mut self) {
        let result = self.request("shutdown", Value::Null);
        assert_eq!(result, Value::Null);
        self.exit(0);
    }

    /// Sends `exit` and waits for the process to end with `code`.
    fn exit(&mut self, code: i32) {
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert_eq!(status.code(), Some(code), "flowc lsp exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "flowc lsp did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Editor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn exit_without_shutdown_ends_with_code_1() {
    let dir = project();
    let mut editor = Editor::start(dir.path());
    editor.exit(1);
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("flow.toml"), CONFIG).expect("write flow.toml");
    dir
}

fn uri_of(path: &Path) -> String {
    path_to_uri(path).expect("file uri").as_str().to_string()
}

/// The LSP position (UTF-16) of the first `needle` in `text`, computed
/// independently of the server.
fn utf16_position(text: &str, needle: &str) -> (u32, u32) {
    let offset = text.find(needle).expect("needle in text");
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..offset].matches('\n').count();
    let character = text[line_start..offset].encode_utf16().count();
    (line as u32, character as u32)
}

/// The LSP position of the end of `text`.
fn end_position(text: &str) -> (u32, u32) {
    let line_start = text.rfind('\n').map_or(0, |i| i + 1);
    (
        text.matches('\n').count() as u32,
        text[line_start..].encode_utf16().count() as u32,
    )
}

const BAD_PHONE: &str = "flow follow_up\n\
on call.ended as call {\n    \
log(\"Grüße 😀 an {call.agent_name}\") whatsapp.send_template(sender: \"berlin-office\", template: \"missed_you\", to: \"0151/12345678\")\n\
}\n";

#[test]
fn diagnostics_match_flowc_check_and_clear_when_fixed() {
    let dir = project();
    let path = dir.path().join("follow_up.flow");
    std::fs::write(&path, BAD_PHONE).expect("write flow");
    let uri = uri_of(&path);
    let mut editor = Editor::start(dir.path());
    editor.open(&uri, BAD_PHONE);
    let diagnostics = editor.diagnostics(&uri, |d| !d.is_empty());

    // The same codes as `flowc check --format json` on the folder.
    let output = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(["check", "--format", "json"])
        .arg(dir.path())
        .output()
        .expect("flowc check runs");
    let cli_codes: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|d| d["code"].as_str().unwrap_or("").to_string())
        .collect();
    let lsp_codes: Vec<String> = diagnostics
        .iter()
        .map(|d| d["code"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(lsp_codes, cli_codes);
    assert_eq!(lsp_codes, ["F3001"]);

    // The range counts UTF-16 units: `ü` is one, `😀` two.
    let d = &diagnostics[0];
    let (line, start) = utf16_position(BAD_PHONE, "\"0151/12345678\"");
    let end = start + "\"0151/12345678\"".len() as u32;
    assert_eq!(
        d["range"],
        json!({ "start": { "line": line, "character": start }, "end": { "line": line, "character": end } })
    );
    assert_eq!(d["severity"], 1);
    assert_eq!(d["source"], "flowc");
    assert!(d["message"]
        .as_str()
        .unwrap_or("")
        .contains("phone number is not in E.164 format"));

    // The fix clears the diagnostics.
    let fixed = BAD_PHONE.replace("0151/12345678", "+4915112345678");
    editor.change(&uri, 2, &fixed);
    editor.diagnostics(&uri, |d| d.is_empty());

    // Broken again, then closed: closing clears what the editor shows, and
    // reopening shows the diagnostics again.
    editor.change(&uri, 3, BAD_PHONE);
    editor.diagnostics(&uri, |d| !d.is_empty());
    editor.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": uri } }),
    );
    editor.diagnostics(&uri, |d| d.is_empty());
    editor.open(&uri, BAD_PHONE);
    editor.diagnostics(&uri, |d| !d.is_empty());
    editor.shut_down();
}

#[test]
fn other_open_files_of_the_project_take_part_with_related_places() {
    let dir = project();
    let first = dir.path().join("a.flow");
    let second = dir.path().join("b.flow");
    let text = "flow same\non call.ended as call {\n    stop\n}\n";
    let (first_uri, second_uri) = (uri_of(&first), uri_of(&second));
    let mut editor = Editor::start(dir.path());
    // Neither file is on disk: the open documents alone make the project.
    editor.open(&first_uri, text);
    editor.open(&second_uri, text);
    let diagnostics = editor.diagnostics(&second_uri, |d| !d.is_empty());
    assert_eq!(diagnostics[0]["code"], "F1006");
    assert_eq!(
        diagnostics[0]["range"],
        json!({ "start": { "line": 0, "character": 5 }, "end": { "line": 0, "character": 9 } })
    );
    let related = &diagnostics[0]["relatedInformation"][0];
    assert_eq!(related["location"]["uri"], json!(first_uri));
    assert_eq!(related["message"], "first defined here");
    editor.shut_down();
}

#[test]
fn completion_hover_and_definition_work_on_half_typed_text() {
    let dir = project();
    let decls = dir.path().join("booking.flow");
    let decls_text = "## A booking was made in the booking system.\n\
trigger appointment.booked {\n    \
## The customer's phone number in E.164.\n    \
phone: Phone\n    \
starts_at: DateTime\n\
}\n";
    std::fs::write(&decls, decls_text).expect("write declarations");
    let main = dir.path().join("reminder.flow");
    let main_uri = uri_of(&main);
    let decls_uri = uri_of(&decls);
    let mut editor = Editor::start(dir.path());
    editor.open(&decls_uri, decls_text);

    // A flow that uses the other file's trigger, half typed.
    let text = "flow reminder\non appointment.booked as appt {\n    whatsapp.";
    editor.open(&main_uri, text);
    // The first check has finished once the open document gets diagnostics.
    editor.diagnostics(&main_uri, |_| true);

    let labels = |result: &Value| -> Vec<String> {
        let items = result
            .as_array()
            .or_else(|| result["items"].as_array())
            .cloned()
            .unwrap_or_default();
        items
            .iter()
            .map(|i| i["label"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let result = editor.at("textDocument/completion", &main_uri, 2, 13);
    let actions = labels(&result);
    assert!(
        actions.contains(&"send_template".to_string()),
        "{actions:?}"
    );
    assert!(actions.contains(&"send_text".to_string()), "{actions:?}");
    assert!(
        !actions.contains(&"generate_response".to_string()),
        "{actions:?}"
    );

    // Fields of the event after the binding.
    let text = "flow reminder\non appointment.booked as appt {\n    log(appt.";
    editor.change(&main_uri, 2, text);
    let fields = labels(&editor.at("textDocument/completion", &main_uri, 2, 13));
    assert_eq!(fields, ["phone", "starts_at"]);

    // Argument names inside a call, then sender names inside the string.
    let text = "flow reminder\non appointment.booked as appt {\n    whatsapp.send_template(to: appt.phone, ";
    editor.change(&main_uri, 3, text);
    let (line, character) = end_position(text);
    let args = labels(&editor.at("textDocument/completion", &main_uri, line, character));
    assert!(args.contains(&"sender:".to_string()), "{args:?}");
    assert!(args.contains(&"template:".to_string()), "{args:?}");
    assert!(!args.contains(&"to:".to_string()), "{args:?}");
    let text =
        "flow reminder\non appointment.booked as appt {\n    whatsapp.send_template(sender: \"ber";
    editor.change(&main_uri, 4, text);
    let (line, character) = end_position(text);
    let senders = labels(&editor.at("textDocument/completion", &main_uri, line, character));
    assert_eq!(senders, ["berlin-office"]);
    let text = "flow reminder\non appointment.booked as appt {\n    whatsapp.send_template(sender: \"berlin-office\", template: \"";
    editor.change(&main_uri, 5, text);
    let (line, character) = end_position(text);
    let templates = labels(&editor.at("textDocument/completion", &main_uri, line, character));
    assert_eq!(templates, ["missed_you"]);

    // Error kinds after `catch`.
    let text = "flow reminder\non appointment.booked as appt {\n    log(\"x\")\n        catch ";
    editor.change(&main_uri, 6, text);
    let (line, character) = end_position(text);
    let kinds = labels(&editor.at("textDocument/completion", &main_uri, line, character));
    assert!(kinds.contains(&"RateLimited".to_string()), "{kinds:?}");

    // Hover on an action shows its documentation; on an argument, the
    // parameter's; on a user trigger's field, the field's.
    let text = "flow reminder\non appointment.booked as appt {\n    whatsapp.send_template(sender: \"berlin-office\", template: \"missed_you\", to: appt.phone)\n}\n";
    editor.change(&main_uri, 7, text);
    let hover = editor.at("textDocument/hover", &main_uri, 2, 15);
    let value = hover["contents"]["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(value.contains("Send WhatsApp Template Message"), "{value}");
    assert!(value.contains("action whatsapp.send_template("), "{value}");
    let hover = editor.at("textDocument/hover", &main_uri, 2, 28);
    let value = hover["contents"]["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(value.contains("sender: Sender"), "{value}");
    assert!(value.contains("Your WhatsApp sender"), "{value}");
    let (line, character) = utf16_position(text, "phone)");
    let hover = editor.at("textDocument/hover", &main_uri, line, character + 1);
    let value = hover["contents"]["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(value.contains("phone: Phone"), "{value}");
    assert!(
        value.contains("The customer's phone number in E.164."),
        "{value}"
    );
    let hover = editor.at("textDocument/hover", &main_uri, 1, 8);
    let value = hover["contents"]["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(value.contains("A booking was made"), "{value}");

    // Names from flow.toml: hover shows the entry, definition goes there.
    let (line, character) = utf16_position(text, "missed_you");
    let hover = editor.at("textDocument/hover", &main_uri, line, character + 2);
    let value = hover["contents"]["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(value.contains("[templates.missed_you]"), "{value}");
    assert!(value.contains("Hello, we tried to reach you."), "{value}");
    let (line, character) = utf16_position(text, "berlin-office");
    let location = editor.at("textDocument/definition", &main_uri, line, character + 1);
    assert_eq!(
        location["uri"],
        json!(uri_of(&dir.path().join("flow.toml")))
    );
    assert_eq!(
        location["range"],
        json!({ "start": { "line": 1, "character": 9 }, "end": { "line": 1, "character": 22 } })
    );

    // Definition of the user-declared trigger is in the other file.
    let location = editor.at("textDocument/definition", &main_uri, 1, 8);
    assert_eq!(location["uri"], json!(decls_uri));
    assert_eq!(
        location["range"],
        json!({ "start": { "line": 1, "character": 8 }, "end": { "line": 1, "character": 26 } })
    );
    editor.shut_down();
}

#[test]
fn formatting_uses_the_formatter_and_leaves_broken_text_alone() {
    let dir = project();
    let path = dir.path().join("messy.flow");
    let uri = uri_of(&path);
    let messy = "flow   messy\non call.ended as call {\n  log(   \"hi\" )\n}\n";
    let mut editor = Editor::start(dir.path());
    editor.open(&uri, messy);
    let edits = editor.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    let edits = edits.as_array().cloned().unwrap_or_default();
    match flowc::format::format_source(messy) {
        Ok(formatted) if formatted != messy => {
            assert_eq!(edits.len(), 1);
            assert_eq!(edits[0]["newText"], json!(formatted));
            assert_eq!(
                edits[0]["range"]["start"],
                json!({ "line": 0, "character": 0 })
            );
            assert_eq!(
                edits[0]["range"]["end"],
                json!({ "line": 4, "character": 0 })
            );
        }
        _ => assert!(edits.is_empty()),
    }
    editor.change(&uri, 2, "flow broken\non call.ended as {\n");
    let edits = editor.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(edits.as_array().map(Vec::len), Some(0));
    editor.shut_down();
}

/// A 10,000-line document: prints the time to its first diagnostics and to a
/// completion answer. No assertion on the figures; machines are noisy.
#[test]
fn ten_thousand_lines_time_to_diagnostics_and_completion() {
    let dir = project();
    let path = dir.path().join("big.flow");
    let uri = uri_of(&path);
    let mut text = String::new();
    let mut i = 0;
    while text.lines().count() < 10_000 {
        text.push_str(&format!(
            "# flow {i}: a missed call gets the missed-you template\nflow follow_up_{i}\n\non call.ended as call {{\n    delay 10m\n    branch call.outcome {{\n        \"no_answer\" => whatsapp.send_template(sender: \"berlin-office\", template: \"missed_you\", to: call.customer_phone)\n        _ => log(\"no follow-up for {{call.outcome}}\")\n    }}\n}}\n\n"
        ));
        i += 1;
    }
    // One mistake at the very end.
    text.push_str("flow last\non call.ended as call {\n    log(call.nope)\n}\n");
    let lines = text.lines().count();
    let mut editor = Editor::start(dir.path());
    let started = Instant::now();
    editor.open(&uri, &text);
    let diagnostics = editor.diagnostics(&uri, |d| !d.is_empty());
    let to_diagnostics = started.elapsed();
    assert_eq!(diagnostics[0]["code"], "F1003");

    let mut typed = text.clone();
    typed.push_str("flow typing\non call.ended as call {\n    whatsapp.");
    editor.change(&uri, 2, &typed);
    let last_line = typed.lines().count() as u32 - 1;
    let started = Instant::now();
    let result = editor.at("textDocument/completion", &uri, last_line, 13);
    let to_completion = started.elapsed();
    assert!(result.to_string().contains("send_template"));
    let started = Instant::now();
    let result = editor.at("textDocument/hover", &uri, 6, 40);
    let to_hover = started.elapsed();
    assert!(result.to_string().contains("send_template"));
    println!(
        "{lines}-line document: first diagnostics after {to_diagnostics:?}, completion after {to_completion:?}, hover after {to_hover:?}"
    );
    editor.shut_down();
}

#[test]
fn positions_convert_between_bytes_and_utf16() {
    let text = "flow f\non call.ended as c {\n    log(\"Grüße 😀 {c.agent_name}\")\n}\n";
    let index = LineIndex::new(text);
    let offset = text.find("{c.agent_name}").expect("interpolation");
    let position = index.position(offset);
    // `    log("Grüße 😀 ` is 4 + 5 + 5 + 1 + 2 + 1 UTF-16 units.
    assert_eq!(position, Position::new(2, 18));
    assert_eq!(index.offset(position), offset);
    for offset in 0..=text.len() {
        let back = index.offset(index.position(offset));
        assert!(back <= offset && text.is_char_boundary(back));
        if text.is_char_boundary(offset) {
            assert_eq!(back, offset, "at {offset}");
        }
    }
    // Positions out of range are clamped, never a panic.
    assert_eq!(index.offset(Position::new(99, 0)), text.len());
    assert_eq!(
        index.offset(Position::new(0, 99)),
        text.find('\n').expect("line")
    );

    // Ranged edits apply in UTF-16 terms too.
    let uri = "file:///tmp/x.flow".parse().expect("uri");
    let mut doc = Document::new(uri, 1, text.to_string());
    doc.apply_changes(
        2,
        vec![TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(2, 15), Position::new(2, 17))),
            range_length: None,
            text: "🙂".to_string(),
        }],
    );
    assert!(
        doc.text().contains("Grüße 🙂 {c.agent_name}"),
        "{}",
        doc.text()
    );
}

/// Set by the panic hook: a panic anywhere in the in-process server.
static PANICKED: AtomicBool = AtomicBool::new(false);

fn in_process_session(start: &str, edits: &[(u32, u32, u32, u32, String)], probes: &[(u32, u32)]) {
    let (server, client) = Connection::memory();
    let thread = std::thread::spawn(move || flowc::lsp::serve(server));
    let mut next_id = 0;
    let mut request = |client: &Connection, method: &str, params: Value| -> Value {
        next_id += 1;
        let id = RequestId::from(next_id);
        client
            .sender
            .send(Message::Request(Request::new(
                id.clone(),
                method.to_string(),
                params,
            )))
            .expect("send");
        loop {
            match client
                .receiver
                .recv_timeout(TIMEOUT)
                .expect("answer in time")
            {
                Message::Response(r) if r.id == id => {
                    assert!(r.error.is_none(), "{method}: {:?}", r.error);
                    return r.result.unwrap_or(Value::Null);
                }
                _ => {}
            }
        }
    };
    let notify = |client: &Connection, method: &str, params: Value| {
        client
            .sender
            .send(Message::Notification(Notification::new(
                method.to_string(),
                params,
            )))
            .expect("send");
    };
    request(
        &client,
        "initialize",
        json!({ "processId": null, "capabilities": {} }),
    );
    notify(&client, "initialized", json!({}));
    let uri = "untitled:fuzz.flow";
    notify(
        &client,
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": start } }),
    );
    for (version, (l1, c1, l2, c2, insert)) in edits.iter().enumerate() {
        notify(
            &client,
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version + 2 }, "contentChanges": [{
                "range": { "start": { "line": l1, "character": c1 }, "end": { "line": l2, "character": c2 } },
                "text": insert,
            }] }),
        );
        for (line, character) in probes {
            let at = json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
            request(&client, "textDocument/completion", at.clone());
            request(&client, "textDocument/hover", at.clone());
            request(&client, "textDocument/definition", at);
        }
    }
    request(
        &client,
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    // Let the worker check the final text before shutting down: wait until
    // the server has been quiet for a while.
    while client
        .receiver
        .recv_timeout(Duration::from_millis(300))
        .is_ok()
    {}
    request(&client, "shutdown", Value::Null);
    notify(&client, "exit", Value::Null);
    thread
        .join()
        .expect("server thread")
        .expect("server ends cleanly");
}

fn edit() -> impl Strategy<Value = (u32, u32, u32, u32, String)> {
    let pieces = prop::sample::select(vec![
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "\"",
        "\\",
        ".",
        ",",
        ":",
        "#",
        "##",
        "\n",
        "@",
        "ä",
        "😀",
        "whatsapp.",
        "call.",
        "sender: \"",
        "on ",
        "as ",
        "flow x\n",
        "matches /",
        "{x}",
        "retry 1 times every 1m",
        "catch e {",
        "let a = ",
        "whatsapp.send_template(",
        " ",
    ]);
    (
        0u32..12,
        0u32..80,
        0u32..12,
        0u32..80,
        prop::collection::vec(pieces, 0..4).prop_map(|p| p.concat()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random edits and requests at random places never make the server
    /// panic, answer with an error or stop answering.
    #[test]
    fn random_edits_never_break_the_server(
        edits in prop::collection::vec(edit(), 1..12),
        probes in prop::collection::vec((0u32..14, 0u32..90), 1..4),
    ) {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                PANICKED.store(true, Ordering::SeqCst);
                previous(info);
            }));
        });
        in_process_session(BAD_PHONE, &edits, &probes);
        prop_assert!(!PANICKED.load(Ordering::SeqCst), "the server panicked");
    }
}
