//! F4020 via-without-sender: `via` limits a handler to some senders, but its
//! trigger's events name no sender.
//!
//! Why: the runtime picks the handlers of an event by the event's sender
//! field (a field of type `Sender`); without one, `via` could never match.
//!
//! Instead: remove `via`, or use it on a trigger whose events come to a
//! sender, such as `whatsapp.message_received`.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `via` at `span` on `trigger`.
pub fn diagnostic(trigger: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::ViaWithoutSender,
        format!("`via` on `{trigger}`, whose events name no sender"),
    )
    .with_label(span, "no field of type `Sender` to match")
    .with_help(
        "remove `via`, or use it on a trigger with a sender field, e.g. `on whatsapp.message_received as msg via \"berlin-office\" { ... }`",
    )
}
