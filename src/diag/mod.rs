//! Diagnostics: what every phase reports, and how it is shown.
//!
//! Phases build [`Diagnostic`] values (a code, a message, a primary span with a
//! label, secondary labels, help); they never format output themselves. The
//! [`render`] module is the one place that draws them, through miette for people
//! and as JSON for tools.

mod codes;
mod explain;
pub mod render;

use serde::Serialize;

pub use codes::Code;

use crate::source::Span;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look, but the flow can run.
    Warning,
    /// The flow cannot run until it is fixed.
    Error,
}

/// A label on a span: what is wrong, or what is related, at exactly that place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there.
    pub text: String,
}

/// One finding of the parser, the checker or the configuration loader.
///
/// ```
/// use flowc::diag::{Code, Diagnostic};
/// use flowc::source::{FileId, Span};
///
/// let d = Diagnostic::new(Code::UnknownVariable, "unknown variable `nmae`")
///     .with_label(Span::new(FileId(0), 4, 8), "not defined here")
///     .with_help("did you mean `name`?");
/// assert_eq!(d.code.as_str(), "F1004");
/// assert!(d.is_error());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The stable code of the rule.
    pub code: Code,
    /// Error or warning; the code's default unless overridden.
    pub severity: Severity,
    /// The fact, in lower case, e.g. `phone number is not in E.164 format`.
    pub message: String,
    /// The primary location, with what is wrong there.
    pub primary: Option<Label>,
    /// Related places ("first defined here").
    pub secondary: Vec<Label>,
    /// The rule and the fix.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity and no location yet.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: None,
        }
    }

    /// Sets the primary span and its label.
    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.primary = Some(Label {
            span,
            text: text.into(),
        });
        self
    }

    /// Adds a secondary label at a related place.
    pub fn with_secondary(mut self, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    /// Sets the help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Overrides the severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Whether this diagnostic blocks running.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The primary span, if any.
    pub fn span(&self) -> Option<Span> {
        self.primary.as_ref().map(|l| l.span)
    }
}

/// The diagnostics of a parse or a check, sorted by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// No diagnostics.
    pub fn new() -> Self {
        Diagnostics::default()
    }

    /// Adds one.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Adds all of another collection.
    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(other);
    }

    /// Whether any of them is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// How many errors, in words: `1 syntax error`, `2 syntax errors`.
    pub fn errors_in_words(&self, kind: &str) -> String {
        counted(self.error_count(), &format!("{kind} error"))
    }

    /// How many errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// How many warnings.
    pub fn warning_count(&self) -> usize {
        self.0.len() - self.error_count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Sorts by file and position, then code, and drops exact duplicates.
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| (d.span(), d.code));
        self.0.dedup();
    }

    /// The diagnostics as a vector.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<T: IntoIterator<Item = Diagnostic>>(iter: T) -> Self {
        Diagnostics(iter.into_iter().collect())
    }
}

/// `1 file`, `2 files`: a count and a word that takes a plural `s`.
///
/// ```
/// assert_eq!(flowc::diag::counted(1, "file"), "1 file");
/// assert_eq!(flowc::diag::counted(3, "syntax error"), "3 syntax errors");
/// ```
pub fn counted(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
