//! The errors actions raise, one variant per row of the product document's
//! error table plus transport and AI errors. Flows catch them by kind name
//! (`catch OutsideWindow e { ... }`), so every variant maps to a kind declared
//! in `std_actions/errors.flow`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why an action failed.
///
/// ```
/// use flowc::runtime::ActionError;
///
/// let e = ActionError::OutsideWindow { recipient: "+4915112345678".into() };
/// assert_eq!(e.kind(), "OutsideWindow");
/// assert!(!e.is_retryable());
/// assert!(ActionError::RateLimited { message: "slow down".into(), retry_after_ms: Some(6000) }.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ActionError {
    /// The template is not in the catalog, not approved, paused or disabled.
    #[error("template `{template}` not found: {reason}")]
    TemplateNotFound {
        /// The template's name.
        template: String,
        /// Why, e.g. "not in the catalog".
        reason: String,
    },
    /// The variables do not fit the template's placeholders.
    #[error("template `{template}`: {reason}")]
    TemplateParams {
        /// The template's name.
        template: String,
        /// What does not fit.
        reason: String,
    },
    /// The sender is not online (not connected, not registered, locked).
    #[error("sender `{sender}` is offline: {reason}")]
    SenderOffline {
        /// The sender's name.
        sender: String,
        /// The status the provider reported.
        reason: String,
    },
    /// The phone number is not strict E.164, or not on WhatsApp.
    #[error("invalid phone number \"{phone}\": {reason}")]
    InvalidPhone {
        /// The number as given.
        phone: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Free text to a customer whose 24-hour window is closed.
    #[error("{recipient} has not written in the last 24 hours: free text is outside the window, use a template")]
    OutsideWindow {
        /// The recipient.
        recipient: String,
    },
    /// A marketing template to a customer who opted out (a stop word, or
    /// the imported opt-out list): refused before any call to WhatsApp.
    #[error("{recipient} opted out of marketing messages: the marketing template `{template}` is not sent")]
    OptedOut {
        /// The recipient.
        recipient: String,
        /// The template.
        template: String,
    },
    /// A send whose outcome is unknown: the call was made, but the process
    /// stopped (or the call timed out) before WhatsApp's answer was recorded.
    /// The engine never sends it again on its own.
    #[error("it is unknown whether the message to {recipient} was delivered: the answer to the send was lost; check the conversation before sending again")]
    DeliveryUnknown {
        /// The recipient.
        recipient: String,
    },
    /// A text longer than WhatsApp accepts.
    #[error("message has {chars} characters; at most {max} are allowed")]
    MessageTooLong {
        /// Characters in the message.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// Too many messages: the sender's throughput or the pair rate.
    #[error("rate limited: {message}")]
    RateLimited {
        /// The provider's explanation.
        message: String,
        /// How long to wait before the next try, if the provider said.
        retry_after_ms: Option<u64>,
    },
    /// WhatsApp limits the sender for its quality rating.
    #[error("sender limited for quality: {message}")]
    QualityLimited {
        /// The provider's explanation.
        message: String,
    },
    /// The message cannot be delivered (not on WhatsApp, old app, ...).
    #[error("undeliverable: {message}")]
    Undeliverable {
        /// The provider's explanation.
        message: String,
    },
    /// The request was malformed.
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// The provider's explanation.
        message: String,
    },
    /// The access token is expired or invalid.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The provider's explanation.
        message: String,
    },
    /// A temporary service error.
    #[error("temporary error: {message}")]
    Transient {
        /// The provider's explanation.
        message: String,
    },
    /// The provider did not answer in time.
    #[error("no answer within {after_ms} ms")]
    Timeout {
        /// The time limit.
        after_ms: u64,
    },
    /// The AI provider failed.
    #[error("AI error: {message}")]
    Ai {
        /// The provider's explanation.
        message: String,
    },
    /// A notification could not be delivered.
    #[error("notification failed: {message}")]
    NotifyFailed {
        /// The provider's explanation.
        message: String,
    },
    /// A date could not be formatted.
    #[error("invalid date: {message}")]
    InvalidDate {
        /// What is wrong.
        message: String,
    },
    /// A media file cannot be sent, uploaded or downloaded: wrong type, too
    /// large, unreadable, or gone from WhatsApp's store.
    #[error("media: {message}")]
    Media {
        /// What is wrong with the file.
        message: String,
    },
    /// An error kind declared by the host application for its own actions.
    #[error("{message}")]
    Custom {
        /// The declared kind's name.
        kind: String,
        /// What went wrong.
        message: String,
    },
}

impl ActionError {
    /// The kind's name as flows catch it, e.g. `RateLimited`.
    pub fn kind(&self) -> &str {
        match self {
            ActionError::TemplateNotFound { .. } => "TemplateNotFound",
            ActionError::TemplateParams { .. } => "TemplateParams",
            ActionError::SenderOffline { .. } => "SenderOffline",
            ActionError::InvalidPhone { .. } => "InvalidPhone",
            ActionError::OutsideWindow { .. } => "OutsideWindow",
            ActionError::OptedOut { .. } => "OptedOut",
            ActionError::MessageTooLong { .. } => "MessageTooLong",
            ActionError::DeliveryUnknown { .. } => "DeliveryUnknown",
            ActionError::RateLimited { .. } => "RateLimited",
            ActionError::QualityLimited { .. } => "QualityLimited",
            ActionError::Undeliverable { .. } => "Undeliverable",
            ActionError::InvalidRequest { .. } => "InvalidRequest",
            ActionError::Unauthorized { .. } => "Unauthorized",
            ActionError::Transient { .. } => "Transient",
            ActionError::Timeout { .. } => "Timeout",
            ActionError::Ai { .. } => "AiError",
            ActionError::NotifyFailed { .. } => "NotifyFailed",
            ActionError::InvalidDate { .. } => "InvalidDate",
            ActionError::Media { .. } => "MediaError",
            ActionError::Custom { kind, .. } => kind,
        }
    }

    /// Whether trying again later can succeed: rate limits, temporary
    /// errors and timeouts. The engine retries these once after a minute when
    /// the flow has no `retry` clause.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ActionError::RateLimited { .. }
                | ActionError::Transient { .. }
                | ActionError::Timeout { .. }
        )
    }

    /// Whether trying the same request again cannot help: the template, the
    /// number, the window or the request itself is wrong. An explicit `retry`
    /// clause retries every other kind.
    pub fn is_permanent(&self) -> bool {
        match self {
            ActionError::TemplateNotFound { .. }
            | ActionError::TemplateParams { .. }
            | ActionError::InvalidPhone { .. }
            | ActionError::OutsideWindow { .. }
            | ActionError::OptedOut { .. }
            | ActionError::MessageTooLong { .. }
            | ActionError::DeliveryUnknown { .. }
            | ActionError::QualityLimited { .. }
            | ActionError::Undeliverable { .. }
            | ActionError::InvalidRequest { .. }
            | ActionError::Unauthorized { .. }
            | ActionError::InvalidDate { .. }
            | ActionError::Media { .. } => true,
            ActionError::Custom { kind, .. } => kind == "EvalError",
            _ => false,
        }
    }

    /// The wait the provider asked for, in milliseconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ActionError::RateLimited { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }
}
