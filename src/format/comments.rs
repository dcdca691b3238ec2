//! Finds the comments of a file.
//!
//! The grammar's `COMMENT` is silent, so the syntax tree has none. The
//! `scan_file` rule appended to `grammar/flow.pest` reads the text as tokens
//! with the grammar's own string and regex rules, so a `#` inside a literal is
//! never mistaken for a comment and the two can never disagree about syntax.

use crate::syntax::comment_ranges;

/// One `#` or `##` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Comment {
    /// Byte offset of the `#`.
    pub start: usize,
    /// Byte offset of the end of the comment's text (before the newline).
    pub end: usize,
    /// The comment as written, from `#` on, without trailing whitespace.
    pub text: String,
    /// Whether only whitespace precedes it on its line (a whole-line comment);
    /// otherwise it ends a line of code.
    pub own_line: bool,
}

/// Every comment of `text` in order. `None` when the scan fails, which only
/// happens for text that does not lex (an unclosed string).
pub(crate) fn scan(text: &str) -> Option<Vec<Comment>> {
    let comments = comment_ranges(text)?
        .into_iter()
        .map(|range| {
            let written = text[range.clone()].trim_end();
            let line_start = text[..range.start].rfind('\n').map_or(0, |i| i + 1);
            Comment {
                start: range.start,
                end: range.start + written.len(),
                text: written.to_string(),
                own_line: text[line_start..range.start].trim().is_empty(),
            }
        })
        .collect();
    Some(comments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_in_literals_are_not_comments() {
        let text = "log(\"#1 {a}\") # one\nbranch x { matches /a#b/ => stop }\n  ## two\n";
        let found: Vec<_> = scan(text)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.text, c.own_line))
            .collect();
        assert_eq!(
            found,
            [("# one".to_string(), false), ("## two".to_string(), true)]
        );
    }
}
