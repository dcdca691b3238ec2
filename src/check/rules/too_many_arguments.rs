//! F2005 too-many-arguments: a call passes more positional arguments than the
//! action has parameters.
//!
//! Instead: remove the extra values, or name each argument (`to: ...`).

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The first extra argument at `span`.
pub fn diagnostic(span: Span, action: &str, params: usize) -> Diagnostic {
    let takes = match params {
        0 => "no arguments".to_string(),
        1 => "1 argument".to_string(),
        n => format!("{n} arguments"),
    };
    Diagnostic::new(Code::TooManyArguments, format!("`{action}` takes {takes}"))
        .with_label(span, "one too many")
        .with_help("remove the extra value, or name the arguments (`name: value`)")
}
