//! `flowc explain CODE`: a diagnostic code's explanation.

use std::process::ExitCode;

use clap::Args;
use flowc::check::rules::closest;
use flowc::diag::Code;

use crate::check::usage_error;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The code, e.g. F4010, or its name, e.g. invalid-wait.
    #[arg(value_name = "CODE")]
    code: String,
}

pub fn run(args: ExplainArgs) -> ExitCode {
    match Code::find(&args.code) {
        Some(code) => {
            say!("{}", code.explanation().trim_end());
            ExitCode::SUCCESS
        }
        None => {
            let known = Code::ALL
                .iter()
                .flat_map(|code| [code.as_str(), code.slug()]);
            let hint = match closest(&args.code, known) {
                Some(meant) => format!("; did you mean `{meant}`?"),
                None => "; `flowc check` prints codes such as F3001, and docs/diagnostics.md lists them all".to_string(),
            };
            usage_error(&format!("`{}` is not a diagnostic code{hint}", args.code))
        }
    }
}
