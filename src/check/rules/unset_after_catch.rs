//! F4005 unset-after-catch: a variable is used after a caught error may have
//! left it unset.
//!
//! Why: when the action in `let x = action(...) catch e { ... }` fails and the
//! catch block does not end the run, the flow goes on without a value for
//! `x`.
//!
//! Instead: end the catch block with `stop` (or `fail "..."`), or use the
//! value only inside a flow path where the action succeeded.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `name` used at `span`, bound at `binding` by a let whose catch is at
/// `catch`.
pub fn diagnostic(name: &str, span: Span, catch: Span) -> Diagnostic {
    Diagnostic::new(Code::UnsetAfterCatch, format!("`{name}` may be unset here"))
        .with_label(span, "used after its action may have failed")
        .with_secondary(catch, "this catch goes on without a value")
        .with_help(format!(
            "end the catch block with `stop`, so `{name}` always has a value after it"
        ))
}
