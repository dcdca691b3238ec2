//! The syntax stage: text to spanned AST, and syntax diagnostics.
//!
//! The grammar lives in `grammar/flow.pest`; this module only builds nodes
//! from it. It knows nothing of schemas, types or evaluation.
//!
//! ```
//! use flowc::source::SourceMap;
//! use flowc::syntax::{self, ast::Item};
//!
//! let mut sources = SourceMap::new();
//! let text = "flow hello\non whatsapp.message_received as msg {\n    log(\"hi {msg.phone}\")\n}\n";
//! let file = sources.add("hello.flow", text);
//! let (module, diagnostics) = syntax::parse(file, text);
//! assert!(diagnostics.is_empty());
//! let Item::Flow(flow) = &module.items[0] else { unreachable!() };
//! assert_eq!(flow.name.name, "hello");
//! assert_eq!(flow.handlers[0].trigger.name, "whatsapp.message_received");
//! ```

pub mod ast;
mod expected;
pub mod nesting;
mod parse;

pub(crate) use parse::comment_ranges;

use crate::diag::Diagnostics;
use crate::source::FileId;

/// Parses the text of one file into a module and its syntax diagnostics.
///
/// Never panics and never recurses without bound: input nested deeper than
/// [`nesting::MAX_NESTING`] is reported as `F0002` instead of parsed. After a
/// syntax error the parser resumes at the next line that starts a top-level
/// item, so one mistake does not hide the next.
pub fn parse(file: FileId, text: &str) -> (ast::Module, Diagnostics) {
    parse::parse_module(file, text)
}
