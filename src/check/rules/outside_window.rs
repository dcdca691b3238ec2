//! F3008 outside-window: a free-text message is sent where the 24-hour
//! customer service window is closed.
//!
//! Why: WhatsApp delivers free text only within 24 hours of the customer's
//! last message (error 131047, "Outside 24-hour window"). A flow started by
//! `call.ended` has no such message; a flow that waits 24 hours or more has
//! let the window close.
//!
//! Instead: use an approved template (`whatsapp.send_template`), which works
//! at any time.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

const HELP: &str = "use a template message (`whatsapp.send_template`): free text only reaches \
customers who wrote to you within the last 24 hours";

/// The flow's trigger opens no window.
pub fn no_window(span: Span, trigger: &str, trigger_span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::OutsideWindow,
        "free-text message may be sent outside the 24-hour window",
    )
    .with_label(span, format!("`{trigger}` does not open a 24-hour window"))
    .with_secondary(trigger_span, "this trigger is not a customer message")
    .with_help(HELP)
}

/// Waits before the send add up to `waited` (24 hours or more).
pub fn after_waits(span: Span, waited: &str) -> Diagnostic {
    Diagnostic::new(
        Code::OutsideWindow,
        "free-text message is sent after the 24-hour window has closed",
    )
    .with_label(span, format!("sent after waiting {waited}"))
    .with_help(HELP)
}
