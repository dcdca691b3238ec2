//! F3013 item-count: a list literal has more or fewer items than its
//! declaration allows.
//!
//! Why: WhatsApp rejects the whole message when a list is over its limit:
//! reply buttons take one to three buttons, a list message at most ten rows
//! in all its sections. The declarations say so (`[Button](min: 1, max: 3)`,
//! `@across(sections.rows, max: 10)`), and the checker counts the items it
//! can see.
//!
//! Example: `whatsapp.send_buttons(..., buttons: [b1, b2, b3, b4])`.
//!
//! Instead: remove items, or offer many choices with `whatsapp.send_list`.

use crate::check::limits::Breach;
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// A count breach of the list at `place` (`buttons`, `sections.rows`);
/// `together` when the count is of nested lists taken together;
/// `declared` is the declaration that sets the limit.
pub fn diagnostic(
    breach: &Breach,
    place: &str,
    together: bool,
    span: Span,
    declared: &str,
) -> Diagnostic {
    let in_all = if together { " in all" } else { "" };
    let message = match breach {
        Breach::TooMany { max, noun, .. } => {
            format!("`{place}` takes at most {max} {noun}s{in_all}")
        }
        Breach::TooFew { min, noun, .. } => {
            format!(
                "`{place}` needs at least {}{in_all}",
                crate::check::limits::counted(*min, noun)
            )
        }
        other => other.to_string(),
    };
    let fix = match breach {
        Breach::TooFew { .. } => "add items",
        _ => "remove items or spread them over several messages",
    };
    Diagnostic::new(Code::ItemCount, message)
        .with_label(span, breach.to_string())
        .with_help(format!(
            "{declared}; WhatsApp rejects the whole message otherwise: {fix}"
        ))
}
