//! The walk over flows: names, types, arguments, domain rules, the 24-hour
//! window, error handling and reachability.
//!
//! One pass per handler. The walk keeps going after every mistake (a
//! wrong value gets the type `unknown`, which nothing reports on again), so
//! one check reports all the mistakes of a file.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::limits::{self, Breach};
use super::replies::Offers;
use super::rules;
use super::schema::{ActionSchema, ParamSchema, Schemas, TriggerSchema};
use super::types::{FieldTy, RecordTy, Ty};
use crate::config::{
    Config, Placeholders, TemplateButtonConfig, TemplateButtonKind, TemplateCategory,
    TemplateConfig, TemplateHeaderConfig,
};
use crate::diag::{Diagnostic, Diagnostics};
use crate::media::MediaKind;
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::*;

/// 24 hours in milliseconds: the customer service window.
const WINDOW_MS: u64 = 24 * 3_600_000;

/// How long a path has waited since the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    /// Exactly this many milliseconds at most.
    Known(u64),
    /// Unknown until run time, because of the wait at this span.
    Unknown(Span),
}

impl Waited {
    fn add(self, ms: u64) -> Waited {
        match self {
            Waited::Known(total) => Waited::Known(total.saturating_add(ms)),
            unknown => unknown,
        }
    }

    /// The longer of two paths.
    fn max(self, other: Waited) -> Waited {
        match (self, other) {
            (Waited::Known(a), Waited::Known(b)) => Waited::Known(a.max(b)),
            (Waited::Unknown(span), _) | (_, Waited::Unknown(span)) => Waited::Unknown(span),
        }
    }
}

struct Binding {
    name: String,
    ty: Ty,
    /// Set when a `let` whose action may fail was caught without ending the
    /// run: the catch clause's span.
    unset_by: Option<Span>,
    /// For the reply of `let NAME = wait for ...`: the window it opened.
    window: Option<ReplyWindow>,
}

/// The 24-hour window a reply of a `wait for` opened.
#[derive(Debug, Clone)]
struct ReplyWindow {
    /// The recipients inside it: the reply's window field (`reply.phone`)
    /// and the wait's key (`lead.phone`).
    paths: Vec<String>,
    /// [`FlowChecker::waited`] when the reply came, at the latest.
    opened: Waited,
}

/// What the walk learned about a statement or block.
struct Outcome {
    /// The run never continues after it.
    terminates: bool,
    /// Error kinds that escape it.
    raises: BTreeSet<String>,
}

struct Handler<'a> {
    trigger: Option<&'a TriggerSchema>,
    trigger_span: Span,
    binding: String,
}

/// Checks the flows of a project against the schemas and configuration.
pub(crate) struct FlowChecker<'a> {
    schemas: &'a Schemas,
    config: Option<&'a Config>,
    diagnostics: &'a mut Diagnostics,
    scopes: Vec<Vec<Binding>>,
    /// Per scope, the paths (`call.customer_name`) known not to be none here.
    narrowed: Vec<Vec<String>>,
    waited: Waited,
    handler: Option<Handler<'a>>,
    /// The actions each flow calls, by flow name, for the engine to check
    /// it can run them.
    pub(crate) called: HashMap<String, BTreeSet<String>>,
    /// The senders each flow names as literals, by flow name.
    pub(crate) senders: HashMap<String, BTreeSet<String>>,
    /// The flow being checked.
    flow: String,
    /// Where local files named in flows are looked for.
    files: FileRoots<'a>,
    /// The choices the project's sends offer, for branches on reply ids.
    offers: Offers,
}

impl<'a> FlowChecker<'a> {
    pub(crate) fn new(
        schemas: &'a Schemas,
        config: Option<&'a Config>,
        files: FileRoots<'a>,
        diagnostics: &'a mut Diagnostics,
    ) -> Self {
        FlowChecker {
            schemas,
            config,
            diagnostics,
            scopes: Vec::new(),
            narrowed: Vec::new(),
            waited: Waited::Known(0),
            handler: None,
            called: HashMap::new(),
            senders: HashMap::new(),
            flow: String::new(),
            files,
            offers: Offers::default(),
        }
    }

    /// Checks all flows; names must be unique across the project.
    pub(crate) fn check_flows(&mut self, flows: &[&Flow]) {
        // Branches on reply ids are checked against every send of the
        // project, so the sends are read first.
        self.offers = Offers::collect(flows, self.schemas, self.config);
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for flow in flows {
            if let Some(first) = seen.get(flow.name.name.as_str()) {
                self.diagnostics
                    .push(rules::duplicate_definition::diagnostic(
                        "flow",
                        &flow.name.name,
                        flow.name.span,
                        *first,
                    ));
            } else {
                seen.insert(&flow.name.name, flow.name.span);
            }
            if flow.handlers.is_empty() {
                self.diagnostics
                    .push(rules::flow_without_trigger::diagnostic(&flow.name));
            }
            self.flow.clone_from(&flow.name.name);
            for handler in &flow.handlers {
                self.check_handler(handler);
            }
        }
    }

    fn check_handler(&mut self, handler: &crate::syntax::ast::Handler) {
        let trigger = self.schemas.triggers.get(&handler.trigger.name);
        let event_ty = match trigger {
            Some(t) => Ty::Record(t.fields.clone()),
            None => {
                let known: Vec<&str> = self.schemas.triggers.keys().map(String::as_str).collect();
                self.diagnostics
                    .push(rules::unknown_trigger::diagnostic(&handler.trigger, &known));
                Ty::Unknown
            }
        };
        if let Some(trigger) = trigger {
            self.handler_options(handler, trigger);
        }
        let schemas = self.schemas;
        self.handler = Some(Handler {
            trigger: trigger.map(|t| &schemas.triggers[&t.name]),
            trigger_span: handler.trigger.span,
            binding: handler.binding.name.clone(),
        });
        self.waited = Waited::Known(0);
        self.scopes = vec![vec![Binding {
            name: handler.binding.name.clone(),
            ty: event_ty,
            unset_by: None,
            window: None,
        }]];
        self.narrowed = vec![Vec::new()];
        self.block(&handler.body);
        self.scopes.clear();
        self.narrowed.clear();
        self.handler = None;
    }

    /// `debounce` and `via` after `on TRIGGER as NAME`.
    fn handler_options(
        &mut self,
        handler: &crate::syntax::ast::Handler,
        trigger: &crate::check::schema::TriggerSchema,
    ) {
        if let Some(debounce) = &handler.debounce {
            if trigger.opens_window.is_none() {
                self.diagnostics.push(rules::invalid_debounce::no_customer(
                    &trigger.name,
                    debounce.span,
                ));
            } else if let Some(d) = debounce
                .millis
                .and_then(|ms| rules::invalid_debounce::check_range(ms, debounce.span))
            {
                self.diagnostics.push(d);
            }
        }
        let Some(first) = handler.via.first() else {
            return;
        };
        let has_sender = trigger
            .fields
            .fields
            .iter()
            .any(|f| *f.ty.non_optional() == Ty::Sender);
        if !has_sender {
            let span = handler
                .via
                .last()
                .map_or(first.span, |last| first.span.to(last.span));
            self.diagnostics
                .push(rules::via_without_sender::diagnostic(&trigger.name, span));
            return;
        }
        let Some(config) = self.config.filter(|c| !c.senders.is_empty()) else {
            return;
        };
        let known: Vec<&str> = config.senders.keys().map(String::as_str).collect();
        for sender in &handler.via {
            if let Some(name) = &sender.name {
                if !config.senders.contains_key(name) {
                    self.diagnostics.push(rules::unknown_sender::diagnostic(
                        name,
                        sender.span,
                        &known,
                    ));
                }
            }
        }
    }

    fn bind(&mut self, name: &str, ty: Ty, unset_by: Option<Span>) {
        // A new binding hides what was known about the old one.
        let prefix = format!("{name}.");
        for paths in &mut self.narrowed {
            paths.retain(|p| p != name && !p.starts_with(&prefix));
        }
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(Binding {
                name: name.to_string(),
                ty,
                unset_by,
                window: None,
            });
        }
    }

    fn lookup(&self, name: &str) -> Option<&Binding> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|scope| scope.iter().rev())
            .find(|b| b.name == name)
    }

    fn names_in_scope(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .scopes
            .iter()
            .flat_map(|scope| scope.iter().map(|b| b.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    // ------------------------------------------------------------------
    // Statements
    // ------------------------------------------------------------------

    fn push_scope(&mut self, narrowed: Vec<String>) {
        self.scopes.push(Vec::new());
        self.narrowed.push(narrowed);
    }

    fn pop_scope(&mut self) {
        self.scopes.pop();
        self.narrowed.pop();
    }

    fn is_narrowed(&self, path: &str) -> bool {
        self.narrowed.iter().flatten().any(|p| p == path)
    }

    fn block(&mut self, block: &Block) -> Outcome {
        self.block_narrowed(block, Vec::new())
    }

    /// A block in which `narrowed` paths are known not to be none.
    fn block_narrowed(&mut self, block: &Block, narrowed: Vec<String>) -> Outcome {
        self.push_scope(narrowed);
        let mut raises = BTreeSet::new();
        let mut ended_at: Option<Span> = None;
        let mut reported = false;
        for stmt in &block.stmts {
            if let (Some(end), false) = (ended_at, reported) {
                self.diagnostics
                    .push(rules::unreachable_code::statement(stmt.span, end));
                reported = true;
            }
            let outcome = self.stmt(stmt);
            raises.extend(outcome.raises);
            if outcome.terminates && ended_at.is_none() {
                ended_at = Some(stmt.span);
            }
        }
        self.pop_scope();
        Outcome {
            terminates: ended_at.is_some(),
            raises,
        }
    }

    fn stmt(&mut self, stmt: &Stmt) -> Outcome {
        let mut raises = BTreeSet::new();
        let mut terminates = false;
        let mut let_binding: Option<(&Ident, Ty)> = None;
        let mut reply_window = None;
        match &stmt.kind {
            StmtKind::Let { name, value } => {
                let ty = self.value(value, &mut raises);
                let_binding = Some((name, ty));
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                let start = self.waited;
                let mut waited = start;
                let mut all_terminate = true;
                for (cond, block) in branches {
                    let ty = self.expr(cond, &mut raises);
                    self.expect(cond.span, &Ty::Bool, &ty, "the condition");
                    self.waited = start;
                    let outcome = self.block_narrowed(block, none_checks(cond, false));
                    waited = waited.max(self.waited);
                    raises.extend(outcome.raises);
                    all_terminate &= outcome.terminates;
                }
                self.waited = start;
                match otherwise {
                    Some(block) => {
                        let outcome = self.block(block);
                        raises.extend(outcome.raises);
                        terminates = all_terminate && outcome.terminates;
                    }
                    // `if x == none { stop }`: after it, x is not none.
                    None if all_terminate && branches.len() == 1 => {
                        let paths = none_checks(&branches[0].0, true);
                        if let Some(narrowed) = self.narrowed.last_mut() {
                            narrowed.extend(paths);
                        }
                    }
                    None => {}
                }
                self.waited = self.waited.max(waited);
            }
            StmtKind::Branch { scrutinee, arms } => {
                let ty = self.expr(scrutinee, &mut raises);
                if self.is_reply_id(scrutinee) {
                    self.offers
                        .check_branch(scrutinee.span, arms, self.diagnostics);
                }
                let outcome = self.branch(&ty, arms);
                raises.extend(outcome.raises);
                terminates = outcome.terminates;
            }
            StmtKind::Delay(duration) => {
                let ty = self.expr(duration, &mut raises);
                self.expect(duration.span, &Ty::Duration, &ty, "`delay`");
                self.waited = match duration.kind {
                    ExprKind::Duration(ms) => self.waited.add(ms),
                    _ => Waited::Unknown(stmt.span),
                };
            }
            StmtKind::DelayUntil(at) => {
                let ty = self.expr(at, &mut raises);
                self.expect(at.span, &Ty::DateTime, &ty, "`delay until`");
                self.waited = Waited::Unknown(stmt.span);
            }
            StmtKind::Stop => terminates = true,
            StmtKind::Fail(message) => {
                let ty = self.expr(message, &mut raises);
                self.expect(message.span, &Ty::String, &ty, "the message of `fail`");
                terminates = true;
            }
            StmtKind::Call(call) => {
                self.call(call, &mut raises);
            }
            StmtKind::Wait(wait) => {
                let (ty, window) = self.wait(wait, &mut raises);
                if let Some(name) = &wait.binding {
                    let_binding = Some((name, ty));
                    reply_window = window;
                }
            }
        }

        if let Some(retry) = &stmt.retry {
            self.retry(retry, stmt);
        }

        let mut unset_by = None;
        if !stmt.catches.is_empty() {
            let (escaping, all_terminate, continuing_catch) = self.catches(stmt, raises);
            raises = escaping;
            terminates = terminates && all_terminate;
            unset_by = continuing_catch;
        }
        if let Some((name, ty)) = let_binding {
            self.bind(&name.name, ty, unset_by);
            if let Some(binding) = self.scopes.last_mut().and_then(|scope| scope.last_mut()) {
                binding.window = reply_window;
            }
        }
        Outcome { terminates, raises }
    }

    /// `[let NAME =] wait for TRIGGER from KEY within DURATION else BLOCK`:
    /// checks it, walks the else block (after DURATION, without a reply),
    /// and leaves [`FlowChecker::waited`] as after the statement. Returns
    /// the reply's type and, for `let`, the window the reply opens.
    fn wait(&mut self, wait: &Wait, raises: &mut BTreeSet<String>) -> (Ty, Option<ReplyWindow>) {
        let schemas = self.schemas;
        let trigger = schemas.triggers.get(&wait.trigger.name);
        let key_ty = self.expr(&wait.key, raises);
        match trigger {
            None => {
                let known: Vec<&str> = schemas.triggers.keys().map(String::as_str).collect();
                self.diagnostics
                    .push(rules::unknown_trigger::diagnostic(&wait.trigger, &known));
            }
            Some(t) => match &t.correlate {
                None => {
                    let waitable: Vec<&str> = schemas
                        .triggers
                        .values()
                        .filter(|t| t.correlate.is_some())
                        .map(|t| t.name.as_str())
                        .collect();
                    self.diagnostics.push(rules::invalid_wait::not_correlated(
                        wait.trigger.span,
                        &t.name,
                        &waitable,
                    ));
                }
                Some(field) => {
                    if let Some(f) = t.fields.fields.iter().find(|f| &f.name == field) {
                        let ty = f.ty.clone();
                        if self.expect(wait.key.span, &ty, &key_ty, "the key of `wait for`") {
                            self.literal_rules(&ty, &wait.key);
                        }
                    }
                }
            },
        }
        let within_ty = self.expr(&wait.within, raises);
        self.expect(wait.within.span, &Ty::Duration, &within_ty, "`within`");
        let before = self.waited;
        let after_timeout = match wait.within.kind {
            ExprKind::Duration(0) => {
                self.diagnostics
                    .push(rules::invalid_wait::no_time(wait.within.span));
                before
            }
            ExprKind::Duration(ms) if ms > rules::invalid_wait::MAX_WAIT_MS => {
                self.diagnostics
                    .push(rules::invalid_wait::too_long(wait.within.span));
                before.add(ms)
            }
            ExprKind::Duration(ms) => before.add(ms),
            _ => Waited::Unknown(wait.within.span),
        };
        // Without a reply: the whole duration has passed.
        self.waited = after_timeout;
        let outcome = self.block(&wait.otherwise);
        raises.extend(outcome.raises);
        let else_waited = self.waited;
        let ty = trigger.map_or(Ty::Unknown, |t| Ty::Record(t.fields.clone()));
        let Some(name) = &wait.binding else {
            // The run goes on after a reply (at most DURATION later) or
            // after the else block.
            self.waited = if outcome.terminates {
                after_timeout
            } else {
                after_timeout.max(else_waited)
            };
            return (ty, None);
        };
        if !outcome.terminates {
            self.diagnostics
                .push(rules::wait_else_continues::diagnostic(
                    wait.otherwise.span,
                    &name.name,
                    name.span,
                ));
        }
        // Only the reply goes on: it came within DURATION, and opened the
        // window with the customer who wrote it.
        self.waited = after_timeout;
        let mut paths = Vec::new();
        if let Some(field) = trigger.and_then(|t| t.opens_window.as_ref()) {
            paths.push(format!("{}.{field}", name.name));
            paths.extend(path_of(&wait.key));
        }
        let window = (!paths.is_empty()).then_some(ReplyWindow {
            paths,
            opened: after_timeout,
        });
        (ty, window)
    }

    /// How long since the reply that opened the window `recipient` is in,
    /// if it is in one.
    fn reply_window(&self, recipient: &Expr) -> Option<Waited> {
        let path = path_of(recipient)?;
        let window = self
            .scopes
            .iter()
            .rev()
            .flat_map(|scope| scope.iter().rev())
            .filter_map(|b| b.window.as_ref())
            .find(|w| w.paths.contains(&path))?;
        Some(match (self.waited, window.opened) {
            (Waited::Known(now), Waited::Known(opened)) => {
                Waited::Known(now.saturating_sub(opened))
            }
            (Waited::Known(now), Waited::Unknown(_)) => Waited::Known(now),
            (unknown, _) => unknown,
        })
    }

    /// Whether `value` is the reply id of the handler's event (a field
    /// marked `@reply`), or that with a default: `msg.reply_id ?? ""`.
    fn is_reply_id(&self, value: &Expr) -> bool {
        let inner = match &value.kind {
            ExprKind::Binary(BinaryOp::Default, left, _) => left,
            _ => value,
        };
        let ExprKind::Field(base, field) = &inner.kind else {
            return false;
        };
        let ExprKind::Var(var) = &base.kind else {
            return false;
        };
        // The variable must still be an event (the handler's, or a reply
        // of `wait for`), not a `let` hiding it.
        let Some(Binding {
            ty: Ty::Record(record),
            ..
        }) = self.lookup(&var.name)
        else {
            return false;
        };
        self.schemas.triggers.values().any(|trigger| {
            Arc::ptr_eq(record, &trigger.fields)
                && trigger.reply.as_deref() == Some(field.name.as_str())
        })
    }

    /// Types the value of a `let`, which must not be an action without a
    /// result.
    fn value(&mut self, value: &Expr, raises: &mut BTreeSet<String>) -> Ty {
        let ty = self.expr(value, raises);
        if ty == Ty::Nothing {
            if let ExprKind::Call(call) = &value.kind {
                self.diagnostics
                    .push(rules::no_value::diagnostic(value.span, &call.name.name));
            }
            return Ty::Unknown;
        }
        ty
    }

    fn retry(&mut self, retry: &Retry, stmt: &Stmt) {
        let single_call = match &stmt.kind {
            StmtKind::Call(_) => true,
            StmtKind::Let { value, .. } => matches!(value.kind, ExprKind::Call(_)),
            _ => false,
        };
        if !single_call {
            self.diagnostics
                .push(rules::retry_not_action::diagnostic(retry.span, stmt.span));
        }
        if !(1..=rules::invalid_retry::MAX_TIMES).contains(&retry.times) {
            self.diagnostics.push(rules::invalid_retry::diagnostic(
                retry.times_span,
                &format!("cannot retry {} times", retry.times),
                "out of range",
            ));
        }
        if retry.every_ms < 1_000 {
            self.diagnostics.push(rules::invalid_retry::diagnostic(
                retry.every_span,
                "retry interval is shorter than one second",
                "too short",
            ));
        }
        if let Some((factor, span)) = retry.backoff {
            if !(1.0..=10.0).contains(&factor) {
                self.diagnostics.push(rules::invalid_retry::diagnostic(
                    span,
                    &format!("backoff {factor} is outside 1 to 10"),
                    "out of range",
                ));
            }
        }
    }

    /// Checks the catch clauses of `stmt`, which can raise `raisable`.
    /// Returns the kinds that escape, whether every catch ends the run, and
    /// the first catch that lets the run go on.
    fn catches(
        &mut self,
        stmt: &Stmt,
        raisable: BTreeSet<String>,
    ) -> (BTreeSet<String>, bool, Option<Span>) {
        let raisable_list: Vec<&str> = raisable.iter().map(String::as_str).collect();
        let mut caught: HashMap<String, Span> = HashMap::new();
        let mut catch_all: Option<Span> = None;
        let mut escaping_from_bodies = BTreeSet::new();
        let mut all_terminate = true;
        let mut continuing = None;
        let after_stmt = self.waited;
        let mut waited = after_stmt;
        for catch in &stmt.catches {
            if let Some(earlier) = catch_all {
                self.diagnostics
                    .push(rules::catch_shadowed::diagnostic(catch.span, earlier));
            } else if catch.kinds.is_empty() {
                if raisable.is_empty() {
                    self.diagnostics
                        .push(rules::catch_cannot_raise::nothing_to_catch(
                            catch.span, stmt.span,
                        ));
                }
                catch_all = Some(catch.span);
            } else {
                let mut new_kind = false;
                let mut shadowed_by = None;
                for kind in &catch.kinds {
                    if !self.schemas.errors.contains_key(&kind.name) {
                        let known: Vec<&str> =
                            self.schemas.errors.keys().map(String::as_str).collect();
                        self.diagnostics
                            .push(rules::unknown_error_kind::diagnostic(kind, &known));
                        new_kind = true;
                    } else if !raisable.contains(&kind.name) {
                        self.diagnostics.push(rules::catch_cannot_raise::diagnostic(
                            &kind.name,
                            kind.span,
                            stmt.span,
                            &raisable_list,
                        ));
                        new_kind = true;
                    } else if let Some(first) = caught.get(&kind.name) {
                        shadowed_by = Some(*first);
                    } else {
                        caught.insert(kind.name.clone(), catch.span);
                        new_kind = true;
                    }
                }
                if let (false, Some(earlier)) = (new_kind, shadowed_by) {
                    self.diagnostics
                        .push(rules::catch_shadowed::diagnostic(catch.span, earlier));
                }
            }
            self.waited = after_stmt;
            self.push_scope(Vec::new());
            self.bind(&catch.binding.name, Schemas::error_value_type(), None);
            let outcome = self.block(&catch.body);
            self.pop_scope();
            waited = waited.max(self.waited);
            escaping_from_bodies.extend(outcome.raises);
            if !outcome.terminates {
                all_terminate = false;
                continuing.get_or_insert(catch.span);
            }
        }
        self.waited = waited;
        let mut escaping: BTreeSet<String> = if catch_all.is_some() {
            BTreeSet::new()
        } else {
            raisable
                .into_iter()
                .filter(|k| !caught.contains_key(k))
                .collect()
        };
        escaping.extend(escaping_from_bodies);
        (escaping, all_terminate, continuing)
    }

    fn branch(&mut self, scrutinee: &Ty, arms: &[Arm]) -> Outcome {
        let start = self.waited;
        let mut waited = start;
        let mut raises = BTreeSet::new();
        let mut all_terminate = true;
        let mut wildcard: Option<Span> = None;
        let mut unreachable_reported = false;
        let mut seen_literals: Vec<(String, Span)> = Vec::new();
        for arm in arms {
            if let (Some(earlier), false) = (wildcard, unreachable_reported) {
                self.diagnostics
                    .push(rules::unreachable_code::arm(arm.span, earlier));
                unreachable_reported = true;
            }
            for pattern in &arm.patterns {
                match &pattern.kind {
                    PatternKind::Wildcard => {
                        wildcard.get_or_insert(pattern.span);
                    }
                    PatternKind::Literal(value) => {
                        let ty = self.expr(value, &mut raises);
                        if !scrutinee.comparable_with(&ty) {
                            self.diagnostics.push(rules::type_mismatch::diagnostic(
                                pattern.span,
                                scrutinee,
                                &ty,
                                "this pattern",
                            ));
                        }
                        let key = format!("{:?}", value.kind);
                        if let Some((_, first)) = seen_literals.iter().find(|(k, _)| *k == key) {
                            if !unreachable_reported {
                                self.diagnostics
                                    .push(rules::unreachable_code::arm(pattern.span, *first));
                            }
                        } else {
                            seen_literals.push((key, pattern.span));
                        }
                    }
                    PatternKind::Contains(_) | PatternKind::Regex(_) => {
                        if !Ty::String.accepts(scrutinee) {
                            self.diagnostics.push(rules::type_mismatch::diagnostic(
                                pattern.span,
                                scrutinee,
                                &Ty::String,
                                "a text pattern's value",
                            ));
                        }
                        if let PatternKind::Regex(regex) = &pattern.kind {
                            if let Some(d) = rules::invalid_pattern::check(regex, pattern.span) {
                                self.diagnostics.push(d);
                            }
                        }
                    }
                }
            }
            self.waited = start;
            let outcome = self.block(&arm.body);
            waited = waited.max(self.waited);
            raises.extend(outcome.raises);
            all_terminate &= outcome.terminates;
        }
        self.waited = waited;
        Outcome {
            terminates: wildcard.is_some() && all_terminate && !arms.is_empty(),
            raises,
        }
    }

    // ------------------------------------------------------------------
    // Expressions
    // ------------------------------------------------------------------

    /// Reports a mismatch when `expected` does not accept `actual`.
    fn expect(&mut self, span: Span, expected: &Ty, actual: &Ty, what: &str) -> bool {
        if expected.accepts(actual) {
            return true;
        }
        self.diagnostics.push(rules::type_mismatch::diagnostic(
            span, expected, actual, what,
        ));
        false
    }

    fn expr(&mut self, expr: &Expr, raises: &mut BTreeSet<String>) -> Ty {
        match &expr.kind {
            ExprKind::Str(parts) => {
                for part in parts {
                    if let StrPart::Expr(inner) = part {
                        let ty = self.value(inner, raises);
                        // A value that may be none would print as nothing,
                        // leaving a hole in the customer's message.
                        if matches!(ty, Ty::Optional(_) | Ty::NoneValue) {
                            let wanted = match &ty {
                                Ty::Optional(inner_ty) => (**inner_ty).clone(),
                                _ => Ty::String,
                            };
                            self.expect(inner.span, &wanted, &ty, "an interpolated value");
                        }
                    }
                }
                Ty::String
            }
            ExprKind::Int(_) => Ty::Int,
            ExprKind::Float(_) => Ty::Float,
            ExprKind::Bool(_) => Ty::Bool,
            ExprKind::None => Ty::NoneValue,
            ExprKind::Invalid => Ty::Unknown,
            ExprKind::Duration(_) => Ty::Duration,
            ExprKind::List(items) => {
                let mut element: Option<Ty> = None;
                for item in items {
                    let ty = self.expr(item, raises);
                    element = Some(match element {
                        None => ty,
                        Some(seen) if seen.accepts(&ty) => seen,
                        Some(seen) if ty.accepts(&seen) => ty,
                        Some(_) => Ty::Any,
                    });
                }
                Ty::List(Box::new(element.unwrap_or(Ty::Unknown)))
            }
            ExprKind::Record(fields) => {
                let mut out: Vec<FieldTy> = Vec::new();
                for (key, value) in fields {
                    let ty = self.expr(value, raises);
                    if let Some(first) = out.iter().find(|f| f.name == key.name) {
                        self.diagnostics
                            .push(rules::duplicate_definition::diagnostic(
                                "field", &key.name, key.span, first.span,
                            ));
                        continue;
                    }
                    out.push(FieldTy::new(key.name.clone(), ty, None, key.span));
                }
                Ty::Record(Arc::new(RecordTy {
                    name: None,
                    fields: out,
                }))
            }
            ExprKind::Var(name) => match self.lookup(&name.name) {
                Some(binding) => {
                    let mut ty = binding.ty.clone();
                    if self.is_narrowed(&name.name) {
                        ty = ty.non_optional().clone();
                    }
                    if let Some(catch) = binding.unset_by {
                        self.diagnostics.push(rules::unset_after_catch::diagnostic(
                            &name.name, name.span, catch,
                        ));
                    }
                    ty
                }
                None => {
                    let names = self.names_in_scope();
                    let d = rules::unknown_variable::diagnostic(name, &names);
                    self.diagnostics.push(d);
                    Ty::Unknown
                }
            },
            ExprKind::Field(base, field) => {
                let base_ty = self.expr(base, raises);
                let ty = self.field(&base_ty, field);
                match path_of(expr) {
                    Some(path) if self.is_narrowed(&path) => ty.non_optional().clone(),
                    _ => ty,
                }
            }
            ExprKind::Call(call) => self.call(call, raises),
            ExprKind::Unary(op, operand) => {
                let ty = self.expr(operand, raises);
                let (symbol, result) = match op {
                    UnaryOp::Not => ("not", (ty == Ty::Bool).then_some(Ty::Bool)),
                    UnaryOp::Neg => (
                        "-",
                        (ty.is_number() || ty == Ty::Duration).then(|| ty.clone()),
                    ),
                };
                match result {
                    _ if ty.is_unconstrained() => Ty::Unknown,
                    Some(result) => result,
                    None => {
                        self.diagnostics
                            .push(rules::type_mismatch::operator(expr.span, symbol, &ty, None));
                        Ty::Unknown
                    }
                }
            }
            ExprKind::Binary(op, left, right) => {
                let l = self.expr(left, raises);
                let r = self.expr(right, raises);
                match binary_result(*op, &l, &r) {
                    Some(ty) => ty,
                    None => {
                        self.diagnostics.push(rules::type_mismatch::operator(
                            expr.span,
                            op.symbol(),
                            &l,
                            Some(&r),
                        ));
                        Ty::Unknown
                    }
                }
            }
        }
    }

    fn field(&mut self, base: &Ty, field: &Ident) -> Ty {
        let optional = matches!(base, Ty::Optional(_));
        match base.non_optional() {
            Ty::Record(record) => match record.field(&field.name) {
                Some(f) if optional => f.ty.clone().optional(),
                Some(f) => f.ty.clone(),
                None => {
                    let names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
                    self.diagnostics
                        .push(rules::unknown_field::diagnostic(field, base, &names));
                    Ty::Unknown
                }
            },
            Ty::Any => Ty::Any,
            Ty::Unknown => Ty::Unknown,
            other => {
                self.diagnostics
                    .push(rules::unknown_field::diagnostic(field, other, &[]));
                Ty::Unknown
            }
        }
    }

    // ------------------------------------------------------------------
    // Calls
    // ------------------------------------------------------------------

    fn call(&mut self, call: &Call, raises: &mut BTreeSet<String>) -> Ty {
        let schemas = self.schemas;
        self.called
            .entry(self.flow.clone())
            .or_default()
            .insert(call.name.name.clone());
        let Some(action) = schemas.actions.get(&call.name.name) else {
            let known: Vec<&str> = schemas.actions.keys().map(String::as_str).collect();
            self.diagnostics
                .push(rules::unknown_action::diagnostic(&call.name, &known));
            for arg in &call.args {
                self.expr(&arg.value, raises);
            }
            return Ty::Unknown;
        };

        let mut given: Vec<(&ParamSchema, &Expr, Span)> = Vec::new();
        // The arguments whose type fits: the rules on literal values look
        // at these only.
        let mut typed: Vec<(&ParamSchema, &Expr)> = Vec::new();
        for (arg, target) in arg_targets(action, call) {
            let param = match target {
                ArgTarget::Param(p, span) => Some((p, span)),
                ArgTarget::Unknown(name) => {
                    let params: Vec<&str> = action.params.iter().map(|p| p.name.as_str()).collect();
                    self.diagnostics.push(rules::unknown_argument::diagnostic(
                        name,
                        &action.name,
                        &params,
                    ));
                    None
                }
                ArgTarget::Extra { first } => {
                    if first {
                        self.diagnostics.push(rules::too_many_arguments::diagnostic(
                            arg.value.span,
                            &action.name,
                            action.params.len(),
                        ));
                    }
                    None
                }
            };
            let ty = self.expr(&arg.value, raises);
            let Some((param, name_span)) = param else {
                continue;
            };
            if let Some((_, _, first)) = given.iter().find(|(p, _, _)| p.name == param.name) {
                self.diagnostics.push(rules::duplicate_argument::diagnostic(
                    &param.name,
                    name_span,
                    *first,
                ));
                continue;
            }
            given.push((param, &arg.value, name_span));
            if self.expect(
                arg.value.span,
                &param.ty,
                &ty,
                &format!("argument `{}`", param.name),
            ) {
                self.literal_rules(&param.ty, &arg.value);
                typed.push((param, &arg.value));
            }
        }

        for param in action.params.iter().filter(|p| p.is_required()) {
            if !given.iter().any(|(p, _, _)| p.name == param.name) {
                self.diagnostics.push(rules::missing_argument::diagnostic(
                    call.name.span,
                    &action.name,
                    &param.name,
                    &param.ty,
                ));
            }
        }

        self.declared_limits(action, &typed);
        self.one_of(action, &given, call);
        self.media(action, &typed);
        self.template_variables(action, &given, call);
        self.template_components(action, &given, call);
        self.window(action, &given, call);
        raises.extend(action.raises.iter().cloned());
        action.returns.clone()
    }

    /// Rules that look at literal argument values.
    fn literal_rules(&mut self, ty: &Ty, value: &Expr) {
        // Each element of a list literal is checked like a single value.
        if let (Ty::List(element), ExprKind::List(items)) = (ty.non_optional(), &value.kind) {
            for item in items {
                self.literal_rules(element, item);
            }
            return;
        }
        let Some(text) = value.kind.as_plain_str() else {
            return;
        };
        let span = value.span;
        let config = self.config;
        if *ty.non_optional() == Ty::Sender {
            self.senders
                .entry(self.flow.clone())
                .or_default()
                .insert(text.to_string());
        }
        let diagnostic = match ty.non_optional() {
            Ty::Phone => rules::phone_not_e164::check(&text, span),
            Ty::TimeZone => rules::invalid_time_zone::check(&text, span),
            Ty::DateFormat => rules::invalid_date_format::check(&text, span),
            Ty::Sender => config
                .filter(|c| !c.senders.is_empty() && !c.senders.contains_key(&text))
                .map(|c| {
                    let known: Vec<&str> = c.senders.keys().map(String::as_str).collect();
                    rules::unknown_sender::diagnostic(&text, span, &known)
                }),
            Ty::Assistant => config
                .filter(|c| !c.assistants.is_empty() && !c.assistants.contains_key(&text))
                .map(|c| {
                    let known: Vec<&str> = c.assistants.keys().map(String::as_str).collect();
                    rules::unknown_assistant::diagnostic(&text, span, &known)
                }),
            Ty::Template => config.and_then(|c| match c.templates.get(&text) {
                None => {
                    let known: Vec<&str> = c.templates.keys().map(String::as_str).collect();
                    Some(rules::unknown_template::diagnostic(&text, span, &known))
                }
                Some(t) if t.category == TemplateCategory::Marketing && !t.has_opt_out() => {
                    Some(rules::marketing_without_opt_out::diagnostic(&text, span))
                }
                Some(_) => None,
            }),
            _ => None,
        };
        if let Some(d) = diagnostic {
            self.diagnostics.push(d);
        }
    }

    /// F3002 / F3013 / F3014 / F3015: the declared limits the literal parts
    /// of the arguments break.
    fn declared_limits(&mut self, action: &ActionSchema, typed: &[(&ParamSchema, &Expr)]) {
        let violations = limits::action_violations(action, |name| {
            typed
                .iter()
                .find(|(p, _)| p.name == name)
                .map(|(_, value)| *value)
        });
        for violation in violations {
            let place = without_indices(&violation.path);
            let span = violation.at.span;
            let diagnostic = match &violation.breach {
                Breach::TooLong { chars, max, exact } if violation.top_level => {
                    rules::message_too_long::check(*chars, *max, span, !exact)
                }
                Breach::TooLong { .. } => Some(rules::text_too_long::diagnostic(
                    &violation.breach,
                    &place,
                    span,
                )),
                Breach::TooFew { .. } | Breach::TooMany { .. } => {
                    let across = action.across.iter().find(|a| a.path.join(".") == place);
                    let declared = match across {
                        Some(across) => format!(
                            "`{}` declares `@across({place}, {})`",
                            action.name,
                            across.limits.args_text()
                        ),
                        None => {
                            let declared = declared_place(action, &place);
                            format!("`{}` declares `{place}: {declared}`", action.name)
                        }
                    };
                    Some(rules::item_count::diagnostic(
                        &violation.breach,
                        &place,
                        across.is_some(),
                        span,
                        &declared,
                    ))
                }
                Breach::Duplicate { field, value } => {
                    let list = place
                        .strip_suffix(&format!(".{field}"))
                        .unwrap_or(&place)
                        .to_string();
                    violation.first.as_ref().map(|(first, _)| {
                        rules::duplicate_item::diagnostic(field, value, &list, span, first.span)
                    })
                }
            };
            if let Some(d) = diagnostic {
                self.diagnostics.push(d);
            }
        }
    }

    /// F2007: a call passes exactly one argument of each `@one_of` group.
    fn one_of(
        &mut self,
        action: &ActionSchema,
        given: &[(&ParamSchema, &Expr, Span)],
        call: &Call,
    ) {
        for group in &action.one_of {
            // `link: none` passes nothing.
            let passed: Vec<(&str, Span)> = given
                .iter()
                .filter(|(p, value, _)| {
                    group.contains(&p.name) && !matches!(value.kind, ExprKind::None)
                })
                .map(|(p, _, span)| (p.name.as_str(), *span))
                .collect();
            match passed.as_slice() {
                [] => self.diagnostics.push(rules::one_of_arguments::none_given(
                    &action.name,
                    group,
                    call.name.span,
                )),
                [_] => {}
                [first, second, ..] => self.diagnostics.push(rules::one_of_arguments::two_given(
                    &action.name,
                    group,
                    *first,
                    *second,
                )),
            }
        }
    }

    /// F3016 / F3017: the literal `link` and `file` of a media send.
    fn media(&mut self, action: &ActionSchema, typed: &[(&ParamSchema, &Expr)]) {
        let Some(kind) = action.media else {
            return;
        };
        for (param, value) in typed {
            let problem = match param.name.as_str() {
                "link" => self.media_link(value, kind),
                "file" => self.media_file(value, kind),
                _ => None,
            };
            if let Some(d) = problem {
                self.diagnostics.push(d);
            }
        }
    }

    /// A link must be http(s), and its file extension fit `kind`.
    fn media_link(&self, value: &Expr, kind: MediaKind) -> Option<Diagnostic> {
        let ExprKind::Str(parts) = &value.kind else {
            return None;
        };
        if let Some(StrPart::Text(head)) = parts.first() {
            let head = head.to_ascii_lowercase();
            let decided = head.len() >= "https://".len() || value.kind.as_plain_str().is_some();
            let is_link = head.starts_with("https://") || head.starts_with("http://");
            let may_become_link = "https://".starts_with(&head) || "http://".starts_with(&head);
            if !is_link && (decided || !may_become_link) {
                return Some(rules::invalid_media::not_a_link(value.span));
            }
        } else if value.kind.as_plain_str().is_some() {
            // The empty string.
            return Some(rules::invalid_media::not_a_link(value.span));
        }
        self.media_extension(value, kind)
    }

    /// The file extension of a literal (or of the literal end of an
    /// interpolated string) must fit `kind`.
    fn media_extension(&self, value: &Expr, kind: MediaKind) -> Option<Diagnostic> {
        let ExprKind::Str(parts) = &value.kind else {
            return None;
        };
        let Some(StrPart::Text(tail)) = parts.last() else {
            return None;
        };
        let (mime, natural) = MediaKind::from_extension(tail)?;
        if kind.accepts_mime(mime) {
            return None;
        }
        let name = tail.split(['?', '#']).next().unwrap_or(tail);
        let extension = name.rsplit_once('.').map_or("", |(_, e)| e);
        let better = self
            .schemas
            .actions
            .values()
            .find(|a| a.media == Some(natural) && natural.accepts_mime(mime))
            .map(|a| a.name.as_str());
        Some(rules::invalid_media::wrong_kind(
            value.span, extension, mime, kind, better,
        ))
    }

    /// A local file: its extension must fit `kind`; when it exists, its
    /// size too; when it does not, a warning.
    fn media_file(&self, value: &Expr, kind: MediaKind) -> Option<Diagnostic> {
        if let Some(d) = self.media_extension(value, kind) {
            return Some(d);
        }
        let path = value.kind.as_plain_str()?;
        let resolved = self.files.resolve(value.span, &path);
        match std::fs::metadata(&resolved) {
            Ok(meta) if meta.is_file() => {
                let mime = MediaKind::from_extension(&path).map(|(mime, _)| mime);
                kind.check(mime, Some(meta.len()))
                    .err()
                    .map(|problem| rules::invalid_media::too_large(value.span, &problem))
            }
            Ok(_) => None,
            Err(_) => Some(rules::media_file_missing::diagnostic(
                value.span,
                &path,
                &resolved.display().to_string(),
            )),
        }
    }

    /// F3018 (and F3016 for header links): the header and button
    /// parameters of a call with a literal catalog template.
    fn template_components(
        &mut self,
        action: &ActionSchema,
        given: &[(&ParamSchema, &Expr, Span)],
        call: &Call,
    ) {
        let Some((template_name, template)) = self
            .config
            .and_then(|config| literal_template(config, given))
        else {
            return;
        };
        let arg = |name: &str| {
            given
                .iter()
                .find(|(p, value, _)| p.name == name && !matches!(value.kind, ExprKind::None))
                .map(|(_, value, _)| *value)
        };
        if action.param("header").is_some() {
            let needed = match &template.header {
                Some(TemplateHeaderConfig::Media(kind)) => Some((
                    format!(
                        "is {} {kind}",
                        if *kind == MediaKind::Image { "an" } else { "a" }
                    ),
                    format!("an https link to the {kind} or an uploaded media id"),
                )),
                Some(TemplateHeaderConfig::Text { text, placeholders })
                    if placeholders.count() > 0 =>
                {
                    Some((
                        format!("has a placeholder: \"{text}\""),
                        "the value of the placeholder".to_string(),
                    ))
                }
                _ => None,
            };
            match (arg("header"), needed) {
                (None, Some((what, value))) => {
                    self.diagnostics
                        .push(rules::template_parameters::header_missing(
                            &template_name,
                            call.name.span,
                            &what,
                            &value,
                        ))
                }
                (Some(header), None) => {
                    self.diagnostics
                        .push(rules::template_parameters::header_unexpected(
                            &template_name,
                            header.span,
                            template.header.is_some(),
                        ))
                }
                (Some(header), Some(_)) => {
                    if let Some(TemplateHeaderConfig::Media(kind)) = &template.header {
                        let is_link = header.kind.as_plain_str().is_some_and(|h| {
                            let h = h.to_ascii_lowercase();
                            h.starts_with("https://") || h.starts_with("http://")
                        });
                        if is_link {
                            if let Some(d) = self.media_extension(header, *kind) {
                                self.diagnostics.push(d);
                            }
                        }
                    }
                }
                (None, None) => {}
            }
        }
        if action.param("buttons").is_some() {
            let taking: Vec<&TemplateButtonConfig> = template
                .buttons
                .iter()
                .filter(|b| b.takes_parameter())
                .collect();
            match arg("buttons").map(|b| (b, &b.kind)) {
                None => {
                    // Quick replies send their text when no payload is given.
                    if taking
                        .iter()
                        .any(|b| b.kind != TemplateButtonKind::QuickReply)
                    {
                        self.diagnostics
                            .push(rules::template_parameters::buttons_count(
                                &template_name,
                                call.name.span,
                                &taking,
                                None,
                            ));
                    }
                }
                Some((buttons, ExprKind::List(items))) => {
                    if items.len() != taking.len() {
                        self.diagnostics
                            .push(rules::template_parameters::buttons_count(
                                &template_name,
                                buttons.span,
                                &taking,
                                Some(items.len()),
                            ));
                        return;
                    }
                    for (button, item) in taking.iter().zip(items) {
                        if let Some(d) = button_value_problem(button, item) {
                            self.diagnostics.push(d);
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// F3005: the variables of a call with a literal catalog template.
    fn template_variables(
        &mut self,
        action: &ActionSchema,
        given: &[(&ParamSchema, &Expr, Span)],
        call: &Call,
    ) {
        let Some((template_name, template)) = self
            .config
            .and_then(|config| literal_template(config, given))
        else {
            return;
        };
        let has_variables_param = action
            .params
            .iter()
            .any(|p| *p.ty.non_optional() == Ty::Variables);
        if !has_variables_param {
            return;
        }
        let variables = given
            .iter()
            .find(|(p, _, _)| *p.ty.non_optional() == Ty::Variables)
            .map(|(_, value, _)| *value);
        let diagnostic = match (&template.placeholders, variables.map(|v| &v.kind)) {
            (Placeholders::Positional(0), None) => None,
            (Placeholders::Named(names), None) if names.is_empty() => None,
            (Placeholders::Positional(n), None) => Some(rules::template_variables::missing(
                &template_name,
                call.name.span,
                *n,
                &[],
            )),
            (Placeholders::Named(names), None) => Some(rules::template_variables::missing(
                &template_name,
                call.name.span,
                names.len(),
                names,
            )),
            (Placeholders::Positional(n), Some(ExprKind::List(items))) if items.len() != *n => {
                variables.map(|v| {
                    rules::template_variables::count(
                        &template_name,
                        &template.body,
                        v.span,
                        *n,
                        items.len(),
                    )
                })
            }
            (Placeholders::Positional(n), Some(ExprKind::Record(fields)))
                if *n > 0 || !fields.is_empty() =>
            {
                variables
                    .map(|v| rules::template_variables::wrong_form(&template_name, v.span, &[]))
            }
            (Placeholders::Named(names), Some(ExprKind::List(_))) => variables
                .map(|v| rules::template_variables::wrong_form(&template_name, v.span, names)),
            (Placeholders::Named(names), Some(ExprKind::Record(fields))) => {
                let missing: Vec<&str> = names
                    .iter()
                    .filter(|n| !fields.iter().any(|(k, _)| &k.name == *n))
                    .map(String::as_str)
                    .collect();
                let unknown: Vec<&str> = fields
                    .iter()
                    .filter(|(k, _)| !names.contains(&k.name))
                    .map(|(k, _)| k.name.as_str())
                    .collect();
                (!missing.is_empty() || !unknown.is_empty()).then(|| {
                    let span = variables.map_or(call.name.span, |v| v.span);
                    rules::template_variables::names(&template_name, span, &missing, &unknown)
                })
            }
            _ => None,
        };
        if let Some(d) = diagnostic {
            self.diagnostics.push(d);
        }
    }

    /// F3008 / F3009: free text needs the recipient's 24-hour window open.
    fn window(
        &mut self,
        action: &ActionSchema,
        given: &[(&ParamSchema, &Expr, Span)],
        call: &Call,
    ) {
        let Some(window_param) = &action.requires_window else {
            return;
        };
        let Some(handler) = &self.handler else {
            return;
        };
        let Some(trigger) = handler.trigger else {
            return;
        };
        let span = call.name.span;
        let recipient = given
            .iter()
            .find(|(p, _, _)| &p.name == window_param)
            .map(|(_, value, _)| *value);
        if let Some(since_reply) = recipient.and_then(|value| self.reply_window(value)) {
            self.window_after(since_reply, span);
            return;
        }
        let Some(window_field) = &trigger.opens_window else {
            self.diagnostics.push(rules::outside_window::no_window(
                span,
                &trigger.name,
                handler.trigger_span,
            ));
            return;
        };
        let to_trigger_customer = recipient.is_some_and(|value| match &value.kind {
            ExprKind::Field(base, field) => {
                field.name == *window_field
                    && matches!(&base.kind, ExprKind::Var(v) if v.name == handler.binding)
            }
            _ => false,
        });
        if !to_trigger_customer {
            if let Some(value) = recipient {
                let field = format!("{}.{}", handler.binding, window_field);
                self.diagnostics
                    .push(rules::window_not_proven::other_recipient(
                        value.span, &field,
                    ));
            }
            return;
        }
        self.window_after(self.waited, span);
    }

    /// F3008 / F3009 for a send `waited` after the window opened.
    fn window_after(&mut self, waited: Waited, span: Span) {
        match waited {
            Waited::Known(ms) if ms >= WINDOW_MS => self.diagnostics.push(
                rules::outside_window::after_waits(span, &crate::duration::format(ms)),
            ),
            Waited::Unknown(wait) => self
                .diagnostics
                .push(rules::window_not_proven::after_unknown_wait(span, wait)),
            Waited::Known(_) => {}
        }
    }
}

/// Where an argument goes.
enum ArgTarget<'a, 'c> {
    /// This parameter; the span of the name, or of the value when positional.
    Param(&'a ParamSchema, Span),
    /// A named argument the action does not take.
    Unknown(&'c Ident),
    /// A positional argument past the last parameter; `first` for the
    /// first of them.
    Extra {
        /// Whether it is the first one past the last parameter.
        first: bool,
    },
}

/// Each argument of `call` with where it goes: named ones by name,
/// positional ones in order.
fn arg_targets<'a, 'c>(
    action: &'a ActionSchema,
    call: &'c Call,
) -> Vec<(&'c Arg, ArgTarget<'a, 'c>)> {
    let mut positional = 0;
    call.args
        .iter()
        .map(|arg| {
            let target = match &arg.name {
                Some(name) => match action.param(&name.name) {
                    Some(p) => ArgTarget::Param(p, name.span),
                    None => ArgTarget::Unknown(name),
                },
                None => {
                    positional += 1;
                    match action.params.get(positional - 1) {
                        Some(p) => ArgTarget::Param(p, arg.value.span),
                        None => ArgTarget::Extra {
                            first: positional == action.params.len() + 1,
                        },
                    }
                }
            };
            (arg, target)
        })
        .collect()
}

/// The parameters a call's arguments fill, each once (the first argument
/// for it), with the values.
pub(crate) fn bound_args<'a, 'c>(
    action: &'a ActionSchema,
    call: &'c Call,
) -> Vec<(&'a ParamSchema, &'c Expr)> {
    let mut out: Vec<(&ParamSchema, &Expr)> = Vec::new();
    for (arg, target) in arg_targets(action, call) {
        if let ArgTarget::Param(param, _) = target {
            if !out.iter().any(|(p, _)| p.name == param.name) {
                out.push((param, &arg.value));
            }
        }
    }
    out
}

/// `buttons[3].title` without indices: `buttons.title`.
fn without_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// The declared type, with limits, of a place of an action's arguments
/// (`buttons`, `sections.rows`), as declarations write it.
fn declared_place(action: &ActionSchema, place: &str) -> String {
    let steps: Vec<String> = place.split('.').map(String::from).collect();
    let Some((first, rest)) = steps.split_first() else {
        return String::new();
    };
    let Some(param) = action.param(first) else {
        return String::new();
    };
    let mut declared = limits::type_text(&param.ty, &param.limits);
    let mut ty = &param.ty;
    for step in rest {
        let field = match ty.non_optional() {
            Ty::List(element) => match element.non_optional() {
                Ty::Record(record) => record.field(step),
                _ => None,
            },
            Ty::Record(record) => record.field(step),
            _ => None,
        };
        let Some(field) = field else {
            break;
        };
        declared = limits::type_text(&field.ty, &field.limits);
        ty = &field.ty;
    }
    declared
}

/// A literal button parameter of a template send that WhatsApp would refuse.
fn button_value_problem(button: &TemplateButtonConfig, value: &Expr) -> Option<Diagnostic> {
    let text = value.kind.as_plain_str()?;
    let problem = match button.kind {
        TemplateButtonKind::QuickReply if text.trim().is_empty() => Some((
            "an empty payload",
            "a non-empty id the flow will receive as `reply_id`, e.g. \"CONFIRM\"",
        )),
        TemplateButtonKind::Url if text.trim().is_empty() => Some((
            "an empty end of the link",
            "the part that completes the link, e.g. an order number",
        )),
        TemplateButtonKind::Url
            if text.to_ascii_lowercase().starts_with("http://")
                || text.to_ascii_lowercase().starts_with("https://") =>
        {
            Some((
                "a whole link, but the template has the start of it",
                "only the part after the template's link, e.g. \"order-1234\"",
            ))
        }
        TemplateButtonKind::Url if text.chars().any(char::is_whitespace) => Some((
            "spaces cannot be part of a link",
            "the end of the link without spaces",
        )),
        TemplateButtonKind::CopyCode if text.trim().is_empty() => Some((
            "an empty code",
            "the code the customer copies, e.g. \"SPRING25\"",
        )),
        TemplateButtonKind::CopyCode
            if text.chars().count() > crate::config::MAX_COPY_CODE_CHARS =>
        {
            Some((
                "a code longer than the 15 characters WhatsApp allows",
                "a code of at most 15 characters",
            ))
        }
        _ => None,
    }?;
    Some(rules::template_parameters::bad_button_value(
        value.span, button, problem.0, problem.1,
    ))
}

/// Where local files named in flows are looked for: the project root (the
/// folder of flow.toml) when known, else the folder of the flow file.
pub(crate) struct FileRoots<'a> {
    /// The folder of flow.toml, if the check has one.
    pub(crate) project_root: Option<std::path::PathBuf>,
    /// The sources, for the folder of a flow file.
    pub(crate) sources: &'a SourceMap,
}

impl FileRoots<'_> {
    /// `path` as written in the file of `span`, resolved.
    fn resolve(&self, span: Span, path: &str) -> std::path::PathBuf {
        let written = std::path::Path::new(path);
        if written.is_absolute() {
            return written.to_path_buf();
        }
        let root = self
            .project_root
            .clone()
            .unwrap_or_else(|| self.folder_of(span.file));
        root.join(written)
    }

    fn folder_of(&self, file: FileId) -> std::path::PathBuf {
        std::path::Path::new(self.sources.get(file).name())
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// `msg.name` for a variable or a chain of field reads of one.
fn path_of(expr: &Expr) -> Option<String> {
    match &expr.kind {
        ExprKind::Var(v) => Some(v.name.clone()),
        ExprKind::Field(base, field) => Some(format!("{}.{}", path_of(base)?, field.name)),
        _ => None,
    }
}

/// The paths a condition compares with `none`. With `is_none`, the paths
/// that are none when the condition holds (`a == none or b == none`);
/// otherwise those that are not none when it holds (`a != none and b != none`).
fn none_checks(cond: &Expr, is_none: bool) -> Vec<String> {
    let (compare, join) = if is_none {
        (BinaryOp::Eq, BinaryOp::Or)
    } else {
        (BinaryOp::Ne, BinaryOp::And)
    };
    match &cond.kind {
        ExprKind::Binary(op, left, right) if *op == join => {
            let mut paths = none_checks(left, is_none);
            paths.extend(none_checks(right, is_none));
            paths
        }
        ExprKind::Binary(op, left, right) if *op == compare => match (&left.kind, &right.kind) {
            (_, ExprKind::None) => path_of(left).into_iter().collect(),
            (ExprKind::None, _) => path_of(right).into_iter().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The result type of `left op right`, or `None` when the operator does not
/// apply.
fn binary_result(op: BinaryOp, left: &Ty, right: &Ty) -> Option<Ty> {
    if left.is_unconstrained() || right.is_unconstrained() {
        return Some(match op {
            BinaryOp::Or
            | BinaryOp::And
            | BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::Contains => Ty::Bool,
            _ => Ty::Unknown,
        });
    }
    use BinaryOp::*;
    match op {
        Default => match left {
            Ty::Optional(inner) if inner.accepts(right) => Some((**inner).clone()),
            Ty::Optional(inner) if right.accepts(inner) => Some(right.clone()),
            Ty::NoneValue => Some(right.clone()),
            other if other.accepts(right) => Some(other.clone()),
            _ => None,
        },
        Or | And => (*left == Ty::Bool && *right == Ty::Bool).then_some(Ty::Bool),
        Eq | Ne => left.comparable_with(right).then_some(Ty::Bool),
        Lt | Le | Gt | Ge => {
            let ordered = (left.is_number() && right.is_number())
                || (left == right && matches!(left, Ty::Duration | Ty::DateTime | Ty::String));
            ordered.then_some(Ty::Bool)
        }
        Contains => match left {
            l if l.is_text() => right.is_text().then_some(Ty::Bool),
            Ty::List(element) => element.comparable_with(right).then_some(Ty::Bool),
            _ => None,
        },
        Add => match (left, right) {
            (Ty::Int, Ty::Int) => Some(Ty::Int),
            (l, r) if l.is_number() && r.is_number() => Some(Ty::Float),
            (l, r) if l.is_text() && r.is_text() => Some(Ty::String),
            (Ty::DateTime, Ty::Duration) | (Ty::Duration, Ty::DateTime) => Some(Ty::DateTime),
            (Ty::Duration, Ty::Duration) => Some(Ty::Duration),
            (Ty::List(a), Ty::List(b)) if a.accepts(b) => Some(left.clone()),
            _ => None,
        },
        Sub => match (left, right) {
            (Ty::Int, Ty::Int) => Some(Ty::Int),
            (l, r) if l.is_number() && r.is_number() => Some(Ty::Float),
            (Ty::DateTime, Ty::Duration) => Some(Ty::DateTime),
            (Ty::DateTime, Ty::DateTime) | (Ty::Duration, Ty::Duration) => Some(Ty::Duration),
            _ => None,
        },
        Mul => match (left, right) {
            (Ty::Int, Ty::Int) => Some(Ty::Int),
            (l, r) if l.is_number() && r.is_number() => Some(Ty::Float),
            (Ty::Duration, n) | (n, Ty::Duration) if n.is_number() => Some(Ty::Duration),
            _ => None,
        },
        Div => match (left, right) {
            (l, r) if l.is_number() && r.is_number() => Some(Ty::Float),
            (Ty::Duration, n) if n.is_number() => Some(Ty::Duration),
            _ => None,
        },
    }
}

/// The catalog entry of a call whose template is a literal the catalog
/// lists, with its name; `None` when the template is computed or unknown
/// (other rules report that).
fn literal_template<'c>(
    config: &'c Config,
    given: &[(&ParamSchema, &Expr, Span)],
) -> Option<(String, &'c TemplateConfig)> {
    let name = given
        .iter()
        .find(|(p, _, _)| *p.ty.non_optional() == Ty::Template)
        .and_then(|(_, value, _)| value.kind.as_plain_str())?;
    let template = config.templates.get(&name)?;
    Some((name, template))
}
