//! The checker: from parsed sources, declarations and flow.toml to a checked
//! [`Program`], or the diagnostics that say why not.
//!
//! ```
//! use flowc::check::Compiler;
//!
//! let mut compiler = Compiler::new();
//! compiler.add_source("follow_up.flow", r#"
//! flow follow_up
//! on call.ended as call {
//!     delay 10m
//!     whatsapp.send_template(sender: "office", template: "missed_you", to: call.customer_phone)
//! }
//! "#);
//! let checked = compiler.check();
//! assert!(checked.diagnostics.is_empty(), "{}", checked.render_plain());
//! let program = checked.program.unwrap();
//! assert_eq!(program.flows()[0].name, "follow_up");
//! ```
//!
//! A mistake becomes a diagnostic with a code, a label and help:
//!
//! ```
//! use flowc::check::Compiler;
//!
//! let mut compiler = Compiler::new();
//! compiler.add_source("bad.flow", r#"
//! flow bad
//! on call.ended as call {
//!     whatsapp.send_text(sender: "office", to: "0151/12345678", message: "hi")
//! }
//! "#);
//! let checked = compiler.check();
//! let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code.as_str()).collect();
//! assert_eq!(codes, ["F3008", "F3001"]);
//! assert!(checked.program.is_none());
//! ```

mod flows;
pub mod program;
pub mod rules;
pub mod schema;
pub mod test_defs;
pub mod types;

use std::fmt;
use std::sync::{Arc, OnceLock};

pub use program::{CheckedFlow, Program};
pub use schema::Schemas;
pub use test_defs::CheckedTest;

use crate::config::Config;
use crate::diag::render::{self, Style};
use crate::diag::Diagnostics;
use crate::source::{FileId, SourceMap};
use crate::syntax::{self, ast};

/// The standard declarations, embedded in the binary.
pub const STD_DECLARATIONS: &[(&str, &str)] = &[
    (
        "std_actions/errors.flow",
        include_str!("../../std_actions/errors.flow"),
    ),
    (
        "std_actions/core.flow",
        include_str!("../../std_actions/core.flow"),
    ),
    (
        "std_actions/whatsapp.flow",
        include_str!("../../std_actions/whatsapp.flow"),
    ),
    (
        "std_actions/ai.flow",
        include_str!("../../std_actions/ai.flow"),
    ),
    (
        "std_actions/call.flow",
        include_str!("../../std_actions/call.flow"),
    ),
];

/// Collects sources and configuration, then checks them together.
///
/// Declarations in any added source (`trigger`, `action`, `type`, `error`)
/// are visible to the flows of every source, as the standard ones are.
#[derive(Debug)]
pub struct Compiler {
    sources: SourceMap,
    modules: Vec<ast::Module>,
    config: Option<Config>,
    diagnostics: Diagnostics,
}

impl Default for Compiler {
    fn default() -> Self {
        Compiler::new()
    }
}

impl Compiler {
    /// A compiler with the standard declarations loaded.
    pub fn new() -> Self {
        // The standard declarations are parsed once per process: they always
        // take the first file ids, so their spans stay valid in every copy.
        static STD: OnceLock<Vec<ast::Module>> = OnceLock::new();
        let parsed = STD.get_or_init(|| {
            STD_DECLARATIONS
                .iter()
                .enumerate()
                .map(|(i, (_, text))| syntax::parse(FileId(i as u32), text).0)
                .collect()
        });
        let mut compiler = Compiler::without_std();
        for ((name, text), module) in STD_DECLARATIONS.iter().zip(parsed) {
            compiler.sources.add(*name, *text);
            compiler.modules.push(module.clone());
        }
        compiler
    }

    /// A compiler with no declarations at all, for hosts that bring their own.
    pub fn without_std() -> Self {
        Compiler {
            sources: SourceMap::new(),
            modules: Vec::new(),
            config: None,
            diagnostics: Diagnostics::new(),
        }
    }

    /// Adds and parses a `.flow` source; syntax errors are kept for
    /// [`Compiler::check`].
    pub fn add_source(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text: String = text.into();
        let id = self.sources.add(name, text.as_str());
        let (module, diagnostics) = syntax::parse(id, &text);
        self.modules.push(module);
        self.diagnostics.extend(diagnostics);
        id
    }

    /// Adds and parses the project configuration (the text of `flow.toml`).
    /// With a configuration, sender, template and assistant names are checked
    /// against it.
    pub fn add_config(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text: String = text.into();
        let id = self.sources.add(name, text.as_str());
        let (config, diagnostics) = Config::parse(&text, id);
        self.diagnostics.extend(diagnostics);
        self.config = Some(config);
        id
    }

    /// Uses a configuration built in code.
    pub fn set_config(&mut self, config: Config) -> &mut Self {
        self.config = Some(config);
        self
    }

    /// Checks everything added. Never panics and never runs anything.
    pub fn check(self) -> Checked {
        let Compiler {
            sources,
            modules,
            config,
            mut diagnostics,
        } = self;

        let schemas = load_schemas(&modules, &mut diagnostics);

        let flows: Vec<&ast::Flow> = modules
            .iter()
            .flat_map(|m| &m.items)
            .filter_map(|item| match item {
                ast::Item::Flow(f) => Some(f),
                _ => None,
            })
            .collect();
        let mut checker = flows::FlowChecker::new(&schemas, config.as_ref(), &mut diagnostics);
        checker.check_flows(&flows);
        let called_actions = std::mem::take(&mut checker.called);
        let test_defs: Vec<&ast::TestDef> = modules
            .iter()
            .flat_map(|m| &m.items)
            .filter_map(|item| match item {
                ast::Item::Test(t) => Some(t),
                _ => None,
            })
            .collect();
        let tests = test_defs::check_tests(
            &test_defs,
            &schemas,
            config.as_ref(),
            &sources,
            &mut diagnostics,
        );
        diagnostics.sort();

        let sources = Arc::new(sources);
        let program = (!diagnostics.has_errors()).then(|| Program {
            // The checked flows are the parsed ones, moved rather than
            // cloned: on a large project a copy of every handler's tree
            // costs a third as much as checking them.
            flows: modules
                .into_iter()
                .flat_map(|m| m.items)
                .filter_map(|item| match item {
                    ast::Item::Flow(f) => Some(CheckedFlow {
                        name: f.name.name,
                        handlers: f.handlers,
                    }),
                    _ => None,
                })
                .collect(),
            schemas: Arc::new(schemas),
            called_actions,
            tests,
            config: Arc::new(config.unwrap_or_default()),
            sources: sources.clone(),
        });
        Checked {
            sources,
            diagnostics,
            program,
        }
    }
}

/// The result of a check: all diagnostics, and the program when there were
/// no errors (warnings allowed).
#[derive(Debug, Clone)]
pub struct Checked {
    /// Every file that took part, for rendering.
    pub sources: Arc<SourceMap>,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Diagnostics,
    /// The checked program, if there were no errors.
    pub program: Option<Program>,
}

impl Checked {
    /// All diagnostics rendered without colour, as `flowc check` prints them
    /// to a pipe.
    pub fn render_plain(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| render::human(d, &self.sources, Style::Plain, 100))
            .collect()
    }

    /// The program, or an error holding the diagnostics.
    pub fn into_result(self) -> Result<Program, CheckError> {
        match self.program {
            Some(program) => Ok(program),
            None => Err(CheckError {
                sources: self.sources,
                diagnostics: self.diagnostics,
            }),
        }
    }
}

/// Sources that did not pass the checker. Its `Debug` is the rendered
/// diagnostics, so `program.expect("...")` shows what is wrong.
#[derive(Clone)]
pub struct CheckError {
    /// Every file that took part.
    pub sources: Arc<SourceMap>,
    /// What was found.
    pub diagnostics: Diagnostics,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.diagnostics.error_count();
        writeln!(
            f,
            "the flows have {errors} error{}",
            if errors == 1 { "" } else { "s" }
        )?;
        for d in self.diagnostics.iter() {
            f.write_str(&render::human(d, &self.sources, Style::Plain, 100))?;
        }
        Ok(())
    }
}

impl fmt::Debug for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for CheckError {}

/// The schemas declared by `modules` (standard declarations first, then the
/// project's), with mistakes in the declarations reported to `diagnostics`.
pub(crate) fn load_schemas<'a>(
    modules: impl IntoIterator<Item = &'a ast::Module>,
    diagnostics: &mut Diagnostics,
) -> Schemas {
    let declarations: Vec<&ast::Declaration> = modules
        .into_iter()
        .flat_map(|m| &m.items)
        .filter_map(|item| match item {
            ast::Item::Declaration(d) => Some(d),
            _ => None,
        })
        .collect();
    let mut schemas = Schemas::default();
    schema::load(&mut schemas, &declarations, diagnostics);
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(source: &str) -> Vec<String> {
        let mut compiler = Compiler::new();
        compiler.add_source("t.flow", source);
        compiler
            .check()
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect()
    }

    #[test]
    fn interpolating_none_or_nothing_says_so() {
        assert_eq!(
            messages(
                "flow f\non call.ended as c {\n    log(\"{none}\")\n    log(\"{log(\"x\")}\")\n}\n"
            ),
            [
                "F2003: an interpolated value must be String, found none",
                "F2006: `log` returns no value"
            ]
        );
    }

    #[test]
    fn phone_literals_in_lists_are_checked() {
        let source = "action bulk.send(to: [Phone])\nflow f\non call.ended as c {\n    bulk.send(to: [\"+4915112345678\", \"0151/1\"])\n}\n";
        assert_eq!(
            messages(source),
            ["F3001: phone number is not in E.164 format"]
        );
    }

    #[test]
    fn empty_literals_read_as_written() {
        assert_eq!(
            messages("flow f\non call.ended as c {\n    log([])\n    log({})\n}\n"),
            [
                "F2003: argument `message` must be String, found []",
                "F2003: argument `message` must be String, found {}"
            ]
        );
    }

    #[test]
    fn long_else_if_chains_are_flat() {
        let mut source =
            String::from("flow f\non call.ended as c {\n    if c.outcome == \"0\" { stop }");
        for i in 1..5_000 {
            source.push_str(&format!(" else if c.outcome == \"{i}\" {{ stop }}"));
        }
        source.push_str(" else { log(\"none matched\") }\n}\n");
        assert_eq!(messages(&source), Vec::<String>::new());
    }
}
