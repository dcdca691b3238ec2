//! The rich message kinds beside text and templates: reply buttons and lists
//! (interactive messages), media by link or uploaded id, media uploads and
//! downloads, and read receipts. Each is checked by the runtime before a
//! provider sees it, so a provider only maps it to its wire format.

use serde::{Deserialize, Serialize};

use super::SenderRef;
use crate::media::MediaKind;

/// One choice the customer can tap: a reply button or a list row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// What the flow receives as `reply_id` when the customer picks it.
    pub id: String,
    /// What the customer sees on the button or row.
    pub title: String,
    /// A list row's second line; always `None` for buttons.
    pub description: Option<String>,
}

/// A section of a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    /// The section's heading; required by WhatsApp when there are several.
    pub title: Option<String>,
    /// Its rows.
    pub rows: Vec<Choice>,
}

/// What an interactive message offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Choices {
    /// Up to three reply buttons under the message.
    Buttons(Vec<Choice>),
    /// A button that opens a list of rows in sections.
    List {
        /// The text of the button that opens the list.
        button: String,
        /// The sections, each with rows.
        sections: Vec<ListSection>,
    },
}

impl Choices {
    /// Every choice, in order.
    pub fn all(&self) -> Vec<&Choice> {
        match self {
            Choices::Buttons(buttons) => buttons.iter().collect(),
            Choices::List { sections, .. } => sections.iter().flat_map(|s| &s.rows).collect(),
        }
    }
}

/// A message with reply buttons or a list, checked and ready to send
/// (inside the 24-hour window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractiveMessage {
    /// From.
    pub sender: SenderRef,
    /// To, in E.164.
    pub to: String,
    /// A text header above the body.
    pub header: Option<String>,
    /// The message text.
    pub body: String,
    /// A small text under the body.
    pub footer: Option<String>,
    /// The buttons or the list.
    pub choices: Choices,
}

/// Where a media file comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaSource {
    /// A public http(s) link WhatsApp downloads it from.
    Link(String),
    /// The id of a file uploaded to WhatsApp before.
    Id(String),
}

/// A media message, checked and ready to send (inside the 24-hour window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMessage {
    /// From.
    pub sender: SenderRef,
    /// To, in E.164.
    pub to: String,
    /// Image, document, audio, video or sticker.
    pub kind: MediaKind,
    /// The file.
    pub source: MediaSource,
    /// Text under the media (image, document, video only).
    pub caption: Option<String>,
    /// The file name the customer sees (documents only).
    pub filename: Option<String>,
}

/// A local file to upload to WhatsApp's media store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUpload {
    /// The sender whose number the file is uploaded for.
    pub sender: SenderRef,
    /// The local path the flow named, for logs and tests.
    pub path: String,
    /// The file's name, without directories.
    pub file_name: String,
    /// Its mime type.
    pub mime_type: String,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// What WhatsApp knows of a stored media file (`GET /{media-id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The media id.
    pub id: String,
    /// Where to download it, with the access token; expires after minutes.
    pub url: String,
    /// Its mime type.
    pub mime_type: String,
    /// Its SHA-256, hex, when WhatsApp reports one.
    pub sha256: Option<String>,
    /// Its size in bytes, when WhatsApp reports one.
    pub file_size: Option<u64>,
}

/// Marks a customer's message as read, optionally showing the typing
/// indicator until the next message (at most 25 seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReceipt {
    /// The sender that received the message.
    pub sender: SenderRef,
    /// WhatsApp's id of the customer's message (`wamid...`).
    pub message_id: String,
    /// Whether to show "typing..." too.
    pub typing: bool,
}

/// A template's header parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplateHeader {
    /// The value of a text header's placeholder; `name` for a named one.
    Text {
        /// The placeholder's name, for named templates.
        name: Option<String>,
        /// The value.
        text: String,
    },
    /// The file of an image, document or video header.
    Media {
        /// Image, document or video.
        kind: MediaKind,
        /// The file.
        source: MediaSource,
        /// For a document: the file name the customer sees.
        filename: Option<String>,
    },
}

/// A parameter of one of a template's buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateButton {
    /// The button's position among the template's buttons, from 0.
    pub index: usize,
    /// What the parameter is.
    pub parameter: TemplateButtonParameter,
}

/// The parameter a template button takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplateButtonParameter {
    /// A quick-reply button's payload: what the flow receives as `reply_id`
    /// when the customer taps it.
    Payload(String),
    /// The end of a dynamic URL button's link (its `{{1}}`); for an
    /// authentication template's copy-code button, the code.
    UrlSuffix(String),
    /// The code a marketing template's copy-code button copies (at most 15
    /// characters).
    CouponCode(String),
}
