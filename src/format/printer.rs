//! The layout itself: walks the syntax tree in source order and writes the
//! canonical text, placing each comment at the first line break after the
//! code that precedes it in the source.
//!
//! Literals (strings, numbers, durations, regexes) are copied as written, so
//! escapes and units stay the author's; only whitespace, line breaks, commas
//! and the placement of clauses change.

use super::comments::Comment;
use crate::source::Span;
use crate::syntax::ast::*;

/// The widest line the layout aims for.
pub(crate) const WIDTH: usize = 100;
/// One level of indentation.
const INDENT: &str = "    ";

/// A comment that has no line of its own in the layout.
#[derive(Debug)]
pub(crate) struct Unplaced(pub Span);

type Out = Result<String, Unplaced>;

/// How a bracketed list that does not fit on one line is broken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// One element per line (flows and declarations).
    Lines,
    /// As many elements per line as fit (test data, which reads as a table).
    Fill,
}

/// One element of a bracketed list: where it is, and how to print its head
/// (`name: ` of a named argument or record field) and its value.
struct Elem<'a> {
    start: usize,
    end: usize,
    head: String,
    value: ElemValue<'a>,
}

/// A bracketed, comma-separated list as written in the source.
struct List<'a> {
    /// `(`, `[` or `{`, and the matching closer.
    brackets: (&'static str, &'static str),
    /// Where the opening bracket is, or where the code just before it ends:
    /// a comment after this on the same line stays on the opening line.
    open_at: usize,
    /// Where the closing bracket is.
    close_at: usize,
    elems: Vec<Elem<'a>>,
}

/// Where printed code starts: its indentation level and column, and how
/// many characters follow it on its line (a `,`, ` {`).
#[derive(Clone, Copy)]
struct Place {
    level: usize,
    col: usize,
    tail: usize,
}

enum ElemValue<'a> {
    Expr(&'a Expr),
    /// Printed as given, never broken (parameters, field types).
    Text(String),
}

pub(crate) struct Printer<'a> {
    src: &'a str,
    comments: Vec<Comment>,
    /// The first comment not printed yet.
    next: usize,
    /// Where the last printed code or comment ends in the source: blank lines
    /// are looked for between it and the next thing printed.
    last_end: usize,
}

fn ind(level: usize) -> String {
    INDENT.repeat(level)
}

/// Whether the text holds an empty line.
fn has_blank_line(gap: &str) -> bool {
    let mut lines = gap.split('\n');
    lines.next();
    let mut rest: Vec<&str> = lines.collect();
    // The last piece is the start of the next line, not a whole line.
    rest.pop();
    rest.iter().any(|l| l.trim().is_empty())
}

impl<'a> Printer<'a> {
    pub(crate) fn new(src: &'a str, comments: Vec<Comment>) -> Self {
        Printer {
            src,
            comments,
            next: 0,
            last_end: 0,
        }
    }

    fn text(&self, span: Span) -> &'a str {
        self.src.get(span.range()).unwrap_or("")
    }

    /// The comment that is printed next, if any starts before `pos`.
    fn pending_before(&self, pos: usize) -> Option<&Comment> {
        self.comments.get(self.next).filter(|c| c.start < pos)
    }

    /// Fails when a comment starts inside `span`: the caller prints that
    /// span on one line and has no place for it.
    fn forbid_comments(&self, span: Span) -> Result<(), Unplaced> {
        self.forbid_comments_in(span.start as usize, span.end as usize)
    }

    fn forbid_comments_in(&self, start: usize, end: usize) -> Result<(), Unplaced> {
        match self.comments.get(self.next) {
            Some(c) if c.start >= start && c.start < end => {
                Err(Unplaced(Span::new(Default::default(), c.start, c.end)))
            }
            _ => Ok(()),
        }
    }

    /// Whether `pos` is inside a comment.
    fn in_comment(&self, pos: usize) -> bool {
        self.comments.iter().any(|c| c.start <= pos && pos < c.end)
    }

    /// The first `needle` in `from..to` that is code, not comment.
    fn find_code(&self, from: usize, to: usize, needle: &str) -> Option<usize> {
        let hay = self.src.get(from..to)?;
        hay.match_indices(needle)
            .map(|(i, _)| from + i)
            .find(|&i| !self.in_comment(i))
    }

    /// The last `needle` in `from..to` that is code, not comment.
    fn rfind_code(&self, from: usize, to: usize, needle: char) -> Option<usize> {
        let hay = self.src.get(from..to)?;
        hay.rmatch_indices(needle)
            .map(|(i, _)| from + i)
            .find(|&i| !self.in_comment(i))
    }

    fn has_comments(&self, span: Span) -> bool {
        self.forbid_comments(span).is_err()
    }

    /// The comments before `pos`, each on its own line at `level`, and a
    /// blank line wherever the source has one (several collapse to one).
    /// `blank_first` is false right after an opening brace, where a blank
    /// line is never kept.
    fn leading(&mut self, pos: usize, level: usize, blank_first: bool) -> String {
        let mut out = String::new();
        let mut blank_ok = blank_first;
        while let Some(c) = self.pending_before(pos) {
            let (start, end, text) = (c.start, c.end, c.text.clone());
            if blank_ok && has_blank_line(self.src.get(self.last_end..start).unwrap_or("")) {
                out.push('\n');
            }
            out.push_str(&ind(level));
            out.push_str(&text);
            out.push('\n');
            self.next += 1;
            self.last_end = end;
            blank_ok = true;
        }
        if blank_ok
            && pos > self.last_end
            && has_blank_line(self.src.get(self.last_end..pos).unwrap_or(""))
        {
            out.push('\n');
        }
        self.last_end = self.last_end.max(pos);
        out
    }

    /// The comment that ends the source line of the code ending at `after`,
    /// with the space before it; empty if there is none.
    fn trailing(&mut self, after: usize) -> String {
        self.last_end = self.last_end.max(after);
        let Some(c) = self.comments.get(self.next) else {
            return String::new();
        };
        if c.own_line || c.start < after {
            return String::new();
        }
        let gap = self.src.get(after..c.start).unwrap_or("");
        if !gap
            .chars()
            .all(|ch| ch.is_whitespace() && ch != '\n' || ",(){}[]".contains(ch))
        {
            return String::new();
        }
        let out = format!(" {}", c.text);
        self.last_end = c.end;
        self.next += 1;
        out
    }

    /// Every comment printed: the final check that nothing was dropped.
    pub(crate) fn finish(&self) -> Result<(), Unplaced> {
        match self.comments.get(self.next) {
            Some(c) => Err(Unplaced(Span::new(Default::default(), c.start, c.end))),
            None => Ok(()),
        }
    }

    // -----------------------------------------------------------------------
    // Files and items
    // -----------------------------------------------------------------------

    pub(crate) fn module(&mut self, module: &Module) -> Out {
        let mut out = String::new();
        for (i, item) in module.items.iter().enumerate() {
            let start = item_span(item).start as usize;
            out.push_str(&self.leading(start, 0, i > 0));
            out.push_str(&match item {
                Item::Flow(flow) => self.flow(flow)?,
                Item::Declaration(decl) => self.declaration(decl)?,
                Item::Test(test) => self.test(test)?,
            });
        }
        // Comments after the last item.
        let end = self.src.len() + 1;
        out.push_str(&self.leading(end, 0, !module.items.is_empty()));
        while out.ends_with("\n\n") {
            out.pop();
        }
        Ok(out)
    }

    fn flow(&mut self, flow: &Flow) -> Out {
        self.forbid_comments_in(flow.span.start as usize, flow.name.span.end as usize)?;
        let mut out = format!("flow {}", flow.name.name);
        out.push_str(&self.trailing(flow.name.span.end as usize));
        out.push('\n');
        for handler in &flow.handlers {
            out.push_str(&self.leading(handler.span.start as usize, 0, true));
            self.forbid_comments_in(
                handler.span.start as usize,
                handler.body.span.start as usize,
            )?;
            out.push_str(&handler.header(self.src));
            out.push(' ');
            out.push_str(&self.block(&handler.body, 0)?);
            out.push_str(&self.trailing(handler.body.span.end as usize));
            out.push('\n');
        }
        Ok(out)
    }

    fn declaration(&mut self, decl: &Declaration) -> Out {
        let mut out = String::new();
        for attr in &decl.attributes {
            out.push_str(&self.leading(attr.span.start as usize, 0, true));
            self.forbid_comments(attr.span)?;
            out.push('@');
            out.push_str(&attr.name.name);
            if !attr.args.is_empty() || self.text(attr.span).contains('(') {
                let args: Vec<String> = attr
                    .args
                    .iter()
                    .map(|a| a.name.clone())
                    .chain(attr.options.iter().map(TypeArg::to_string))
                    .collect();
                out.push_str(&format!("({})", args.join(", ")));
            }
            out.push_str(&self.trailing(attr.span.end as usize));
            out.push('\n');
        }
        let name = decl.name();
        out.push_str(&self.leading(name.span.start as usize, 0, false));
        out.push_str(&format!("{} {}", decl.keyword(), name.name));
        match &decl.kind {
            DeclarationKind::Trigger { fields, .. } | DeclarationKind::Type { fields, .. } => {
                out.push(' ');
                out.push_str(&self.field_block(
                    fields,
                    name.span.end as usize,
                    decl.span.end as usize,
                    0,
                )?);
            }
            DeclarationKind::Action {
                params,
                returns,
                raises,
                ..
            } => {
                let mut elems = Vec::new();
                for p in params {
                    self.forbid_comments(p.span)?;
                    let mut text = format!("{}: {}", p.name.name, self.type_expr(&p.ty)?);
                    if let Some(default) = &p.default {
                        text.push_str(" = ");
                        text.push_str(&self.flat(default)?);
                    }
                    elems.push(Elem {
                        start: p.span.start as usize,
                        end: p.span.end as usize,
                        head: String::new(),
                        value: ElemValue::Text(text),
                    });
                }
                let close_at = returns
                    .as_ref()
                    .map(|r| r.span.start as usize)
                    .or_else(|| raises.first().map(|r| r.span.start as usize))
                    .unwrap_or(decl.span.end as usize);
                // The `)` is the last one before the return type or the end.
                let close = self
                    .rfind_code(name.span.end as usize, close_at, ')')
                    .unwrap_or(close_at);
                let col = out.len();
                let tail_text = {
                    let mut t = String::new();
                    if let Some(r) = returns {
                        t.push_str(" -> ");
                        t.push_str(&self.type_expr(r)?);
                    }
                    t
                };
                let args = self.bracketed(
                    List {
                        brackets: ("(", ")"),
                        open_at: name.span.end as usize,
                        close_at: close,
                        elems,
                    },
                    Place {
                        level: 0,
                        col,
                        tail: tail_text.len(),
                    },
                    Style::Lines,
                    false,
                )?;
                out.push_str(&args);
                self.forbid_comments_in(close, decl.span.end as usize)?;
                out.push_str(&tail_text);
                if !raises.is_empty() {
                    // A long list of kinds fills lines, continued one level in.
                    out.push_str(" raises");
                    let mut line_len = out.rsplit('\n').next().map_or(0, |l| l.chars().count());
                    for (i, kind) in raises.iter().enumerate() {
                        let piece = if i + 1 < raises.len() {
                            format!("{},", kind.name)
                        } else {
                            kind.name.clone()
                        };
                        if i > 0 && line_len + 1 + piece.len() > WIDTH {
                            out.push('\n');
                            out.push_str(INDENT);
                            line_len = INDENT.len();
                        } else {
                            out.push(' ');
                            line_len += 1;
                        }
                        out.push_str(&piece);
                        line_len += piece.len();
                    }
                }
                out.push_str(&self.trailing(decl.span.end as usize));
            }
            DeclarationKind::Error { .. } => {
                out.push_str(&self.trailing(decl.span.end as usize));
            }
        }
        out.push('\n');
        Ok(out)
    }

    /// `{` fields one per line `}` of a trigger or type (no commas, as the
    /// examples write them).
    fn field_block(
        &mut self,
        fields: &[FieldDecl],
        open_after: usize,
        end: usize,
        level: usize,
    ) -> Out {
        let inner_has_comment = self.pending_before(end).is_some();
        if fields.is_empty() && !inner_has_comment {
            let t = self.trailing(end);
            return Ok(format!("{{}}{t}"));
        }
        let mut out = String::from("{");
        out.push_str(&self.trailing(open_after + 1));
        out.push('\n');
        for (i, f) in fields.iter().enumerate() {
            out.push_str(&self.leading(f.span.start as usize, level + 1, i > 0));
            self.forbid_comments(f.span)?;
            out.push_str(&ind(level + 1));
            out.push_str(&format!("{}: {}", f.name.name, self.type_expr(&f.ty)?));
            if let Some(default) = &f.default {
                out.push_str(" = ");
                out.push_str(&self.flat(default)?);
            }
            out.push_str(&self.trailing(f.span.end as usize));
            out.push('\n');
        }
        out.push_str(&self.leading(end.saturating_sub(1), level + 1, false));
        out.push_str(&ind(level));
        out.push('}');
        self.last_end = self.last_end.max(end);
        out.push_str(&self.trailing(end));
        Ok(out)
    }

    fn type_expr(&self, ty: &TypeExpr) -> Out {
        self.forbid_comments(ty.span)?;
        let mut out = match &ty.kind {
            TypeExprKind::Named { name, args } => format!("{}{}", name.name, type_args(args)),
            TypeExprKind::List(inner, args) => {
                format!("[{}]{}", self.type_expr(inner)?, type_args(args))
            }
            TypeExprKind::Record(fields) if fields.is_empty() => "{}".to_string(),
            TypeExprKind::Record(fields) => {
                let fields = fields
                    .iter()
                    .map(|f| Ok(format!("{}: {}", f.name.name, self.type_expr(&f.ty)?)))
                    .collect::<Result<Vec<_>, Unplaced>>()?;
                format!("{{ {} }}", fields.join(", "))
            }
        };
        if ty.optional {
            out.push('?');
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------
    // Tests
    // -----------------------------------------------------------------------

    fn test(&mut self, test: &TestDef) -> Out {
        let given = &test.given;
        self.forbid_comments_in(test.span.start as usize, test.name_span.end as usize)?;
        let mut out = format!("test {} {{", self.text(test.name_span));
        out.push_str(&self.trailing(test.name_span.end as usize));
        out.push('\n');
        // given TRIGGER [at "..."] { fields }
        out.push_str(&self.leading(given.span.start as usize, 1, false));
        self.forbid_comments_in(given.span.start as usize, given.fields_span.start as usize)?;
        let mut head = format!("{}given {}", ind(1), given.trigger.name);
        if let Some(at) = &given.at {
            head.push_str(" at ");
            head.push_str(&self.flat(at)?);
        }
        head.push(' ');
        self.event_fields(&mut out, &head, given)?;

        for later in &test.then {
            out.push_str(&self.leading(later.span.start as usize, 1, true));
            match &later.kind {
                ThenKind::Event(event) => {
                    self.forbid_comments_in(
                        event.span.start as usize,
                        event.fields_span.start as usize,
                    )?;
                    let head = format!(
                        "{}then {} after {} ",
                        ind(1),
                        event.trigger.name,
                        self.text(later.after.1)
                    );
                    self.event_fields(&mut out, &head, event)?;
                }
                ThenKind::Restart => {
                    self.forbid_comments(later.span)?;
                    out.push_str(&format!(
                        "{}then restart after {}",
                        ind(1),
                        self.text(later.after.1)
                    ));
                    out.push_str(&self.trailing(later.span.end as usize));
                    out.push('\n');
                }
            }
        }

        for fact in &test.facts {
            out.push_str(&self.leading(fact.span.start as usize, 1, true));
            self.forbid_comments(fact.span)?;
            let line = match &fact.kind {
                TestFactKind::Inbound {
                    customer, sender, ..
                } => {
                    let rest = self
                        .src
                        .get(sender.span.end as usize..fact.span.end as usize)
                        .unwrap_or("");
                    let ago = rest.split_whitespace().next().unwrap_or("");
                    format!(
                        "with inbound from {} to {} {ago} ago",
                        self.flat(customer)?,
                        self.flat(sender)?
                    )
                }
                TestFactKind::SenderOffline(sender) => {
                    format!("with sender {} offline", self.flat(sender)?)
                }
                TestFactKind::HandedOver { customer, sender } => format!(
                    "with conversation {} to {} handed over",
                    self.flat(customer)?,
                    self.flat(sender)?
                ),
                TestFactKind::AiAnswer(answer) => format!("with ai answer {}", self.flat(answer)?),
                TestFactKind::Failure {
                    kind,
                    action,
                    call_span,
                    ..
                } => format!(
                    "with failure {} on {} call {}",
                    kind.name,
                    action.name,
                    self.text(*call_span)
                ),
            };
            out.push_str(&ind(1));
            out.push_str(&line);
            out.push_str(&self.trailing(fact.span.end as usize));
            out.push('\n');
        }

        // expect { ... }: the `expect` keyword is the last one before the
        // first expectation, or before the closing brace.
        let expect_end = test
            .expectations
            .first()
            .map(|e| e.span.start as usize)
            .or_else(|| test.outcome.as_ref().map(|o| o.span.start as usize))
            .unwrap_or(test.span.end as usize);
        let after_facts = test
            .facts
            .last()
            .map_or(given.span.end as usize, |f| f.span.end as usize);
        let expect_kw = self
            .find_code(after_facts, expect_end, "expect")
            .unwrap_or(after_facts);
        out.push_str(&self.leading(expect_kw, 1, true));
        self.forbid_comments_in(expect_kw, (expect_kw + "expect".len()).min(expect_end))?;
        out.push_str(&ind(1));
        out.push_str("expect {");
        let open = self
            .find_code(expect_kw, expect_end, "{")
            .map_or(expect_kw, |i| i + 1);
        out.push_str(&self.trailing(open));
        out.push('\n');
        for (i, e) in test.expectations.iter().enumerate() {
            out.push_str(&self.leading(e.span.start as usize, 2, i > 0));
            let mut head = ind(2);
            if let Some((_, span)) = e.after {
                self.forbid_comments_in(e.span.start as usize, e.call.span.start as usize)?;
                head.push_str(&format!("after {} ", self.text(span)));
            }
            let call = self.call(&e.call, 2, head.len(), 0, Style::Fill)?;
            out.push_str(&head);
            out.push_str(&call);
            out.push_str(&self.trailing(e.span.end as usize));
            out.push('\n');
        }
        if let Some(outcome) = &test.outcome {
            out.push_str(&self.leading(
                outcome.span.start as usize,
                2,
                !test.expectations.is_empty(),
            ));
            self.forbid_comments(outcome.span)?;
            out.push_str(&ind(2));
            out.push_str(&match &outcome.kind {
                TestOutcomeKind::Completes => "completes".to_string(),
                TestOutcomeKind::Stops => "stops".to_string(),
                TestOutcomeKind::NothingRuns => "nothing runs".to_string(),
                TestOutcomeKind::Fails(kind) => format!("fails {}", kind.name),
            });
            out.push_str(&self.trailing(outcome.span.end as usize));
            out.push('\n');
        }
        // The two closing braces: `expect`'s and the test's.
        let test_close = (test.span.end as usize).saturating_sub(1);
        let expect_close = self
            .rfind_code(expect_end, test_close, '}')
            .unwrap_or(test_close);
        out.push_str(&self.leading(expect_close, 2, false));
        out.push_str(&ind(1));
        out.push('}');
        out.push_str(&self.trailing(expect_close + 1));
        out.push('\n');
        out.push_str(&self.leading(test_close, 1, false));
        out.push('}');
        out.push_str(&self.trailing(test.span.end as usize));
        out.push('\n');
        Ok(out)
    }

    // -----------------------------------------------------------------------
    // Statements
    // -----------------------------------------------------------------------

    /// `{`, the statements one level deeper, `}` at `level`.
    fn block(&mut self, block: &Block, level: usize) -> Out {
        let (start, end) = (block.span.start as usize, block.span.end as usize);
        if block.stmts.is_empty() && self.pending_before(end).is_none() {
            self.last_end = self.last_end.max(end);
            return Ok("{}".to_string());
        }
        let mut out = String::from("{");
        out.push_str(&self.trailing(start + 1));
        out.push('\n');
        for (i, stmt) in block.stmts.iter().enumerate() {
            out.push_str(&self.stmt(stmt, level + 1, i > 0)?);
        }
        out.push_str(&self.leading(end.saturating_sub(1), level + 1, false));
        out.push_str(&ind(level));
        out.push('}');
        self.last_end = self.last_end.max(end);
        Ok(out)
    }

    /// One statement with its clauses, each line ending in a newline.
    fn stmt(&mut self, stmt: &Stmt, level: usize, blank_first: bool) -> Out {
        let mut out = self.leading(stmt.span.start as usize, level, blank_first);
        out.push_str(&ind(level));
        out.push_str(&self.stmt_body(stmt, level, level * INDENT.len())?);
        out.push('\n');
        out.push_str(&self.clauses(stmt, level + 1)?);
        Ok(out)
    }

    /// `retry` and `catch` clauses, one level deeper than their statement.
    fn clauses(&mut self, stmt: &Stmt, level: usize) -> Out {
        let mut out = String::new();
        if let Some(retry) = &stmt.retry {
            out.push_str(&self.leading(retry.span.start as usize, level, true));
            self.forbid_comments(retry.span)?;
            out.push_str(&ind(level));
            out.push_str(&format!(
                "retry {} times every {}",
                self.text(retry.times_span),
                self.text(retry.every_span)
            ));
            if let Some((_, span)) = retry.backoff {
                out.push_str(&format!(" backoff {}", self.text(span)));
            }
            out.push_str(&self.trailing(retry.span.end as usize));
            out.push('\n');
        }
        for catch in &stmt.catches {
            out.push_str(&self.leading(catch.span.start as usize, level, true));
            self.forbid_comments_in(catch.span.start as usize, catch.body.span.start as usize)?;
            out.push_str(&ind(level));
            out.push_str("catch ");
            if !catch.kinds.is_empty() {
                let kinds: Vec<&str> = catch.kinds.iter().map(|k| k.name.as_str()).collect();
                out.push_str(&kinds.join(" | "));
                out.push(' ');
            }
            out.push_str(&catch.binding.name);
            out.push(' ');
            out.push_str(&self.block(&catch.body, level)?);
            out.push_str(&self.trailing(catch.body.span.end as usize));
            out.push('\n');
        }
        Ok(out)
    }

    /// The statement without clauses, starting at column `col`, with its
    /// trailing comment; no final newline.
    fn stmt_body(&mut self, stmt: &Stmt, level: usize, col: usize) -> Out {
        let span = stmt.span;
        let mut out = String::new();
        match &stmt.kind {
            StmtKind::Let { name, value } => {
                self.forbid_comments_in(span.start as usize, value.span.start as usize)?;
                let head = format!("let {} = ", name.name);
                let value = self.expr(value, level, col + head.len(), 0, Style::Lines)?;
                out.push_str(&head);
                out.push_str(&value);
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                let mut prev_end = span.start as usize;
                for (i, (cond, block)) in branches.iter().enumerate() {
                    self.forbid_comments_in(prev_end, cond.span.start as usize)?;
                    self.forbid_comments_in(cond.span.end as usize, block.span.start as usize)?;
                    out.push_str(if i == 0 { "if " } else { " else if " });
                    out.push_str(&self.flat(cond)?);
                    out.push(' ');
                    out.push_str(&self.block(block, level)?);
                    prev_end = block.span.end as usize;
                }
                if let Some(block) = otherwise {
                    self.forbid_comments_in(prev_end, block.span.start as usize)?;
                    out.push_str(" else ");
                    out.push_str(&self.block(block, level)?);
                }
            }
            StmtKind::Branch { scrutinee, arms } => {
                self.forbid_comments_in(span.start as usize, scrutinee.span.end as usize)?;
                out.push_str("branch ");
                out.push_str(&self.flat(scrutinee)?);
                out.push_str(" {");
                let open = self
                    .find_code(scrutinee.span.end as usize, span.end as usize, "{")
                    .unwrap_or(scrutinee.span.end as usize);
                out.push_str(&self.trailing(open + 1));
                out.push('\n');
                for (i, arm) in arms.iter().enumerate() {
                    out.push_str(&self.leading(arm.span.start as usize, level + 1, i > 0));
                    out.push_str(&ind(level + 1));
                    out.push_str(&self.arm(arm, level + 1)?);
                }
                let close = (span.end as usize).saturating_sub(1);
                out.push_str(&self.leading(close, level + 1, false));
                out.push_str(&ind(level));
                out.push('}');
                self.last_end = self.last_end.max(span.end as usize);
            }
            StmtKind::Delay(e) => {
                self.forbid_comments(span)?;
                out.push_str("delay ");
                out.push_str(&self.flat(e)?);
            }
            StmtKind::DelayUntil(e) => {
                self.forbid_comments(span)?;
                out.push_str("delay until ");
                out.push_str(&self.flat(e)?);
            }
            StmtKind::Stop => out.push_str("stop"),
            StmtKind::Fail(e) => {
                self.forbid_comments(span)?;
                out.push_str("fail ");
                out.push_str(&self.flat(e)?);
            }
            StmtKind::Call(call) => {
                out.push_str(&self.call(call, level, col, 0, Style::Lines)?);
            }
            StmtKind::Wait(wait) => {
                self.forbid_comments_in(span.start as usize, wait.otherwise.span.start as usize)?;
                if let Some(name) = &wait.binding {
                    out.push_str("let ");
                    out.push_str(&name.name);
                    out.push_str(" = ");
                }
                out.push_str("wait for ");
                out.push_str(&wait.trigger.name);
                out.push_str(" from ");
                out.push_str(&self.flat(&wait.key)?);
                out.push_str(" within ");
                out.push_str(&self.flat(&wait.within)?);
                out.push_str(" else ");
                out.push_str(&self.block(&wait.otherwise, level)?);
            }
        }
        out.push_str(&self.trailing(span.end as usize));
        Ok(out)
    }

    /// `PATTERNS => BODY` and the body's clauses, ending in a newline.
    fn arm(&mut self, arm: &Arm, level: usize) -> Out {
        let mut patterns = Vec::new();
        for p in &arm.patterns {
            self.forbid_comments(p.span)?;
            patterns.push(match &p.kind {
                PatternKind::Wildcard => "_".to_string(),
                PatternKind::Literal(e) => self.flat(e)?,
                PatternKind::Regex(_) => keyword_and_literal(self.text(p.span), "matches"),
                PatternKind::Contains(_) => keyword_and_literal(self.text(p.span), "contains"),
            });
        }
        let last_pattern = arm
            .patterns
            .last()
            .map_or(arm.span.start as usize, |p| p.span.end as usize);
        self.forbid_comments_in(last_pattern, arm.body.span.start as usize)?;
        let head = format!("{} => ", patterns.join(" | "));
        let mut out = head.clone();
        let written_as_block = self.src.as_bytes().get(arm.body.span.start as usize) == Some(&b'{');
        match (&arm.body.stmts[..], written_as_block) {
            ([stmt], false) => {
                out.push_str(&self.stmt_body(stmt, level, level * INDENT.len() + head.len())?);
                out.push('\n');
                out.push_str(&self.clauses(stmt, level + 1)?);
            }
            _ => {
                out.push_str(&self.block(&arm.body, level)?);
                out.push_str(&self.trailing(arm.body.span.end as usize));
                out.push('\n');
            }
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------
    // Expressions
    // -----------------------------------------------------------------------

    /// The `key: value` fields of a record, as elements of a bracketed list.
    /// An event's `{ field: value, ... }` after its `head` (`given ...` or
    /// `then ...`), broken like a record when it does not fit, then its
    /// trailing comment and a line break.
    fn event_fields(
        &mut self,
        out: &mut String,
        head: &str,
        event: &Given,
    ) -> Result<(), Unplaced> {
        out.push_str(head);
        let elems = self.record_elems(&event.fields);
        let record = self.bracketed(
            List {
                brackets: ("{", "}"),
                open_at: event.fields_span.start as usize,
                close_at: (event.fields_span.end as usize).saturating_sub(1),
                elems,
            },
            Place {
                level: 1,
                col: head.len(),
                tail: 0,
            },
            Style::Fill,
            true,
        )?;
        out.push_str(&record);
        out.push_str(&self.trailing(event.fields_span.end as usize));
        out.push('\n');
        Ok(())
    }

    fn record_elems<'e>(&self, fields: &'e [(Ident, Expr)]) -> Vec<Elem<'e>> {
        fields
            .iter()
            .map(|(key, value)| Elem {
                start: key.span.start as usize,
                end: value.span.end as usize,
                head: format!("{}: ", self.text(key.span)),
                value: ElemValue::Expr(value),
            })
            .collect()
    }

    /// A list or record literal `e`, broken over lines when it does not fit.
    fn literal_collection(
        &mut self,
        e: &Expr,
        brackets: (&'static str, &'static str),
        elems: Vec<Elem<'_>>,
        place: Place,
        style: Style,
    ) -> Out {
        let list = List {
            brackets,
            open_at: e.span.start as usize,
            close_at: (e.span.end as usize).saturating_sub(1),
            elems,
        };
        self.bracketed(list, place, style, false)
    }

    /// An expression starting at column `col` with `tail` more characters
    /// after it on its line. Calls, lists and records may break over lines;
    /// everything else is printed on one line.
    fn expr(&mut self, e: &Expr, level: usize, col: usize, tail: usize, style: Style) -> Out {
        if parenthesized(self.src, e) {
            return self.flat(e);
        }
        match &e.kind {
            ExprKind::Call(call) => self.call(call, level, col, tail, style),
            ExprKind::List(items) => {
                let elems = items
                    .iter()
                    .map(|item| Elem {
                        start: item.span.start as usize,
                        end: item.span.end as usize,
                        head: String::new(),
                        value: ElemValue::Expr(item),
                    })
                    .collect();
                self.literal_collection(e, ("[", "]"), elems, Place { level, col, tail }, style)
            }
            ExprKind::Record(fields) => {
                let elems = self.record_elems(fields);
                self.literal_collection(e, ("{", "}"), elems, Place { level, col, tail }, style)
            }
            _ => self.flat(e),
        }
    }

    fn call(&mut self, call: &Call, level: usize, col: usize, tail: usize, style: Style) -> Out {
        let elems = call
            .args
            .iter()
            .map(|arg| Elem {
                start: arg
                    .name
                    .as_ref()
                    .map_or(arg.value.span.start, |n| n.span.start) as usize,
                end: arg.value.span.end as usize,
                head: arg
                    .name
                    .as_ref()
                    .map_or(String::new(), |n| format!("{}: ", n.name)),
                value: ElemValue::Expr(&arg.value),
            })
            .collect();
        self.forbid_comments_in(call.span.start as usize, call.name.span.end as usize)?;
        let close = (call.span.end as usize).saturating_sub(1);
        let out = self.bracketed(
            List {
                brackets: ("(", ")"),
                open_at: call.name.span.end as usize,
                close_at: close,
                elems,
            },
            Place {
                level,
                col: col + call.name.name.len(),
                tail,
            },
            style,
            false,
        )?;
        Ok(format!("{}{out}", call.name.name))
    }

    /// A bracketed, comma-separated list: on one line when it fits (or is
    /// not worth breaking: at most two elements, none of them breakable),
    /// else broken in `style`. `always_break` puts even a short list on its
    /// own lines.
    fn bracketed(&mut self, list: List<'_>, at: Place, style: Style, always_break: bool) -> Out {
        let List {
            brackets: (open, close_text),
            open_at,
            close_at: close,
            elems,
        } = list;
        let Place { level, col, tail } = at;
        let span = Span::new(Default::default(), open_at, close + 1);
        let commented = self.has_comments(span);
        if elems.is_empty() && !commented {
            self.last_end = self.last_end.max(close + 1);
            return Ok(format!("{open}{close_text}"));
        }
        if !commented && !always_break {
            let flat = self.flat_elems(&elems)?;
            let (l, r) = if open == "{" {
                ("{ ", " }")
            } else {
                (open, close_text)
            };
            let line = format!("{l}{}{r}", flat.join(", "));
            let breakable = elems.len() > 2
                || elems
                    .iter()
                    .any(|el| matches!(el.value, ElemValue::Expr(e) if breakable(e)));
            if col + line.chars().count() + tail <= WIDTH || !breakable {
                self.last_end = self.last_end.max(close + 1);
                return Ok(line);
            }
        }
        let mut out = String::from(open);
        let first = elems.first().map_or(close, |el| el.start);
        // A comment on the opening bracket's line stays there.
        if self.pending_before(first).is_some() {
            out.push_str(&self.trailing(open_at));
        }
        out.push('\n');
        let inner = ind(level + 1);
        match style {
            Style::Lines => {
                for (i, el) in elems.iter().enumerate() {
                    out.push_str(&self.leading(el.start, level + 1, i > 0));
                    let value = match &el.value {
                        ElemValue::Expr(e) => {
                            self.forbid_comments_in(el.start, e.span.start as usize)?;
                            self.expr(e, level + 1, inner.len() + el.head.len(), 1, Style::Lines)?
                        }
                        ElemValue::Text(t) => t.clone(),
                    };
                    out.push_str(&inner);
                    out.push_str(&el.head);
                    out.push_str(&value);
                    out.push(',');
                    out.push_str(&self.trailing(el.end));
                    out.push('\n');
                }
            }
            Style::Fill => {
                let mut line = String::new();
                for (i, el) in elems.iter().enumerate() {
                    let lead = self.leading(el.start, level + 1, i > 0);
                    if !lead.is_empty() && !line.is_empty() {
                        out.push_str(&line);
                        out.push('\n');
                        line.clear();
                    }
                    out.push_str(&lead);
                    self.forbid_comments_in(el.start, el.end)?;
                    let piece = format!("{}{},", el.head, self.flat_value(&el.value)?);
                    if line.is_empty() {
                        line = format!("{inner}{piece}");
                    } else if line.chars().count() + 1 + piece.chars().count() <= WIDTH {
                        line.push(' ');
                        line.push_str(&piece);
                    } else {
                        out.push_str(&line);
                        out.push('\n');
                        line = format!("{inner}{piece}");
                    }
                    let comment = self.trailing(el.end);
                    if !comment.is_empty() {
                        line.push_str(&comment);
                        out.push_str(&line);
                        out.push('\n');
                        line.clear();
                    }
                }
                if !line.is_empty() {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        }
        out.push_str(&self.leading(close, level + 1, false));
        out.push_str(&ind(level));
        out.push_str(close_text);
        self.last_end = self.last_end.max(close + 1);
        Ok(out)
    }

    fn flat_elems(&self, elems: &[Elem<'_>]) -> Result<Vec<String>, Unplaced> {
        elems
            .iter()
            .map(|el| Ok(format!("{}{}", el.head, self.flat_value(&el.value)?)))
            .collect()
    }

    fn flat_value(&self, value: &ElemValue<'_>) -> Out {
        match value {
            ElemValue::Expr(e) => self.flat(e),
            ElemValue::Text(t) => Ok(t.clone()),
        }
    }

    /// An expression on one line. Parentheses are kept where they were
    /// written; the tree keeps precedence, so none are ever needed elsewhere.
    fn flat(&self, e: &Expr) -> Out {
        self.forbid_comments(e.span)?;
        let paren = parenthesized(self.src, e);
        let inner = match &e.kind {
            ExprKind::Str(_)
            | ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::None
            | ExprKind::Duration(_)
            | ExprKind::Var(_)
            | ExprKind::Invalid => {
                let text = self.text(e.span);
                if paren {
                    return Ok(format!("({})", strip_parens(text)));
                }
                text.to_string()
            }
            ExprKind::List(items) => {
                let items = items
                    .iter()
                    .map(|i| self.flat(i))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("[{}]", items.join(", "))
            }
            ExprKind::Record(fields) if fields.is_empty() => "{}".to_string(),
            ExprKind::Record(fields) => {
                let fields = fields
                    .iter()
                    .map(|(k, v)| Ok(format!("{}: {}", self.text(k.span), self.flat(v)?)))
                    .collect::<Result<Vec<_>, Unplaced>>()?;
                format!("{{ {} }}", fields.join(", "))
            }
            ExprKind::Field(base, field) => format!("{}.{}", self.flat(base)?, field.name),
            ExprKind::Call(call) => {
                let args = call
                    .args
                    .iter()
                    .map(|a| {
                        let value = self.flat(&a.value)?;
                        Ok(match &a.name {
                            Some(n) => format!("{}: {value}", n.name),
                            None => value,
                        })
                    })
                    .collect::<Result<Vec<_>, Unplaced>>()?;
                format!("{}({})", call.name.name, args.join(", "))
            }
            ExprKind::Unary(op, operand) => {
                let operand = self.flat(operand)?;
                match op {
                    UnaryOp::Not => format!("not {operand}"),
                    // `- -x` keeps its space: `--x` reads like a typo.
                    UnaryOp::Neg if operand.starts_with('-') => format!("- {operand}"),
                    UnaryOp::Neg => format!("-{operand}"),
                }
            }
            ExprKind::Binary(op, l, r) => {
                format!("{} {} {}", self.flat(l)?, op.symbol(), self.flat(r)?)
            }
        };
        Ok(if paren { format!("({inner})") } else { inner })
    }
}

/// `matches /re/` or `contains "text"` with one space, the literal as written.
fn keyword_and_literal(text: &str, keyword: &str) -> String {
    let literal = text.strip_prefix(keyword).unwrap_or(text).trim_start();
    format!("{keyword} {literal}")
}

/// The text inside one pair of written parentheses.
fn strip_parens(text: &str) -> &str {
    text.strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .map_or(text, str::trim)
}

/// Whether the expression was written in parentheses: the parser keeps only
/// the span of a parenthesised expression, which then starts before its
/// first operand.
fn parenthesized(src: &str, e: &Expr) -> bool {
    let start = e.span.start;
    match &e.kind {
        ExprKind::Binary(_, l, _) => start < l.span.start,
        ExprKind::Field(base, _) => start < base.span.start,
        _ => src.as_bytes().get(start as usize) == Some(&b'('),
    }
}

/// Calls, lists and records with more than two elements, or holding one
/// that is: breaking them over lines helps; breaking a call with one long
/// string does not.
fn breakable(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Call(call) => {
            call.args.len() > 2 || call.args.iter().any(|a| breakable(&a.value))
        }
        ExprKind::List(items) => items.len() > 2 || items.iter().any(breakable),
        ExprKind::Record(fields) => fields.len() > 2 || fields.iter().any(|(_, v)| breakable(v)),
        _ => false,
    }
}

fn item_span(item: &Item) -> Span {
    match item {
        Item::Flow(f) => f.span,
        Item::Declaration(d) => d.span,
        Item::Test(t) => t.span,
    }
}

/// `(max: 3, unique: id)` of a type, or nothing.
fn type_args(args: &[TypeArg]) -> String {
    if args.is_empty() {
        return String::new();
    }
    let args: Vec<String> = args.iter().map(TypeArg::to_string).collect();
    format!("({})", args.join(", "))
}
