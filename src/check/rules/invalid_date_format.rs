//! F3012 invalid-date-format: a date format string has an unknown `%`
//! directive.
//!
//! Why: formatting would fail at run time, after the wait, when the reminder
//! is due.
//!
//! Instead: use strftime directives such as `%d.%m.%Y %H:%M`; write `%%` for
//! a literal percent sign.

use chrono::format::{Item, StrftimeItems};

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The diagnostic for `pattern` at `span`, if chrono cannot use it.
pub fn check(pattern: &str, span: Span) -> Option<Diagnostic> {
    if !StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
        return None;
    }
    Some(
        Diagnostic::new(Code::InvalidDateFormat, "invalid date format")
            .with_label(span, "contains an unknown `%` directive")
            .with_help(
                "use strftime directives, e.g. \"%d.%m.%Y %H:%M\"; write %% for a literal %",
            ),
    )
}
