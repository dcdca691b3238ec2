//! F4002 unreachable-code (warning): a statement or branch arm can never run.
//!
//! Why: code after `stop` or `fail` (or after an if/else or branch whose every
//! way ends the run) is dead; a branch arm after `_` never matches. Dead code
//! usually means a step the author expected to happen does not.
//!
//! Instead: remove it, or move it before the statement that ends the run.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// A statement at `span` after the terminating statement at `after`.
pub fn statement(span: Span, after: Span) -> Diagnostic {
    Diagnostic::new(Code::UnreachableCode, "unreachable statement")
        .with_label(span, "this never runs")
        .with_secondary(after, "the run always ends here")
        .with_help("remove it, or move it before the statement that ends the run")
}

/// A branch arm at `span` that an earlier arm at `earlier` always takes first.
pub fn arm(span: Span, earlier: Span) -> Diagnostic {
    Diagnostic::new(Code::UnreachableCode, "unreachable branch arm")
        .with_label(span, "never matches")
        .with_secondary(earlier, "this arm matches first")
        .with_help("arms are tried in order: put `_` last and each value once")
}
