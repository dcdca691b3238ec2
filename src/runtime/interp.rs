//! The interpreter: runs one run's statements until it finishes or waits.
//!
//! The loop is explicit (a stack of [`Frame`]s, not recursion over blocks), so
//! that the state at a wait is plain data: [`Run`]. Expressions evaluate in
//! one go: only `delay`, `wait for` and retry waits suspend a run.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Duration, FixedOffset, Utc};

use super::engine::Inner;
use super::observe::RunEvent;
use super::run::{Frame, Run, Step};
use super::value::Value;
use super::ActionError;
use crate::check::schema::ActionSchema;
use crate::check::Program;
use crate::config::{Placeholders, TemplateCategory, TemplateConfig};
use crate::media::MEDIA_KINDS;
use crate::phone::describe;
use crate::providers::{
    AiRequest, RunOutcome, SendState, SenderRef, SentRecord, TemplateMessage, TemplateParameters,
    TextMessage,
};
use crate::syntax::ast::*;

mod handoff;
mod rich;

/// The longest `wait for`: 30 days (the checker's F4010 limit).
const MAX_WAIT_MS: u64 = crate::check::rules::invalid_wait::MAX_WAIT_MS;
/// The customer service window.
const WINDOW: Duration = Duration::hours(24);
/// The product document's default retry: wait one minute, retry once.
const DEFAULT_RETRY: (i64, u64, f64) = (1, 60_000, 1.0);

/// The actions the engine implements itself; every other declared action
/// needs a handler from the host.
pub(crate) const BUILTIN_ACTIONS: &[&str] = &[
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
    "whatsapp.hand_over",
    "whatsapp.resume_automation",
    "ai.generate_response",
    "log",
    "notify",
    "format",
    "now",
];

/// Where a run stands after [`run_until_wait`].
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Waiting until this instant.
    Suspended(DateTime<Utc>),
    /// At a `wait for`: waiting for an event of `trigger` whose correlation
    /// field is `key`, at most until `until`.
    Waiting {
        /// When the wait times out.
        until: DateTime<Utc>,
        /// The trigger waited for.
        trigger: String,
        /// The correlation key.
        key: String,
    },
    /// Ended.
    Finished(RunOutcome),
}

/// What one statement asks of the loop.
enum Next {
    /// Go on with the next statement.
    Continue,
    /// Bind a name in the current block, then go on.
    Bind(String, Value),
    /// Run a nested block, then go on after this statement.
    Enter(Step),
    /// Wait until this instant, then go on after this statement.
    Wait(DateTime<Utc>),
    /// Wait for an event (`wait for`), staying at this statement.
    WaitFor {
        until: DateTime<Utc>,
        trigger: String,
        key: String,
    },
    /// `stop`.
    Stop,
    /// `fail`.
    Fail(String),
    /// An action failed.
    Error(ActionError),
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `run` until it finishes or waits. `delivered` is the event a
/// `wait for` the run stands at received (checked against its trigger), or
/// `None` when the run goes on for another reason (its wait timed out).
pub(crate) async fn run_until_wait(
    inner: &Inner,
    program: &Program,
    run: &mut Run,
    mut delivered: Option<Value>,
) -> Outcome {
    let Some(handler) = program
        .flow(&run.flow)
        .and_then(|flow| flow.handlers.get(run.handler))
    else {
        return failed(
            "Resume",
            format!(
                "the program has no flow `{}` with handler {}",
                run.flow, run.handler
            ),
        );
    };
    loop {
        run.steps += 1;
        if run.steps > inner.limits.step_budget {
            return failed(
                "StepBudget",
                format!("the run took more than {} steps", inner.limits.step_budget),
            );
        }
        let Some(frame) = run.frames.last() else {
            return Outcome::Finished(RunOutcome::Completed);
        };
        let Some(block) = resolve(&handler.body, &frame.path) else {
            return failed(
                "Resume",
                "the flow changed since this run was suspended".to_string(),
            );
        };
        let index = frame.next;
        let Some(stmt) = block.stmts.get(index) else {
            run.frames.pop();
            continue;
        };
        // Back at a `wait for` it suspended at (`attempt` 1): the reply, or
        // the timeout's else block.
        if let (StmtKind::Wait(wait), true) = (&stmt.kind, frame.attempt > 0) {
            let Some(frame) = run.frames.last_mut() else {
                return Outcome::Finished(RunOutcome::Completed);
            };
            let mut path = frame.path.clone();
            advance(frame);
            match delivered.take() {
                Some(event) => {
                    if let Some(name) = &wait.binding {
                        frame.vars.push((name.name.clone(), event));
                    }
                }
                None => {
                    path.push(Step::Else(index as u32));
                    run.frames.push(Frame {
                        path,
                        next: 0,
                        vars: Vec::new(),
                        attempt: 0,
                    });
                }
            }
            continue;
        }
        let ctx = Ctx {
            inner,
            program,
            run_id: &run.id,
            flow: &run.flow,
            frames: &run.frames,
            sends: std::sync::atomic::AtomicU32::new(0),
        };
        let next = ctx.statement(stmt, index).await;
        let Some(frame) = run.frames.last_mut() else {
            return Outcome::Finished(RunOutcome::Completed);
        };
        match next {
            Next::Continue => advance(frame),
            Next::Bind(name, value) => {
                frame.vars.push((name, value));
                advance(frame);
            }
            Next::Enter(step) => {
                let mut path = frame.path.clone();
                path.push(step);
                advance(frame);
                run.frames.push(Frame {
                    path,
                    next: 0,
                    vars: Vec::new(),
                    attempt: 0,
                });
            }
            Next::Wait(at) => {
                advance(frame);
                return Outcome::Suspended(at);
            }
            Next::WaitFor {
                until,
                trigger,
                key,
            } => {
                // Stays at the statement: resuming decides between the
                // reply and the else block.
                frame.attempt = 1;
                return Outcome::Waiting {
                    until,
                    trigger,
                    key,
                };
            }
            Next::Stop => return Outcome::Finished(RunOutcome::Stopped),
            Next::Fail(message) => return failed("Fail", message),
            Next::Error(error) => {
                if let Some(at) = handle_error(inner, program, handler, run, stmt, error.clone()) {
                    match at {
                        Handled::Retry(at) => return Outcome::Suspended(at),
                        Handled::Caught => {}
                        Handled::Uncaught => return failed(error.kind(), error.to_string()),
                    }
                }
            }
        }
    }
}

fn advance(frame: &mut Frame) {
    frame.next += 1;
    frame.attempt = 0;
}

fn failed(kind: &str, message: String) -> Outcome {
    Outcome::Finished(RunOutcome::Failed {
        kind: kind.to_string(),
        message,
    })
}

/// The block at `path` below `body`.
fn resolve<'a>(body: &'a Block, path: &[Step]) -> Option<&'a Block> {
    let mut block = body;
    for step in path {
        let stmt = block.stmts.get(step.statement())?;
        block = match (step, &stmt.kind) {
            (Step::Then(_, branch), StmtKind::If { branches, .. }) => {
                &branches.get(*branch as usize)?.1
            }
            (Step::Else(_), StmtKind::If { otherwise, .. }) => otherwise.as_ref()?,
            (Step::Else(_), StmtKind::Wait(wait)) => &wait.otherwise,
            (Step::Arm(_, arm), StmtKind::Branch { arms, .. }) => &arms.get(*arm as usize)?.body,
            (Step::Catch(_, catch), _) => &stmt.catches.get(*catch as usize)?.body,
            _ => return None,
        };
    }
    Some(block)
}

enum Handled {
    Retry(DateTime<Utc>),
    Caught,
    Uncaught,
}

/// Retries the failed statement, or hands the error to the nearest catch
/// that takes it, innermost statement first.
fn handle_error(
    inner: &Inner,
    program: &Program,
    handler: &crate::syntax::ast::Handler,
    run: &mut Run,
    stmt: &Stmt,
    error: ActionError,
) -> Option<Handled> {
    let now = inner.clock.now();
    // The declarations say which kinds the default retry covers, so a host's
    // own `@retryable` kinds are retried like the standard ones.
    let retryable = program
        .schemas()
        .errors
        .get(error.kind())
        .map_or(error.is_retryable(), |kind| kind.retryable);
    // Retrying what cannot change (a missing template, a closed window)
    // would only delay the catch; a send that timed out may have been
    // delivered, and sending it again could reach the customer twice.
    let never_retry = error.is_permanent()
        || (matches!(error, ActionError::Timeout { .. }) && sends_message(stmt));
    let policy = match &stmt.retry {
        _ if never_retry => None,
        Some(retry) => Some((
            retry.times,
            retry.every_ms,
            retry.backoff.map_or(1.0, |(f, _)| f),
        )),
        None if retryable => Some(DEFAULT_RETRY),
        None => None,
    };
    let frame = run.frames.last_mut()?;
    if let Some((times, every_ms, backoff)) = policy {
        if i64::from(frame.attempt) < times {
            frame.attempt += 1;
            let factor = backoff.powi(frame.attempt as i32 - 1);
            let wait_ms = ((every_ms as f64) * factor).min(u64::MAX as f64 / 2.0) as u64;
            let wait_ms = wait_ms.max(error.retry_after_ms().unwrap_or(0));
            let at = now + Duration::milliseconds(wait_ms.min(i64::MAX as u64) as i64);
            inner.observe(&RunEvent::Retry {
                run: &run.id,
                attempt: frame.attempt + 1,
                at,
            });
            return Some(Handled::Retry(at));
        }
    }
    frame.attempt = 0;

    let mut level = run.frames.len() - 1;
    let mut stmt_index = run.frames[level].next;
    let mut skip_catches = false;
    loop {
        let block = resolve(&handler.body, &run.frames[level].path)?;
        let owner = block.stmts.get(stmt_index)?;
        if !skip_catches {
            let found = owner.catches.iter().enumerate().find(|(_, c)| {
                c.kinds.is_empty() || c.kinds.iter().any(|k| k.name == error.kind())
            });
            if let Some((catch_index, catch)) = found {
                run.frames.truncate(level + 1);
                let frame = &mut run.frames[level];
                frame.next = stmt_index + 1;
                frame.attempt = 0;
                let mut path = frame.path.clone();
                path.push(Step::Catch(stmt_index as u32, catch_index as u32));
                let value = Value::record([
                    ("kind", Value::String(error.kind().to_string())),
                    ("message", Value::String(error.to_string())),
                ]);
                run.frames.push(Frame {
                    path,
                    next: 0,
                    vars: vec![(catch.binding.name.clone(), value)],
                    attempt: 0,
                });
                inner.observe(&RunEvent::Caught {
                    run: &run.id,
                    kind: error.kind(),
                });
                return Some(Handled::Caught);
            }
        }
        if level == 0 {
            return Some(Handled::Uncaught);
        }
        let step = *run.frames[level].path.last()?;
        // An error in a catch block is not caught by the same statement's
        // catches: they guard the statement, not their own handlers.
        skip_catches = matches!(step, Step::Catch(..));
        stmt_index = step.statement();
        level -= 1;
    }
}

/// Whether the statement's own action is a WhatsApp send.
fn sends_message(stmt: &Stmt) -> bool {
    let call = match &stmt.kind {
        StmtKind::Call(call) => Some(call),
        StmtKind::Let { value, .. } => match &value.kind {
            ExprKind::Call(call) => Some(call),
            _ => None,
        },
        _ => None,
    };
    call.is_some_and(|c| c.name.name.starts_with("whatsapp.send_"))
}

/// What a statement sees: the engine, the program, and the run's variables.
struct Ctx<'a> {
    inner: &'a Inner,
    program: &'a Program,
    run_id: &'a str,
    flow: &'a str,
    frames: &'a [Frame],
    /// Sends made so far by the statement, for their keys.
    sends: std::sync::atomic::AtomicU32,
}

impl<'a> Ctx<'a> {
    fn lookup(&self, name: &str) -> Option<&'a Value> {
        self.frames
            .iter()
            .rev()
            .flat_map(|f| f.vars.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    async fn statement(&self, stmt: &Stmt, index: usize) -> Next {
        let i = index as u32;
        let result: Result<Next, ActionError> = async {
            Ok(match &stmt.kind {
                StmtKind::Let { name, value } => {
                    Next::Bind(name.name.clone(), self.eval(value).await?)
                }
                StmtKind::If {
                    branches,
                    otherwise,
                } => {
                    let mut chosen = None;
                    for (b, (cond, _)) in branches.iter().enumerate() {
                        if self.eval(cond).await? == Value::Bool(true) {
                            chosen = Some(Next::Enter(Step::Then(i, b as u32)));
                            break;
                        }
                    }
                    match chosen {
                        Some(next) => next,
                        None if otherwise.is_some() => Next::Enter(Step::Else(i)),
                        None => Next::Continue,
                    }
                }
                StmtKind::Branch { scrutinee, arms } => {
                    let value = self.eval(scrutinee).await?;
                    let mut chosen = None;
                    'arms: for (a, arm) in arms.iter().enumerate() {
                        for pattern in &arm.patterns {
                            if self.matches(pattern, &value).await? {
                                chosen = Some(a);
                                break 'arms;
                            }
                        }
                    }
                    match chosen {
                        Some(a) => Next::Enter(Step::Arm(i, a as u32)),
                        None => Next::Continue,
                    }
                }
                StmtKind::Delay(duration) => match self.eval(duration).await? {
                    Value::Duration(0) => Next::Continue,
                    Value::Duration(ms) => Next::Wait(add_ms(self.inner.clock.now(), ms)?),
                    other => {
                        return Err(eval_error(format!("`delay` needs a duration, got {other}")))
                    }
                },
                StmtKind::DelayUntil(at) => match self.eval(at).await? {
                    Value::DateTime(t) if t.with_timezone(&Utc) > self.inner.clock.now() => {
                        Next::Wait(t.with_timezone(&Utc))
                    }
                    Value::DateTime(_) => Next::Continue,
                    other => {
                        return Err(eval_error(format!(
                            "`delay until` needs a date and time, got {other}"
                        )))
                    }
                },
                StmtKind::Wait(wait) => self.wait_for(wait).await?,
                StmtKind::Stop => Next::Stop,
                StmtKind::Fail(message) => Next::Fail(self.eval(message).await?.to_string()),
                StmtKind::Call(call) => {
                    // The statement drops the result: unless an observer
                    // sees it, it is not built.
                    self.call(call, self.inner.observed).await?;
                    Next::Continue
                }
            })
        }
        .await;
        result.unwrap_or_else(Next::Error)
    }

    /// Reaching `wait for`: the key and the time it waits until.
    async fn wait_for(&self, wait: &Wait) -> Result<Next, ActionError> {
        let key = match self.eval(&wait.key).await? {
            Value::None => return Err(eval_error("the key of `wait for` is none".to_string())),
            key => correlation_key(&key),
        };
        let ms = match self.eval(&wait.within).await? {
            Value::Duration(ms) if (1..=MAX_WAIT_MS).contains(&ms) => ms,
            Value::Duration(ms) => {
                return Err(eval_error(format!(
                    "`wait for` waits from 1ms to 30 days, not {}",
                    crate::duration::format(ms)
                )))
            }
            other => {
                return Err(eval_error(format!(
                    "`within` needs a duration, got {other}"
                )))
            }
        };
        Ok(Next::WaitFor {
            until: add_ms(self.inner.clock.now(), ms)?,
            trigger: wait.trigger.name.clone(),
            key,
        })
    }

    async fn matches(&self, pattern: &Pattern, value: &Value) -> Result<bool, ActionError> {
        Ok(match &pattern.kind {
            PatternKind::Wildcard => true,
            PatternKind::Literal(literal) => equal(&self.eval(literal).await?, value),
            PatternKind::Contains(text) => {
                value.as_str().is_some_and(|s| s.contains(text.as_str()))
            }
            PatternKind::Regex(regex) => {
                let compiled = crate::pattern::compile(regex)
                    .map_err(|e| eval_error(format!("invalid pattern: {e}")))?;
                value.as_str().is_some_and(|s| compiled.is_match(s))
            }
        })
    }

    /// Evaluates an expression: without a future when it calls no action
    /// (most expressions), else step by step with the actions awaited.
    async fn eval(&self, expr: &Expr) -> Result<Value, ActionError> {
        match self.eval_pure(expr) {
            Some(result) => result,
            None => self.eval_boxed(expr).await,
        }
    }

    /// A variable or a field path (`msg.customer.phone`), borrowed from the
    /// run's variables: reading a field must not copy the whole record.
    /// `None` when the expression is not such a path.
    fn path(&self, expr: &Expr) -> Option<Result<&'a Value, ActionError>> {
        match &expr.kind {
            ExprKind::Var(name) => Some(
                self.lookup(&name.name)
                    .ok_or_else(|| eval_error(format!("`{}` has no value", name.name))),
            ),
            ExprKind::Field(base, field) => Some(self.path(base)?.map(|base| match base {
                Value::None => &NONE,
                value => value.field(&field.name).unwrap_or(&NONE),
            })),
            _ => None,
        }
    }

    /// Evaluates an expression that calls no action, synchronously; `None`
    /// as soon as it meets a call (nothing before it has effects, so the
    /// caller evaluates the whole expression again with [`Ctx::eval_boxed`]).
    /// Evaluation order and errors are those of `eval_boxed`.
    fn eval_pure(&self, expr: &Expr) -> Option<Result<Value, ActionError>> {
        macro_rules! pure {
            ($e:expr) => {
                match self.eval_pure($e)? {
                    Ok(value) => value,
                    Err(error) => return Some(Err(error)),
                }
            };
        }
        Some(Ok(match &expr.kind {
            ExprKind::Str(parts) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        StrPart::Text(t) => text.push_str(t),
                        StrPart::Expr(e) => match self.path(e) {
                            Some(Ok(value)) => push_display(&mut text, value),
                            Some(Err(error)) => return Some(Err(error)),
                            None => push_display(&mut text, &pure!(e)),
                        },
                    }
                }
                Value::String(text)
            }
            ExprKind::Int(n) => Value::Int(*n),
            ExprKind::Float(x) => Value::Float(*x),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::None => Value::None,
            ExprKind::Invalid => {
                return Some(Err(eval_error("an invalid expression was run".to_string())))
            }
            ExprKind::Duration(ms) => Value::Duration(*ms),
            ExprKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(pure!(item));
                }
                Value::List(out)
            }
            ExprKind::Record(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for (key, value) in fields {
                    out.push((key.name.as_str(), pure!(value)));
                }
                Value::Record(out.into_iter().collect())
            }
            ExprKind::Var(_) => return Some(self.path(expr)?.cloned()),
            ExprKind::Field(base, field) => match self.path(expr) {
                Some(result) => return Some(result.cloned()),
                None => match pure!(base) {
                    Value::None => Value::None,
                    value => value.field(&field.name).cloned().unwrap_or(Value::None),
                },
            },
            ExprKind::Call(_) => return None,
            ExprKind::Unary(op, operand) => match unary(*op, pure!(operand)) {
                Ok(value) => value,
                Err(error) => return Some(Err(error)),
            },
            ExprKind::Binary(op, left, right) => {
                if matches!(op, BinaryOp::Contains) {
                    if let Some(found) = self.text_contains(left, right) {
                        return Some(found);
                    }
                }
                let l = pure!(left);
                match (op, &l) {
                    (BinaryOp::And, Value::Bool(false)) => Value::Bool(false),
                    (BinaryOp::Or, Value::Bool(true)) => Value::Bool(true),
                    (BinaryOp::Default, value) if !value.is_none() => l,
                    _ => match binary(*op, l, pure!(right)) {
                        Ok(value) => value,
                        Err(error) => return Some(Err(error)),
                    },
                }
            }
        }))
    }

    /// `text contains "literal"` or `text contains other_text`, both sides
    /// read in place: the text is not copied to be searched. `None` when the
    /// sides are not such paths and literals; the general evaluation then
    /// gives the answer (the same one, with the same errors).
    fn text_contains(&self, left: &Expr, right: &Expr) -> Option<Result<Value, ActionError>> {
        let haystack = match self.path(left)? {
            Ok(Value::String(s)) => s,
            Ok(_) => return None,
            Err(error) => return Some(Err(error)),
        };
        let needle: &str = match &right.kind {
            ExprKind::Str(parts) => match parts.as_slice() {
                [] => "",
                [StrPart::Text(text)] => text,
                _ => return None,
            },
            _ => match self.path(right)? {
                Ok(Value::String(s)) => s,
                Ok(_) => return None,
                Err(error) => return Some(Err(error)),
            },
        };
        Some(Ok(Value::Bool(haystack.contains(needle))))
    }

    fn eval_boxed<'e>(&'e self, expr: &'e Expr) -> BoxFuture<'e, Result<Value, ActionError>> {
        Box::pin(async move {
            Ok(match &expr.kind {
                ExprKind::Str(parts) => {
                    let mut text = String::new();
                    for part in parts {
                        match part {
                            StrPart::Text(t) => text.push_str(t),
                            StrPart::Expr(e) => push_display(&mut text, &self.eval(e).await?),
                        }
                    }
                    Value::String(text)
                }
                ExprKind::Int(n) => Value::Int(*n),
                ExprKind::Float(x) => Value::Float(*x),
                ExprKind::Bool(b) => Value::Bool(*b),
                ExprKind::None => Value::None,
                ExprKind::Invalid => {
                    return Err(eval_error("an invalid expression was run".to_string()))
                }
                ExprKind::Duration(ms) => Value::Duration(*ms),
                ExprKind::List(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.eval(item).await?);
                    }
                    Value::List(out)
                }
                ExprKind::Record(fields) => {
                    let mut out = Vec::with_capacity(fields.len());
                    for (key, value) in fields {
                        out.push((key.name.as_str(), self.eval(value).await?));
                    }
                    Value::Record(out.into_iter().collect())
                }
                ExprKind::Var(_) | ExprKind::Field(..) if self.path(expr).is_some() => {
                    self.path(expr).map_or(Ok(Value::None), |r| r.cloned())?
                }
                ExprKind::Var(name) => {
                    return Err(eval_error(format!("`{}` has no value", name.name)))
                }
                ExprKind::Field(base, field) => match self.eval(base).await? {
                    Value::None => Value::None,
                    value => value.field(&field.name).cloned().unwrap_or(Value::None),
                },
                ExprKind::Call(call) => self.call(call, true).await?,
                ExprKind::Unary(op, operand) => unary(*op, self.eval(operand).await?)?,
                ExprKind::Binary(op, left, right) => {
                    let l = self.eval(left).await?;
                    match (op, &l) {
                        (BinaryOp::And, Value::Bool(false)) => Value::Bool(false),
                        (BinaryOp::Or, Value::Bool(true)) => Value::Bool(true),
                        (BinaryOp::Default, value) if !value.is_none() => l,
                        _ => binary(*op, l, self.eval(right).await?)?,
                    }
                }
            })
        })
    }

    // ------------------------------------------------------------------
    // Actions
    // ------------------------------------------------------------------

    /// Calls an action. Without `wanted`, an action may return `none`
    /// instead of its result (the caller drops it, and no observer sees it).
    async fn call(&self, call: &Call, wanted: bool) -> Result<Value, ActionError> {
        let schema = self
            .program
            .schemas()
            .actions
            .get(&call.name.name)
            .ok_or_else(|| eval_error(format!("unknown action `{}`", call.name.name)))?;
        let mut args = self.bind_args(schema, call).await?;
        let now = self.inner.clock.now();
        if self.inner.observed {
            // The observer sees the arguments with names of its own; without
            // one, they stay borrowed from the schema.
            let named: Vec<(String, Value)> = args
                .0
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect();
            self.inner.observe(&RunEvent::Action {
                run: self.run_id,
                action: &schema.name,
                args: &named,
                at: now,
            });
            args = Args(
                named
                    .into_iter()
                    .zip(&schema.params)
                    .map(|((_, value), param)| (param.name.as_str(), value))
                    .collect(),
            );
        }
        // Values the run computed get the limits the checker gave literals:
        // a message WhatsApp would refuse is never sent.
        let result = match super::limits::violations(schema, |name| args.get(name))
            .into_iter()
            .next()
        {
            Some(violation) => Err(violation.into_error()),
            None => self.perform(&schema.name, args, wanted).await,
        };
        let at = self.inner.clock.now();
        match &result {
            Ok(value) => self.inner.observe(&RunEvent::ActionDone {
                run: self.run_id,
                action: &schema.name,
                result: value,
                at,
            }),
            Err(error) => self.inner.observe(&RunEvent::ActionFailed {
                run: self.run_id,
                action: &schema.name,
                error,
                at,
            }),
        }
        result
    }

    /// Evaluates arguments left to right and binds them to parameters, with
    /// defaults for those left out.
    async fn bind_args<'s>(
        &self,
        schema: &'s ActionSchema,
        call: &Call,
    ) -> Result<Args<'s>, ActionError> {
        // A handful of arguments: a list searched by name is cheaper than a
        // hash map. A name given twice keeps the last value, as before.
        let mut given: Vec<(&str, Value)> = Vec::with_capacity(call.args.len());
        let mut positional = 0;
        for arg in &call.args {
            let value = self.eval(&arg.value).await?;
            let name = match &arg.name {
                Some(name) => name.name.as_str(),
                None => {
                    positional += 1;
                    match schema.params.get(positional - 1) {
                        Some(p) => p.name.as_str(),
                        None => continue,
                    }
                }
            };
            match given.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => given.push((name, value)),
            }
        }
        let mut out = Vec::with_capacity(schema.params.len());
        for param in &schema.params {
            let found = given.iter().position(|(n, _)| *n == param.name.as_str());
            let value = match found.map(|i| given.swap_remove(i).1) {
                Some(v) => v,
                None => match &param.default {
                    Some(default) => self.eval(default).await?,
                    None => Value::None,
                },
            };
            out.push((param.name.as_str(), value));
        }
        Ok(Args(out))
    }

    /// Runs an action. The names matched here are `BUILTIN_ACTIONS`.
    async fn perform(
        &self,
        action: &str,
        args: Args<'_>,
        wanted: bool,
    ) -> Result<Value, ActionError> {
        match action {
            "whatsapp.send_template" => self.send_template(args, wanted).await,
            "whatsapp.send_text" => self.send_text(args, wanted).await,
            "whatsapp.send_buttons" => self.send_choices(args, false, wanted).await,
            "whatsapp.send_list" => self.send_choices(args, true, wanted).await,
            "whatsapp.upload_media" => self.upload_media(args).await,
            "whatsapp.download_media" => self.download_media(args).await,
            "whatsapp.mark_read" => self.mark_read(args).await,
            "whatsapp.hand_over" => self.hand_over(args).await,
            "whatsapp.resume_automation" => self.resume_automation(args).await,
            media if media.starts_with("whatsapp.send_") => {
                match MEDIA_KINDS
                    .into_iter()
                    .find(|kind| kind.send_action() == media)
                {
                    Some(kind) => self.send_media(args, kind, wanted).await,
                    None => Err(ActionError::InvalidRequest {
                        message: format!(
                            "no implementation is registered for the action `{media}`"
                        ),
                    }),
                }
            }
            "ai.generate_response" => self.generate_response(&args).await,
            "log" => {
                let level = text(&args, "level").unwrap_or("info");
                self.inner
                    .write_log(self.flow, level, text(&args, "message").unwrap_or(""));
                Ok(Value::None)
            }
            "notify" => {
                let notify = self.inner.notify.clone();
                let channel = text(&args, "channel").unwrap_or("").to_string();
                let message = text(&args, "message").unwrap_or("").to_string();
                self.guarded(
                    "notify",
                    async move { notify.notify(&channel, &message).await },
                )
                .await?;
                Ok(Value::None)
            }
            "format" => format_date(&args),
            "now" => Ok(Value::DateTime(self.inner.clock.now().fixed_offset())),
            other => match self.inner.actions.get(other) {
                Some(handler) => {
                    // Called inside the guarded task: a handler that panics
                    // before it returns its future fails the action too.
                    let handler = handler.clone();
                    let args: HashMap<String, Value> = args
                        .0
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), value))
                        .collect();
                    self.guarded(other, async move { handler.call(args).await })
                        .await
                }
                None => Err(ActionError::InvalidRequest {
                    message: format!("no implementation is registered for the action `{other}`"),
                }),
            },
        }
    }

    /// Runs a provider call in its own task with a time limit, so a provider
    /// that hangs or panics fails the action, not the engine.
    async fn guarded<T: Send>(
        &self,
        what: &str,
        future: impl Future<Output = Result<T, ActionError>> + Send,
    ) -> Result<T, ActionError> {
        let limit = self.inner.limits.provider_timeout;
        // Polled in place, each poll under `catch_unwind`: a panic fails the
        // call like a crashed task would, without the cost of spawning one
        // task per provider call (most of a send's time before).
        let mut future = std::pin::pin!(future);
        let caught = std::future::poll_fn(move |cx| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                future.as_mut().poll(cx)
            })) {
                Ok(poll) => poll.map(Ok),
                Err(_) => std::task::Poll::Ready(Err(())),
            }
        });
        let mut caught = std::pin::pin!(caught);
        // Many providers answer at once (a cached status, an in-memory
        // fake): the first poll needs no timer. One that has to wait gets
        // the whole limit from then on.
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match caught.as_mut().poll(cx) {
                std::task::Poll::Ready(outcome) => Some(outcome),
                std::task::Poll::Pending => None,
            })
        })
        .await;
        let outcome = match first {
            Some(outcome) => Ok(outcome),
            None => tokio::time::timeout(limit, caught).await,
        };
        match outcome {
            Ok(Ok(result)) => result,
            Err(_) => Err(ActionError::Timeout {
                after_ms: limit.as_millis().min(u128::from(u64::MAX)) as u64,
            }),
            Ok(Err(())) => Err(ActionError::Transient {
                message: format!("the {what} provider crashed"),
            }),
        }
    }

    /// The `sender` argument, taken out of the arguments (its text moves
    /// into the message).
    fn sender(&self, args: &mut Args<'_>) -> Result<SenderRef, ActionError> {
        let name = args.take_text("sender");
        let config = self.program.config();
        match config.senders.get(&name) {
            Some(sender) => Ok(SenderRef {
                phone_number_id: sender.phone_number_id.clone(),
                name,
            }),
            None => Err(ActionError::SenderOffline {
                sender: name,
                reason: "the sender is not configured in flow.toml".to_string(),
            }),
        }
    }

    async fn ensure_online(&self, sender: &SenderRef) -> Result<(), ActionError> {
        // Polled in place (see `guarded`): the call borrows the sender.
        let whatsapp = &self.inner.whatsapp;
        let status = self
            .guarded("WhatsApp", whatsapp.sender_status(sender))
            .await?;
        if status.online {
            Ok(())
        } else {
            Err(ActionError::SenderOffline {
                sender: sender.name.clone(),
                reason: status.detail,
            })
        }
    }

    /// Free-form messages (text, buttons, lists, media) only go to a
    /// customer who wrote to the sender within the last 24 hours.
    async fn ensure_window(&self, sender: &SenderRef, to: &str) -> Result<(), ActionError> {
        let last = self
            .inner
            .store
            .last_inbound(to, &sender.name)
            .await
            .map_err(|e| ActionError::Transient {
                message: e.to_string(),
            })?;
        let open = last.is_some_and(|at| self.inner.clock.now() - at < WINDOW);
        if open {
            Ok(())
        } else {
            Err(ActionError::OutsideWindow {
                recipient: to.to_string(),
            })
        }
    }

    /// Marketing goes to no customer who opted out.
    async fn ensure_not_opted_out(&self, to: &str, template: &str) -> Result<(), ActionError> {
        let opted_out = match self.inner.store.opted_out(to).await {
            Ok(opted_out) => opted_out,
            // A store that keeps no opt-outs has nobody opted out.
            Err(crate::providers::StoreError::Unsupported(_)) => false,
            Err(e) => return Err(store_unavailable(e)),
        };
        if opted_out {
            Err(ActionError::OptedOut {
                recipient: to.to_string(),
                template: template.to_string(),
            })
        } else {
            Ok(())
        }
    }

    /// Waits for the send's slot under the sender and recipient limits:
    /// the account's, from a store shared by several nodes, or this
    /// process's.
    async fn pace(&self, sender: &str, recipient: &str) -> Result<(), ActionError> {
        let now = self.inner.clock.now();
        let shared = if self.inner.store_paces {
            let request = crate::providers::SlotRequest {
                sender,
                recipient,
                now,
                sender_spacing: self.inner.pacer.sender_spacing(),
                recipient_interval: self.inner.pacer.limits().recipient_interval,
            };
            self.inner
                .store
                .reserve_send_slot(request)
                .await
                .map_err(store_unavailable)?
        } else {
            None
        };
        let slot = match shared {
            Some(slot) => slot,
            None => self.inner.pacer.reserve(sender, recipient, now),
        };
        // A slot that is due already needs no timer.
        if slot > now {
            self.inner.clock.sleep_until(slot).await;
        }
        Ok(())
    }

    async fn send_template(&self, mut args: Args<'_>, wanted: bool) -> Result<Value, ActionError> {
        let sender = self.sender(&mut args)?;
        let to = recipient(&mut args)?;
        let name = args.take_text("template");
        let Some(template) = self.program.config().templates.get(&name) else {
            return Err(ActionError::TemplateNotFound {
                template: name,
                reason: "it is not in the template catalog (flow.toml)".to_string(),
            });
        };
        // The variables' texts move into the message.
        let variables = args.take("variables").unwrap_or(Value::None);
        let parameters = template_parameters(&name, template, variables)?;
        let (header, buttons) = rich::template_extras(
            &name,
            template,
            args.get("header"),
            args.get("header_filename"),
            args.get("buttons"),
        )?;
        if template.category == TemplateCategory::Marketing {
            self.ensure_not_opted_out(&to, &name).await?;
        }
        self.ensure_online(&sender).await?;
        let message = TemplateMessage {
            sender,
            to,
            recipient_name: text(&args, "name").map(String::from),
            template: name,
            language: template.language.clone(),
            body: Some(template.body.clone()),
            parameters,
            header,
            buttons,
        };
        // Polled in place (see `guarded`): the send borrows the message.
        let whatsapp = &self.inner.whatsapp;
        self.deliver(
            &message.sender,
            &message.to,
            Some(&message.template),
            whatsapp.send_template(&message),
            wanted,
        )
        .await
    }

    async fn send_text(&self, mut args: Args<'_>, wanted: bool) -> Result<Value, ActionError> {
        let sender = self.sender(&mut args)?;
        let to = recipient(&mut args)?;
        // Its length was checked against the declared `Text(max: 4096)`.
        let body = args.take_text("message");
        self.ensure_window(&sender, &to).await?;
        self.ensure_online(&sender).await?;
        let message = TextMessage { sender, to, body };
        let whatsapp = &self.inner.whatsapp;
        self.deliver(
            &message.sender,
            &message.to,
            None,
            whatsapp.send_text(&message),
            wanted,
        )
        .await
    }

    /// The store's key for the send about to be made: the run, its position
    /// (blocks, statement, retry attempt) and the send's place in the
    /// statement. A run resumed from an earlier state reaches the same send
    /// with the same key.
    fn send_key(&self) -> String {
        let n = self
            .sends
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Built in one string (`{run}/t{i}.{b}/…/s{next}.{attempt}.{n}`),
        // without a `format!` per part.
        let mut key = String::with_capacity(self.run_id.len() + 24);
        key.push_str(self.run_id);
        key.push('/');
        if let Some(frame) = self.frames.last() {
            for step in &frame.path {
                let (tag, i, b) = match *step {
                    Step::Then(i, b) => ('t', i, Some(b)),
                    Step::Else(i) => ('e', i, None),
                    Step::Arm(i, a) => ('a', i, Some(a)),
                    Step::Catch(i, c) => ('c', i, Some(c)),
                };
                key.push(tag);
                push_number(&mut key, u64::from(i));
                if let Some(b) = b {
                    key.push('.');
                    push_number(&mut key, u64::from(b));
                }
                key.push('/');
            }
            key.push('s');
            push_number(&mut key, frame.next as u64);
            key.push('.');
            push_number(&mut key, u64::from(frame.attempt));
            key.push('.');
            push_number(&mut key, u64::from(n));
        }
        key
    }

    /// Sends at most once. The store records the intent before the call and
    /// the message id after it, so a run resumed after a crash either finds
    /// the message sent (and does not send it again) or finds the outcome
    /// unknown: the call was made but its answer was lost. Then the engine
    /// does not resend, because the Cloud API has no idempotency key and the
    /// customer may already have the message: the action fails with
    /// `DeliveryUnknown`, for a catch or a person to resolve.
    async fn deliver(
        &self,
        sender: &SenderRef,
        to: &str,
        template: Option<&str>,
        send: impl Future<Output = Result<crate::providers::SentMessage, ActionError>> + Send,
        wanted: bool,
    ) -> Result<Value, ActionError> {
        let store = &self.inner.store;
        let key = self.send_key();
        match store.send_state(&key).await.map_err(store_unavailable)? {
            Some(SendState::Sent { message_id, at }) => {
                return Ok(sent_value(message_id, to, &sender.name, at))
            }
            Some(SendState::Started) => {
                return Err(ActionError::DeliveryUnknown {
                    recipient: to.to_string(),
                })
            }
            None => {}
        }
        self.pace(&sender.name, to).await?;
        // The claim is atomic: another copy of this run (one resumed after
        // its lease ran out) that reached the same send meanwhile wins, and
        // this one does not send.
        match store.claim_send(&key).await.map_err(store_unavailable)? {
            None => {}
            Some(SendState::Sent { message_id, at }) => {
                return Ok(sent_value(message_id, to, &sender.name, at))
            }
            Some(SendState::Started) => {
                return Err(ActionError::DeliveryUnknown {
                    recipient: to.to_string(),
                })
            }
        }
        let sent = match self.guarded("WhatsApp", send).await {
            Ok(sent) => sent,
            // A timeout may have reached WhatsApp: the intent stays, unknown.
            Err(error @ ActionError::Timeout { .. }) => return Err(error),
            Err(error) => {
                store
                    .set_send_state(&key, None)
                    .await
                    .map_err(store_unavailable)?;
                return Err(error);
            }
        };
        let at = self.inner.clock.now();
        store
            .set_send_state(
                &key,
                Some(SendState::Sent {
                    message_id: sent.message_id.clone(),
                    at,
                }),
            )
            .await
            .map_err(store_unavailable)?;
        // The id moves into the log unless the result needs it too.
        let (logged_id, result_id) = if wanted {
            (sent.message_id.clone(), Some(sent.message_id))
        } else {
            (sent.message_id, None)
        };
        store
            .log_send(SentRecord {
                run_id: self.run_id.to_string(),
                sender: sender.name.clone(),
                to: to.to_string(),
                template: template.map(String::from),
                message_id: logged_id,
                at,
            })
            .await
            .map_err(store_unavailable)?;
        Ok(match result_id {
            Some(message_id) => sent_value(message_id, to, &sender.name, at),
            None => Value::None,
        })
    }

    async fn generate_response(&self, args: &Args<'_>) -> Result<Value, ActionError> {
        let assistant = text(args, "assistant").unwrap_or("").to_string();
        let config = self.program.config();
        let settings = config.assistants.get(&assistant);
        if settings.is_none() && !config.assistants.is_empty() {
            return Err(ActionError::Ai {
                message: format!("the assistant `{assistant}` is not configured in flow.toml"),
            });
        }
        let variables = match args.get("variables") {
            Some(Value::Record(fields)) => fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Some(Value::List(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1).to_string(), v.to_string()))
                .collect(),
            _ => BTreeMap::new(),
        };
        let request = AiRequest {
            assistant,
            model: settings.and_then(|s| s.model.clone()),
            instructions: settings.and_then(|s| s.instructions.clone()),
            customer: text(args, "customer").unwrap_or("").to_string(),
            message: text(args, "message").unwrap_or("").to_string(),
            variables,
        };
        let ai = self.inner.ai.clone();
        let answer = self
            .guarded("AI", async move { ai.generate_response(&request).await })
            .await?;
        Ok(Value::record([
            ("text", Value::String(answer.text)),
            ("conversation_id", Value::String(answer.conversation_id)),
        ]))
    }
}

/// An action's arguments by parameter name, in declaration order.
/// The names are the schema's, borrowed.
struct Args<'s>(Vec<(&'s str, Value)>);

impl Args<'_> {
    /// The argument for a parameter.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Takes the argument for a parameter out, leaving `none`.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.0
            .iter_mut()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| std::mem::replace(v, Value::None))
    }

    /// Takes a text argument out (moved, not copied); empty when it is
    /// missing or not text, as `text(args, name).unwrap_or("")` reads it.
    fn take_text(&mut self, name: &str) -> String {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, value @ Value::String(_))) => match std::mem::replace(value, Value::None) {
                Value::String(text) => text,
                _ => String::new(),
            },
            _ => String::new(),
        }
    }
}

/// Appends a number in decimal, without the formatting machinery (`itoa`:
/// two digits at a time, copied in one piece).
pub(crate) fn push_number(text: &mut String, n: u64) {
    text.push_str(itoa::Buffer::new().format(n));
}

/// `none`, for paths that lead nowhere.
static NONE: Value = Value::None;

/// Appends a value as it reads inside an interpolated string.
fn push_display(text: &mut String, value: &Value) {
    match value {
        Value::String(s) => text.push_str(s),
        other => {
            use std::fmt::Write;
            let _ = write!(text, "{other}");
        }
    }
}

/// The `Sent` record a send returns.
fn sent_value(message_id: String, to: &str, sender: &str, at: DateTime<Utc>) -> Value {
    Value::record([
        ("message_id", Value::String(message_id)),
        ("to", Value::String(to.to_string())),
        ("sender", Value::String(sender.to_string())),
        ("sent_at", Value::DateTime(at.fixed_offset())),
    ])
}

fn text<'v>(args: &'v Args<'_>, name: &str) -> Option<&'v str> {
    args.get(name).and_then(Value::as_str)
}

/// The `to` argument, in strict E.164, taken out of the arguments.
fn recipient(args: &mut Args<'_>) -> Result<String, ActionError> {
    let to = args.take_text("to");
    match super::phones::check(&to) {
        Ok(()) => Ok(to),
        Err(problems) => Err(ActionError::InvalidPhone {
            reason: describe(&problems),
            phone: to,
        }),
    }
}

/// The template's parameters from the flow's variables, checked against its
/// placeholders.
fn template_parameters(
    name: &str,
    template: &TemplateConfig,
    variables: Value,
) -> Result<TemplateParameters, ActionError> {
    let mismatch = |reason: String| ActionError::TemplateParams {
        template: name.to_string(),
        reason,
    };
    let filled = |i: String, value: &Value| -> Result<String, ActionError> {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.trim().is_empty() {
            Err(mismatch(format!(
                "variable {i} is empty; WhatsApp rejects empty parameters"
            )))
        } else {
            Ok(text)
        }
    };
    // Positional: a text moves, and the number is only written for an error.
    let owned = |i: usize, value: Value| -> Result<String, ActionError> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Ok(s),
            other => filled(i.to_string(), &other),
        }
    };
    match (&template.placeholders, variables) {
        (Placeholders::Positional(0), Value::None) => {
            Ok(TemplateParameters::Positional(Vec::new()))
        }
        (Placeholders::Positional(n), Value::List(values)) if values.len() == *n => values
            .into_iter()
            .enumerate()
            .map(|(i, v)| owned(i + 1, v))
            .collect::<Result<_, _>>()
            .map(TemplateParameters::Positional),
        (Placeholders::Positional(n), Value::List(values)) => Err(mismatch(format!(
            "the template has {n} placeholders, {} variables were given",
            values.len()
        ))),
        (Placeholders::Named(names), Value::Record(fields)) => names
            .iter()
            .map(|placeholder| match fields.get(placeholder) {
                Some(v) => Ok((placeholder.clone(), filled(placeholder.clone(), v)?)),
                None => Err(mismatch(format!(
                    "no value for the placeholder {{{{{placeholder}}}}}"
                ))),
            })
            .collect::<Result<_, _>>()
            .map(TemplateParameters::Named),
        (Placeholders::Named(names), Value::None) if names.is_empty() => {
            Ok(TemplateParameters::Named(Vec::new()))
        }
        (placeholders, _) => Err(mismatch(format!(
            "the template has {} placeholders, and the variables do not match their form",
            placeholders.count()
        ))),
    }
}

fn format_date(args: &Args<'_>) -> Result<Value, ActionError> {
    let Some(Value::DateTime(value)) = args.get("value") else {
        return Err(ActionError::InvalidDate {
            message: "format needs a date and time".to_string(),
        });
    };
    let pattern = text(args, "pattern").unwrap_or("");
    let items: Vec<chrono::format::Item<'_>> =
        chrono::format::StrftimeItems::new(pattern).collect();
    if items
        .iter()
        .any(|i| matches!(i, chrono::format::Item::Error))
    {
        return Err(ActionError::InvalidDate {
            message: format!("\"{pattern}\" has an unknown % directive"),
        });
    }
    let formatted = match text(args, "tz") {
        Some(zone) => {
            let tz: chrono_tz::Tz = zone.parse().map_err(|_| ActionError::InvalidDate {
                message: format!("unknown time zone \"{zone}\""),
            })?;
            value
                .with_timezone(&tz)
                .format_with_items(items.iter())
                .to_string()
        }
        None => value.format_with_items(items.iter()).to_string(),
    };
    Ok(Value::String(formatted))
}

/// The key a waiting run is registered under, and an event is delivered
/// by: the correlation field's text.
pub(crate) fn correlation_key(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn eval_error(message: String) -> ActionError {
    ActionError::Custom {
        kind: "EvalError".to_string(),
        message,
    }
}

fn add_ms(at: DateTime<Utc>, ms: u64) -> Result<DateTime<Utc>, ActionError> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| at.checked_add_signed(Duration::milliseconds(ms)))
        .ok_or_else(|| eval_error("the wait ends beyond the year 262143".to_string()))
}

fn shift(t: DateTime<FixedOffset>, ms: u64, forward: bool) -> Result<Value, ActionError> {
    let delta = i64::try_from(ms)
        .ok()
        .map(Duration::milliseconds)
        .ok_or_else(|| eval_error("duration out of range".to_string()))?;
    let shifted = if forward {
        t.checked_add_signed(delta)
    } else {
        t.checked_sub_signed(delta)
    };
    shifted
        .map(Value::DateTime)
        .ok_or_else(|| eval_error("date out of range".to_string()))
}

/// Equality across the number types; otherwise structural.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (Value::DateTime(x), Value::DateTime(y)) => x == y,
        _ => a == b,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

fn unary(op: UnaryOp, value: Value) -> Result<Value, ActionError> {
    match (op, value) {
        (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnaryOp::Neg, Value::Int(n)) => n
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| eval_error("number out of range".to_string())),
        (UnaryOp::Neg, Value::Float(x)) => Ok(Value::Float(-x)),
        (op, value) => Err(eval_error(format!("cannot apply {op:?} to {value}"))),
    }
}

fn binary(op: BinaryOp, l: Value, r: Value) -> Result<Value, ActionError> {
    use std::cmp::Ordering;
    let overflow = || eval_error("number out of range".to_string());
    let order = |l: &Value, r: &Value| -> Option<Ordering> {
        match (l, r) {
            (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
            (Value::DateTime(a), Value::DateTime(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            _ => number(l)?.partial_cmp(&number(r)?),
        }
    };
    Ok(match op {
        BinaryOp::Default => {
            if l.is_none() {
                r
            } else {
                l
            }
        }
        BinaryOp::Or | BinaryOp::And => match (l, r) {
            (Value::Bool(a), Value::Bool(b)) => {
                Value::Bool(if op == BinaryOp::Or { a || b } else { a && b })
            }
            (l, r) => {
                return Err(eval_error(format!(
                    "`{}` needs two Bools, got {l} and {r}",
                    op.symbol()
                )))
            }
        },
        BinaryOp::Eq => Value::Bool(equal(&l, &r)),
        BinaryOp::Ne => Value::Bool(!equal(&l, &r)),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let ordering =
                order(&l, &r).ok_or_else(|| eval_error(format!("cannot compare {l} and {r}")))?;
            Value::Bool(match op {
                BinaryOp::Lt => ordering == Ordering::Less,
                BinaryOp::Le => ordering != Ordering::Greater,
                BinaryOp::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            })
        }
        BinaryOp::Contains => match (&l, &r) {
            (Value::String(haystack), Value::String(needle)) => {
                Value::Bool(haystack.contains(needle.as_str()))
            }
            (Value::List(items), needle) => Value::Bool(items.iter().any(|i| equal(i, needle))),
            _ => return Err(eval_error(format!("cannot look for {r} in {l}"))),
        },
        BinaryOp::Add => match (l, r) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_add(b).ok_or_else(overflow)?),
            (Value::String(a), Value::String(b)) => Value::String(a + &b),
            (Value::DateTime(t), Value::Duration(ms))
            | (Value::Duration(ms), Value::DateTime(t)) => shift(t, ms, true)?,
            (Value::Duration(a), Value::Duration(b)) => {
                Value::Duration(a.checked_add(b).ok_or_else(overflow)?)
            }
            (Value::List(mut a), Value::List(b)) => {
                a.extend(b);
                Value::List(a)
            }
            (l, r) => match (number(&l), number(&r)) {
                (Some(a), Some(b)) => Value::Float(a + b),
                _ => return Err(eval_error(format!("cannot add {l} and {r}"))),
            },
        },
        BinaryOp::Sub => match (l, r) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_sub(b).ok_or_else(overflow)?),
            (Value::DateTime(t), Value::Duration(ms)) => shift(t, ms, false)?,
            (Value::DateTime(a), Value::DateTime(b)) => {
                let ms = (a - b).num_milliseconds();
                Value::Duration(u64::try_from(ms).map_err(|_| {
                    eval_error("the result would be a negative duration".to_string())
                })?)
            }
            (Value::Duration(a), Value::Duration(b)) => {
                Value::Duration(a.checked_sub(b).ok_or_else(|| {
                    eval_error("the result would be a negative duration".to_string())
                })?)
            }
            (l, r) => match (number(&l), number(&r)) {
                (Some(a), Some(b)) => Value::Float(a - b),
                _ => return Err(eval_error(format!("cannot subtract {r} from {l}"))),
            },
        },
        BinaryOp::Mul => match (l, r) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_mul(b).ok_or_else(overflow)?),
            (Value::Duration(ms), n) | (n, Value::Duration(ms)) if number(&n).is_some() => {
                let factor = number(&n).unwrap_or(0.0);
                if factor < 0.0 || !factor.is_finite() {
                    return Err(eval_error(
                        "a duration cannot be multiplied by a negative number".to_string(),
                    ));
                }
                Value::Duration((ms as f64 * factor).min(u64::MAX as f64) as u64)
            }
            (l, r) => match (number(&l), number(&r)) {
                (Some(a), Some(b)) => Value::Float(a * b),
                _ => return Err(eval_error(format!("cannot multiply {l} and {r}"))),
            },
        },
        BinaryOp::Div => {
            let divisor = number(&r).ok_or_else(|| eval_error(format!("cannot divide by {r}")))?;
            if divisor == 0.0 {
                return Err(eval_error("division by zero".to_string()));
            }
            match l {
                Value::Duration(ms) if divisor > 0.0 => {
                    Value::Duration((ms as f64 / divisor) as u64)
                }
                l => match number(&l) {
                    Some(a) => Value::Float(a / divisor),
                    None => return Err(eval_error(format!("cannot divide {l}"))),
                },
            }
        }
    })
}

/// A store failure during an action: temporary, so the action is retried
/// (the store may be a database that is away for a moment).
fn store_unavailable(error: crate::providers::StoreError) -> ActionError {
    ActionError::Transient {
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        let mut numbers = vec![
            0,
            9,
            10,
            11,
            99,
            100,
            101,
            999,
            1000,
            u64::MAX,
            u64::MAX - 1,
        ];
        let mut power = 1u64;
        while let Some(next) = power.checked_mul(10) {
            numbers.extend([power - 1, power, power + 1, next - 1]);
            power = next;
        }
        for n in numbers {
            let mut text = String::from("x");
            push_number(&mut text, n);
            assert_eq!(text, format!("x{n}"));
        }
    }
}
