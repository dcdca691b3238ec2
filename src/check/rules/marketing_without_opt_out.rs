//! F3010 marketing-without-opt-out (warning): a marketing template offers no
//! way to opt out.
//!
//! Why: the product document says to add unsubscribe options to marketing
//! messages, to comply with regulations and to keep the sender's quality
//! rating; customers who cannot opt out block and report, and a falling
//! rating pauses templates and lowers the messaging limit.
//!
//! Instead: add an opt-out line to the template ("Reply STOP to
//! unsubscribe"), or set `opt_out = true` in its catalog entry when it has an
//! opt-out button.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The template literal `name` at `span`.
pub fn diagnostic(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::MarketingWithoutOptOut,
        format!("marketing template `{name}` has no opt-out"),
    )
    .with_label(span, "customers cannot unsubscribe from this message")
    .with_help(
        "add an opt-out such as \"Reply STOP to unsubscribe\" to the template: regulations ask for it, \
         and customers who cannot opt out report the sender, which lowers its quality rating",
    )
}
