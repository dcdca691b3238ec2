//! F2007 one-of-arguments: a call passes none, or more than one, of a group
//! of arguments of which it needs exactly one.
//!
//! Why: actions declared with `@one_of(link, media_id, file)` take their
//! input in one of several forms; WhatsApp cannot send a picture without
//! one, and with two it would be unclear which one is meant.
//!
//! Example: `whatsapp.send_image(sender: s, to: p, link: "https://x/a.jpg", file: "a.jpg")`.
//!
//! Instead: pass exactly one of the group.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `a`, `b` or `c`.
fn alternatives(group: &[String]) -> String {
    let names: Vec<String> = group.iter().map(|n| format!("`{n}`")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// None of the group is given.
pub fn none_given(action: &str, group: &[String], span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::OneOfArguments,
        format!("`{action}` needs one of {}", alternatives(group)),
    )
    .with_label(span, "none of them given")
    .with_help(format!(
        "pass exactly one of {}, e.g. `{}: ...`",
        alternatives(group),
        group.first().map_or("", String::as_str)
    ))
}

/// `second` is given where `first` already is.
pub fn two_given(
    action: &str,
    group: &[String],
    (first, first_span): (&str, Span),
    (second, second_span): (&str, Span),
) -> Diagnostic {
    Diagnostic::new(
        Code::OneOfArguments,
        format!("`{action}` takes only one of {}", alternatives(group)),
    )
    .with_label(second_span, format!("`{second}` given as well"))
    .with_secondary(first_span, format!("`{first}` given here"))
    .with_help(format!("keep either `{first}` or `{second}`"))
}
