//! F3015 duplicate-item: two items of a list literal share a value that
//! must be unique.
//!
//! Why: the customer's choice comes back as its id (`reply_id`); two buttons
//! or rows with the same id could not be told apart, and WhatsApp rejects
//! the message. Declarations say which field must be unique:
//! `[Button](unique: id)`, `@across(sections.rows, unique: id)`.
//!
//! Example: `buttons: [{ id: "yes", title: "Yes" }, { id: "yes", title: "Sure" }]`.
//!
//! Instead: give each item its own id.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `field` "value" repeated in the list at `place`: `span` is the second,
/// `first` the first.
pub fn diagnostic(field: &str, value: &str, place: &str, span: Span, first: Span) -> Diagnostic {
    Diagnostic::new(
        Code::DuplicateItem,
        format!("`{field}` \"{value}\" appears twice in `{place}`"),
    )
    .with_label(span, "used again here")
    .with_secondary(first, "first used here")
    .with_help(format!(
        "each `{field}` in `{place}` must be unique, so the flow can tell which one the customer chose: give this one another `{field}`"
    ))
}
