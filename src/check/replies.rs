//! Replies: which choice ids the sends of a project offer (reply buttons,
//! list rows, template quick replies), and the branches that answer them.
//!
//! Before flows are walked, every call of an action marked `@offers(PATH)`
//! is read for the literal ids at PATH (`buttons.id`, `sections.rows.id`;
//! for a template send, the quick-reply payloads of `buttons:` or the
//! buttons' texts). A `branch` on a trigger field marked `@reply(FIELD)`
//! (`branch msg.reply_id ?? "" { ... }`) is then checked against them:
//! F4008 for an arm no send offers, F4009 for a send only partly answered.

use super::flows::bound_args;
use super::rules;
use super::schema::{ActionSchema, Schemas};
use super::types::Ty;
use crate::config::{Config, TemplateButtonKind};
use crate::diag::Diagnostics;
use crate::source::Span;
use crate::syntax::ast::{Arm, Block, Call, Expr, ExprKind, Flow, PatternKind, StmtKind, StrPart};

/// One send that offers choices.
#[derive(Debug)]
pub(crate) struct Send {
    /// The action called.
    pub action: String,
    /// The literal ids it offers, with where each is written.
    pub ids: Vec<(String, Span)>,
}

/// The choices the project's sends offer.
#[derive(Debug, Default)]
pub(crate) struct Offers {
    /// Each send with its literal ids.
    pub sends: Vec<Send>,
    /// Whether every offered id is a literal: only then is an id no send
    /// offers surely a mistake.
    pub complete: bool,
}

impl Offers {
    /// Reads the offered ids of every call in `flows`.
    pub(crate) fn collect(flows: &[&Flow], schemas: &Schemas, config: Option<&Config>) -> Offers {
        let mut offers = Offers {
            sends: Vec::new(),
            complete: true,
        };
        for flow in flows {
            for handler in &flow.handlers {
                each_call_in_block(&handler.body, &mut |call| {
                    if let Some(action) = schemas.actions.get(&call.name.name) {
                        offers.add(action, call, config);
                    }
                });
            }
        }
        offers
    }

    fn add(&mut self, action: &ActionSchema, call: &Call, config: Option<&Config>) {
        if action.offers.is_empty() {
            return;
        }
        let args = bound_args(action, call);
        let arg = |name: &str| {
            args.iter()
                .find(|(p, _)| p.name == name)
                .map(|(_, value)| *value)
        };
        let mut ids = Vec::new();
        for path in &action.offers {
            let Some((first, rest)) = path.split_first() else {
                continue;
            };
            let template = action
                .params
                .iter()
                .find(|p| *p.ty.non_optional() == Ty::Template);
            if let Some(template) = template {
                let name = arg(&template.name).and_then(|v| v.kind.as_plain_str());
                self.template_ids(name, arg(first), call, config, &mut ids);
                continue;
            }
            let Some(value) = arg(first) else {
                continue;
            };
            let mut values = vec![value];
            for step in rest {
                let mut next = Vec::new();
                for value in values {
                    self.step_into(value, step, &mut next);
                }
                values = next;
            }
            for value in values {
                let mut items = Vec::new();
                self.step_into_lists(value, &mut items);
                for item in items {
                    match item.kind.as_plain_str() {
                        Some(id) => ids.push((id, item.span)),
                        None => self.complete = false,
                    }
                }
            }
        }
        if !ids.is_empty() {
            self.sends.push(Send {
                action: action.name.clone(),
                ids,
            });
        }
    }

    /// The items of `value` if it is a list (of lists), else `value`.
    fn step_into_lists<'e>(&mut self, value: &'e Expr, out: &mut Vec<&'e Expr>) {
        match &value.kind {
            ExprKind::List(items) => {
                for item in items {
                    self.step_into_lists(item, out);
                }
            }
            ExprKind::Str(_) => out.push(value),
            ExprKind::None => {}
            _ => self.complete = false,
        }
    }

    /// The field `step` of the records in `value` (stepping into lists).
    fn step_into<'e>(&mut self, value: &'e Expr, step: &str, out: &mut Vec<&'e Expr>) {
        let mut records = Vec::new();
        match &value.kind {
            ExprKind::List(items) => records.extend(items),
            _ => records.push(value),
        }
        for record in records {
            match &record.kind {
                ExprKind::Record(fields) => {
                    if let Some((_, field)) = fields.iter().find(|(key, _)| key.name == step) {
                        out.push(field);
                    }
                }
                ExprKind::List(_) => self.step_into(record, step, out),
                _ => self.complete = false,
            }
        }
    }

    /// The quick-reply payloads of a template send: the literal values of
    /// `buttons` at quick-reply positions, or the buttons' texts when it is
    /// left out.
    fn template_ids(
        &mut self,
        template: Option<String>,
        buttons: Option<&Expr>,
        call: &Call,
        config: Option<&Config>,
        ids: &mut Vec<(String, Span)>,
    ) {
        let Some(template) = config.and_then(|c| c.templates.get(&template.unwrap_or_default()))
        else {
            // A computed or unknown template may have quick replies.
            self.complete = false;
            return;
        };
        let taking: Vec<_> = template
            .buttons
            .iter()
            .filter(|b| b.takes_parameter())
            .collect();
        match buttons.map(|b| &b.kind) {
            None | Some(ExprKind::None) => ids.extend(
                template
                    .buttons
                    .iter()
                    .filter(|b| b.kind == TemplateButtonKind::QuickReply)
                    .map(|b| (b.text.clone(), call.name.span)),
            ),
            Some(ExprKind::List(items)) => {
                for (button, item) in taking.iter().zip(items) {
                    if button.kind != TemplateButtonKind::QuickReply {
                        continue;
                    }
                    match item.kind.as_plain_str() {
                        Some(id) => ids.push((id, item.span)),
                        None => self.complete = false,
                    }
                }
            }
            Some(_) => {
                if taking
                    .iter()
                    .any(|b| b.kind == TemplateButtonKind::QuickReply)
                {
                    self.complete = false;
                }
            }
        }
    }

    /// Checks a branch on a reply id: `arms` against the offered ids;
    /// `scrutinee` is where the branch's value is written.
    pub(crate) fn check_branch(
        &self,
        scrutinee: Span,
        arms: &[Arm],
        diagnostics: &mut Diagnostics,
    ) {
        let handled: Vec<(String, Span)> = arms
            .iter()
            .flat_map(|arm| &arm.patterns)
            .filter_map(|pattern| match &pattern.kind {
                PatternKind::Literal(value) => {
                    value.kind.as_plain_str().map(|id| (id, pattern.span))
                }
                _ => None,
            })
            .collect();
        let is_handled = |id: &str| handled.iter().any(|(h, _)| h == id);
        if self.complete {
            let mut offered: Vec<&str> = self
                .sends
                .iter()
                .flat_map(|send| send.ids.iter().map(|(id, _)| id.as_str()))
                .collect();
            offered.sort_unstable();
            offered.dedup();
            let mut unknown = false;
            for (id, span) in &handled {
                if !offered.contains(&id.as_str()) {
                    diagnostics.push(rules::unknown_reply_id::diagnostic(id, *span, &offered));
                    unknown = true;
                }
            }
            // A misspelt arm leaves its id unhandled: one report is enough.
            if unknown {
                return;
            }
        }
        for send in &self.sends {
            if !send.ids.iter().any(|(id, _)| is_handled(id)) {
                continue;
            }
            let mut missing: Vec<(&str, Span)> = Vec::new();
            for (id, span) in &send.ids {
                if !is_handled(id) && !missing.iter().any(|(m, _)| m == id) {
                    missing.push((id, *span));
                }
            }
            if !missing.is_empty() {
                diagnostics.push(rules::unhandled_reply_id::diagnostic(
                    scrutinee,
                    &send.action,
                    &missing,
                ));
            }
        }
    }
}

/// Calls `f` with every call in `block`, nested ones included.
fn each_call_in_block(block: &Block, f: &mut impl FnMut(&Call)) {
    for stmt in &block.stmts {
        match &stmt.kind {
            StmtKind::Let { value, .. } => each_call(value, f),
            StmtKind::If {
                branches,
                otherwise,
            } => {
                for (cond, body) in branches {
                    each_call(cond, f);
                    each_call_in_block(body, f);
                }
                if let Some(body) = otherwise {
                    each_call_in_block(body, f);
                }
            }
            StmtKind::Branch { scrutinee, arms } => {
                each_call(scrutinee, f);
                for arm in arms {
                    each_call_in_block(&arm.body, f);
                }
            }
            StmtKind::Delay(value) | StmtKind::DelayUntil(value) | StmtKind::Fail(value) => {
                each_call(value, f)
            }
            StmtKind::Stop => {}
            StmtKind::Call(call) => each_call_of(call, f),
            StmtKind::Wait(wait) => {
                each_call(&wait.key, f);
                each_call(&wait.within, f);
                each_call_in_block(&wait.otherwise, f);
            }
        }
        for catch in &stmt.catches {
            each_call_in_block(&catch.body, f);
        }
    }
}

fn each_call_of(call: &Call, f: &mut impl FnMut(&Call)) {
    f(call);
    for arg in &call.args {
        each_call(&arg.value, f);
    }
}

fn each_call(expr: &Expr, f: &mut impl FnMut(&Call)) {
    match &expr.kind {
        ExprKind::Str(parts) => {
            for part in parts {
                if let StrPart::Expr(inner) = part {
                    each_call(inner, f);
                }
            }
        }
        ExprKind::List(items) => items.iter().for_each(|item| each_call(item, f)),
        ExprKind::Record(fields) => fields.iter().for_each(|(_, value)| each_call(value, f)),
        ExprKind::Field(base, _) => each_call(base, f),
        ExprKind::Call(call) => each_call_of(call, f),
        ExprKind::Unary(_, operand) => each_call(operand, f),
        ExprKind::Binary(_, left, right) => {
            each_call(left, f);
            each_call(right, f);
        }
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Duration(_)
        | ExprKind::Var(_)
        | ExprKind::Invalid => {}
    }
}
