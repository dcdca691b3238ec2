//! Renders a [`Graph`] as a Mermaid `flowchart TD`, one subgraph per flow.
//!
//! Labels are always quoted; inside them Mermaid reads `#name;` entities
//! and HTML, so `"`, `#`, `&`, `<`, `>` and backticks are written as
//! entities and line breaks as `<br/>`.

use super::{Graph, NodeKind};

/// The Mermaid source for the graph.
///
/// ```
/// use flowc::graph::{from_source, mermaid};
///
/// let graph = from_source("flow f\non call.ended as call {\n    stop\n}\n").unwrap();
/// assert_eq!(
///     mermaid::render(&graph),
///     "flowchart TD\n    subgraph f0[\"flow f\"]\n        f0n0([\"on call.ended as call\"])\n        \
///      f0n1(((\"stop\")))\n    end\n    f0n0 --> f0n1\n"
/// );
/// ```
pub fn render(graph: &Graph) -> String {
    let mut out = String::from("flowchart TD\n");
    for (f, flow) in graph.flows.iter().enumerate() {
        out.push_str(&format!(
            "    subgraph f{f}[\"{}\"]\n",
            escape(&format!("flow {}", flow.name))
        ));
        for (n, node) in flow.nodes.iter().enumerate() {
            let label = escape(&node.label);
            let (open, close) = match node.kind {
                NodeKind::Trigger => ("([", "])"),
                NodeKind::Action => ("[", "]"),
                NodeKind::Let => ("(", ")"),
                NodeKind::Delay => ("{{", "}}"),
                NodeKind::Decision => ("{", "}"),
                NodeKind::Stop | NodeKind::End => ("(((", ")))"),
                NodeKind::Fail => ("[[", "]]"),
            };
            out.push_str(&format!("        f{f}n{n}{open}\"{label}\"{close}\n"));
        }
        out.push_str("    end\n");
        for edge in &flow.edges {
            let arrow = if edge.error { "-.->" } else { "-->" };
            match &edge.label {
                Some(label) => out.push_str(&format!(
                    "    f{f}n{} {arrow}|\"{}\"| f{f}n{}\n",
                    edge.from,
                    escape(label),
                    edge.to
                )),
                None => out.push_str(&format!(
                    "    f{f}n{} {arrow} f{f}n{}\n",
                    edge.from, edge.to
                )),
            }
        }
    }
    out
}

/// A label's text, safe inside Mermaid's double quotes.
///
/// ```
/// use flowc::graph::mermaid::escape;
///
/// assert_eq!(escape("say \"hi\" <b> #1\nnext"), "say #quot;hi#quot; &lt;b&gt; #35;1<br/>next");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '`' => out.push_str("#96;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}
