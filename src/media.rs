//! What the WhatsApp Cloud API accepts for each kind of media: mime types,
//! size limits, and whether a caption or a file name goes with it.
//!
//! One table, read by the checker (on the links and files it can see in a
//! flow) and by the runtime (on the values a run computes), so both stages
//! refuse the same things with the same words.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A kind of media message.
///
/// ```
/// use flowc::media::MediaKind;
///
/// let image = MediaKind::Image;
/// assert_eq!(image.as_str(), "image");
/// assert!(image.accepts_mime("image/png"));
/// assert!(!image.accepts_mime("application/pdf"));
/// assert_eq!(image.max_bytes(), 5 * 1024 * 1024);
/// assert_eq!(MediaKind::from_extension("invoice.PDF"), Some(("application/pdf", MediaKind::Document)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A picture: JPEG or PNG, at most 5 MB.
    Image,
    /// Any file, shown with its file name: at most 100 MB.
    Document,
    /// A sound or voice note: AAC, AMR, MP3, MP4 audio or OGG (Opus), at most 16 MB.
    Audio,
    /// A video: MP4 or 3GPP, at most 16 MB.
    Video,
    /// A WebP sticker: at most 100 KB static, 500 KB animated.
    Sticker,
}

/// Every kind, in the order the docs list them.
pub const MEDIA_KINDS: [MediaKind; 5] = [
    MediaKind::Image,
    MediaKind::Document,
    MediaKind::Audio,
    MediaKind::Video,
    MediaKind::Sticker,
];

const MB: u64 = 1024 * 1024;

/// File extensions the runtime and the checker know, with their mime type
/// and the kind of message a file of that type is sent as.
const EXTENSIONS: &[(&str, &str, MediaKind)] = &[
    ("jpg", "image/jpeg", MediaKind::Image),
    ("jpeg", "image/jpeg", MediaKind::Image),
    ("png", "image/png", MediaKind::Image),
    ("webp", "image/webp", MediaKind::Sticker),
    ("mp4", "video/mp4", MediaKind::Video),
    ("3gp", "video/3gpp", MediaKind::Video),
    ("3gpp", "video/3gpp", MediaKind::Video),
    ("aac", "audio/aac", MediaKind::Audio),
    ("amr", "audio/amr", MediaKind::Audio),
    ("mp3", "audio/mpeg", MediaKind::Audio),
    ("m4a", "audio/mp4", MediaKind::Audio),
    ("ogg", "audio/ogg", MediaKind::Audio),
    ("opus", "audio/ogg", MediaKind::Audio),
    ("pdf", "application/pdf", MediaKind::Document),
    ("txt", "text/plain", MediaKind::Document),
    ("csv", "text/csv", MediaKind::Document),
    ("doc", "application/msword", MediaKind::Document),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        MediaKind::Document,
    ),
    ("xls", "application/vnd.ms-excel", MediaKind::Document),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        MediaKind::Document,
    ),
    ("ppt", "application/vnd.ms-powerpoint", MediaKind::Document),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        MediaKind::Document,
    ),
];

impl MediaKind {
    /// The kind's name in the Cloud API and in flows: `image`, `document`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Document => "document",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Sticker => "sticker",
        }
    }

    /// The action that sends this kind, e.g. `whatsapp.send_image`.
    pub fn send_action(self) -> &'static str {
        match self {
            MediaKind::Image => "whatsapp.send_image",
            MediaKind::Document => "whatsapp.send_document",
            MediaKind::Audio => "whatsapp.send_audio",
            MediaKind::Video => "whatsapp.send_video",
            MediaKind::Sticker => "whatsapp.send_sticker",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<MediaKind> {
        MEDIA_KINDS.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The mime types WhatsApp accepts for this kind; empty for documents,
    /// which may be any file.
    pub fn mime_types(self) -> &'static [&'static str] {
        match self {
            MediaKind::Image => &["image/jpeg", "image/png"],
            MediaKind::Document => &[],
            MediaKind::Audio => &[
                "audio/aac",
                "audio/amr",
                "audio/mpeg",
                "audio/mp4",
                "audio/ogg",
            ],
            MediaKind::Video => &["video/mp4", "video/3gpp"],
            MediaKind::Sticker => &["image/webp"],
        }
    }

    /// Whether a file of this mime type can be sent as this kind. Parameters
    /// (`audio/ogg; codecs=opus`) and case are ignored.
    pub fn accepts_mime(self, mime: &str) -> bool {
        let essence = mime.split(';').next().unwrap_or("").trim();
        self.mime_types().is_empty()
            || self
                .mime_types()
                .iter()
                .any(|known| known.eq_ignore_ascii_case(essence))
    }

    /// The largest file WhatsApp takes for this kind, in bytes. For stickers
    /// the limit of animated ones (static ones: 100 KB).
    pub fn max_bytes(self) -> u64 {
        match self {
            MediaKind::Image => 5 * MB,
            MediaKind::Document => 100 * MB,
            MediaKind::Audio | MediaKind::Video => 16 * MB,
            MediaKind::Sticker => 500 * 1024,
        }
    }

    /// Whether a caption can go with it (not with audio and stickers).
    pub fn takes_caption(self) -> bool {
        matches!(
            self,
            MediaKind::Image | MediaKind::Document | MediaKind::Video
        )
    }

    /// Whether a file name can go with it (documents only).
    pub fn takes_filename(self) -> bool {
        self == MediaKind::Document
    }

    /// The mime type and usual kind of a file, by its extension
    /// (case-insensitive); `None` for extensions this table does not know.
    pub fn from_extension(path: &str) -> Option<(&'static str, MediaKind)> {
        // The last path segment's extension; query strings of links are
        // not part of the file name.
        let name = path.split(['?', '#']).next().unwrap_or(path);
        let name = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let (_, extension) = name.rsplit_once('.')?;
        EXTENSIONS
            .iter()
            .find(|(known, _, _)| known.eq_ignore_ascii_case(extension))
            .map(|&(_, mime, kind)| (mime, kind))
    }

    /// What this kind accepts, in words for error messages:
    /// "JPEG or PNG, at most 5 MB".
    pub fn describe(self) -> &'static str {
        match self {
            MediaKind::Image => "JPEG or PNG, at most 5 MB",
            MediaKind::Document => "any file type, at most 100 MB",
            MediaKind::Audio => "AAC, AMR, MP3, MP4 audio or OGG/Opus, at most 16 MB",
            MediaKind::Video => "MP4 or 3GPP, at most 16 MB",
            MediaKind::Sticker => "WebP, at most 100 KB (animated: 500 KB)",
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a media file cannot be sent as a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaProblem {
    /// Its mime type is not one the kind accepts.
    WrongType {
        /// The kind.
        kind: MediaKind,
        /// The file's mime type.
        mime: String,
    },
    /// It is larger than the kind's limit.
    TooLarge {
        /// The kind.
        kind: MediaKind,
        /// The file's size in bytes.
        bytes: u64,
    },
}

impl fmt::Display for MediaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaProblem::WrongType { kind, mime } => write!(
                f,
                "a file of type {mime} cannot be sent as {} {kind} (WhatsApp takes {})",
                article(*kind),
                kind.describe()
            ),
            MediaProblem::TooLarge { kind, bytes } => write!(
                f,
                "the file has {} and is too large for {} {kind} (WhatsApp takes {})",
                human_size(*bytes),
                article(*kind),
                kind.describe()
            ),
        }
    }
}

impl MediaKind {
    /// Checks a file's mime type (when known) and size (when known)
    /// against this kind.
    pub fn check(self, mime: Option<&str>, bytes: Option<u64>) -> Result<(), MediaProblem> {
        if let Some(mime) = mime {
            if !self.accepts_mime(mime) {
                return Err(MediaProblem::WrongType {
                    kind: self,
                    mime: mime.to_string(),
                });
            }
        }
        match bytes {
            Some(bytes) if bytes > self.max_bytes() => {
                Err(MediaProblem::TooLarge { kind: self, bytes })
            }
            _ => Ok(()),
        }
    }
}

fn article(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image | MediaKind::Audio => "an",
        _ => "a",
    }
}

/// `5.2 MB`, `830 KB`, `12 bytes`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= MB {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    } else if bytes >= 1024 {
        format!("{} KB", bytes.div_ceil(1024))
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_name_their_kind_and_mime_type() {
        assert_eq!(
            MediaKind::from_extension("https://example.com/a/photo.JPG?size=2"),
            Some(("image/jpeg", MediaKind::Image))
        );
        assert_eq!(
            MediaKind::from_extension("voice.opus"),
            Some(("audio/ogg", MediaKind::Audio))
        );
        assert_eq!(MediaKind::from_extension("README"), None);
        assert_eq!(MediaKind::from_extension("archive.xyz"), None);
    }

    #[test]
    fn every_kind_with_mime_types_accepts_its_own_extensions() {
        for (extension, mime, kind) in EXTENSIONS {
            assert!(kind.accepts_mime(mime), "{extension}: {kind} takes {mime}");
        }
    }

    #[test]
    fn checks_name_the_problem() {
        assert_eq!(
            MediaKind::Document.check(Some("application/zip"), Some(1)),
            Ok(())
        );
        assert_eq!(
            MediaKind::Image.check(Some("application/pdf"), None).unwrap_err().to_string(),
            "a file of type application/pdf cannot be sent as an image (WhatsApp takes JPEG or PNG, at most 5 MB)"
        );
        assert_eq!(
            MediaKind::Sticker.check(Some("image/webp"), Some(600 * 1024)).unwrap_err().to_string(),
            "the file has 600 KB and is too large for a sticker (WhatsApp takes WebP, at most 100 KB (animated: 500 KB))"
        );
        assert!(MediaKind::Audio.accepts_mime("audio/ogg; codecs=opus"));
    }
}
