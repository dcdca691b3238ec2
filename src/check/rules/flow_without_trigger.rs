//! F4004 flow-without-trigger: a flow has no `on` block, so nothing can start
//! it.
//!
//! Instead: add `on TRIGGER as NAME { ... }` after `flow NAME`.

use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::Ident;

/// The flow named `name`.
pub fn diagnostic(name: &Ident) -> Diagnostic {
    Diagnostic::new(
        Code::FlowWithoutTrigger,
        format!("flow `{}` has no trigger", name.name),
    )
    .with_label(name.span, "nothing starts this flow")
    .with_help("add a trigger, e.g. `on whatsapp.message_received as msg { ... }`")
}
