//! What surrounds the cursor, read from the text itself.
//!
//! Completion and hover must work while the user types, when the file does
//! not parse. Instead of the syntax tree they read the text near the cursor:
//! a small scanner follows brackets, strings (with `{...}` interpolation),
//! comments and regular expressions from the start of the enclosing top-level
//! item to the cursor, and says which call's parentheses or which string the
//! cursor is in. Top-level items start at column 0 with a keyword, so a stray
//! quote or bracket earlier in the file cannot confuse the scan.

use regex::Regex;

use super::documents::floor_char_boundary;

/// Words that start a top-level item when written at the start of a line.
const ITEM_STARTS: &[&str] = &["flow", "on", "trigger", "action", "type", "error", "test"];

/// The language's keywords, offered where a statement starts; `wait`,
/// `for` and `within` are keywords only in `wait for ... within ...`.
pub const KEYWORDS: &[&str] = &[
    "flow", "on", "as", "let", "if", "else", "branch", "delay", "until", "retry", "times", "every",
    "backoff", "catch", "stop", "fail", "true", "false", "none", "and", "or", "not", "contains",
    "matches", "wait", "for", "within",
];

/// An open bracket or string at the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// `(`; `call` is the qualified name written before it, if any.
    Paren {
        /// The called action's name.
        call: Option<String>,
    },
    /// `[`.
    Bracket,
    /// `{` of a block or record.
    Brace,
    /// A string literal.
    Str,
    /// `{` inside a string.
    Interpolation,
}

/// One open bracket or string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it is.
    pub kind: FrameKind,
    /// Byte offset of the opening character.
    pub start: usize,
    /// Commas at this level so far.
    pub commas: usize,
    /// Byte offset just after the opening character or the last comma: the
    /// start of the current argument or element.
    pub segment_start: usize,
}

/// The brackets and strings open at a cursor.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Open frames, outermost first.
    pub frames: Vec<Frame>,
    /// The cursor is in a comment.
    pub in_comment: bool,
}

impl Scan {
    /// The innermost frame.
    pub fn innermost(&self) -> Option<&Frame> {
        self.frames.last()
    }

    /// The innermost call the cursor is directly inside (not nested in a
    /// list, record or string), with its frame.
    pub fn direct_call(&self) -> Option<(&str, &Frame)> {
        match self.frames.last() {
            Some(
                frame @ Frame {
                    kind: FrameKind::Paren { call: Some(name) },
                    ..
                },
            ) => Some((name.as_str(), frame)),
            _ => None,
        }
    }
}

/// Where scanning starts for a cursor: the start of the last line at or
/// before it that begins a top-level item.
pub fn item_start(text: &str, offset: usize) -> usize {
    let offset = floor_char_boundary(text, offset);
    let mut line_end = offset;
    loop {
        let line_start = text[..line_end].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[line_start..];
        if line.starts_with('@') || ITEM_STARTS.iter().any(|kw| starts_with_word(line, kw)) {
            return line_start;
        }
        if line_start == 0 {
            return 0;
        }
        line_end = line_start - 1;
    }
}

fn starts_with_word(text: &str, word: &str) -> bool {
    text.strip_prefix(word)
        .is_some_and(|rest| !rest.starts_with(|c: char| is_ident_char(c) || c == '.'))
}

/// Whether a character can be part of a name.
pub fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Scans from the start of the enclosing item to `offset`.
pub fn scan(text: &str, offset: usize) -> Scan {
    let offset = floor_char_boundary(text, offset);
    let start = item_start(text, offset);
    let bytes = text.as_bytes();
    let mut result = Scan::default();
    let frames = &mut result.frames;
    let mut i = start;
    while i < offset {
        let b = bytes[i];
        let in_string = matches!(frames.last(), Some(f) if f.kind == FrameKind::Str);
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => {
                    frames.pop();
                }
                b'{' => frames.push(frame(FrameKind::Interpolation, i)),
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'#' => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                if end >= offset {
                    result.in_comment = true;
                    return result;
                }
                i = end;
            }
            b'"' => frames.push(frame(FrameKind::Str, i)),
            b'(' => {
                let call = name_before(text, i).filter(|n| !KEYWORDS.contains(&n.as_str()));
                frames.push(frame(FrameKind::Paren { call }, i));
            }
            b'[' => frames.push(frame(FrameKind::Bracket, i)),
            b'{' => frames.push(frame(FrameKind::Brace, i)),
            b')' | b']' | b'}' => {
                let opener = |k: &FrameKind| {
                    matches!(
                        (b, k),
                        (b')', FrameKind::Paren { .. })
                            | (b']', FrameKind::Bracket)
                            | (b'}', FrameKind::Brace | FrameKind::Interpolation)
                    )
                };
                // An unmatched closer is ignored; a closer that matches an
                // outer frame closes the ones left open inside it.
                if let Some(pos) = frames.iter().rposition(|f| opener(&f.kind)) {
                    frames.truncate(pos);
                }
            }
            b',' => {
                if let Some(f) = frames.last_mut() {
                    f.commas += 1;
                    f.segment_start = i + 1;
                }
            }
            b'/' if word_before(text, i) == "matches" => {
                // A regular expression may hold quotes and brackets.
                let body = &text[i + 1..];
                let mut j = 0;
                let body_bytes = body.as_bytes();
                while j < body_bytes.len() && body_bytes[j] != b'/' && body_bytes[j] != b'\n' {
                    j += if body_bytes[j] == b'\\' { 2 } else { 1 };
                }
                i += j + 1;
            }
            _ => {}
        }
        i += 1;
    }
    result
}

fn frame(kind: FrameKind, start: usize) -> Frame {
    Frame {
        kind,
        start,
        commas: 0,
        segment_start: start + 1,
    }
}

/// The qualified name written right before `offset` (spaces between allowed).
pub fn name_before(text: &str, offset: usize) -> Option<String> {
    let end = text[..offset].trim_end_matches([' ', '\t']).len();
    let start = qualified_start(text, end);
    (start < end).then(|| text[start..end].to_string())
}

/// The plain word (no dots) before `offset`, skipping whitespace.
pub fn word_before(text: &str, offset: usize) -> &str {
    let end = text[..offset].trim_end().len();
    let start = after_last(&text[..end], |c| !is_ident_char(c));
    &text[start..end]
}

/// Where the qualified name (letters, digits, `_`, `.`) ending at `end` starts.
pub fn qualified_start(text: &str, end: usize) -> usize {
    after_last(&text[..end], |c| !(is_ident_char(c) || c == '.'))
}

/// The byte offset just after the last character of `text` that satisfies
/// `stop` (0 when none does); characters may be longer than one byte.
fn after_last(text: &str, stop: impl Fn(char) -> bool) -> usize {
    text.char_indices()
        .rev()
        .find(|&(_, c)| stop(c))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Where the qualified name starting at `start` ends.
pub fn qualified_end(text: &str, start: usize) -> usize {
    text[start..]
        .find(|c: char| !(is_ident_char(c) || c == '.'))
        .map_or(text.len(), |i| start + i)
}

/// What a variable holds, as far as the text before `before` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `on TRIGGER as NAME` or `let NAME = wait for TRIGGER`: the event.
    Trigger(String),
    /// `catch ... NAME {`: the error.
    Error,
    /// `let NAME = ACTION(...)`: the action's result.
    Result(String),
}

/// The latest binding of `name` before `before`: a handler's event, a caught
/// error or an action's result.
pub fn binding(text: &str, before: usize, name: &str) -> Option<Binding> {
    if name.is_empty() || !name.chars().all(is_ident_char) {
        return None;
    }
    let before = floor_char_boundary(text, before);
    let head = &text[..before];
    let name = regex::escape(name);
    let patterns = [
        format!(r"\bon\s+([A-Za-z_][\w.]*)\s+as\s+{name}\b"),
        format!(r"\bcatch\b[^{{}}\n]*?\b{name}\s*\{{"),
        format!(r"\blet\s+{name}\s*=\s*([A-Za-z_][\w.]*)\s*\("),
        format!(r"\blet\s+{name}\s*=\s*wait\s+for\s+([A-Za-z_][\w.]*)"),
    ];
    let mut best: Option<(usize, Binding)> = None;
    for (kind, pattern) in patterns.iter().enumerate() {
        let Ok(re) = Regex::new(pattern) else {
            continue;
        };
        let Some(found) = re.captures_iter(head).last() else {
            continue;
        };
        let Some(whole) = found.get(0) else {
            continue;
        };
        let captured = found.get(1).map(|m| m.as_str().to_string());
        let value = match (kind, captured) {
            (0, Some(trigger)) => Binding::Trigger(trigger),
            (1, _) => Binding::Error,
            (2, Some(action)) => Binding::Result(action),
            (3, Some(trigger)) => Binding::Trigger(trigger),
            _ => continue,
        };
        if best.as_ref().is_none_or(|(at, _)| whole.start() > *at) {
            best = Some((whole.start(), value));
        }
    }
    best.map(|(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_the_call_and_argument() {
        let text = "flow f\non call.ended as c {\n    log(\"a (\", level: \"";
        let scan = scan(text, text.len());
        // From the `on` line: the block, the call, the string.
        assert_eq!(scan.frames.len(), 3);
        assert_eq!(scan.innermost().map(|f| &f.kind), Some(&FrameKind::Str));
        let call = &scan.frames[1];
        assert_eq!(
            call.kind,
            FrameKind::Paren {
                call: Some("log".into())
            }
        );
        assert_eq!(call.commas, 1);
    }

    #[test]
    fn bindings_are_found_before_the_cursor() {
        let text = "on call.ended as c {\n let a = ai.generate_response(\n catch RateLimited e {";
        assert_eq!(
            binding(text, text.len(), "c"),
            Some(Binding::Trigger("call.ended".into()))
        );
        assert_eq!(
            binding(text, text.len(), "a"),
            Some(Binding::Result("ai.generate_response".into()))
        );
        assert_eq!(binding(text, text.len(), "e"), Some(Binding::Error));
        assert_eq!(binding(text, 5, "c"), None);
    }
}
