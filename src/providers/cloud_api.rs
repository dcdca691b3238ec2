//! The WhatsApp Cloud API provider: sends template, free-text, interactive
//! (reply buttons, lists) and media messages through Meta's Graph API,
//! uploads and downloads media, marks messages as read, reads whether a
//! sender is online, and reads the template catalog of a WhatsApp Business
//! Account.
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
//! | [`WhatsApp::send_template`] | the same, `"type": "template"` with the header, body and button parameters |
//! | [`WhatsApp::send_interactive`] | the same, `"type": "interactive"`: reply buttons or a list |
//! | [`WhatsApp::send_media`] | the same, `"type": "image"` (`document`, `audio`, `video`, `sticker`) by link or media id |
//! | [`WhatsApp::mark_read`] | the same path, `"status": "read"` (and the typing indicator) |
//! | [`WhatsApp::upload_media`] | `POST {base}/{version}/{phone-number-id}/media`, `multipart/form-data` |
//! | [`WhatsApp::media_info`] | `GET {base}/{version}/{media-id}?phone_number_id=...` |
//! | [`WhatsApp::download_media`] | `GET` of the media's URL (Meta's hosts only), size-limited while it streams |
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
//! | 131052, 131053 | media download / upload error (link not public, type or size refused) | `MediaError` for media calls, else `InvalidRequest` |
//! | 100 with subcode 33 in a media lookup | no media with this id (expired) | `MediaError` |
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
//! A media download answered with 404 or 410 (the link expired, the media
//! is gone) is `MediaError`, as is a file larger than the caller's limit:
//! refused before reading when its announced size is over it, stopped as
//! soon as more arrived otherwise.
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
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{
    Choice, Choices, InteractiveMessage, MediaInfo, MediaMessage, MediaSource, MediaUpload,
    ReadReceipt, SenderRef, SenderStatus, SentMessage, TemplateButton, TemplateButtonParameter,
    TemplateHeader, TemplateMessage, TemplateParameters, TextMessage, WhatsApp,
};
use crate::config::{parse_placeholders, PlaceholderProblem, Placeholders, TemplateCategory};
use crate::media::{human_size, MediaKind};
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
/// The slowest transfer rate, in bytes per second, that uploads and
/// downloads are given time for beyond the configured timeout.
const MIN_TRANSFER_RATE: u64 = 256 * 1024;
/// The hosts (and their subdomains) media download links may point to:
/// Meta's (`lookaside.fbsbx.com` today). The token goes nowhere else.
const MEDIA_HOSTS: &[&str] = &[
    "fbsbx.com",
    "facebook.com",
    "fbcdn.net",
    "whatsapp.net",
    "whatsapp.com",
];
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
    /// The `HEADER` component, if the template has one.
    pub header: Option<ApprovedHeader>,
    /// The buttons of the `BUTTONS` component, in order.
    pub buttons: Vec<ApprovedButton>,
}

/// A template's `HEADER` component, as Meta lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedHeader {
    /// The format in lower case: `text`, `image`, `document`, `video` or
    /// `location`.
    pub format: String,
    /// A text header's text, with its placeholder.
    pub text: Option<String>,
}

/// One button of a template's `BUTTONS` component, as Meta lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedButton {
    /// The type in lower case: `quick_reply`, `url`, `phone_number`,
    /// `copy_code`, `otp`, `flow`, ...
    pub kind: String,
    /// What the button says (may be empty for `otp` buttons).
    pub text: String,
    /// A URL button's link, with `{{1}}` at its end for a dynamic one.
    pub url: Option<String>,
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
    /// Whether the call is about a media file (a media send, an upload, a
    /// lookup or a download): media errors are `MediaError` then, and
    /// `InvalidRequest` for calls whose actions cannot raise `MediaError`.
    pub media: bool,
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
    Media,
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
        &[131052],
        Kind::Media,
        "WhatsApp could not download the media file",
    ),
    (
        &[131053],
        Kind::Media,
        "WhatsApp could not take the media file: its link is not publicly reachable, \
         or its type or size is not one WhatsApp accepts",
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
        // Graph API's "object does not exist" (100/33) about a media id.
        if context.media && self.code == Some(100) && self.subcode == Some(33) {
            kind = Kind::Media;
            plain = "WhatsApp has no media with this id (ids of received media expire \
                     after 7 days, of uploaded media after 30 days)";
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
/// (a template error outside a template send) and media errors of calls
/// that are not about media become `InvalidRequest`.
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
        Kind::Media if context.media => ActionError::Media { message },
        Kind::Media => ActionError::InvalidRequest { message },
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

/// The JSON body of every message: the envelope, with the content under a
/// key named like its type (`"type": "image", "image": {...}`).
fn message_body(to: &str, kind: &str, content: Json) -> Json {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: content,
    })
}

/// The JSON body of a free-text message.
fn text_body(to: &str, message: &TextMessage) -> Json {
    message_body(
        to,
        "text",
        json!({"preview_url": false, "body": message.body}),
    )
}

/// The JSON body of a template message: the `header`, `body` and `button`
/// components in that order, each only when it has parameters, and no
/// `components` at all when none has.
fn template_body(to: &str, message: &TemplateMessage) -> Result<Json, ActionError> {
    let mut components = Vec::new();
    if let Some(header) = &message.header {
        components.push(json!({"type": "header", "parameters": [header_parameter(header)?]}));
    }
    let parameters: Vec<Json> = match &message.parameters {
        TemplateParameters::Positional(values) => values
            .iter()
            .map(|value| text_parameter(None, value))
            .collect(),
        TemplateParameters::Named(pairs) => pairs
            .iter()
            .map(|(name, value)| text_parameter(Some(name), value))
            .collect(),
    };
    if !parameters.is_empty() {
        components.push(json!({"type": "body", "parameters": parameters}));
    }
    components.extend(message.buttons.iter().map(button_component));
    let mut template = json!({
        "name": message.template,
        "language": {"code": message.language},
    });
    if !components.is_empty() {
        template["components"] = Json::Array(components);
    }
    Ok(message_body(to, "template", template))
}

/// A text parameter of a template: `{"type": "text", "text": ...}`, with
/// `"parameter_name"` for a named placeholder.
fn text_parameter(name: Option<&str>, value: &str) -> Json {
    match name {
        Some(name) => json!({"type": "text", "parameter_name": name, "text": value}),
        None => json!({"type": "text", "text": value}),
    }
}

/// The parameter of a template's header: a text parameter, or
/// `{"type": "image", "image": {"link": ...}}` (or `document`, `video`).
fn header_parameter(header: &TemplateHeader) -> Result<Json, ActionError> {
    match header {
        TemplateHeader::Text { name, text } => Ok(text_parameter(name.as_deref(), text)),
        TemplateHeader::Media {
            kind,
            source,
            filename,
        } => {
            if !matches!(
                kind,
                MediaKind::Image | MediaKind::Document | MediaKind::Video
            ) {
                return Err(ActionError::InvalidRequest {
                    message: format!(
                        "a template header is an image, a document or a video, not {} {kind}",
                        if *kind == MediaKind::Audio { "an" } else { "a" }
                    ),
                });
            }
            let mut object = media_object(source);
            if let (Some(filename), MediaKind::Document) = (filename, kind) {
                object["filename"] = Json::String(filename.clone());
            }
            let kind = kind.as_str();
            Ok(json!({"type": kind, kind: object}))
        }
    }
}

/// A template button's component: a quick reply's payload, a URL button's
/// suffix or a coupon code, with the button's position as a string.
fn button_component(button: &TemplateButton) -> Json {
    let (sub_type, parameter) = match &button.parameter {
        TemplateButtonParameter::Payload(payload) => (
            "quick_reply",
            json!({"type": "payload", "payload": payload}),
        ),
        TemplateButtonParameter::UrlSuffix(suffix) => {
            ("url", json!({"type": "text", "text": suffix}))
        }
        TemplateButtonParameter::CouponCode(code) => (
            "copy_code",
            json!({"type": "coupon_code", "coupon_code": code}),
        ),
    };
    json!({
        "type": "button",
        "sub_type": sub_type,
        "index": button.index.to_string(),
        "parameters": [parameter],
    })
}

/// Where a media file comes from: `{"link": ...}` or `{"id": ...}`.
fn media_object(source: &MediaSource) -> Json {
    match source {
        MediaSource::Link(link) => json!({"link": link}),
        MediaSource::Id(id) => json!({"id": id}),
    }
}

/// The JSON body of reply buttons or a list: `"type": "interactive"`,
/// optional keys left out when absent.
fn interactive_body(to: &str, message: &InteractiveMessage) -> Json {
    let (kind, action) = match &message.choices {
        Choices::Buttons(buttons) => {
            let buttons: Vec<Json> = buttons
                .iter()
                .map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}}))
                .collect();
            ("button", json!({"buttons": buttons}))
        }
        Choices::List { button, sections } => {
            let sections: Vec<Json> = sections
                .iter()
                .map(|section| {
                    let mut out = Map::new();
                    if let Some(title) = &section.title {
                        out.insert("title".into(), json!(title));
                    }
                    let rows: Vec<Json> = section.rows.iter().map(list_row).collect();
                    out.insert("rows".into(), Json::Array(rows));
                    Json::Object(out)
                })
                .collect();
            ("list", json!({"button": button, "sections": sections}))
        }
    };
    let mut interactive = Map::new();
    interactive.insert("type".into(), json!(kind));
    if let Some(header) = &message.header {
        interactive.insert("header".into(), json!({"type": "text", "text": header}));
    }
    interactive.insert("body".into(), json!({"text": message.body}));
    if let Some(footer) = &message.footer {
        interactive.insert("footer".into(), json!({"text": footer}));
    }
    interactive.insert("action".into(), action);
    message_body(to, "interactive", Json::Object(interactive))
}

/// A row of a list: `id`, `title`, and `description` when there is one.
fn list_row(row: &Choice) -> Json {
    let mut out = json!({"id": row.id, "title": row.title});
    if let Some(description) = &row.description {
        out["description"] = json!(description);
    }
    out
}

/// The JSON body of a media message: `{"link"|"id", "caption"?,
/// "filename"?}` under the kind. A caption or file name the kind does not
/// take is refused before any request.
fn media_body(to: &str, message: &MediaMessage) -> Result<Json, ActionError> {
    let kind = message.kind;
    let mut content = media_object(&message.source);
    if let Some(caption) = &message.caption {
        if !kind.takes_caption() {
            return Err(ActionError::InvalidRequest {
                message: format!("WhatsApp takes no caption with {kind} messages"),
            });
        }
        content["caption"] = json!(caption);
    }
    if let Some(filename) = &message.filename {
        if !kind.takes_filename() {
            return Err(ActionError::InvalidRequest {
                message: format!(
                    "only documents have a file name; WhatsApp takes none with {kind} messages"
                ),
            });
        }
        content["filename"] = json!(filename);
    }
    Ok(message_body(to, kind.as_str(), content))
}

/// The JSON body of a read receipt, with the typing indicator when asked.
fn read_receipt_body(receipt: &ReadReceipt) -> Json {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": receipt.message_id,
    });
    if receipt.typing {
        body["typing_indicator"] = json!({"type": "text"});
    }
    body
}

/// An upload's `multipart/form-data` body, as Meta's media endpoint takes
/// it: `messaging_product=whatsapp`, `type=<mime>` and the `file` part with
/// its name and type. Returns the `Content-Type` header and the body.
///
/// The boundary is made of the file's SHA-256, which the file cannot
/// contain; the file name is escaped as browsers do (`"`, CR and LF
/// percent-encoded).
fn multipart_body(upload: &MediaUpload) -> Result<(String, Vec<u8>), ActionError> {
    let mime = upload.mime_type.trim();
    if !is_mime_type(mime) {
        return Err(ActionError::Media {
            message: format!(
                "\"{}\" is not a mime type like \"image/jpeg\" or \"application/pdf\"",
                quote(mime)
            ),
        });
    }
    if upload.file_name.trim().is_empty() {
        return Err(ActionError::Media {
            message: "the file to upload has no name".to_string(),
        });
    }
    let file_name: String = upload
        .file_name
        .chars()
        .map(|c| match c {
            '"' => "%22".to_string(),
            '\r' => "%0D".to_string(),
            '\n' => "%0A".to_string(),
            c => c.to_string(),
        })
        .collect();
    let digest = hex::encode(Sha256::digest(&upload.bytes));
    let boundary = format!("flowc-{}", &digest[..40]);
    let mut body = Vec::with_capacity(upload.bytes.len() + 512);
    let mut field = |headers: String, value: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    };
    field(
        "Content-Disposition: form-data; name=\"messaging_product\"".to_string(),
        b"whatsapp",
    );
    field(
        "Content-Disposition: form-data; name=\"type\"".to_string(),
        mime.as_bytes(),
    );
    field(
        format!(
            "Content-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: {mime}"
        ),
        &upload.bytes,
    );
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((format!("multipart/form-data; boundary={boundary}"), body))
}

/// `type/subtype`, optionally with parameters, in the characters a header
/// value and a form field can carry without quoting.
fn is_mime_type(mime: &str) -> bool {
    let essence = mime.split(';').next().unwrap_or("").trim();
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let printable = mime.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"');
    matches!(essence.split_once('/'), Some((kind, sub)) if token(kind) && token(sub)) && printable
}

/// A media lookup's answer as [`MediaInfo`]; `file_size` comes as a string
/// or a number.
fn parse_media_info(answer: &Json, media_id: &str) -> Option<MediaInfo> {
    let text = |key: &str| {
        answer
            .get(key)
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let file_size = answer.get("file_size").and_then(|size| {
        size.as_u64()
            .or_else(|| size.as_str().and_then(|s| s.trim().parse().ok()))
    });
    Some(MediaInfo {
        id: text("id").unwrap_or_else(|| media_id.to_string()),
        url: text("url")?,
        mime_type: text("mime_type").unwrap_or_else(|| "application/octet-stream".to_string()),
        sha256: text("sha256"),
        file_size,
    })
}

/// Whether a call may be repeated without effect: sends of messages may
/// not (a customer could get a message twice); reads, uploads (an unused
/// upload expires) and read receipts may.
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
        self.call_within(request, kind, context, self.inner.timeout)
            .await
    }

    /// [`CloudApi::call`] with another time limit (uploads of large files).
    async fn call_within(
        &self,
        request: RequestBuilder,
        kind: CallKind,
        context: &ErrorContext,
        timeout: Duration,
    ) -> Result<Json, ActionError> {
        self.call_inner(request, kind, context, timeout)
            .await
            .map_err(|error| self.scrub(error))
    }

    async fn call_inner(
        &self,
        request: RequestBuilder,
        kind: CallKind,
        context: &ErrorContext,
        timeout: Duration,
    ) -> Result<Json, ActionError> {
        let mut response = self.execute(request, timeout).await?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let bytes = self.read_answer(&mut response, timeout).await?;
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
        Err(error_answer(status, retry_after, &bytes, context))
    }

    /// Sends a request with the token and a time limit; the answer's head,
    /// or the transport error.
    async fn execute(
        &self,
        request: RequestBuilder,
        timeout: Duration,
    ) -> Result<Response, ActionError> {
        request
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, "sending the request", timeout))
    }

    /// Reads an API answer, at most [`MAX_BODY_BYTES`].
    async fn read_answer(
        &self,
        response: &mut Response,
        timeout: Duration,
    ) -> Result<Vec<u8>, ActionError> {
        let status = response.status().as_u16();
        self.read_body(response, MAX_BODY_BYTES as u64, timeout, || {
            ActionError::Transient {
                message: format!(
                    "WhatsApp's answer (HTTP {status}) is larger than {} MB",
                    MAX_BODY_BYTES / (1024 * 1024)
                ),
            }
        })
        .await
    }

    /// Reads a body as it arrives and stops with `too_large()` as soon as
    /// more than `limit` bytes came.
    async fn read_body(
        &self,
        response: &mut Response,
        limit: u64,
        timeout: Duration,
        too_large: impl Fn() -> ActionError,
    ) -> Result<Vec<u8>, ActionError> {
        let expected = response.content_length().unwrap_or(0).min(limit);
        let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(bytes),
                Err(e) => return Err(self.transport_error(&e, "reading the answer", timeout)),
            }
        }
    }

    /// The time limit of a transfer of `bytes`: the configured timeout plus
    /// one second per [`MIN_TRANSFER_RATE`] bytes.
    fn transfer_timeout(&self, bytes: u64) -> Duration {
        self.inner.timeout + Duration::from_secs(bytes / MIN_TRANSFER_RATE)
    }

    /// The media download link, checked before the token is sent to it:
    /// `https` on one of Meta's hosts ([`MEDIA_HOSTS`]), or the configured
    /// base URL's scheme, host and port (a proxy, a test server).
    fn download_url(&self, link: &str) -> Result<Url, ActionError> {
        let refuse = |why: &str| ActionError::Media {
            message: format!(
                "the download link WhatsApp gave ({}) {why}; the access token is not sent there",
                quote(link)
            ),
        };
        let url = Url::parse(link).map_err(|_| refuse("is not a URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("contains credentials"));
        }
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let on_meta = url.scheme() == "https"
            && MEDIA_HOSTS
                .iter()
                .any(|known| host == *known || host.ends_with(&format!(".{known}")));
        let base = Url::parse(&self.inner.base_url).ok();
        let on_base = base.is_some_and(|base| {
            base.scheme() == url.scheme()
                && base.host_str() == url.host_str()
                && base.port_or_known_default() == url.port_or_known_default()
        });
        if on_meta || on_base {
            Ok(url)
        } else {
            Err(refuse("is not on a WhatsApp host"))
        }
    }

    /// A transport failure: timeout or connection trouble.
    fn transport_error(
        &self,
        error: &reqwest::Error,
        doing: &str,
        timeout: Duration,
    ) -> ActionError {
        if error.is_timeout() {
            return ActionError::Timeout {
                after_ms: timeout.as_millis().min(u128::from(u64::MAX)) as u64,
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
            ActionError::Media { message } => ActionError::Media {
                message: clean(message),
            },
            other => other,
        }
    }
}

/// The error of an answer that is not a success: Meta's error object, or
/// for an answer without one (a proxy's page) the HTTP status.
fn error_answer(
    status: StatusCode,
    retry_after: Option<u64>,
    bytes: &[u8],
    context: &ErrorContext,
) -> ActionError {
    let meta = serde_json::from_slice::<Json>(bytes)
        .ok()
        .as_ref()
        .and_then(MetaError::from_json)
        .unwrap_or_else(|| MetaError {
            message: non_json_summary(status, bytes),
            ..MetaError::default()
        });
    meta.to_action_error(Some(status.as_u16()), retry_after, context)
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

/// `value[key]` as a string, when it is one.
fn text_of(value: &Json, key: &str) -> Option<String> {
    value.get(key).and_then(Json::as_str).map(str::to_string)
}

/// One entry of `data[]` of the template list; entries without a name are
/// skipped. Components of other types (`FOOTER`, ...) and buttons without a
/// type are left out.
fn parse_template(entry: &Json) -> Option<ApprovedTemplate> {
    let text = |key: &str| text_of(entry, key);
    let name = text("name").filter(|n| !n.is_empty())?;
    let components = entry
        .get("components")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let component = |kind: &str| {
        components.iter().find(|c| {
            c.get("type")
                .and_then(Json::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        })
    };
    let body = component("BODY").and_then(|c| text_of(c, "text"));
    let header = component("HEADER").and_then(|c| {
        Some(ApprovedHeader {
            format: text_of(c, "format")?.to_lowercase(),
            text: text_of(c, "text"),
        })
    });
    let buttons = component("BUTTONS")
        .and_then(|c| c.get("buttons"))
        .and_then(Json::as_array)
        .map(|buttons| {
            buttons
                .iter()
                .filter_map(|button| {
                    Some(ApprovedButton {
                        kind: text_of(button, "type")?.to_lowercase(),
                        text: text_of(button, "text").unwrap_or_default(),
                        url: text_of(button, "url"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ApprovedTemplate {
        name,
        language: text("language").unwrap_or_default(),
        status: text("status").unwrap_or_default().to_uppercase(),
        category: text("category").unwrap_or_default().to_lowercase(),
        body,
        parameter_format: text("parameter_format").map(|f| f.to_uppercase()),
        header,
        buttons,
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

/// What a send to `to` from `sender` is about, for its errors.
fn send_context(sender: &SenderRef, to: &str) -> ErrorContext {
    ErrorContext {
        sender: Some(sender.name.clone()),
        recipient: Some(to.to_string()),
        ..ErrorContext::default()
    }
}

/// What a media call of `sender` is about, for its errors.
fn media_context(sender: &SenderRef) -> ErrorContext {
    ErrorContext {
        sender: Some(sender.name.clone()),
        media: true,
        ..ErrorContext::default()
    }
}

/// Whether `data` hashes to `expected`: Meta reports SHA-256 as hex (media
/// lookups) or base64 (webhooks). An `expected` in neither form is not
/// checked.
fn sha256_matches(data: &[u8], expected: &str) -> bool {
    let digest = Sha256::digest(data);
    let expected = expected.trim();
    if let Ok(bytes) = hex::decode(expected) {
        if bytes.len() == digest.len() {
            return bytes.as_slice() == digest.as_slice();
        }
    }
    match decode_base64(expected) {
        Some(bytes) if bytes.len() == digest.len() => bytes.as_slice() == digest.as_slice(),
        _ => true,
    }
}

/// The bytes of base64 `text` (standard or URL-safe alphabet, padding
/// optional), or `None` when it is not base64; only for comparing Meta's
/// hashes, so no dependency for it.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[async_trait]
impl WhatsApp for CloudApi {
    /// `POST /{version}/{phone-number-id}/messages` with `"type": "template"`:
    /// the header's parameter (text, or an image, document or video by link
    /// or id), the body's parameters (positional as `{"type": "text",
    /// "text": ...}` in order, named with `"parameter_name"`), then one
    /// `button` component per quick-reply payload or URL suffix, with its
    /// `index`; no `components` when there are none.
    async fn send_template(&self, message: &TemplateMessage) -> Result<SentMessage, ActionError> {
        let to = wire_number(&message.to)?;
        let context = ErrorContext {
            template: Some(message.template.clone()),
            // A media header WhatsApp cannot fetch is a media error.
            media: matches!(message.header, Some(TemplateHeader::Media { .. })),
            ..send_context(&message.sender, &message.to)
        };
        self.send(&message.sender, template_body(&to, message)?, &context)
            .await
    }

    /// `POST /{version}/{phone-number-id}/messages` with `"type": "text"`
    /// and link previews off.
    async fn send_text(&self, message: &TextMessage) -> Result<SentMessage, ActionError> {
        let to = wire_number(&message.to)?;
        let context = send_context(&message.sender, &message.to);
        self.send(&message.sender, text_body(&to, message), &context)
            .await
    }

    /// `POST /{version}/{phone-number-id}/messages` with `"type":
    /// "interactive"`: reply buttons (`"type": "button"`, `action.buttons[]`
    /// of `{"type": "reply", "reply": {id, title}}`) or a list (`"type":
    /// "list"`, `action.button` and `action.sections[]`), with the optional
    /// text `header` and `footer` only when given.
    async fn send_interactive(
        &self,
        message: &InteractiveMessage,
    ) -> Result<SentMessage, ActionError> {
        let to = wire_number(&message.to)?;
        let context = send_context(&message.sender, &message.to);
        self.send(&message.sender, interactive_body(&to, message), &context)
            .await
    }

    /// `POST /{version}/{phone-number-id}/messages` with `"type": KIND` and
    /// `KIND: {"link"|"id", "caption"?, "filename"?}`.
    async fn send_media(&self, message: &MediaMessage) -> Result<SentMessage, ActionError> {
        let to = wire_number(&message.to)?;
        let context = ErrorContext {
            media: true,
            ..send_context(&message.sender, &message.to)
        };
        self.send(&message.sender, media_body(&to, message)?, &context)
            .await
    }

    /// `POST /{version}/{phone-number-id}/media`, `multipart/form-data` with
    /// `messaging_product=whatsapp`, `type=<mime>` and the `file`; answers
    /// `{"id": ...}`. Large files get more time than the timeout (see
    /// [`MIN_TRANSFER_RATE`]).
    async fn upload_media(&self, upload: &MediaUpload) -> Result<String, ActionError> {
        let url = format!("{}/media", self.phone_url(&upload.sender)?);
        let (content_type, body) = multipart_body(upload)?;
        let timeout = self.transfer_timeout(body.len() as u64);
        let request = self
            .inner
            .client
            .post(url)
            .header(CONTENT_TYPE, content_type)
            .body(body);
        let context = media_context(&upload.sender);
        let answer = self
            .call_within(request, CallKind::Read, &context, timeout)
            .await?;
        answer
            .get("id")
            .and_then(Json::as_str)
            .filter(|id| !id.trim().is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                self.malformed(
                    CallKind::Read,
                    "WhatsApp accepted the upload but its answer has no media id",
                )
            })
    }

    /// `GET /{version}/{media-id}?phone_number_id=...`: the download URL
    /// (valid for minutes), mime type, SHA-256 and size. An id WhatsApp
    /// does not know (expired) is `MediaError`.
    async fn media_info(
        &self,
        sender: &SenderRef,
        media_id: &str,
    ) -> Result<MediaInfo, ActionError> {
        if !is_plain_id(media_id) {
            return Err(ActionError::Media {
                message: format!(
                    "\"{}\" is not a WhatsApp media id (digits)",
                    quote(media_id)
                ),
            });
        }
        // Checks the sender's phone number id too.
        self.phone_url(sender)?;
        let url = format!(
            "{}/{}/{media_id}",
            self.inner.base_url, self.inner.api_version
        );
        let request = self
            .inner
            .client
            .get(url)
            .query(&[("phone_number_id", sender.phone_number_id.as_str())]);
        let answer = self
            .call(request, CallKind::Read, &media_context(sender))
            .await?;
        parse_media_info(&answer, media_id).ok_or_else(|| {
            self.malformed(
                CallKind::Read,
                "WhatsApp's answer about the media has no download url",
            )
        })
    }

    /// `GET` of the media's URL with the token (only to Meta's hosts, see
    /// [`MEDIA_HOSTS`]). Refuses up front when `file_size` or the
    /// `Content-Length` is over `max_bytes`, and stops reading as soon as
    /// more than `max_bytes` arrived; checks the SHA-256 WhatsApp reported.
    /// A link that expired or media that is gone (404, 410) is `MediaError`.
    async fn download_media(
        &self,
        sender: &SenderRef,
        info: &MediaInfo,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ActionError> {
        let too_large = |size: Option<u64>| ActionError::Media {
            message: match size {
                Some(size) => format!(
                    "the file has {} and is larger than the limit of {} (max_bytes)",
                    human_size(size),
                    human_size(max_bytes)
                ),
                None => format!(
                    "the file is larger than the limit of {} (max_bytes); the download was stopped",
                    human_size(max_bytes)
                ),
            },
        };
        if let Some(size) = info.file_size.filter(|size| *size > max_bytes) {
            return Err(too_large(Some(size)));
        }
        let url = self.download_url(&info.url)?;
        let timeout = self.transfer_timeout(info.file_size.unwrap_or(max_bytes).min(max_bytes));
        let context = media_context(sender);
        let download = async {
            let mut response = self.execute(self.inner.client.get(url), timeout).await?;
            let status = response.status();
            if !status.is_success() {
                let retry_after = parse_retry_after(response.headers());
                let bytes = self.read_answer(&mut response, timeout).await?;
                if matches!(status.as_u16(), 404 | 410) {
                    return Err(ActionError::Media {
                        message: format!(
                            "WhatsApp no longer has the media {} or its download link expired \
                             (links last 5 minutes): look the media id up again; HTTP {}",
                            quote(&info.id),
                            status.as_u16()
                        ),
                    });
                }
                return Err(error_answer(status, retry_after, &bytes, &context));
            }
            let announced = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(length) = announced.filter(|length| *length > max_bytes) {
                return Err(too_large(Some(length)));
            }
            let bytes = self
                .read_body(&mut response, max_bytes, timeout, || too_large(None))
                .await?;
            if let Some(expected) = &info.sha256 {
                if !sha256_matches(&bytes, expected) {
                    return Err(ActionError::Media {
                        message: format!(
                            "the downloaded file ({}) does not match the SHA-256 WhatsApp \
                             reported; it was damaged on the way",
                            human_size(bytes.len() as u64)
                        ),
                    });
                }
            }
            Ok(bytes)
        };
        download.await.map_err(|error| self.scrub(error))
    }

    /// `POST /{version}/{phone-number-id}/messages` with `"status": "read"`
    /// and the message id, plus `"typing_indicator": {"type": "text"}` when
    /// asked.
    async fn mark_read(&self, receipt: &ReadReceipt) -> Result<(), ActionError> {
        let url = format!("{}/messages", self.phone_url(&receipt.sender)?);
        let request = self
            .inner
            .client
            .post(url)
            .json(&read_receipt_body(receipt));
        let context = ErrorContext {
            sender: Some(receipt.sender.name.clone()),
            ..ErrorContext::default()
        };
        let answer = self.call(request, CallKind::Read, &context).await?;
        if answer.get("success").and_then(Json::as_bool) == Some(false) {
            return Err(self.malformed(
                CallKind::Read,
                "WhatsApp answered that the message was not marked as read",
            ));
        }
        Ok(())
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
            media: false,
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
    fn media_codes_are_media_errors_only_in_media_calls() {
        let media = ErrorContext {
            media: true,
            ..context()
        };
        for code in [131052, 131053] {
            let e = error(code).to_action_error(Some(400), None, &media);
            assert_eq!(e.kind(), "MediaError", "{code}: {e}");
            assert!(e.to_string().contains(&format!("WhatsApp error {code}")));
            let e = error(code).to_action_error(Some(400), None, &context());
            assert_eq!(e.kind(), "InvalidRequest", "{code}: {e}");
        }
        let mut missing = error(100);
        missing.subcode = Some(33);
        let e = missing.to_action_error(Some(400), None, &media);
        assert_eq!(e.kind(), "MediaError");
        assert!(e.to_string().contains("no media with this id"), "{e}");
        let e = missing.to_action_error(Some(400), None, &context());
        assert_eq!(e.kind(), "InvalidRequest");
    }

    #[test]
    fn hashes_are_compared_in_hex_and_base64() {
        let data = b"hello";
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert!(sha256_matches(data, hex));
        assert!(sha256_matches(data, &hex.to_uppercase()));
        assert!(sha256_matches(
            data,
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        ));
        assert!(!sha256_matches(b"hellO", hex));
        assert!(!sha256_matches(
            b"hellO",
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ"
        ));
        // Neither form: not checked.
        assert!(sha256_matches(data, "not a hash"));
        assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("a*"), None);
    }

    #[test]
    fn mime_types_are_checked_before_an_upload() {
        for good in ["image/jpeg", "application/pdf", "audio/ogg; codecs=opus"] {
            assert!(is_mime_type(good), "{good}");
        }
        for bad in ["", "jpeg", "image/", "/png", "image/png\r\nX: y", "a/\"b\""] {
            assert!(!is_mime_type(bad), "{bad:?}");
        }
        let upload = |name: &str, mime: &str| MediaUpload {
            sender: SenderRef {
                name: "berlin-office".into(),
                phone_number_id: "106540352242922".into(),
            },
            path: name.into(),
            file_name: name.into(),
            mime_type: mime.into(),
            bytes: b"%PDF-1.7".to_vec(),
        };
        assert_eq!(
            multipart_body(&upload("a.pdf", "pdf")).unwrap_err().kind(),
            "MediaError"
        );
        assert_eq!(
            multipart_body(&upload(" ", "application/pdf"))
                .unwrap_err()
                .kind(),
            "MediaError"
        );
        let (content_type, body) =
            multipart_body(&upload("say \"hi\"\n.pdf", "application/pdf")).unwrap();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("filename=\"say %22hi%22%0A.pdf\""), "{body}");
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn download_links_must_be_on_meta_hosts() {
        let api = CloudApi::new(CloudApiSettings::new(Secret::new("EAAG-unit"))).unwrap();
        for good in [
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=3",
            "https://graph.facebook.com/v21.0/1/media",
            "https://mmg.whatsapp.net/x",
        ] {
            assert!(api.download_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://lookaside.fbsbx.com/x",
            "https://evilfbsbx.com/x",
            "https://lookaside.fbsbx.com.evil.example/x",
            "https://user:pw@lookaside.fbsbx.com/x",
            "not a url",
        ] {
            let e = api.download_url(bad).unwrap_err();
            assert_eq!(e.kind(), "MediaError", "{bad}");
            assert!(e.to_string().contains("the access token is not sent there"));
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
            body: None,
        };
        let body = template_body("4915112345678", &message).unwrap();
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
            header: None,
            buttons: Vec::new(),
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
