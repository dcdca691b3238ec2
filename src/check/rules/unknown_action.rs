//! F1002 unknown-action: a call names an action that is not declared.
//!
//! Why: the run would stop at that call.
//!
//! Example: `whatsapp.send_message(...)`; the actions are
//! `whatsapp.send_text` and `whatsapp.send_template`.
//!
//! Instead: call a declared action, or declare the host application's own
//! with `action crm.create_lead(phone: Phone) -> Lead`.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// The diagnostic for `name`, with the declared actions.
pub fn diagnostic(name: &Ident, known: &[&str]) -> Diagnostic {
    let help = did_you_mean(&name.name, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "declared actions are {}",
            list_names(known.iter().copied(), 10)
        )
    });
    Diagnostic::new(
        Code::UnknownAction,
        format!("unknown action `{}`", name.name),
    )
    .with_label(name.span, "no action with this name")
    .with_help(help)
}
