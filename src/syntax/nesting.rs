//! A bound on nesting, checked before parsing.
//!
//! pest's parser, the tree builder and the checker all recurse, so deeply
//! nested input (`[[[[...` or a string interpolation inside an interpolation
//! inside ...) could exhaust the stack. This scan finds the first bracket that
//! goes deeper than [`MAX_NESTING`] in linear time, so the parser can report it
//! instead of crashing.

/// The deepest nesting of brackets and interpolations a file may have.
pub const MAX_NESTING: usize = 48;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Bracket,
    Interpolation,
    Str,
}

/// The byte offset of the first opening bracket or interpolation brace that
/// exceeds [`MAX_NESTING`], if any.
pub fn too_deep_at(text: &str) -> Option<usize> {
    let mut stack: Vec<Context> = Vec::new();
    let mut depth = 0usize;
    let mut chars = text.char_indices();
    while let Some((offset, c)) = chars.next() {
        let in_string = stack.last() == Some(&Context::Str);
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    stack.pop();
                }
                '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some(offset);
                    }
                    stack.push(Context::Interpolation);
                }
                _ => {}
            }
            continue;
        }
        match c {
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => stack.push(Context::Str),
            // A regex literal (`matches /.../`) may hold quotes and `#`;
            // skip it to its closing slash on the same line.
            '/' if text[..offset].trim_end().ends_with("matches") => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '/' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(offset);
                }
                stack.push(Context::Bracket);
            }
            ')' | ']' | '}' => {
                if matches!(
                    stack.last(),
                    Some(Context::Bracket) | Some(Context::Interpolation)
                ) {
                    stack.pop();
                    depth -= 1;
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shallow_input_passes() {
        assert_eq!(too_deep_at("flow a on x as y { log(\"{[1]}\") }"), None);
        assert_eq!(too_deep_at(&"(".repeat(MAX_NESTING)), None);
    }

    #[test]
    fn first_offending_bracket_is_found() {
        let text = "[".repeat(MAX_NESTING + 5);
        assert_eq!(too_deep_at(&text), Some(MAX_NESTING));
    }

    #[test]
    fn interpolations_count() {
        let mut text = String::new();
        for _ in 0..MAX_NESTING + 1 {
            text.push_str("\"{");
        }
        assert!(too_deep_at(&text).is_some());
    }

    #[test]
    fn regex_literals_cannot_hide_brackets() {
        let text = format!("matches /\"#/ => log({})", "(".repeat(MAX_NESTING + 1));
        assert!(too_deep_at(&text).is_some());
        assert_eq!(too_deep_at("matches /[(]\\//"), None);
    }

    #[test]
    fn comments_and_escapes_do_not_count() {
        let text = format!("# {}\n\"\\{{\"", "(".repeat(500));
        assert_eq!(too_deep_at(&text), None);
    }
}
