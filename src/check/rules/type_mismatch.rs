//! F2003 type-mismatch: a value has a different type than the place it is
//! used in.
//!
//! Why: the action or operator would get a value it cannot use, and the run
//! would fail halfway, possibly after messages were already sent.
//!
//! Example: `delay "10m"` (a string, not a duration), or passing
//! `call.customer_name` (a `String?`, which may be none) where a `String` is
//! needed.
//!
//! Instead: pass a value of the right type; for optional values give a
//! default with `??`, e.g. `call.customer_name ?? "there"`.

use crate::check::types::Ty;
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `what` names the place, e.g. "argument `to`" or "the condition".
pub fn diagnostic(span: Span, expected: &Ty, actual: &Ty, what: &str) -> Diagnostic {
    let mut d = Diagnostic::new(
        Code::TypeMismatch,
        format!("{what} must be {expected}, found {actual}"),
    )
    .with_label(span, format!("this is {actual}"));
    if let (Ty::Optional(inner), false) = (actual, matches!(expected, Ty::Optional(_))) {
        if expected.accepts(inner) {
            d = d.with_help(
                "this value may be none: give a default with `??`, e.g. `value ?? \"\"`",
            );
            return d;
        }
    }
    let has_optional_element = match actual {
        Ty::List(element) => matches!(**element, Ty::Optional(_)),
        Ty::Record(record) => record
            .fields
            .iter()
            .any(|f| matches!(f.ty, Ty::Optional(_))),
        _ => false,
    };
    if *expected.non_optional() == Ty::Variables && has_optional_element {
        return d.with_help(
            "a template parameter cannot be empty, and some of these values may be none: \
             give them a default with `??`, or end the run first with `if x == none { stop }`",
        );
    }
    let help = match (expected, actual) {
        (Ty::Duration, Ty::String) => {
            "write durations without quotes, e.g. `10m`, `24h`, `7d`".to_string()
        }
        (Ty::Bool, _) => "a condition needs a comparison, e.g. `x == \"yes\"`".to_string(),
        (_, Ty::Nothing) => "this action returns no value".to_string(),
        (Ty::String, _) => {
            "turn the value into text with interpolation, e.g. \"{value}\"".to_string()
        }
        _ => format!("pass a value of type {expected}"),
    };
    d.with_help(help)
}

/// An operator applied to values it does not work on.
pub fn operator(span: Span, op: &str, left: &Ty, right: Option<&Ty>) -> Diagnostic {
    let (message, label) = match right {
        Some(right) => (
            format!("`{op}` cannot combine {left} and {right}"),
            format!("{left} {op} {right}"),
        ),
        None => (
            format!("`{op}` cannot be applied to {left}"),
            format!("{op} {left}"),
        ),
    };
    let help = match op {
        "+" => "`+` adds numbers and durations, joins strings, and moves a DateTime by a Duration",
        "-" => "`-` subtracts numbers and durations, and moves a DateTime back by a Duration",
        "and" | "or" | "not" => "`and`, `or` and `not` work on Bool values",
        "contains" => "`contains` looks for text in a String or for a value in a list",
        "??" => "`??` gives a default for an optional value",
        _ => "compare numbers with numbers, durations with durations, DateTimes with DateTimes",
    };
    Diagnostic::new(Code::TypeMismatch, message)
        .with_label(span, label)
        .with_help(help)
}
