//! `flowc test`: run the `test` blocks of the flows on virtual time with
//! recording fakes, and report like `cargo test`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::check::checked_program;
use crate::plural;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The project configuration; by default the flow.toml next to the flows.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run only the tests whose `file: name` contains this text.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// .flow and .test.flow files, or folders to search for them (default: `.`).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(args: TestArgs) -> ExitCode {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let (_, program) = match checked_program(&paths, args.config.as_deref(), "no test ran") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let selected = program
        .tests()
        .iter()
        .filter(|t| {
            args.filter
                .as_deref()
                .map_or(true, |f| flowc::testing::full_name(t).contains(f))
        })
        .count();
    say!("running {}", plural(selected, "test"));
    let mut results = Vec::new();
    for test in program.tests() {
        let name = flowc::testing::full_name(test);
        if args.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let result = flowc::testing::run_test(&program, test);
        say!(
            "test {name} ... {}",
            if result.passed() { "ok" } else { "FAILED" }
        );
        results.push(result);
    }
    let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
    if !failed.is_empty() {
        say!("\nfailures:\n");
        for result in &failed {
            say!("---- {}: {} ----", result.file, result.name);
            say!("at {}", result.location);
            say!("{}", result.report());
        }
        say!("failures:");
        for result in &failed {
            say!("    {}: {}", result.file, result.name);
        }
        say!("");
    }
    let passed = results.len() - failed.len();
    say!(
        "test result: {}.",
        if failed.is_empty() { "ok" } else { "FAILED" }
    );
    say!("{passed} passed, {} failed", failed.len());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
