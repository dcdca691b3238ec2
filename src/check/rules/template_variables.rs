//! F3005 template-variables: the variables of a template send do not match the
//! template's placeholders.
//!
//! Why: WhatsApp rejects a template whose parameter count differs from its
//! placeholders (error 132000), so the message would never arrive.
//!
//! Example: `appointment_confirmed` has `{{1}}`..`{{4}}`, and the call passes
//! three values.
//!
//! Instead: pass one value per positional placeholder, in order, as a list;
//! or a record with exactly the named placeholders.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

fn base(template: &str, span: Span, label: String) -> Diagnostic {
    Diagnostic::new(
        Code::TemplateVariables,
        format!("variables do not match the placeholders of template `{template}`"),
    )
    .with_label(span, label)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A list of `given` values for `expected` positional placeholders.
pub fn count(template: &str, body: &str, span: Span, expected: usize, given: usize) -> Diagnostic {
    base(
        template,
        span,
        format!(
            "{} given, the template has {}",
            plural(given, "value"),
            plural(expected, "placeholder")
        ),
    )
    .with_help(format!(
        "pass {} in placeholder order; the template reads: \"{}\"",
        plural(expected, "value"),
        body.replace('\n', " ")
    ))
}

/// Positional values given for a template with named placeholders, or the
/// reverse.
pub fn wrong_form(template: &str, span: Span, named: &[String]) -> Diagnostic {
    if named.is_empty() {
        base(
            template,
            span,
            "a record, but the placeholders are positional".into(),
        )
        .with_help("pass a list: `variables: [first, second, ...]`")
    } else {
        let fields: Vec<String> = named.iter().map(|n| format!("{n}: ...")).collect();
        base(
            template,
            span,
            "a list, but the placeholders are named".into(),
        )
        .with_help(format!(
            "pass a record: `variables: {{ {} }}`",
            fields.join(", ")
        ))
    }
}

/// Record keys that do not match the named placeholders.
pub fn names(template: &str, span: Span, missing: &[&str], unknown: &[&str]) -> Diagnostic {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !unknown.is_empty() {
        parts.push(format!("no placeholder {}", unknown.join(", ")));
    }
    base(template, span, parts.join("; "))
        .with_help("give exactly one value per named placeholder `{{name}}` of the template")
}

/// No variables passed to a template that has placeholders; `named` lists
/// its named placeholders (empty for positional ones).
pub fn missing(template: &str, span: Span, expected: usize, named: &[String]) -> Diagnostic {
    let help = if named.is_empty() {
        "add `variables: [...]` with one value per placeholder, in order".to_string()
    } else {
        let fields: Vec<String> = named.iter().map(|n| format!("{n}: ...")).collect();
        format!("add `variables: {{ {} }}`", fields.join(", "))
    };
    base(
        template,
        span,
        format!(
            "the template has {} and none are given",
            plural(expected, "placeholder")
        ),
    )
    .with_help(help)
}
