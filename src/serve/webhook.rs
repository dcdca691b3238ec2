//! The WhatsApp webhook: what Meta's Cloud API sends to the service, checked
//! and turned into [`Event`]s ready for `Engine::dispatch`.
//!
//! Three steps, each a plain function so the HTTP layer stays thin and every
//! decision can be tested without a server:
//!
//! 1. [`verify_handshake`]: the `GET` with `hub.mode=subscribe`,
//!    `hub.verify_token` and `hub.challenge` that Meta sends when the callback
//!    URL is configured. The answer is the challenge (200, `text/plain`), or 403
//!    for every [`HandshakeError`].
//! 2. [`verify_signature`]: every `POST` carries `X-Hub-Signature-256:
//!    sha256=<hex>`, the HMAC-SHA256 of the raw body keyed with the app secret.
//!    It is checked against the raw bytes, before parsing, in constant time.
//!    The answer is 401 for every [`SignatureError`]; the variants only tell the
//!    log why.
//! 3. [`parse_payload`]: the body becomes [`InboundEvent`]s (each with a dedupe
//!    key, because Meta delivers at least once and retries for days) and
//!    [`PayloadWarning`]s for what was deliberately skipped.
//!
//! [`parse_host_event`] reads the body of the generic event endpoint, through
//! which the host application sends its own events (`call.ended`, ...).
//!
//! # What becomes an event
//!
//! Only changes with `field == "messages"` carry events. Each entry of
//! `value.messages[]` becomes a `whatsapp.message_received` event, each entry
//! of `value.statuses[]` a `whatsapp.message_status` event; the fields are
//! exactly those `std_actions/whatsapp.flow` declares.
//!
//! Changes with `field == "phone_number_quality_update"` are no events: each
//! value becomes a [`crate::campaign::QualityUpdate`] in
//! [`Parsed::quality_updates`], for the campaigns' quality guard.
//!
//! | field of `message_received` | taken from |
//! |---|---|
//! | `phone` | `"+"` and `from` |
//! | `text` | see the table below |
//! | `sender_id` | the sender in `flow.toml` whose `phone_number_id` is `metadata.phone_number_id` |
//! | `timestamp` | `timestamp` (Unix seconds) as RFC 3339 in UTC, e.g. `2025-11-24T16:00:00Z` |
//! | `conversation_id` | `<from>:<sender>`, e.g. `4915112345678:berlin-office`: one per customer and sender, stable across restarts |
//! | `message_id` | `id` (also the dedupe key) |
//! | `name` | `contacts[].profile.name` of the contact whose `wa_id` is `from`; `null` when there is none or it is empty |
//! | `kind`, `text`, `reply_id`, `reply_title`, `media_id`, `mime_type`, `filename` | by the message's `type`: see the table below |
//! | `replied_to` | `context.id`: the business message the customer replied to (a reply button's or list's message, a template, a quoted message); `null` without a context |
//!
//! | message `type` | `kind` | `text` | other fields (the rest `null`) |
//! |---|---|---|---|
//! | `text` | `text` | `text.body` (required) | |
//! | `button` (a template's quick reply) | `reply` | `button.text` (required) | `reply_id` = `button.payload` (its text when Meta sends none), `reply_title` = `button.text` |
//! | `interactive` with `button_reply` or `list_reply` | `reply` | the `title` (required) | `reply_id` = `id` (required), `reply_title` = `title` |
//! | `interactive` of another type (a WhatsApp Flow's `nfm_reply`, ...) | `unsupported` | `nfm_reply.body`, otherwise `""` | |
//! | `image`, `video`, `document` | the type | the `caption`, `""` without one | `media_id` = `id`, `mime_type`; `filename` for documents |
//! | `audio`, `sticker` | the type | `""` | `media_id` = `id`, `mime_type` |
//! | `location`, `contacts`, `reaction`, `unsupported` | the type | `""` | |
//! | `order` | `unsupported` | the customer's `order.text`, `""` without one | |
//! | types this version does not know | `unsupported` | `""` | |
//!
//! A flow branches on `kind` and, for replies, on `reply_id`; with
//! `media_id` it fetches the file (`whatsapp.download_media`). The message
//! id lets the host fetch the rest (a location, contacts) when it needs it.
//!
//! | field of `message_status` | taken from |
//! |---|---|
//! | `message_id` | `id` |
//! | `phone` | `"+"` and `recipient_id` |
//! | `sender_id` | as above |
//! | `status` | `status`: `sent`, `delivered`, `read` or `failed` |
//! | `timestamp` | as above |
//! | `error_kind` | for `failed`: the kind of the first `errors[]` entry, mapped like a failed send ([`MetaError::to_action_error`]), e.g. 131047 → `OutsideWindow`; `Undeliverable` when Meta gives no error; otherwise `null` |
//! | `error_message` | for `failed`: the error in words, as a failed send's error says it (usually with Meta's code and text); otherwise `null` |
//! | `conversation_id` | `conversation.id` when present, else `null` |
//!
//! The dedupe key of a message is its id; of a status `<id>:<status>`, so
//! "delivered" and "read" of one message are separate events.
//!
//! `whatsapp.conversation_started` is not decided here: whether a message
//! starts a conversation depends on the store ("no open conversation for this
//! customer"). The service asks the store and then builds the event with
//! [`conversation_started_from`] (or [`InboundEvent::conversation_started`]).
//!
//! # Skipped, with a warning
//!
//! These are not errors: the rest of the payload is still used, and the HTTP
//! answer is 200 (an error would make Meta deliver the same payload again and
//! again). Each is a [`PayloadWarning`] naming the path:
//!
//! - changes with another `field` (`message_template_status_update`,
//!   `account_update`, ...), and a `phone_number_quality_update` whose value
//!   cannot be read;
//! - messages and statuses of a `phone_number_id` that no sender in
//!   `flow.toml` has (another number of the same business account);
//! - `system` messages (the customer changed their number): no customer wrote;
//! - group messages (`group_id`) and statuses of messages sent to a group;
//! - messages and statuses without a phone number (a customer with a WhatsApp
//!   username whose number Meta withholds, identified only by `from_user_id` /
//!   `recipient_user_id`): flows address customers by phone number;
//! - a `from` or `recipient_id` that is no phone number;
//! - statuses other than the four above (e.g. the deprecated `deleted`);
//! - errors Meta reports for the whole change (`value.errors[]`).
//!
//! # Errors
//!
//! A body that is not JSON, or lacks a key every payload of its kind has
//! (`object`, `entry`, `changes`, `field`, `value`, `metadata.phone_number_id`,
//! a message's `from`, `id`, `timestamp`, `type`, a status's `id`, `status`,
//! `timestamp`, `recipient_id`, the text of a text message, ...), or has a
//! value of the wrong type, is a [`PayloadError`] naming the path, e.g.
//! ``entry[0].changes[0].value.messages[1].from` is missing``. Keys this module
//! does not know are ignored: Meta adds fields. One bad message makes the whole
//! payload an error, so nothing of it is dispatched twice when Meta delivers
//! it again; see [`PayloadError::http_status`] for the answer.
//!
//! ```
//! use flowc::serve::webhook::{parse_payload, signature_header, verify_signature, SenderDirectory};
//!
//! let body = br#"{"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
//!   "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
//!     "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
//!     "contacts": [{"profile": {"name": "Anna Schmidt"}, "wa_id": "4915112345678"}],
//!     "messages": [{"from": "4915112345678", "id": "wamid.A1", "timestamp": "1764000000",
//!                   "type": "text", "text": {"body": "Hello"}}]}}]}]}"#;
//! let header = signature_header(b"app-secret", body);
//! verify_signature(b"app-secret", body, Some(&header)).unwrap();
//!
//! let senders: SenderDirectory = [("106540352242922", "berlin-office")].into_iter().collect();
//! let parsed = parse_payload(body, &senders).unwrap();
//! assert!(parsed.warnings.is_empty());
//! let received = &parsed.events[0];
//! assert_eq!(received.id, "wamid.A1");
//! assert_eq!(received.event.trigger, "whatsapp.message_received");
//! assert_eq!(received.event.fields["phone"], "+4915112345678");
//! assert_eq!(received.event.fields["sender_id"], "berlin-office");
//! assert_eq!(received.event.fields["timestamp"], "2025-11-24T16:00:00Z");
//! assert_eq!(received.event.fields["conversation_id"], "4915112345678:berlin-office");
//! assert_eq!(received.event.fields["name"], "Anna Schmidt");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value as Json};
use sha2::Sha256;
use thiserror::Error;

use crate::check::rules::closest;
use crate::config::Config;
use crate::media::MediaKind;
use crate::phone::check_e164;
use crate::providers::cloud_api::{ErrorContext, MetaError};
use crate::runtime::{ActionError, Event};

/// The trigger of a customer's message.
pub const MESSAGE_RECEIVED: &str = "whatsapp.message_received";
/// The trigger of a status report of a sent message.
pub const MESSAGE_STATUS: &str = "whatsapp.message_status";
/// The trigger of a customer's first message in a new conversation.
pub const CONVERSATION_STARTED: &str = "whatsapp.conversation_started";

/// The only `object` Meta sends for WhatsApp.
const WHATSAPP_OBJECT: &str = "whatsapp_business_account";
/// The header Meta signs with; lower case, as HTTP libraries normalise it.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The statuses `whatsapp.message_status` reports.
const STATUSES: &[&str] = &["sent", "delivered", "read", "failed"];
/// The longest id the host may give an event: it is stored as a dedupe key.
const MAX_HOST_EVENT_ID_CHARS: usize = 256;
/// The keys of a host event.
const HOST_EVENT_KEYS: &[&str] = &["id", "trigger", "fields"];

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------
// Signature
// ---------------------------------------------------------------------------

/// Why a webhook `POST` is not from Meta. The service answers 401 for every
/// variant; they differ only for the log. None of them contains the secret or
/// the signature.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The app secret is empty: anyone could sign. A configuration error,
    /// reported as such, never accepted.
    #[error("no app secret is configured: webhook signatures cannot be checked")]
    NoAppSecret,
    /// The request has no `X-Hub-Signature-256` header.
    #[error("the request has no X-Hub-Signature-256 header")]
    MissingHeader,
    /// The header is not `sha256=` and 64 hex digits.
    #[error("the X-Hub-Signature-256 header is malformed: {reason}")]
    MalformedHeader {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature is not the HMAC-SHA256 of the body with the app secret:
    /// another secret, or a changed body.
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

/// Checks Meta's `X-Hub-Signature-256` header (`sha256=<hex>`): the
/// HMAC-SHA256 of `raw_body`, exactly as received, keyed with the app secret.
/// The comparison takes the same time wherever the signatures differ.
///
/// `header` is the header's value, `None` when the request has none.
///
/// ```
/// use flowc::serve::webhook::{signature_header, verify_signature, SignatureError};
///
/// let header = signature_header(b"secret", b"{}");
/// assert!(header.starts_with("sha256="));
/// assert_eq!(verify_signature(b"secret", b"{}", Some(&header)), Ok(()));
/// assert_eq!(verify_signature(b"secret", b"{ }", Some(&header)), Err(SignatureError::Mismatch));
/// assert_eq!(verify_signature(b"secret", b"{}", None), Err(SignatureError::MissingHeader));
/// ```
pub fn verify_signature(
    app_secret: &[u8],
    raw_body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    if app_secret.is_empty() {
        return Err(SignatureError::NoAppSecret);
    }
    let header = header.ok_or(SignatureError::MissingHeader)?.trim();
    let hex_digits = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::MalformedHeader {
            reason: "it does not start with \"sha256=\"",
        })?;
    if hex_digits.len() != 64 {
        return Err(SignatureError::MalformedHeader {
            reason: "the signature is not 64 hex digits",
        });
    }
    let expected = hex::decode(hex_digits).map_err(|_| SignatureError::MalformedHeader {
        reason: "the signature is not 64 hex digits",
    })?;
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(raw_body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value Meta would send for `raw_body`:
/// `sha256=` and the lower-case hex HMAC-SHA256. For tests and for tools that
/// replay payloads.
pub fn signature_header(app_secret: &[u8], raw_body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(raw_body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

/// Why a verification request is refused. The service answers 403 for every
/// variant. None of them contains a token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// No `hub.mode` parameter: not a verification request.
    #[error("the verification request has no hub.mode")]
    MissingMode,
    /// `hub.mode` is not `subscribe`.
    #[error("hub.mode is \"{0}\", not \"subscribe\"")]
    WrongMode(String),
    /// No `hub.verify_token` parameter.
    #[error("the verification request has no hub.verify_token")]
    MissingToken,
    /// The configured verify token is empty, so no request can prove it knows
    /// it. A configuration error.
    #[error("no webhook verify token is configured")]
    NotConfigured,
    /// `hub.verify_token` is not the configured token.
    #[error("hub.verify_token does not match the configured verify token")]
    TokenMismatch,
    /// No (or an empty) `hub.challenge` parameter to answer with.
    #[error("the verification request has no hub.challenge")]
    MissingChallenge,
}

/// Answers Meta's verification request, `GET
/// ?hub.mode=subscribe&hub.verify_token=TOKEN&hub.challenge=CHALLENGE`, given
/// its query parameters (decoded): the challenge to send back as the body
/// (`text/plain`, status 200) when the mode is `subscribe` and the token is
/// `verify_token`. The tokens are compared in constant time.
///
/// ```
/// use std::collections::HashMap;
/// use flowc::serve::webhook::{verify_handshake, HandshakeError};
///
/// let mut params: HashMap<String, String> = [
///     ("hub.mode", "subscribe"), ("hub.verify_token", "s3cret"), ("hub.challenge", "1158201444"),
/// ].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
/// assert_eq!(verify_handshake(&params, "s3cret").as_deref(), Ok("1158201444"));
/// params.insert("hub.verify_token".into(), "guess".into());
/// assert_eq!(verify_handshake(&params, "s3cret"), Err(HandshakeError::TokenMismatch));
/// ```
pub fn verify_handshake(
    params: &HashMap<String, String>,
    verify_token: &str,
) -> Result<String, HandshakeError> {
    let mode = params.get("hub.mode").ok_or(HandshakeError::MissingMode)?;
    if mode != "subscribe" {
        return Err(HandshakeError::WrongMode(mode.clone()));
    }
    let token = params
        .get("hub.verify_token")
        .ok_or(HandshakeError::MissingToken)?;
    if verify_token.is_empty() {
        return Err(HandshakeError::NotConfigured);
    }
    if !constant_time_eq(token.as_bytes(), verify_token.as_bytes()) {
        return Err(HandshakeError::TokenMismatch);
    }
    match params.get("hub.challenge") {
        Some(challenge) if !challenge.is_empty() => Ok(challenge.clone()),
        _ => Err(HandshakeError::MissingChallenge),
    }
}

/// Whether `given` equals `expected`, in a time that depends on neither's
/// content nor on where they differ: both are reduced to an HMAC tag of the
/// same fixed text, and the tags are compared with [`Mac::verify_slice`].
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    const TEXT: &[u8] = b"flowc webhook verify token";
    let tag = |key: &[u8]| {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(TEXT);
        mac
    };
    let expected_tag = tag(expected).finalize().into_bytes();
    tag(given).verify_slice(&expected_tag).is_ok()
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

/// Which sender in `flow.toml` each of Meta's `phone_number_id`s belongs to.
///
/// ```
/// use flowc::config::Config;
/// use flowc::serve::webhook::SenderDirectory;
/// use flowc::source::FileId;
///
/// let (config, _) = Config::parse("[senders.berlin-office]\nphone_number_id = \"106540352242922\"\n", FileId(0));
/// let senders = SenderDirectory::from_config(&config);
/// assert_eq!(senders.sender("106540352242922"), Some("berlin-office"));
/// assert_eq!(senders.sender("999"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderDirectory {
    by_phone_number_id: BTreeMap<String, String>,
}

impl SenderDirectory {
    /// An empty directory: every message is skipped as of an unknown sender.
    pub fn new() -> Self {
        SenderDirectory::default()
    }

    /// The senders of `flow.toml`. When two senders have the same
    /// `phone_number_id`, the first by name receives the number's messages.
    pub fn from_config(config: &Config) -> Self {
        let mut directory = SenderDirectory::new();
        for (name, sender) in &config.senders {
            directory
                .by_phone_number_id
                .entry(sender.phone_number_id.clone())
                .or_insert_with(|| name.clone());
        }
        directory
    }

    /// Adds (or replaces) the sender of a phone number id.
    pub fn insert(&mut self, phone_number_id: impl Into<String>, sender: impl Into<String>) {
        self.by_phone_number_id
            .insert(phone_number_id.into(), sender.into());
    }

    /// The name of the sender with this `phone_number_id`, if any.
    pub fn sender(&self, phone_number_id: &str) -> Option<&str> {
        self.by_phone_number_id
            .get(phone_number_id)
            .map(String::as_str)
    }

    /// How many phone number ids are known.
    pub fn len(&self) -> usize {
        self.by_phone_number_id.len()
    }

    /// Whether no phone number id is known.
    pub fn is_empty(&self) -> bool {
        self.by_phone_number_id.is_empty()
    }
}

impl From<&Config> for SenderDirectory {
    fn from(config: &Config) -> Self {
        SenderDirectory::from_config(config)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for SenderDirectory {
    /// From `(phone_number_id, sender name)` pairs; a later pair replaces an
    /// earlier one with the same id.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut directory = SenderDirectory::new();
        for (id, name) in pairs {
            directory.insert(id, name);
        }
        directory
    }
}

/// What an [`InboundEvent`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboundKind {
    /// A customer's message: `whatsapp.message_received`.
    MessageReceived,
    /// A status report of a sent message: `whatsapp.message_status`.
    MessageStatus,
    /// A customer's first message in a new conversation:
    /// `whatsapp.conversation_started` (built by
    /// [`InboundEvent::conversation_started`], never by [`parse_payload`]).
    ConversationStarted,
}

impl InboundKind {
    /// The trigger's qualified name.
    pub fn trigger(self) -> &'static str {
        match self {
            InboundKind::MessageReceived => MESSAGE_RECEIVED,
            InboundKind::MessageStatus => MESSAGE_STATUS,
            InboundKind::ConversationStarted => CONVERSATION_STARTED,
        }
    }
}

/// One event from a webhook payload.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    /// The dedupe key: the message id for a message, `<message id>:<status>`
    /// for a status, `<message id>:started` for a conversation start. The same
    /// key means the same event delivered again: dispatch it once.
    pub id: String,
    /// What it reports.
    pub kind: InboundKind,
    /// The event, with the fields its trigger declares.
    pub event: Event,
}

impl InboundEvent {
    /// For a [`InboundKind::MessageReceived`] event, the
    /// `whatsapp.conversation_started` event of the same message (see
    /// [`conversation_started_from`]), with the dedupe key
    /// `<message id>:started`; `None` for other kinds. Whether the message
    /// starts a conversation is the caller's decision.
    pub fn conversation_started(&self) -> Option<InboundEvent> {
        (self.kind == InboundKind::MessageReceived).then(|| InboundEvent {
            id: format!("{}:started", self.id),
            kind: InboundKind::ConversationStarted,
            event: conversation_started_from(&self.event),
        })
    }
}

/// The change field of a sender's quality rating or messaging limit.
pub const QUALITY_UPDATE: &str = "phone_number_quality_update";

/// What [`parse_payload`] found: the events in payload order, and what it
/// skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The events, in the order of the payload.
    pub events: Vec<InboundEvent>,
    /// What was skipped and why, for the log.
    pub warnings: Vec<PayloadWarning>,
    /// `phone_number_quality_update` changes: a sender's quality rating or
    /// messaging limit changed (for the campaigns' quality guard).
    pub quality_updates: Vec<crate::campaign::QualityUpdate>,
}

/// A part of a payload that was skipped on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadWarning {
    /// Where, e.g. `entry[0].changes[1]` or `entry[0].changes[0].value.messages[2]`.
    pub path: String,
    /// Why.
    pub reason: SkipReason,
}

impl fmt::Display for PayloadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Why a part of a payload was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SkipReason {
    /// A change whose `field` is not `messages`.
    #[error("change field `{field}` is not used; ignored")]
    IgnoredField {
        /// The change's `field`, e.g. `message_template_status_update`.
        field: String,
    },
    /// No sender in `flow.toml` has this `phone_number_id`.
    #[error("no sender in flow.toml has phone_number_id \"{phone_number_id}\"; skipped")]
    UnknownSender {
        /// Meta's `metadata.phone_number_id`.
        phone_number_id: String,
    },
    /// A `system` message (e.g. the customer changed their number).
    #[error("system message{} is not a customer's message; skipped", system_type.as_ref().map(|t| format!(" `{t}`")).unwrap_or_default())]
    SystemMessage {
        /// `system.type`, e.g. `user_changed_number`.
        system_type: Option<String>,
    },
    /// A message in, or a status of a message sent to, a WhatsApp group.
    #[error("group messages are not supported; skipped")]
    Group,
    /// Meta withheld the customer's phone number (the customer uses a
    /// username and is known only by a business-scoped user id).
    #[error("no phone number (only the user id \"{user_id}\"); skipped")]
    PhoneWithheld {
        /// `from_user_id` or `recipient_user_id`.
        user_id: String,
    },
    /// `from` or `recipient_id` is not a phone number.
    #[error("\"{value}\" is not a phone number; skipped")]
    NotAPhone {
        /// The value as sent.
        value: String,
    },
    /// A status other than sent, delivered, read and failed.
    #[error("status \"{status}\" is not reported to flows; skipped")]
    UnknownStatus {
        /// The status, e.g. `deleted`.
        status: String,
    },
    /// A `phone_number_quality_update` whose value cannot be read.
    #[error("quality update cannot be read: {problem}; ignored")]
    BadQualityUpdate {
        /// What is wrong with it.
        problem: String,
    },
    /// An error Meta reported for the whole change (`value.errors[]`).
    #[error("WhatsApp reported an error: {description}")]
    ErrorReported {
        /// The error's kind and explanation.
        description: String,
    },
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// `object` is not `whatsapp_business_account`: not a WhatsApp webhook.
    #[error("`object` is \"{0}\", not \"whatsapp_business_account\": not a WhatsApp webhook")]
    UnknownObject(String),
    /// A required key is missing (or `null`).
    #[error("{} is missing", show_path(path))]
    Missing {
        /// The key's path, e.g. `entry[0].changes[0].value.messages[1].from`.
        path: String,
    },
    /// A value has the wrong JSON type.
    #[error("{} should be {expected}, found {found}", show_path(path))]
    WrongType {
        /// The value's path.
        path: String,
        /// The type expected, e.g. "a string".
        expected: &'static str,
        /// The type found, e.g. "a number".
        found: &'static str,
    },
    /// A value has the right type but cannot be used.
    #[error("{}: {problem}", show_path(path))]
    Invalid {
        /// The value's path.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A host event has a key other than `id`, `trigger` and `fields`.
    #[error("unknown key `{key}`: an event has `id`, `trigger` and `fields`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownKey {
        /// The key.
        key: String,
        /// A close known key.
        suggestion: Option<String>,
    },
}

impl PayloadError {
    /// The HTTP status the service answers with.
    ///
    /// - [`PayloadError::UnknownObject`]: 200. The request is signed with the
    ///   app secret, so it is from Meta, for another product of the same app
    ///   (a page, Instagram) whose callback URL points here. Refusing it would
    ///   make Meta retry for days and can get the subscription disabled, which
    ///   stops WhatsApp's webhooks too; it is logged and ignored.
    /// - Every other error: 400. A signed payload that does not read is a bug
    ///   here or a format change at Meta; Meta delivers it again (for up to
    ///   days), so a fixed version still gets it, and the dedupe keys keep
    ///   the events of a redelivery from starting runs twice.
    pub fn http_status(&self) -> u16 {
        match self {
            PayloadError::UnknownObject(_) => 200,
            _ => 400,
        }
    }
}

fn show_path(path: &str) -> String {
    if path.is_empty() {
        "the body".to_string()
    } else {
        format!("`{path}`")
    }
}

/// Reads a webhook body (already verified with [`verify_signature`]): the
/// events of its messages and statuses, and warnings for what it skipped.
/// See the module documentation for the fields, the skipped parts and the
/// errors.
pub fn parse_payload(body: &[u8], senders: &SenderDirectory) -> Result<Parsed, PayloadError> {
    let root: Json = serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))?;
    let root = object(&root, "")?;
    let kind = required_str(root, "object", "")?;
    if kind != WHATSAPP_OBJECT {
        return Err(PayloadError::UnknownObject(kind.to_string()));
    }
    let mut parsed = Parsed::default();
    for (i, entry) in required_array(root, "entry", "")?.iter().enumerate() {
        let entry_path = format!("entry[{i}]");
        let entry = object(entry, &entry_path)?;
        for (j, change) in required_array(entry, "changes", &entry_path)?
            .iter()
            .enumerate()
        {
            let path = format!("{entry_path}.changes[{j}]");
            let change = object(change, &path)?;
            let field = required_str(change, "field", &path)?;
            if field == QUALITY_UPDATE {
                let value = required(change, "value", &path)?;
                match crate::campaign::QualityUpdate::from_value(value) {
                    Ok(update) => parsed.quality_updates.push(update),
                    Err(error) => parsed.warnings.push(PayloadWarning {
                        path,
                        reason: SkipReason::BadQualityUpdate {
                            problem: error.to_string(),
                        },
                    }),
                }
                continue;
            }
            if field != "messages" {
                parsed.warnings.push(PayloadWarning {
                    path,
                    reason: SkipReason::IgnoredField {
                        field: field.to_string(),
                    },
                });
                continue;
            }
            let value_path = join(&path, "value");
            let value = object(required(change, "value", &path)?, &value_path)?;
            read_messages_value(value, &value_path, senders, &mut parsed)?;
        }
    }
    Ok(parsed)
}

/// The `value` of a `messages` change.
fn read_messages_value(
    value: &Map<String, Json>,
    path: &str,
    senders: &SenderDirectory,
    parsed: &mut Parsed,
) -> Result<(), PayloadError> {
    for (k, error) in optional_array(value, "errors", path)?.iter().enumerate() {
        let error_path = format!("{}[{k}]", join(path, "errors"));
        let error = meta_error(object(error, &error_path)?);
        let action = error.to_action_error(None, None, &ErrorContext::default());
        parsed.warnings.push(PayloadWarning {
            path: error_path,
            reason: SkipReason::ErrorReported {
                description: format!("{}: {}", action.kind(), error_message(&action)),
            },
        });
    }
    let messages = optional_array(value, "messages", path)?;
    let statuses = optional_array(value, "statuses", path)?;
    if messages.is_empty() && statuses.is_empty() {
        return Ok(());
    }
    let metadata_path = join(path, "metadata");
    let metadata = object(required(value, "metadata", path)?, &metadata_path)?;
    let phone_number_id = required_str(metadata, "phone_number_id", &metadata_path)?;
    let sender = senders.sender(phone_number_id);
    let names = contact_names(value, path)?;

    for (k, message) in messages.iter().enumerate() {
        let message_path = format!("{}[{k}]", join(path, "messages"));
        let message = object(message, &message_path)?;
        match read_message(message, &message_path, sender, phone_number_id, &names)? {
            Ok(event) => parsed.events.push(event),
            Err(reason) => parsed.warnings.push(PayloadWarning {
                path: message_path,
                reason,
            }),
        }
    }
    for (k, status) in statuses.iter().enumerate() {
        let status_path = format!("{}[{k}]", join(path, "statuses"));
        let status = object(status, &status_path)?;
        match read_status(status, &status_path, sender, phone_number_id)? {
            Ok(event) => parsed.events.push(event),
            Err(reason) => parsed.warnings.push(PayloadWarning {
                path: status_path,
                reason,
            }),
        }
    }
    Ok(())
}

/// `contacts[]`: the profile name by `wa_id`; empty names are left out.
fn contact_names<'a>(
    value: &'a Map<String, Json>,
    path: &str,
) -> Result<HashMap<&'a str, &'a str>, PayloadError> {
    let mut names = HashMap::new();
    let contacts_path = join(path, "contacts");
    for (k, contact) in optional_array(value, "contacts", path)?.iter().enumerate() {
        let contact_path = format!("{contacts_path}[{k}]");
        let contact = object(contact, &contact_path)?;
        let Some(wa_id) = optional_str(contact, "wa_id", &contact_path)? else {
            continue;
        };
        let profile_path = join(&contact_path, "profile");
        let Some(profile) = optional_object(contact, "profile", &contact_path)? else {
            continue;
        };
        if let Some(name) = optional_str(profile, "name", &profile_path)? {
            if !name.trim().is_empty() {
                names.entry(wa_id).or_insert(name);
            }
        }
    }
    Ok(names)
}

/// One of `messages[]`: the event, or why it is skipped.
fn read_message(
    message: &Map<String, Json>,
    path: &str,
    sender: Option<&str>,
    phone_number_id: &str,
    names: &HashMap<&str, &str>,
) -> Result<Result<InboundEvent, SkipReason>, PayloadError> {
    let id = required_str(message, "id", path)?;
    let timestamp = timestamp(message, path)?;
    let kind = required_str(message, "type", path)?;
    if kind == "system" {
        let system_type = optional_object(message, "system", path)?
            .and_then(|system| system.get("type"))
            .and_then(Json::as_str)
            .map(str::to_string);
        return Ok(Err(SkipReason::SystemMessage { system_type }));
    }
    if message.get("group_id").is_some_and(|g| !g.is_null()) {
        return Ok(Err(SkipReason::Group));
    }
    let Some(from) = optional_str(message, "from", path)? else {
        return match optional_str(message, "from_user_id", path)? {
            Some(user_id) => Ok(Err(SkipReason::PhoneWithheld {
                user_id: user_id.to_string(),
            })),
            None => Err(PayloadError::Missing {
                path: join(path, "from"),
            }),
        };
    };
    let content = message_content(message, kind, path)?;
    let replied_to = match optional_object(message, "context", path)? {
        Some(context) => optional_str(context, "id", &join(path, "context"))?,
        None => None,
    };
    let Some(sender) = sender else {
        return Ok(Err(SkipReason::UnknownSender {
            phone_number_id: phone_number_id.to_string(),
        }));
    };
    let Some(phone) = phone_of(from) else {
        return Ok(Err(SkipReason::NotAPhone {
            value: from.to_string(),
        }));
    };
    let name = names.get(from).map(|n| n.to_string());
    Ok(Ok(InboundEvent {
        id: id.to_string(),
        kind: InboundKind::MessageReceived,
        event: Event::new(
            MESSAGE_RECEIVED,
            json!({
                "phone": phone,
                "text": content.text,
                "sender_id": sender,
                "timestamp": timestamp,
                "conversation_id": format!("{from}:{sender}"),
                "message_id": id,
                "name": name,
                "kind": content.kind,
                "reply_id": content.reply_id,
                "reply_title": content.reply_title,
                "media_id": content.media_id,
                "mime_type": content.mime_type,
                "filename": content.filename,
                "replied_to": replied_to,
            }),
        ),
    }))
}

/// What a message carries, by its type: the fields of
/// `whatsapp.message_received` that depend on it.
#[derive(Debug, Default)]
struct Content {
    /// `kind`: what the customer sent.
    kind: &'static str,
    /// `text`.
    text: String,
    /// `reply_id` and `reply_title`, for replies.
    reply_id: Option<String>,
    reply_title: Option<String>,
    /// `media_id`, `mime_type` and `filename`, for media.
    media_id: Option<String>,
    mime_type: Option<String>,
    filename: Option<String>,
}

/// The `kind` of message types that carry nothing beyond it.
const PLAIN_KINDS: &[&str] = &["location", "contacts", "reaction", "unsupported"];

/// A message's content by its type (the tables in the module docs).
fn message_content(
    message: &Map<String, Json>,
    kind: &str,
    path: &str,
) -> Result<Content, PayloadError> {
    let content_path = join(path, kind);
    let content = match kind {
        "text" => {
            let text = object(required(message, "text", path)?, &content_path)?;
            Content {
                kind: "text",
                text: required_str(text, "body", &content_path)?.to_string(),
                ..Content::default()
            }
        }
        "button" => {
            let button = object(required(message, "button", path)?, &content_path)?;
            let title = required_str(button, "text", &content_path)?;
            // A template's quick reply: its payload is what the send gave
            // (WhatsApp sends the button's text when the send gave none).
            let payload = optional_str(button, "payload", &content_path)?.unwrap_or(title);
            reply(payload, title)
        }
        "interactive" => {
            let interactive = object(required(message, "interactive", path)?, &content_path)?;
            let reply_type = required_str(interactive, "type", &content_path)?;
            let reply_path = join(&content_path, reply_type);
            match reply_type {
                "button_reply" | "list_reply" => {
                    let choice = object(
                        required(interactive, reply_type, &content_path)?,
                        &reply_path,
                    )?;
                    reply(
                        required_str(choice, "id", &reply_path)?,
                        required_str(choice, "title", &reply_path)?,
                    )
                }
                "nfm_reply" => Content {
                    kind: "unsupported",
                    text: match optional_object(interactive, reply_type, &content_path)? {
                        Some(reply) => optional_str(reply, "body", &reply_path)?
                            .unwrap_or_default()
                            .to_string(),
                        None => String::new(),
                    },
                    ..Content::default()
                },
                _ => unsupported(),
            }
        }
        "order" => Content {
            kind: "unsupported",
            text: optional_text_of(message, kind, "text", path)?,
            ..Content::default()
        },
        _ => {
            if let Some(media) = MediaKind::from_name(kind) {
                media_content(message, media, path)?
            } else if let Some(known) = PLAIN_KINDS.iter().find(|known| **known == kind) {
                Content {
                    kind: known,
                    ..Content::default()
                }
            } else {
                unsupported()
            }
        }
    };
    Ok(content)
}

/// A reply: the chosen id and the title the customer saw, which is also
/// the text.
fn reply(id: &str, title: &str) -> Content {
    Content {
        kind: "reply",
        text: title.to_string(),
        reply_id: Some(id.to_string()),
        reply_title: Some(title.to_string()),
        ..Content::default()
    }
}

/// A message of a type flows cannot act on: `kind` "unsupported", no text.
fn unsupported() -> Content {
    Content {
        kind: "unsupported",
        ..Content::default()
    }
}

/// An image, document, audio, video or sticker: the media id and mime
/// type, the caption as the text (image, document, video), and a
/// document's file name. The content object may be missing (then all are
/// none); what it has must have the right types.
fn media_content(
    message: &Map<String, Json>,
    kind: MediaKind,
    path: &str,
) -> Result<Content, PayloadError> {
    let name = kind.as_str();
    let content_path = join(path, name);
    let Some(media) = optional_object(message, name, path)? else {
        return Ok(Content {
            kind: name,
            ..Content::default()
        });
    };
    let text = |key: &str| -> Result<Option<String>, PayloadError> {
        Ok(optional_str(media, key, &content_path)?.map(str::to_string))
    };
    Ok(Content {
        kind: name,
        text: if kind.takes_caption() {
            text("caption")?.unwrap_or_default()
        } else {
            String::new()
        },
        media_id: text("id")?,
        mime_type: text("mime_type")?,
        filename: if kind.takes_filename() {
            text("filename")?
        } else {
            None
        },
        ..Content::default()
    })
}

/// `message[outer][inner]` when both are there, else `""`.
fn optional_text_of(
    message: &Map<String, Json>,
    outer: &str,
    inner: &str,
    path: &str,
) -> Result<String, PayloadError> {
    let outer_path = join(path, outer);
    Ok(match optional_object(message, outer, path)? {
        Some(content) => optional_str(content, inner, &outer_path)?
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    })
}

/// One of `statuses[]`: the event, or why it is skipped.
fn read_status(
    status: &Map<String, Json>,
    path: &str,
    sender: Option<&str>,
    phone_number_id: &str,
) -> Result<Result<InboundEvent, SkipReason>, PayloadError> {
    let id = required_str(status, "id", path)?;
    let state = required_str(status, "status", path)?;
    let timestamp = timestamp(status, path)?;
    if optional_str(status, "recipient_type", path)? == Some("group") {
        return Ok(Err(SkipReason::Group));
    }
    let Some(recipient) = optional_str(status, "recipient_id", path)? else {
        return match optional_str(status, "recipient_user_id", path)? {
            Some(user_id) => Ok(Err(SkipReason::PhoneWithheld {
                user_id: user_id.to_string(),
            })),
            None => Err(PayloadError::Missing {
                path: join(path, "recipient_id"),
            }),
        };
    };
    let conversation_path = join(path, "conversation");
    let conversation_id = match optional_object(status, "conversation", path)? {
        Some(conversation) => optional_str(conversation, "id", &conversation_path)?,
        None => None,
    };
    let errors = optional_array(status, "errors", path)?;
    let first_error = match errors.first() {
        Some(error) => Some(meta_error(object(
            error,
            &format!("{}[0]", join(path, "errors")),
        )?)),
        None => None,
    };
    if !STATUSES.contains(&state) {
        return Ok(Err(SkipReason::UnknownStatus {
            status: state.to_string(),
        }));
    }
    let Some(sender) = sender else {
        return Ok(Err(SkipReason::UnknownSender {
            phone_number_id: phone_number_id.to_string(),
        }));
    };
    let Some(phone) = phone_of(recipient) else {
        return Ok(Err(SkipReason::NotAPhone {
            value: recipient.to_string(),
        }));
    };
    let (error_kind, error_text) = if state == "failed" {
        // A status does not name the template; an empty name keeps the
        // template kinds (`TemplateNotFound`, `TemplateParams`), and
        // `error_message` leaves the name out. Media errors (131052,
        // 131053) only come with media messages: `MediaError`.
        let context = ErrorContext {
            sender: Some(sender.to_string()),
            recipient: Some(phone.clone()),
            template: Some(String::new()),
            media: true,
        };
        let action = first_error
            .unwrap_or_default()
            .to_action_error(None, None, &context);
        (
            Some(action.kind().to_string()),
            Some(error_message(&action)),
        )
    } else {
        (None, None)
    };
    Ok(Ok(InboundEvent {
        id: format!("{id}:{state}"),
        kind: InboundKind::MessageStatus,
        event: Event::new(
            MESSAGE_STATUS,
            json!({
                "message_id": id,
                "phone": phone,
                "sender_id": sender,
                "status": state,
                "timestamp": timestamp,
                "error_kind": error_kind,
                "error_message": error_text,
                "conversation_id": conversation_id,
            }),
        ),
    }))
}

/// The explanation of an error; for the template kinds without the
/// template's name, which a webhook does not carry.
fn error_message(action: &ActionError) -> String {
    match action {
        ActionError::TemplateNotFound { reason, .. }
        | ActionError::TemplateParams { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Meta's error object of a status or change; a code-less error keeps its
/// title and details.
fn meta_error(error: &Map<String, Json>) -> MetaError {
    let json = Json::Object(error.clone());
    MetaError::from_json(&json).unwrap_or_else(|| {
        let text = |key: &str| {
            error
                .get(key)
                .and_then(Json::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        };
        MetaError {
            message: text("message").or_else(|| text("title")),
            details: error
                .get("error_data")
                .and_then(|data| data.get("details"))
                .and_then(Json::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string),
            ..MetaError::default()
        }
    })
}

/// `+` and the digits Meta sends, when that is an E.164 number.
fn phone_of(wa_id: &str) -> Option<String> {
    let phone = format!("+{wa_id}");
    check_e164(&phone).ok().map(|()| phone)
}

/// `timestamp`: Unix seconds as a string (as Meta sends it) or a number, as
/// RFC 3339 in UTC.
fn timestamp(map: &Map<String, Json>, path: &str) -> Result<String, PayloadError> {
    let value = required(map, "timestamp", path)?;
    let path = join(path, "timestamp");
    let seconds = match value {
        Json::String(s) => s.trim().parse::<i64>().map_err(|_| PayloadError::Invalid {
            path: path.clone(),
            problem: format!("\"{s}\" is not a Unix time in seconds"),
        })?,
        Json::Number(n) => n.as_i64().ok_or_else(|| PayloadError::Invalid {
            path: path.clone(),
            problem: format!("{n} is not a Unix time in whole seconds"),
        })?,
        other => {
            return Err(PayloadError::WrongType {
                path,
                expected: "a string of Unix seconds",
                found: describe(other),
            })
        }
    };
    let time: DateTime<Utc> =
        DateTime::from_timestamp(seconds, 0).ok_or_else(|| PayloadError::Invalid {
            path,
            problem: format!("{seconds} is out of the range of dates"),
        })?;
    Ok(time.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Builds the `whatsapp.conversation_started` event of a
/// `whatsapp.message_received` event: the same `phone`, `text`, `sender_id`,
/// `conversation_id`, `timestamp` and `name`, and `sender_phone` none. Fields
/// the received event lacks are left out (`name` becomes none). Its dedupe key
/// is `<message id>:started` ([`InboundEvent::conversation_started`] sets it).
///
/// ```
/// use flowc::runtime::Event;
/// use flowc::serve::webhook::conversation_started_from;
///
/// let received = Event::new("whatsapp.message_received", serde_json::json!({
///     "phone": "+4915112345678", "text": "Hi", "sender_id": "berlin-office",
///     "timestamp": "2025-11-24T16:00:00Z", "conversation_id": "4915112345678:berlin-office",
///     "message_id": "wamid.A1", "name": null}));
/// let started = conversation_started_from(&received);
/// assert_eq!(started.trigger, "whatsapp.conversation_started");
/// assert_eq!(started.fields["text"], "Hi");
/// assert!(started.fields["sender_phone"].is_null());
/// assert!(!started.fields.contains_key("message_id"));
/// ```
pub fn conversation_started_from(received: &Event) -> Event {
    let mut fields = Map::new();
    for key in ["phone", "text", "sender_id", "conversation_id", "timestamp"] {
        if let Some(value) = received.fields.get(key) {
            fields.insert(key.to_string(), value.clone());
        }
    }
    fields.insert(
        "name".to_string(),
        received.fields.get("name").cloned().unwrap_or(Json::Null),
    );
    fields.insert("sender_phone".to_string(), Json::Null);
    Event {
        trigger: CONVERSATION_STARTED.to_string(),
        fields,
    }
}

// ---------------------------------------------------------------------------
// Host events
// ---------------------------------------------------------------------------

/// Reads the body of the generic event endpoint: `{"id": "...", "trigger":
/// "call.ended", "fields": {...}}`. `id` is the host's idempotency key (a
/// non-empty string of at most 256 characters): an event sent again with the
/// same id starts no runs. `fields` may be left out for a trigger without
/// fields. Any other top-level key is an error naming it, so a typo
/// (`"feilds"`) is not silently an event without fields.
///
/// The trigger and fields are checked against the schemas when the event is
/// dispatched ([`Event::to_value`]), not here.
///
/// ```
/// use flowc::serve::webhook::parse_host_event;
///
/// let (id, event) = parse_host_event(br#"{"id": "call_8f3a2c91", "trigger": "call.ended",
///     "fields": {"outcome": "no_answer"}}"#).unwrap();
/// assert_eq!(id, "call_8f3a2c91");
/// assert_eq!(event.trigger, "call.ended");
/// let err = parse_host_event(br#"{"id": "1", "trigger": "call.ended", "feilds": {}}"#).unwrap_err();
/// assert_eq!(err.to_string(), "unknown key `feilds`: an event has `id`, `trigger` and `fields`; did you mean `fields`?");
/// ```
pub fn parse_host_event(body: &[u8]) -> Result<(String, Event), PayloadError> {
    let root: Json = serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))?;
    let root = object(&root, "")?;
    if let Some(key) = root.keys().find(|k| !HOST_EVENT_KEYS.contains(&k.as_str())) {
        return Err(PayloadError::UnknownKey {
            key: key.clone(),
            suggestion: closest(key, HOST_EVENT_KEYS.iter().copied()).map(str::to_string),
        });
    }
    let id = required_str(root, "id", "")?;
    if id.trim().is_empty() {
        return Err(PayloadError::Invalid {
            path: "id".to_string(),
            problem: "the id is empty; give each event a unique id".to_string(),
        });
    }
    if id.chars().count() > MAX_HOST_EVENT_ID_CHARS {
        return Err(PayloadError::Invalid {
            path: "id".to_string(),
            problem: format!("the id is longer than {MAX_HOST_EVENT_ID_CHARS} characters"),
        });
    }
    let trigger = required_str(root, "trigger", "")?;
    if trigger.trim().is_empty() {
        return Err(PayloadError::Invalid {
            path: "trigger".to_string(),
            problem: "the trigger is empty; name one, e.g. \"call.ended\"".to_string(),
        });
    }
    let fields = optional_object(root, "fields", "")?
        .cloned()
        .unwrap_or_default();
    Ok((
        id.to_string(),
        Event {
            trigger: trigger.to_string(),
            fields,
        },
    ))
}

// ---------------------------------------------------------------------------
// JSON access with paths
// ---------------------------------------------------------------------------

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

fn object<'a>(value: &'a Json, path: &str) -> Result<&'a Map<String, Json>, PayloadError> {
    value.as_object().ok_or_else(|| PayloadError::WrongType {
        path: path.to_string(),
        expected: "an object",
        found: describe(value),
    })
}

/// `map[key]`, which must be there and not `null`.
fn required<'a>(
    map: &'a Map<String, Json>,
    key: &str,
    path: &str,
) -> Result<&'a Json, PayloadError> {
    match map.get(key) {
        Some(Json::Null) | None => Err(PayloadError::Missing {
            path: join(path, key),
        }),
        Some(value) => Ok(value),
    }
}

fn required_str<'a>(
    map: &'a Map<String, Json>,
    key: &str,
    path: &str,
) -> Result<&'a str, PayloadError> {
    let value = required(map, key, path)?;
    value.as_str().ok_or_else(|| PayloadError::WrongType {
        path: join(path, key),
        expected: "a string",
        found: describe(value),
    })
}

fn required_array<'a>(
    map: &'a Map<String, Json>,
    key: &str,
    path: &str,
) -> Result<&'a [Json], PayloadError> {
    let value = required(map, key, path)?;
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| PayloadError::WrongType {
            path: join(path, key),
            expected: "a list",
            found: describe(value),
        })
}

/// `map[key]` as a string; `None` when missing or `null`.
fn optional_str<'a>(
    map: &'a Map<String, Json>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, PayloadError> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(other) => Err(PayloadError::WrongType {
            path: join(path, key),
            expected: "a string",
            found: describe(other),
        }),
    }
}

/// `map[key]` as an object; `None` when missing or `null`.
fn optional_object<'a>(
    map: &'a Map<String, Json>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Json>>, PayloadError> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => object(value, &join(path, key)).map(Some),
    }
}

/// `map[key]` as a list; empty when missing or `null`.
fn optional_array<'a>(
    map: &'a Map<String, Json>,
    key: &str,
    path: &str,
) -> Result<&'a [Json], PayloadError> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(&[]),
        Some(_) => required_array(map, key, path),
    }
}
