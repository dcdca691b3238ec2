//! F4001 catch-cannot-raise: a `catch` names an error kind that its statement
//! cannot raise.
//!
//! Why: the handler can never run, which usually means the error handling the
//! author meant to add is attached to the wrong statement.
//!
//! Example: `log("x") catch RateLimited e { ... }`; `log` raises nothing.
//!
//! Instead: attach the catch to the statement that raises the kind, or catch
//! a kind the statement lists.

use super::list_names;
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `kind` at `span`, on a statement at `stmt` that can raise `raisable`.
pub fn diagnostic(kind: &str, span: Span, stmt: Span, raisable: &[&str]) -> Diagnostic {
    let help = if raisable.is_empty() {
        "this statement raises no errors: remove the catch, or attach it to the statement that can fail"
            .to_string()
    } else {
        format!(
            "this statement can raise {}",
            list_names(raisable.iter().copied(), 12)
        )
    };
    Diagnostic::new(
        Code::CatchCannotRaise,
        format!("`{kind}` cannot be raised here"),
    )
    .with_label(span, "never raised by this statement")
    .with_secondary(stmt, "the statement this catch guards")
    .with_help(help)
}

/// A catch-all at `span` on a statement at `stmt` that raises nothing.
pub fn nothing_to_catch(span: Span, stmt: Span) -> Diagnostic {
    Diagnostic::new(Code::CatchCannotRaise, "nothing here can raise an error")
        .with_label(span, "this catch never runs")
        .with_secondary(stmt, "the statement this catch guards")
        .with_help("remove the catch, or attach it to the statement that can fail")
}
