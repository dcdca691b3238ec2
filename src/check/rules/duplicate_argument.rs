//! F2004 duplicate-argument: a call passes the same argument twice.
//!
//! Why: only one value can be used; which one was meant is unclear.
//!
//! Instead: remove one of them.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `param` given again at `span`, first at `first`.
pub fn diagnostic(param: &str, span: Span, first: Span) -> Diagnostic {
    Diagnostic::new(
        Code::DuplicateArgument,
        format!("argument `{param}` is given twice"),
    )
    .with_label(span, "given again here")
    .with_secondary(first, "first given here")
    .with_help("remove one of the two")
}
