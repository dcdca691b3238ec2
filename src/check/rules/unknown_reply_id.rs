//! F4008 unknown-reply-id: a branch on a reply id has an arm for an id that
//! no send in the project offers.
//!
//! Why: when a customer taps a reply button, picks a list row or taps a
//! template's quick reply, the flow receives the choice's id (`reply_id` of
//! `whatsapp.message_received`, a field marked `@reply`). An arm for an id
//! nothing offers never runs: usually a typo, or an id renamed in the send
//! but not in the branch.
//!
//! Offered ids are collected from every send in the project whose ids are
//! literals: `id`s of `whatsapp.send_buttons` buttons and `whatsapp.send_list`
//! rows, the `buttons:` payloads of `whatsapp.send_template` for quick-reply
//! buttons (their texts when `buttons:` is left out). When some send's ids
//! are computed, the checker cannot know them all and stays quiet.
//!
//! Example: the send offers `confirm` and `reschedule`, the branch has an
//! arm `"confirmed" => ...`.
//!
//! Instead: use the id the send offers. To match ids that another system
//! sends, match them with a pattern: `matches /^promo-/ => ...`.

use super::{did_you_mean, list_names};
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// An arm for `id`, which none of the `offered` ids is.
pub fn diagnostic(id: &str, span: Span, offered: &[&str]) -> Diagnostic {
    let help = did_you_mean(id, offered.iter().copied()).unwrap_or_else(|| {
        format!(
            "the sends of this project offer {}",
            list_names(offered.iter().copied(), 10)
        )
    });
    Diagnostic::new(
        Code::UnknownReplyId,
        format!("no send offers the reply id \"{id}\""),
    )
    .with_label(span, "this arm never runs")
    .with_help(help)
}
