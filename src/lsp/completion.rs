//! Completion from the text around the cursor and the project's schemas:
//!
//! - after `whatsapp.`, `ai.` (any namespace): the actions in it, or the
//!   triggers after `on` and `given`;
//! - after `binding.`: the fields of the handler's event, of a caught error
//!   (`kind`, `message`) or of an action's result;
//! - inside a call's parentheses where an argument starts: the parameters not
//!   yet passed, as `name: `;
//! - after `catch` and `raises`: the error kinds;
//! - after `wait for`: the triggers that can be waited for (`@correlate`);
//! - after `on TRIGGER as NAME`: the options `debounce` and `via`;
//! - inside the string of a `Sender`, `Template` or `Assistant` argument
//!   (`sender: "`) or of `via`: the names from `flow.toml`;
//! - elsewhere: keywords, actions and the handler's bindings.

use std::collections::BTreeSet;

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, MarkupContent,
    MarkupKind, Range, TextEdit,
};

use super::analysis::Analysis;
use super::context::{self, Binding, FrameKind, KEYWORDS};
use super::documents::{floor_char_boundary, LineIndex};
use super::hover::{markdown, Symbol};
use crate::check::schema::Schemas;
use crate::check::types::Ty;

/// The completions at byte offset `offset`.
pub fn complete(index: &LineIndex, offset: usize, analysis: &Analysis) -> Vec<CompletionItem> {
    let text = index.text();
    let offset = floor_char_boundary(text, offset);
    let schemas = &analysis.schemas;
    let scan = context::scan(text, offset);
    if scan.in_comment {
        return Vec::new();
    }

    if let Some(frame) = scan.innermost().filter(|f| f.kind == FrameKind::Str) {
        return string_names(text, offset, &scan, frame.start, index, analysis);
    }

    let word_start = context::qualified_start(text, offset);
    let word = &text[word_start..offset];
    if let Some(dot) = word.rfind('.') {
        let head = &word[..dot];
        let partial_start = word_start + dot + 1;
        let range = index.range(partial_start, offset);
        return after_dot(text, word_start, head, range, schemas);
    }
    let range = index.range(word_start, offset);

    if let Some((call, frame)) = scan.direct_call() {
        let segment = text.get(frame.segment_start..word_start).unwrap_or("x");
        if segment.trim().is_empty() {
            if let Some(action) = schemas.actions.get(call) {
                let used = used_argument_names(text.get(frame.start + 1..word_start).unwrap_or(""));
                let items: Vec<CompletionItem> = action
                    .params
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !used.contains(p.name.as_str()))
                    .map(|(i, p)| CompletionItem {
                        label: format!("{}:", p.name),
                        kind: Some(CompletionItemKind::FIELD),
                        detail: Some(p.ty.to_string()),
                        documentation: doc(markdown(&Symbol::Param(action, p))),
                        text_edit: Some(edit(range, format!("{}: ", p.name))),
                        filter_text: Some(p.name.clone()),
                        sort_text: Some(format!("{i:03}")),
                        ..Default::default()
                    })
                    .collect();
                if !items.is_empty() {
                    return items;
                }
            }
        }
    }

    let before = context::word_before(text, word_start);
    // Error kinds after `catch`, between `catch` kinds (`|`) and after `raises`.
    let line_start = text[..word_start].rfind('\n').map_or(0, |i| i + 1);
    let line_before = text[line_start..word_start].trim();
    let in_catch = line_before.starts_with("catch") && !line_before.contains('{');
    if before == "catch" || before == "raises" || (in_catch && line_before.ends_with('|')) {
        return schemas
            .errors
            .values()
            .map(|e| CompletionItem {
                label: e.name.clone(),
                kind: Some(CompletionItemKind::ENUM_MEMBER),
                detail: Some(
                    if e.retryable {
                        "error (retried once by default)"
                    } else {
                        "error"
                    }
                    .to_string(),
                ),
                documentation: doc(markdown(&Symbol::Error(e))),
                text_edit: Some(edit(range, e.name.clone())),
                ..Default::default()
            })
            .collect();
    }
    if let Some(wanted) = trigger_position(text, word_start) {
        return schemas
            .triggers
            .values()
            .filter(|t| wanted.admits(t))
            .map(|t| trigger_item(&t.name, Symbol::Trigger(t), range))
            .collect();
    }
    if let Some(options) = handler_options(text, word_start) {
        return options
            .into_iter()
            .map(|option| CompletionItem {
                label: option.keyword.to_string(),
                kind: Some(CompletionItemKind::KEYWORD),
                detail: Some(option.detail.to_string()),
                documentation: doc(option.doc.to_string()),
                text_edit: Some(edit(range, option.insert.to_string())),
                ..Default::default()
            })
            .collect();
    }

    let mut items: Vec<CompletionItem> = KEYWORDS
        .iter()
        .map(|kw| CompletionItem {
            label: kw.to_string(),
            kind: Some(CompletionItemKind::KEYWORD),
            text_edit: Some(edit(range, kw.to_string())),
            ..Default::default()
        })
        .collect();
    items.extend(
        schemas
            .actions
            .values()
            .map(|a| action_item(&a.name, Symbol::Action(a), range)),
    );
    items.extend(
        bindings_before(text, offset)
            .into_iter()
            .map(|name| CompletionItem {
                label: name.clone(),
                kind: Some(CompletionItemKind::VARIABLE),
                text_edit: Some(edit(range, name)),
                ..Default::default()
            }),
    );
    items
}

/// Completions after `head.`: fields of a bound value, or the names in a
/// namespace.
fn after_dot(
    text: &str,
    word_start: usize,
    head: &str,
    range: Range,
    schemas: &Schemas,
) -> Vec<CompletionItem> {
    let mut segments = head.split('.');
    let first = segments.next().unwrap_or("");
    if let Some(bound) = context::binding(text, word_start, first) {
        let (mut owner, mut ty) = match bound {
            Binding::Trigger(name) => match schemas.triggers.get(&name) {
                Some(t) => (name, Ty::Record(t.fields.clone())),
                None => return Vec::new(),
            },
            Binding::Error => ("the caught error".to_string(), Schemas::error_value_type()),
            Binding::Result(action) => match schemas.actions.get(&action) {
                Some(a) => (format!("the result of {action}"), a.returns.clone()),
                None => return Vec::new(),
            },
        };
        for segment in segments {
            let Ty::Record(record) = ty.non_optional() else {
                return Vec::new();
            };
            let Some(field) = record.field(segment) else {
                return Vec::new();
            };
            owner = format!("{owner}.{segment}");
            ty = field.ty.clone();
        }
        let Ty::Record(record) = ty.non_optional() else {
            return Vec::new();
        };
        return record
            .fields
            .iter()
            .map(|f| CompletionItem {
                label: f.name.clone(),
                kind: Some(CompletionItemKind::FIELD),
                detail: Some(f.ty.to_string()),
                documentation: doc(markdown(&Symbol::Field {
                    owner: owner.clone(),
                    field: f.clone(),
                })),
                text_edit: Some(edit(range, f.name.clone())),
                ..Default::default()
            })
            .collect();
    }

    let prefix = format!("{head}.");
    if let Some(wanted) = trigger_position(text, word_start) {
        schemas
            .triggers
            .values()
            .filter(|t| wanted.admits(t))
            .filter_map(|t| {
                let rest = t.name.strip_prefix(&prefix)?;
                Some(trigger_item(rest, Symbol::Trigger(t), range))
            })
            .collect()
    } else {
        schemas
            .actions
            .values()
            .filter_map(|a| {
                let rest = a.name.strip_prefix(&prefix)?;
                Some(action_item(rest, Symbol::Action(a), range))
            })
            .collect()
    }
}

/// Which triggers fit where a trigger's name is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TriggerPosition {
    /// After `on` or `given`: every trigger.
    Any,
    /// After `wait for`: the triggers with `@correlate`.
    Waitable,
}

impl TriggerPosition {
    fn admits(self, trigger: &crate::check::schema::TriggerSchema) -> bool {
        self == TriggerPosition::Any || trigger.correlate.is_some()
    }
}

/// Whether a trigger's name is written at `word_start`, and which.
fn trigger_position(text: &str, word_start: usize) -> Option<TriggerPosition> {
    let before = context::word_before(text, word_start);
    let line_start = text[..word_start].rfind('\n').map_or(0, |i| i + 1);
    let line_before = text[line_start..word_start].trim();
    // `with failure KIND on ACTION` in a test names an action.
    if (before == "on" || before == "given") && !line_before.starts_with("with") {
        return Some(TriggerPosition::Any);
    }
    let before_for = line_before.strip_suffix("for")?.trim_end();
    (before == "for" && context::word_before(before_for, before_for.len()) == "wait")
        .then_some(TriggerPosition::Waitable)
}

/// An option that may follow `on TRIGGER as NAME`.
struct HandlerOption {
    keyword: &'static str,
    insert: &'static str,
    detail: &'static str,
    doc: &'static str,
}

const HANDLER_OPTIONS: [HandlerOption; 2] = [
    HandlerOption {
        keyword: "debounce",
        insert: "debounce 8s",
        detail: "collect a burst of messages into one run",
        doc: "`debounce 8s` collects the customer's messages until they pause for 8 seconds, \
              then starts one run with the joined text (`msg.text`, one line per message). \
              Between 1s and 10m; only on triggers with a customer.",
    },
    HandlerOption {
        keyword: "via",
        insert: "via \"",
        detail: "start only for messages to these senders",
        doc: "`via \"berlin-office\", \"munich-office\"` starts the handler only for events \
              to these senders from flow.toml; without it, for every sender.",
    },
];

/// After `on TRIGGER as NAME` (and any options already written) on a
/// handler's line before its `{`: the options not written yet.
fn handler_options(text: &str, word_start: usize) -> Option<Vec<&'static HandlerOption>> {
    let line_start = text[..word_start].rfind('\n').map_or(0, |i| i + 1);
    let line_before = &text[line_start..word_start];
    if line_before.contains('{') {
        return None;
    }
    let mut words = line_before.split_whitespace();
    let (Some("on"), Some(_trigger), Some("as"), Some(_binding)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return None;
    };
    let written: Vec<&str> = words.collect();
    // Inside an option's own value (`debounce 8` or `via "a",`), nothing.
    if written
        .last()
        .is_some_and(|w| *w == "debounce" || *w == "via" || w.ends_with(','))
    {
        return None;
    }
    let open: Vec<&'static HandlerOption> = HANDLER_OPTIONS
        .iter()
        .filter(|option| !written.contains(&option.keyword))
        .collect();
    (!open.is_empty()).then_some(open)
}

/// Names from `flow.toml` inside the string of a `Sender`, `Template` or
/// `Assistant` argument (or `with sender "` in a test).
fn string_names(
    text: &str,
    offset: usize,
    scan: &context::Scan,
    string_start: usize,
    index: &LineIndex,
    analysis: &Analysis,
) -> Vec<CompletionItem> {
    let Some(config) = &analysis.config else {
        return Vec::new();
    };
    let wanted = string_argument_type(text, scan, string_start, &analysis.schemas);
    let names: Vec<(&String, &'static str)> = match wanted {
        Some(Ty::Sender) => config.senders.keys().map(|k| (k, "sender")).collect(),
        Some(Ty::Template) => config.templates.keys().map(|k| (k, "template")).collect(),
        Some(Ty::Assistant) => config.assistants.keys().map(|k| (k, "assistant")).collect(),
        _ => return Vec::new(),
    };
    let range = index.range(string_start + 1, offset);
    names
        .into_iter()
        .map(|(name, what)| CompletionItem {
            label: name.clone(),
            kind: Some(CompletionItemKind::VALUE),
            detail: Some(format!("{what} in flow.toml")),
            text_edit: Some(edit(range, name.clone())),
            ..Default::default()
        })
        .collect()
}

/// The type a string at `string_start` is passed as: the parameter of the
/// call it is an argument of (by name or position), or `Sender` after
/// `with sender` and `to` in a test.
pub fn string_argument_type(
    text: &str,
    scan: &context::Scan,
    string_start: usize,
    schemas: &Schemas,
) -> Option<Ty> {
    let outer = scan.frames.len().checked_sub(2).map(|i| &scan.frames[i]);
    if let Some(
        frame @ context::Frame {
            kind: FrameKind::Paren { call: Some(call) },
            ..
        },
    ) = outer
    {
        let action = schemas.actions.get(call)?;
        let segment = text
            .get(frame.segment_start..string_start)
            .unwrap_or("")
            .trim();
        let param = match segment.strip_suffix(':') {
            Some(name) => action.param(name.trim()),
            None if segment.is_empty() => action.params.get(frame.commas),
            None => None,
        };
        return param.map(|p| p.ty.non_optional().clone());
    }
    let before = context::word_before(text, string_start);
    (before == "sender" || before == "to" || in_via(text, string_start)).then_some(Ty::Sender)
}

/// Whether the string at `string_start` is one of the senders of a `via`.
fn in_via(text: &str, string_start: usize) -> bool {
    let line_start = text[..string_start].rfind('\n').map_or(0, |i| i + 1);
    let mut line = text[line_start..string_start].trim_end();
    // Earlier senders of the list: `"a", "b", `.
    while let Some(rest) = line.strip_suffix(',') {
        let rest = rest.trim_end();
        let Some(closed) = rest.strip_suffix('"') else {
            return false;
        };
        let Some(open) = closed.rfind('"') else {
            return false;
        };
        line = closed[..open].trim_end();
    }
    line.starts_with("on ") && context::word_before(line, line.len()) == "via"
}

/// Argument names already written in a call, before the cursor.
fn used_argument_names(args: &str) -> BTreeSet<&str> {
    args.split(',')
        .filter_map(|segment| {
            let (name, _) = segment.split_once(':')?;
            let name = name.trim();
            name.chars()
                .all(context::is_ident_char)
                .then_some(name)
                .filter(|n| !n.is_empty())
        })
        .collect()
}

/// Handler bindings (`on T as NAME`) and `let` names before the cursor in the
/// enclosing item.
fn bindings_before(text: &str, offset: usize) -> BTreeSet<String> {
    let start = context::item_start(text, offset);
    let region = &text[start..offset];
    let mut names = BTreeSet::new();
    let mut words = region
        .split(|c: char| !(context::is_ident_char(c) || c == '.'))
        .filter(|w| !w.is_empty())
        .peekable();
    while let Some(word) = words.next() {
        if word == "as" || word == "let" {
            if let Some(name) = words.peek() {
                if name.chars().all(context::is_ident_char) && !KEYWORDS.contains(name) {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

fn action_item(label: &str, symbol: Symbol, range: Range) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(CompletionItemKind::FUNCTION),
        detail: match &symbol {
            Symbol::Action(a) => Some(format!("action {}", a.name)),
            _ => None,
        },
        documentation: doc(markdown(&symbol)),
        text_edit: Some(edit(range, label.to_string())),
        ..Default::default()
    }
}

fn trigger_item(label: &str, symbol: Symbol, range: Range) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(CompletionItemKind::EVENT),
        detail: match &symbol {
            Symbol::Trigger(t) => Some(format!("trigger {}", t.name)),
            _ => None,
        },
        documentation: doc(markdown(&symbol)),
        text_edit: Some(edit(range, label.to_string())),
        ..Default::default()
    }
}

fn edit(range: Range, new_text: String) -> CompletionTextEdit {
    CompletionTextEdit::Edit(TextEdit { range, new_text })
}

fn doc(value: String) -> Option<Documentation> {
    Some(Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::source::FileId;

    const CONFIG: &str = "[senders.berlin-office]\nphone_number_id = \"1\"\n\n[senders.munich-office]\nphone_number_id = \"2\"\n";

    /// The labels offered at the end of `text`, with the standard
    /// declarations and two senders in flow.toml.
    fn labels(text: &str) -> Vec<String> {
        let mut analysis = (*Analysis::standard()).clone();
        analysis.config = Some(Arc::new(Config::parse(CONFIG, FileId(99)).0));
        let index = LineIndex::new(text);
        let mut labels: Vec<String> = complete(&index, text.len(), &analysis)
            .into_iter()
            .map(|item| item.label)
            .collect();
        labels.sort();
        labels
    }

    const HANDLER: &str = "flow f\non whatsapp.message_received as msg ";

    #[test]
    fn handler_options_follow_the_binding_once_each() {
        assert_eq!(labels(HANDLER), vec!["debounce", "via"]);
        assert_eq!(labels(&format!("{HANDLER}debounce 8s ")), vec!["via"]);
        assert_eq!(
            labels(&format!("{HANDLER}via \"berlin-office\" ")),
            vec!["debounce"]
        );
        // Not while the binding or a duration is being written.
        assert!(!labels("flow f\non whatsapp.message_received as ").contains(&"via".to_string()));
        assert!(!labels(&format!("{HANDLER}debounce ")).contains(&"via".to_string()));
        // Not inside the block.
        assert!(!labels(&format!("{HANDLER}{{\n    ")).contains(&"debounce".to_string()));
    }

    #[test]
    fn via_strings_offer_the_senders() {
        let senders = vec!["berlin-office", "munich-office"];
        assert_eq!(labels(&format!("{HANDLER}via \"")), senders);
        assert_eq!(
            labels(&format!("{HANDLER}via \"berlin-office\", \"")),
            senders
        );
        assert!(labels(&format!("{HANDLER}{{\n    log(\"")).is_empty());
    }

    #[test]
    fn wait_for_offers_the_triggers_that_can_be_waited_for() {
        let body = format!("{HANDLER}{{\n    let reply = wait for ");
        let triggers = labels(&body);
        assert!(triggers.contains(&"whatsapp.message_received".to_string()));
        assert!(
            !triggers.contains(&"call.ended".to_string()),
            "{triggers:?}"
        );
        assert_eq!(
            labels(&format!("{body}whatsapp.")),
            vec!["message_received"]
        );
        // `on` still offers every trigger.
        assert!(labels("flow f\non ").contains(&"call.ended".to_string()));
    }

    #[test]
    fn a_waited_for_reply_has_its_triggers_fields() {
        let text = format!(
            "{HANDLER}{{\n    let reply = wait for whatsapp.message_received from msg.phone within 2h else {{\n        stop\n    }}\n    log(reply."
        );
        let fields = labels(&text);
        assert!(fields.contains(&"text".to_string()), "{fields:?}");
        assert!(fields.contains(&"reply_id".to_string()), "{fields:?}");
    }
}
