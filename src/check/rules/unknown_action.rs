//! F1002 unknown-action: a call names an action that is not declared.
//!
//! Why: the run would stop at that call.
//!
//! Example: `whatsapp.send_message(...)`; free text is sent with
//! `whatsapp.send_text`, templates with `whatsapp.send_template`.
//!
//! Instead: call a declared action, or declare the host application's own
//! with `action crm.create_lead(phone: Phone) -> Lead`.
//!
//! The suggestion first tries the words people use for what an action does
//! (`send_message` and `send_free_text` mean `send_text`, `send_photo`
//! means `send_image`), then the closest name by spelling: `send_message`
//! is spelt closer to `send_image` than to `send_text`, but means the latter.

use super::{closest, list_names};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// Words of a misremembered action name and the word the declared actions
/// use instead.
const SYNONYMS: &[(&str, &str)] = &[
    ("message", "text"),
    ("free_text", "text"),
    ("freetext", "text"),
    ("msg", "text"),
    ("sms", "text"),
    ("reply", "text"),
    ("photo", "image"),
    ("picture", "image"),
    ("pic", "image"),
    ("pdf", "document"),
    ("file", "document"),
    ("doc", "document"),
    ("voice", "audio"),
    ("voice_note", "audio"),
    ("sound", "audio"),
    ("movie", "video"),
    ("clip", "video"),
    ("quick_replies", "buttons"),
    ("button", "buttons"),
    ("menu", "list"),
    ("read", "mark_read"),
    ("upload", "upload_media"),
    ("download", "download_media"),
];

/// The declared action a name most plausibly means: the same name with a
/// synonym replaced (`whatsapp.send_message` -> `whatsapp.send_text`), else
/// the closest by spelling.
pub fn suggestion<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let (namespace, last) = name.rsplit_once('.').unwrap_or(("", name));
    let prefix = if namespace.is_empty() {
        String::new()
    } else {
        format!("{namespace}.")
    };
    for (word, meant) in SYNONYMS {
        // The word as the whole name, or as its end after a verb: `send_message`.
        let candidates = [
            (last == *word).then(|| format!("{prefix}{meant}")),
            last.strip_suffix(word)
                .filter(|verb| verb.ends_with('_'))
                .map(|verb| format!("{prefix}{verb}{meant}")),
        ];
        for candidate in candidates.into_iter().flatten() {
            if let Some(found) = known.iter().find(|k| k.eq_ignore_ascii_case(&candidate)) {
                return Some(found);
            }
        }
    }
    closest(name, known.iter().copied())
}

/// The diagnostic for `name`, with the declared actions.
pub fn diagnostic(name: &Ident, known: &[&str]) -> Diagnostic {
    let suggested = suggestion(&name.name, known).map(|s| format!("did you mean `{s}`?"));
    let help = suggested.unwrap_or_else(|| {
        format!(
            "declared actions are {}",
            list_names(known.iter().copied(), 10)
        )
    });
    Diagnostic::new(
        Code::UnknownAction,
        format!("unknown action `{}`", name.name),
    )
    .with_label(name.span, "no action with this name")
    .with_help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &[
        "log",
        "whatsapp.send_text",
        "whatsapp.send_template",
        "whatsapp.send_image",
        "whatsapp.send_document",
        "whatsapp.mark_read",
    ];

    #[test]
    fn the_meaning_wins_over_the_spelling() {
        assert_eq!(
            suggestion("whatsapp.send_message", KNOWN),
            Some("whatsapp.send_text")
        );
        assert_eq!(
            suggestion("whatsapp.send_free_text", KNOWN),
            Some("whatsapp.send_text")
        );
        assert_eq!(
            suggestion("whatsapp.send_photo", KNOWN),
            Some("whatsapp.send_image")
        );
        assert_eq!(
            suggestion("whatsapp.send_pdf", KNOWN),
            Some("whatsapp.send_document")
        );
        assert_eq!(
            suggestion("whatsapp.send_templat", KNOWN),
            Some("whatsapp.send_template")
        );
        assert_eq!(suggestion("crm.create_lead", KNOWN), None);
    }
}
