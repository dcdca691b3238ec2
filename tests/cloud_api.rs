//! The WhatsApp Cloud API provider against a mock Graph API (wiremock on
//! loopback, one server per test):
//!
//! - the exact requests: method, path, headers and JSON bodies of text and
//!   template messages (positional, named, no parameters);
//! - every Meta error code of the mapping to its `ActionError`, with the
//!   `Retry-After` header honoured and the token never in a message;
//! - timeouts and connection failures;
//! - sender status and its cache; the template catalog over two pages;
//! - end to end: an `Engine` with the provider runs a checked flow, and a
//!   rate-limited send is retried after the asked-for delay;
//! - rich messages: the exact bodies of reply buttons, lists, every media
//!   kind, read receipts (with and without typing) and templates with
//!   header and buttons; the multipart upload, part by part; media lookup
//!   and the authenticated download, refused or stopped over the size
//!   limit, expired, damaged, or pointing at another host; media error
//!   codes as `MediaError`.

use std::time::{Duration, Instant};

use flowc::check::{Compiler, Program};
use flowc::media::MediaKind;
use flowc::providers::cloud_api::{
    ApprovedButton, ApprovedHeader, ApprovedTemplate, CloudApi, CloudApiSettings,
};
use flowc::providers::{
    Choice, Choices, InteractiveMessage, ListSection, MediaInfo, MediaMessage, MediaSource,
    MediaUpload, ReadReceipt, RunOutcome, Secret, SenderRef, SenderStatus, TemplateButton,
    TemplateButtonParameter, TemplateHeader, TemplateMessage, TemplateParameters, TextMessage,
    WhatsApp,
};
use flowc::runtime::{ActionError, Engine, EngineLimits, Event, Limits, RunStatus};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A token that must never show up in an error or a `Debug` output.
const TOKEN: &str = "EAAGtestTOKEN-must-never-leak-7f3a9c";
const PHONE_NUMBER_ID: &str = "106540352242922";
const WABA_ID: &str = "102290129340398";
const MESSAGES_PATH: &str = "/v21.0/106540352242922/messages";
const SENDER_PATH: &str = "/v21.0/106540352242922";
const TEMPLATES_PATH: &str = "/v21.0/102290129340398/message_templates";
const RECIPIENT: &str = "+4915112345678";
const WAMID: &str = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQ2QkQ5RjU2RDBEQzNBNEY2AA==";

fn settings(server: &MockServer) -> CloudApiSettings {
    let mut settings = CloudApiSettings::new(Secret::new(TOKEN));
    settings.base_url = server.uri();
    settings.business_account_id = Some(WABA_ID.to_string());
    settings
}

fn api(server: &MockServer) -> CloudApi {
    CloudApi::new(settings(server)).expect("settings are valid")
}

fn sender() -> SenderRef {
    SenderRef {
        name: "berlin-office".into(),
        phone_number_id: PHONE_NUMBER_ID.into(),
    }
}

fn text(body: &str) -> TextMessage {
    TextMessage {
        sender: sender(),
        to: RECIPIENT.into(),
        body: body.into(),
    }
}

fn template(name: &str, language: &str, parameters: TemplateParameters) -> TemplateMessage {
    TemplateMessage {
        sender: sender(),
        to: RECIPIENT.into(),
        recipient_name: Some("Anna Schmidt".into()),
        template: name.into(),
        language: language.into(),
        parameters,
        header: None,
        buttons: Vec::new(),
        body: None,
    }
}

fn appointment_confirmed() -> TemplateMessage {
    template(
        "appointment_confirmed",
        "de",
        TemplateParameters::Positional(vec![
            "Anna".into(),
            "Dr. Weber".into(),
            "12.03.2026 10:30".into(),
            "Berlin Mitte".into(),
        ]),
    )
}

/// Meta's answer to a successful send.
fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": RECIPIENT, "wa_id": "4915112345678"}],
        "messages": [{"id": WAMID, "message_status": "accepted"}],
    }))
}

/// Meta's error answer with `code`.
fn meta_error(status: u16, code: i64) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {
            "message": format!("(#{code}) Something about it"),
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": format!("Details of {code}.")},
            "fbtrace_id": "AbCdEf123",
        }
    }))
}

fn connected(quality: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "display_phone_number": "+49 30 901820",
        "verified_name": "Nordlicht Solar",
        "quality_rating": quality,
        "status": "CONNECTED",
        "throughput": {"level": "STANDARD"},
        "id": PHONE_NUMBER_ID,
    }))
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

/// The one request the server received, checked to be an authorized JSON
/// POST to the messages endpoint; returns its body.
async fn only_send(server: &MockServer) -> Value {
    let requests = requests(server).await;
    assert_eq!(requests.len(), 1, "expected exactly one request");
    let request = &requests[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), MESSAGES_PATH);
    assert_eq!(request.url.query(), None);
    assert_eq!(
        request.headers.get("authorization").unwrap(),
        &format!("Bearer {TOKEN}")
    );
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/json"
    );
    let agent = request.headers.get("user-agent").unwrap().to_str().unwrap();
    assert!(agent.starts_with("flowc/"), "{agent}");
    request.body_json().expect("the body is JSON")
}

/// Asserts that neither the error's `Display` nor its `Debug` has the token.
fn assert_no_token(error: &ActionError) {
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(TOKEN),
        "the token leaked into an error: {shown}"
    );
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn text_message_request_is_exact() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;

    let sent = api(&server)
        .send_text(&text("Your order has shipped."))
        .await
        .unwrap();

    assert_eq!(sent.message_id, WAMID);
    assert_eq!(
        only_send(&server).await,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4915112345678",
            "type": "text",
            "text": {"preview_url": false, "body": "Your order has shipped."},
        })
    );
}

#[tokio::test]
async fn positional_template_request_is_exact() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(accepted())
        .mount(&server)
        .await;

    let sent = api(&server)
        .send_template(&appointment_confirmed())
        .await
        .unwrap();

    assert_eq!(sent.message_id, WAMID);
    assert_eq!(only_send(&server).await, positional_body());
}

#[tokio::test]
async fn named_template_request_is_exact() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(accepted())
        .mount(&server)
        .await;

    let message = template(
        "order_shipped",
        "en_US",
        TemplateParameters::Named(vec![
            ("customer_name".into(), "Anna".into()),
            ("order_id".into(), "A-1234".into()),
        ]),
    );
    api(&server).send_template(&message).await.unwrap();

    assert_eq!(
        only_send(&server).await,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4915112345678",
            "type": "template",
            "template": {
                "name": "order_shipped",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "parameter_name": "customer_name", "text": "Anna"},
                    {"type": "text", "parameter_name": "order_id", "text": "A-1234"},
                ]}],
            },
        })
    );
}

#[tokio::test]
async fn template_without_parameters_has_no_components() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(accepted())
        .mount(&server)
        .await;

    let message = template("missed_you", "en", TemplateParameters::Positional(vec![]));
    api(&server).send_template(&message).await.unwrap();
    let named = template("missed_you", "en", TemplateParameters::Named(vec![]));
    api(&server).send_template(&named).await.unwrap();

    let expected = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "4915112345678",
        "type": "template",
        "template": {"name": "missed_you", "language": {"code": "en"}},
    });
    for request in requests(&server).await {
        assert_eq!(request.body_json::<Value>().unwrap(), expected);
    }
}

#[tokio::test]
async fn a_malformed_recipient_never_reaches_the_network() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted())
        .expect(0)
        .mount(&server)
        .await;

    let mut message = text("hi");
    message.to = "0151/12345678".into();
    let error = api(&server).send_text(&message).await.unwrap_err();
    assert!(
        matches!(&error, ActionError::InvalidPhone { phone, .. } if phone == "0151/12345678"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_success_without_message_id_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "contacts": [], "messages": [],
        })))
        .mount(&server)
        .await;

    let error = api(&server).send_text(&text("hi")).await.unwrap_err();
    assert_eq!(error.kind(), "InvalidRequest", "{error}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("no message id"), "{error}");

    // Not even JSON.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .mount(&server)
        .await;
    let error = api(&server).send_text(&text("hi")).await.unwrap_err();
    assert_eq!(error.kind(), "InvalidRequest", "{error}");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One row of the mapping: Meta's code (or none: a bare HTTP error), the
/// HTTP status, the kind, and the wait of a rate limit.
struct Case {
    code: Option<i64>,
    status: u16,
    kind: &'static str,
    retry_after_ms: Option<u64>,
}

const fn case(code: i64, status: u16, kind: &'static str) -> Case {
    Case {
        code: Some(code),
        status,
        kind,
        retry_after_ms: None,
    }
}

const fn limited(code: i64, status: u16, wait_ms: u64) -> Case {
    Case {
        code: Some(code),
        status,
        kind: "RateLimited",
        retry_after_ms: Some(wait_ms),
    }
}

const fn bare(status: u16, kind: &'static str, retry_after_ms: Option<u64>) -> Case {
    Case {
        code: None,
        status,
        kind,
        retry_after_ms,
    }
}

const CASES: &[Case] = &[
    case(131047, 400, "OutsideWindow"),
    case(132001, 404, "TemplateNotFound"),
    case(132015, 400, "TemplateNotFound"),
    case(132016, 400, "TemplateNotFound"),
    case(132000, 400, "TemplateParams"),
    case(132005, 400, "TemplateParams"),
    case(132007, 400, "TemplateParams"),
    case(132012, 400, "TemplateParams"),
    case(131008, 400, "InvalidRequest"),
    case(131009, 400, "InvalidRequest"),
    case(100, 400, "InvalidRequest"),
    case(131051, 400, "InvalidRequest"),
    case(131026, 400, "Undeliverable"),
    case(131049, 400, "Undeliverable"),
    case(131050, 400, "Undeliverable"),
    case(130472, 400, "Undeliverable"),
    case(131030, 400, "InvalidPhone"),
    case(131021, 400, "InvalidPhone"),
    case(133010, 400, "SenderOffline"),
    case(131045, 400, "SenderOffline"),
    case(131031, 403, "SenderOffline"),
    case(368, 403, "SenderOffline"),
    case(131042, 400, "SenderOffline"),
    case(131037, 400, "SenderOffline"),
    limited(130429, 429, 1_000),
    limited(131056, 400, 6_000),
    limited(4, 403, 60_000),
    limited(17, 403, 60_000),
    limited(613, 400, 60_000),
    limited(80007, 400, 60_000),
    case(131048, 400, "QualityLimited"),
    case(190, 401, "Unauthorized"),
    case(10, 403, "Unauthorized"),
    case(200, 403, "Unauthorized"),
    case(131005, 403, "Unauthorized"),
    case(131000, 500, "Transient"),
    case(1, 500, "Transient"),
    case(2, 503, "Transient"),
    case(131016, 503, "Transient"),
    case(131057, 400, "Transient"),
    // A code the table does not know: the HTTP status decides.
    case(999_999, 400, "InvalidRequest"),
    case(999_999, 502, "Transient"),
    // No Meta body at all (a proxy, a load balancer).
    bare(401, "Unauthorized", None),
    bare(403, "Unauthorized", None),
    bare(404, "InvalidRequest", None),
    bare(429, "RateLimited", Some(60_000)),
    bare(500, "Transient", None),
    bare(502, "Transient", None),
    bare(503, "Transient", None),
];

#[tokio::test]
async fn every_error_code_maps_to_its_kind() {
    let server = MockServer::start().await;
    let api = api(&server);
    for case in CASES {
        server.reset().await;
        let response = match case.code {
            Some(code) => meta_error(case.status, code),
            None => ResponseTemplate::new(case.status)
                .set_body_string("<html><body>Bad gateway</body></html>"),
        };
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .respond_with(response)
            .mount(&server)
            .await;

        let error = api
            .send_template(&appointment_confirmed())
            .await
            .unwrap_err();
        let what = format!("code {:?}, HTTP {}: {error:?}", case.code, case.status);
        assert_eq!(error.kind(), case.kind, "{what}");
        assert_eq!(error.retry_after_ms(), case.retry_after_ms, "{what}");
        assert_eq!(
            error.is_retryable(),
            matches!(case.kind, "RateLimited" | "Transient"),
            "{what}"
        );
        assert_no_token(&error);

        // The variants name what the send was about.
        match &error {
            ActionError::OutsideWindow { recipient } => assert_eq!(recipient, RECIPIENT),
            ActionError::TemplateNotFound { template, reason }
            | ActionError::TemplateParams { template, reason } => {
                assert_eq!(template, "appointment_confirmed");
                assert!(reason.contains("fbtrace_id AbCdEf123"), "{what}");
            }
            ActionError::SenderOffline { sender, .. } => assert_eq!(sender, "berlin-office"),
            ActionError::InvalidPhone { phone, .. } => assert_eq!(phone, RECIPIENT),
            _ => {}
        }
        // Meta's code and trace id are in every message that has room.
        if let Some(code) = case.code {
            if case.kind != "OutsideWindow" {
                let shown = error.to_string();
                assert!(shown.contains(&format!("WhatsApp error {code}")), "{shown}");
                assert!(shown.contains("AbCdEf123"), "{shown}");
                assert!(shown.contains(&format!("Details of {code}.")), "{shown}");
            }
        } else {
            assert!(error.to_string().contains(&format!("HTTP {}", case.status)));
        }
    }
}

#[tokio::test]
async fn retry_after_header_sets_the_wait() {
    let server = MockServer::start().await;
    let api = api(&server);
    for (code, header_value, expected) in [
        (130429, "7", 7_000),
        (131056, "3", 3_000),
        (80007, "120", 120_000),
        (4, "0.5", 500),
    ] {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(meta_error(429, code).insert_header("Retry-After", header_value))
            .mount(&server)
            .await;
        let error = api.send_text(&text("hi")).await.unwrap_err();
        assert_eq!(error.kind(), "RateLimited");
        assert_eq!(error.retry_after_ms(), Some(expected), "code {code}");
    }
}

#[tokio::test]
async fn a_recipient_parameter_error_is_invalid_phone() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "(#100) Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_data": {"messaging_product": "whatsapp",
                           "details": "The recipient phone number is not a WhatsApp phone number."},
            "fbtrace_id": "XyZ"}})))
        .mount(&server)
        .await;
    let error = api(&server).send_text(&text("hi")).await.unwrap_err();
    assert!(
        matches!(&error, ActionError::InvalidPhone { phone, reason }
            if phone == RECIPIENT && reason.contains("not a WhatsApp phone number")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug_output() {
    let server = MockServer::start().await;
    let api = api(&server);
    let mut errors = Vec::new();

    // Meta quoting the token back (as "malformed access token" answers can).
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Malformed access token {TOKEN}"),
            "type": "OAuthException", "code": 190,
            "error_data": {"details": format!("token {TOKEN} cannot be parsed")},
            "fbtrace_id": "T1"}})))
        .mount(&server)
        .await;
    errors.push(api.send_text(&text("hi")).await.unwrap_err());

    // A body that is not JSON and echoes the request's header.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(502).set_body_string(format!("upstream saw Bearer {TOKEN}")),
        )
        .mount(&server)
        .await;
    errors.push(api.send_text(&text("hi")).await.unwrap_err());

    // Every mapped code.
    for case in CASES.iter().filter_map(|c| c.code) {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(meta_error(400, case))
            .mount(&server)
            .await;
        errors.push(api.send_text(&text("hi")).await.unwrap_err());
    }

    // Timeouts and connection failures.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(accepted().set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let mut quick = settings(&server);
    quick.timeout = Duration::from_millis(100);
    errors.push(
        CloudApi::new(quick)
            .unwrap()
            .send_text(&text("hi"))
            .await
            .unwrap_err(),
    );
    let mut closed = settings(&server);
    closed.base_url = format!("http://{}", unused_address());
    let closed = CloudApi::new(closed).unwrap();
    errors.push(closed.send_text(&text("hi")).await.unwrap_err());
    errors.push(closed.sender_status(&sender()).await.unwrap_err());
    errors.push(closed.fetch_templates().await.unwrap_err());

    assert!(errors.len() > 40);
    for error in &errors {
        assert_no_token(error);
    }
    assert!(errors[0].to_string().contains("***"), "{}", errors[0]);

    let shown = format!("{api:?} {:?}", settings(&server));
    assert!(!shown.contains(TOKEN), "{shown}");
    let bad =
        CloudApi::new(CloudApiSettings::new(Secret::new(format!("{TOKEN}\u{7}")))).unwrap_err();
    assert!(!format!("{bad} {bad:?}").contains(TOKEN), "{bad:?}");
}

/// A loopback address nothing listens on.
fn unused_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted().set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut quick = settings(&server);
    quick.timeout = Duration::from_millis(200);
    let api = CloudApi::new(quick).unwrap();

    let started = Instant::now();
    let error = api.send_text(&text("hi")).await.unwrap_err();
    assert_eq!(error, ActionError::Timeout { after_ms: 200 });
    assert!(error.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let mut settings = CloudApiSettings::new(Secret::new(TOKEN));
    settings.base_url = format!("http://{}", unused_address());
    let error = CloudApi::new(settings)
        .unwrap()
        .send_template(&appointment_confirmed())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "Transient", "{error}");
    assert!(error.to_string().contains("could not connect"), "{error}");
}

// ---------------------------------------------------------------------------
// Sender status
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sender_status_reads_the_phone_number() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(SENDER_PATH))
        .and(query_param(
            "fields",
            "display_phone_number,verified_name,quality_rating,status,throughput",
        ))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(connected("YELLOW"))
        .expect(1)
        .mount(&server)
        .await;

    let status = api(&server).sender_status(&sender()).await.unwrap();
    assert_eq!(
        status,
        SenderStatus {
            online: true,
            quality: "YELLOW".into(),
            detail: "CONNECTED".into(),
        }
    );
}

#[tokio::test]
async fn other_statuses_are_offline() {
    let server = MockServer::start().await;
    let mut no_cache = settings(&server);
    no_cache.status_cache = Duration::ZERO;
    let api = CloudApi::new(no_cache).unwrap();
    for (status, online) in [
        ("CONNECTED", true),
        ("FLAGGED", true),
        ("RATE_LIMITED", true),
        ("PENDING", false),
        ("DISCONNECTED", false),
        ("OFFLINE", false),
        ("BANNED", false),
        ("DELETED", false),
    ] {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path(SENDER_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "status": status, "quality_rating": "RED", "id": PHONE_NUMBER_ID})))
            .mount(&server)
            .await;
        let got = api.sender_status(&sender()).await.unwrap();
        assert_eq!(got.online, online, "{status}");
        assert_eq!(got.detail, status);
        assert_eq!(got.quality, "RED");
    }

    // No status and no quality at all.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": PHONE_NUMBER_ID})))
        .mount(&server)
        .await;
    let got = api.sender_status(&sender()).await.unwrap();
    assert!(!got.online);
    assert_eq!(got.quality, "UNKNOWN");
}

#[tokio::test]
async fn sender_status_is_cached_per_phone_number() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(SENDER_PATH))
        .respond_with(connected("GREEN"))
        .expect(2) // once, and once more after the cache is cleared
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v21.0/107655463353033"))
        .respond_with(connected("RED"))
        .expect(1)
        .mount(&server)
        .await;

    let api = api(&server);
    let clone = api.clone();
    let first = api.sender_status(&sender()).await.unwrap();
    let second = clone.sender_status(&sender()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.quality, "GREEN");
    let munich = SenderRef {
        name: "munich-office".into(),
        phone_number_id: "107655463353033".into(),
    };
    assert_eq!(api.sender_status(&munich).await.unwrap().quality, "RED");
    assert_eq!(api.sender_status(&munich).await.unwrap().quality, "RED");
    assert_eq!(requests(&server).await.len(), 2);

    // Forgetting asks again.
    api.clear_status_cache();
    api.sender_status(&sender()).await.unwrap();
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn the_cache_expires_and_zero_disables_it() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(SENDER_PATH))
        .respond_with(connected("GREEN"))
        .mount(&server)
        .await;

    let mut short = settings(&server);
    short.status_cache = Duration::from_millis(150);
    let api = CloudApi::new(short).unwrap();
    api.sender_status(&sender()).await.unwrap();
    api.sender_status(&sender()).await.unwrap();
    assert_eq!(requests(&server).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.sender_status(&sender()).await.unwrap();
    assert_eq!(requests(&server).await.len(), 2);

    let mut off = settings(&server);
    off.status_cache = Duration::ZERO;
    let api = CloudApi::new(off).unwrap();
    api.sender_status(&sender()).await.unwrap();
    api.sender_status(&sender()).await.unwrap();
    assert_eq!(requests(&server).await.len(), 4);
}

#[tokio::test]
async fn sender_status_errors_are_mapped_and_not_cached() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(meta_error(401, 190))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(connected("GREEN"))
        .mount(&server)
        .await;

    let api = api(&server);
    let error = api.sender_status(&sender()).await.unwrap_err();
    assert_eq!(error.kind(), "Unauthorized", "{error}");
    assert!(api.sender_status(&sender()).await.unwrap().online);
}

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

const TEMPLATE_FIELDS: &str = "name,language,status,category,components,parameter_format";

#[tokio::test]
async fn fetch_templates_follows_the_pages() {
    let server = MockServer::start().await;
    let cursor = "QVFIUm5hZAHlPOEZA";
    Mock::given(method("GET"))
        .and(path(TEMPLATES_PATH))
        .and(query_param("fields", TEMPLATE_FIELDS))
        .and(query_param("limit", "100"))
        .and(query_param_is_missing("after"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"name": "appointment_confirmed", "language": "de", "status": "APPROVED",
                 "category": "UTILITY", "parameter_format": "POSITIONAL", "id": "1",
                 "components": [
                     {"type": "HEADER", "format": "TEXT", "text": "Appointment"},
                     {"type": "BODY", "text": "Hello {{1}}, your appointment with {{2}} on {{3}} is confirmed.\nLocation: {{4}}",
                      "example": {"body_text": [["Anna", "Dr. Weber", "12.03.2026", "Berlin"]]}},
                     {"type": "FOOTER", "text": "Nordlicht Solar"}]},
                {"name": "spring_sale", "language": "en", "status": "PAUSED",
                 "category": "MARKETING", "parameter_format": "NAMED", "id": "2",
                 "components": [{"type": "BODY", "text": "Hi {{customer_name}}, 20% off. Reply STOP to unsubscribe."}]},
            ],
            "paging": {
                "cursors": {"before": "QVFIUjB", "after": cursor},
                "next": format!("https://graph.facebook.com/v21.0/{WABA_ID}/message_templates?fields=name&limit=100&after={cursor}"),
            },
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TEMPLATES_PATH))
        .and(query_param("fields", TEMPLATE_FIELDS))
        .and(query_param("limit", "100"))
        .and(query_param("after", cursor))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"name": "login_code", "language": "en_US", "status": "REJECTED",
                 "category": "AUTHENTICATION", "id": "3",
                 "components": [{"type": "BUTTONS", "buttons": []}]},
                {"name": "order_shipped", "language": "en", "status": "APPROVED",
                 "category": "UTILITY", "id": "4",
                 "components": [
                     {"type": "HEADER", "format": "IMAGE",
                      "example": {"header_handle": ["https://scontent.example/x.png"]}},
                     {"type": "BODY", "text": "Hi {{1}}, your order has shipped."},
                     {"type": "BUTTONS", "buttons": [
                         {"type": "QUICK_REPLY", "text": "Stop updates"},
                         {"type": "URL", "text": "Track", "url": "https://example.com/track/{{1}}",
                          "example": ["https://example.com/track/123"]},
                         {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+4930901820"},
                         {"text": "a button without type is left out"}]}]},
            ],
            "paging": {"cursors": {"before": "QVFIUjC", "after": "QVFIUjD"}},
        })))
        .expect(1)
        .mount(&server)
        .await;

    let templates = api(&server).fetch_templates().await.unwrap();

    assert_eq!(
        templates,
        vec![
            ApprovedTemplate {
                name: "appointment_confirmed".into(),
                language: "de".into(),
                status: "APPROVED".into(),
                category: "utility".into(),
                body: Some(
                    "Hello {{1}}, your appointment with {{2}} on {{3}} is confirmed.\nLocation: {{4}}"
                        .into()
                ),
                parameter_format: Some("POSITIONAL".into()),
                header: Some(ApprovedHeader {
                    format: "text".into(),
                    text: Some("Appointment".into()),
                }),
                buttons: vec![],
            },
            ApprovedTemplate {
                name: "spring_sale".into(),
                language: "en".into(),
                status: "PAUSED".into(),
                category: "marketing".into(),
                body: Some("Hi {{customer_name}}, 20% off. Reply STOP to unsubscribe.".into()),
                parameter_format: Some("NAMED".into()),
                header: None,
                buttons: vec![],
            },
            ApprovedTemplate {
                name: "login_code".into(),
                language: "en_US".into(),
                status: "REJECTED".into(),
                category: "authentication".into(),
                body: None,
                parameter_format: None,
                header: None,
                buttons: vec![],
            },
            ApprovedTemplate {
                name: "order_shipped".into(),
                language: "en".into(),
                status: "APPROVED".into(),
                category: "utility".into(),
                body: Some("Hi {{1}}, your order has shipped.".into()),
                parameter_format: None,
                header: Some(ApprovedHeader {
                    format: "image".into(),
                    text: None,
                }),
                buttons: vec![
                    ApprovedButton {
                        kind: "quick_reply".into(),
                        text: "Stop updates".into(),
                        url: None,
                    },
                    ApprovedButton {
                        kind: "url".into(),
                        text: "Track".into(),
                        url: Some("https://example.com/track/{{1}}".into()),
                    },
                    ApprovedButton {
                        kind: "phone_number".into(),
                        text: "Call us".into(),
                        url: None,
                    },
                ],
            },
        ]
    );
    let approved: Vec<&str> = templates
        .iter()
        .filter(|t| t.is_approved())
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(approved, ["appointment_confirmed", "order_shipped"]);
    assert_eq!(
        templates[0].placeholders(),
        Ok(flowc::config::Placeholders::Positional(4))
    );
    assert_eq!(
        templates[1].placeholders(),
        Ok(flowc::config::Placeholders::Named(vec![
            "customer_name".into()
        ]))
    );
    assert_eq!(
        templates[1].template_category(),
        Some(flowc::config::TemplateCategory::Marketing)
    );
}

#[tokio::test]
async fn a_next_url_without_cursors_is_followed_on_the_configured_host() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TEMPLATES_PATH))
        .and(query_param_is_missing("after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"name": "a", "language": "en", "status": "APPROVED", "category": "UTILITY",
                      "components": [{"type": "BODY", "text": "A"}]}],
            // Another host, with a token in the URL: neither is used.
            "paging": {"next": "https://elsewhere.example/v21.0/1/message_templates?access_token=XYZ&after=PAGE2"},
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TEMPLATES_PATH))
        .and(query_param("after", "PAGE2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"name": "b", "language": "en", "status": "PENDING", "category": "MARKETING",
                      "components": []}],
            "paging": {},
        })))
        .mount(&server)
        .await;

    let names: Vec<String> = api(&server)
        .fetch_templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    for request in requests(&server).await {
        assert!(!request.url.as_str().contains("access_token"));
    }
}

#[tokio::test]
async fn fetch_templates_errors() {
    let server = MockServer::start().await;
    let mut without = settings(&server);
    without.business_account_id = None;
    let error = CloudApi::new(without)
        .unwrap()
        .fetch_templates()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "InvalidRequest");
    assert!(error.to_string().contains("business_account_id"), "{error}");

    Mock::given(method("GET"))
        .respond_with(meta_error(400, 80007))
        .mount(&server)
        .await;
    let error = api(&server).fetch_templates().await.unwrap_err();
    assert_eq!(error.retry_after_ms(), Some(60_000));

    // A page that repeats its own cursor would loop forever.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [], "paging": {"cursors": {"after": "SAME"}, "next": "https://graph.facebook.com/x?after=SAME"},
        })))
        .mount(&server)
        .await;
    let error = api(&server).fetch_templates().await.unwrap_err();
    assert_eq!(error.kind(), "Transient", "{error}");
    assert_eq!(requests(&server).await.len(), 2);
}

// ---------------------------------------------------------------------------
// End to end: an engine with the provider
// ---------------------------------------------------------------------------

const FLOW_TOML: &str = r#"
[senders.berlin-office]
phone_number_id = "106540352242922"
phone = "+4930901820"

[templates.appointment_confirmed]
language = "de"
category = "utility"
body = "Hello {{1}}, your appointment with {{2}} on {{3}} is confirmed.\nLocation: {{4}}"
"#;

const CONFIRM_FLOW: &str = r#"
flow confirm_appointment

on call.ended as call {
    whatsapp.send_template(
        sender: "berlin-office",
        template: "appointment_confirmed",
        to: call.customer_phone,
        variables: [call.customer_name ?? "there", call.agent_name,
                    call.appointment_date ?? "soon", call.location ?? "our office"],
    )
        retry 1 times every 1s
}
"#;

const ANSWER_FLOW: &str = r#"
flow answer

on whatsapp.message_received as msg {
    whatsapp.send_text(sender: msg.sender_id, to: msg.phone, message: "Thanks for your message!")
}
"#;

fn program(source: &str) -> Program {
    let mut compiler = Compiler::new();
    compiler.add_source("test.flow", source);
    compiler.add_config("flow.toml", FLOW_TOML);
    compiler
        .check()
        .into_result()
        .unwrap_or_else(|e| panic!("the flow does not check:\n{e}"))
}

/// An engine on the Cloud API provider, without the pair-rate pacing (a
/// retry to the same recipient would otherwise wait 6 s).
fn engine(api: CloudApi, source: &str) -> Engine {
    let limits = EngineLimits {
        pacing: Limits {
            recipient_interval: chrono::Duration::zero(),
            ..Limits::default()
        },
        ..EngineLimits::default()
    };
    let engine = Engine::builder().whatsapp(api).limits(limits).build();
    engine
        .load(program(source))
        .expect("every action the flows call is implemented");
    engine
}

fn call_ended() -> Event {
    Event::new(
        "call.ended",
        json!({
            "customer_phone": RECIPIENT,
            "customer_name": "Anna",
            "agent_name": "Dr. Weber",
            "outcome": "appointment_booked",
            "appointment_date": "12.03.2026 10:30",
            "location": "Berlin Mitte",
            "ended_at": "2026-03-10T14:42:10+01:00",
            "call_id": "call_1",
        }),
    )
}

fn positional_body() -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "4915112345678",
        "type": "template",
        "template": {
            "name": "appointment_confirmed",
            "language": {"code": "de"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Anna"},
                {"type": "text", "text": "Dr. Weber"},
                {"type": "text", "text": "12.03.2026 10:30"},
                {"type": "text", "text": "Berlin Mitte"},
            ]}],
        },
    })
}

#[tokio::test]
async fn an_engine_sends_a_template_through_the_cloud_api() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(SENDER_PATH))
        .respond_with(connected("GREEN"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;

    let engine = engine(api(&server), CONFIRM_FLOW);
    let reports = engine.dispatch(call_ended()).await.unwrap();

    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].status,
        RunStatus::Finished(RunOutcome::Completed)
    );
    let posts: Vec<Request> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body_json::<Value>().unwrap(), positional_body());
}

#[tokio::test]
async fn an_engine_answers_inside_the_window_with_free_text() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(SENDER_PATH))
        .respond_with(connected("GREEN"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;

    let engine = engine(api(&server), ANSWER_FLOW);
    let event = Event::new(
        "whatsapp.message_received",
        json!({
            "phone": RECIPIENT,
            "text": "What does the premium plan cost?",
            "sender_id": "berlin-office",
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "conversation_id": "conv_1",
            "message_id": "wamid.in.1",
            "name": "Anna Schmidt",
        }),
    );
    let reports = engine.dispatch(event).await.unwrap();
    assert_eq!(
        reports[0].status,
        RunStatus::Finished(RunOutcome::Completed)
    );
    let posts: Vec<Request> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(
        posts[0].body_json::<Value>().unwrap(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4915112345678",
            "type": "text",
            "text": {"preview_url": false, "body": "Thanks for your message!"},
        })
    );
}

#[tokio::test]
async fn a_rate_limited_send_is_retried_after_the_delay() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(SENDER_PATH))
        .respond_with(connected("GREEN"))
        .expect(1) // the second attempt's status check is served from the cache
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(meta_error(429, 130429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;

    let engine = engine(api(&server), CONFIRM_FLOW);
    let started = Instant::now();
    let reports = engine.dispatch(call_ended()).await.unwrap();
    assert!(
        matches!(reports[0].status, RunStatus::Suspended(_)),
        "{:?}",
        reports[0].status
    );

    let resumed = engine.run_until_idle().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        resumed[0].status,
        RunStatus::Finished(RunOutcome::Completed)
    );
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

    let posts: Vec<Request> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    for post in &posts {
        assert_eq!(post.body_json::<Value>().unwrap(), positional_body());
    }
    let sent = engine.store().sent_log().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_id, WAMID);
}

// ---------------------------------------------------------------------------
// Rich messages: interactive, media, uploads, downloads, read receipts,
// templates with header and buttons
// ---------------------------------------------------------------------------

fn choice(id: &str, title: &str, description: Option<&str>) -> Choice {
    Choice {
        id: id.into(),
        title: title.into(),
        description: description.map(str::to_string),
    }
}

/// Sends one message with `send` against a server that accepts it, checks
/// the message id, and returns the body of the one request.
async fn sent_body<F, Fut>(send: F) -> Value
where
    F: FnOnce(CloudApi) -> Fut,
    Fut: std::future::Future<Output = Result<flowc::providers::SentMessage, ActionError>>,
{
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let sent = send(api(&server)).await.expect("the send succeeds");
    assert_eq!(sent.message_id, WAMID);
    only_send(&server).await
}

#[tokio::test]
async fn reply_buttons_request_is_exact() {
    let message = InteractiveMessage {
        sender: sender(),
        to: RECIPIENT.into(),
        header: None,
        body: "Shall we confirm Tuesday 10:30?".into(),
        footer: None,
        choices: Choices::Buttons(vec![
            choice("confirm", "Yes, confirm", None),
            choice("reschedule", "Another time", None),
        ]),
    };
    let body = sent_body(|api| async move { api.send_interactive(&message).await }).await;
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4915112345678",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Shall we confirm Tuesday 10:30?"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "confirm", "title": "Yes, confirm"}},
                    {"type": "reply", "reply": {"id": "reschedule", "title": "Another time"}},
                ]},
            },
        })
    );
}

#[tokio::test]
async fn list_request_is_exact() {
    let message = InteractiveMessage {
        sender: sender(),
        to: RECIPIENT.into(),
        header: Some("Our plans".into()),
        body: "Which plan would you like?".into(),
        footer: Some("Prices incl. VAT".into()),
        choices: Choices::List {
            button: "Choose a plan".into(),
            sections: vec![
                ListSection {
                    title: Some("Plans".into()),
                    rows: vec![
                        choice("basic", "Basic", Some("19 EUR / month")),
                        choice("premium", "Premium", Some("49 EUR / month")),
                    ],
                },
                ListSection {
                    title: None,
                    rows: vec![choice("talk", "Talk to us", None)],
                },
            ],
        },
    };
    let body = sent_body(|api| async move { api.send_interactive(&message).await }).await;
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4915112345678",
            "type": "interactive",
            "interactive": {
                "type": "list",
                "header": {"type": "text", "text": "Our plans"},
                "body": {"text": "Which plan would you like?"},
                "footer": {"text": "Prices incl. VAT"},
                "action": {
                    "button": "Choose a plan",
                    "sections": [
                        {"title": "Plans", "rows": [
                            {"id": "basic", "title": "Basic", "description": "19 EUR / month"},
                            {"id": "premium", "title": "Premium", "description": "49 EUR / month"},
                        ]},
                        {"rows": [{"id": "talk", "title": "Talk to us"}]},
                    ],
                },
            },
        })
    );
}

fn media(
    kind: MediaKind,
    source: MediaSource,
    caption: Option<&str>,
    filename: Option<&str>,
) -> MediaMessage {
    MediaMessage {
        sender: sender(),
        to: RECIPIENT.into(),
        kind,
        source,
        caption: caption.map(str::to_string),
        filename: filename.map(str::to_string),
    }
}

#[tokio::test]
async fn media_requests_are_exact() {
    let cases = [
        (
            media(
                MediaKind::Image,
                MediaSource::Link("https://example.com/roof.jpg".into()),
                Some("Your roof plan"),
                None,
            ),
            json!({"link": "https://example.com/roof.jpg", "caption": "Your roof plan"}),
        ),
        (
            media(
                MediaKind::Document,
                MediaSource::Id("1166846181421424".into()),
                Some("Your invoice"),
                Some("Invoice 1234.pdf"),
            ),
            json!({"id": "1166846181421424", "caption": "Your invoice",
                   "filename": "Invoice 1234.pdf"}),
        ),
        (
            media(
                MediaKind::Audio,
                MediaSource::Id("2049781235391725".into()),
                None,
                None,
            ),
            json!({"id": "2049781235391725"}),
        ),
        (
            media(
                MediaKind::Video,
                MediaSource::Link("https://example.com/tour.mp4".into()),
                None,
                None,
            ),
            json!({"link": "https://example.com/tour.mp4"}),
        ),
        (
            media(
                MediaKind::Sticker,
                MediaSource::Link("https://example.com/thanks.webp".into()),
                None,
                None,
            ),
            json!({"link": "https://example.com/thanks.webp"}),
        ),
    ];
    for (message, content) in cases {
        let kind = message.kind.as_str();
        let body = sent_body(|api| async move { api.send_media(&message).await }).await;
        let mut expected = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4915112345678",
            "type": kind,
        });
        expected[kind] = content;
        assert_eq!(body, expected, "{kind}");
    }
}

#[tokio::test]
async fn media_a_kind_does_not_take_never_reaches_the_network() {
    let server = MockServer::start().await;
    let api = api(&server);
    let audio_caption = media(
        MediaKind::Audio,
        MediaSource::Id("1".into()),
        Some("Listen"),
        None,
    );
    let image_filename = media(
        MediaKind::Image,
        MediaSource::Id("1".into()),
        None,
        Some("a.jpg"),
    );
    for message in [audio_caption, image_filename] {
        let error = api.send_media(&message).await.unwrap_err();
        assert_eq!(error.kind(), "InvalidRequest", "{error}");
    }
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn media_error_codes_are_media_errors() {
    let server = MockServer::start().await;
    let api = api(&server);
    let image = media(
        MediaKind::Image,
        MediaSource::Link("https://example.com/private.jpg".into()),
        None,
        None,
    );
    for code in [131052, 131053] {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(meta_error(400, code))
            .mount(&server)
            .await;
        let error = api.send_media(&image).await.unwrap_err();
        assert!(
            matches!(&error, ActionError::Media { message }
                if message.contains(&format!("WhatsApp error {code}"))
                    && message.contains("AbCdEf123")),
            "{error:?}"
        );
        assert!(error.is_permanent());
        assert_no_token(&error);
        let error = api.upload_media(&invoice_upload()).await.unwrap_err();
        assert_eq!(error.kind(), "MediaError", "{error}");
        // Text sends cannot raise MediaError: the same code is an invalid request.
        let error = api.send_text(&text("hi")).await.unwrap_err();
        assert_eq!(error.kind(), "InvalidRequest", "{error}");
    }
    // Other codes keep their kinds in media sends.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(meta_error(400, 131047))
        .mount(&server)
        .await;
    let error = api.send_media(&image).await.unwrap_err();
    assert_eq!(
        error,
        ActionError::OutsideWindow {
            recipient: RECIPIENT.into()
        }
    );
}

#[tokio::test]
async fn read_receipts_with_and_without_typing() {
    for typing in [false, true] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
            .expect(1)
            .mount(&server)
            .await;
        api(&server)
            .mark_read(&ReadReceipt {
                sender: sender(),
                message_id: "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBDMUE3".into(),
                typing,
            })
            .await
            .unwrap();
        let mut expected = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBDMUE3",
        });
        if typing {
            expected["typing_indicator"] = json!({"type": "text"});
        }
        assert_eq!(only_send(&server).await, expected, "typing: {typing}");
    }
}

#[tokio::test]
async fn a_refused_read_receipt_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(meta_error(400, 100))
        .mount(&server)
        .await;
    let error = api(&server)
        .mark_read(&ReadReceipt {
            sender: sender(),
            message_id: "wamid.gone".into(),
            typing: false,
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "InvalidRequest", "{error}");
}

// Uploads -------------------------------------------------------------------

const MEDIA_PATH: &str = "/v21.0/106540352242922/media";
const MEDIA_ID: &str = "1166846181421424";

fn invoice_upload() -> MediaUpload {
    MediaUpload {
        sender: sender(),
        path: "invoices/invoice-1234.pdf".into(),
        file_name: "invoice-1234.pdf".into(),
        mime_type: "application/pdf".into(),
        // Binary content with CR LF and a NUL: sent as is.
        bytes: b"%PDF-1.7\r\n\x00\xff binary\r\n--not-a-boundary\r\n".to_vec(),
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, PartialEq)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

/// Splits a `multipart/form-data` body (RFC 7578) into its parts.
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("a multipart content type with a boundary");
    let delimiter = format!("--{boundary}");
    let find = |haystack: &[u8], needle: &[u8], from: usize| {
        haystack[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    assert!(
        body.starts_with(delimiter.as_bytes()),
        "starts with the boundary"
    );
    assert!(
        body.ends_with(format!("{delimiter}--\r\n").as_bytes()),
        "ends with the closing boundary"
    );
    let separator = format!("\r\n{delimiter}");
    let mut parts = Vec::new();
    let mut at = delimiter.len();
    while body[at..].starts_with(b"\r\n") {
        let start = at + 2;
        let head_end = find(body, b"\r\n\r\n", start).expect("part headers end");
        let end = find(body, separator.as_bytes(), head_end).expect("part ends");
        let head = std::str::from_utf8(&body[start..head_end]).unwrap();
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            bytes: body[head_end + 4..end].to_vec(),
        };
        for line in head.split("\r\n") {
            let (key, value) = line.split_once(": ").unwrap();
            match key.to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for attribute in value.split("; ").skip(1) {
                        let (k, v) = attribute.split_once('=').unwrap();
                        let v = v.trim_matches('"').to_string();
                        match k {
                            "name" => part.name = v,
                            "filename" => part.filename = Some(v),
                            other => panic!("unexpected attribute {other}"),
                        }
                    }
                    assert!(value.starts_with("form-data; "), "{value}");
                }
                "content-type" => part.content_type = Some(value.to_string()),
                other => panic!("unexpected part header {other}"),
            }
        }
        parts.push(part);
        at = end + separator.len();
    }
    parts
}

#[tokio::test]
async fn upload_sends_a_multipart_form() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MEDIA_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": MEDIA_ID})))
        .expect(1)
        .mount(&server)
        .await;

    let upload = invoice_upload();
    let id = api(&server).upload_media(&upload).await.unwrap();
    assert_eq!(id, MEDIA_ID);

    let requests = requests(&server).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.query(), None);
    assert_eq!(
        request.headers.get("authorization").unwrap(),
        &format!("Bearer {TOKEN}")
    );
    let content_type = request
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        multipart_parts(content_type, &request.body),
        vec![
            Part {
                name: "messaging_product".into(),
                filename: None,
                content_type: None,
                bytes: b"whatsapp".to_vec(),
            },
            Part {
                name: "type".into(),
                filename: None,
                content_type: None,
                bytes: b"application/pdf".to_vec(),
            },
            Part {
                name: "file".into(),
                filename: Some("invoice-1234.pdf".into()),
                content_type: Some("application/pdf".into()),
                bytes: upload.bytes.clone(),
            },
        ]
    );
}

#[tokio::test]
async fn an_upload_answer_without_id_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MEDIA_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let error = api(&server)
        .upload_media(&invoice_upload())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "Transient", "{error}");
    assert!(error.to_string().contains("no media id"), "{error}");
}

// Lookups and downloads ---------------------------------------------------------

const DOWNLOAD_PATH: &str = "/whatsapp_business/attachments/";

fn photo() -> Vec<u8> {
    (0..20_000u32).map(|i| (i % 251) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Meta's answer to a media lookup, its url on the mock server.
fn media_lookup(server: &MockServer, sha256: &str, size: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "url": format!("{}{DOWNLOAD_PATH}?mid={MEDIA_ID}&ext=1764000300&hash=ATu", server.uri()),
        "mime_type": "image/jpeg",
        "sha256": sha256,
        "file_size": size,
        "id": MEDIA_ID,
    }))
}

#[tokio::test]
async fn media_is_looked_up_and_downloaded_with_the_token() {
    let server = MockServer::start().await;
    let photo = photo();
    Mock::given(method("GET"))
        .and(path(format!("/v21.0/{MEDIA_ID}")))
        .and(query_param("phone_number_id", PHONE_NUMBER_ID))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(media_lookup(&server, &sha256_hex(&photo), json!("20000")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(DOWNLOAD_PATH))
        .and(query_param("mid", MEDIA_ID))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/jpeg")
                .set_body_bytes(photo.clone()),
        )
        .expect(1)
        .mount(&server)
        .await;

    let api = api(&server);
    let info = api.media_info(&sender(), MEDIA_ID).await.unwrap();
    assert_eq!(
        info,
        MediaInfo {
            id: MEDIA_ID.into(),
            url: format!(
                "{}{DOWNLOAD_PATH}?mid={MEDIA_ID}&ext=1764000300&hash=ATu",
                server.uri()
            ),
            mime_type: "image/jpeg".into(),
            sha256: Some(sha256_hex(&photo)),
            file_size: Some(20_000),
        }
    );
    let bytes = api
        .download_media(&sender(), &info, 100 * 1024 * 1024)
        .await
        .unwrap();
    assert_eq!(bytes, photo);
    let agent_ok = requests(&server).await.iter().all(|r| {
        r.headers
            .get("user-agent")
            .is_some_and(|a| a.to_str().unwrap().starts_with("flowc/"))
    });
    assert!(agent_ok);
}

#[tokio::test]
async fn an_unknown_media_id_is_a_media_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": format!("Unsupported get request. Object with ID '{MEDIA_ID}' does not exist"),
            "type": "GraphMethodException", "code": 100, "error_subcode": 33,
            "fbtrace_id": "AbC"}})))
        .mount(&server)
        .await;
    let api = api(&server);
    let error = api.media_info(&sender(), MEDIA_ID).await.unwrap_err();
    assert_eq!(error.kind(), "MediaError", "{error}");
    assert!(error.to_string().contains("expire"), "{error}");

    // An id that is no id never reaches the network.
    let error = api.media_info(&sender(), "../../me").await.unwrap_err();
    assert_eq!(error.kind(), "MediaError", "{error}");
    assert_eq!(requests(&server).await.len(), 1);
}

fn info_at(server: &MockServer, sha256: Option<String>, file_size: Option<u64>) -> MediaInfo {
    MediaInfo {
        id: MEDIA_ID.into(),
        url: format!("{}{DOWNLOAD_PATH}?mid={MEDIA_ID}", server.uri()),
        mime_type: "image/jpeg".into(),
        sha256,
        file_size,
    }
}

#[tokio::test]
async fn a_download_over_the_limit_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DOWNLOAD_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(photo()))
        .mount(&server)
        .await;
    let api = api(&server);

    // The lookup's size is over the limit: no request at all.
    let error = api
        .download_media(&sender(), &info_at(&server, None, Some(20_000)), 10_000)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "MediaError");
    assert!(
        error.to_string().contains("larger than the limit"),
        "{error}"
    );
    assert!(requests(&server).await.is_empty());

    // Unknown size, but the Content-Length is over the limit.
    let error = api
        .download_media(&sender(), &info_at(&server, None, None), 10_000)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "MediaError");
    assert!(error.to_string().contains("20 KB"), "{error}");

    // Exactly the limit is fine.
    let bytes = api
        .download_media(&sender(), &info_at(&server, None, None), 20_000)
        .await
        .unwrap();
    assert_eq!(bytes.len(), 20_000);
}

/// A raw HTTP server that answers one request with a chunked body of
/// `chunks` × 64 KB without announcing its length; reports the request's
/// head and how many bytes it managed to write.
async fn chunked_server(
    chunks: usize,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<(String, usize)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = socket.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        let mut written = 0;
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(answer.as_bytes()).await.is_ok() {
            let chunk = vec![7u8; 64 * 1024];
            for _ in 0..chunks {
                let frame = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk.clone(),
                    b"\r\n".to_vec(),
                ]
                .concat();
                if socket.write_all(&frame).await.is_err() {
                    break;
                }
                written += chunk.len();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
        (String::from_utf8_lossy(&head).into_owned(), written)
    });
    (address, task)
}

#[tokio::test]
async fn a_download_without_length_stops_at_the_limit() {
    // 64 MB offered, 256 KB accepted.
    let (address, server) = chunked_server(1024).await;
    let mut settings = CloudApiSettings::new(Secret::new(TOKEN));
    settings.base_url = format!("http://{address}");
    let api = CloudApi::new(settings).unwrap();
    let info = MediaInfo {
        id: MEDIA_ID.into(),
        url: format!("http://{address}{DOWNLOAD_PATH}?mid={MEDIA_ID}"),
        mime_type: "image/jpeg".into(),
        sha256: None,
        file_size: None,
    };
    let error = api
        .download_media(&sender(), &info, 256 * 1024)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "MediaError", "{error}");
    assert!(error.to_string().contains("was stopped"), "{error}");
    let (head, written) = server.await.unwrap();
    assert!(
        head.to_ascii_lowercase().contains(&format!(
            "authorization: bearer {}",
            TOKEN.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(
        written < 32 * 1024 * 1024,
        "the server wrote {written} bytes"
    );

    // Under the limit, the same kind of answer is read in full.
    let (address, server) = chunked_server(3).await;
    let mut settings = CloudApiSettings::new(Secret::new(TOKEN));
    settings.base_url = format!("http://{address}");
    let info = MediaInfo {
        url: format!("http://{address}{DOWNLOAD_PATH}?mid={MEDIA_ID}"),
        ..info
    };
    let bytes = CloudApi::new(settings)
        .unwrap()
        .download_media(&sender(), &info, 256 * 1024)
        .await
        .unwrap();
    assert_eq!(bytes.len(), 3 * 64 * 1024);
    server.await.unwrap();
}

#[tokio::test]
async fn expired_links_and_damaged_files_are_media_errors() {
    let server = MockServer::start().await;
    let api = api(&server);
    for status in [404, 410] {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        let error = api
            .download_media(&sender(), &info_at(&server, None, None), 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), "MediaError", "{error}");
        assert!(error.to_string().contains("expired"), "{error}");
    }

    // Other failures keep their kinds.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(meta_error(401, 190))
        .mount(&server)
        .await;
    let error = api
        .download_media(&sender(), &info_at(&server, None, None), 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "Unauthorized", "{error}");
    assert_no_token(&error);

    // A body that is not the file WhatsApp described.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"tampered".to_vec()))
        .mount(&server)
        .await;
    let error = api
        .download_media(
            &sender(),
            &info_at(&server, Some(sha256_hex(&photo())), None),
            1 << 20,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "MediaError", "{error}");
    assert!(error.to_string().contains("SHA-256"), "{error}");
}

#[tokio::test]
async fn the_token_goes_to_no_other_host() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    let api = api(&server);
    let error = api
        .download_media(&sender(), &info_at(&elsewhere, None, None), 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "MediaError", "{error}");
    assert!(requests(&elsewhere).await.is_empty());
    assert!(requests(&server).await.is_empty());
}

// Templates with header and buttons ------------------------------------------

fn order_template(header: TemplateHeader) -> TemplateMessage {
    TemplateMessage {
        header: Some(header),
        buttons: vec![
            TemplateButton {
                index: 0,
                parameter: TemplateButtonParameter::Payload("CONFIRM".into()),
            },
            TemplateButton {
                index: 1,
                parameter: TemplateButtonParameter::UrlSuffix("order-1234".into()),
            },
        ],
        ..template(
            "order_shipped",
            "en",
            TemplateParameters::Positional(vec!["Anna".into()]),
        )
    }
}

/// The components every `order_template` ends with: body, then buttons.
fn body_and_buttons() -> Vec<Value> {
    vec![
        json!({"type": "body", "parameters": [{"type": "text", "text": "Anna"}]}),
        json!({"type": "button", "sub_type": "quick_reply", "index": "0",
               "parameters": [{"type": "payload", "payload": "CONFIRM"}]}),
        json!({"type": "button", "sub_type": "url", "index": "1",
               "parameters": [{"type": "text", "text": "order-1234"}]}),
    ]
}

#[tokio::test]
async fn template_headers_and_buttons_are_exact() {
    let cases = [
        (
            TemplateHeader::Text {
                name: None,
                text: "#1234".into(),
            },
            json!({"type": "text", "text": "#1234"}),
        ),
        (
            TemplateHeader::Media {
                kind: MediaKind::Image,
                source: MediaSource::Link("https://example.com/order.png".into()),
                filename: None,
            },
            json!({"type": "image", "image": {"link": "https://example.com/order.png"}}),
        ),
        (
            TemplateHeader::Media {
                kind: MediaKind::Document,
                source: MediaSource::Id(MEDIA_ID.into()),
                filename: None,
            },
            json!({"type": "document", "document": {"id": MEDIA_ID}}),
        ),
        (
            TemplateHeader::Media {
                kind: MediaKind::Document,
                source: MediaSource::Link("https://example.com/invoices/1234.pdf".into()),
                filename: Some("Invoice 1234.pdf".into()),
            },
            json!({"type": "document", "document": {"link": "https://example.com/invoices/1234.pdf", "filename": "Invoice 1234.pdf"}}),
        ),
        (
            TemplateHeader::Media {
                kind: MediaKind::Video,
                source: MediaSource::Link("https://example.com/tour.mp4".into()),
                filename: None,
            },
            json!({"type": "video", "video": {"link": "https://example.com/tour.mp4"}}),
        ),
    ];
    for (header, parameter) in cases {
        let message = order_template(header);
        let body = sent_body(|api| async move { api.send_template(&message).await }).await;
        let mut components = vec![json!({"type": "header", "parameters": [parameter]})];
        components.extend(body_and_buttons());
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "4915112345678",
                "type": "template",
                "template": {
                    "name": "order_shipped",
                    "language": {"code": "en"},
                    "components": components,
                },
            })
        );
    }
}

#[tokio::test]
async fn copy_code_buttons_carry_a_coupon_code_or_a_one_time_password() {
    let cases = [
        (
            TemplateButtonParameter::CouponCode("SPRING25".into()),
            json!({"type": "button", "sub_type": "copy_code", "index": "0",
                   "parameters": [{"type": "coupon_code", "coupon_code": "SPRING25"}]}),
        ),
        // An authentication template's button is a URL button to Meta.
        (
            TemplateButtonParameter::UrlSuffix("482193".into()),
            json!({"type": "button", "sub_type": "url", "index": "0",
                   "parameters": [{"type": "text", "text": "482193"}]}),
        ),
    ];
    for (parameter, component) in cases {
        let message = TemplateMessage {
            buttons: vec![TemplateButton {
                index: 0,
                parameter,
            }],
            ..template(
                "offer",
                "en",
                TemplateParameters::Positional(vec!["SPRING25".into()]),
            )
        };
        let body = sent_body(|api| async move { api.send_template(&message).await }).await;
        assert_eq!(
            body["template"]["components"],
            json!([
                {"type": "body", "parameters": [{"type": "text", "text": "SPRING25"}]},
                component,
            ])
        );
    }
}

#[tokio::test]
async fn named_template_header_and_buttons_without_body_parameters() {
    let message = TemplateMessage {
        header: Some(TemplateHeader::Text {
            name: Some("order_id".into()),
            text: "1234".into(),
        }),
        buttons: vec![TemplateButton {
            index: 2,
            parameter: TemplateButtonParameter::Payload("STOP".into()),
        }],
        ..template("order_named", "de", TemplateParameters::Named(vec![]))
    };
    let body = sent_body(|api| async move { api.send_template(&message).await }).await;
    assert_eq!(
        body["template"]["components"],
        json!([
            {"type": "header", "parameters": [
                {"type": "text", "parameter_name": "order_id", "text": "1234"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "2",
             "parameters": [{"type": "payload", "payload": "STOP"}]},
        ])
    );
}

#[tokio::test]
async fn an_audio_template_header_never_reaches_the_network() {
    let server = MockServer::start().await;
    let message = order_template(TemplateHeader::Media {
        kind: MediaKind::Audio,
        source: MediaSource::Id(MEDIA_ID.into()),
        filename: None,
    });
    let error = api(&server).send_template(&message).await.unwrap_err();
    assert_eq!(error.kind(), "InvalidRequest", "{error}");
    assert!(requests(&server).await.is_empty());
}
