//! F3004 unknown-template: a template is not in the template catalog.
//!
//! Why: WhatsApp only sends approved templates; the product document's
//! "Template not found" error (invalid or not approved) would fail the send.
//!
//! Instead: use a template listed under `[templates.NAME]` in flow.toml
//! (`flowc templates pull` fills the catalog with the approved ones).

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `name` at `span`, with the catalog's template names.
pub fn diagnostic(name: &str, span: Span, known: &[&str]) -> Diagnostic {
    let help = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "the catalog has {}; check that the template is approved and its name is right",
            list_names(known.iter().copied(), 8)
        )
    });
    Diagnostic::new(
        Code::UnknownTemplate,
        format!("template `{name}` is not in the catalog"),
    )
    .with_label(span, "unknown template")
    .with_help(help)
}
