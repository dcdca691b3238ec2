//! Pictures of flows: what `flowc graph` draws.
//!
//! [`build`] turns the flows of a parsed file into a [`Graph`]: one
//! [`FlowGraph`] per flow, whose nodes are the triggers, the steps (action
//! calls with their key arguments, `let`s, delays with their durations),
//! the decisions (`if`, `branch`) with their arm labels on the edges, and
//! the endings; error edges show where `retry` tries again and where a
//! `catch` takes over. [`mermaid`] and [`dot`] render the model.
//!
//! ```
//! use flowc::graph;
//!
//! let text = r#"
//! flow follow_up
//! on call.ended as call {
//!     delay 10m
//!     whatsapp.send_template(sender: "office", template: "missed_you", to: call.customer_phone)
//!         retry 1 times every 1m
//! }
//! "#;
//! let graph = graph::from_source(text).unwrap();
//! let chart = graph::mermaid::render(&graph);
//! assert!(chart.starts_with("flowchart TD"));
//! assert!(chart.contains("delay 10m"));
//! assert!(chart.contains("template: #quot;missed_you#quot;"));
//! ```

pub mod dot;
pub mod mermaid;

use crate::diag::Diagnostics;
use crate::source::{FileId, Span};
use crate::syntax::{self, ast::*};

/// The flows of one file, as pictures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// One graph per flow, in source order.
    pub flows: Vec<FlowGraph>,
}

/// The picture of one flow: all its `on` blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowGraph {
    /// The flow's name.
    pub name: String,
    /// The nodes; a node's id is its index here.
    pub nodes: Vec<Node>,
    /// The edges, in the order they were found.
    pub edges: Vec<Edge>,
}

/// One box of the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it stands for, which decides its shape.
    pub kind: NodeKind,
    /// The text shown; lines are separated by `\n`.
    pub label: String,
}

/// The kinds of node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `on TRIGGER as NAME`: where a run starts.
    Trigger,
    /// An action call.
    Action,
    /// `let` of a value that is not an action's result.
    Let,
    /// `delay` or `delay until`.
    Delay,
    /// `if` or `branch`.
    Decision,
    /// `stop`.
    Stop,
    /// `fail`.
    Fail,
    /// The end of the `on` block: the run completes.
    End,
}

/// One arrow.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// The node it leaves (an index into [`FlowGraph::nodes`]).
    pub from: usize,
    /// The node it enters.
    pub to: usize,
    /// The condition or arm it stands for, if any.
    pub label: Option<String>,
    /// Whether it is taken on an error (`retry`, `catch`).
    pub error: bool,
}

/// Why a text could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The text does not parse. The spans point into the text as file
    /// [`FileId`]`(0)`.
    #[error("the text does not parse ({})", .0.errors_in_words("syntax"))]
    Syntax(Diagnostics),
}

/// Parses one `.flow` text and builds the picture of its flows.
///
/// ```
/// use flowc::graph::{from_source, GraphError};
///
/// assert!(matches!(from_source("flow {"), Err(GraphError::Syntax(_))));
/// assert!(from_source("error Busy\n").unwrap().flows.is_empty());
/// ```
pub fn from_source(text: &str) -> Result<Graph, GraphError> {
    let (module, diagnostics) = syntax::parse(FileId(0), text);
    if diagnostics.has_errors() {
        return Err(GraphError::Syntax(diagnostics));
    }
    Ok(build(&module, text))
}

/// Builds the picture of the flows in `module`, parsed from `src` (labels
/// quote expressions as written).
///
/// ```
/// use flowc::graph::{build, NodeKind};
/// use flowc::source::FileId;
///
/// let text = "flow f\non call.ended as call {\n    if call.duration < 1m { stop }\n    log(\"long call\")\n}\n";
/// let (module, _) = flowc::syntax::parse(FileId(0), text);
/// let graph = build(&module, text);
/// let kinds: Vec<NodeKind> = graph.flows[0].nodes.iter().map(|n| n.kind).collect();
/// assert_eq!(
///     kinds,
///     [NodeKind::Trigger, NodeKind::Decision, NodeKind::Stop, NodeKind::Action, NodeKind::End]
/// );
/// ```
pub fn build(module: &Module, src: &str) -> Graph {
    let flows = module
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Flow(flow) => Some(flow),
            _ => None,
        })
        .map(|flow| {
            let mut builder = Builder {
                src,
                nodes: Vec::new(),
                edges: Vec::new(),
            };
            for handler in &flow.handlers {
                let trigger = builder.node(NodeKind::Trigger, handler.header(builder.src));
                let ends = builder.block(&handler.body, vec![Open::plain(trigger)]);
                if !ends.is_empty() {
                    // Capitalised: a bare lowercase `end` closes a Mermaid subgraph.
                    let end = builder.node(NodeKind::End, "End".to_string());
                    builder.connect(ends, end);
                }
            }
            FlowGraph {
                name: flow.name.name.clone(),
                nodes: builder.nodes,
                edges: builder.edges,
            }
        })
        .collect();
    Graph { flows }
}

/// The arguments worth showing on an action's box, by parameter name.
const KEY_ARGS: &[&str] = &[
    "template",
    "to",
    "sender",
    "assistant",
    "channel",
    "customer",
    "link",
    "file",
    "media_id",
];
/// Longest quoted expression in a label.
const MAX_QUOTE: usize = 60;

/// An edge waiting for the node that comes next.
struct Open {
    from: usize,
    label: Option<String>,
    error: bool,
}

impl Open {
    fn plain(from: usize) -> Open {
        Open {
            from,
            label: None,
            error: false,
        }
    }

    fn labelled(from: usize, label: String) -> Open {
        Open {
            from,
            label: Some(label),
            error: false,
        }
    }
}

struct Builder<'a> {
    src: &'a str,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl Builder<'_> {
    fn node(&mut self, kind: NodeKind, label: String) -> usize {
        self.nodes.push(Node { kind, label });
        self.nodes.len() - 1
    }

    fn connect(&mut self, ends: Vec<Open>, to: usize) {
        for open in ends {
            self.edges.push(Edge {
                from: open.from,
                to,
                label: open.label,
                error: open.error,
            });
        }
    }

    /// An expression as written, on one line and cut to a readable length.
    fn quote(&self, span: Span) -> String {
        let text = self.src.get(span.range()).unwrap_or("");
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.chars().count() > MAX_QUOTE {
            let cut: String = line.chars().take(MAX_QUOTE - 1).collect();
            format!("{cut}…")
        } else {
            line
        }
    }

    fn call_label(&self, call: &Call) -> String {
        let mut lines = vec![call.name.name.clone()];
        for (i, arg) in call.args.iter().enumerate() {
            match &arg.name {
                Some(name) if KEY_ARGS.contains(&name.name.as_str()) => {
                    lines.push(format!("{}: {}", name.name, self.quote(arg.value.span)));
                }
                // The first positional argument is what the call is about
                // (the channel of `notify`, the message of `log`).
                None if i == 0 => lines.push(self.quote(arg.value.span)),
                _ => {}
            }
        }
        lines.join("\n")
    }

    /// Adds the statements after the open edges; returns the edges that
    /// leave the block (none when every path stops).
    fn block(&mut self, block: &Block, mut ends: Vec<Open>) -> Vec<Open> {
        for stmt in &block.stmts {
            ends = self.stmt(stmt, ends);
        }
        ends
    }

    fn stmt(&mut self, stmt: &Stmt, ends: Vec<Open>) -> Vec<Open> {
        let simple = |b: &mut Self, kind, label: String, ends: Vec<Open>| {
            let n = b.node(kind, label);
            b.connect(ends, n);
            n
        };
        let (entry, mut out) = match &stmt.kind {
            StmtKind::Call(call) => {
                let n = simple(self, NodeKind::Action, self.call_label(call), ends);
                (n, vec![Open::plain(n)])
            }
            StmtKind::Let { name, value } => {
                let (kind, label) = match &value.kind {
                    ExprKind::Call(call) => (
                        NodeKind::Action,
                        format!("let {} = {}", name.name, self.call_label(call)),
                    ),
                    _ => (
                        NodeKind::Let,
                        format!("let {} = {}", name.name, self.quote(value.span)),
                    ),
                };
                let n = simple(self, kind, label, ends);
                (n, vec![Open::plain(n)])
            }
            StmtKind::Delay(e) => {
                let n = simple(
                    self,
                    NodeKind::Delay,
                    format!("delay {}", self.quote(e.span)),
                    ends,
                );
                (n, vec![Open::plain(n)])
            }
            StmtKind::DelayUntil(e) => {
                let label = format!("delay until {}", self.quote(e.span));
                let n = simple(self, NodeKind::Delay, label, ends);
                (n, vec![Open::plain(n)])
            }
            StmtKind::Stop => (
                simple(self, NodeKind::Stop, "stop".into(), ends),
                Vec::new(),
            ),
            StmtKind::Fail(e) => {
                let label = format!("fail {}", self.quote(e.span));
                (simple(self, NodeKind::Fail, label, ends), Vec::new())
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                let mut pending = ends;
                let mut out = Vec::new();
                let mut entry = None;
                for (cond, block) in branches {
                    let d = simple(
                        self,
                        NodeKind::Decision,
                        format!("if {}", self.quote(cond.span)),
                        pending,
                    );
                    entry.get_or_insert(d);
                    out.extend(self.block(block, vec![Open::labelled(d, "yes".into())]));
                    pending = vec![Open::labelled(d, "no".into())];
                }
                match otherwise {
                    Some(block) => out.extend(self.block(block, pending)),
                    None => out.extend(pending),
                }
                (entry.unwrap_or_default(), out)
            }
            StmtKind::Branch { scrutinee, arms } => {
                let label = format!("branch {}", self.quote(scrutinee.span));
                let d = simple(self, NodeKind::Decision, label, ends);
                let mut out = Vec::new();
                for arm in arms {
                    let patterns: Vec<String> =
                        arm.patterns.iter().map(|p| self.quote(p.span)).collect();
                    let open = Open::labelled(d, patterns.join(" | "));
                    out.extend(self.block(&arm.body, vec![open]));
                }
                let exhaustive = arms
                    .iter()
                    .flat_map(|a| &a.patterns)
                    .any(|p| p.kind == PatternKind::Wildcard);
                if !exhaustive {
                    out.push(Open::labelled(d, "no match".into()));
                }
                (d, out)
            }
            StmtKind::Wait(wait) => {
                // Drawn as a wait (the delay's shape): a "reply" edge goes
                // on, a "timeout" edge enters the else block.
                let mut label = String::new();
                if let Some(name) = &wait.binding {
                    label.push_str(&format!("let {} = ", name.name));
                }
                label.push_str(&format!(
                    "wait for {} from {} within {}",
                    wait.trigger.name,
                    self.quote(wait.key.span),
                    self.quote(wait.within.span)
                ));
                let n = simple(self, NodeKind::Delay, label, ends);
                let mut out = vec![Open::labelled(n, "reply".into())];
                out.extend(self.block(&wait.otherwise, vec![Open::labelled(n, "timeout".into())]));
                (n, out)
            }
        };
        if let Some(retry) = &stmt.retry {
            let mut label = format!(
                "error: retry {} times every {}",
                retry.times,
                self.quote(retry.every_span)
            );
            if let Some((_, span)) = retry.backoff {
                label.push_str(&format!(" backoff {}", self.quote(span)));
            }
            self.edges.push(Edge {
                from: entry,
                to: entry,
                label: Some(label),
                error: true,
            });
        }
        for catch in &stmt.catches {
            let mut label = String::from("error: catch ");
            if !catch.kinds.is_empty() {
                let kinds: Vec<&str> = catch.kinds.iter().map(|k| k.name.as_str()).collect();
                label.push_str(&kinds.join(" | "));
                label.push(' ');
            }
            label.push_str(&catch.binding.name);
            let open = Open {
                from: entry,
                label: Some(label),
                error: true,
            };
            out.extend(self.block(&catch.body, vec![open]));
        }
        out
    }
}
