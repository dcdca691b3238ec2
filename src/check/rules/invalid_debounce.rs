//! F4021 invalid-debounce: `debounce` is used on a trigger without a
//! customer, or with a pause outside 1 second to 10 minutes.
//!
//! Why: a burst is a customer's messages to one sender, collected until the
//! customer pauses; a trigger whose events name no customer (no
//! `@opens_window(FIELD)`) has no bursts. A pause under a second merges
//! nothing; one over ten minutes leaves the customer without an answer.
//!
//! Instead: use `debounce` on `whatsapp.message_received` with a pause such
//! as `debounce 8s`.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The shortest pause `debounce` takes, in milliseconds.
pub const MIN_MILLIS: u64 = 1_000;
/// The longest pause `debounce` takes, in milliseconds.
pub const MAX_MILLIS: u64 = 10 * 60 * 1_000;

/// `debounce` at `span` on `trigger`, whose events name no customer.
pub fn no_customer(trigger: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidDebounce,
        format!("`debounce` on `{trigger}`, whose events name no customer"),
    )
    .with_label(span, "no customer whose messages could be collected")
    .with_help(
        "use `debounce` on a trigger that opens a customer's window, e.g. `on whatsapp.message_received as msg debounce 8s { ... }`",
    )
}

/// `debounce` at `span` with a pause of `millis`, if outside the range.
pub fn check_range(millis: u64, span: Span) -> Option<Diagnostic> {
    if (MIN_MILLIS..=MAX_MILLIS).contains(&millis) {
        return None;
    }
    let label = if millis < MIN_MILLIS {
        "shorter than 1 second"
    } else {
        "longer than 10 minutes"
    };
    Some(
        Diagnostic::new(
            Code::InvalidDebounce,
            "a burst's pause must be between 1s and 10m".to_string(),
        )
        .with_label(span, label)
        .with_help("customers pause a few seconds between the messages of a burst: `debounce 8s` is a good start"),
    )
}
