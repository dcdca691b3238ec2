//! `flowc test`: run the `test` blocks of the flows on virtual time with
//! recording fakes, and report like `cargo test`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::check::checked_program;
use crate::plural;
use flowc::project::Project;

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
    // Test files inside a project are checked with the whole project (the
    // flows they test live beside them); only their own tests run.
    let widened = Project::widen(&paths, args.config.as_deref());
    let (project, program) = match checked_program(&widened, args.config.as_deref(), "no test ran")
    {
        Ok(found) => found,
        Err(code) => return code,
    };
    let files: Vec<PathBuf> = paths.iter().filter(|p| p.is_file()).cloned().collect();
    let only: Option<Vec<String>> = (widened != paths).then(|| project.names_of(&files));
    let chosen = |test: &&flowc::check::CheckedTest| {
        only.as_ref().is_none_or(|names| names.contains(&test.file))
            && args
                .filter
                .as_deref()
                .is_none_or(|f| flowc::testing::full_name(test).contains(f))
    };
    let selected = program.tests().iter().filter(chosen).count();
    say!("running {}", plural(selected, "test"));
    let mut results = Vec::new();
    for test in program.tests().iter().filter(chosen) {
        let name = flowc::testing::full_name(test);
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
