//! The `flowc` command line: a thin edge over the library.
//!
//! Each subcommand has its own file. Exit codes: 0 success, 1 the flows have
//! errors, 2 usage or I/O problems.

/// `println!` that ignores a closed stdout (`flowc ... | head`): the exit
/// code still tells the result, and a panic would hide it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// The engine allocates many small values per event; mimalloc serves them
/// in fewer instructions than the system allocator (docs/performance.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod campaign;
mod check;
mod conversation;
mod explain;
mod fmt;
mod graph;
mod lsp;
mod run;
mod serve;
mod store_args;
mod templates;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// flowc: workflows for WhatsApp and AI automation.
#[derive(Debug, Parser)]
#[command(name = "flowc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a flow to a recipient list (CSV), and pause, resume, cancel or
    /// watch campaigns.
    Campaign(campaign::CampaignArgs),
    /// Check flows for mistakes before anything runs (the linter).
    Check(check::CheckArgs),
    /// Hand a customer's conversation to a person and back, or list the
    /// conversations handed over.
    Conversation(conversation::ConversationArgs),
    /// Explain a diagnostic code: why the rule exists, an example, and what
    /// to do instead (`flowc explain F4010` or `flowc explain invalid-wait`).
    Explain(explain::ExplainArgs),
    /// Rewrite .flow files in the canonical layout; with --check, list the files that are not.
    Fmt(fmt::FmtArgs),
    /// Draw each flow as a Mermaid (default) or Graphviz dot diagram.
    Graph(graph::GraphArgs),
    /// Serve editors over the Language Server Protocol on stdio (diagnostics, hover, completion).
    Lsp(lsp::LspArgs),
    /// Export or import the list of customers who opted out of marketing.
    OptOuts(campaign::OptOutsArgs),
    /// Run one event through flows with the dry-run providers, printing each step.
    Run(run::RunArgs),
    /// Serve WhatsApp webhooks and host events, keeping waiting runs in SQLite.
    Serve(serve::ServeArgs),
    /// Work with the template catalog in flow.toml.
    Templates(templates::TemplatesArgs),
    /// Run the flows' `test` blocks on virtual time with recording fakes.
    Test(test::TestArgs),
}

/// `1 file`, `2 files`.
fn plural(n: usize, word: &str) -> String {
    flowc::diag::counted(n, word)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Campaign(args) => campaign::run(args),
        Command::Check(args) => check::run(args),
        Command::Conversation(args) => conversation::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Lsp(args) => lsp::run(args),
        Command::OptOuts(args) => campaign::run_opt_outs(args),
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Templates(args) => templates::run(args),
        Command::Test(args) => test::run(args),
    }
}
