//! F1001 unknown-trigger: a flow listens for a trigger that is not declared.
//!
//! Why: no event would ever start the flow.
//!
//! Example: `on whatsapp.message_recieved as msg { ... }`.
//!
//! Instead: use a declared trigger, or declare your own event with
//! `trigger appointment.booked { ... }` in a `.flow` file.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// The diagnostic for `name`, with the declared triggers.
pub fn diagnostic(name: &Ident, known: &[&str]) -> Diagnostic {
    let help = did_you_mean(&name.name, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "declared triggers are {}; declare your own with `trigger {} {{ field: Type }}`",
            list_names(known.iter().copied(), 8),
            name.name
        )
    });
    Diagnostic::new(
        Code::UnknownTrigger,
        format!("unknown trigger `{}`", name.name),
    )
    .with_label(name.span, "no trigger with this name")
    .with_help(help)
}
