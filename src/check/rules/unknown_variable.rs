//! F1004 unknown-variable: a name is used that no `let`, trigger binding or
//! catch binds.
//!
//! Why: there is no value to use.
//!
//! Example: `on call.ended as call { log(cal.outcome) }`.
//!
//! Instead: use a name in scope: the trigger's binding (`as call`), a `let`
//! above, or a catch binding inside its block.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// The diagnostic for `name`, with the names in scope.
pub fn diagnostic(name: &Ident, in_scope: &[&str]) -> Diagnostic {
    let help = did_you_mean(&name.name, in_scope.iter().copied()).unwrap_or_else(|| {
        format!(
            "names in scope here: {}; bind a new one with `let {} = ...`",
            list_names(in_scope.iter().copied(), 8),
            name.name
        )
    });
    Diagnostic::new(
        Code::UnknownVariable,
        format!("unknown variable `{}`", name.name),
    )
    .with_label(name.span, "not defined")
    .with_help(help)
}
