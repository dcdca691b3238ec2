//! From text to the spanned AST: runs the pest grammar item by item, turns
//! pairs into nodes, and turns pest's errors into plain-word diagnostics.
//!
//! Items are parsed one at a time so that a syntax error in one flow or
//! declaration does not hide the errors of the next: after an error the parser
//! skips to the next line that starts a top-level item.

use std::sync::Mutex;

use pest::iterators::{Pair, Pairs};
use pest::Parser;
use pest_derive::Parser;

use super::ast::*;
use super::expected;
use super::nesting::{self, MAX_NESTING};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::{FileId, Span};

#[derive(Parser)]
#[grammar = "../grammar/flow.pest"]
pub(crate) struct FlowParser;

/// Most operators one expression may chain; deeper trees would make every
/// later pass recurse as deep.
const MAX_OPERATORS: usize = 256;
/// Most `not` / `-` before one operand, and most `.field` reads after one:
/// each would nest the tree one level deeper.
const MAX_CHAIN: usize = 32;

/// Parses one file. Always returns a module (with the items that parsed) and
/// the syntax diagnostics; it never panics, whatever the input.
pub fn parse_module(file: FileId, text: &str) -> (Module, Diagnostics) {
    let mut diagnostics = Diagnostics::new();
    let mut module = Module::default();

    if let Some(offset) = nesting::too_deep_at(text) {
        let end = next_char_boundary(text, offset);
        diagnostics.push(
            Diagnostic::new(
                Code::NestingTooDeep,
                format!("brackets nest more than {MAX_NESTING} levels deep"),
            )
            .with_label(Span::new(file, offset, end), "this one is too deep")
            .with_help("split the expression: bind inner parts to names with `let` first"),
        );
        return (module, diagnostics);
    }

    let mut pos = skip_trivia(text, 0);
    while pos < text.len() {
        match parse_item(&text[pos..]) {
            Ok(pairs) => {
                let mut end = pos;
                let mut builder = Builder {
                    file,
                    text,
                    offset: pos,
                    diagnostics: &mut diagnostics,
                };
                for pair in pairs {
                    end = pos + pair.as_span().end();
                    for inner in pair.into_inner() {
                        if let Some(item) = builder.item(inner) {
                            module.items.push(item);
                        }
                    }
                }
                // An item always consumes text, but guard against a loop.
                pos = skip_trivia(text, end.max(pos + 1));
            }
            Err(error) => {
                let diagnostic = expected::syntax_error(file, text, pos, &error);
                let at = diagnostic.span().map_or(pos, |s| s.start as usize);
                diagnostics.push(diagnostic);
                pos = skip_trivia(text, next_item_start(text, at));
            }
        }
    }
    (module, diagnostics)
}

/// Held while pest's process-wide error-detail switch is on; every toggle of
/// the switch happens under it.
static ERROR_DETAIL: Mutex<()> = Mutex::new(());

/// Parses one item. The first attempt runs with pest's error detail off:
/// the detail (the literal tokens expected, `)`, `=>`, which the messages
/// name) costs about as much as the parse itself and only matters when the
/// item fails. A failing item is parsed again with the detail on, so every
/// syntax error is built from the detailed attempt and the messages never
/// depend on what other threads do.
///
/// pest reads the switch once, when a parse starts. It is only ever turned
/// on while [`ERROR_DETAIL`] is held and turned off again before the lock is
/// released, so the detailed parse cannot lose it half-way; another thread's
/// first attempt that starts meanwhile merely collects detail it ignores.
fn parse_item(text: &str) -> Result<Pairs<'_, Rule>, pest::error::Error<Rule>> {
    if let Ok(pairs) = FlowParser::parse(Rule::item_at, text) {
        return Ok(pairs);
    }
    // A panic elsewhere while the lock was held leaves no broken state
    // behind (the guard below turned the switch off), so a poisoned lock is
    // fine to take.
    let _lock = ERROR_DETAIL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    /// Turns the switch off when dropped, even if the parse unwinds.
    struct Detail;
    impl Drop for Detail {
        fn drop(&mut self) {
            pest::set_error_detail(false);
        }
    }
    pest::set_error_detail(true);
    let _detail = Detail;
    FlowParser::parse(Rule::item_at, text)
}

fn next_char_boundary(text: &str, offset: usize) -> usize {
    text[offset..]
        .chars()
        .next()
        .map_or(offset, |c| offset + c.len_utf8())
}

/// Skips whitespace and `#` comments from `pos`.
fn skip_trivia(text: &str, mut pos: usize) -> usize {
    let bytes = text.as_bytes();
    while pos < bytes.len() {
        match bytes[pos] {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b'#' => {
                pos = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
            }
            _ if text[pos..].starts_with('\u{FEFF}') => pos += '\u{FEFF}'.len_utf8(),
            _ => break,
        }
    }
    pos
}

/// The start of the first line after `at` that begins (in column 1) with a
/// keyword that starts a top-level item, or the end of the text.
fn next_item_start(text: &str, at: usize) -> usize {
    let mut line_start = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
    while line_start < text.len() {
        let line = &text[line_start..];
        let starts_item = ["flow", "trigger", "action", "type", "error", "test"]
            .iter()
            .any(|kw| {
                line.strip_prefix(kw)
                    .is_some_and(|rest| rest.starts_with([' ', '\t']))
            })
            || line.starts_with('@');
        if starts_item {
            return line_start;
        }
        line_start = text[line_start..]
            .find('\n')
            .map_or(text.len(), |i| line_start + i + 1);
    }
    text.len()
}

/// The `##` documentation lines directly above the line that holds `start`.
pub(crate) fn doc_above(text: &str, start: usize) -> Option<String> {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    let mut cursor = line_start;
    while cursor > 0 {
        let prev_start = text[..cursor - 1].rfind('\n').map_or(0, |i| i + 1);
        let line = text[prev_start..cursor - 1].trim();
        match line.strip_prefix("##") {
            Some(doc) => lines.push(doc.strip_prefix(' ').unwrap_or(doc).trim_end()),
            None => break,
        }
        cursor = prev_start;
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}

/// Turns pairs of one item into AST nodes.
struct Builder<'t, 'd> {
    file: FileId,
    text: &'t str,
    /// Where the parsed slice starts in the file.
    offset: usize,
    diagnostics: &'d mut Diagnostics,
}

impl Builder<'_, '_> {
    /// The pair's span without the whitespace and comments pest's implicit
    /// trivia leaves at its end, so labels underline only the code.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        let trimmed = trim_trivia_end(s.as_str());
        Span::new(
            self.file,
            self.offset + s.start(),
            self.offset + s.start() + trimmed.len(),
        )
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn doc(&self, span: Span) -> Option<String> {
        doc_above(self.text, span.start as usize)
    }

    fn invalid_literal(&mut self, span: Span, message: String, label: &str, help: &str) {
        self.diagnostics.push(
            Diagnostic::new(Code::InvalidLiteral, message)
                .with_label(span, label)
                .with_help(help),
        );
    }

    /// F0004: a handler option (or a sender in `via`) written again at
    /// `span`, first at `first`.
    fn repeated_option(&mut self, what: &str, span: Span, first: Span) {
        self.diagnostics.push(
            Diagnostic::new(Code::RepeatedOption, format!("{what} is written twice"))
                .with_label(span, "written again here")
                .with_secondary(first, "first written here")
                .with_help(if what == "`via`" {
                    "name every sender in one `via`, separated by commas: `via \"berlin-office\", \"munich-office\"`"
                } else {
                    "keep one of the two"
                }),
        );
    }

    fn too_long_chain(&mut self, span: Span, count: usize, what: &str) {
        self.diagnostics.push(
            Diagnostic::new(
                Code::NestingTooDeep,
                format!("{count} {what}; at most {MAX_CHAIN} are allowed"),
            )
            .with_label(span, "this chain is too long")
            .with_help("split it: bind a part to a name with `let` first"),
        );
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> Option<Item> {
        match pair.as_rule() {
            Rule::flow_def => Some(Item::Flow(self.flow(pair))),
            Rule::declaration => Some(Item::Declaration(self.declaration(pair))),
            Rule::test_def => Some(Item::Test(self.test_def(pair))),
            _ => None,
        }
    }

    fn flow(&mut self, pair: Pair<'_, Rule>) -> Flow {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        inner.next(); // `flow`
        let name = inner.next().map(|p| self.ident(p));
        let handlers = inner.map(|p| self.handler(p)).collect();
        Flow {
            name: name.unwrap_or_else(|| missing_ident(span)),
            handlers,
            span,
        }
    }

    fn test_def(&mut self, pair: Pair<'_, Rule>) -> TestDef {
        let span = self.span(&pair);
        let mut name = None;
        let mut given = None;
        let mut then = Vec::new();
        let mut facts = Vec::new();
        let mut expectations = Vec::new();
        let mut outcome = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::string => {
                    let name_span = self.span(&p);
                    let text = self.expr_atom(p).kind.as_plain_str().unwrap_or_default();
                    name = Some((text, name_span));
                }
                Rule::test_given => given = Some(self.given(p)),
                Rule::test_then => then.push(self.then_step(p)),
                Rule::test_fact => {
                    if let Some(fact) = self.test_fact(p) {
                        facts.push(fact);
                    }
                }
                Rule::test_expect => {
                    for e in p.into_inner() {
                        match e.as_rule() {
                            Rule::expectation => expectations.push(self.expectation(e)),
                            Rule::test_outcome => outcome = Some(self.test_outcome(e)),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let (name, name_span) = name.unwrap_or_else(|| (String::new(), span));
        TestDef {
            name,
            name_span,
            given: given.unwrap_or_else(|| Given {
                trigger: missing_ident(span),
                at: None,
                fields: Vec::new(),
                fields_span: span,
                span,
            }),
            then,
            facts,
            expectations,
            outcome,
            span,
        }
    }

    /// `then TRIGGER after DURATION { fields }`: read like `given`.
    fn then_step(&mut self, pair: Pair<'_, Rule>) -> ThenStep {
        let span = self.span(&pair);
        let after = pair
            .clone()
            .into_inner()
            .find(|p| p.as_rule() == Rule::duration)
            .and_then(|p| {
                let span = self.span(&p);
                self.duration(&p).map(|ms| (ms, span))
            })
            .unwrap_or((0, span));
        let restart = pair
            .clone()
            .into_inner()
            .any(|p| p.as_rule() == Rule::kw_restart);
        let kind = if restart {
            ThenKind::Restart
        } else {
            ThenKind::Event(self.given(pair))
        };
        ThenStep { kind, after, span }
    }

    fn given(&mut self, pair: Pair<'_, Rule>) -> Given {
        let span = self.span(&pair);
        let mut trigger = None;
        let mut at = None;
        let mut fields = Vec::new();
        let mut fields_span = span;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::qualified_name => trigger = Some(self.ident(p)),
                Rule::string => at = Some(self.expr_atom(p)),
                Rule::record => {
                    fields_span = self.span(&p);
                    if let ExprKind::Record(record) = self.primary(p).kind {
                        fields = record;
                    }
                }
                _ => {}
            }
        }
        Given {
            trigger: trigger.unwrap_or_else(|| missing_ident(span)),
            at,
            fields,
            fields_span,
            span,
        }
    }

    fn test_fact(&mut self, pair: Pair<'_, Rule>) -> Option<TestFact> {
        let span = self.span(&pair);
        let fact = pair.into_inner().nth(1)?;
        let rule = fact.as_rule();
        let mut strings = Vec::new();
        let mut names = Vec::new();
        let mut duration = None;
        let mut number = None;
        for p in fact.into_inner() {
            match p.as_rule() {
                Rule::string => strings.push(self.expr_atom(p)),
                Rule::name | Rule::qualified_name => names.push(self.ident(p)),
                Rule::duration => duration = self.duration(&p),
                Rule::int => number = Some((self.int(&p)?, self.span(&p))),
                _ => {}
            }
        }
        let mut strings = strings.into_iter();
        let mut names = names.into_iter();
        let kind = match rule {
            Rule::fact_inbound => TestFactKind::Inbound {
                customer: strings.next()?,
                sender: strings.next()?,
                ago_ms: duration?,
            },
            Rule::fact_offline => TestFactKind::SenderOffline(strings.next()?),
            Rule::fact_handed_over => TestFactKind::HandedOver {
                customer: strings.next()?,
                sender: strings.next()?,
            },
            Rule::fact_ai => TestFactKind::AiAnswer(strings.next()?),
            Rule::fact_failure => {
                let (call, call_span) = number?;
                TestFactKind::Failure {
                    kind: names.next()?,
                    action: names.next()?,
                    call,
                    call_span,
                }
            }
            _ => return None,
        };
        Some(TestFact { kind, span })
    }

    fn expectation(&mut self, pair: Pair<'_, Rule>) -> Expectation {
        let span = self.span(&pair);
        let mut after = None;
        let mut call = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::duration => {
                    let at = self.span(&p);
                    after = self.duration(&p).map(|ms| (ms, at));
                }
                Rule::call => call = Some(self.call(p)),
                _ => {}
            }
        }
        Expectation {
            after,
            call: call.unwrap_or_else(|| Call {
                name: missing_ident(span),
                args: Vec::new(),
                span,
            }),
            span,
        }
    }

    fn test_outcome(&mut self, pair: Pair<'_, Rule>) -> TestOutcome {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let kind = match inner.next().map(|p| p.as_rule()) {
            Some(Rule::kw_fails) => match inner.next() {
                Some(name) => TestOutcomeKind::Fails(self.ident(name)),
                None => TestOutcomeKind::Fails(missing_ident(span)),
            },
            Some(Rule::kw_stops) => TestOutcomeKind::Stops,
            Some(Rule::kw_nothing) => TestOutcomeKind::NothingRuns,
            _ => TestOutcomeKind::Completes,
        };
        TestOutcome { kind, span }
    }

    fn handler(&mut self, pair: Pair<'_, Rule>) -> Handler {
        let span = self.span(&pair);
        let mut trigger = None;
        let mut binding = None;
        let mut body = None;
        let mut debounce: Option<Debounce> = None;
        let mut via = Vec::new();
        let mut via_span = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::qualified_name => trigger = Some(self.ident(p)),
                Rule::ident => binding = Some(self.ident(p)),
                Rule::block => body = Some(self.block(p)),
                Rule::debounce_opt => {
                    let option_span = self.span(&p);
                    if let Some(first) = &debounce {
                        self.repeated_option("`debounce`", option_span, first.span);
                        continue;
                    }
                    let millis = p
                        .into_inner()
                        .find(|d| d.as_rule() == Rule::duration)
                        .and_then(|d| self.duration(&d));
                    debounce = Some(Debounce {
                        millis,
                        span: option_span,
                    });
                }
                Rule::via_opt => {
                    let option_span = self.span(&p);
                    if let Some(first) = via_span {
                        self.repeated_option("`via`", option_span, first);
                        continue;
                    }
                    via_span = Some(option_span);
                    for s in p.into_inner().filter(|s| s.as_rule() == Rule::string) {
                        let sender = self.via_sender(s);
                        let named_before = via.iter().find(|earlier: &&ViaSender| {
                            sender.name.is_some() && earlier.name == sender.name
                        });
                        match named_before {
                            Some(first) => {
                                let what = format!(
                                    "the sender \"{}\"",
                                    sender.name.as_deref().unwrap_or("")
                                );
                                let first = first.span;
                                self.repeated_option(&what, sender.span, first);
                            }
                            None => via.push(sender),
                        }
                    }
                }
                _ => {}
            }
        }
        Handler {
            trigger: trigger.unwrap_or_else(|| missing_ident(span)),
            binding: binding.unwrap_or_else(|| missing_ident(span)),
            debounce,
            via,
            body: body.unwrap_or_else(|| empty_block(span)),
            span,
        }
    }

    /// A sender named by `via`: a plain string, never an interpolation
    /// (the sender must be known before any run exists).
    fn via_sender(&mut self, pair: Pair<'_, Rule>) -> ViaSender {
        let span = self.span(&pair);
        let parts = self.string(pair);
        let name = match parts.as_slice() {
            [] => Some(String::new()),
            [StrPart::Text(text)] => Some(text.clone()),
            _ => {
                self.invalid_literal(
                    span,
                    "a sender after `via` cannot interpolate".into(),
                    "interpolation",
                    "write the sender's name from flow.toml as a plain string, such as `\"berlin-office\"`",
                );
                None
            }
        };
        ViaSender { name, span }
    }

    fn declaration(&mut self, pair: Pair<'_, Rule>) -> Declaration {
        let span = self.span(&pair);
        let doc = self.doc(span);
        let mut attributes = Vec::new();
        let mut kind = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::attribute => attributes.push(self.attribute(p)),
                Rule::trigger_decl => {
                    let mut inner = p.into_inner();
                    inner.next(); // `trigger`
                    let name = inner.next().map(|p| self.ident(p));
                    let fields = inner.map(|p| self.field_decl(p)).collect();
                    kind = Some(DeclarationKind::Trigger {
                        name: name.unwrap_or_else(|| missing_ident(span)),
                        fields,
                    });
                }
                Rule::action_decl => kind = Some(self.action_decl(p, span)),
                Rule::type_decl => {
                    let mut inner = p.into_inner();
                    inner.next(); // `type`
                    let name = inner.next().map(|p| self.ident(p));
                    let fields = inner.map(|p| self.field_decl(p)).collect();
                    kind = Some(DeclarationKind::Type {
                        name: name.unwrap_or_else(|| missing_ident(span)),
                        fields,
                    });
                }
                Rule::error_decl => {
                    let name = p.into_inner().nth(1).map(|p| self.ident(p));
                    kind = Some(DeclarationKind::Error {
                        name: name.unwrap_or_else(|| missing_ident(span)),
                    });
                }
                _ => {}
            }
        }
        Declaration {
            attributes,
            doc,
            kind: kind.unwrap_or_else(|| DeclarationKind::Error {
                name: missing_ident(span),
            }),
            span,
        }
    }

    fn attribute(&mut self, pair: Pair<'_, Rule>) -> Attribute {
        let span = self.span(&pair);
        let mut name = None;
        let mut args = Vec::new();
        let mut options = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => name = Some(self.ident(p)),
                Rule::attribute_args => {
                    for arg in p.into_inner() {
                        if arg.as_rule() == Rule::type_arg {
                            options.extend(self.type_arg(arg));
                        } else {
                            args.push(self.ident(arg));
                        }
                    }
                }
                _ => {}
            }
        }
        Attribute {
            name: name.unwrap_or_else(|| missing_ident(span)),
            args,
            options,
            span,
        }
    }

    /// `key: value` of a type or an attribute.
    fn type_arg(&mut self, pair: Pair<'_, Rule>) -> Option<TypeArg> {
        let span = self.span(&pair);
        let mut parts = pair.into_inner();
        let name = self.ident(parts.next()?);
        let value = parts.next()?;
        let value = match value.as_rule() {
            Rule::int => TypeArgValue::Int(self.int(&value)?),
            _ => TypeArgValue::Name(self.ident(value)),
        };
        Some(TypeArg { name, value, span })
    }

    /// The `(key: value, ...)` of a type.
    fn type_args(&mut self, pair: Pair<'_, Rule>) -> Vec<TypeArg> {
        pair.into_inner()
            .filter_map(|arg| self.type_arg(arg))
            .collect()
    }

    fn action_decl(&mut self, pair: Pair<'_, Rule>, span: Span) -> DeclarationKind {
        let mut name = None;
        let mut params = Vec::new();
        let mut returns = None;
        let mut raises = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::qualified_name => name = Some(self.ident(p)),
                Rule::params => params = p.into_inner().map(|p| self.param(p)).collect(),
                Rule::returns => returns = p.into_inner().next().map(|t| self.type_expr(t)),
                Rule::raises => {
                    raises = p
                        .into_inner()
                        .filter(|p| p.as_rule() == Rule::name)
                        .map(|p| self.ident(p))
                        .collect()
                }
                _ => {}
            }
        }
        DeclarationKind::Action {
            name: name.unwrap_or_else(|| missing_ident(span)),
            params,
            returns,
            raises,
        }
    }

    fn param(&mut self, pair: Pair<'_, Rule>) -> Param {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = inner.next().map(|p| self.ident(p));
        let ty = inner.next().map(|p| self.type_expr(p));
        let default = inner.next().map(|p| self.expr_atom(p));
        Param {
            name: name.unwrap_or_else(|| missing_ident(span)),
            ty: ty.unwrap_or_else(|| any_type(span)),
            default,
            doc: self.doc(span),
            span,
        }
    }

    /// A `field_decl`, or a `trigger_field` with its default.
    fn field_decl(&mut self, pair: Pair<'_, Rule>) -> FieldDecl {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = inner.next().map(|p| self.ident(p));
        let ty = inner.next().map(|p| self.type_expr(p));
        let default = inner.next().map(|p| self.expr_atom(p));
        FieldDecl {
            name: name.unwrap_or_else(|| missing_ident(span)),
            ty: ty.unwrap_or_else(|| any_type(span)),
            default,
            doc: self.doc(span),
            span,
        }
    }

    fn type_expr(&mut self, pair: Pair<'_, Rule>) -> TypeExpr {
        let span = self.span(&pair);
        let mut optional = false;
        let mut kind = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::optional => optional = true,
                Rule::list_type => {
                    let mut inner = p.into_inner();
                    let element = inner.next().map(|t| self.type_expr(t));
                    let args = inner.next().map(|a| self.type_args(a)).unwrap_or_default();
                    kind = Some(TypeExprKind::List(
                        Box::new(element.unwrap_or_else(|| any_type(span))),
                        args,
                    ));
                }
                Rule::record_type => {
                    kind = Some(TypeExprKind::Record(
                        p.into_inner().map(|f| self.field_decl(f)).collect(),
                    ));
                }
                Rule::named_type => {
                    let mut inner = p.into_inner();
                    let name = inner.next().map(|n| self.ident(n));
                    let args = inner.next().map(|a| self.type_args(a)).unwrap_or_default();
                    kind = Some(TypeExprKind::Named {
                        name: name.unwrap_or_else(|| missing_ident(span)),
                        args,
                    });
                }
                _ => {}
            }
        }
        TypeExpr {
            kind: kind.unwrap_or_else(|| any_type(span).kind),
            optional,
            span,
        }
    }

    fn block(&mut self, pair: Pair<'_, Rule>) -> Block {
        let span = self.span(&pair);
        let stmts = pair.into_inner().map(|p| self.stmt(p)).collect();
        Block { stmts, span }
    }

    fn stmt(&mut self, pair: Pair<'_, Rule>) -> Stmt {
        let mut kind = None;
        let mut span = self.span(&pair);
        let mut retry = None;
        let mut catches = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::retry_clause => retry = self.retry(p),
                Rule::catch_clause => catches.push(self.catch(p)),
                _ => {
                    span = self.span(&p);
                    kind = Some(self.stmt_kind(p));
                }
            }
        }
        Stmt {
            kind: kind.unwrap_or(StmtKind::Stop),
            retry,
            catches,
            span,
        }
    }

    fn stmt_kind(&mut self, pair: Pair<'_, Rule>) -> StmtKind {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::let_stmt => {
                let mut inner = pair.into_inner().skip(1);
                let name = inner.next().map(|p| self.ident(p));
                let value = inner.next().map(|p| self.expr(p));
                StmtKind::Let {
                    name: name.unwrap_or_else(|| missing_ident(span)),
                    value: value.unwrap_or_else(|| none_expr(span)),
                }
            }
            Rule::if_stmt => self.if_stmt(pair),
            Rule::branch_stmt => {
                let mut inner = pair.into_inner().skip(1);
                let scrutinee = inner.next().map(|p| self.expr(p));
                let arms = inner.map(|p| self.arm(p)).collect();
                StmtKind::Branch {
                    scrutinee: scrutinee.unwrap_or_else(|| none_expr(span)),
                    arms,
                }
            }
            Rule::delay_stmt => {
                let target = pair.into_inner().nth(1);
                match target {
                    Some(p) if p.as_rule() == Rule::delay_until => {
                        let at = p.into_inner().nth(1).map(|e| self.expr(e));
                        StmtKind::DelayUntil(at.unwrap_or_else(|| none_expr(span)))
                    }
                    Some(p) => StmtKind::Delay(self.expr(p)),
                    None => StmtKind::Delay(none_expr(span)),
                }
            }
            Rule::stop_stmt => StmtKind::Stop,
            Rule::wait_stmt => self.wait_stmt(pair),
            Rule::fail_stmt => {
                let message = pair.into_inner().nth(1).map(|p| self.expr(p));
                StmtKind::Fail(message.unwrap_or_else(|| none_expr(span)))
            }
            Rule::call => StmtKind::Call(self.call(pair)),
            _ => StmtKind::Stop,
        }
    }

    /// `[let NAME =] wait for TRIGGER from KEY within DURATION else BLOCK`.
    fn wait_stmt(&mut self, pair: Pair<'_, Rule>) -> StmtKind {
        let span = self.span(&pair);
        let mut binding = None;
        let mut trigger = None;
        let mut exprs = Vec::with_capacity(2);
        let mut otherwise = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::wait_binding => {
                    binding = p
                        .into_inner()
                        .find(|q| q.as_rule() == Rule::ident)
                        .map(|q| self.ident(q));
                }
                Rule::qualified_name => trigger = Some(self.ident(p)),
                Rule::expr => exprs.push(self.expr(p)),
                Rule::block => otherwise = Some(self.block(p)),
                _ => {}
            }
        }
        let mut exprs = exprs.into_iter();
        StmtKind::Wait(Box::new(Wait {
            binding,
            trigger: trigger.unwrap_or_else(|| missing_ident(span)),
            key: exprs.next().unwrap_or_else(|| none_expr(span)),
            within: exprs.next().unwrap_or_else(|| none_expr(span)),
            otherwise: otherwise.unwrap_or(Block {
                stmts: Vec::new(),
                span,
            }),
        }))
    }

    fn if_stmt(&mut self, pair: Pair<'_, Rule>) -> StmtKind {
        let span = self.span(&pair);
        let mut branches = Vec::new();
        let mut otherwise = None;
        let mut cond = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::expr => cond = Some(self.expr(p)),
                Rule::block => {
                    let block = self.block(p);
                    branches.push((cond.take().unwrap_or_else(|| none_expr(span)), block));
                }
                Rule::else_if => {
                    let mut parts = p.into_inner().skip(2);
                    let cond = parts.next().map(|e| self.expr(e));
                    let block = parts.next().map(|b| self.block(b));
                    branches.push((
                        cond.unwrap_or_else(|| none_expr(span)),
                        block.unwrap_or_else(|| empty_block(span)),
                    ));
                }
                Rule::else_clause => otherwise = p.into_inner().nth(1).map(|b| self.block(b)),
                _ => {}
            }
        }
        StmtKind::If {
            branches,
            otherwise,
        }
    }

    fn arm(&mut self, pair: Pair<'_, Rule>) -> Arm {
        let span = self.span(&pair);
        let mut patterns = Vec::new();
        let mut body = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::patterns => patterns = p.into_inner().map(|p| self.pattern(p)).collect(),
                Rule::block => body = Some(self.block(p)),
                Rule::stmt => {
                    let stmt = self.stmt(p);
                    body = Some(Block {
                        span: stmt.span,
                        stmts: vec![stmt],
                    });
                }
                _ => {}
            }
        }
        Arm {
            patterns,
            body: body.unwrap_or_else(|| empty_block(span)),
            span,
        }
    }

    fn pattern(&mut self, pair: Pair<'_, Rule>) -> Pattern {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::wildcard => PatternKind::Wildcard,
            Rule::matches_pat => PatternKind::Regex(
                pair.into_inner()
                    .nth(1)
                    .and_then(|regex| regex.into_inner().next())
                    .map(|body| body.as_str().replace("\\/", "/"))
                    .unwrap_or_default(),
            ),
            Rule::contains_pat => {
                let text = pair
                    .into_inner()
                    .nth(1)
                    .map(|s| self.expr_atom(s))
                    .and_then(|e| e.kind.as_plain_str());
                PatternKind::Contains(text.unwrap_or_default())
            }
            _ => PatternKind::Literal(self.expr_atom(pair)),
        };
        Pattern { kind, span }
    }

    fn retry(&mut self, pair: Pair<'_, Rule>) -> Option<Retry> {
        let span = self.span(&pair);
        let mut times = None;
        let mut every = None;
        let mut backoff = None;
        let mut after_backoff = false;
        for p in pair.into_inner() {
            let p_span = self.span(&p);
            match p.as_rule() {
                Rule::kw_backoff => after_backoff = true,
                Rule::int | Rule::float if after_backoff => {
                    backoff = Some((p.as_str().parse::<f64>().ok()?, p_span))
                }
                Rule::int => times = Some((self.int(&p)?, p_span)),
                Rule::duration => every = Some((self.duration(&p)?, p_span)),
                _ => {}
            }
        }
        let (times, times_span) = times?;
        let (every_ms, every_span) = every?;
        Some(Retry {
            times,
            times_span,
            every_ms,
            every_span,
            backoff,
            span,
        })
    }

    fn catch(&mut self, pair: Pair<'_, Rule>) -> Catch {
        let span = self.span(&pair);
        let mut kinds = Vec::new();
        let mut binding = None;
        let mut body = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::error_kinds => kinds = p.into_inner().map(|k| self.ident(k)).collect(),
                Rule::ident => binding = Some(self.ident(p)),
                Rule::block => body = Some(self.block(p)),
                _ => {}
            }
        }
        Catch {
            kinds,
            binding: binding.unwrap_or_else(|| missing_ident(span)),
            body: body.unwrap_or_else(|| empty_block(span)),
            span,
        }
    }

    fn call(&mut self, pair: Pair<'_, Rule>) -> Call {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = inner.next().map(|p| self.ident(p));
        let args = inner
            .map(|arg| {
                let mut name = None;
                let mut value = None;
                for p in arg.into_inner() {
                    match p.as_rule() {
                        Rule::name => name = Some(self.ident(p)),
                        _ => value = Some(self.expr(p)),
                    }
                }
                Arg {
                    name,
                    value: value.unwrap_or_else(|| none_expr(span)),
                }
            })
            .collect();
        Call {
            name: name.unwrap_or_else(|| missing_ident(span)),
            args,
            span,
        }
    }

    /// `expr = operand (infix operand)*`, folded by precedence without
    /// recursion so long chains cannot exhaust the stack.
    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let mut operands: Vec<Expr> = Vec::new();
        let mut operators: Vec<BinaryOp> = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::operand => operands.push(self.operand(p)),
                rule => {
                    if let Some(op) = binary_op(rule) {
                        operators.push(op);
                    }
                }
            }
        }
        if operators.len() > MAX_OPERATORS {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::NestingTooDeep,
                    format!(
                        "expression chains {} operators; at most {MAX_OPERATORS} are allowed",
                        operators.len()
                    ),
                )
                .with_label(span, "this expression is too long")
                .with_help("split the expression: bind parts to names with `let` first"),
            );
            return none_expr(span);
        }
        fold_binary(operands, operators).unwrap_or_else(|| none_expr(span))
    }

    fn operand(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let mut prefixes = Vec::new();
        let mut value = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::op_not => prefixes.push((UnaryOp::Not, self.span(&p))),
                Rule::op_neg => prefixes.push((UnaryOp::Neg, self.span(&p))),
                _ => value = Some(self.postfix(p)),
            }
        }
        let mut expr = match value {
            Some(v) => v,
            None => return none_expr(Span::new(self.file, self.offset, self.offset)),
        };
        if prefixes.len() > MAX_CHAIN {
            let span = prefixes[0].1.to(expr.span);
            self.too_long_chain(span, prefixes.len(), "`not` and `-` in a row");
            return none_expr(span);
        }
        for (op, op_span) in prefixes.into_iter().rev() {
            let span = op_span.to(expr.span);
            expr = Expr {
                kind: ExprKind::Unary(op, Box::new(expr)),
                span,
            };
        }
        expr
    }

    fn postfix(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let reads = pair.clone().into_inner().count().saturating_sub(1);
        if reads > MAX_CHAIN {
            let span = self.span(&pair);
            self.too_long_chain(span, reads, "field reads in a row");
            return none_expr(span);
        }
        let mut inner = pair.into_inner();
        let mut expr = match inner.next() {
            Some(p) => self.primary(p),
            None => return none_expr(Span::new(self.file, self.offset, self.offset)),
        };
        for access in inner {
            if let Some(name) = access.into_inner().next() {
                let field = self.ident(name);
                let span = expr.span.to(field.span);
                expr = Expr {
                    kind: ExprKind::Field(Box::new(expr), field),
                    span,
                };
            }
        }
        expr
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::call => Expr {
                kind: ExprKind::Call(self.call(pair)),
                span,
            },
            Rule::list => Expr {
                kind: ExprKind::List(pair.into_inner().map(|p| self.expr(p)).collect()),
                span,
            },
            Rule::record => {
                let fields = pair
                    .into_inner()
                    .filter_map(|field| {
                        let mut parts = field.into_inner();
                        let key = parts.next()?;
                        let key = if key.as_rule() == Rule::string {
                            let key_span = self.span(&key);
                            let text = self.expr_atom(key).kind.as_plain_str()?;
                            Ident {
                                name: text,
                                span: key_span,
                            }
                        } else {
                            self.ident(key)
                        };
                        let value = self.expr(parts.next()?);
                        Some((key, value))
                    })
                    .collect();
                Expr {
                    kind: ExprKind::Record(fields),
                    span,
                }
            }
            Rule::ident => Expr {
                kind: ExprKind::Var(self.ident(pair)),
                span,
            },
            Rule::paren => match pair.into_inner().next() {
                Some(inner) => {
                    let mut expr = self.expr(inner);
                    expr.span = span;
                    expr
                }
                None => none_expr(span),
            },
            _ => self.expr_atom(pair),
        }
    }

    /// Literals: numbers, durations, strings, booleans, `none`.
    fn expr_atom(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::int => self.int(&pair).map_or(ExprKind::Invalid, ExprKind::Int),
            Rule::float => match pair.as_str().parse::<f64>() {
                Ok(value) if value.is_finite() => ExprKind::Float(value),
                _ => {
                    self.invalid_literal(
                        span,
                        "number is too large".into(),
                        "out of range",
                        "use a smaller number",
                    );
                    ExprKind::None
                }
            },
            Rule::duration => self
                .duration(&pair)
                .map_or(ExprKind::None, ExprKind::Duration),
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::none => ExprKind::None,
            Rule::string => ExprKind::Str(self.string(pair)),
            _ => ExprKind::Invalid,
        };
        Expr { kind, span }
    }

    fn int(&mut self, pair: &Pair<'_, Rule>) -> Option<i64> {
        match pair.as_str().parse::<i64>() {
            Ok(value) => Some(value),
            Err(_) => {
                let span = self.span(pair);
                self.invalid_literal(
                    span,
                    "whole number is too large".into(),
                    "larger than 9223372036854775807",
                    "use a smaller number",
                );
                None
            }
        }
    }

    /// Parses `1h30m` into milliseconds. The grammar guarantees the shape,
    /// so the only failure is a duration too long for 64 bits.
    fn duration(&mut self, pair: &Pair<'_, Rule>) -> Option<u64> {
        let parsed = crate::duration::parse(pair.as_str());
        if parsed.is_none() {
            let span = self.span(pair);
            self.invalid_literal(
                span,
                "duration is too long".into(),
                "out of range",
                "durations can be at most about 584 million years; use a smaller one",
            );
        }
        parsed
    }

    fn string(&mut self, pair: Pair<'_, Rule>) -> Vec<StrPart> {
        let mut parts: Vec<StrPart> = Vec::new();
        let mut text = String::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::str_text => text.push_str(p.as_str()),
                Rule::str_escape => {
                    if let Some(c) = self.escape(&p) {
                        text.push(c);
                    }
                }
                Rule::interpolation => {
                    if !text.is_empty() {
                        parts.push(StrPart::Text(std::mem::take(&mut text)));
                    }
                    if let Some(inner) = p.into_inner().next() {
                        parts.push(StrPart::Expr(self.expr(inner)));
                    }
                }
                _ => {}
            }
        }
        if !text.is_empty() || parts.is_empty() {
            parts.push(StrPart::Text(text));
        }
        parts
    }

    fn escape(&mut self, pair: &Pair<'_, Rule>) -> Option<char> {
        let raw = pair.as_str();
        let c = match raw.as_bytes().get(1) {
            Some(b'n') => '\n',
            Some(b't') => '\t',
            Some(b'r') => '\r',
            Some(b'u') => {
                let hex = raw.trim_start_matches("\\u{").trim_end_matches('}');
                match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                    Some(c) => c,
                    None => {
                        let span = self.span(pair);
                        self.invalid_literal(
                            span,
                            format!("`{raw}` is not a Unicode character"),
                            "no such character",
                            "write a Unicode scalar value in hex, e.g. `\\u{1F600}`",
                        );
                        return None;
                    }
                }
            }
            _ => raw.chars().nth(1)?,
        };
        Some(c)
    }
}

/// `text` without trailing whitespace and `#` comments.
fn trim_trivia_end(text: &str) -> &str {
    let trimmed = text.trim_end();
    let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
    // Every node's span is trimmed: skip the scan for the usual last line
    // that has no `#` at all.
    if !trimmed[line_start..].contains('#') {
        return trimmed;
    }
    // A node's text starts at a token, so scanning it from its start with the
    // grammar's own string and regex rules tells a comment from a `#` inside
    // a literal (a string spanning lines, `matches /a#b/`).
    let Some(comments) = comment_ranges(text) else {
        return trimmed;
    };
    let mut end = trimmed.len();
    for comment in comments.iter().rev() {
        let rest = text[..end].trim_end();
        if text[comment.clone()].trim_end().len() + comment.start == rest.len() {
            end = comment.start;
        } else if comment.start < rest.len() {
            break;
        }
    }
    text[..end].trim_end()
}

/// The byte ranges of the `#` and `##` comments of `text`, in order, found
/// with the grammar's `scan_file` rule. `None` when the text does not lex (an
/// unclosed string).
pub(crate) fn comment_ranges(text: &str) -> Option<Vec<std::ops::Range<usize>>> {
    let pairs = FlowParser::parse(Rule::scan_file, text).ok()?;
    Some(
        pairs
            .flatten()
            .filter(|pair| pair.as_rule() == Rule::scan_comment)
            .map(|pair| pair.as_span().start()..pair.as_span().end())
            .collect(),
    )
}

fn binary_op(rule: Rule) -> Option<BinaryOp> {
    Some(match rule {
        Rule::op_default => BinaryOp::Default,
        Rule::op_or => BinaryOp::Or,
        Rule::op_and => BinaryOp::And,
        Rule::op_eq => BinaryOp::Eq,
        Rule::op_ne => BinaryOp::Ne,
        Rule::op_lt => BinaryOp::Lt,
        Rule::op_le => BinaryOp::Le,
        Rule::op_gt => BinaryOp::Gt,
        Rule::op_ge => BinaryOp::Ge,
        Rule::op_add => BinaryOp::Add,
        Rule::op_sub => BinaryOp::Sub,
        Rule::op_mul => BinaryOp::Mul,
        Rule::op_div => BinaryOp::Div,
        Rule::op_contains => BinaryOp::Contains,
        _ => return None,
    })
}

/// Shunting-yard over `operands[0] op[0] operands[1] ...`, all operators left
/// associative.
fn fold_binary(operands: Vec<Expr>, operators: Vec<BinaryOp>) -> Option<Expr> {
    let mut operands = operands.into_iter();
    let mut output: Vec<Expr> = vec![operands.next()?];
    let mut pending: Vec<BinaryOp> = Vec::new();
    let reduce = |output: &mut Vec<Expr>, op: BinaryOp| -> Option<()> {
        let right = output.pop()?;
        let left = output.pop()?;
        let span = left.span.to(right.span);
        output.push(Expr {
            kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
            span,
        });
        Some(())
    };
    for op in operators {
        while let Some(&top) = pending.last() {
            if top.precedence() < op.precedence() {
                break;
            }
            pending.pop();
            reduce(&mut output, top)?;
        }
        pending.push(op);
        output.push(operands.next()?);
    }
    while let Some(op) = pending.pop() {
        reduce(&mut output, op)?;
    }
    output.pop()
}

fn missing_ident(span: Span) -> Ident {
    Ident {
        name: String::new(),
        span,
    }
}

fn empty_block(span: Span) -> Block {
    Block {
        stmts: Vec::new(),
        span,
    }
}

/// An expression standing in for one the parser could not build; its
/// mistake is already reported.
fn none_expr(span: Span) -> Expr {
    Expr {
        kind: ExprKind::Invalid,
        span,
    }
}

fn any_type(span: Span) -> TypeExpr {
    TypeExpr {
        kind: TypeExprKind::Named {
            name: Ident {
                name: "Any".into(),
                span,
            },
            args: Vec::new(),
        },
        optional: false,
        span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        let (_, diagnostics) = parse_module(FileId(0), text);
        diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    /// Syntax errors come from the detailed re-parse whatever other threads
    /// parse at the same time: the same messages alone and under contention.
    #[test]
    fn spans_keep_hashes_inside_literals_and_drop_trailing_comments() {
        assert_eq!(trim_trivia_end("matches /a#b/  "), "matches /a#b/");
        assert_eq!(trim_trivia_end("matches /a#b/ # why"), "matches /a#b/");
        assert_eq!(trim_trivia_end("\"one\n#two\""), "\"one\n#two\"");
        assert_eq!(trim_trivia_end("log(\"#\") # a\n  # b\n"), "log(\"#\")");
        assert_eq!(trim_trivia_end("stop"), "stop");
    }

    #[test]
    fn messages_do_not_depend_on_other_threads() {
        let bad = "flow f\non call.ended as c {\n    log(\"a\"\n}\nflow g\non call.ended as c {\n    branch c.outcome { \"a\" stop }\n}\n";
        let good = "flow ok\non call.ended as c {\n    log(\"fine {c.outcome}\")\n}\n";
        let expected = messages(bad);
        assert_eq!(expected.len(), 2, "{expected:?}");
        assert!(
            expected.iter().all(|m| m.contains('`')),
            "the detailed messages name tokens: {expected:?}"
        );
        let expected = &expected;
        std::thread::scope(|scope| {
            for i in 0..4 {
                scope.spawn(move || {
                    for _ in 0..50 {
                        if i % 2 == 0 {
                            assert_eq!(&messages(bad), expected);
                        } else {
                            assert!(messages(good).is_empty());
                        }
                    }
                });
            }
        });
    }

    const LIMITS: &str = "@offers(buttons.id)\n@across(sections.rows, max: 10, unique: id)\naction x.send(buttons: [Button](min: 1, max: 3, unique: id), tags: [Text(max: 20)](max: 3)?)\n\ntrigger x.received {\n    kind: String = \"text\"\n    n: Int = 3\n}\n";

    #[test]
    fn limits_defaults_and_attribute_options_parse_and_print_back() {
        let (module, diagnostics) = crate::syntax::parse(FileId(0), LIMITS);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let Some(Item::Declaration(action)) = module.items.first() else {
            panic!("an action");
        };
        let across = &action.attributes[1];
        assert_eq!(across.args[0].name, "sections.rows");
        assert_eq!(across.options.len(), 2);
        assert_eq!(across.options[1].to_string(), "unique: id");
        let DeclarationKind::Action { params, .. } = &action.kind else {
            panic!("an action");
        };
        let TypeExprKind::List(_, args) = &params[0].ty.kind else {
            panic!("a list type");
        };
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        assert_eq!(args, ["min: 1", "max: 3", "unique: id"]);
        let Some(Item::Declaration(trigger)) = module.items.get(1) else {
            panic!("a trigger");
        };
        let DeclarationKind::Trigger { fields, .. } = &trigger.kind else {
            panic!("a trigger");
        };
        assert!(matches!(
            fields[1].default.as_ref().map(|d| &d.kind),
            Some(ExprKind::Int(3))
        ));
        let formatted = crate::format::format_source(LIMITS).map_err(|e| e.to_string());
        assert_eq!(formatted.as_deref(), Ok(LIMITS));
    }

    #[test]
    fn defaults_belong_to_trigger_fields_only() {
        let (_, diagnostics) =
            crate::syntax::parse(FileId(0), "type T {\n    kind: String = \"text\"\n}\n");
        assert_eq!(diagnostics.len(), 1);
    }
}
