//! Formatting a document with [`crate::format::format_source`], the same
//! layout `flowc fmt` writes. Text that does not parse is left alone: the
//! answer is no edits, never a guess.

use lsp_types::{Position, Range, TextEdit};

use super::documents::LineIndex;

/// The edits that format the document: one that replaces the whole text, or
/// none when it is already formatted or cannot be formatted.
pub fn format(index: &LineIndex) -> Vec<TextEdit> {
    let Ok(formatted) = crate::format::format_source(index.text()) else {
        return Vec::new();
    };
    if formatted == index.text() {
        return Vec::new();
    }
    let end = index.position(index.text().len());
    vec![TextEdit {
        range: Range::new(Position::new(0, 0), end),
        new_text: formatted,
    }]
}
