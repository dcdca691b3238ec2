//! The `flowc` command line: a thin edge over the library.
//!
//! Each subcommand has its own file. Exit codes: 0 success, 1 the flows have
//! errors, 2 usage or I/O problems.

mod check;

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
    /// Check flows for mistakes before anything runs (the linter).
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(args),
    }
}
