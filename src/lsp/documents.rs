//! Open documents, and positions between the checker's byte offsets and the
//! editor's lines and UTF-16 code units.
//!
//! Every span the checker reports is a byte range; LSP positions count lines
//! and, within a line, UTF-16 code units. Every conversion goes through
//! [`LineIndex`] so that an `ä` or an emoji never shifts a squiggle. Positions
//! from the editor are untrusted: out-of-range lines and characters, and
//! characters in the middle of a surrogate pair, are clamped, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lsp_types::{Position, Range, TextDocumentContentChangeEvent, Uri};

/// A text with the byte offsets where its lines start.
#[derive(Debug, Clone)]
pub struct LineIndex {
    text: Arc<str>,
    line_starts: Arc<[usize]>,
}

impl LineIndex {
    /// Indexes a text. Lines end at `\n` (a `\r` before it belongs to the
    /// line break), as in the checker's own line numbers.
    pub fn new(text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, line_starts }
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The shared text, cheap to clone.
    pub fn shared_text(&self) -> Arc<str> {
        self.text.clone()
    }

    /// How many lines (a text ending in `\n` has an empty last line).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The LSP position of a byte offset. Offsets past the end are clamped to
    /// the end; an offset inside a character counts from that character's start.
    pub fn position(&self, offset: usize) -> Position {
        let offset = floor_char_boundary(&self.text, offset);
        let line = self
            .line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let character = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.encode_utf16().count());
        Position::new(to_u32(line), to_u32(character))
    }

    /// The byte offset of an LSP position. A line past the end gives the end
    /// of the text; a character past the end of its line gives the line's end
    /// (before the line break); a character inside a surrogate pair gives the
    /// start of that character.
    pub fn offset(&self, position: Position) -> usize {
        let line = position.line as usize;
        let Some(&start) = self.line_starts.get(line) else {
            return self.text.len();
        };
        let mut end = self
            .line_starts
            .get(line + 1)
            .map_or(self.text.len(), |next| next - 1);
        if end > start && self.text.as_bytes().get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        let wanted = position.character as usize;
        let mut units = 0;
        for (i, ch) in self.text.get(start..end).unwrap_or("").char_indices() {
            if units >= wanted {
                return start + i;
            }
            units += ch.len_utf16();
            if units > wanted {
                return start + i;
            }
        }
        end
    }

    /// The LSP range of a byte range.
    pub fn range(&self, start: usize, end: usize) -> Range {
        Range::new(self.position(start), self.position(end.max(start)))
    }

    /// The byte range of an LSP range, in order.
    pub fn byte_range(&self, range: Range) -> std::ops::Range<usize> {
        let a = self.offset(range.start);
        let b = self.offset(range.end);
        a.min(b)..a.max(b)
    }
}

/// The largest char boundary at or before `offset`, clamped to the text.
pub fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A document the editor has open.
#[derive(Debug, Clone)]
pub struct Document {
    /// The editor's name for it.
    pub uri: Uri,
    /// The file on disk, for `file:` URIs.
    pub path: Option<PathBuf>,
    /// The editor's version; newer versions win.
    pub version: i32,
    /// The current text with its line index.
    pub index: LineIndex,
}

impl Document {
    /// A document opened with this text.
    pub fn new(uri: Uri, version: i32, text: String) -> Self {
        let path = uri_to_path(&uri);
        Document {
            uri,
            path,
            version,
            index: LineIndex::new(text),
        }
    }

    /// The current text.
    pub fn text(&self) -> &str {
        self.index.text()
    }

    /// Applies the editor's changes in order: a change without a range
    /// replaces the text, one with a range replaces that part (clamped).
    pub fn apply_changes(&mut self, version: i32, changes: Vec<TextDocumentContentChangeEvent>) {
        let mut text = self.index.text().to_string();
        for change in changes {
            match change.range {
                None => text = change.text,
                Some(range) => {
                    // Each change is relative to the text after the previous
                    // one, so the index is rebuilt between ranged changes.
                    let index = LineIndex::new(text.as_str());
                    let bytes = index.byte_range(range);
                    text.replace_range(bytes, &change.text);
                }
            }
        }
        self.version = version;
        self.index = LineIndex::new(text);
    }
}

/// The path of a `file:` URI, percent-decoded; `None` for other schemes or
/// a path that is not UTF-8.
pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    let rest = uri.as_str().strip_prefix("file://")?;
    // `file://host/path`: only the empty host and `localhost` are local.
    let path = if rest.starts_with('/') {
        rest
    } else {
        rest.strip_prefix("localhost")?
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let decoded = percent_decode(path)?;
    // `file:///C:/x` is `C:/x` on Windows.
    let bytes = decoded.as_bytes();
    if cfg!(windows) && bytes.len() >= 3 && bytes[0] == b'/' && bytes[2] == b':' {
        return Some(PathBuf::from(&decoded[1..]));
    }
    Some(PathBuf::from(decoded))
}

/// The `file:` URI of a path.
pub fn path_to_uri(path: &Path) -> Option<Uri> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let text = absolute.to_str()?.replace('\\', "/");
    let mut uri = String::from("file://");
    if !text.starts_with('/') {
        uri.push('/');
    }
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(byte as char)
            }
            b':' if uri.len() <= 10 => uri.push(':'),
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri.parse().ok()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_positions_round_trip() {
        let index = LineIndex::new("a\u{e4}\u{1F600}b\r\nx\n");
        // `b` is after 1 + 1 + 2 UTF-16 units, at byte 1 + 2 + 4.
        assert_eq!(index.position(7), Position::new(0, 4));
        assert_eq!(index.offset(Position::new(0, 4)), 7);
        // Inside the emoji's surrogate pair: its start.
        assert_eq!(index.offset(Position::new(0, 3)), 3);
        // Past the line's end: before `\r\n`.
        assert_eq!(index.offset(Position::new(0, 99)), 8);
        assert_eq!(index.offset(Position::new(1, 0)), 10);
        assert_eq!(index.offset(Position::new(9, 9)), 12);
        // Inside a multi-byte character: that character.
        assert_eq!(index.position(2), Position::new(0, 1));
    }

    #[test]
    fn file_uris_round_trip() {
        let uri: Uri = "file:///tmp/a%20b/c.flow".parse().unwrap();
        let path = uri_to_path(&uri).unwrap();
        assert_eq!(path, PathBuf::from("/tmp/a b/c.flow"));
        if cfg!(unix) {
            assert_eq!(path_to_uri(&path).unwrap(), uri);
        }
    }
}
