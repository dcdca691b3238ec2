//! `flowc graph`: draw the flows of one file as a Mermaid flowchart (the
//! default, which GitHub renders in Markdown) or a Graphviz dot graph.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use flowc::check::Checked;
use flowc::graph::{self, GraphError};
use flowc::source::SourceMap;

use crate::check::{print_diagnostics, usage_error, Format};

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The diagram language to write.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    format: GraphFormat,
    /// The .flow file to draw.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid `flowchart TD`.
    Mermaid,
    /// A Graphviz `digraph`, for `dot -Tsvg`.
    Dot,
}

pub fn run(args: GraphArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(error) => return usage_error(&format!("cannot read {}: {error}", args.file.display())),
    };
    let graph = match graph::from_source(&text) {
        Ok(graph) => graph,
        Err(GraphError::Syntax(diagnostics)) => {
            let mut sources = SourceMap::new();
            // The first file of a new map is FileId(0), which the spans point into.
            sources.add(args.file.display().to_string(), text);
            let checked = Checked {
                sources: Arc::new(sources),
                diagnostics,
                program: None,
            };
            print_diagnostics(&checked, Format::Human);
            return ExitCode::from(1);
        }
    };
    let out = match args.format {
        GraphFormat::Mermaid => graph::mermaid::render(&graph),
        GraphFormat::Dot => graph::dot::render(&graph),
    };
    say!("{}", out.trim_end());
    ExitCode::SUCCESS
}
