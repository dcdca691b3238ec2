//! F2006 no-value: the result of an action that returns nothing is used as a
//! value.
//!
//! Example: `let sent = log("done")`.
//!
//! Instead: call the action as a statement of its own.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The call of `action` at `span`.
pub fn diagnostic(span: Span, action: &str) -> Diagnostic {
    Diagnostic::new(Code::NoValue, format!("`{action}` returns no value"))
        .with_label(span, "there is nothing to use here")
        .with_help(format!(
            "call `{action}(...)` as a statement on its own line"
        ))
}
