//! F3009 window-not-proven (warning): a free-text message is sent where the
//! 24-hour window may be closed.
//!
//! Why: the checker can see that the trigger opened a window, but not that it
//! is still open: a `delay until` of unknown length came first, or the
//! recipient is not the customer whose message started the flow.
//!
//! Instead: send a template, or catch `OutsideWindow` and fall back to one.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// Sent after a wait whose length is only known at run time.
pub fn after_unknown_wait(span: Span, wait: Span) -> Diagnostic {
    Diagnostic::new(
        Code::WindowNotProven,
        "free-text message may be sent after the 24-hour window has closed",
    )
    .with_label(span, "the window may be closed by now")
    .with_secondary(wait, "this wait's length is only known at run time")
    .with_help("send a template, or catch `OutsideWindow` and send a template there")
}

/// Sent to someone other than the customer whose message opened the window.
pub fn other_recipient(span: Span, window_field: &str) -> Diagnostic {
    Diagnostic::new(
        Code::WindowNotProven,
        "free-text message to a recipient whose 24-hour window is not known to be open",
    )
    .with_label(span, format!("only `{window_field}` wrote to you"))
    .with_help(format!(
        "send free text to `{window_field}`, or use a template for other recipients"
    ))
}
