//! The canonical layout of `.flow` files: what `flowc fmt` writes.
//!
//! [`format_source`] reprints one file from its syntax tree. Every comment
//! stays where it was written, literals are copied as written, and the result
//! is checked before it is returned: it must parse to the same tree (spans
//! aside) and hold the same comments, so formatting never changes what a flow
//! means and never loses a comment.
//!
//! The layout:
//!
//! - four spaces per level; one statement per line; `retry` and `catch`
//!   clauses on their own lines, one level deeper than their statement;
//! - blank lines between items, statements, arms and arguments are kept,
//!   several collapsing into one; none after an opening brace or before a
//!   closing one;
//! - a call, list or record stays on one line if it fits in 100 columns;
//!   otherwise, if it has more than two elements (or holds one that has), it
//!   breaks one element per line with a trailing comma. A call with one long
//!   string is not broken: that would not make it shorter;
//! - in `test` blocks the `given` fields and the arguments of expected calls
//!   break as a table instead: as many per line as fit;
//! - a comment inside an expression that has no line break of its own (an
//!   operator chain, a condition) cannot be placed, and the file is refused
//!   with [`FormatError::Comment`] rather than moving or losing it.
//!
//! ```
//! use flowc::format::format_source;
//!
//! let messy = "flow hi\non whatsapp.message_received as msg{\n  # greet\n      log( \"hi {msg.phone}\" )}\n";
//! let tidy = format_source(messy).unwrap();
//! assert_eq!(
//!     tidy,
//!     "flow hi\non whatsapp.message_received as msg {\n    # greet\n    log(\"hi {msg.phone}\")\n}\n"
//! );
//! // Formatting is idempotent.
//! assert_eq!(format_source(&tidy).unwrap(), tidy);
//! ```

mod comments;
mod printer;

use std::sync::OnceLock;

use regex::Regex;

use crate::diag::Diagnostics;
use crate::source::{FileId, Span};
use crate::syntax::{self, ast::Module};

/// The widest line the layout aims for, in characters.
pub const WIDTH: usize = printer::WIDTH;

/// Why a text could not be formatted. The text itself is never changed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The text does not parse. The diagnostics' spans point into the text
    /// given to [`format_source`], as file [`FileId`]`(0)`.
    #[error("the text does not parse ({})", .0.errors_in_words("syntax"))]
    Syntax(Diagnostics),
    /// A comment sits inside an expression that the layout prints on one
    /// line; formatting would move or lose it. The span (in file
    /// [`FileId`]`(0)`) is the comment's.
    #[error("cannot place the comment at bytes {}..{}: move it to its own line above the statement", .0.start, .0.end)]
    Comment(Span),
    /// The formatted text would not mean the same as the input. This is a
    /// bug in the formatter; the text is left as it is.
    #[error("formatting would change the file's meaning ({0}); please report this as a bug")]
    Changed(&'static str),
}

impl FormatError {
    /// The diagnostics to show for this error: the syntax errors, or one
    /// diagnostic that labels the comment or explains the failure.
    ///
    /// ```
    /// use flowc::format::format_source;
    ///
    /// let error = format_source("flow broken\non call.ended as call {\n").unwrap_err();
    /// assert!(error.diagnostics().has_errors());
    /// ```
    pub fn diagnostics(&self) -> Diagnostics {
        use crate::diag::{Code, Diagnostic};
        match self {
            FormatError::Syntax(diagnostics) => diagnostics.clone(),
            FormatError::Comment(span) => {
                let mut d = Diagnostics::new();
                d.push(
                    Diagnostic::new(Code::SyntaxError, self.to_string())
                        .with_label(*span, "this comment has no line of its own in the layout")
                        .with_help("put the comment on its own line before the statement"),
                );
                d
            }
            FormatError::Changed(_) => {
                let mut d = Diagnostics::new();
                d.push(Diagnostic::new(Code::SyntaxError, self.to_string()));
                d
            }
        }
    }
}

/// Formats one `.flow` source text in the canonical layout.
///
/// Returns the formatted text (which may equal the input), or why the text
/// cannot be formatted. Formatting the result again returns it unchanged.
///
/// ```
/// use flowc::format::{format_source, FormatError};
///
/// let text = "error   Busy\n\n\n\n@retryable error Slow # temporary\n";
/// assert_eq!(format_source(text).unwrap(), "error Busy\n\n@retryable\nerror Slow # temporary\n");
///
/// assert!(matches!(format_source("flow {"), Err(FormatError::Syntax(_))));
/// ```
pub fn format_source(text: &str) -> Result<String, FormatError> {
    let (module, diagnostics) = syntax::parse(FileId(0), text);
    if diagnostics.has_errors() {
        return Err(FormatError::Syntax(diagnostics));
    }
    let comments =
        comments::scan(text).ok_or(FormatError::Changed("the comments cannot be read"))?;
    let written: Vec<String> = comments.iter().map(|c| c.text.clone()).collect();
    let mut printer = printer::Printer::new(text, comments);
    let out = printer
        .module(&module)
        .map_err(|printer::Unplaced(span)| FormatError::Comment(span))?;
    printer
        .finish()
        .map_err(|printer::Unplaced(span)| FormatError::Comment(span))?;

    // The safety net: the result must parse to the same tree and keep every
    // comment, in order. Cheap next to the value of never breaking a flow.
    let (after, diagnostics) = syntax::parse(FileId(0), &out);
    if diagnostics.has_errors() {
        return Err(FormatError::Changed("the result does not parse"));
    }
    if !same_syntax(&module, &after) {
        return Err(FormatError::Changed("the syntax tree differs"));
    }
    let kept: Option<Vec<String>> =
        comments::scan(&out).map(|cs| cs.into_iter().map(|c| c.text).collect());
    if kept.as_ref() != Some(&written) {
        return Err(FormatError::Changed("a comment would be lost"));
    }
    Ok(out)
}

/// Whether two syntax trees are the same apart from where their nodes are
/// written: what [`format_source`] promises to keep.
///
/// ```
/// use flowc::format::same_syntax;
/// use flowc::source::FileId;
/// use flowc::syntax::parse;
///
/// let (a, _) = parse(FileId(0), "error Busy\n");
/// let (b, _) = parse(FileId(0), "\n\nerror   Busy");
/// let (c, _) = parse(FileId(0), "error Slow");
/// assert!(same_syntax(&a, &b));
/// assert!(!same_syntax(&a, &c));
/// ```
pub fn same_syntax(a: &Module, b: &Module) -> bool {
    without_spans(&format!("{a:?}")) == without_spans(&format!("{b:?}"))
}

/// A `Debug` rendering with every [`Span`] replaced by `_`, for comparing
/// trees or programs regardless of layout.
///
/// ```
/// use flowc::format::without_spans;
/// use flowc::source::{FileId, Span};
///
/// let debug = format!("{:?}", (1, Span::new(FileId(0), 3, 9)));
/// assert_eq!(without_spans(&debug), "(1, _)");
/// ```
pub fn without_spans(debug: &str) -> String {
    static SPAN: OnceLock<Regex> = OnceLock::new();
    let span = SPAN.get_or_init(|| {
        Regex::new(r"Span \{ file: FileId\(\d+\), start: \d+, end: \d+ \}")
            .unwrap_or_else(|_| unreachable!("the pattern is a valid regex"))
    });
    span.replace_all(debug, "_").into_owned()
}
