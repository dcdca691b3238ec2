//! The OpenAI-compatible provider against a fake server (wiremock on
//! loopback): the exact requests, the conversations, every error path, and a
//! flow that answers WhatsApp messages with it end to end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowc::check::Compiler;
use flowc::providers::openai::{
    conversation_id, customer_tag, ChatMessage, OpenAiCompatible, OpenAiSettings, Role,
    DEFAULT_RETRY_AFTER_MS,
};
use flowc::providers::recording::Recorder;
use flowc::providers::{Ai, AiRequest, RunOutcome, Secret};
use flowc::runtime::{ActionError, Engine, EngineLimits, Event, Limits, RunStatus};
use serde_json::{json, Value as Json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

const KEY: &str = "sk-test-0123456789abcdef";
const ANNA: &str = "+4915112345678";
const LUKAS: &str = "+4917612345678";
const INSTRUCTIONS: &str = "You qualify leads for Nordlicht Solar.";

/// A chat completion whose answer is `text`.
fn completion(text: &str, finish_reason: &str) -> Json {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1764000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 61, "completion_tokens": 24, "total_tokens": 85}
    })
}

/// Answers "echo: <the last user message>".
fn echo(request: &Request) -> ResponseTemplate {
    let body: Json = request.body_json().expect("the request body is JSON");
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    ResponseTemplate::new(200).set_body_json(completion(&format!("echo: {last}"), "stop"))
}

/// A server that echoes on `/v1/chat/completions`.
async fn echo_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(echo)
        .mount(&server)
        .await;
    server
}

/// Settings for `server` with the test key and a model.
fn settings(server: &MockServer) -> OpenAiSettings {
    OpenAiSettings {
        api_key: Some(Secret::new(KEY)),
        default_model: Some("gpt-4o-mini".into()),
        ..OpenAiSettings::new(server.uri())
    }
}

fn provider(settings: OpenAiSettings) -> OpenAiCompatible {
    OpenAiCompatible::new(settings).expect("valid settings")
}

/// A lead-qualifier request from `customer`, with two context variables.
fn ask(customer: &str, message: &str) -> AiRequest {
    AiRequest {
        assistant: "lead-qualifier".into(),
        model: Some("gpt-4o-mini".into()),
        instructions: Some(INSTRUCTIONS.into()),
        customer: customer.into(),
        message: message.into(),
        variables: [
            ("source".to_string(), "whatsapp".to_string()),
            ("plan".to_string(), "premium".to_string()),
        ]
        .into(),
    }
}

const SYSTEM: &str =
    "You qualify leads for Nordlicht Solar.\n\nContext: plan=premium, source=whatsapp";

/// The bodies of the requests the server received, in order.
async fn bodies(server: &MockServer) -> Vec<Json> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .map(|r| r.body_json().expect("JSON body"))
        .collect()
}

/// The messages of a request body as (role, content) pairs.
fn messages(body: &Json) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(r, c)| (r.to_string(), c.to_string()))
        .collect()
}

fn history(list: &[(Role, &str)]) -> Vec<ChatMessage> {
    list.iter()
        .map(|(role, content)| ChatMessage {
            role: *role,
            content: content.to_string(),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_request_body_and_headers_are_exact() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            "  It is 49 EUR a month. How many seats?\n",
            "stop",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let ai = provider(OpenAiSettings {
        temperature: Some(0.3),
        max_tokens: Some(512),
        extra_headers: vec![("OpenAI-Organization".into(), "org-nordlicht".into())],
        default_model: Some("not-this-one".into()),
        ..settings(&server)
    });

    let answer = ai
        .generate_response(&ask(ANNA, "Hi, what does the premium plan cost?"))
        .await
        .unwrap();
    assert_eq!(answer.text, "It is 49 EUR a month. How many seats?");
    assert_eq!(
        answer.conversation_id,
        conversation_id("lead-qualifier", ANNA)
    );

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        request.body_json::<Json>().unwrap(),
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Hi, what does the premium plan cost?"}
            ],
            "temperature": 0.3,
            "max_tokens": 512,
            "user": customer_tag(ANNA),
        })
    );
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(header("authorization"), Some(format!("Bearer {KEY}")));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        header("openai-organization").as_deref(),
        Some("org-nordlicht")
    );
    // The raw number does not leave the host.
    assert!(!String::from_utf8_lossy(&request.body).contains("4915112345678"));
}

#[tokio::test]
async fn without_a_key_there_is_no_authorization_and_unset_options_are_left_out() {
    let server = echo_server().await;
    let ai = provider(OpenAiSettings {
        api_key: None,
        extra_headers: vec![("api-key".into(), "azure-style-key".into())],
        ..settings(&server)
    });
    let mut request = ask(ANNA, "Hallo");
    request.model = None; // the provider's default model
    request.instructions = None;
    request.variables.clear();
    ai.generate_response(&request).await.unwrap();

    let received = server.received_requests().await.unwrap();
    let sent = &received[0];
    assert!(sent.headers.get("authorization").is_none());
    assert_eq!(sent.headers.get("api-key").unwrap(), "azure-style-key");
    let body: Json = sent.body_json().unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 3, "{body}");
    for key in ["model", "messages", "user"] {
        assert!(keys.contains(&key), "{body}");
    }
    assert_eq!(body["model"], "gpt-4o-mini");
    let system = &messages(&body)[0];
    assert_eq!(system.0, "system");
    assert_eq!(
        system.1,
        flowc::providers::openai::DEFAULT_INSTRUCTIONS,
        "no instructions, no variables: the default system message alone"
    );
}

#[tokio::test]
async fn no_model_anywhere_is_an_invalid_request_and_sends_nothing() {
    let server = echo_server().await;
    let ai = provider(OpenAiSettings {
        default_model: None,
        ..settings(&server)
    });
    let mut request = ask(ANNA, "Hallo");
    request.model = None;
    let error = ai.generate_response(&request).await.unwrap_err();
    assert!(
        matches!(&error, ActionError::InvalidRequest { message } if message.contains("lead-qualifier")),
        "{error:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn base_url_with_or_without_the_version() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(echo)
        .expect(4)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/gateway/openai/v1/chat/completions"))
        .respond_with(echo)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/chat/completions"))
        .respond_with(echo)
        .expect(1)
        .mount(&server)
        .await;

    let base = server.uri();
    for (base_url, endpoint) in [
        (base.clone(), format!("{base}/v1/chat/completions")),
        (format!("{base}/"), format!("{base}/v1/chat/completions")),
        (format!("{base}/v1"), format!("{base}/v1/chat/completions")),
        (format!("{base}/v1/"), format!("{base}/v1/chat/completions")),
        (
            format!("{base}/gateway/openai"),
            format!("{base}/gateway/openai/v1/chat/completions"),
        ),
        (
            format!("{base}/api/v4"),
            format!("{base}/api/v4/chat/completions"),
        ),
    ] {
        let ai = provider(OpenAiSettings {
            base_url: base_url.clone(),
            ..settings(&server)
        });
        assert_eq!(ai.endpoint(), endpoint, "{base_url}");
        let answer = ai.generate_response(&ask(ANNA, "ping")).await;
        assert_eq!(answer.unwrap().text, "echo: ping", "{base_url}");
    }
    server.verify().await;
}

// ---------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------

#[tokio::test]
async fn each_customer_has_a_conversation_and_it_carries_the_history() {
    let server = echo_server().await;
    let ai = provider(settings(&server));

    let anna_1 = ai
        .generate_response(&ask(ANNA, "What does it cost?"))
        .await
        .unwrap();
    let lukas_1 = ai
        .generate_response(&ask(LUKAS, "Do you install in Munich?"))
        .await
        .unwrap();
    let anna_2 = ai
        .generate_response(&ask(ANNA, "About 20 seats."))
        .await
        .unwrap();

    assert_eq!(anna_1.conversation_id, anna_2.conversation_id);
    assert_ne!(anna_1.conversation_id, lukas_1.conversation_id);
    assert_eq!(anna_2.text, "echo: About 20 seats.");

    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 3);
    // Lukas's first request knows nothing of Anna.
    assert_eq!(
        messages(&bodies[1]),
        pairs(&[("system", SYSTEM), ("user", "Do you install in Munich?")])
    );
    // Anna's second request carries her first exchange.
    assert_eq!(
        messages(&bodies[2]),
        pairs(&[
            ("system", SYSTEM),
            ("user", "What does it cost?"),
            ("assistant", "echo: What does it cost?"),
            ("user", "About 20 seats."),
        ])
    );
    assert_eq!(bodies[0]["user"], bodies[2]["user"]);
    assert_ne!(bodies[0]["user"], bodies[1]["user"]);

    assert_eq!(
        ai.conversation("lead-qualifier", ANNA),
        history(&[
            (Role::User, "What does it cost?"),
            (Role::Assistant, "echo: What does it cost?"),
            (Role::User, "About 20 seats."),
            (Role::Assistant, "echo: About 20 seats."),
        ])
    );
    assert_eq!(
        ai.conversation("lead-qualifier", LUKAS),
        history(&[
            (Role::User, "Do you install in Munich?"),
            (Role::Assistant, "echo: Do you install in Munich?"),
        ])
    );
    // Another assistant is another conversation with the same customer.
    assert!(ai.conversation("support", ANNA).is_empty());
    let mut support = ask(ANNA, "My inverter shows E-042.");
    support.assistant = "support".into();
    let answer = ai.generate_response(&support).await.unwrap();
    assert_ne!(answer.conversation_id, anna_1.conversation_id);
    assert_eq!(
        messages(&bodies_last(&server).await),
        pairs(&[("system", SYSTEM), ("user", "My inverter shows E-042.")])
    );
}

async fn bodies_last(server: &MockServer) -> Json {
    bodies(server).await.pop().expect("a request")
}

#[tokio::test]
async fn the_history_is_bounded_oldest_exchange_first() {
    let server = echo_server().await;
    let ai = provider(OpenAiSettings {
        history_limit: 4,
        ..settings(&server)
    });
    for i in 1..=4 {
        ai.generate_response(&ask(ANNA, &format!("q{i}")))
            .await
            .unwrap();
    }
    let bodies = bodies(&server).await;
    assert_eq!(
        messages(&bodies[3]),
        pairs(&[
            ("system", SYSTEM),
            ("user", "q2"),
            ("assistant", "echo: q2"),
            ("user", "q3"),
            ("assistant", "echo: q3"),
            ("user", "q4"),
        ])
    );
    assert_eq!(
        ai.conversation("lead-qualifier", ANNA),
        history(&[
            (Role::User, "q3"),
            (Role::Assistant, "echo: q3"),
            (Role::User, "q4"),
            (Role::Assistant, "echo: q4"),
        ])
    );

    // An odd limit keeps whole exchanges: 3 keeps one.
    let odd = provider(OpenAiSettings {
        history_limit: 3,
        ..settings(&server)
    });
    for i in 1..=3 {
        odd.generate_response(&ask(LUKAS, &format!("q{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        messages(&bodies_last(&server).await),
        pairs(&[
            ("system", SYSTEM),
            ("user", "q2"),
            ("assistant", "echo: q2"),
            ("user", "q3"),
        ])
    );

    // 0: no history at all.
    let none = provider(OpenAiSettings {
        history_limit: 0,
        ..settings(&server)
    });
    for i in 1..=2 {
        none.generate_response(&ask(LUKAS, &format!("q{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        messages(&bodies_last(&server).await),
        pairs(&[("system", SYSTEM), ("user", "q2")])
    );
    assert!(none.conversation("lead-qualifier", LUKAS).is_empty());
}

#[tokio::test]
async fn a_failed_request_leaves_the_history_unchanged() {
    // Answers with the queued failures first, then echoes. (A queue rather
    // than scoped mocks with priorities: wiremock 0.6 deactivates the wrong
    // mock when a scoped one with a priority is dropped.)
    let failures = Arc::new(Mutex::new(VecDeque::<ResponseTemplate>::new()));
    let server = MockServer::start().await;
    let queue = failures.clone();
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(move |request: &Request| {
            let next = queue.lock().unwrap().pop_front();
            next.unwrap_or_else(|| echo(request))
        })
        .mount(&server)
        .await;
    let ai = provider(settings(&server));
    ai.generate_response(&ask(ANNA, "first")).await.unwrap();
    let before = ai.conversation("lead-qualifier", ANNA);

    for (status, body) in [
        (
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        ),
        (200, completion("", "stop")),
        (200, completion("withheld", "content_filter")),
    ] {
        failures
            .lock()
            .unwrap()
            .push_back(ResponseTemplate::new(status).set_body_json(body));
        assert!(ai.generate_response(&ask(ANNA, "second")).await.is_err());
        assert_eq!(ai.conversation("lead-qualifier", ANNA), before, "{status}");
    }

    // The flow retries: the message is sent once, not once per attempt.
    let answer = ai.generate_response(&ask(ANNA, "second")).await.unwrap();
    assert_eq!(answer.text, "echo: second");
    assert_eq!(
        messages(&bodies_last(&server).await),
        pairs(&[
            ("system", SYSTEM),
            ("user", "first"),
            ("assistant", "echo: first"),
            ("user", "second"),
        ])
    );
    assert_eq!(ai.conversation("lead-qualifier", ANNA).len(), 4);
}

#[tokio::test]
async fn overlapping_requests_of_one_customer_take_turns() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(move |request: &Request| echo(request).set_delay(Duration::from_millis(150)))
        .mount(&server)
        .await;
    let ai = Arc::new(provider(settings(&server)));

    let (a, b) = {
        let (ai_a, ai_b) = (ai.clone(), ai.clone());
        let first = tokio::spawn(async move { ai_a.generate_response(&ask(ANNA, "one")).await });
        // Let the first take its turn before the second arrives.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = tokio::spawn(async move { ai_b.generate_response(&ask(ANNA, "two")).await });
        (first.await.unwrap(), second.await.unwrap())
    };
    assert_eq!(a.unwrap().text, "echo: one");
    assert_eq!(b.unwrap().text, "echo: two");

    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 2);
    // The second was sent after the first was answered, with its exchange.
    assert_eq!(
        messages(&bodies[1]),
        pairs(&[
            ("system", SYSTEM),
            ("user", "one"),
            ("assistant", "echo: one"),
            ("user", "two"),
        ])
    );
    assert_eq!(
        ai.conversation("lead-qualifier", ANNA),
        history(&[
            (Role::User, "one"),
            (Role::Assistant, "echo: one"),
            (Role::User, "two"),
            (Role::Assistant, "echo: two"),
        ])
    );

    // Many at once: every exchange is a whole pair, none is lost.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let ai = ai.clone();
            tokio::spawn(async move { ai.generate_response(&ask(LUKAS, &format!("m{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let lukas = ai.conversation("lead-qualifier", LUKAS);
    assert_eq!(lukas.len(), 16);
    for pair in lukas.chunks(2) {
        assert_eq!(pair[0].role, Role::User);
        assert_eq!(pair[1].role, Role::Assistant);
        assert_eq!(pair[1].content, format!("echo: {}", pair[0].content));
    }
}

#[tokio::test]
async fn an_answer_cut_at_max_tokens_is_still_an_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(completion("A 10 kWp system costs", "length")),
        )
        .mount(&server)
        .await;
    let ai = provider(OpenAiSettings {
        max_tokens: Some(5),
        ..settings(&server)
    });
    let answer = ai.generate_response(&ask(ANNA, "Price?")).await.unwrap();
    assert_eq!(answer.text, "A 10 kWp system costs");
    assert_eq!(ai.truncated_answers(), 1);
    assert_eq!(ai.conversation("lead-qualifier", ANNA).len(), 2);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

const AZURE_KEY: &str = "azure-secret-9876543210";

/// What an error must be.
struct Case {
    name: &'static str,
    response: ResponseTemplate,
    expect: fn(&ActionError) -> bool,
    /// A part of the message.
    mentions: &'static str,
}

fn openai_error(status: u16, message: &str, kind: &str, code: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    }))
}

/// A message that quotes both credentials, as careless servers do.
fn leaky(what: &str) -> String {
    format!("{what}; key {KEY}, header {AZURE_KEY}")
}

fn error_cases() -> Vec<Case> {
    vec![
        Case {
            name: "401 bad key",
            response: openai_error(
                401,
                &leaky("Incorrect API key provided"),
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            expect: |e| matches!(e, ActionError::Unauthorized { .. }),
            mentions: "invalid_api_key",
        },
        Case {
            name: "403 forbidden",
            response: openai_error(
                403,
                &leaky("Project has no access"),
                "permission_error",
                None,
            ),
            expect: |e| matches!(e, ActionError::Unauthorized { .. }),
            mentions: "HTTP 403",
        },
        Case {
            name: "400 context too long",
            response: openai_error(
                400,
                &leaky("This model's maximum context length is 128000 tokens"),
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
            expect: |e| matches!(e, ActionError::InvalidRequest { .. }),
            mentions: "context_length_exceeded",
        },
        Case {
            name: "422 validation (vLLM)",
            response: ResponseTemplate::new(422).set_body_json(json!({
                "object": "error", "message": leaky("temperature out of range"),
                "type": "BadRequestError", "code": 422
            })),
            expect: |e| matches!(e, ActionError::InvalidRequest { .. }),
            mentions: "temperature out of range",
        },
        Case {
            name: "404 unknown model",
            response: openai_error(
                404,
                &leaky("The model `gpt-4o-mini` does not exist"),
                "invalid_request_error",
                Some("model_not_found"),
            ),
            expect: |e| matches!(e, ActionError::Ai { .. }),
            mentions: "`gpt-4o-mini`",
        },
        Case {
            name: "404 unknown model (Ollama)",
            response: ResponseTemplate::new(404).set_body_json(
                json!({"error": leaky("model \"gpt-4o-mini\" not found, try pulling it first")}),
            ),
            expect: |e| matches!(e, ActionError::Ai { .. }),
            mentions: "try pulling it first",
        },
        Case {
            name: "429 with retry-after-ms",
            response: openai_error(
                429,
                &leaky("Rate limit reached"),
                "requests",
                Some("rate_limit_exceeded"),
            )
            .insert_header("retry-after-ms", "1500")
            .insert_header("retry-after", "2"),
            expect: |e| {
                matches!(
                    e,
                    ActionError::RateLimited {
                        retry_after_ms: Some(1500),
                        ..
                    }
                ) && e.is_retryable()
            },
            mentions: "rate_limit_exceeded",
        },
        Case {
            name: "429 with Retry-After",
            response: openai_error(429, &leaky("Rate limit reached"), "tokens", None)
                .insert_header("retry-after", "7"),
            expect: |e| {
                matches!(
                    e,
                    ActionError::RateLimited {
                        retry_after_ms: Some(7000),
                        ..
                    }
                )
            },
            mentions: "HTTP 429",
        },
        Case {
            name: "429 without a hint",
            response: openai_error(429, &leaky("Slow down"), "requests", None),
            expect: |e| {
                e.retry_after_ms() == Some(DEFAULT_RETRY_AFTER_MS)
                    && matches!(e, ActionError::RateLimited { .. })
            },
            mentions: "Slow down",
        },
        Case {
            name: "429 insufficient_quota",
            response: openai_error(
                429,
                &leaky(
                    "You exceeded your current quota, please check your plan and billing details",
                ),
                "insufficient_quota",
                Some("insufficient_quota"),
            )
            .insert_header("retry-after", "1"),
            expect: |e| matches!(e, ActionError::Ai { .. }) && !e.is_retryable(),
            mentions: "quota",
        },
        Case {
            name: "500",
            response: openai_error(500, &leaky("The server had an error"), "server_error", None),
            expect: |e| matches!(e, ActionError::Transient { .. }) && e.is_retryable(),
            mentions: "HTTP 500",
        },
        Case {
            name: "502 from a proxy, HTML",
            response: ResponseTemplate::new(502)
                .set_body_string(format!("<html><body>502 Bad Gateway {KEY}</body></html>")),
            expect: |e| matches!(e, ActionError::Transient { .. }),
            mentions: "Bad Gateway",
        },
        Case {
            name: "503",
            response: openai_error(503, &leaky("Overloaded"), "server_error", None),
            expect: |e| matches!(e, ActionError::Transient { .. }),
            mentions: "Overloaded",
        },
        Case {
            name: "504",
            response: ResponseTemplate::new(504),
            expect: |e| matches!(e, ActionError::Transient { .. }),
            mentions: "HTTP 504",
        },
        Case {
            name: "content filter",
            response: ResponseTemplate::new(200)
                .set_body_json(completion("partial", "content_filter")),
            expect: |e| matches!(e, ActionError::Ai { .. }),
            mentions: "content filter",
        },
        Case {
            name: "empty answer",
            response: ResponseTemplate::new(200).set_body_json(completion("   ", "stop")),
            expect: |e| matches!(e, ActionError::Ai { .. }),
            mentions: "empty",
        },
        Case {
            name: "refusal",
            response: ResponseTemplate::new(200).set_body_json(json!({"choices": [{
                "index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": null, "refusal": leaky("I can't help")}
            }]})),
            expect: |e| matches!(e, ActionError::Ai { .. }),
            mentions: "refused",
        },
        Case {
            name: "not a completion",
            response: ResponseTemplate::new(200).set_body_string(format!("hello {KEY}")),
            expect: |e| matches!(e, ActionError::Ai { .. }),
            mentions: "not a chat completion",
        },
        Case {
            name: "an error with status 200",
            response: ResponseTemplate::new(200)
                .set_body_json(json!({"error": {"message": leaky("upstream failed")}})),
            expect: |e| matches!(e, ActionError::Ai { .. }),
            mentions: "upstream failed",
        },
    ]
}

/// Neither credential anywhere in the error.
fn assert_no_credentials(name: &str, error: &ActionError) {
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        serde_json::to_string(error).unwrap(),
    ] {
        assert!(!shown.contains(KEY), "{name}: the API key leaked: {shown}");
        assert!(
            !shown.contains(AZURE_KEY),
            "{name}: the api-key header leaked: {shown}"
        );
    }
}

#[tokio::test]
async fn every_error_maps_to_its_action_error_without_credentials() {
    let server = MockServer::start().await;
    let ai = provider(OpenAiSettings {
        extra_headers: vec![("api-key".into(), AZURE_KEY.into())],
        ..settings(&server)
    });
    for case in error_cases() {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(case.response)
            .mount(&server)
            .await;
        let error = ai
            .generate_response(&ask(ANNA, "hello"))
            .await
            .expect_err(case.name);
        assert!((case.expect)(&error), "{}: {error:?}", case.name);
        assert!(
            error.to_string().contains(case.mentions),
            "{}: `{}` not in: {error}",
            case.name,
            case.mentions
        );
        if error.to_string().contains("; key ") {
            assert!(
                error.to_string().contains("key ***"),
                "{}: {error}",
                case.name
            );
        }
        assert_no_credentials(case.name, &error);
        assert!(
            ai.conversation("lead-qualifier", ANNA).is_empty(),
            "{}: a failure joined the history",
            case.name
        );
    }
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion("too late", "stop"))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let ai = provider(OpenAiSettings {
        timeout: Duration::from_millis(200),
        ..settings(&server)
    });
    let started = Instant::now();
    let error = ai.generate_response(&ask(ANNA, "hello")).await.unwrap_err();
    assert_eq!(error, ActionError::Timeout { after_ms: 200 });
    assert!(error.is_retryable());
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_no_credentials("timeout", &error);
    assert!(ai.conversation("lead-qualifier", ANNA).is_empty());
}

#[tokio::test]
async fn a_server_that_is_not_there_is_transient() {
    // A port nobody listens on: bind one, then close it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let ai = provider(OpenAiSettings {
        api_key: Some(Secret::new(KEY)),
        default_model: Some("gpt-4o-mini".into()),
        extra_headers: vec![("api-key".into(), AZURE_KEY.into())],
        ..OpenAiSettings::new(format!("http://127.0.0.1:{port}/v1"))
    });
    let error = ai.generate_response(&ask(ANNA, "hello")).await.unwrap_err();
    match &error {
        ActionError::Transient { message } => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(error.is_retryable());
    assert_no_credentials("connection refused", &error);
}

// ---------------------------------------------------------------------------
// End to end: a flow answers WhatsApp messages with the assistant
// ---------------------------------------------------------------------------

const LEAD_QUALIFICATION: &str = include_str!("../examples/lead_qualification.flow");

const CONFIG: &str = r#"
[senders.berlin-office]
phone_number_id = "106540352242922"
phone = "+4930901820"

[assistants.lead-qualifier]
model = "gpt-4o-mini"
instructions = "You qualify leads for Nordlicht Solar. Answer briefly."
"#;

/// A customer's WhatsApp message, written just now: the event opens the
/// 24-hour window, so the answer may be free text.
fn message_received(text: &str, n: u32) -> Event {
    Event::new(
        "whatsapp.message_received",
        json!({
            "phone": LUKAS,
            "text": text,
            "sender_id": "berlin-office",
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "conversation_id": "conv_4917612345678_berlin-office",
            "message_id": format!("wamid.test.in.{n}"),
            "name": "Lukas Meyer",
        }),
    )
}

fn lead_engine(ai: OpenAiCompatible, recorder: &Recorder) -> Engine {
    let mut compiler = Compiler::new();
    compiler.add_source("lead_qualification.flow", LEAD_QUALIFICATION);
    compiler.add_config("flow.toml", CONFIG);
    let program = compiler
        .check()
        .into_result()
        .unwrap_or_else(|e| panic!("the flow does not check:\n{e}"));
    let engine = Engine::builder()
        .ai(ai)
        .whatsapp(recorder.whatsapp())
        .notify(recorder.notify())
        .log(recorder.log())
        .limits(EngineLimits {
            // Two answers to one customer in a row: no 6-second pause in a test.
            pacing: Limits {
                recipient_interval: chrono::Duration::zero(),
                ..Limits::default()
            },
            ..EngineLimits::default()
        })
        .build();
    engine
        .load(program)
        .expect("every action the flows call is implemented");
    engine
}

#[tokio::test]
async fn a_flow_sends_the_assistants_answer_back_on_whatsapp() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(|request: &Request| {
            let body: Json = request.body_json().unwrap();
            let turns = body["messages"].as_array().unwrap().len();
            let answer = if turns == 2 {
                "A 10 kWp system with battery starts at 14,900 EUR. How large is your roof?"
            } else {
                "Thanks! 60 m² is enough. May we offer you a free on-site consultation?"
            };
            ResponseTemplate::new(200).set_body_json(completion(answer, "stop"))
        })
        .expect(2)
        .mount(&server)
        .await;
    let recorder = Recorder::new();
    let engine = lead_engine(provider(settings(&server)), &recorder);

    let first = "Hi, what does a 10 kWp system with battery storage cost?";
    let reports = engine.dispatch(message_received(first, 1)).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].status,
        RunStatus::Finished(RunOutcome::Completed)
    );
    let reports = engine
        .dispatch(message_received("The roof has about 60 m².", 2))
        .await
        .unwrap();
    assert_eq!(
        reports[0].status,
        RunStatus::Finished(RunOutcome::Completed)
    );

    // What went back to the customer is what the assistant answered.
    let texts = recorder.texts();
    assert_eq!(texts.len(), 2);
    assert!(texts
        .iter()
        .all(|t| t.to == LUKAS && t.sender.name == "berlin-office"));
    assert_eq!(
        texts[0].body,
        "A 10 kWp system with battery starts at 14,900 EUR. How large is your roof?"
    );
    assert_eq!(
        texts[1].body,
        "Thanks! 60 m² is enough. May we offer you a free on-site consultation?"
    );
    assert!(recorder.notifications().is_empty());

    // The assistant's instructions from flow.toml, the flow's variables as
    // context, and the first exchange as the second request's history.
    let bodies = bodies(&server).await;
    assert_eq!(bodies[1]["model"], "gpt-4o-mini");
    assert_eq!(bodies[1]["user"], json!(customer_tag(LUKAS)));
    assert_eq!(
        messages(&bodies[1]),
        pairs(&[
            (
                "system",
                "You qualify leads for Nordlicht Solar. Answer briefly.\n\n\
                 Context: office=berlin-office, source=whatsapp"
            ),
            ("user", first),
            (
                "assistant",
                "A 10 kWp system with battery starts at 14,900 EUR. How large is your roof?"
            ),
            ("user", "The roof has about 60 m²."),
        ])
    );
}

#[tokio::test]
async fn a_flow_hands_over_to_a_person_when_the_key_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(openai_error(
            401,
            &leaky("Incorrect API key provided"),
            "invalid_request_error",
            Some("invalid_api_key"),
        ))
        // Unauthorized is permanent: the flow's `retry 2 times` does not retry it.
        .expect(1)
        .mount(&server)
        .await;
    let recorder = Recorder::new();
    let engine = lead_engine(provider(settings(&server)), &recorder);

    let reports = engine
        .dispatch(message_received("Hello?", 1))
        .await
        .unwrap();
    // The catch block hands over and ends the run with `stop`.
    assert_eq!(reports[0].status, RunStatus::Finished(RunOutcome::Stopped));
    assert!(recorder.texts().is_empty());
    let notifications = recorder.notifications();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].0, "sales");
    let logs = recorder.logs();
    assert!(
        logs.iter().any(|(_, level, line)| level == "error"
            && line.contains("Unauthorized")
            && line.contains("invalid_api_key")),
        "{logs:?}"
    );
    for (_, _, line) in &logs {
        assert!(!line.contains(KEY), "{line}");
    }
}
