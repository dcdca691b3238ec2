//! F3002 message-too-long: a message literal is longer than WhatsApp allows.
//!
//! Why: WhatsApp rejects text messages over 4,096 characters. Characters are
//! counted, not bytes: "ü" is one.
//!
//! Instead: shorten the text or split it into several messages.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The diagnostic for literal text of `chars` characters where at most `max`
/// are allowed. `interpolated` says the count covers only the literal parts.
pub fn check(chars: usize, max: usize, span: Span, interpolated: bool) -> Option<Diagnostic> {
    if chars <= max {
        return None;
    }
    let counted = if interpolated {
        format!("{chars} characters before interpolation")
    } else {
        format!("{chars} characters")
    };
    Some(
        Diagnostic::new(
            Code::MessageTooLong,
            format!("message is longer than {max} characters"),
        )
        .with_label(span, counted)
        .with_help(format!(
            "WhatsApp accepts at most {max} characters per message: shorten it or send it in parts"
        )),
    )
}
