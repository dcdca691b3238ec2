//! Renders a [`Graph`] as Graphviz dot (`dot -Tsvg`), one cluster per flow.
//!
//! Labels are double-quoted dot strings: `\` and `"` are escaped and line
//! breaks become `\n`; braces and angle brackets need nothing in a quoted
//! (non-record, non-HTML) label.

use super::{Graph, NodeKind};

/// The dot source for the graph.
///
/// ```
/// use flowc::graph::{dot, from_source};
///
/// let graph = from_source("flow f\non call.ended as call {\n    stop\n}\n").unwrap();
/// let text = dot::render(&graph);
/// assert!(text.starts_with("digraph flows {"));
/// assert!(text.contains("f0n0 -> f0n1;"));
/// ```
pub fn render(graph: &Graph) -> String {
    let mut out = String::from(
        "digraph flows {\n    node [fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\"];\n",
    );
    for (f, flow) in graph.flows.iter().enumerate() {
        out.push_str(&format!("    subgraph cluster_{f} {{\n"));
        out.push_str(&format!(
            "        label=\"{}\";\n",
            escape(&format!("flow {}", flow.name))
        ));
        for (n, node) in flow.nodes.iter().enumerate() {
            let shape = match node.kind {
                NodeKind::Trigger => "shape=oval",
                NodeKind::Action => "shape=box",
                NodeKind::Let => "shape=box, style=rounded",
                NodeKind::Delay => "shape=hexagon",
                NodeKind::Decision => "shape=diamond",
                NodeKind::Stop | NodeKind::End => "shape=doublecircle",
                NodeKind::Fail => "shape=octagon",
            };
            out.push_str(&format!(
                "        f{f}n{n} [label=\"{}\", {shape}];\n",
                escape(&node.label)
            ));
        }
        out.push_str("    }\n");
        for edge in &flow.edges {
            let mut attrs = Vec::new();
            if let Some(label) = &edge.label {
                attrs.push(format!("label=\"{}\"", escape(label)));
            }
            if edge.error {
                attrs.push("style=dashed, color=red".to_string());
            }
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attrs.join(", "))
            };
            out.push_str(&format!(
                "    f{f}n{} -> f{f}n{}{attrs};\n",
                edge.from, edge.to
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// A label's text, safe inside dot's double quotes.
///
/// ```
/// use flowc::graph::dot::escape;
///
/// assert_eq!(escape("say \"hi\" {x} <b>\\n\nnext"), "say \\\"hi\\\" {x} <b>\\\\n\\nnext");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}
