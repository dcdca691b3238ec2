//! F2002 missing-argument: a call leaves out a required argument.
//!
//! Why: the action cannot run without it (a send without a recipient).
//!
//! Instead: pass it by name, e.g. `to: call.customer_phone`.

use crate::check::types::Ty;
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `param` of type `ty` missing from the call of `action` at `call_span`.
pub fn diagnostic(call_span: Span, action: &str, param: &str, ty: &Ty) -> Diagnostic {
    Diagnostic::new(
        Code::MissingArgument,
        format!("`{action}` needs the argument `{param}`"),
    )
    .with_label(call_span, format!("`{param}` is missing"))
    .with_help(format!("add `{param}: ...` (a {ty})"))
}
