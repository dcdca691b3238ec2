//! F3006 unknown-assistant: an assistant is not listed in flow.toml.
//!
//! Why: the runtime would not know which model and instructions to use.
//!
//! Instead: use a name from `[assistants.NAME]` in flow.toml, or add it there.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `name` at `span`, with the configured assistant names.
pub fn diagnostic(name: &str, span: Span, known: &[&str]) -> Diagnostic {
    let help = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "flow.toml lists the assistants {}; add `[assistants.{name}]`",
            list_names(known.iter().copied(), 8)
        )
    });
    Diagnostic::new(
        Code::UnknownAssistant,
        format!("unknown assistant `{name}`"),
    )
    .with_label(span, "not in flow.toml")
    .with_help(help)
}
