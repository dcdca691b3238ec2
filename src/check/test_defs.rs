//! Checking `test` blocks: the event given must fit its trigger, the facts
//! must name real senders, error kinds and actions, and every expectation
//! must name a declared action with declared parameters of the right types.
//! A checked test is plain data ([`CheckedTest`]) that `flowc test` runs.

use chrono::{DateTime, Utc};
use serde_json::Value as J;

use super::rules;
use super::schema::Schemas;
use super::types::Ty;
use crate::config::Config;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::{SourceMap, Span};
use crate::syntax::ast::{self, Expr, ExprKind, TestFactKind, TestOutcomeKind, ThenKind, UnaryOp};

/// When a test's event happens if it does not say (`given TRIGGER at "..."`).
pub const DEFAULT_START: &str = "2026-12-01T09:00:00Z";

/// The actions whose calls the recording fakes can be told to fail.
pub const FAILABLE_ACTIONS: &[&str] = &[
    "whatsapp.send_template",
    "whatsapp.send_text",
    "whatsapp.send_buttons",
    "whatsapp.send_list",
    "whatsapp.send_image",
    "whatsapp.send_document",
    "whatsapp.send_audio",
    "whatsapp.send_video",
    "whatsapp.send_sticker",
    "whatsapp.upload_media",
    "whatsapp.download_media",
    "whatsapp.mark_read",
    "ai.generate_response",
    "notify",
];

/// A checked `test` block.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedTest {
    /// The test's name.
    pub name: String,
    /// The name of the file it is written in.
    pub file: String,
    /// The whole test.
    pub span: Span,
    /// The trigger of the event given.
    pub trigger: String,
    /// The event's fields, as an event's JSON.
    pub fields: serde_json::Map<String, J>,
    /// When the event happens: the virtual clock starts here.
    pub start: DateTime<Utc>,
    /// What happens later (`then ... after DURATION`), in the order it
    /// happens.
    pub then: Vec<LaterStep>,
    /// The world the flows run in.
    pub facts: Vec<Fact>,
    /// The expected effects, in order.
    pub expectations: Vec<ExpectedEffect>,
    /// How the run must end; `None` accepts `completes` and `stops`.
    pub outcome: Option<ExpectedOutcome>,
}

/// Something that happens in a test after the given event.
#[derive(Debug, Clone, PartialEq)]
pub struct LaterStep {
    /// What happens.
    pub kind: LaterKind,
    /// How long after the given event it happens, in milliseconds.
    pub after_ms: u64,
}

/// What a [`LaterStep`] makes happen.
#[derive(Debug, Clone, PartialEq)]
pub enum LaterKind {
    /// An event.
    Event {
        /// The trigger.
        trigger: String,
        /// The event's fields, as an event's JSON.
        fields: serde_json::Map<String, J>,
    },
    /// The engine stops and a new one goes on from the store.
    Restart,
}

/// One `with ...` line.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// The customer last wrote to the sender this long before the event.
    Inbound {
        /// The customer's phone number.
        customer: String,
        /// The sender's name.
        sender: String,
        /// How long before the event, in milliseconds.
        ago_ms: u64,
    },
    /// The sender is offline: sends from it fail with `SenderOffline`.
    SenderOffline(String),
    /// The conversation of the customer with the sender is handed over to
    /// a person (paused without end).
    HandedOver {
        /// The customer's phone number.
        customer: String,
        /// The sender's name.
        sender: String,
    },
    /// The AI answers this text.
    AiAnswer(String),
    /// The `call`-th call of `action` fails with `kind`.
    Failure {
        /// The error kind.
        kind: String,
        /// The action.
        action: String,
        /// Counting from 1.
        call: usize,
    },
}

/// One expected effect.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedEffect {
    /// Exactly this long after the event, in milliseconds, if written.
    pub after_ms: Option<u64>,
    /// The action.
    pub action: String,
    /// The arguments written, by parameter name; only these are compared.
    pub args: Vec<(String, J)>,
}

/// How a run must end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedOutcome {
    /// `nothing runs`: no run starts.
    NothingRuns,
    /// `completes`.
    Completes,
    /// `stops`.
    Stops,
    /// `fails KIND`.
    Fails(String),
}

/// Checks the tests; returns the ones without mistakes.
pub(crate) fn check_tests(
    tests: &[&ast::TestDef],
    schemas: &Schemas,
    config: Option<&Config>,
    sources: &SourceMap,
    diagnostics: &mut Diagnostics,
) -> Vec<CheckedTest> {
    let mut seen: std::collections::HashMap<(u32, &str), Span> = Default::default();
    let mut checked = Vec::new();
    for test in tests {
        let key = (test.span.file.0, test.name.as_str());
        if let Some(first) = seen.get(&key) {
            diagnostics.push(rules::duplicate_definition::diagnostic(
                "test",
                &test.name,
                test.name_span,
                *first,
            ));
        } else {
            seen.insert(key, test.name_span);
        }
        let mut checker = TestChecker {
            schemas,
            config,
            diagnostics: &mut *diagnostics,
            ok: true,
        };
        if let Some(test) = checker.test(test, sources) {
            if checker.ok {
                checked.push(test);
            }
        }
    }
    checked
}

struct TestChecker<'a> {
    schemas: &'a Schemas,
    config: Option<&'a Config>,
    diagnostics: &'a mut Diagnostics,
    ok: bool,
}

impl TestChecker<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.ok = false;
        self.diagnostics.push(diagnostic);
    }

    fn test(&mut self, test: &ast::TestDef, sources: &SourceMap) -> Option<CheckedTest> {
        let given = &test.given;
        let fields = self.given(given);
        let start = match &given.at {
            None => DateTime::parse_from_rfc3339(DEFAULT_START)
                .ok()?
                .with_timezone(&Utc),
            Some(at) => {
                let text = self.string(at)?;
                match DateTime::parse_from_rfc3339(&text) {
                    Ok(at) => at.with_timezone(&Utc),
                    Err(e) => {
                        self.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                format!("`at` must be a date and time, found \"{text}\""),
                            )
                            .with_label(at.span, format!("not an RFC 3339 date and time: {e}"))
                            .with_help(
                                "write it with its offset, e.g. \"2026-12-01T10:00:00+01:00\"",
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        let facts = test.facts.iter().filter_map(|f| self.fact(f)).collect();
        let mut then = Vec::with_capacity(test.then.len());
        for later in &test.then {
            let kind = match &later.kind {
                ThenKind::Event(event) => match self.given(event) {
                    Some(fields) => LaterKind::Event {
                        trigger: event.trigger.name.clone(),
                        fields,
                    },
                    None => continue,
                },
                ThenKind::Restart => LaterKind::Restart,
            };
            then.push(LaterStep {
                kind,
                after_ms: later.after.0,
            });
        }
        // Written in any order, they happen in time order.
        then.sort_by_key(|later| later.after_ms);
        let expectations = test
            .expectations
            .iter()
            .filter_map(|e| self.expectation(e))
            .collect();
        let outcome = test.outcome.as_ref().and_then(|o| match &o.kind {
            TestOutcomeKind::Completes => Some(ExpectedOutcome::Completes),
            TestOutcomeKind::Stops => Some(ExpectedOutcome::Stops),
            TestOutcomeKind::NothingRuns => Some(ExpectedOutcome::NothingRuns),
            TestOutcomeKind::Fails(kind) => self
                .error_kind(kind)
                .then(|| ExpectedOutcome::Fails(kind.name.clone())),
        });
        Some(CheckedTest {
            name: test.name.clone(),
            file: sources.get(test.span.file).name().to_string(),
            span: test.span,
            trigger: given.trigger.name.clone(),
            fields: fields?,
            start,
            then,
            facts,
            expectations,
            outcome,
        })
    }

    /// Whether `kind` is a declared error kind (or `Fail`, the kind of
    /// `fail "..."`); reports it when not.
    fn error_kind(&mut self, kind: &ast::Ident) -> bool {
        if kind.name == "Fail" || self.schemas.errors.contains_key(&kind.name) {
            return true;
        }
        let known: Vec<&str> = self.schemas.errors.keys().map(String::as_str).collect();
        self.push(rules::unknown_error_kind::diagnostic(kind, &known));
        false
    }

    fn given(&mut self, given: &ast::Given) -> Option<serde_json::Map<String, J>> {
        let schemas = self.schemas;
        let Some(trigger) = schemas.triggers.get(&given.trigger.name) else {
            let known: Vec<&str> = schemas.triggers.keys().map(String::as_str).collect();
            self.push(rules::unknown_trigger::diagnostic(&given.trigger, &known));
            return None;
        };
        let mut out = serde_json::Map::new();
        for (name, value) in &given.fields {
            let Some(field) = trigger.fields.field(&name.name) else {
                let names: Vec<&str> = trigger
                    .fields
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect();
                self.push(rules::unknown_field::diagnostic(
                    name,
                    &Ty::Record(trigger.fields.clone()),
                    &names,
                ));
                continue;
            };
            if out.contains_key(&name.name) {
                self.push(rules::duplicate_definition::diagnostic(
                    "field", &name.name, name.span, name.span,
                ));
                continue;
            }
            if let Some(json) = self.value(value, &field.ty, &format!("field `{}`", name.name)) {
                out.insert(name.name.clone(), json);
            }
        }
        for field in &trigger.fields.fields {
            if field.is_required() && !out.contains_key(&field.name) {
                let written = given.fields.iter().any(|(n, _)| n.name == field.name);
                if !written {
                    self.push(
                        Diagnostic::new(
                            Code::MissingArgument,
                            format!(
                                "the `{}` event of this test has no field `{}`",
                                trigger.name, field.name
                            ),
                        )
                        .with_label(given.fields_span, format!("`{}` is missing", field.name))
                        .with_help(format!(
                            "every `{}` event has `{}` ({}): add it, e.g. `{}: ...`",
                            trigger.name, field.name, field.ty, field.name
                        )),
                    );
                }
            }
        }
        Some(out)
    }

    /// A literal as JSON, checked against `ty`.
    fn value(&mut self, value: &Expr, ty: &Ty, what: &str) -> Option<J> {
        let json = match literal_json(value) {
            Ok(json) => json,
            Err(span) => {
                self.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        format!("{what} must be a literal value in a test"),
                    )
                    .with_label(span, "not a literal")
                    .with_help(
                        "tests give plain values: strings, numbers, durations, true/false, none, lists and records",
                    ),
                );
                return None;
            }
        };
        let wanted = ty.non_optional();
        let mismatch = match (&value.kind, wanted) {
            (ExprKind::Duration(_), t) if *t != Ty::Duration && !t.is_unconstrained() => {
                Some("a duration")
            }
            (ExprKind::Str(_), Ty::Duration) => Some("a string"),
            _ => None,
        };
        if let Some(found) = mismatch {
            self.push(
                Diagnostic::new(
                    Code::TypeMismatch,
                    format!("{what} must be {ty}, found {found}"),
                )
                .with_label(value.span, format!("this is {found}"))
                .with_help(format!("pass a value of type {ty}")),
            );
            return None;
        }
        if let (Ty::Phone, J::String(text)) = (wanted, &json) {
            if let Some(d) = rules::phone_not_e164::check(text, value.span) {
                self.push(d);
                return None;
            }
        }
        if let (Ty::Sender, J::String(text)) = (wanted, &json) {
            if let Some(c) = self
                .config
                .filter(|c| !c.senders.is_empty() && !c.senders.contains_key(text))
            {
                let known: Vec<&str> = c.senders.keys().map(String::as_str).collect();
                self.push(rules::unknown_sender::diagnostic(text, value.span, &known));
                return None;
            }
        }
        if json.is_null() && matches!(ty, Ty::Optional(_)) {
            return Some(json);
        }
        if let Err((path, problem)) = crate::runtime::convert_json(&json, ty) {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" (at `{path}`)")
            };
            self.push(
                Diagnostic::new(
                    Code::TypeMismatch,
                    format!("{what} must be {ty}{at}: {problem}"),
                )
                .with_label(value.span, format!("not {ty}"))
                .with_help(format!("pass a value of type {ty}")),
            );
            return None;
        }
        Some(json)
    }

    fn string(&mut self, value: &Expr) -> Option<String> {
        match value.kind.as_plain_str() {
            Some(text) => Some(text),
            None => {
                self.push(
                    Diagnostic::new(Code::TypeMismatch, "a test value must be a plain string")
                        .with_label(value.span, "interpolation is not allowed here")
                        .with_help("write the text as it is, without `{...}`"),
                );
                None
            }
        }
    }

    fn fact(&mut self, fact: &ast::TestFact) -> Option<Fact> {
        match &fact.kind {
            TestFactKind::Inbound {
                customer,
                sender,
                ago_ms,
            } => {
                let customer = self.value(customer, &Ty::Phone, "the customer")?;
                let sender = self.value(sender, &Ty::Sender, "the sender")?;
                Some(Fact::Inbound {
                    customer: customer.as_str()?.to_string(),
                    sender: sender.as_str()?.to_string(),
                    ago_ms: *ago_ms,
                })
            }
            TestFactKind::SenderOffline(sender) => {
                let sender = self.value(sender, &Ty::Sender, "the sender")?;
                Some(Fact::SenderOffline(sender.as_str()?.to_string()))
            }
            TestFactKind::HandedOver { customer, sender } => {
                let customer = self.value(customer, &Ty::Phone, "the customer")?;
                let sender = self.value(sender, &Ty::Sender, "the sender")?;
                Some(Fact::HandedOver {
                    customer: customer.as_str()?.to_string(),
                    sender: sender.as_str()?.to_string(),
                })
            }
            TestFactKind::AiAnswer(text) => self.string(text).map(Fact::AiAnswer),
            TestFactKind::Failure {
                kind,
                action,
                call,
                call_span,
            } => {
                let kind_ok = self.error_kind(kind);
                if !self.schemas.actions.contains_key(&action.name) {
                    let known: Vec<&str> =
                        self.schemas.actions.keys().map(String::as_str).collect();
                    self.push(rules::unknown_action::diagnostic(action, &known));
                    return None;
                }
                if !FAILABLE_ACTIONS.contains(&action.name.as_str()) {
                    self.push(
                        Diagnostic::new(
                            Code::UnknownAction,
                            format!("`flowc test` cannot make `{}` fail", action.name),
                        )
                        .with_label(action.span, "no recording fake for this action")
                        .with_help(format!(
                            "failures can be given for {}",
                            FAILABLE_ACTIONS
                                .iter()
                                .map(|a| format!("`{a}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                    return None;
                }
                if *call < 1 {
                    self.push(
                        Diagnostic::new(Code::InvalidLiteral, "calls are counted from 1")
                            .with_label(*call_span, "must be 1 or more")
                            .with_help("`call 1` is the first call of the action"),
                    );
                    return None;
                }
                kind_ok.then(|| Fact::Failure {
                    kind: kind.name.clone(),
                    action: action.name.clone(),
                    call: usize::try_from(*call).unwrap_or(usize::MAX),
                })
            }
        }
    }

    fn expectation(&mut self, expectation: &ast::Expectation) -> Option<ExpectedEffect> {
        let schemas = self.schemas;
        let call = &expectation.call;
        let Some(action) = schemas.actions.get(&call.name.name) else {
            let known: Vec<&str> = schemas.actions.keys().map(String::as_str).collect();
            self.push(rules::unknown_action::diagnostic(&call.name, &known));
            return None;
        };
        let mut args: Vec<(String, J)> = Vec::new();
        let mut positional = 0;
        let mut ok = true;
        for arg in &call.args {
            let param = match &arg.name {
                Some(name) => match action.param(&name.name) {
                    Some(p) => p,
                    None => {
                        let params: Vec<&str> =
                            action.params.iter().map(|p| p.name.as_str()).collect();
                        self.push(rules::unknown_argument::diagnostic(
                            name,
                            &action.name,
                            &params,
                        ));
                        ok = false;
                        continue;
                    }
                },
                None => {
                    positional += 1;
                    match action.params.get(positional - 1) {
                        Some(p) => p,
                        None => {
                            self.push(rules::too_many_arguments::diagnostic(
                                arg.value.span,
                                &action.name,
                                action.params.len(),
                            ));
                            ok = false;
                            continue;
                        }
                    }
                }
            };
            if args.iter().any(|(n, _)| *n == param.name) {
                self.push(rules::duplicate_argument::diagnostic(
                    &param.name,
                    arg.value.span,
                    arg.value.span,
                ));
                ok = false;
                continue;
            }
            match self.value(&arg.value, &param.ty, &format!("argument `{}`", param.name)) {
                Some(json) => args.push((param.name.clone(), json)),
                None => ok = false,
            }
        }
        ok.then(|| ExpectedEffect {
            after_ms: expectation.after.map(|(ms, _)| ms),
            action: action.name.clone(),
            args,
        })
    }
}

/// A literal as JSON; the span of the first part that is not a literal.
pub(crate) fn literal_json(expr: &Expr) -> Result<J, Span> {
    Ok(match &expr.kind {
        ExprKind::Str(_) => J::String(expr.kind.as_plain_str().ok_or(expr.span)?),
        ExprKind::Int(i) => J::from(*i),
        ExprKind::Float(x) => serde_json::Number::from_f64(*x)
            .map(J::Number)
            .ok_or(expr.span)?,
        ExprKind::Bool(b) => J::Bool(*b),
        ExprKind::None => J::Null,
        ExprKind::Duration(ms) => J::String(crate::duration::format(*ms)),
        ExprKind::List(items) => {
            J::Array(items.iter().map(literal_json).collect::<Result<_, _>>()?)
        }
        ExprKind::Record(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.name.clone(), literal_json(v)?)))
                .collect::<Result<_, Span>>()?,
        ),
        ExprKind::Unary(UnaryOp::Neg, inner) => match inner.kind {
            ExprKind::Int(i) => J::from(-i),
            ExprKind::Float(x) => serde_json::Number::from_f64(-x)
                .map(J::Number)
                .ok_or(expr.span)?,
            _ => return Err(expr.span),
        },
        _ => return Err(expr.span),
    })
}
