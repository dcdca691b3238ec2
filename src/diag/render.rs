//! Drawing diagnostics: miette's graphical report for people, JSON for tools.

use std::fmt;

use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;

use super::{Diagnostic, Severity};
use crate::source::SourceMap;

/// How human output is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unicode box drawing with colours, for terminals.
    Color,
    /// Unicode box drawing without colours: pipes, files, `NO_COLOR`, snapshots.
    Plain,
}

/// Renders one diagnostic as miette's graphical report.
///
/// ```
/// use flowc::diag::{Code, Diagnostic, render};
/// use flowc::source::{SourceMap, Span};
///
/// let mut sources = SourceMap::new();
/// let file = sources.add("hello.flow", "flow hello\n");
/// let d = Diagnostic::new(Code::FlowWithoutTrigger, "flow `hello` has no trigger")
///     .with_label(Span::new(file, 5, 10), "nothing starts this flow");
/// let text = render::human(&d, &sources, render::Style::Plain, 80);
/// assert!(text.contains("F4004"));
/// assert!(text.contains("hello.flow:1:6"));
/// ```
pub fn human(diagnostic: &Diagnostic, sources: &SourceMap, style: Style, width: usize) -> String {
    let theme = match style {
        Style::Color => GraphicalTheme::unicode(),
        Style::Plain => GraphicalTheme::unicode_nocolor(),
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_width(width)
        // Names like `berlin-office` must stay whole to be copied.
        .with_word_splitter(textwrap::WordSplitter::NoHyphenation);
    let report = MietteView::new(diagnostic, sources);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        // Rendering into a String cannot fail on I/O; fall back to one line if
        // miette itself gives up.
        out = format!(
            "{}[{}]: {}\n",
            severity_word(diagnostic.severity),
            diagnostic.code,
            diagnostic.message
        );
    }
    out
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One diagnostic as the JSON object `flowc check --format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct JsonDiagnostic {
    /// The stable code, e.g. `F3001`.
    pub code: &'static str,
    /// `error` or `warning`.
    pub severity: Severity,
    /// The fact.
    pub message: String,
    /// The file name as given, if the diagnostic has a location.
    pub file: Option<String>,
    /// 1-based line of the primary span.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the primary span.
    pub column: Option<usize>,
    /// Byte offsets `[start, end)` of the primary span.
    pub span: Option<[u32; 2]>,
    /// What is wrong at the primary span.
    pub label: Option<String>,
    /// The rule and the fix.
    pub help: Option<String>,
}

impl JsonDiagnostic {
    /// The JSON view of a diagnostic.
    pub fn new(diagnostic: &Diagnostic, sources: &SourceMap) -> Self {
        let primary = diagnostic.primary.as_ref();
        let location = primary.map(|l| {
            let file = sources.get(l.span.file);
            let (line, column) = file.line_col(l.span.start as usize);
            (file.name().to_string(), line, column)
        });
        JsonDiagnostic {
            code: diagnostic.code.as_str(),
            severity: diagnostic.severity,
            message: diagnostic.message.clone(),
            file: location.as_ref().map(|l| l.0.clone()),
            line: location.as_ref().map(|l| l.1),
            column: location.as_ref().map(|l| l.2),
            span: primary.map(|l| [l.span.start, l.span.end]),
            label: primary.map(|l| l.text.clone()),
            help: diagnostic.help.clone(),
        }
    }
}

/// Adapts a [`Diagnostic`] to miette's trait, with the source of its primary
/// file. Secondary labels in other files become notes in the help text, since
/// miette draws one source per report.
struct MietteView {
    code: &'static str,
    message: String,
    severity: miette::Severity,
    help: Option<String>,
    labels: Vec<LabeledSpan>,
    source: Option<WindowedSource>,
}

/// A file as miette reads it, cut down to the lines around each span first.
/// miette finds lines by scanning from the start of its source; on the whole
/// file that makes thousands of diagnostics in a large file quadratic.
struct WindowedSource {
    name: String,
    text: Arc<str>,
    line_starts: Arc<[usize]>,
}

impl WindowedSource {
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }
}

impl SourceCode for WindowedSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let start = span.offset().min(self.text.len());
        let end = (start + span.len()).min(self.text.len());
        let first_line = self.line_of(start).saturating_sub(context_lines_before);
        let last_line = self.line_of(end.saturating_sub(1).max(start)) + context_lines_after + 1;
        let window_start = self.line_starts.get(first_line).copied().unwrap_or(0);
        let window_end = self
            .line_starts
            .get(last_line + 1)
            .copied()
            .unwrap_or(self.text.len());
        let window = self.text.get(window_start..window_end).unwrap_or("");
        let inner_span = SourceSpan::new((start - window_start).into(), end - start);
        let inner = window.read_span(&inner_span, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            SourceSpan::new(
                (inner.span().offset() + window_start).into(),
                inner.span().len(),
            ),
            inner.line() + first_line,
            inner.column(),
            inner.line_count(),
        )))
    }
}

impl MietteView {
    fn new(diagnostic: &Diagnostic, sources: &SourceMap) -> Self {
        let primary_file = diagnostic.primary.as_ref().map(|l| l.span.file);
        let mut labels = Vec::new();
        let mut notes = Vec::new();
        if let Some(primary) = &diagnostic.primary {
            labels.push(LabeledSpan::new_primary_with_span(
                Some(primary.text.clone()),
                primary.span.range(),
            ));
        }
        for label in &diagnostic.secondary {
            if Some(label.span.file) == primary_file {
                labels.push(LabeledSpan::new_with_span(
                    Some(label.text.clone()),
                    label.span.range(),
                ));
            } else {
                let file = sources.get(label.span.file);
                let (line, column) = file.line_col(label.span.start as usize);
                notes.push(format!(
                    "{}: {}:{}:{}",
                    label.text,
                    file.name(),
                    line,
                    column
                ));
            }
        }
        let help = match (&diagnostic.help, notes.is_empty()) {
            (help, true) => help.clone(),
            (Some(help), false) => Some(format!("{help}\n{}", notes.join("\n"))),
            (None, false) => Some(notes.join("\n")),
        };
        let source = primary_file.map(|id| {
            let file = sources.get(id);
            WindowedSource {
                name: file.name().to_string(),
                text: file.shared_text(),
                line_starts: file.line_starts(),
            }
        });
        MietteView {
            code: diagnostic.code.as_str(),
            message: diagnostic.message.clone(),
            severity: match diagnostic.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            help,
            labels,
            source,
        }
    }
}

impl fmt::Debug for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MietteView")
            .field("code", &self.code)
            .finish()
    }
}

impl fmt::Display for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteView {}

impl miette::Diagnostic for MietteView {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}
