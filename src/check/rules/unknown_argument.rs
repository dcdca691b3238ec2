//! F2001 unknown-argument: a call passes a named argument the action does not
//! take.
//!
//! Why: the value would be ignored, which usually means a typo in a name that
//! was meant to matter (`recipient:` instead of `to:`).
//!
//! Instead: use the parameter names of the action's declaration.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// `arg` passed to `action`, which takes `params`.
pub fn diagnostic(arg: &Ident, action: &str, params: &[&str]) -> Diagnostic {
    let help = did_you_mean(&arg.name, params.iter().copied()).unwrap_or_else(|| {
        format!(
            "`{action}` takes {}",
            list_names(params.iter().copied(), 10)
        )
    });
    Diagnostic::new(
        Code::UnknownArgument,
        format!("`{action}` has no parameter `{}`", arg.name),
    )
    .with_label(arg.span, "unknown argument")
    .with_help(help)
}
