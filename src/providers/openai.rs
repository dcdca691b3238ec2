//! The OpenAI-compatible AI provider: answers `ai.generate_response` with a
//! chat completion (`POST …/chat/completions`).
//!
//! # Servers
//!
//! Anything that speaks OpenAI's chat completions protocol: OpenAI itself,
//! Azure-style gateways (the key in an `api-key` header: put it in
//! [`OpenAiSettings::extra_headers`] and leave [`OpenAiSettings::api_key`]
//! empty), vLLM, llama.cpp's server, Ollama (`http://127.0.0.1:11434`), LM
//! Studio and most hosted model APIs. Local servers usually need no key: with
//! `api_key: None` no `Authorization` header is sent.
//!
//! # The endpoint
//!
//! [`OpenAiSettings::base_url`] may be given with or without the API version;
//! the request goes to (see [`OpenAiCompatible::endpoint`]):
//!
//! - `{base_url}/chat/completions` when the last path segment of `base_url`
//!   is a version segment: `v` and a digit, then letters or digits (`/v1`,
//!   `/v4`, `/v1beta`);
//! - `base_url` itself when it already ends in `/chat/completions` (a
//!   gateway's full endpoint; its query, e.g. `?api-version=…`, is kept);
//! - `{base_url}/v1/chat/completions` otherwise.
//!
//! A trailing `/` does not matter. A user name and password in the URL
//! (`https://user:password@gateway/v1`) are sent as HTTP basic
//! authentication, and the password is hidden like the key.
//!
//! # Conversations
//!
//! The product document's "finds or creates a conversation for the customer
//! identifier": the provider keeps one conversation per (assistant, customer)
//! pair, in memory. Each request sends
//!
//! 1. a system message: the assistant's instructions (or
//!    [`DEFAULT_INSTRUCTIONS`]), then, when the flow passed variables, a line
//!    `Context: office=berlin-office, source=whatsapp` (keys sorted);
//! 2. the conversation's history, at most [`OpenAiSettings::history_limit`]
//!    messages, oldest first;
//! 3. the new message, as the user's.
//!
//! Only a successful answer adds to the history (the user's message and the
//! answer, as a pair), so a failed request that the flow retries does not
//! send the customer's message twice. When the history is full the oldest
//! exchange goes first; exchanges are never split, so an odd limit keeps one
//! message fewer.
//!
//! Requests of one conversation take turns: a second message of the same
//! customer waits until the answer to the first is in (in arrival order),
//! and is then sent with the first exchange in its history. The model sees
//! the messages in the order they came and the history stays whole pairs.
//! The wait counts against the engine's provider timeout, not against
//! [`OpenAiSettings::timeout`], which limits the HTTP request alone.
//! Different conversations run in parallel.
//!
//! The conversations live as long as the provider: they are not persisted, a
//! restart forgets them. Each is bounded; their number grows with the number
//! of distinct customers.
//!
//! # Identifiers
//!
//! The conversation id ([`conversation_id`]) is `conv-` and 16 hex digits of
//! a stable 64-bit hash (FNV-1a) of the assistant's name and the customer
//! identifier: the same pair always gets the same id, across restarts and
//! builds. The request's `user` field ([`customer_tag`]) is `customer-` and
//! the hash of the customer identifier alone, so the AI provider can tell
//! customers apart (for its abuse monitoring) without receiving the phone
//! number. The tag is pseudonymous, not secret: phone numbers are few enough
//! to be hashed one by one.
//!
//! # Answers and errors
//!
//! The answer is the first choice's text, without leading and trailing
//! whitespace. An answer cut short by `max_tokens` (`finish_reason`
//! `length`) is still an answer: it is returned and kept in the history as
//! is (the customer gets a short answer rather than none), and counted in
//! [`OpenAiCompatible::truncated_answers`] for the host to watch. An answer
//! withheld by the content filter (`content_filter`), an empty answer and a
//! refusal are [`ActionError::Ai`].
//!
//! | What happened | [`ActionError`] |
//! |---|---|
//! | HTTP 401, 403 | `Unauthorized` |
//! | HTTP 400, 413, 422 | `InvalidRequest`, with the error code, e.g. `context_length_exceeded` |
//! | HTTP 404 | `Ai`: the model is unknown (or the URL is wrong) |
//! | HTTP 429 | `RateLimited`, waiting for `retry-after-ms` or `Retry-After` (20 s if neither) |
//! | HTTP 429 `insufficient_quota` | `Ai`: not retryable, the account has no credit |
//! | HTTP 408, 409, 5xx except 501 | `Transient` |
//! | no answer within the timeout | `Timeout` |
//! | cannot connect | `Transient` |
//! | no model for the request | `InvalidRequest` |
//! | anything else | `Ai` |
//!
//! Error messages quote the server's explanation, but never the API key, a
//! password in the base URL, nor the value of an extra header whose name
//! contains `key`, `token`, `secret`, `auth`, `password` or `cookie`: those
//! are replaced by `***` wherever they appear. `Debug`
//! of the settings and the provider shows no credential either.
//!
//! ```
//! use std::time::Duration;
//!
//! use flowc::providers::openai::{OpenAiCompatible, OpenAiSettings};
//! use flowc::providers::Secret;
//! use flowc::runtime::Engine;
//!
//! // OpenAI, with a key (in production: `Secret::from_env("OPENAI_API_KEY")?`).
//! let openai = OpenAiCompatible::new(OpenAiSettings {
//!     api_key: Some(Secret::new("sk-test-not-a-real-key")),
//!     default_model: Some("gpt-4o-mini".into()),
//!     temperature: Some(0.3),
//!     max_tokens: Some(512),
//!     timeout: Duration::from_secs(20),
//!     ..OpenAiSettings::default()
//! })?;
//! assert_eq!(openai.endpoint(), "https://api.openai.com/v1/chat/completions");
//! assert!(!format!("{openai:?}").contains("sk-test"));
//!
//! // Ollama on this machine: no key, and the base URL without `/v1`.
//! let ollama = OpenAiCompatible::new(OpenAiSettings {
//!     default_model: Some("llama3.2".into()),
//!     ..OpenAiSettings::new("http://127.0.0.1:11434")
//! })?;
//! assert_eq!(ollama.endpoint(), "http://127.0.0.1:11434/v1/chat/completions");
//!
//! // An Azure-style gateway that wants its key in an `api-key` header.
//! let gateway = OpenAiCompatible::new(OpenAiSettings {
//!     extra_headers: vec![("api-key".into(), "not-a-real-key".into())],
//!     ..OpenAiSettings::new("https://example-resource.openai.azure.com/openai/v1/")
//! })?;
//! assert_eq!(
//!     gateway.endpoint(),
//!     "https://example-resource.openai.azure.com/openai/v1/chat/completions"
//! );
//!
//! let engine = Engine::builder().ai(openai).build();
//! # drop(engine);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Ai, AiAnswer, AiRequest, Secret};
use crate::runtime::ActionError;

/// How long one request may take unless [`OpenAiSettings::timeout`] says
/// otherwise: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many messages of history a conversation keeps unless
/// [`OpenAiSettings::history_limit`] says otherwise: 20 (ten exchanges).
pub const DEFAULT_HISTORY_LIMIT: usize = 20;

/// How long a rate-limited request waits when the server does not say: 20
/// seconds.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 20_000;

/// The system message of an assistant without instructions.
pub const DEFAULT_INSTRUCTIONS: &str = "You are a helpful assistant answering customers' \
     messages. Answer briefly and friendly, in the customer's language.";

/// The most of a server's explanation an error message quotes, in characters.
const MAX_DETAIL_CHARS: usize = 500;

/// The largest answer body read, in bytes; a bigger one is an error.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How to reach an OpenAI-compatible server.
///
/// [`Default`] is OpenAI's API without a key; [`OpenAiSettings::new`] another
/// server. Both use [`DEFAULT_TIMEOUT`] and [`DEFAULT_HISTORY_LIMIT`].
#[derive(Clone, PartialEq)]
pub struct OpenAiSettings {
    /// The server, e.g. `https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434` (Ollama) or a gateway; with or without the
    /// version segment (see the [module documentation](self) for the rule).
    pub base_url: String,
    /// Sent as `Authorization: Bearer {key}`; `None` for local servers, then
    /// no `Authorization` header is sent.
    pub api_key: Option<Secret>,
    /// The model when the assistant has none in flow.toml.
    pub default_model: Option<String>,
    /// How long one HTTP request may take, from connecting to the last byte
    /// of the answer.
    pub timeout: Duration,
    /// The sampling temperature; sent only when set.
    pub temperature: Option<f32>,
    /// The most tokens an answer may have; sent (as `max_tokens`) only when
    /// set. An answer cut at this limit is still returned.
    pub max_tokens: Option<u32>,
    /// How many messages of history each conversation keeps and sends
    /// (user messages and answers; an exchange is two). `0` sends no
    /// history.
    pub history_limit: usize,
    /// Headers sent with every request, after the standard ones: a header
    /// named like a standard one (`Authorization`, `Content-Type`) replaces
    /// it. For example `("api-key", key)` for Azure-style gateways, or an
    /// organization or project header. `Debug` shows their names only. The
    /// values of headers whose name contains `key`, `token`, `secret`,
    /// `auth`, `password` or `cookie` are credentials: marked sensitive and
    /// hidden in error messages too.
    pub extra_headers: Vec<(String, String)>,
}

impl OpenAiSettings {
    /// Settings for the server at `base_url`, with no key and the defaults.
    pub fn new(base_url: impl Into<String>) -> Self {
        OpenAiSettings {
            base_url: base_url.into(),
            ..OpenAiSettings::default()
        }
    }
}

impl Default for OpenAiSettings {
    /// OpenAI's API (`https://api.openai.com/v1`), no key, no default model.
    fn default() -> Self {
        OpenAiSettings {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            default_model: None,
            timeout: DEFAULT_TIMEOUT,
            temperature: None,
            max_tokens: None,
            history_limit: DEFAULT_HISTORY_LIMIT,
            extra_headers: Vec::new(),
        }
    }
}

impl fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &without_password(&self.base_url))
            .field("api_key", &self.api_key)
            .field("default_model", &self.default_model)
            .field("timeout", &self.timeout)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("history_limit", &self.history_limit)
            .field("extra_headers", &HeaderNames(&self.extra_headers))
            .finish()
    }
}

/// Shows extra headers as `name: ***`.
struct HeaderNames<'a>(&'a [(String, String)]);

impl fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| format!("{name}: ***")))
            .finish()
    }
}

/// Why [`OpenAiCompatible::new`] refused the settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenAiError {
    /// The base URL is not an `http` or `https` URL.
    #[error("invalid base URL \"{url}\": {reason}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API key cannot be sent in an HTTP header (it is not shown).
    #[error("the API key cannot be sent in an HTTP header: it contains a line break or another control character")]
    ApiKey,
    /// An extra header has an invalid name or value (the value is not shown).
    #[error("invalid extra header `{name}`: {reason}")]
    Header {
        /// The header's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The timeout is zero.
    #[error("the timeout must be longer than zero")]
    ZeroTimeout,
    /// The temperature is not a finite number.
    #[error("the temperature must be a finite number, not {0}")]
    Temperature(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Who wrote a message of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The instructions and context.
    System,
    /// The customer.
    User,
    /// The assistant.
    Assistant,
}

/// One message of a chat completion request, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// What.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A customer's message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant's answer.
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// The conversation id of `customer` with `assistant`: `conv-` and 16 hex
/// digits, stable across restarts and builds.
///
/// ```
/// use flowc::providers::openai::conversation_id;
///
/// let id = conversation_id("lead-qualifier", "+4917612345678");
/// assert!(id.starts_with("conv-") && id.len() == 21);
/// assert_eq!(id, conversation_id("lead-qualifier", "+4917612345678"));
/// assert_ne!(id, conversation_id("support", "+4917612345678"));
/// ```
pub fn conversation_id(assistant: &str, customer: &str) -> String {
    let hash = fnv1a([assistant.as_bytes(), &[0], customer.as_bytes()]);
    format!("conv-{hash:016x}")
}

/// The `user` field sent for `customer`: `customer-` and 16 hex digits of a
/// hash of the identifier, so the raw phone number does not leave the host.
///
/// ```
/// use flowc::providers::openai::customer_tag;
///
/// let tag = customer_tag("+4917612345678");
/// assert!(tag.starts_with("customer-") && !tag.contains("4917612345678"));
/// ```
pub fn customer_tag(customer: &str) -> String {
    let hash = fnv1a([customer.as_bytes()]);
    format!("customer-{hash:016x}")
}

/// 64-bit FNV-1a: tiny, and fixed forever (unlike std's `DefaultHasher`).
fn fnv1a<const N: usize>(parts: [&[u8]; N]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A user message and the answer to it.
#[derive(Debug, Clone)]
struct Exchange {
    user: String,
    assistant: String,
}

/// One (assistant, customer) conversation.
#[derive(Debug)]
struct Conversation {
    id: String,
    /// Held for the whole of a request: requests of one conversation take
    /// turns (tokio's mutex is fair, so in arrival order).
    turn: tokio::sync::Mutex<()>,
    /// The history; locked only briefly, never across an `.await`.
    exchanges: Mutex<VecDeque<Exchange>>,
}

impl Conversation {
    fn exchanges(&self) -> MutexGuard<'_, VecDeque<Exchange>> {
        self.exchanges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn messages(&self) -> Vec<ChatMessage> {
        self.exchanges()
            .iter()
            .flat_map(|e| {
                [
                    ChatMessage::user(e.user.clone()),
                    ChatMessage::assistant(e.assistant.clone()),
                ]
            })
            .collect()
    }

    fn push(&self, exchange: Exchange, max_exchanges: usize) {
        let mut exchanges = self.exchanges();
        exchanges.push_back(exchange);
        while exchanges.len() > max_exchanges {
            exchanges.pop_front();
        }
    }
}

/// The OpenAI-compatible AI provider; see the [module documentation](self).
pub struct OpenAiCompatible {
    client: reqwest::Client,
    endpoint: Url,
    /// `endpoint` with a password in it as `***`.
    shown_endpoint: String,
    settings: OpenAiSettings,
    /// Credentials that must not appear in error messages.
    redactions: Vec<String>,
    conversations: Mutex<HashMap<(String, String), Arc<Conversation>>>,
    truncated: AtomicU64,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("endpoint", &shown_url(&self.endpoint))
            .field("settings", &self.settings)
            .field("conversations", &self.conversations().len())
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    /// A provider for the server of `settings`. Checks the settings and
    /// builds the HTTP client; does not connect.
    pub fn new(settings: OpenAiSettings) -> Result<Self, OpenAiError> {
        let endpoint = endpoint_for(&settings.base_url)?;
        if settings.timeout.is_zero() {
            return Err(OpenAiError::ZeroTimeout);
        }
        if let Some(t) = settings.temperature {
            if !t.is_finite() {
                return Err(OpenAiError::Temperature(t.to_string()));
            }
        }

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut redactions = Vec::new();
        if let Some(key) = &settings.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| OpenAiError::ApiKey)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
            redactions.push(key.expose().to_string());
        }
        for (name, value) in &settings.extra_headers {
            let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                OpenAiError::Header {
                    name: name.clone(),
                    reason: "not a valid header name".into(),
                }
            })?;
            let mut header_value =
                HeaderValue::from_str(value).map_err(|_| OpenAiError::Header {
                    name: name.clone(),
                    reason: "the value contains a line break or another control character".into(),
                })?;
            if is_credential_header(header.as_str()) {
                header_value.set_sensitive(true);
                redactions.push(value.clone());
                if header == AUTHORIZATION {
                    // `Bearer xyz`: the token alone must go too.
                    if let Some((_, token)) = value.split_once(' ') {
                        redactions.push(token.trim().to_string());
                    }
                }
            }
            headers.insert(header, header_value);
        }
        if let Some(password) = endpoint.password() {
            redactions.push(password.to_string());
        }
        redactions.retain(|r| !r.is_empty());
        // Longest first, so a key that contains another is hidden whole.
        redactions.sort_by_key(|r| std::cmp::Reverse(r.len()));

        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| OpenAiError::Client(e.to_string()))?;
        Ok(OpenAiCompatible {
            client,
            shown_endpoint: without_password(endpoint.as_str()),
            endpoint,
            settings,
            redactions,
            conversations: Mutex::new(HashMap::new()),
            truncated: AtomicU64::new(0),
        })
    }

    /// The URL requests go to, e.g.
    /// `https://api.openai.com/v1/chat/completions` (a password in it shown
    /// as `***`).
    pub fn endpoint(&self) -> &str {
        &self.shown_endpoint
    }

    /// The settings.
    pub fn settings(&self) -> &OpenAiSettings {
        &self.settings
    }

    /// The history of `customer`'s conversation with `assistant`, oldest
    /// first: the customer's messages and the answers, alternating, as the
    /// next request will send them (without the system message). Empty for a
    /// conversation that has not started.
    pub fn conversation(&self, assistant: &str, customer: &str) -> Vec<ChatMessage> {
        let found = self
            .conversations()
            .get(&(assistant.to_string(), customer.to_string()))
            .cloned();
        found.map(|c| c.messages()).unwrap_or_default()
    }

    /// How many answers so far were cut short by `max_tokens`
    /// (`finish_reason` `length`) and returned anyway.
    pub fn truncated_answers(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    fn conversations(&self) -> MutexGuard<'_, HashMap<(String, String), Arc<Conversation>>> {
        self.conversations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Finds or creates the conversation.
    fn find_or_create(&self, assistant: &str, customer: &str) -> Arc<Conversation> {
        self.conversations()
            .entry((assistant.to_string(), customer.to_string()))
            .or_insert_with(|| {
                Arc::new(Conversation {
                    id: conversation_id(assistant, customer),
                    turn: tokio::sync::Mutex::new(()),
                    exchanges: Mutex::new(VecDeque::new()),
                })
            })
            .clone()
    }

    /// The messages of a request: system, history, the new message.
    fn messages(&self, request: &AiRequest, history: Vec<ChatMessage>) -> Vec<ChatMessage> {
        let mut messages = Vec::with_capacity(history.len() + 2);
        messages.push(ChatMessage::system(system_message(request)));
        messages.extend(history);
        messages.push(ChatMessage::user(request.message.clone()));
        messages
    }

    /// Hides every credential in `text`.
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.redactions {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }

    /// The error for a request that got no HTTP answer.
    fn transport_error(&self, error: &reqwest::Error) -> ActionError {
        if error.is_timeout() {
            return ActionError::Timeout {
                after_ms: u64::try_from(self.settings.timeout.as_millis()).unwrap_or(u64::MAX),
            };
        }
        let server = server_of(&self.endpoint);
        let cause = self.redact(&root_cause(error));
        let message = if error.is_connect() {
            format!("cannot connect to the AI server at {server}: {cause}")
        } else {
            format!("the connection to the AI server at {server} failed: {cause}")
        };
        ActionError::Transient { message }
    }

    /// The error for an HTTP answer that is not a success.
    fn status_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
        model: &str,
    ) -> ActionError {
        let server = ServerError::parse(body);
        let code = status.as_u16();
        let detail = match &server.message {
            Some(message) => format!(": {}", self.redact(&truncate(message))),
            None => String::new(),
        };
        let label = match server.code.as_deref().or(server.kind.as_deref()) {
            Some(c) => format!("HTTP {code}, {}", self.redact(&truncate(c))),
            None => format!("HTTP {code}"),
        };
        match code {
            401 | 403 => ActionError::Unauthorized {
                message: format!("the AI server refused the credentials ({label}){detail}"),
            },
            400 | 413 | 422 => ActionError::InvalidRequest {
                message: format!("the AI server rejected the request ({label}){detail}"),
            },
            404 => ActionError::Ai {
                message: format!(
                    "the AI server does not know the model `{}`, or has no chat completions at {} ({label}){detail}",
                    self.redact(model),
                    self.redact(&shown_url(&self.endpoint)),
                ),
            },
            429 if server.is("insufficient_quota") => ActionError::Ai {
                message: format!(
                    "the AI account has no quota left; check its plan and billing ({label}){detail}"
                ),
            },
            429 => ActionError::RateLimited {
                message: format!("the AI server is limiting requests ({label}){detail}"),
                retry_after_ms: Some(
                    retry_after_ms(headers, chrono::Utc::now()).unwrap_or(DEFAULT_RETRY_AFTER_MS),
                ),
            },
            408 | 409 => ActionError::Transient {
                message: format!("the AI server could not answer now ({label}){detail}"),
            },
            501 => ActionError::Ai {
                message: format!(
                    "the AI server does not implement chat completions ({label}){detail}"
                ),
            },
            500..=599 => ActionError::Transient {
                message: format!("the AI server failed ({label}){detail}"),
            },
            _ => ActionError::Ai {
                message: format!("unexpected answer from the AI server ({label}){detail}"),
            },
        }
    }

    /// The answer's text from a successful HTTP answer.
    fn answer_text(&self, body: &str) -> Result<String, ActionError> {
        let not_a_completion = |why: &str| ActionError::Ai {
            message: format!("the AI server's answer is not a chat completion: {why}"),
        };
        let json: Json =
            serde_json::from_str(body).map_err(|e| not_a_completion(&e.to_string()))?;
        if json.get("choices").is_none() && json.get("error").is_some() {
            let server = ServerError::parse(body);
            return Err(ActionError::Ai {
                message: format!(
                    "the AI server answered with an error: {}",
                    self.redact(&truncate(server.message.as_deref().unwrap_or("no details")))
                ),
            });
        }
        let completion: Completion =
            serde_json::from_value(json).map_err(|e| not_a_completion(&e.to_string()))?;
        let Some(choice) = completion.choices.into_iter().next() else {
            return Err(not_a_completion("it has no choices"));
        };
        let finish = choice.finish_reason.as_deref().unwrap_or("");
        if finish == "content_filter" {
            return Err(ActionError::Ai {
                message: "the AI provider's content filter withheld the answer \
                          (finish_reason content_filter)"
                    .into(),
            });
        }
        let message = choice.message.unwrap_or_default();
        let text = message
            .content
            .as_ref()
            .map(content_text)
            .unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            let message = match message.refusal.as_deref().map(str::trim) {
                Some(refusal) if !refusal.is_empty() => {
                    format!(
                        "the model refused to answer: {}",
                        self.redact(&truncate(refusal))
                    )
                }
                _ if finish.is_empty() => "the model's answer is empty".to_string(),
                _ => format!("the model's answer is empty (finish_reason {finish})"),
            };
            return Err(ActionError::Ai { message });
        }
        if finish == "length" {
            self.truncated.fetch_add(1, Ordering::Relaxed);
        }
        Ok(text.to_string())
    }

    /// Sends the request and reads the whole answer.
    async fn post(
        &self,
        body: &ChatRequest<'_>,
    ) -> Result<(StatusCode, HeaderMap, String), ActionError> {
        let mut response = self
            .client
            .post(self.endpoint.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ActionError::Ai {
                    message: format!(
                        "the AI server's answer is larger than {} MiB",
                        MAX_BODY_BYTES / (1024 * 1024)
                    ),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }
}

#[async_trait]
impl Ai for OpenAiCompatible {
    async fn generate_response(&self, request: &AiRequest) -> Result<AiAnswer, ActionError> {
        let model = request
            .model
            .as_deref()
            .or(self.settings.default_model.as_deref())
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ActionError::InvalidRequest {
                message: format!(
                    "no model for the assistant `{}`: set `model` in its [assistants] table \
                     in flow.toml, or a default model for the AI provider",
                    request.assistant
                ),
            })?;

        let conversation = self.find_or_create(&request.assistant, &request.customer);
        // Requests of one conversation take turns; the guard is released
        // when this future ends, also when it is cancelled.
        let _turn = conversation.turn.lock().await;

        let messages = self.messages(request, conversation.messages());
        let user = customer_tag(&request.customer);
        let body = ChatRequest {
            model,
            messages: &messages,
            temperature: self.settings.temperature,
            max_tokens: self.settings.max_tokens,
            user: &user,
        };
        let (status, headers, text) = self.post(&body).await?;
        if !status.is_success() {
            return Err(self.status_error(status, &headers, &text, model));
        }
        let answer = self.answer_text(&text)?;

        // Only now does the exchange join the history: a failure above
        // leaves it as it was.
        conversation.push(
            Exchange {
                user: request.message.clone(),
                assistant: answer.clone(),
            },
            self.settings.history_limit / 2,
        );
        Ok(AiAnswer {
            text: answer,
            conversation_id: conversation.id.clone(),
        })
    }
}

/// The system message: instructions, then the variables as context.
fn system_message(request: &AiRequest) -> String {
    let instructions = request
        .instructions
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .unwrap_or(DEFAULT_INSTRUCTIONS);
    if request.variables.is_empty() {
        return instructions.to_string();
    }
    // A BTreeMap: the keys come sorted.
    let context: Vec<String> = request
        .variables
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    format!("{instructions}\n\nContext: {}", context.join(", "))
}

/// The request body.
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    user: &'a str,
}

/// The parts of a chat completion the provider reads.
#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<AnswerMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct AnswerMessage {
    #[serde(default)]
    content: Option<Json>,
    #[serde(default)]
    refusal: Option<String>,
}

/// A message's content: a string, or (some servers) a list of text parts.
fn content_text(content: &Json) -> String {
    match content {
        Json::String(text) => text.clone(),
        Json::Array(parts) => parts
            .iter()
            .filter_map(|part| match part {
                Json::String(text) => Some(text.as_str()),
                other => other.get("text").and_then(Json::as_str),
            })
            .collect(),
        _ => String::new(),
    }
}

/// A server's error answer, in any of the shapes servers use:
/// `{"error": {"message", "type", "code"}}` (OpenAI, llama.cpp),
/// `{"error": "..."}` (Ollama), `{"message", "type", "code"}` (vLLM), or
/// plain text.
#[derive(Debug, Default, PartialEq)]
struct ServerError {
    message: Option<String>,
    kind: Option<String>,
    code: Option<String>,
}

impl ServerError {
    fn parse(body: &str) -> ServerError {
        let text = |v: Option<&Json>| match v {
            Some(Json::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Json::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match serde_json::from_str::<Json>(body) {
            Ok(json) => {
                let error = match json.get("error") {
                    Some(Json::String(message)) => {
                        return ServerError {
                            message: text(Some(&Json::String(message.clone()))),
                            ..ServerError::default()
                        }
                    }
                    Some(object @ Json::Object(_)) => object,
                    _ => &json,
                };
                ServerError {
                    message: text(error.get("message")),
                    kind: text(error.get("type")),
                    code: text(error.get("code")),
                }
            }
            Err(_) => {
                let body = body.trim();
                ServerError {
                    message: (!body.is_empty()).then(|| body.to_string()),
                    ..ServerError::default()
                }
            }
        }
    }

    /// Whether the code or type is `what`.
    fn is(&self, what: &str) -> bool {
        self.code.as_deref() == Some(what) || self.kind.as_deref() == Some(what)
    }
}

/// At most [`MAX_DETAIL_CHARS`] characters of `text`, on one line.
fn truncate(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_DETAIL_CHARS {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX_DETAIL_CHARS).collect();
    cut.push('…');
    cut
}

/// The wait a 429 asks for: `retry-after-ms` (milliseconds, OpenAI's), then
/// `Retry-After` (seconds or an HTTP date).
fn retry_after_ms(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let millis = |value: f64| (value.is_finite() && value >= 0.0).then(|| value.ceil() as u64);
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if let Some(ms) = millis(ms) {
            return Some(ms);
        }
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return millis(seconds * 1000.0);
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - now;
    Some(u64::try_from(wait.num_milliseconds()).unwrap_or(0))
}

/// Whether an extra header carries a credential.
fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["key", "token", "secret", "auth", "password", "cookie"]
        .iter()
        .any(|word| name.contains(word))
}

/// The endpoint for a base URL; see the module documentation.
fn endpoint_for(base_url: &str) -> Result<Url, OpenAiError> {
    let invalid = |reason: &str| OpenAiError::BaseUrl {
        url: base_url.to_string(),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(base_url.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    url.set_fragment(None);
    let mut segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let n = segments.len();
    let complete = n >= 2 && segments[n - 2] == "chat" && segments[n - 1] == "completions";
    if !complete {
        if !segments.last().is_some_and(|s| is_version_segment(s)) {
            segments.push("v1".into());
        }
        segments.push("chat".into());
        segments.push("completions".into());
    }
    url.set_path(&segments.join("/"));
    Ok(url)
}

/// `v1`, `v2`, `v1beta`, …: `v`, a digit, then letters or digits.
fn is_version_segment(segment: &str) -> bool {
    let mut chars = segment.chars();
    chars.next() == Some('v')
        && chars.next().is_some_and(|c| c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// The URL without credentials and query, for messages.
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.to_string()
}

/// A base URL as `Debug` shows it: a password in it becomes `***`.
fn without_password(base_url: &str) -> String {
    match Url::parse(base_url.trim()) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => base_url.to_string(),
    }
}

/// `host:port` of the server, for messages.
fn server_of(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => shown_url(url),
    }
}

/// The innermost cause of a transport error (e.g. "Connection refused (os
/// error 111)"): reqwest's own message repeats the URL.
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let text = cause.to_string();
    if text.is_empty() {
        "unknown error".to_string()
    } else {
        truncate(&text)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn endpoint(base: &str) -> String {
        endpoint_for(base).unwrap().to_string()
    }

    #[test]
    fn base_urls_with_and_without_a_version() {
        let cases = [
            ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"),
            ("https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions"),
            ("https://api.openai.com", "https://api.openai.com/v1/chat/completions"),
            ("https://api.openai.com/", "https://api.openai.com/v1/chat/completions"),
            ("http://127.0.0.1:11434", "http://127.0.0.1:11434/v1/chat/completions"),
            ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/chat/completions"),
            ("https://gw.example.com/openai", "https://gw.example.com/openai/v1/chat/completions"),
            ("https://gw.example.com/api/paas/v4", "https://gw.example.com/api/paas/v4/chat/completions"),
            ("https://gw.example.com/v1beta/openai/", "https://gw.example.com/v1beta/openai/v1/chat/completions"),
            ("https://gw.example.com/v1beta", "https://gw.example.com/v1beta/chat/completions"),
            ("https://gw.example.com/venus", "https://gw.example.com/venus/v1/chat/completions"),
            (
                "https://r.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-10-21",
                "https://r.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-10-21",
            ),
            ("https://gw.example.com/v1?tenant=a", "https://gw.example.com/v1/chat/completions?tenant=a"),
        ];
        for (base, expected) in cases {
            assert_eq!(endpoint(base), expected, "{base}");
        }
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for base in [
            "",
            "api.openai.com/v1",
            "ftp://example.com/v1",
            "file:///tmp/v1",
        ] {
            assert!(
                matches!(endpoint_for(base), Err(OpenAiError::BaseUrl { .. })),
                "{base}"
            );
        }
    }

    #[test]
    fn ids_are_stable_and_do_not_show_the_number() {
        // Pinned: a change here re-keys every conversation in every log.
        assert_eq!(
            conversation_id("lead-qualifier", "+4917612345678"),
            format!(
                "conv-{:016x}",
                fnv1a([b"lead-qualifier".as_slice(), &[0], b"+4917612345678"])
            )
        );
        assert_eq!(fnv1a([b"".as_slice()]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a([b"a".as_slice()]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a([b"foobar".as_slice()]), 0x8594_4171_f739_67e8);
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(conversation_id("ab", "c"), conversation_id("a", "bc"));
        let tag = customer_tag("+4917612345678");
        assert!(tag.starts_with("customer-"));
        assert_eq!(tag.len(), "customer-".len() + 16);
        assert!(!tag.contains("4917612345678"));
    }

    #[test]
    fn the_system_message_has_the_instructions_and_the_sorted_context() {
        let mut request = AiRequest {
            assistant: "a".into(),
            model: None,
            instructions: Some("  Qualify leads.\n".into()),
            customer: "c".into(),
            message: "m".into(),
            variables: BTreeMap::new(),
        };
        assert_eq!(system_message(&request), "Qualify leads.");
        request.variables.insert("source".into(), "whatsapp".into());
        request.variables.insert("plan".into(), "premium".into());
        assert_eq!(
            system_message(&request),
            "Qualify leads.\n\nContext: plan=premium, source=whatsapp"
        );
        request.instructions = None;
        assert!(system_message(&request).starts_with(DEFAULT_INSTRUCTIONS));
    }

    #[test]
    fn history_keeps_whole_exchanges() {
        let conversation = Conversation {
            id: "x".into(),
            turn: tokio::sync::Mutex::new(()),
            exchanges: Mutex::new(VecDeque::new()),
        };
        for i in 1..=4 {
            conversation.push(
                Exchange {
                    user: format!("q{i}"),
                    assistant: format!("a{i}"),
                },
                5 / 2,
            );
        }
        assert_eq!(
            conversation.messages(),
            [
                ChatMessage::user("q3"),
                ChatMessage::assistant("a3"),
                ChatMessage::user("q4"),
                ChatMessage::assistant("a4"),
            ]
        );
        conversation.push(
            Exchange {
                user: "q5".into(),
                assistant: "a5".into(),
            },
            0,
        );
        assert!(conversation.messages().is_empty());
    }

    #[test]
    fn retry_after_headers() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T08:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_str(value).unwrap());
            }
            map
        };
        assert_eq!(retry_after_ms(&headers(&[]), now), None);
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "7")]), now),
            Some(7000)
        );
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "0.5")]), now),
            Some(500)
        );
        assert_eq!(
            retry_after_ms(
                &headers(&[("retry-after-ms", "1234.2"), ("retry-after", "7")]),
                now
            ),
            Some(1235)
        );
        assert_eq!(
            retry_after_ms(
                &headers(&[("retry-after-ms", "soon"), ("retry-after", "7")]),
                now
            ),
            Some(7000)
        );
        assert_eq!(
            retry_after_ms(
                &headers(&[("retry-after", "Thu, 26 Nov 2026 08:01:30 GMT")]),
                now
            ),
            Some(90_000)
        );
        assert_eq!(
            retry_after_ms(
                &headers(&[("retry-after", "Thu, 26 Nov 2026 07:00:00 GMT")]),
                now
            ),
            Some(0)
        );
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "-3")]), now),
            None
        );
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "later")]), now),
            None
        );
    }

    #[test]
    fn server_errors_in_every_shape() {
        assert_eq!(
            ServerError::parse(
                r#"{"error": {"message": "Too long", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}"#
            ),
            ServerError {
                message: Some("Too long".into()),
                kind: Some("invalid_request_error".into()),
                code: Some("context_length_exceeded".into()),
            }
        );
        assert_eq!(
            ServerError::parse(r#"{"error": "model \"llama9\" not found, try pulling it first"}"#),
            ServerError {
                message: Some("model \"llama9\" not found, try pulling it first".into()),
                ..ServerError::default()
            }
        );
        assert_eq!(
            ServerError::parse(
                r#"{"object": "error", "message": "bad", "type": "BadRequestError", "code": 400}"#
            ),
            ServerError {
                message: Some("bad".into()),
                kind: Some("BadRequestError".into()),
                code: Some("400".into()),
            }
        );
        assert_eq!(
            ServerError::parse("<html>502 Bad Gateway</html>"),
            ServerError {
                message: Some("<html>502 Bad Gateway</html>".into()),
                ..ServerError::default()
            }
        );
        assert_eq!(ServerError::parse(""), ServerError::default());
    }

    #[test]
    fn settings_are_checked() {
        let with = |f: fn(&mut OpenAiSettings)| {
            let mut settings = OpenAiSettings::default();
            f(&mut settings);
            OpenAiCompatible::new(settings).map(|_| ())
        };
        assert_eq!(
            with(|s| s.timeout = Duration::ZERO),
            Err(OpenAiError::ZeroTimeout)
        );
        assert!(matches!(
            with(|s| s.temperature = Some(f32::NAN)),
            Err(OpenAiError::Temperature(_))
        ));
        assert_eq!(
            with(|s| s.api_key = Some(Secret::new("sk-line\nbreak"))),
            Err(OpenAiError::ApiKey)
        );
        assert!(matches!(
            with(|s| s.extra_headers = vec![("bad name".into(), "x".into())]),
            Err(OpenAiError::Header { .. })
        ));
        let error =
            with(|s| s.extra_headers = vec![("api-key".into(), "sk-x\r\nInjected: 1".into())])
                .unwrap_err();
        assert!(!error.to_string().contains("sk-x"), "{error}");
        assert_eq!(with(|_| {}), Ok(()));
    }

    #[test]
    fn debug_shows_no_credential() {
        let provider = OpenAiCompatible::new(OpenAiSettings {
            api_key: Some(Secret::new("sk-debug-secret")),
            extra_headers: vec![
                ("api-key".into(), "azure-debug-secret".into()),
                ("OpenAI-Project".into(), "proj_debug".into()),
            ],
            ..OpenAiSettings::new("https://user:pw-debug-secret@gw.example.com/v1")
        })
        .unwrap();
        assert_eq!(
            provider.endpoint(),
            "https://user:***@gw.example.com/v1/chat/completions"
        );
        for shown in [
            format!("{provider:?}"),
            format!("{:?}", provider.settings()),
        ] {
            assert!(!shown.contains("debug-secret"), "{shown}");
            assert!(!shown.contains("proj_debug"), "{shown}");
            assert!(shown.contains("api-key: ***"), "{shown}");
        }
    }

    #[test]
    fn credentials_are_redacted_longest_first() {
        let provider = OpenAiCompatible::new(OpenAiSettings {
            api_key: Some(Secret::new("sk-abc")),
            extra_headers: vec![("x-auth-token".into(), "sk-abcdef".into())],
            ..OpenAiSettings::default()
        })
        .unwrap();
        assert_eq!(
            provider.redact("key sk-abcdef and sk-abc"),
            "key *** and ***"
        );
    }

    #[test]
    fn answers_and_finish_reasons() {
        let provider = OpenAiCompatible::new(OpenAiSettings::default()).unwrap();
        let body = |content: &str, finish: &str| {
            serde_json::json!({"choices": [{"index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish}]})
            .to_string()
        };
        assert_eq!(
            provider.answer_text(&body("  Hello!\n", "stop")),
            Ok("Hello!".into())
        );
        assert_eq!(
            provider.answer_text(&body("Hel", "length")),
            Ok("Hel".into())
        );
        assert_eq!(provider.truncated_answers(), 1);
        let error = |body: &str| match provider.answer_text(body) {
            Err(ActionError::Ai { message }) => message,
            other => panic!("{other:?}"),
        };
        assert!(error(&body("bad", "content_filter")).contains("content filter"));
        assert!(error(&body(" \n", "stop")).contains("empty"));
        assert!(error(r#"{"choices": []}"#).contains("no choices"));
        assert!(error("not json").contains("not a chat completion"));
        assert!(error(r#"{"choices": [{"message": {"content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]}"#)
            .contains("refused to answer: I can't help with that."));
        assert!(error(r#"{"error": {"message": "upstream broke"}}"#).contains("upstream broke"));
        assert_eq!(
            provider.answer_text(
                r#"{"choices": [{"message": {"content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}]}}]}"#
            ),
            Ok("Hi there".into())
        );
    }
}
