//! F3018 template-parameters: the header or button parameters of a
//! template send do not match the template in flow.toml.
//!
//! Why: WhatsApp rejects a template send whose components do not match the
//! approved template (error 132000): a header with a placeholder or an
//! image, video or document needs its value on every send; buttons that
//! take a parameter (a quick reply's payload, the end of a URL button's
//! link) take one each, in order.
//!
//! Quick-reply payloads are what the flow receives as `reply_id` when the
//! customer taps the button. Leaving `buttons:` out is fine for templates
//! whose only parameter-taking buttons are quick replies: WhatsApp then
//! sends each button's text as its payload.
//!
//! Example: `order_shipped` has an image header and a URL button
//! `https://shop.example/track/{{1}}`, and the send passes neither.
//!
//! Instead: pass `header:` and one `buttons:` value per button that takes
//! one, e.g. `buttons: ["CONFIRM", order.tracking_code]`.

use crate::config::{TemplateButtonConfig, TemplateButtonKind};
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// What a send passes for a button, in words: `the payload of quick-reply
/// button "Yes"`.
pub fn describe_button(button: &TemplateButtonConfig) -> String {
    match button.kind {
        TemplateButtonKind::QuickReply => {
            format!("the payload of quick-reply button \"{}\"", button.text)
        }
        TemplateButtonKind::Url => format!(
            "the end of the link of URL button \"{}\" ({})",
            button.text,
            button.url.as_deref().unwrap_or("")
        ),
        TemplateButtonKind::CopyCode => {
            format!("the code copy-code button \"{}\" copies", button.text)
        }
        TemplateButtonKind::PhoneNumber => format!("nothing for button \"{}\"", button.text),
    }
}

fn expected_text(expected: &[&TemplateButtonConfig]) -> String {
    let parts: Vec<String> = expected.iter().map(|b| describe_button(b)).collect();
    parts.join(", then ")
}

/// The template's header needs a value (`what` says why) and none is given.
pub fn header_missing(template: &str, span: Span, what: &str, value: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TemplateParameters,
        format!("template `{template}` needs `header:`"),
    )
    .with_label(
        span,
        format!("its header {what}, and no `header:` is given"),
    )
    .with_help(format!("add `header: ...` with {value}"))
}

/// `header:` given for a template whose header takes no value.
pub fn header_unexpected(template: &str, span: Span, has_header: bool) -> Diagnostic {
    let label = if has_header {
        "the template's header is fixed text without a placeholder"
    } else {
        "the template has no header"
    };
    Diagnostic::new(
        Code::TemplateParameters,
        format!("template `{template}` takes no `header:`"),
    )
    .with_label(span, label)
    .with_help("remove `header:`, or add the header to the template in flow.toml")
}

/// `given` button parameters (or none: `None`) where the template's buttons
/// take `expected`.
pub fn buttons_count(
    template: &str,
    span: Span,
    expected: &[&TemplateButtonConfig],
    given: Option<usize>,
) -> Diagnostic {
    let label = match given {
        None => format!(
            "its buttons take {} and no `buttons:` is given",
            parameters(expected.len())
        ),
        Some(given) => format!(
            "{} given, the template's buttons take {}",
            parameters(given),
            expected.len()
        ),
    };
    let help = if expected.is_empty() {
        "remove `buttons:`: none of the template's buttons takes a parameter".to_string()
    } else {
        format!(
            "pass one value per button that takes one, in order: {}",
            expected_text(expected)
        )
    };
    Diagnostic::new(
        Code::TemplateParameters,
        format!("button parameters do not match template `{template}`"),
    )
    .with_label(span, label)
    .with_help(help)
}

fn parameters(n: usize) -> String {
    match n {
        0 => "no parameters".to_string(),
        1 => "1 parameter".to_string(),
        n => format!("{n} parameters"),
    }
}

/// A literal button parameter WhatsApp would refuse; `problem` says why.
pub fn bad_button_value(
    span: Span,
    button: &TemplateButtonConfig,
    problem: &str,
    fix: &str,
) -> Diagnostic {
    Diagnostic::new(
        Code::TemplateParameters,
        format!(
            "this is not a valid parameter for button \"{}\"",
            button.text
        ),
    )
    .with_label(span, problem.to_string())
    .with_help(format!("pass {}: {fix}", describe_button(button)))
}
