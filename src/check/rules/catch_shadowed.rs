//! F4007 catch-shadowed (warning): a `catch` comes after one that already
//! catches everything it would.
//!
//! Why: catches are tried in order and the first that matches runs; this one
//! never will.
//!
//! Instead: put specific catches before `catch e { }`, which catches all.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The shadowed catch at `span`, shadowed by the one at `earlier`.
pub fn diagnostic(span: Span, earlier: Span) -> Diagnostic {
    Diagnostic::new(Code::CatchShadowed, "this catch can never run")
        .with_label(span, "already caught above")
        .with_secondary(
            earlier,
            "this catch comes first and matches the same errors",
        )
        .with_help("move specific catches before a catch-all `catch e { ... }`")
}
