//! F1003 unknown-field: a field is read that the value does not have.
//!
//! Why: the value would be missing at run time, and a message would go out
//! with a hole in it.
//!
//! Example: `call.customer_number` on a `call.ended` event; the field is
//! `customer_phone`.
//!
//! Instead: read a field the trigger or type declares (`flowc` lists them in
//! the help).

use super::{did_you_mean, list_names};
use crate::check::types::Ty;
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// `field` read on a value of type `on` that has `fields`.
pub fn diagnostic(field: &Ident, on: &Ty, fields: &[&str]) -> Diagnostic {
    let all = format!("{on} has {}", list_names(fields.iter().copied(), 12));
    let help = if fields.is_empty() {
        format!("{on} values have no fields")
    } else {
        match did_you_mean(&field.name, fields.iter().copied()) {
            // The closest spelling is not always the field meant
            // (`customer_number` is nearer `customer_name` than
            // `customer_phone`), so the list follows.
            Some(suggestion) => format!("{suggestion} {all}"),
            None => all,
        }
    };
    Diagnostic::new(
        Code::UnknownField,
        format!("{on} has no field `{}`", field.name),
    )
    .with_label(field.span, "unknown field")
    .with_help(help)
}
