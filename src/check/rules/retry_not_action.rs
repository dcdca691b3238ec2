//! F4003 retry-not-action: `retry` is attached to something other than a
//! single action call.
//!
//! Why: retrying a block or a branch would repeat every action in it,
//! sending messages that already went out a second time.
//!
//! Instead: put `retry` after the one action call that may fail transiently:
//! `whatsapp.send_template(...) retry 1 times every 1m`.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The retry clause at `span` on the statement at `stmt`.
pub fn diagnostic(span: Span, stmt: Span) -> Diagnostic {
    Diagnostic::new(
        Code::RetryNotAction,
        "`retry` only applies to a single action call",
    )
    .with_label(span, "this retry would run the whole statement again")
    .with_secondary(stmt, "not a single action call")
    .with_help("attach `retry` to each action call that may fail, so nothing is sent twice")
}
