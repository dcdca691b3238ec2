//! The engine's connections to the outside world, as traits: WhatsApp, AI,
//! notifications, the clock, and the store. The same flow runs against the
//! real HTTP APIs, against the dry-run console provider, and in tests against
//! recording fakes with virtual time.

pub mod campaigns;
pub mod clock;
pub mod cloud_api;
pub mod console;
pub mod conversations;
pub mod location;
pub mod message;
mod millis;
pub mod openai;
pub mod postgres;
mod preview;
pub mod recording;
pub mod routing;
pub mod scripted_ai;
pub mod setup;
pub mod sqlite;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use campaigns::{
    Campaign, CampaignCounts, CampaignRecipient, CampaignStart, CampaignState, OptChangeRecord,
    RecipientState,
};
pub use clock::{Clock, SystemClock, VirtualClock};
pub use conversations::{Burst, BurstMessage, PausedConversation};
pub use message::{
    Choice, Choices, InteractiveMessage, ListSection, MediaInfo, MediaMessage, MediaSource,
    MediaUpload, ReadReceipt, TemplateButton, TemplateButtonParameter, TemplateHeader,
};
pub use store::{
    Delivery, Inbound, InboundCheck, InboundQuery, InboxEvent, MemoryStore, RunOutcome, RunRecord,
    SendState, SentRecord, SlotRequest, Store, StoreError, StoredRun, WaitKey, WaitKeyRef,
};

use crate::runtime::ActionError;

/// A WhatsApp sender as the provider needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderRef {
    /// The sender's name in flow.toml, e.g. `berlin-office`.
    pub name: String,
    /// Meta's ID of the business phone number.
    pub phone_number_id: String,
}

/// The parameters of a template's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplateParameters {
    /// For `{{1}}..{{n}}`, in order.
    Positional(Vec<String>),
    /// For named placeholders, in the template's order.
    Named(Vec<(String, String)>),
}

impl TemplateParameters {
    /// How many parameters.
    pub fn len(&self) -> usize {
        match self {
            TemplateParameters::Positional(values) => values.len(),
            TemplateParameters::Named(pairs) => pairs.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A template message, checked and ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMessage {
    /// From.
    pub sender: SenderRef,
    /// To, in E.164.
    pub to: String,
    /// The recipient's name, for personalization, if given.
    pub recipient_name: Option<String>,
    /// The approved template's name.
    pub template: String,
    /// Its language code, from the catalog.
    pub language: String,
    /// The body parameters.
    pub parameters: TemplateParameters,
    /// The catalog's body text, placeholders and all, shared with the
    /// catalog; `None` when it is not known. [`TemplateMessage::preview`]
    /// fills it in.
    pub body: Option<Arc<str>>,
    /// The header's parameter, for templates whose header has one.
    pub header: Option<TemplateHeader>,
    /// The buttons' parameters: quick-reply payloads and URL suffixes.
    pub buttons: Vec<TemplateButton>,
}

impl TemplateMessage {
    /// The body with the parameters in its placeholders, as the customer
    /// will read it, for dry runs and logs; `None` when the body is not
    /// known. Made when asked for, not with every send.
    ///
    /// ```
    /// use flowc::providers::{SenderRef, TemplateMessage, TemplateParameters};
    ///
    /// let message = TemplateMessage {
    ///     sender: SenderRef { name: "berlin-office".into(), phone_number_id: "1065".into() },
    ///     to: "+4915112345678".into(),
    ///     recipient_name: None,
    ///     template: "appointment_reminder".into(),
    ///     language: "de".into(),
    ///     parameters: TemplateParameters::Positional(vec!["Anna".into(), "10:30".into()]),
    ///     body: Some("Hallo {{1}}, bis morgen um {{2}}!".into()),
    ///     header: None,
    ///     buttons: Vec::new(),
    /// };
    /// assert_eq!(message.preview().as_deref(), Some("Hallo Anna, bis morgen um 10:30!"));
    /// ```
    pub fn preview(&self) -> Option<String> {
        let body = self.body.as_deref()?;
        Some(preview::fill_placeholders(body, &self.parameters))
    }
}

/// A free-text message, checked and ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextMessage {
    /// From.
    pub sender: SenderRef,
    /// To, in E.164.
    pub to: String,
    /// The text.
    pub body: String,
}

/// What WhatsApp answered to a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// WhatsApp's message id (`wamid...`).
    pub message_id: String,
}

/// A sender's state, as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderStatus {
    /// Whether messages can be sent from it now.
    pub online: bool,
    /// The quality rating: `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    pub quality: String,
    /// The provider's description, e.g. `CONNECTED`.
    pub detail: String,
}

impl SenderStatus {
    /// A connected sender with a green rating.
    pub fn online() -> Self {
        SenderStatus {
            online: true,
            quality: "GREEN".into(),
            detail: "CONNECTED".into(),
        }
    }
}

/// Sends WhatsApp messages.
#[async_trait]
pub trait WhatsApp: Send + Sync {
    /// Sends an approved template.
    async fn send_template(&self, message: &TemplateMessage) -> Result<SentMessage, ActionError>;
    /// Sends free text (inside the 24-hour window).
    async fn send_text(&self, message: &TextMessage) -> Result<SentMessage, ActionError>;
    /// Reads whether the sender is online.
    async fn sender_status(&self, sender: &SenderRef) -> Result<SenderStatus, ActionError>;
    /// Sends reply buttons or a list (inside the 24-hour window).
    async fn send_interactive(
        &self,
        message: &InteractiveMessage,
    ) -> Result<SentMessage, ActionError> {
        Err(unsupported("send interactive messages", &message.sender))
    }
    /// Sends an image, document, audio, video or sticker (inside the window).
    async fn send_media(&self, message: &MediaMessage) -> Result<SentMessage, ActionError> {
        Err(unsupported("send media", &message.sender))
    }
    /// Uploads a file to WhatsApp's media store; returns its media id.
    async fn upload_media(&self, upload: &MediaUpload) -> Result<String, ActionError> {
        Err(unsupported("upload media", &upload.sender))
    }
    /// Looks up a stored media file: its download URL, type and size.
    async fn media_info(
        &self,
        sender: &SenderRef,
        media_id: &str,
    ) -> Result<MediaInfo, ActionError> {
        let _ = media_id;
        Err(unsupported("look up media", sender))
    }
    /// Downloads a media file found with [`WhatsApp::media_info`]. Fails
    /// with `MediaError` as soon as more than `max_bytes` arrive, and when
    /// the bytes do not match the SHA-256 the lookup reported.
    async fn download_media(
        &self,
        sender: &SenderRef,
        info: &MediaInfo,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ActionError> {
        let _ = (info, max_bytes);
        Err(unsupported("download media", sender))
    }
    /// Marks a customer's message as read (and shows the typing indicator).
    async fn mark_read(&self, receipt: &ReadReceipt) -> Result<(), ActionError> {
        Err(unsupported("mark messages as read", &receipt.sender))
    }
}

/// The error of a provider that does not implement a message kind.
fn unsupported(what: &str, sender: &SenderRef) -> ActionError {
    ActionError::InvalidRequest {
        message: format!(
            "the WhatsApp provider of sender `{}` cannot {what}",
            sender.name
        ),
    }
}

/// A request to an AI assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiRequest {
    /// The assistant's name in flow.toml.
    pub assistant: String,
    /// Its model, if configured.
    pub model: Option<String>,
    /// Its instructions (system prompt), if configured.
    pub instructions: Option<String>,
    /// The customer identifier: the provider finds or creates the
    /// conversation for it and keeps its history.
    pub customer: String,
    /// The message to respond to.
    pub message: String,
    /// Context variables for this response.
    pub variables: BTreeMap<String, String>,
}

/// The assistant's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiAnswer {
    /// The generated text.
    pub text: String,
    /// The conversation it belongs to: the same for the same customer.
    pub conversation_id: String,
}

/// Generates AI responses.
#[async_trait]
pub trait Ai: Send + Sync {
    /// Answers `request.message` in the customer's conversation.
    async fn generate_response(&self, request: &AiRequest) -> Result<AiAnswer, ActionError>;
}

/// Notifies the team (chat, e-mail, pager: the host decides).
#[async_trait]
pub trait Notify: Send + Sync {
    /// Sends `message` to `channel`.
    async fn notify(&self, channel: &str, message: &str) -> Result<(), ActionError>;
}

/// Where `log(...)` lines go.
pub trait Log: Send + Sync {
    /// Writes one line at `level` for the run of `flow`.
    fn log(&self, flow: &str, level: &str, message: &str);
}

// Shared providers: one `Arc<Console>` can be the WhatsApp, notify and log
// provider at once.
#[async_trait]
impl<T: WhatsApp + ?Sized> WhatsApp for std::sync::Arc<T> {
    async fn send_template(&self, message: &TemplateMessage) -> Result<SentMessage, ActionError> {
        (**self).send_template(message).await
    }
    async fn send_text(&self, message: &TextMessage) -> Result<SentMessage, ActionError> {
        (**self).send_text(message).await
    }
    async fn sender_status(&self, sender: &SenderRef) -> Result<SenderStatus, ActionError> {
        (**self).sender_status(sender).await
    }
    async fn send_interactive(
        &self,
        message: &InteractiveMessage,
    ) -> Result<SentMessage, ActionError> {
        (**self).send_interactive(message).await
    }
    async fn send_media(&self, message: &MediaMessage) -> Result<SentMessage, ActionError> {
        (**self).send_media(message).await
    }
    async fn upload_media(&self, upload: &MediaUpload) -> Result<String, ActionError> {
        (**self).upload_media(upload).await
    }
    async fn media_info(
        &self,
        sender: &SenderRef,
        media_id: &str,
    ) -> Result<MediaInfo, ActionError> {
        (**self).media_info(sender, media_id).await
    }
    async fn download_media(
        &self,
        sender: &SenderRef,
        info: &MediaInfo,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ActionError> {
        (**self).download_media(sender, info, max_bytes).await
    }
    async fn mark_read(&self, receipt: &ReadReceipt) -> Result<(), ActionError> {
        (**self).mark_read(receipt).await
    }
}

#[async_trait]
impl<T: Ai + ?Sized> Ai for std::sync::Arc<T> {
    async fn generate_response(&self, request: &AiRequest) -> Result<AiAnswer, ActionError> {
        (**self).generate_response(request).await
    }
}

#[async_trait]
impl<T: Notify + ?Sized> Notify for std::sync::Arc<T> {
    async fn notify(&self, channel: &str, message: &str) -> Result<(), ActionError> {
        (**self).notify(channel, message).await
    }
}

impl<T: Log + ?Sized> Log for std::sync::Arc<T> {
    fn log(&self, flow: &str, level: &str, message: &str) {
        (**self).log(flow, level, message)
    }
}

/// A credential (access token, API key). Its `Debug` and `Display` never show
/// the value, so it cannot end up in a log line or an error message.
///
/// ```
/// use flowc::providers::Secret;
///
/// let token = Secret::new("EAAG-very-secret");
/// assert_eq!(format!("{token:?}"), "Secret(***)");
/// assert_eq!(token.expose(), "EAAG-very-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Reads a credential from an environment variable.
    pub fn from_env(variable: &str) -> Result<Self, SecretError> {
        match std::env::var(variable) {
            Ok(value) if !value.trim().is_empty() => Ok(Secret(value.trim().to_string())),
            Ok(_) => Err(SecretError::Empty(variable.to_string())),
            Err(_) => Err(SecretError::Missing(variable.to_string())),
        }
    }

    /// The value, for the one place that sends it (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A credential could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("the environment variable {0} is not set")]
    Missing(String),
    /// The environment variable is empty.
    #[error("the environment variable {0} is empty")]
    Empty(String),
}
