//! F4009 unhandled-reply-id (warning): a branch on a reply id handles some
//! choices of a send but not all of them.
//!
//! Why: a branch with an arm for `"confirm"` answers the buttons of the
//! send that offers `confirm`; a second button of that send without its
//! own arm is forgotten. A `_` arm does not count: it usually catches the
//! customer's typed text, and a tapped button silently landing there is the
//! bug this rule finds.
//!
//! Example: the send offers `confirm` and `reschedule`; the branch has
//! `"confirm" => ...` and `_ => ...`.
//!
//! Instead: give each offered id an arm. When a choice should do what the
//! `_` arm does, name it in that arm: `"reschedule" | _ => ...` says the
//! choice was considered and silences the warning.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The branch at `span` handles ids of an `action` call, but not `missing`
/// (each with where the send offers it).
pub fn diagnostic(span: Span, action: &str, missing: &[(&str, Span)]) -> Diagnostic {
    let names: Vec<String> = missing.iter().map(|(id, _)| format!("\"{id}\"")).collect();
    let mut diagnostic = Diagnostic::new(
        Code::UnhandledReplyId,
        format!(
            "this branch has no arm for {} offered by `{action}`",
            names.join(", ")
        ),
    )
    .with_label(
        span,
        format!(
            "handles other choices of the same `{action}` but not {}",
            names.join(", ")
        ),
    )
    .with_help(format!(
        "add an arm for each choice, e.g. `{first} => ...`, or name it in the `_` arm: `{first} | _ => ...`",
        first = names.first().map_or("", String::as_str)
    ));
    for (id, at) in missing {
        diagnostic = diagnostic.with_secondary(*at, format!("\"{id}\" offered here"));
    }
    diagnostic
}
