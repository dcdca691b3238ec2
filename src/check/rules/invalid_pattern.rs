//! F3011 invalid-pattern: a branch pattern is not a valid regular expression.
//!
//! Why: the arm could never match, and the run would fail when it is tried.
//!
//! Instead: fix the expression (the syntax is Rust's `regex` crate); write
//! `(?i)` at the start to ignore case, `\/` for a slash.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The diagnostic for `pattern` at `span`, if it does not compile.
pub fn check(pattern: &str, span: Span) -> Option<Diagnostic> {
    let error = crate::pattern::compile(pattern).err()?;
    let reason = match &error {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .map(|l| l.trim_start_matches("error:").trim().to_string())
            .unwrap_or_else(|| "invalid syntax".to_string()),
        regex::Error::CompiledTooBig(_) => "the expression is too large".to_string(),
        _ => "invalid regular expression".to_string(),
    };
    Some(
        Diagnostic::new(Code::InvalidPattern, "invalid regular expression")
            .with_label(span, reason)
            .with_help("patterns use Rust regex syntax; start with (?i) to ignore case"),
    )
}
