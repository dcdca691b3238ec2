//! The syntax tree of `.flow` files.
//!
//! Every node carries the [`Span`] of the text it came from. The tree knows
//! nothing of types or schemas: the checker gives it meaning.

use crate::source::Span;

/// A name as written, with its place. Qualified names (`whatsapp.send_text`)
/// are one `Ident` whose text contains the dots.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The text.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// One parsed file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Module {
    /// Flows and declarations in source order.
    pub items: Vec<Item>,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `flow NAME on ... { }`.
    Flow(Flow),
    /// `trigger`, `action`, `type` or `error` with its attributes.
    Declaration(Declaration),
    /// `test "NAME" { given ... expect { ... } }`.
    Test(TestDef),
}

/// `test "NAME" { given ... with ... expect { ... } }`: what a flow must do
/// for one event.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDef {
    /// The test's name, as written in the string.
    pub name: String,
    /// Where the name is written.
    pub name_span: Span,
    /// The event given.
    pub given: Given,
    /// `then ... after DURATION` lines: later events and restarts, as
    /// written.
    pub then: Vec<ThenStep>,
    /// `with ...` lines: the world the flow runs in.
    pub facts: Vec<TestFact>,
    /// The expected effects, in order.
    pub expectations: Vec<Expectation>,
    /// `fails KIND`, `stops` or `completes`, if written.
    pub outcome: Option<TestOutcome>,
    /// The whole test.
    pub span: Span,
}

/// `given TRIGGER [at "DATETIME"] { field: value, ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Given {
    /// The trigger's qualified name.
    pub trigger: Ident,
    /// When the event happens: the virtual clock starts here.
    pub at: Option<Expr>,
    /// The event's fields, literals only.
    pub fields: Vec<(Ident, Expr)>,
    /// The record of fields.
    pub fields_span: Span,
    /// The whole `given`.
    pub span: Span,
}

/// A `then` line of a test: something that happens DURATION after the
/// given event (the same timeline as the expectations' `after`).
#[derive(Debug, Clone, PartialEq)]
pub struct ThenStep {
    /// What happens.
    pub kind: ThenKind,
    /// How long after the given event, in milliseconds, and where it is
    /// written.
    pub after: (u64, Span),
    /// The whole line.
    pub span: Span,
}

/// What a `then` line makes happen.
#[derive(Debug, Clone, PartialEq)]
pub enum ThenKind {
    /// `then TRIGGER after DURATION { ... }`: a later event, with its
    /// trigger, fields and spans as for `given` (without `at`).
    Event(Given),
    /// `then restart after DURATION`: the engine stops and a new one goes on
    /// with what the store kept, as after a crash or a deploy.
    Restart,
}

/// One `with ...` line of a test.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFact {
    /// What is given.
    pub kind: TestFactKind,
    /// The whole line.
    pub span: Span,
}

/// The facts a test can set up.
#[derive(Debug, Clone, PartialEq)]
pub enum TestFactKind {
    /// `with inbound from PHONE to SENDER 2h ago`: the customer's last message.
    Inbound {
        /// The customer's phone number.
        customer: Expr,
        /// The sender they wrote to.
        sender: Expr,
        /// How long before the event, in milliseconds.
        ago_ms: u64,
    },
    /// `with sender NAME offline`.
    SenderOffline(Expr),
    /// `with ai answer "TEXT"`: the AI's answer to every request.
    AiAnswer(Expr),
    /// `with conversation PHONE to SENDER handed over`: the conversation is
    /// handed over to a person when the test starts.
    HandedOver {
        /// The customer's phone number.
        customer: Expr,
        /// The sender.
        sender: Expr,
    },
    /// `with failure KIND on ACTION call N`: the N-th call fails.
    Failure {
        /// The error kind.
        kind: Ident,
        /// The action.
        action: Ident,
        /// Which call, counting from 1.
        call: i64,
        /// Where the number is written.
        call_span: Span,
    },
}

/// One expected effect: `[after DURATION] action(args)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// `after 10m`: exactly this long after the event, in milliseconds.
    pub after: Option<(u64, Span)>,
    /// The action and the arguments compared.
    pub call: Call,
    /// The whole line.
    pub span: Span,
}

/// How the run must end.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    /// Which ending.
    pub kind: TestOutcomeKind,
    /// Where it is written.
    pub span: Span,
}

/// The endings a test can expect.
#[derive(Debug, Clone, PartialEq)]
pub enum TestOutcomeKind {
    /// `nothing runs`: the event starts no run.
    NothingRuns,
    /// `completes`: ran to the end.
    Completes,
    /// `stops`: ended with `stop`.
    Stops,
    /// `fails KIND`: ended with an error of this kind nothing caught.
    Fails(Ident),
}

/// `flow NAME` followed by its handlers.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// The flow's name.
    pub name: Ident,
    /// The `on EVENT as NAME { }` blocks.
    pub handlers: Vec<Handler>,
    /// The whole flow.
    pub span: Span,
}

/// `on EVENT as BINDING { BODY }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Handler {
    /// The trigger's qualified name.
    pub trigger: Ident,
    /// The variable that holds the event.
    pub binding: Ident,
    /// `debounce DURATION`: the customer's messages are collected until they
    /// pause this long, then one run starts with the joined message.
    pub debounce: Option<Debounce>,
    /// `via "sender", ...`: the handler starts only for events to these
    /// senders; empty for every sender.
    pub via: Vec<ViaSender>,
    /// What runs.
    pub body: Block,
    /// The whole handler.
    pub span: Span,
}

impl Handler {
    /// The handler's first line without the block, in canonical form:
    /// `on TRIGGER as NAME debounce 8s via "a", "b"`. Durations and sender
    /// names are taken from `src`, the text the handler was parsed from.
    pub fn header(&self, src: &str) -> String {
        let mut out = format!("on {} as {}", self.trigger.name, self.binding.name);
        if let Some(debounce) = &self.debounce {
            let text = src.get(debounce.span.range()).unwrap_or("");
            let duration = text.strip_prefix("debounce").unwrap_or(text).trim();
            out.push_str(" debounce ");
            out.push_str(duration);
        }
        for (i, sender) in self.via.iter().enumerate() {
            out.push_str(if i == 0 { " via " } else { ", " });
            out.push_str(src.get(sender.span.range()).unwrap_or("\"\""));
        }
        out
    }
}

/// `debounce DURATION` after `on TRIGGER as NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    /// The pause that ends a burst, in milliseconds (`None` when the
    /// duration was out of range, already reported by the parser).
    pub millis: Option<u64>,
    /// The `debounce DURATION` option.
    pub span: Span,
}

/// One sender named by `via`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaSender {
    /// The sender's name, or `None` when the string interpolates (a syntax
    /// error, reported by the parser).
    pub name: Option<String>,
    /// The string literal.
    pub span: Span,
}

/// `@name(args)` before a declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The attribute's name without `@`.
    pub name: Ident,
    /// Its arguments, if written with parentheses: names, or paths such as
    /// `sections.rows.id` (one `Ident` whose text contains the dots).
    pub args: Vec<Ident>,
    /// `key: value` options after the arguments, as in
    /// `@across(sections.rows, max: 10)`.
    pub options: Vec<TypeArg>,
    /// The whole attribute.
    pub span: Span,
}

/// A declaration with its attributes and documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    /// `@...` lines before it.
    pub attributes: Vec<Attribute>,
    /// The `##` lines directly above it, without the `##`.
    pub doc: Option<String>,
    /// What is declared.
    pub kind: DeclarationKind,
    /// The whole declaration, attributes included.
    pub span: Span,
}

impl Declaration {
    /// The declared name.
    pub fn name(&self) -> &Ident {
        match &self.kind {
            DeclarationKind::Trigger { name, .. }
            | DeclarationKind::Action { name, .. }
            | DeclarationKind::Type { name, .. }
            | DeclarationKind::Error { name } => name,
        }
    }

    /// `trigger`, `action`, `type` or `error`.
    pub fn keyword(&self) -> &'static str {
        match self.kind {
            DeclarationKind::Trigger { .. } => "trigger",
            DeclarationKind::Action { .. } => "action",
            DeclarationKind::Type { .. } => "type",
            DeclarationKind::Error { .. } => "error",
        }
    }
}

/// The kinds of declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclarationKind {
    /// `trigger NAME { fields }`.
    Trigger {
        /// Qualified event name.
        name: Ident,
        /// The event's fields.
        fields: Vec<FieldDecl>,
    },
    /// `action NAME(params) -> RETURNS raises KINDS`.
    Action {
        /// Qualified action name.
        name: Ident,
        /// Parameters in order.
        params: Vec<Param>,
        /// The result type, if the action returns one.
        returns: Option<TypeExpr>,
        /// Error kinds it can raise.
        raises: Vec<Ident>,
    },
    /// `type NAME { fields }`: a record type.
    Type {
        /// The type's name.
        name: Ident,
        /// Its fields.
        fields: Vec<FieldDecl>,
    },
    /// `error NAME`: an error kind.
    Error {
        /// The kind's name.
        name: Ident,
    },
}

/// `name: Type` in a trigger, type or record type; `name: Type = default`
/// in a trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDecl {
    /// The field's name.
    pub name: Ident,
    /// Its type.
    pub ty: TypeExpr,
    /// A trigger field's default: the value an event that leaves the field
    /// out gets. Always `None` outside triggers.
    pub default: Option<Expr>,
    /// `##` lines directly above it.
    pub doc: Option<String>,
    /// The whole field.
    pub span: Span,
}

/// `name: Type = default` in an action's parameter list.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The parameter's name.
    pub name: Ident,
    /// Its type.
    pub ty: TypeExpr,
    /// Its default value, which makes it optional.
    pub default: Option<Expr>,
    /// `##` lines directly above it.
    pub doc: Option<String>,
    /// The whole parameter.
    pub span: Span,
}

/// A type as written in a declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    /// What type.
    pub kind: TypeExprKind,
    /// Written with a trailing `?`.
    pub optional: bool,
    /// The whole type.
    pub span: Span,
}

/// The shapes of written types.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeExprKind {
    /// `String`, `Text(max: 4096)`, or a declared record type.
    Named {
        /// The type's name.
        name: Ident,
        /// `(key: value, ...)` arguments.
        args: Vec<TypeArg>,
    },
    /// `[T]`, or `[T](min: 1, max: 3, unique: id)` with declared limits.
    List(Box<TypeExpr>, Vec<TypeArg>),
    /// `{ field: T, ... }`.
    Record(Vec<FieldDecl>),
}

/// `key: value` in a type's or an attribute's parentheses: `max: 20`,
/// `unique: id`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeArg {
    /// The key.
    pub name: Ident,
    /// The value.
    pub value: TypeArgValue,
    /// The whole argument.
    pub span: Span,
}

/// The value of a [`TypeArg`].
#[derive(Debug, Clone, PartialEq)]
pub enum TypeArgValue {
    /// A whole number: `max: 20`.
    Int(i64),
    /// A name: `unique: id`.
    Name(Ident),
}

impl std::fmt::Display for TypeArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            TypeArgValue::Int(n) => write!(f, "{}: {n}", self.name.name),
            TypeArgValue::Name(value) => write!(f, "{}: {}", self.name.name, value.name),
        }
    }
}

/// `{ statements }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The statements in order.
    pub stmts: Vec<Stmt>,
    /// From `{` to `}`.
    pub span: Span,
}

/// A statement with its optional `retry` and `catch` clauses.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// What the statement does.
    pub kind: StmtKind,
    /// `retry N times every D backoff F`.
    pub retry: Option<Retry>,
    /// `catch [KINDS] NAME { }` clauses, in order.
    pub catches: Vec<Catch>,
    /// The statement without its clauses.
    pub span: Span,
}

/// The kinds of statement.
#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// `let NAME = EXPR`.
    Let {
        /// The bound name.
        name: Ident,
        /// Its value.
        value: Expr,
    },
    /// `if COND { } else if COND { } else { }`.
    If {
        /// Each condition with the block it guards, tried in order; the
        /// first is the `if`, the rest are `else if`s.
        branches: Vec<(Expr, Block)>,
        /// Runs when no condition holds.
        otherwise: Option<Block>,
    },
    /// `branch EXPR { arms }`.
    Branch {
        /// The value matched against the arms.
        scrutinee: Expr,
        /// The arms in order; the first match runs.
        arms: Vec<Arm>,
    },
    /// `delay DURATION`.
    Delay(Expr),
    /// `delay until DATETIME`.
    DelayUntil(Expr),
    /// `stop`: ends the run successfully.
    Stop,
    /// `fail MESSAGE`: ends the run with an error.
    Fail(Expr),
    /// An action call.
    Call(Call),
    /// `[let NAME =] wait for TRIGGER from KEY within DURATION else { }`.
    Wait(Box<Wait>),
}

/// `[let NAME =] wait for TRIGGER from KEY within DURATION else { BLOCK }`:
/// the run waits until an event of TRIGGER whose correlation field equals
/// KEY arrives, or DURATION passes and BLOCK runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    /// `let NAME =`: the name the event is bound to; the else block must
    /// then end the run.
    pub binding: Option<Ident>,
    /// The trigger waited for.
    pub trigger: Ident,
    /// The value the trigger's `@correlate` field must equal.
    pub key: Expr,
    /// How long to wait at most.
    pub within: Expr,
    /// What runs when nothing arrived in time.
    pub otherwise: Block,
}

/// `PATTERNS => BODY` in a branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// Alternatives; the arm matches when any does.
    pub patterns: Vec<Pattern>,
    /// What runs.
    pub body: Block,
    /// The whole arm.
    pub span: Span,
}

/// One alternative of a branch arm.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// What it matches.
    pub kind: PatternKind,
    /// Where it is written.
    pub span: Span,
}

/// The kinds of pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum PatternKind {
    /// `_`: matches anything.
    Wildcard,
    /// A literal matched by equality.
    Literal(Expr),
    /// `matches /regex/`: matches strings the regular expression finds a match in.
    Regex(String),
    /// `contains "text"`: matches strings that contain the text.
    Contains(String),
}

/// `retry N times every D backoff F`.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// How many retries after the first attempt.
    pub times: i64,
    /// Span of the count.
    pub times_span: Span,
    /// Wait before the first retry, in milliseconds.
    pub every_ms: u64,
    /// Span of the interval.
    pub every_span: Span,
    /// Factor applied to the wait after each retry (1 when not written).
    pub backoff: Option<(f64, Span)>,
    /// The whole clause.
    pub span: Span,
}

/// `catch [KIND | ...] NAME { }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Catch {
    /// The kinds caught; empty catches every kind.
    pub kinds: Vec<Ident>,
    /// The variable holding the error.
    pub binding: Ident,
    /// What runs.
    pub body: Block,
    /// The whole clause.
    pub span: Span,
}

/// An action call: `name(positional, name: value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The qualified action name.
    pub name: Ident,
    /// Arguments in order.
    pub args: Vec<Arg>,
    /// The whole call.
    pub span: Span,
}

/// One argument of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The parameter name, for named arguments.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What kind.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A string literal, possibly with `{interpolations}`.
    Str(Vec<StrPart>),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `none`.
    None,
    /// A duration literal, in milliseconds.
    Duration(u64),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{ key: value }`.
    Record(Vec<(Ident, Expr)>),
    /// A variable.
    Var(Ident),
    /// `value.field`.
    Field(Box<Expr>, Ident),
    /// An action call used as a value.
    Call(Call),
    /// `not x`, `-x`.
    Unary(UnaryOp, Box<Expr>),
    /// `a + b`, `a == b`, ...
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// Stands where the parser already reported a mistake (a number out of
    /// range, an expression too long), so later stages stay quiet about it.
    Invalid,
}

impl ExprKind {
    /// The text of a string literal without interpolations.
    pub fn as_plain_str(&self) -> Option<String> {
        match self {
            ExprKind::Str(parts) => parts
                .iter()
                .map(|p| match p {
                    StrPart::Text(t) => Some(t.as_str()),
                    StrPart::Expr(_) => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// A piece of a string literal.
#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    /// Literal text, escapes resolved.
    Text(String),
    /// `{expression}`.
    Expr(Expr),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `not`.
    Not,
    /// `-`.
    Neg,
}

/// Infix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `??`: the left value, or the right one when the left is `none`.
    Default,
    /// `or`.
    Or,
    /// `and`.
    And,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `contains`.
    Contains,
}

impl BinaryOp {
    /// Binding strength; higher binds tighter. All operators associate left.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Default => 0,
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::Contains => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div => 5,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Default => "??",
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Contains => "contains",
        }
    }
}
