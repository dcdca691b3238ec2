//! F1006 duplicate-definition: a flow, declaration, field or parameter is
//! defined twice.
//!
//! Why: the second definition would silently replace or shadow the first, so
//! which one runs would depend on file order.
//!
//! Example: two `flow reminder` in one project, or `trigger call.ended` in a
//! user file when the standard declarations already have it.
//!
//! Instead: rename one of them, or delete the copy.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `what` is `flow`, `trigger`, `action`, `type`, `error`, `field` or `parameter`.
pub fn diagnostic(what: &str, name: &str, span: Span, first: Span) -> Diagnostic {
    Diagnostic::new(
        Code::DuplicateDefinition,
        format!("{what} `{name}` is defined twice"),
    )
    .with_label(span, "defined again here")
    .with_secondary(first, "first defined here")
    .with_help(format!(
        "rename this {what} or remove one of the two definitions"
    ))
}
