//! F4010 invalid-wait: a `wait for` names a trigger that cannot be waited
//! for, or waits for no time or longer than 30 days.
//!
//! Why: a waiting run is found by its key in the trigger's correlation field
//! (`@correlate(phone)`); a trigger without one could never wake it. A wait
//! of no time never sees a reply, and a run that waits for months keeps a
//! customer's state long after anyone remembers the question.
//!
//! Instead: wait for a trigger declared with `@correlate(FIELD)` (for
//! WhatsApp, `whatsapp.message_received`), within 1s to 30d.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The longest wait, in milliseconds: 30 days.
pub const MAX_WAIT_MS: u64 = 30 * 24 * 3_600_000;

/// The trigger declares no correlation field.
pub fn not_correlated(span: Span, trigger: &str, waitable: &[&str]) -> Diagnostic {
    let help = if waitable.is_empty() {
        format!("declare the field that identifies the customer: `@correlate(FIELD)` above `trigger {trigger}`")
    } else {
        format!(
            "triggers that can be waited for: {}; or declare `@correlate(FIELD)` above `trigger {trigger}`",
            waitable
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Diagnostic::new(
        Code::InvalidWait,
        format!("`{trigger}` cannot be waited for: it declares no correlation field"),
    )
    .with_label(span, "no `@correlate(FIELD)` on this trigger")
    .with_help(help)
}

/// The duration is zero.
pub fn no_time(span: Span) -> Diagnostic {
    Diagnostic::new(Code::InvalidWait, "a run waits from 1ms to 30 days")
        .with_label(span, "waits no time at all")
        .with_help("give the customer time to answer, e.g. `within 2h`")
}

/// The duration is longer than 30 days.
pub fn too_long(span: Span) -> Diagnostic {
    Diagnostic::new(Code::InvalidWait, "a run waits from 1ms to 30 days")
        .with_label(span, "longer than 30 days")
        .with_help("wait at most 30d, e.g. `within 3d`; for longer, send a template later from another flow")
}
