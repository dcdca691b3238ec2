//! The WhatsApp Cloud API provider: sends template and free-text messages
//! through Meta's Graph API, reads whether a sender is online, and reads the
//! template catalog of a WhatsApp Business Account.
//!
//! [`CloudApi`] implements [`WhatsApp`], so an engine sends for real with
//! `Engine::builder().whatsapp(cloud_api)`. Every call carries the access token
//! as `Authorization: Bearer ...` (never in a URL), has a time limit
//! ([`CloudApiSettings::timeout`]), and ends in either the answer or an
//! [`ActionError`] that flows can `catch` by kind. The token never appears in
//! an error message nor in the `Debug` output of [`CloudApi`] or
//! [`CloudApiSettings`].
//!
//! | call | request |
//! |---|---|
//! | [`WhatsApp::send_text`] | `POST {base}/{version}/{phone-number-id}/messages`, `"type": "text"` |
//! | [`WhatsApp::send_template`] | the same, `"type": "template"` with the body parameters |
//! | [`WhatsApp::sender_status`] | `GET {base}/{version}/{phone-number-id}?fields=...`, cached per phone number id |
//! | [`CloudApi::fetch_templates`] | `GET {base}/{version}/{waba-id}/message_templates?...`, every page |
//!
//! # Errors
//!
//! Meta answers a failure with `{"error": {"message", "type", "code",
//! "error_subcode", "error_data": {"details"}, "fbtrace_id"}}`. The `code`
//! decides the kind (Meta advises against relying on titles or HTTP status);
//! the HTTP status only decides for codes not in this table:
//!
//! | Meta code | meaning | kind |
//! |---|---|---|
//! | 131047 | more than 24 h since the customer last wrote | `OutsideWindow` |
//! | 132001 | template does not exist (in that language) | `TemplateNotFound` |
//! | 132015, 132016 | template paused / disabled for low quality | `TemplateNotFound` |
//! | 132000 | variable count does not match the template | `TemplateParams` |
//! | 132005, 132007, 132012 | text too long / format policy / parameter format | `TemplateParams` |
//! | 131008, 131009, 100 | missing / invalid parameter | `InvalidRequest`, `InvalidPhone` when Meta's text is about the phone number or recipient |
//! | 131051 | unsupported message type | `InvalidRequest` |
//! | 131030 | recipient not in the allowed list of a test number | `InvalidPhone` |
//! | 131021 | recipient is the sender's own number | `InvalidPhone` |
//! | 131026 | undeliverable: not on WhatsApp, terms not accepted, old app | `Undeliverable` |
//! | 131049, 131050, 130472 | Meta held a marketing message / recipient stopped marketing / experiment | `Undeliverable` |
//! | 133010, 131045 | sender phone number not registered | `SenderOffline` |
//! | 131031, 368 | business account locked / blocked for policy violations | `SenderOffline` |
//! | 131042, 131037, 33 | payment problem / display name not approved / number deleted | `SenderOffline` |
//! | 130429 | throughput limit of the sender | `RateLimited`, 1 s |
//! | 131056 | pair rate limit (same recipient) | `RateLimited`, 6 s |
//! | 4, 17, 32, 613, 80007 | application / user / account rate limits | `RateLimited`, 60 s |
//! | 131048 | spam rate limit (quality) | `QualityLimited` |
//! | 190, 0, 3, 10, 131005, 200-299 | token expired or invalid / permission missing | `Unauthorized` |
//! | 131000, 1, 2, 131016, 131057, 133004 | temporary service error | `Transient` |
//!
//! | other codes, by HTTP status | kind |
//! |---|---|
//! | 401, 403 | `Unauthorized` |
//! | 429 | `RateLimited`, 60 s |
//! | 408, 5xx | `Transient` |
//! | other 4xx, 3xx | `InvalidRequest` |
//!
//! A `RateLimited` error always carries `retry_after_ms`: the `Retry-After`
//! header when Meta sends one (seconds or an HTTP date), otherwise the
//! default in the table. The engine waits at least that long before a retry.
//!
//! Recipient problems: a number that is wrong as written (131030, 131021, a
//! code 100 / 131009 about the number, or a `to` that is not `+` and digits,
//! caught before any request) is `InvalidPhone`: fix the number. A valid
//! number that WhatsApp cannot deliver to (131026 and the marketing holds) is
//! `Undeliverable`: try another channel.
//!
//! Transport: no answer within the timeout is `Timeout`; a connection that
//! fails is `Transient`. An answer that says success (HTTP 2xx) but carries no
//! message id is `InvalidRequest` for a send, not `Transient`: the message may
//! have gone out, and a retry could message the customer twice. For reads
//! (sender status, templates) a malformed answer is `Transient`.
//!
//! Messages say what happened in plain words, then Meta's code, text and
//! `fbtrace_id` (which Meta's support asks for), e.g.
//! `rate limited: too many messages to this recipient in a short time (pair
//! rate limit); HTTP 400, WhatsApp error 131056: (#131056) ... (fbtrace_id
//! AbCdEf123)`.
//!
//! ```
//! use flowc::providers::cloud_api::{CloudApi, CloudApiSettings};
//! use flowc::providers::Secret;
//!
//! let mut settings = CloudApiSettings::new(Secret::new("EAAG-example-token"));
//! settings.business_account_id = Some("102290129340398".into());
//! assert_eq!(settings.base_url, "https://graph.facebook.com");
//! assert_eq!(settings.api_version, "v21.0");
//! let api = CloudApi::new(settings)?;
//! assert!(!format!("{api:?}").contains("EAAG-example-token"));
//! # Ok::<(), flowc::providers::cloud_api::CloudApiError>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::{
    SenderRef, SenderStatus, SentMessage, TemplateMessage, TemplateParameters, TextMessage,
    WhatsApp,
};
use crate::config::{parse_placeholders, PlaceholderProblem, Placeholders, TemplateCategory};
use crate::providers::Secret;
use crate::runtime::ActionError;

/// Meta's Graph API.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version the requests name.
pub const DEFAULT_API_VERSION: &str = "v21.0";
/// The time limit of every call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a sender's status is reused.
pub const DEFAULT_STATUS_CACHE: Duration = Duration::from_secs(60);

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("flowc/", env!("CARGO_PKG_VERSION"));
/// The fields read of a template.
const TEMPLATE_FIELDS: &str = "name,language,status,category,components,parameter_format";
/// The fields read of a business phone number.
const SENDER_FIELDS: &str = "display_phone_number,verified_name,quality_rating,status,throughput";
/// Templates per page.
const TEMPLATE_PAGE_SIZE: &str = "100";
/// A bound on pages, against a server that never says "last page".
const MAX_TEMPLATE_PAGES: usize = 1_000;
/// A bound on an answer's size; Meta's answers are a few KB.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The longest `Retry-After` honoured; longer asks are capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest piece of Meta's text quoted in an error message.
const MAX_QUOTED_CHARS: usize = 300;

/// Default waits for rate limits without a `Retry-After` header.
const THROUGHPUT_WAIT_MS: u64 = 1_000;
const PAIR_RATE_WAIT_MS: u64 = 6_000;
const ACCOUNT_LIMIT_WAIT_MS: u64 = 60_000;

/// Sender statuses that can send: `CONNECTED`; `FLAGGED` (low quality, still
/// sending until Meta lowers the limit) and `RATE_LIMITED` (sending, slowed
/// down; sends fail with `RateLimited` and are retried).
const ONLINE_STATUSES: &[&str] = &["CONNECTED", "FLAGGED", "RATE_LIMITED"];

/// How to reach the Cloud API. The config loader fills it from `flow.toml`'s
/// `[whatsapp]` table and the environment; tests point `base_url` at a mock.
///
/// Its `Debug` output shows the token as `Secret(***)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudApiSettings {
    /// Scheme, host and optional path prefix, without the version:
    /// [`DEFAULT_BASE_URL`] unless a proxy or a test server stands in.
    pub base_url: String,
    /// The Graph API version, e.g. `v21.0` ([`DEFAULT_API_VERSION`]).
    pub api_version: String,
    /// A system user's (or app user's) access token with the
    /// `whatsapp_business_messaging` permission (and
    /// `whatsapp_business_management` for the template catalog).
    pub access_token: Secret,
    /// The WhatsApp Business Account id, needed by
    /// [`CloudApi::fetch_templates`] only.
    pub business_account_id: Option<String>,
    /// The time limit of every call, connecting included
    /// ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// How long [`WhatsApp::sender_status`] reuses a sender's status
    /// ([`DEFAULT_STATUS_CACHE`]); zero asks Meta every time.
    pub status_cache: Duration,
}

impl CloudApiSettings {
    /// The defaults: Meta's Graph API, [`DEFAULT_API_VERSION`], no business
    /// account id, a 15 s timeout and a 60 s status cache.
    pub fn new(access_token: Secret) -> Self {
        CloudApiSettings {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_version: DEFAULT_API_VERSION.to_string(),
            access_token,
            business_account_id: None,
            timeout: DEFAULT_TIMEOUT,
            status_cache: DEFAULT_STATUS_CACHE,
        }
    }
}

/// Why a [`CloudApi`] could not be built from its settings. None of the
/// messages contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudApiError {
    /// `base_url` is not an `http` or `https` URL without query or fragment.
    #[error("the WhatsApp base URL \"{url}\" is not usable: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `api_version` is empty or not like `v21.0`.
    #[error("the Graph API version \"{0}\" is not valid: write it like \"v21.0\"")]
    InvalidApiVersion(String),
    /// `business_account_id` is not a Meta id (digits).
    #[error("the WhatsApp Business Account id \"{0}\" is not valid: it is Meta's numeric id")]
    InvalidBusinessAccountId(String),
    /// The access token is empty.
    #[error("the WhatsApp access token is empty")]
    EmptyToken,
    /// The access token has characters an HTTP header cannot carry.
    #[error("the WhatsApp access token has a character an HTTP header cannot carry")]
    InvalidToken,
    /// The timeout is zero.
    #[error("the WhatsApp timeout must be longer than zero")]
    ZeroTimeout,
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// A template of the WhatsApp Business Account, as
/// [`CloudApi::fetch_templates`] reads it. Despite the name it may be in any
/// status; [`ApprovedTemplate::is_approved`] tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedTemplate {
    /// The template's name, e.g. `appointment_confirmed`.
    pub name: String,
    /// Its language code, e.g. `de` or `en_US`.
    pub language: String,
    /// Meta's review status: `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`,
    /// `DISABLED`, ...
    pub status: String,
    /// The category in lower case, as `flow.toml` writes it: `marketing`,
    /// `utility` or `authentication`.
    pub category: String,
    /// The text of the `BODY` component, with its placeholders.
    pub body: Option<String>,
    /// `POSITIONAL` or `NAMED`, when Meta says.
    pub parameter_format: Option<String>,
}

impl ApprovedTemplate {
    /// Whether it can be sent: its status is `APPROVED`.
    pub fn is_approved(&self) -> bool {
        self.status.eq_ignore_ascii_case("APPROVED")
    }

    /// The category, when it is one of the three `flow.toml` knows.
    pub fn template_category(&self) -> Option<TemplateCategory> {
        self.category.parse().ok()
    }

    /// The placeholders of the body; a template without a body has none.
    pub fn placeholders(&self) -> Result<Placeholders, PlaceholderProblem> {
        parse_placeholders(self.body.as_deref().unwrap_or(""))
    }
}

/// Meta's error object, from an API answer (`{"error": {...}}`) or from a
/// webhook's `statuses[].errors[]`; its fields are optional because Meta
/// leaves some out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaError {
    /// The error code, e.g. `131047`: what the kind depends on.
    pub code: Option<i64>,
    /// The deprecated Graph API subcode, e.g. `463` for an expired token.
    pub subcode: Option<i64>,
    /// The error type, e.g. `OAuthException`.
    pub error_type: Option<String>,
    /// The message, e.g. `(#131047) Re-engagement message` (or a webhook
    /// error's `title`).
    pub message: Option<String>,
    /// `error_data.details`: the most specific explanation.
    pub details: Option<String>,
    /// Meta's trace id of the request, for their support.
    pub fbtrace_id: Option<String>,
}

/// What a failed call was about: the names an [`ActionError`] mentions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorContext {
    /// The sender's name in `flow.toml`.
    pub sender: Option<String>,
    /// The recipient, as the flow gave it (E.164).
    pub recipient: Option<String>,
    /// The template's name.
    pub template: Option<String>,
}

/// The kind a Meta error code stands for, with its explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OutsideWindow,
    TemplateNotFound,
    TemplateParams,
    InvalidRequest,
    InvalidPhone,
    Undeliverable,
    SenderOffline,
    RateLimited(u64),
    QualityLimited,
    Unauthorized,
    Transient,
}

/// The mapping table of the module documentation: codes, kind, plain words.
/// Codes 200 to 299 (API permissions) are looked up as 200.
const CODE_TABLE: &[(&[i64], Kind, &str)] = &[
    (
        &[131047],
        Kind::OutsideWindow,
        "more than 24 hours have passed since the customer last wrote; \
         only a template can reach them now",
    ),
    (
        &[132001],
        Kind::TemplateNotFound,
        "WhatsApp has no such template in this language",
    ),
    (
        &[132015],
        Kind::TemplateNotFound,
        "the template is paused for low quality",
    ),
    (
        &[132016],
        Kind::TemplateNotFound,
        "the template is disabled for low quality",
    ),
    (
        &[132000],
        Kind::TemplateParams,
        "the number of variables does not match the template's placeholders",
    ),
    (
        &[132005],
        Kind::TemplateParams,
        "the text with the variables filled in is too long",
    ),
    (
        &[132007],
        Kind::TemplateParams,
        "a variable breaks WhatsApp's format policy for templates",
    ),
    (
        &[132012],
        Kind::TemplateParams,
        "a variable's format does not match the template",
    ),
    (
        &[131008],
        Kind::InvalidRequest,
        "a required parameter is missing",
    ),
    (
        &[131009],
        Kind::InvalidRequest,
        "a parameter value is not valid",
    ),
    (
        &[100],
        Kind::InvalidRequest,
        "the request has an invalid or unsupported parameter",
    ),
    (
        &[131051],
        Kind::InvalidRequest,
        "WhatsApp does not support this message type",
    ),
    (
        &[131030],
        Kind::InvalidPhone,
        "the recipient is not in the allowed list of this test number \
         (add it in the app dashboard)",
    ),
    (
        &[131021],
        Kind::InvalidPhone,
        "the recipient is the sender's own number",
    ),
    (
        &[131026],
        Kind::Undeliverable,
        "WhatsApp cannot deliver to this number \
         (not on WhatsApp, terms not accepted, or an outdated app)",
    ),
    (
        &[131049],
        Kind::Undeliverable,
        "WhatsApp held back this marketing message to keep the recipient's \
         experience good; try much later",
    ),
    (
        &[131050],
        Kind::Undeliverable,
        "the recipient stopped marketing messages from this business",
    ),
    (
        &[130472],
        Kind::Undeliverable,
        "the recipient is part of a WhatsApp marketing experiment",
    ),
    (
        &[133010],
        Kind::SenderOffline,
        "the business phone number is not registered with the Cloud API",
    ),
    (
        &[131045],
        Kind::SenderOffline,
        "the business phone number is not registered (certificate mismatch)",
    ),
    (
        &[131031],
        Kind::SenderOffline,
        "the WhatsApp Business Account is locked",
    ),
    (
        &[368],
        Kind::SenderOffline,
        "the account is temporarily blocked for policy violations",
    ),
    (
        &[131042],
        Kind::SenderOffline,
        "the WhatsApp Business Account has a payment problem",
    ),
    (
        &[131037],
        Kind::SenderOffline,
        "the sender's display name must be approved before it can send",
    ),
    (
        &[33],
        Kind::SenderOffline,
        "the business phone number does not exist or was deleted",
    ),
    (
        &[130429],
        Kind::RateLimited(THROUGHPUT_WAIT_MS),
        "the sender's throughput limit (messages per second) was reached",
    ),
    (
        &[131056],
        Kind::RateLimited(PAIR_RATE_WAIT_MS),
        "too many messages to this recipient in a short time (pair rate limit)",
    ),
    (
        &[4],
        Kind::RateLimited(ACCOUNT_LIMIT_WAIT_MS),
        "the app's API call limit was reached",
    ),
    (
        &[17, 32, 613],
        Kind::RateLimited(ACCOUNT_LIMIT_WAIT_MS),
        "the API call limit was reached",
    ),
    (
        &[80007],
        Kind::RateLimited(ACCOUNT_LIMIT_WAIT_MS),
        "the WhatsApp Business Account's rate limit was reached",
    ),
    (
        &[131048],
        Kind::QualityLimited,
        "WhatsApp restricts this number because too many of its messages were \
         blocked or reported as spam; pause campaigns",
    ),
    (
        &[190],
        Kind::Unauthorized,
        "the access token is expired or invalid",
    ),
    (
        &[0],
        Kind::Unauthorized,
        "the access token could not be authenticated",
    ),
    (
        &[3, 10, 131005, 200],
        Kind::Unauthorized,
        "the access token lacks the permission for this call",
    ),
    (
        &[131000],
        Kind::Transient,
        "something went wrong at WhatsApp",
    ),
    (
        &[1],
        Kind::Transient,
        "WhatsApp reported an unknown error, possibly on its side",
    ),
    (
        &[2, 131016, 133004],
        Kind::Transient,
        "WhatsApp is temporarily unavailable or overloaded",
    ),
    (
        &[131057],
        Kind::Transient,
        "the WhatsApp Business Account is in maintenance mode",
    ),
];

/// The kind and plain words for a Meta code in [`CODE_TABLE`].
fn classify_code(code: i64) -> Option<(Kind, &'static str)> {
    let code = if (200..=299).contains(&code) {
        200
    } else {
        code
    };
    CODE_TABLE
        .iter()
        .find(|(codes, _, _)| codes.contains(&code))
        .map(|&(_, kind, plain)| (kind, plain))
}

/// The kind for codes not in the table, by HTTP status; a webhook's error
/// (no status) about a message that was not delivered is `Undeliverable`.
fn classify_status(status: Option<u16>) -> (Kind, &'static str) {
    match status {
        Some(401) => (Kind::Unauthorized, "WhatsApp refused the access token"),
        Some(403) => (
            Kind::Unauthorized,
            "the access token may not make this call",
        ),
        Some(429) => (
            Kind::RateLimited(ACCOUNT_LIMIT_WAIT_MS),
            "WhatsApp asks to slow down",
        ),
        Some(408) => (Kind::Transient, "WhatsApp timed out answering"),
        Some(s) if s >= 500 => (Kind::Transient, "WhatsApp had a server error"),
        Some(_) => (Kind::InvalidRequest, "WhatsApp rejected the request"),
        None => (
            Kind::Undeliverable,
            "WhatsApp could not deliver the message",
        ),
    }
}

impl MetaError {
    /// Reads Meta's error object from an answer (`{"error": {...}}`) or a
    /// webhook error (`{"code": ..., "title": ..., "error_data": {...}}`).
    ///
    /// ```
    /// use flowc::providers::cloud_api::MetaError;
    ///
    /// let body = serde_json::json!({"error": {"message": "(#131047) Re-engagement message",
    ///     "type": "OAuthException", "code": 131047, "fbtrace_id": "AbCdEf123"}});
    /// let error = MetaError::from_json(&body).unwrap();
    /// assert_eq!(error.code, Some(131047));
    /// assert_eq!(error.fbtrace_id.as_deref(), Some("AbCdEf123"));
    /// ```
    pub fn from_json(value: &Json) -> Option<MetaError> {
        let object = match value.get("error") {
            Some(inner) if inner.is_object() => inner,
            Some(_) => return None,
            None if value.get("code").is_some() => value,
            None => return None,
        };
        let text = |key: &str| {
            object
                .get(key)
                .and_then(Json::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        };
        let number = |v: Option<&Json>| {
            v.and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        Some(MetaError {
            code: number(object.get("code")),
            subcode: number(object.get("error_subcode")),
            error_type: text("type"),
            message: text("message").or_else(|| text("title")),
            details: object
                .get("error_data")
                .and_then(|data| data.get("details"))
                .and_then(Json::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string),
            fbtrace_id: text("fbtrace_id"),
        })
    }

    /// The engine's error for this Meta error; the table is in the module
    /// documentation. `http_status` is `None` for webhook errors;
    /// `retry_after_ms` (from a `Retry-After` header) replaces the default
    /// wait of a rate limit.
    ///
    /// ```
    /// use flowc::providers::cloud_api::{ErrorContext, MetaError};
    ///
    /// let error = MetaError { code: Some(131056), ..MetaError::default() };
    /// let action = error.to_action_error(Some(400), None, &ErrorContext::default());
    /// assert_eq!(action.kind(), "RateLimited");
    /// assert_eq!(action.retry_after_ms(), Some(6000));
    /// ```
    pub fn to_action_error(
        &self,
        http_status: Option<u16>,
        retry_after_ms: Option<u64>,
        context: &ErrorContext,
    ) -> ActionError {
        let (mut kind, mut plain) = self
            .code
            .and_then(classify_code)
            .unwrap_or_else(|| classify_status(http_status));
        if matches!(self.code, Some(100) | Some(131009)) && self.is_about_recipient() {
            kind = Kind::InvalidPhone;
            plain = "WhatsApp does not accept the recipient's phone number";
        }
        let message = format!("{plain}; {}", self.describe(http_status));
        build_error(kind, message, retry_after_ms, context)
    }

    /// Whether Meta's text says the problem is the recipient's number.
    fn is_about_recipient(&self) -> bool {
        [&self.details, &self.message].iter().any(|text| {
            text.as_deref().is_some_and(|text| {
                let text = text.to_lowercase();
                text.contains("phone number")
                    || text.contains("recipient")
                    || text.contains("param to")
                    || text.contains("'to'")
                    || text.contains("\"to\"")
            })
        })
    }

    /// `HTTP 400, WhatsApp error 131047: <message>: <details> (fbtrace_id X)`.
    fn describe(&self, http_status: Option<u16>) -> String {
        let mut out = String::new();
        if let Some(status) = http_status {
            out.push_str(&format!("HTTP {status}, "));
        }
        match (self.code, self.subcode) {
            (Some(code), Some(sub)) => out.push_str(&format!("WhatsApp error {code}/{sub}")),
            (Some(code), None) => out.push_str(&format!("WhatsApp error {code}")),
            (None, _) => out.push_str("no WhatsApp error code"),
        }
        let texts: Vec<String> = [&self.message, &self.details]
            .into_iter()
            .flatten()
            .map(|t| quote(t))
            .collect();
        let texts = match texts.as_slice() {
            [a, b] if a == b => vec![a.clone()],
            _ => texts,
        };
        if !texts.is_empty() {
            out.push_str(": ");
            out.push_str(&texts.join(": "));
        }
        if let Some(trace) = &self.fbtrace_id {
            out.push_str(&format!(" (fbtrace_id {})", quote(trace)));
        }
        out
    }
}

/// Builds the variant for `kind`; kinds that need a name the context lacks
/// (a template error outside a template send) become `InvalidRequest`.
fn build_error(
    kind: Kind,
    message: String,
    retry_after_ms: Option<u64>,
    context: &ErrorContext,
) -> ActionError {
    match kind {
        Kind::OutsideWindow => match &context.recipient {
            Some(recipient) => ActionError::OutsideWindow {
                recipient: recipient.clone(),
            },
            None => ActionError::InvalidRequest { message },
        },
        Kind::TemplateNotFound => match &context.template {
            Some(template) => ActionError::TemplateNotFound {
                template: template.clone(),
                reason: message,
            },
            None => ActionError::InvalidRequest { message },
        },
        Kind::TemplateParams => match &context.template {
            Some(template) => ActionError::TemplateParams {
                template: template.clone(),
                reason: message,
            },
            None => ActionError::InvalidRequest { message },
        },
        Kind::InvalidPhone => match &context.recipient {
            Some(phone) => ActionError::InvalidPhone {
                phone: phone.clone(),
                reason: message,
            },
            None => ActionError::InvalidRequest { message },
        },
        Kind::InvalidRequest => ActionError::InvalidRequest { message },
        Kind::Undeliverable => ActionError::Undeliverable { message },
        Kind::SenderOffline => ActionError::SenderOffline {
            sender: context
                .sender
                .clone()
                .unwrap_or_else(|| "the WhatsApp Business Account".to_string()),
            reason: message,
        },
        Kind::RateLimited(default_ms) => ActionError::RateLimited {
            message,
            retry_after_ms: Some(retry_after_ms.unwrap_or(default_ms)),
        },
        Kind::QualityLimited => ActionError::QualityLimited { message },
        Kind::Unauthorized => ActionError::Unauthorized { message },
        Kind::Transient => ActionError::Transient { message },
    }
}

/// Meta's text, shortened and without control characters.
fn quote(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.chars().count() > MAX_QUOTED_CHARS {
        let cut: String = clean.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{cut}...")
    } else {
        clean.to_string()
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64()))
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER).as_millis() as u64)
}

/// `+4915112345678` as the API wants it: `4915112345678`. Anything but `+`
/// and 1 to 15 digits (not starting with 0) is refused before a request is
/// made, so a malformed number cannot reach a stranger.
fn wire_number(to: &str) -> Result<String, ActionError> {
    let digits = to.strip_prefix('+').unwrap_or(to);
    let reason = if digits.is_empty() {
        Some("the number is empty")
    } else if !digits.bytes().all(|b| b.is_ascii_digit()) {
        Some("only a leading + and digits are allowed")
    } else if digits.len() > 15 {
        Some("E.164 numbers have at most 15 digits")
    } else if digits.starts_with('0') {
        Some("the country code cannot start with 0")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ActionError::InvalidPhone {
            phone: to.to_string(),
            reason: reason.to_string(),
        }),
        None => Ok(digits.to_string()),
    }
}

/// Whether `id` can be a path segment: Meta's ids are digits; letters,
/// `_` and `-` are tolerated (test doubles), nothing that changes the path.
fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The `after` cursor in a `paging.next` URL.
fn cursor_in_url(next: &str) -> Option<String> {
    let url = Url::parse(next).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == "after")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// The JSON body of a template message.
fn template_body(to: &str, message: &TemplateMessage) -> Json {
    let parameters: Vec<Json> = match &message.parameters {
        TemplateParameters::Positional(values) => values
            .iter()
            .map(|value| json!({"type": "text", "text": value}))
            .collect(),
        TemplateParameters::Named(pairs) => pairs
            .iter()
            .map(|(name, value)| json!({"type": "text", "parameter_name": name, "text": value}))
            .collect(),
    };
    let mut template = json!({
        "name": message.template,
        "language": {"code": message.language},
    });
    if !parameters.is_empty() {
        template["components"] = json!([{"type": "body", "parameters": parameters}]);
    }
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": template,
    })
}

/// The JSON body of a free-text message.
fn text_body(to: &str, message: &TextMessage) -> Json {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": false, "body": message.body},
    })
}

/// Whether a call may be repeated without effect: reads may, sends may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Send,
    Read,
}

struct Inner {
    client: reqwest::Client,
    base_url: String,
    api_version: String,
    authorization: HeaderValue,
    token: Secret,
    business_account_id: Option<String>,
    timeout: Duration,
    status_cache: Duration,
    statuses: Mutex<HashMap<String, (Instant, SenderStatus)>>,
}

/// The WhatsApp Cloud API client. Cloning is cheap and clones share the
/// connection pool and the sender status cache.
#[derive(Clone)]
pub struct CloudApi {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CloudApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudApi")
            .field("base_url", &self.inner.base_url)
            .field("api_version", &self.inner.api_version)
            .field("access_token", &self.inner.token)
            .field("business_account_id", &self.inner.business_account_id)
            .field("timeout", &self.inner.timeout)
            .field("status_cache", &self.inner.status_cache)
            .finish_non_exhaustive()
    }
}

impl CloudApi {
    /// Checks the settings and builds the HTTP client (timeouts, user agent
    /// `flowc/<version>`, no redirects). Makes no request.
    pub fn new(settings: CloudApiSettings) -> Result<CloudApi, CloudApiError> {
        let base_url = settings.base_url.trim().trim_end_matches('/').to_string();
        let parsed = Url::parse(&base_url).map_err(|e| CloudApiError::InvalidBaseUrl {
            url: settings.base_url.clone(),
            reason: e.to_string(),
        })?;
        let problem = if !matches!(parsed.scheme(), "http" | "https") {
            Some("the scheme must be http or https")
        } else if parsed.host_str().is_none() {
            Some("it has no host")
        } else if parsed.query().is_some() || parsed.fragment().is_some() {
            Some("it must not have a query or a fragment")
        } else if !parsed.username().is_empty() || parsed.password().is_some() {
            Some("it must not contain credentials")
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(CloudApiError::InvalidBaseUrl {
                url: settings.base_url,
                reason: reason.to_string(),
            });
        }
        let version = settings.api_version.trim();
        let valid_version = version.len() > 1
            && version.starts_with('v')
            && version[1..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.');
        if !valid_version {
            return Err(CloudApiError::InvalidApiVersion(settings.api_version));
        }
        if let Some(id) = &settings.business_account_id {
            if !is_plain_id(id) {
                return Err(CloudApiError::InvalidBusinessAccountId(id.clone()));
            }
        }
        let token = settings.access_token.expose().trim();
        if token.is_empty() {
            return Err(CloudApiError::EmptyToken);
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| CloudApiError::InvalidToken)?;
        authorization.set_sensitive(true);
        if settings.timeout.is_zero() {
            return Err(CloudApiError::ZeroTimeout);
        }
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CloudApiError::Client(e.to_string()))?;
        Ok(CloudApi {
            inner: Arc::new(Inner {
                client,
                base_url,
                api_version: version.to_string(),
                authorization,
                token: Secret::new(token),
                business_account_id: settings.business_account_id,
                timeout: settings.timeout,
                status_cache: settings.status_cache,
                statuses: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Reads every template of the WhatsApp Business Account
    /// (`GET /{version}/{waba-id}/message_templates`, 100 per page), in
    /// Meta's order, whatever their status.
    ///
    /// Pages are followed while Meta's answer has `paging.next`, with the
    /// `paging.cursors.after` cursor (or the `after` of the `next` URL); the
    /// request is always built from the configured base URL, so the token is
    /// never sent to a host the answer names.
    ///
    /// Fails with `InvalidRequest` when no business account id is configured.
    pub async fn fetch_templates(&self) -> Result<Vec<ApprovedTemplate>, ActionError> {
        let Some(waba) = &self.inner.business_account_id else {
            return Err(ActionError::InvalidRequest {
                message: "reading templates needs the WhatsApp Business Account id \
                          (business_account_id in the [whatsapp] table of flow.toml)"
                    .to_string(),
            });
        };
        let url = format!(
            "{}/{}/{waba}/message_templates",
            self.inner.base_url, self.inner.api_version
        );
        let context = ErrorContext::default();
        let mut templates = Vec::new();
        let mut after: Option<String> = None;
        let mut seen = HashSet::new();
        for _ in 0..MAX_TEMPLATE_PAGES {
            let mut request = self
                .inner
                .client
                .get(&url)
                .query(&[("fields", TEMPLATE_FIELDS), ("limit", TEMPLATE_PAGE_SIZE)]);
            if let Some(cursor) = &after {
                request = request.query(&[("after", cursor.as_str())]);
            }
            let page = self.call(request, CallKind::Read, &context).await?;
            let Some(data) = page.get("data").and_then(Json::as_array) else {
                return Err(
                    self.malformed(CallKind::Read, "the template list has no \"data\" array")
                );
            };
            templates.extend(data.iter().filter_map(parse_template));
            let paging = page.get("paging");
            let next = paging
                .and_then(|p| p.get("next"))
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty());
            let Some(next) = next else {
                return Ok(templates);
            };
            let cursor = paging
                .and_then(|p| p.get("cursors"))
                .and_then(|c| c.get("after"))
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .or_else(|| cursor_in_url(next));
            let Some(cursor) = cursor else {
                return Err(self.malformed(
                    CallKind::Read,
                    "the template list says there is a next page but gives no cursor",
                ));
            };
            if !seen.insert(cursor.clone()) {
                return Err(
                    self.malformed(CallKind::Read, "the template list repeats a page cursor")
                );
            }
            after = Some(cursor);
        }
        Err(self.malformed(CallKind::Read, "the template list has more than 1000 pages"))
    }

    /// Forgets every cached sender status, e.g. after a webhook reported a
    /// change of a number's status or quality.
    pub fn clear_status_cache(&self) {
        self.statuses().clear();
    }

    fn statuses(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, SenderStatus)>> {
        self.inner
            .statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `{base}/{version}/{phone-number-id}`, after checking the id.
    fn phone_url(&self, sender: &SenderRef) -> Result<String, ActionError> {
        if !is_plain_id(&sender.phone_number_id) {
            return Err(ActionError::InvalidRequest {
                message: format!(
                    "the phone_number_id \"{}\" of sender `{}` is not a Meta id (digits)",
                    quote(&sender.phone_number_id),
                    sender.name
                ),
            });
        }
        Ok(format!(
            "{}/{}/{}",
            self.inner.base_url, self.inner.api_version, sender.phone_number_id
        ))
    }

    /// Sends a message body and reads the message id.
    async fn send(
        &self,
        sender: &SenderRef,
        body: Json,
        context: &ErrorContext,
    ) -> Result<SentMessage, ActionError> {
        let url = format!("{}/messages", self.phone_url(sender)?);
        let request = self.inner.client.post(url).json(&body);
        let answer = self.call(request, CallKind::Send, context).await?;
        let id = answer
            .get("messages")
            .and_then(|m| m.get(0))
            .and_then(|m| m.get("id"))
            .and_then(Json::as_str)
            .filter(|id| !id.is_empty());
        match id {
            Some(id) => Ok(SentMessage {
                message_id: id.to_string(),
            }),
            None => Err(self.malformed(
                CallKind::Send,
                "WhatsApp accepted the request but its answer has no message id",
            )),
        }
    }

    /// An answer that is not what the API documents.
    fn malformed(&self, kind: CallKind, what: &str) -> ActionError {
        match kind {
            CallKind::Send => ActionError::InvalidRequest {
                message: format!(
                    "{what}; the message may or may not have been sent, so it is not retried"
                ),
            },
            CallKind::Read => ActionError::Transient {
                message: what.to_string(),
            },
        }
    }

    /// Makes one request with the token and returns the JSON answer, or the
    /// mapped error. Every message is scrubbed of the token.
    async fn call(
        &self,
        request: RequestBuilder,
        kind: CallKind,
        context: &ErrorContext,
    ) -> Result<Json, ActionError> {
        self.call_inner(request, kind, context)
            .await
            .map_err(|error| self.scrub(error))
    }

    async fn call_inner(
        &self,
        request: RequestBuilder,
        kind: CallKind,
        context: &ErrorContext,
    ) -> Result<Json, ActionError> {
        let mut response = request
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(&e, "sending the request"))?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(ActionError::Transient {
                            message: format!(
                                "WhatsApp's answer (HTTP {}) is larger than {} MB",
                                status.as_u16(),
                                MAX_BODY_BYTES / (1024 * 1024)
                            ),
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(&e, "reading the answer")),
            }
        }
        let body: Option<Json> = serde_json::from_slice(&bytes).ok();
        let meta = body.as_ref().and_then(MetaError::from_json);
        if status.is_success() {
            if let Some(meta) = meta {
                return Err(meta.to_action_error(Some(status.as_u16()), retry_after, context));
            }
            return match body {
                Some(json) if json.is_object() => Ok(json),
                _ => Err(self.malformed(
                    kind,
                    &format!(
                        "WhatsApp answered HTTP {} without a JSON object",
                        status.as_u16()
                    ),
                )),
            };
        }
        let meta = meta.unwrap_or_else(|| MetaError {
            message: non_json_summary(status, &bytes),
            ..MetaError::default()
        });
        Err(meta.to_action_error(Some(status.as_u16()), retry_after, context))
    }

    /// A transport failure: timeout or connection trouble.
    fn transport_error(&self, error: &reqwest::Error, doing: &str) -> ActionError {
        if error.is_timeout() {
            return ActionError::Timeout {
                after_ms: self.inner.timeout.as_millis().min(u128::from(u64::MAX)) as u64,
            };
        }
        // The chain's innermost causes say what happened ("connection
        // refused"); reqwest's own text names the URL, never a header.
        let mut causes = vec![error.to_string()];
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !causes.iter().any(|c| c.contains(&text)) {
                causes.push(text);
            }
            source = cause.source();
        }
        let what = if error.is_connect() {
            "could not connect to WhatsApp"
        } else {
            "the connection to WhatsApp failed"
        };
        ActionError::Transient {
            message: format!("{what} while {doing}: {}", causes.join(": ")),
        }
    }

    /// Replaces the token wherever it might appear in an error.
    fn scrub(&self, error: ActionError) -> ActionError {
        let token = self.inner.token.expose();
        if token.len() < 4 {
            return error;
        }
        let clean = |s: String| {
            if s.contains(token) {
                s.replace(token, "***")
            } else {
                s
            }
        };
        match error {
            ActionError::TemplateNotFound { template, reason } => ActionError::TemplateNotFound {
                template,
                reason: clean(reason),
            },
            ActionError::TemplateParams { template, reason } => ActionError::TemplateParams {
                template,
                reason: clean(reason),
            },
            ActionError::SenderOffline { sender, reason } => ActionError::SenderOffline {
                sender,
                reason: clean(reason),
            },
            ActionError::InvalidPhone { phone, reason } => ActionError::InvalidPhone {
                phone,
                reason: clean(reason),
            },
            ActionError::RateLimited {
                message,
                retry_after_ms,
            } => ActionError::RateLimited {
                message: clean(message),
                retry_after_ms,
            },
            ActionError::QualityLimited { message } => ActionError::QualityLimited {
                message: clean(message),
            },
            ActionError::Undeliverable { message } => ActionError::Undeliverable {
                message: clean(message),
            },
            ActionError::InvalidRequest { message } => ActionError::InvalidRequest {
                message: clean(message),
            },
            ActionError::Unauthorized { message } => ActionError::Unauthorized {
                message: clean(message),
            },
            ActionError::Transient { message } => ActionError::Transient {
                message: clean(message),
            },
            other => other,
        }
    }
}

/// A short description of an error answer that is not Meta's JSON (a proxy's
/// HTML page, an empty body).
fn non_json_summary(status: StatusCode, bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().map(str::to_string);
    }
    let reason = status.canonical_reason().unwrap_or("error");
    Some(format!("{reason}; the answer is not JSON: {}", quote(text)))
}

/// One entry of `data[]` of the template list; entries without a name are
/// skipped.
fn parse_template(entry: &Json) -> Option<ApprovedTemplate> {
    let text = |key: &str| entry.get(key).and_then(Json::as_str).map(str::to_string);
    let name = text("name").filter(|n| !n.is_empty())?;
    let body = entry
        .get("components")
        .and_then(Json::as_array)
        .and_then(|components| {
            components.iter().find(|c| {
                c.get("type")
                    .and_then(Json::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("BODY"))
            })
        })
        .and_then(|c| c.get("text"))
        .and_then(Json::as_str)
        .map(str::to_string);
    Some(ApprovedTemplate {
        name,
        language: text("language").unwrap_or_default(),
        status: text("status").unwrap_or_default().to_uppercase(),
        category: text("category").unwrap_or_default().to_lowercase(),
        body,
        parameter_format: text("parameter_format").map(|f| f.to_uppercase()),
    })
}

/// A phone number object as a [`SenderStatus`].
fn parse_sender_status(answer: &Json) -> SenderStatus {
    let text = |key: &str| {
        answer
            .get(key)
            .and_then(Json::as_str)
            .map(|s| s.trim().to_uppercase())
            .filter(|s| !s.is_empty())
    };
    let status = text("status");
    let online = status
        .as_deref()
        .is_some_and(|s| ONLINE_STATUSES.contains(&s));
    SenderStatus {
        online,
        quality: text("quality_rating").unwrap_or_else(|| "UNKNOWN".to_string()),
        detail: status.unwrap_or_else(|| "UNKNOWN (WhatsApp reported no status)".to_string()),
    }
}

#[async_trait]
impl WhatsApp for CloudApi {
    /// `POST /{version}/{phone-number-id}/messages` with `"type": "template"`:
    /// positional parameters as `{"type": "text", "text": ...}` in order,
    /// named ones with `"parameter_name"`, and no `components` when there
    /// are none.
    async fn send_template(&self, message: &TemplateMessage) -> Result<SentMessage, ActionError> {
        let to = wire_number(&message.to)?;
        let context = ErrorContext {
            sender: Some(message.sender.name.clone()),
            recipient: Some(message.to.clone()),
            template: Some(message.template.clone()),
        };
        self.send(&message.sender, template_body(&to, message), &context)
            .await
    }

    /// `POST /{version}/{phone-number-id}/messages` with `"type": "text"`
    /// and link previews off.
    async fn send_text(&self, message: &TextMessage) -> Result<SentMessage, ActionError> {
        let to = wire_number(&message.to)?;
        let context = ErrorContext {
            sender: Some(message.sender.name.clone()),
            recipient: Some(message.to.clone()),
            template: None,
        };
        self.send(&message.sender, text_body(&to, message), &context)
            .await
    }

    /// `GET /{version}/{phone-number-id}?fields=...`: online when the status
    /// is `CONNECTED`, `FLAGGED` or `RATE_LIMITED` (those still send);
    /// offline for every other status (`PENDING`, `DISCONNECTED`, `OFFLINE`,
    /// `RESTRICTED`, `BANNED`, `DELETED`, `MIGRATED`, `UNVERIFIED`, ...) and
    /// when Meta reports none. The quality is `quality_rating` (`GREEN`,
    /// `YELLOW`, `RED`, or `UNKNOWN`). Answers are reused for
    /// [`CloudApiSettings::status_cache`]; errors are not.
    async fn sender_status(&self, sender: &SenderRef) -> Result<SenderStatus, ActionError> {
        let cache = self.inner.status_cache;
        if !cache.is_zero() {
            if let Some((at, status)) = self.statuses().get(&sender.phone_number_id) {
                if at.elapsed() < cache {
                    return Ok(status.clone());
                }
            }
        }
        let request = self
            .inner
            .client
            .get(self.phone_url(sender)?)
            .query(&[("fields", SENDER_FIELDS)]);
        let context = ErrorContext {
            sender: Some(sender.name.clone()),
            ..ErrorContext::default()
        };
        let answer = self.call(request, CallKind::Read, &context).await?;
        let status = parse_sender_status(&answer);
        if !cache.is_zero() {
            self.statuses().insert(
                sender.phone_number_id.clone(),
                (Instant::now(), status.clone()),
            );
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> ErrorContext {
        ErrorContext {
            sender: Some("berlin-office".into()),
            recipient: Some("+4915112345678".into()),
            template: Some("appointment_confirmed".into()),
        }
    }

    fn error(code: i64) -> MetaError {
        MetaError {
            code: Some(code),
            message: Some(format!("(#{code}) Something")),
            fbtrace_id: Some("AbCdEf123".into()),
            ..MetaError::default()
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        let cases: &[(i64, &str)] = &[
            (131047, "OutsideWindow"),
            (132001, "TemplateNotFound"),
            (132015, "TemplateNotFound"),
            (132016, "TemplateNotFound"),
            (132000, "TemplateParams"),
            (132005, "TemplateParams"),
            (132007, "TemplateParams"),
            (132012, "TemplateParams"),
            (131008, "InvalidRequest"),
            (131009, "InvalidRequest"),
            (100, "InvalidRequest"),
            (131026, "Undeliverable"),
            (131030, "InvalidPhone"),
            (131021, "InvalidPhone"),
            (133010, "SenderOffline"),
            (131031, "SenderOffline"),
            (130429, "RateLimited"),
            (131056, "RateLimited"),
            (4, "RateLimited"),
            (80007, "RateLimited"),
            (131048, "QualityLimited"),
            (190, "Unauthorized"),
            (131000, "Transient"),
            (1, "Transient"),
            (2, "Transient"),
        ];
        for (code, kind) in cases {
            let e = error(*code).to_action_error(Some(400), None, &context());
            assert_eq!(e.kind(), *kind, "code {code}: {e}");
        }
    }

    #[test]
    fn unknown_codes_follow_the_http_status() {
        let kind = |status| error(999_999).to_action_error(status, None, &context());
        assert_eq!(kind(Some(401)).kind(), "Unauthorized");
        assert_eq!(kind(Some(429)).kind(), "RateLimited");
        assert_eq!(kind(Some(429)).retry_after_ms(), Some(60_000));
        assert_eq!(kind(Some(503)).kind(), "Transient");
        assert_eq!(kind(Some(400)).kind(), "InvalidRequest");
        assert_eq!(kind(None).kind(), "Undeliverable");
    }

    #[test]
    fn rate_limits_have_default_waits_and_honour_retry_after() {
        let wait = |code, header| {
            error(code)
                .to_action_error(Some(400), header, &context())
                .retry_after_ms()
        };
        assert_eq!(wait(130429, None), Some(1_000));
        assert_eq!(wait(131056, None), Some(6_000));
        assert_eq!(wait(4, None), Some(60_000));
        assert_eq!(wait(80007, None), Some(60_000));
        assert_eq!(wait(131056, Some(9_000)), Some(9_000));
    }

    #[test]
    fn parameter_errors_about_the_number_are_invalid_phone() {
        let mut e = error(100);
        e.details = Some("Invalid parameter: the recipient phone number is not valid".into());
        let mapped = e.to_action_error(Some(400), None, &context());
        assert_eq!(mapped.kind(), "InvalidPhone");
        // Without a recipient there is nothing to blame: InvalidRequest.
        let mapped = e.to_action_error(Some(400), None, &ErrorContext::default());
        assert_eq!(mapped.kind(), "InvalidRequest");
    }

    #[test]
    fn messages_name_code_and_trace() {
        let mut e = error(131056);
        e.details = Some("Too many messages to 4915112345678".into());
        let text = e.to_action_error(Some(400), None, &context()).to_string();
        assert!(text.contains("pair rate limit"), "{text}");
        assert!(text.contains("WhatsApp error 131056"), "{text}");
        assert!(text.contains("fbtrace_id AbCdEf123"), "{text}");
        assert!(text.contains("Too many messages"), "{text}");
    }

    #[test]
    fn template_errors_outside_a_template_send_are_invalid_requests() {
        let e = error(132001).to_action_error(Some(404), None, &ErrorContext::default());
        assert_eq!(e.kind(), "InvalidRequest");
    }

    #[test]
    fn meta_error_reads_answers_and_webhook_errors() {
        let answer = json!({"error": {"message": "m", "type": "OAuthException", "code": 190,
            "error_subcode": 463, "error_data": {"details": "d"}, "fbtrace_id": "t"}});
        let e = MetaError::from_json(&answer).unwrap();
        assert_eq!(
            (e.code, e.subcode, e.details.as_deref()),
            (Some(190), Some(463), Some("d"))
        );
        let webhook = json!({"code": 131047, "title": "Re-engagement message",
            "error_data": {"details": "more than 24 hours"}});
        let e = MetaError::from_json(&webhook).unwrap();
        assert_eq!(e.code, Some(131047));
        assert_eq!(e.message.as_deref(), Some("Re-engagement message"));
        assert_eq!(MetaError::from_json(&json!({"data": []})), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&headers), Some(7_000));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1.5"));
        assert_eq!(parse_retry_after(&headers), Some(1_500));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(parse_retry_after(&headers), Some(0));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = parse_retry_after(&headers).unwrap();
        assert!((115_000..=120_000).contains(&wait), "{wait}");
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999999"));
        assert_eq!(parse_retry_after(&headers), Some(24 * 60 * 60 * 1000));
    }

    #[test]
    fn numbers_go_out_as_digits() {
        assert_eq!(wire_number("+4915112345678").unwrap(), "4915112345678");
        for bad in [
            "",
            "+",
            "+49 151 1234",
            "0151/12345678",
            "+0151",
            "+1234567890123456",
        ] {
            assert_eq!(
                wire_number(bad).unwrap_err().kind(),
                "InvalidPhone",
                "{bad}"
            );
        }
    }

    #[test]
    fn cursors_come_from_next_urls() {
        assert_eq!(
            cursor_in_url(
                "https://graph.facebook.com/v21.0/1/message_templates?limit=100&after=QVFI"
            ),
            Some("QVFI".to_string())
        );
        assert_eq!(cursor_in_url("https://graph.facebook.com/x?limit=1"), None);
        assert_eq!(cursor_in_url("not a url"), None);
    }

    #[test]
    fn template_bodies() {
        let message = TemplateMessage {
            sender: SenderRef {
                name: "berlin-office".into(),
                phone_number_id: "106540352242922".into(),
            },
            to: "+4915112345678".into(),
            recipient_name: None,
            template: "missed_you".into(),
            language: "en".into(),
            parameters: TemplateParameters::Positional(vec![]),
            header: None,
            buttons: Vec::new(),
            preview: None,
        };
        let body = template_body("4915112345678", &message);
        assert!(body["template"].get("components").is_none());
    }

    #[test]
    fn sender_status_mapping() {
        let status =
            parse_sender_status(&json!({"status": "CONNECTED", "quality_rating": "YELLOW"}));
        assert!(status.online);
        assert_eq!(status.quality, "YELLOW");
        let status = parse_sender_status(&json!({"status": "PENDING"}));
        assert!(!status.online);
        assert_eq!(status.quality, "UNKNOWN");
        assert_eq!(status.detail, "PENDING");
        assert!(!parse_sender_status(&json!({})).online);
    }

    #[test]
    fn settings_are_checked() {
        let token = Secret::new("EAAG-unit-test-token");
        let with = |f: &dyn Fn(&mut CloudApiSettings)| {
            let mut settings = CloudApiSettings::new(token.clone());
            f(&mut settings);
            CloudApi::new(settings)
        };
        assert!(with(&|_| {}).is_ok());
        assert!(matches!(
            with(&|s| s.base_url = "ftp://example.com".into()),
            Err(CloudApiError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            with(&|s| s.base_url = "https://graph.facebook.com?x=1".into()),
            Err(CloudApiError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            with(&|s| s.api_version = "21".into()),
            Err(CloudApiError::InvalidApiVersion(_))
        ));
        assert!(matches!(
            with(&|s| s.access_token = Secret::new("  ")),
            Err(CloudApiError::EmptyToken)
        ));
        assert!(matches!(
            with(&|s| s.access_token = Secret::new("EAAG\nsecret")),
            Err(CloudApiError::InvalidToken)
        ));
        assert!(matches!(
            with(&|s| s.timeout = Duration::ZERO),
            Err(CloudApiError::ZeroTimeout)
        ));
        assert!(matches!(
            with(&|s| s.business_account_id = Some("../1".into())),
            Err(CloudApiError::InvalidBusinessAccountId(_))
        ));
        let api = with(&|s| s.base_url = "http://127.0.0.1:9/".into()).unwrap();
        assert_eq!(api.inner.base_url, "http://127.0.0.1:9");
        let debug = format!("{api:?} {:?}", CloudApiSettings::new(token.clone()));
        assert!(!debug.contains("EAAG-unit-test-token"), "{debug}");
    }

    #[test]
    fn approved_template_helpers() {
        let template = ApprovedTemplate {
            name: "welcome".into(),
            language: "en".into(),
            status: "APPROVED".into(),
            category: "utility".into(),
            body: Some("Hi {{customer_name}}".into()),
            parameter_format: Some("NAMED".into()),
        };
        assert!(template.is_approved());
        assert_eq!(
            template.template_category(),
            Some(TemplateCategory::Utility)
        );
        assert_eq!(
            template.placeholders(),
            Ok(Placeholders::Named(vec!["customer_name".into()]))
        );
    }
}
