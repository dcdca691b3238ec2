//! F1007 unknown-type: a declaration uses a type that does not exist.
//!
//! Why: the checker cannot check values against a type it does not know.
//!
//! Example: `trigger order.paid { amount: Money }` without `type Money { ... }`.
//!
//! Instead: use a built-in type (String, Text(max: N), Int, Float, Bool,
//! Duration, DateTime, Phone, Sender, Template, Assistant, TimeZone,
//! DateFormat, Variables, Any) or declare the record with `type`.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// The diagnostic for `name`, with the names that exist.
pub fn diagnostic(name: &Ident, candidates: &[&str]) -> Diagnostic {
    let help = did_you_mean(&name.name, candidates.iter().copied()).unwrap_or_else(|| {
        format!(
            "use one of {} or declare it with `type {} {{ ... }}`",
            list_names(candidates.iter().copied(), 8),
            name.name
        )
    });
    Diagnostic::new(Code::UnknownType, format!("unknown type `{}`", name.name))
        .with_label(name.span, "no such type")
        .with_help(help)
}
