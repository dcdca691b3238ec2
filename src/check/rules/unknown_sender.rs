//! F3003 unknown-sender: a sender is not listed in flow.toml.
//!
//! Why: the runtime would not know which WhatsApp phone number to send from.
//!
//! Instead: use a name from `[senders.NAME]` in flow.toml, or add the sender
//! there with its `phone_number_id`.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `name` at `span`, with the configured sender names.
pub fn diagnostic(name: &str, span: Span, known: &[&str]) -> Diagnostic {
    let help = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "flow.toml lists the senders {}; add `[senders.{name}]` with its phone_number_id",
            list_names(known.iter().copied(), 8)
        )
    });
    Diagnostic::new(Code::UnknownSender, format!("unknown sender `{name}`"))
        .with_label(span, "not in flow.toml")
        .with_help(help)
}
