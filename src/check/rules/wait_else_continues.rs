//! F4011 wait-else-continues: the `else` block of `let NAME = wait for ...`
//! can go on without a value for NAME.
//!
//! Why: after `let reply = wait for ...`, `reply` is the customer's answer.
//! When no answer came, the `else` block runs; if the run then went on, the
//! statements after it would read a reply that does not exist.
//!
//! Instead: end the `else` block with `stop` or `fail`, or use the statement
//! form `wait for ... else { ... }` (without `let`), whose `else` block may
//! go on.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// `else_span` is the block that can go on; `name` the binding.
pub fn diagnostic(else_span: Span, name: &str, binding: Span) -> Diagnostic {
    Diagnostic::new(
        Code::WaitElseContinues,
        format!("the `else` block can go on without a value for `{name}`"),
    )
    .with_label(else_span, "this block must end the run")
    .with_secondary(binding, format!("`{name}` has a value only when the customer answered"))
    .with_help("end the block with `stop` or `fail`, or write `wait for ...` without `let` if the run should go on either way")
}
