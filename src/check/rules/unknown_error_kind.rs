//! F1005 unknown-error-kind: a `catch` or `raises` names an error kind that is
//! not declared.
//!
//! Why: a misspelt kind in `catch` would never match, so the error it was
//! meant for would fail the run.
//!
//! Example: `catch RateLimit e { ... }`; the kind is `RateLimited`.
//!
//! Instead: use a declared kind (see `std_actions/errors.flow`) or declare a
//! new one with `error NAME`.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// The diagnostic for `kind`, with the declared kinds.
pub fn diagnostic(kind: &Ident, known: &[&str]) -> Diagnostic {
    let help = did_you_mean(&kind.name, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "the declared error kinds are {}",
            list_names(known.iter().copied(), 20)
        )
    });
    Diagnostic::new(
        Code::UnknownErrorKind,
        format!("unknown error kind `{}`", kind.name),
    )
    .with_label(kind.span, "no such error kind")
    .with_help(help)
}
