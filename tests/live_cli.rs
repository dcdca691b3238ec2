//! `flowc templates pull` and `flowc run --live` as processes, against a
//! WhatsApp Cloud API mock on loopback: the real wire format, no internet.

use std::process::Command;

use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN_ENV: &str = "FLOWC_TEST_WHATSAPP_TOKEN";

fn flowc() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowc"));
    command
        .env(TOKEN_ENV, "test-token-123")
        .env("NO_COLOR", "1");
    command
}

fn config(server: &MockServer) -> String {
    format!(
        r#"# Synced from Meta.
[whatsapp]
base_url = "{}"
access_token_env = "{TOKEN_ENV}"
business_account_id = "102290129340398"
timeout = "5s"

[senders.office]
phone_number_id = "106540352242922"

[templates.missed_you]
language = "en"
category = "utility"
body = "Hello, we tried to call you."
"#,
        server.uri()
    )
}

fn templates_page() -> serde_json::Value {
    json!({"data": [
        {"name": "missed_you", "language": "en", "status": "APPROVED", "category": "UTILITY",
         "components": [{"type": "BODY", "text": "Hello {{1}}, we tried to call you today."}]},
        {"name": "spring_sale", "language": "de", "status": "APPROVED", "category": "MARKETING",
         "components": [{"type": "BODY", "text": "Hallo {{customer_name}}, 20 % Rabatt. Antworte STOP zum Abmelden."}]},
        {"name": "draft", "language": "en", "status": "PENDING", "category": "UTILITY",
         "components": [{"type": "BODY", "text": "Not yet"}]}
    ]})
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_pull_writes_the_approved_catalog() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .and(header("authorization", "Bearer test-token-123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(templates_page()))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.toml");
    std::fs::write(&file, config(&server)).unwrap();

    let output = flowc()
        .args(["templates", "pull", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("added      spring_sale"), "{stdout}");
    assert!(stdout.contains("updated    missed_you"), "{stdout}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("# Synced from Meta.\n"));
    assert!(written.contains("body = \"Hello {{1}}, we tried to call you today.\""));
    assert!(written.contains("[templates.spring_sale]"));
    assert!(!written.contains("draft"));
    assert!(!written.contains("test-token-123"));

    // A second pull changes nothing.
    let again = flowc()
        .args(["templates", "pull", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("is up to date"));
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_pull_without_a_token_says_which_variable() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.toml");
    std::fs::write(&file, config(&server)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .env_remove(TOKEN_ENV)
        .args(["templates", "pull", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(TOKEN_ENV), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_run_sends_through_the_cloud_api() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v21.0/106540352242922"))
        .and(query_param(
            "fields",
            "display_phone_number,verified_name,quality_rating,status,throughput",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "CONNECTED", "quality_rating": "GREEN"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v21.0/106540352242922/messages"))
        .and(header("authorization", "Bearer test-token-123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+4915112345678", "wa_id": "4915112345678"}],
            "messages": [{"id": "wamid.LIVE1"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.toml"), config(&server)).unwrap();
    std::fs::write(
        dir.path().join("follow_up.flow"),
        "flow follow_up\non call.ended as call {\n    whatsapp.send_template(sender: \"office\", template: \"missed_you\", to: call.customer_phone)\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("event.json"),
        json!({"trigger": "call.ended", "fields": {"customer_phone": "+4915112345678", "agent_name": "Jonas",
            "outcome": "no_answer", "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c-1"}})
        .to_string(),
    )
    .unwrap();

    let output = flowc()
        .arg("run")
        .arg(dir.path().join("follow_up.flow"))
        .arg("--event")
        .arg(dir.path().join("event.json"))
        .arg("--live")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("LIVE run: real sends from office"),
        "{stdout}"
    );
    assert!(stdout.contains("wamid.LIVE1"), "{stdout}");
    assert!(stdout.contains("1 message sent"), "{stdout}");
    assert!(!stdout.contains("test-token-123"));
    let requests = server.received_requests().await.unwrap_or_default();
    let send = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .expect("a send request");
    let body: serde_json::Value = serde_json::from_slice(&send.body).unwrap();
    assert_eq!(
        body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
               "type": "template", "template": {"name": "missed_you", "language": {"code": "en"}}})
    );
}
