//! F3016 invalid-media: a media link or file literal cannot be sent.
//!
//! Why: WhatsApp downloads a `link` itself, so it must be an http(s) address;
//! and each kind of message takes certain files only (an image is a JPEG or
//! PNG of at most 5 MB, a sticker a WebP). The checker looks at the file
//! extension of literal links and files, and at the size of local files
//! that exist, with the same table the runtime uses (`src/media.rs`).
//! Template headers with an image, video or document are checked the same
//! way against the template's header in flow.toml.
//!
//! Example: `whatsapp.send_image(..., link: "https://example.com/invoice.pdf")`.
//!
//! Instead: send the file with the action for its kind (a PDF with
//! `whatsapp.send_document`), convert it, or make it smaller.

use crate::diag::{Code, Diagnostic};
use crate::media::{MediaKind, MediaProblem};
use crate::source::Span;

fn article(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image | MediaKind::Audio => "an",
        _ => "a",
    }
}

/// A `link` that is not an http(s) address.
pub fn not_a_link(span: Span) -> Diagnostic {
    Diagnostic::new(Code::InvalidMedia, "media link is not an http(s) address")
        .with_label(span, "WhatsApp cannot download this")
        .with_help(
            "give a public address starting with `https://`; for a local file use `file:` instead",
        )
}

/// A file whose `extension` (with its `mime` type) does not fit `kind`;
/// `better` is the action that sends files of its own kind, if any.
pub fn wrong_kind(
    span: Span,
    extension: &str,
    mime: &str,
    kind: MediaKind,
    better: Option<&str>,
) -> Diagnostic {
    let help = match better {
        Some(action) => format!("send it with `{action}` instead, or convert the file"),
        None => format!("{} {kind} must be {}", article(kind), kind.describe()),
    };
    Diagnostic::new(
        Code::InvalidMedia,
        format!(
            "a {} file cannot be sent as {} {kind}",
            extension.to_uppercase(),
            article(kind)
        ),
    )
    .with_label(
        span,
        format!(
            "{mime}; {} {kind} must be {}",
            article(kind),
            kind.describe()
        ),
    )
    .with_help(help)
}

/// A local file larger than its kind takes.
pub fn too_large(span: Span, problem: &MediaProblem) -> Diagnostic {
    Diagnostic::new(Code::InvalidMedia, "media file is too large")
        .with_label(span, problem.to_string())
        .with_help("make the file smaller, or send a large file as a document")
}
