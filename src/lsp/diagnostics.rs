//! The checker's diagnostics as LSP diagnostics: byte spans to UTF-16 ranges,
//! the same codes and severities as `flowc check`, labels and help in the
//! message, secondary labels as related information.

use std::collections::BTreeMap;

use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Position, Range,
    Uri,
};

use super::analysis::Analysis;
use crate::diag::{Diagnostic, Severity};

/// The diagnostics of one file, ready to publish.
#[derive(Debug, Clone)]
pub struct FileDiagnostics {
    /// The file.
    pub uri: Uri,
    /// The version of the open document they were computed for.
    pub version: Option<i32>,
    /// The diagnostics.
    pub diagnostics: Vec<lsp_types::Diagnostic>,
}

/// Every file of an analysis that has a URI, with its diagnostics (empty for
/// files without any, so old ones are cleared). Diagnostics without a place
/// go to `fallback`, the first open document of the project.
pub fn by_file(analysis: &Analysis, fallback: Option<&Uri>) -> Vec<FileDiagnostics> {
    let mut out: BTreeMap<String, FileDiagnostics> = BTreeMap::new();
    for file in &analysis.files {
        if let Some(uri) = &file.uri {
            out.insert(
                uri.as_str().to_string(),
                FileDiagnostics {
                    uri: uri.clone(),
                    version: file.version,
                    diagnostics: Vec::new(),
                },
            );
        }
    }
    for diagnostic in &analysis.diagnostics {
        let (uri, range) = match diagnostic.span() {
            Some(span) => match analysis.file(span.file) {
                Some(file) => match &file.uri {
                    Some(uri) => (
                        uri.clone(),
                        file.index.range(span.start as usize, span.end as usize),
                    ),
                    // A mistake in the embedded declarations has no file the
                    // editor could show; it cannot happen with the shipped ones.
                    None => continue,
                },
                None => continue,
            },
            None => match fallback {
                Some(uri) => (
                    uri.clone(),
                    Range::new(Position::new(0, 0), Position::new(0, 0)),
                ),
                None => continue,
            },
        };
        if let Some(entry) = out.get_mut(uri.as_str()) {
            entry.diagnostics.push(to_lsp(diagnostic, range, analysis));
        }
    }
    out.into_values().collect()
}

/// One diagnostic at `range`.
pub fn to_lsp(diagnostic: &Diagnostic, range: Range, analysis: &Analysis) -> lsp_types::Diagnostic {
    let mut message = diagnostic.message.clone();
    if let Some(label) = &diagnostic.primary {
        if !label.text.is_empty() && label.text != diagnostic.message {
            message.push('\n');
            message.push_str(&label.text);
        }
    }
    if let Some(help) = &diagnostic.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let related: Vec<DiagnosticRelatedInformation> = diagnostic
        .secondary
        .iter()
        .filter_map(|label| {
            let file = analysis.file(label.span.file)?;
            Some(DiagnosticRelatedInformation {
                location: Location::new(
                    file.uri.clone()?,
                    file.index
                        .range(label.span.start as usize, label.span.end as usize),
                ),
                message: label.text.clone(),
            })
        })
        .collect();
    lsp_types::Diagnostic {
        range,
        severity: Some(match diagnostic.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(diagnostic.code.as_str().to_string())),
        code_description: None,
        source: Some("flowc".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data: None,
    }
}
