//! F3014 text-too-long: a text inside an argument (a button title, a row
//! description, a button id) is longer than its declaration allows.
//!
//! Why: WhatsApp rejects the whole message when one of its texts is too
//! long: a reply button's title has at most 20 characters, a list row's at
//! most 24. Characters are counted, not bytes; of an interpolated string
//! only the literal parts are counted.
//!
//! Example: `{ id: "later", title: "Remind me again tomorrow" }` as a reply
//! button.
//!
//! Instead: shorten the text. (Whole message texts, such as `message` of
//! `whatsapp.send_text`, are F3002 message-too-long.)

use crate::check::limits::Breach;
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// A text at `place` (`buttons.title`) that breaks its `Text(max: N)`.
pub fn diagnostic(breach: &Breach, place: &str, span: Span) -> Diagnostic {
    let max = match breach {
        Breach::TooLong { max, .. } => *max,
        _ => 0,
    };
    Diagnostic::new(
        Code::TextTooLong,
        format!("`{place}` is longer than {max} characters"),
    )
    .with_label(span, breach.to_string())
    .with_help(format!(
        "WhatsApp rejects the whole message when `{place}` has more than {max} characters: shorten it"
    ))
}
