//! Hover: the schema and documentation of the action, argument, trigger,
//! trigger field, error kind or record type under the cursor, and the
//! `flow.toml` entry of a sender, template or assistant name.
//!
//! The symbol is found from the text around the cursor (see [`super::context`]),
//! so hover works while the file does not parse; the schemas come from the
//! project's latest check. [`resolve`] is shared with go to definition.

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};

use super::analysis::Analysis;
use super::completion::string_argument_type;
use super::context::{self, Binding, FrameKind};
use super::documents::{floor_char_boundary, LineIndex};
use crate::check::limits::type_text;
use crate::check::schema::{ActionSchema, ErrorSchema, ParamSchema, Schemas, TriggerSchema};
use crate::check::types::{FieldTy, RecordTy, Ty};
use crate::config::{AssistantConfig, SenderConfig, TemplateConfig};
use crate::source::Span;

/// A declared thing the cursor can be on.
#[derive(Debug, Clone)]
pub enum Symbol<'a> {
    /// An action, by its name.
    Action(&'a ActionSchema),
    /// A parameter of an action, by an argument name.
    Param(&'a ActionSchema, &'a ParamSchema),
    /// A trigger, by its name or a handler's binding.
    Trigger(&'a TriggerSchema),
    /// A field of a record: a trigger's event, a result, a caught error.
    Field {
        /// What has the field, e.g. `call.ended`.
        owner: String,
        /// The field.
        field: FieldTy,
    },
    /// An error kind.
    Error(&'a ErrorSchema),
    /// A declared record type.
    Type(&'a RecordTy),
}

impl Symbol<'_> {
    /// Where it is declared.
    pub fn span(&self) -> Option<Span> {
        match self {
            Symbol::Action(a) => Some(a.span),
            Symbol::Param(_, p) => Some(p.span),
            Symbol::Trigger(t) => Some(t.span),
            Symbol::Field { field, .. } => Some(field.span),
            Symbol::Error(e) => Some(e.span),
            // Record types keep no span of their own.
            Symbol::Type(_) => None,
        }
    }
}

/// The symbol at a byte offset of `text`, if any.
pub fn resolve<'a>(text: &str, offset: usize, schemas: &'a Schemas) -> Option<Symbol<'a>> {
    let offset = floor_char_boundary(text, offset);
    let start = context::qualified_start(text, offset);
    let end = context::qualified_end(text, offset);
    let word = text.get(start..end)?.trim_matches('.');
    if word.is_empty() || !word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let after = text[end..].trim_start_matches([' ', '\t']);

    // An argument name: `name:` directly inside a call's parentheses.
    if after.starts_with(':') && !word.contains('.') {
        let scan = context::scan(text, start);
        if let Some((call, _)) = scan.direct_call() {
            let action = schemas.actions.get(call)?;
            return action.param(word).map(|p| Symbol::Param(action, p));
        }
    }
    if let Some(action) = schemas.actions.get(word) {
        return Some(Symbol::Action(action));
    }
    if let Some(trigger) = schemas.triggers.get(word) {
        return Some(Symbol::Trigger(trigger));
    }
    if let Some(error) = schemas.errors.get(word) {
        return Some(Symbol::Error(error));
    }
    if let Some(ty) = schemas.types.get(word) {
        return Some(Symbol::Type(ty));
    }

    // `binding.field...`: the segment under the cursor decides.
    let segments: Vec<&str> = word.split('.').collect();
    let cursor_in_word = offset.saturating_sub(start);
    let mut seen = 0;
    let mut index = 0;
    for (i, segment) in segments.iter().enumerate() {
        seen += segment.len() + 1;
        index = i;
        if cursor_in_word < seen {
            break;
        }
    }
    let head = segments.first()?;
    let mut record = match context::binding(text, start, head)? {
        Binding::Trigger(name) => {
            let trigger = schemas.triggers.get(&name)?;
            if index == 0 {
                return Some(Symbol::Trigger(trigger));
            }
            (name, Ty::Record(trigger.fields.clone()))
        }
        Binding::Error => ("the caught error".to_string(), Schemas::error_value_type()),
        Binding::Result(action) => {
            let schema = schemas.actions.get(&action)?;
            if index == 0 {
                return Some(Symbol::Action(schema));
            }
            (format!("the result of {action}"), schema.returns.clone())
        }
    };
    for (i, segment) in segments.iter().enumerate().take(index + 1).skip(1) {
        let Ty::Record(fields) = record.1.non_optional() else {
            return None;
        };
        let field = fields.field(segment)?.clone();
        if i == index {
            return Some(Symbol::Field {
                owner: record.0,
                field,
            });
        }
        record = (format!("{}.{}", record.0, field.name), field.ty.clone());
    }
    None
}

/// A sender, template or assistant of `flow.toml`, named by a string.
#[derive(Debug, Clone, Copy)]
pub enum ConfigName<'a> {
    /// `[senders.NAME]`.
    Sender(&'a SenderConfig),
    /// `[templates.NAME]`.
    Template(&'a TemplateConfig),
    /// `[assistants.NAME]`.
    Assistant(&'a AssistantConfig),
}

impl ConfigName<'_> {
    /// Where `flow.toml` defines it.
    pub fn span(&self) -> Span {
        match self {
            ConfigName::Sender(s) => s.span,
            ConfigName::Template(t) => t.span,
            ConfigName::Assistant(a) => a.span,
        }
    }
}

/// The `flow.toml` entry a string at `offset` names, when the string is a
/// `Sender`, `Template` or `Assistant` argument.
pub fn config_name<'a>(
    text: &str,
    offset: usize,
    analysis: &'a Analysis,
) -> Option<ConfigName<'a>> {
    let config = analysis.config.as_deref()?;
    let offset = floor_char_boundary(text, offset);
    let scan = context::scan(text, offset);
    let string = scan.innermost().filter(|f| f.kind == FrameKind::Str)?;
    let content_start = string.start + 1;
    let content_end = text[offset..]
        .find(['"', '\n'])
        .map_or(text.len(), |i| offset + i);
    let name = text.get(content_start..content_end)?;
    match string_argument_type(text, &scan, string.start, &analysis.schemas)? {
        Ty::Sender => config.senders.get(name).map(ConfigName::Sender),
        Ty::Template => config.templates.get(name).map(ConfigName::Template),
        Ty::Assistant => config.assistants.get(name).map(ConfigName::Assistant),
        _ => None,
    }
}

fn config_markdown(entry: ConfigName) -> String {
    match entry {
        ConfigName::Sender(s) => format!(
            "```toml\n[senders.{}]\n```\n\nWhatsApp sender, phone number ID `{}`{}",
            s.name,
            s.phone_number_id,
            s.phone
                .as_ref()
                .map(|p| format!(", {p}"))
                .unwrap_or_default()
        ),
        ConfigName::Template(t) => format!(
            "```toml\n[templates.{}]\n```\n\n{} template in `{}`, {}:\n\n```text\n{}\n```",
            t.name,
            t.category,
            t.language,
            crate::diag::counted(t.placeholders.count(), "placeholder"),
            t.body
        ),
        ConfigName::Assistant(a) => format!(
            "```toml\n[assistants.{}]\n```\n\nAI assistant{}{}",
            a.name,
            a.model
                .as_ref()
                .map(|m| format!(", model `{m}`"))
                .unwrap_or_default(),
            a.instructions
                .as_ref()
                .map(|i| format!("\n\n{i}"))
                .unwrap_or_default()
        ),
    }
}

/// The hover text for the symbol at `offset`, or for the `flow.toml` entry
/// a string there names.
pub fn hover(index: &LineIndex, offset: usize, analysis: &Analysis) -> Option<Hover> {
    let value = match config_name(index.text(), offset, analysis) {
        Some(entry) => config_markdown(entry),
        None => markdown(&resolve(index.text(), offset, &analysis.schemas)?),
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: None,
    })
}

/// The symbol's signature as a `flow` code block, then its documentation.
pub fn markdown(symbol: &Symbol) -> String {
    let (signature, doc, extra) = match symbol {
        Symbol::Action(a) => (
            action_signature(a),
            a.doc.clone(),
            (!a.raises.is_empty()).then(|| format!("Raises: {}", a.raises.join(", "))),
        ),
        Symbol::Param(a, p) => (
            format!(
                "{}: {}{}",
                p.name,
                type_text(&p.ty, &p.limits),
                default_text(p)
            ),
            p.doc.clone(),
            Some(format!(
                "Parameter of `{}`{}",
                a.name,
                if p.is_required() { "" } else { " (optional)" }
            )),
        ),
        Symbol::Trigger(t) => (trigger_signature(t), t.doc.clone(), None),
        Symbol::Field { owner, field } => (
            field_text(field),
            field.doc.clone(),
            Some(format!("Field of `{owner}`")),
        ),
        Symbol::Error(e) => (
            format!(
                "{}error {}",
                if e.retryable { "@retryable\n" } else { "" },
                e.name
            ),
            e.doc.clone(),
            None,
        ),
        Symbol::Type(t) => (
            format!(
                "type {} {{\n{}}}",
                t.name.as_deref().unwrap_or("_"),
                fields_text(&t.fields)
            ),
            None,
            None,
        ),
    };
    let mut out = format!("```flow\n{signature}\n```");
    if let Some(doc) = doc.filter(|d| !d.trim().is_empty()) {
        out.push_str("\n\n");
        out.push_str(&doc);
    }
    if let Some(extra) = extra {
        out.push_str("\n\n");
        out.push_str(&extra);
    }
    out
}

fn default_text(p: &ParamSchema) -> String {
    match p.default.as_ref().map(|d| &d.kind) {
        Some(kind) => match kind.as_plain_str() {
            Some(text) => format!(" = {text:?}"),
            None => " = ...".to_string(),
        },
        None => String::new(),
    }
}

fn action_signature(a: &ActionSchema) -> String {
    let params: Vec<String> = a
        .params
        .iter()
        .map(|p| {
            format!(
                "{}: {}{}",
                p.name,
                type_text(&p.ty, &p.limits),
                default_text(p)
            )
        })
        .collect();
    let returns = match &a.returns {
        Ty::Nothing => String::new(),
        ty => format!(" -> {ty}"),
    };
    if params.join(", ").len() > 60 {
        format!(
            "action {}(\n    {},\n){returns}",
            a.name,
            params.join(",\n    ")
        )
    } else {
        format!("action {}({}){returns}", a.name, params.join(", "))
    }
}

fn trigger_signature(t: &TriggerSchema) -> String {
    let mut attribute = t
        .opens_window
        .as_ref()
        .map(|f| format!("@opens_window({f})\n"))
        .unwrap_or_default();
    if let Some(reply) = &t.reply {
        attribute.push_str(&format!("@reply({reply})\n"));
    }
    if let Some(field) = &t.correlate {
        attribute.push_str(&format!("@correlate({field})\n"));
    }
    format!(
        "{attribute}trigger {} {{\n{}}}",
        t.name,
        fields_text(&t.fields.fields)
    )
}

fn fields_text(fields: &[FieldTy]) -> String {
    fields
        .iter()
        .map(|f| format!("    {}\n", field_text(f)))
        .collect()
}

/// `title: Text(max: 20)`, `kind: String = "text"`.
fn field_text(field: &FieldTy) -> String {
    let default = field
        .default
        .as_ref()
        .map(|d| format!(" = {d}"))
        .unwrap_or_default();
    format!(
        "{}: {}{default}",
        field.name,
        type_text(&field.ty, &field.limits)
    )
}
