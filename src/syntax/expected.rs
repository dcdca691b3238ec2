//! Syntax errors in plain words.
//!
//! pest reports the grammar rules it tried at the furthest position. Users
//! never see rule names: each rule is described here the way a person would
//! name what belongs there ("a name", "`{`", "an expression"), and the text
//! found at that place is quoted.

use std::collections::BTreeSet;

use super::parse::Rule;
use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Span};

/// The diagnostic for a pest error in the item that starts at byte `base`
/// of `text`.
pub fn syntax_error(
    file: FileId,
    text: &str,
    base: usize,
    error: &pest::error::Error<Rule>,
) -> Diagnostic {
    let rule_position = base
        + match error.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((p, _)) => p,
        };
    let rules: &[Rule] = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives,
        pest::error::ErrorVariant::CustomError { .. } => &[],
    };
    let mut words: BTreeSet<&'static str> = BTreeSet::new();
    // The attempts pest records with error detail on reach as far as the
    // literal tokens (`)`, `=>`, `,`), which rule positives do not name.
    let at = match error.parse_attempts() {
        Some(attempts) if base + attempts.max_position >= rule_position => {
            let at = base + attempts.max_position;
            words.extend(describe_tokens(&attempts.expected_tokens()));
            if at == rule_position {
                words.extend(rules.iter().filter_map(|r| describe(*r)));
            }
            at
        }
        _ => {
            words.extend(rules.iter().filter_map(|r| describe(*r)));
            rule_position
        }
    };
    let at = at.min(text.len());
    let expected = join_words(words);
    let found = found_at(text, at);
    // At the end of the file there is nothing to underline: point at the
    // last character instead, so the label is drawn.
    let span = if found.len_bytes == 0 && at > 0 {
        let last = text[..at].char_indices().next_back().map_or(0, |(i, _)| i);
        Span::new(file, last, at)
    } else {
        Span::new(file, at, at + found.len_bytes)
    };
    let (message, label) = if expected.is_empty() {
        (
            format!("unexpected {}", found.description),
            "not expected here".to_string(),
        )
    } else {
        (
            format!("expected {expected}, found {}", found.description),
            format!("expected {expected}"),
        )
    };
    let mut diagnostic = Diagnostic::new(Code::SyntaxError, message).with_label(span, label);
    if let Some(help) = hint(text, at, &found.description) {
        diagnostic = diagnostic.with_help(help);
    }
    diagnostic
}

/// Literal tokens in plain words; whitespace and comment starts are noise.
///
/// pest does not export its token type, so tokens are read through their
/// `Display` form: the literal itself, or `a..z` for a character range.
fn describe_tokens<T: std::fmt::Display>(tokens: &[T]) -> BTreeSet<&'static str> {
    let mut words = BTreeSet::new();
    for token in tokens {
        let token = token.to_string();
        let word: &'static str = match token.as_str() {
            " " | "\t" | "\n" | "\r" | "#" | "\u{feff}" | "BUILTIN_RULE" => continue,
            "!=" | "*" | "+" | "-" | "<" | "<=" | "==" | ">" | ">=" | "and" | "or" | "??"
            | "contains" | "/" => "an operator",
            "\"" => "a string",
            range if range.len() == 4 && range.get(1..3) == Some("..") => {
                if range.starts_with(|c: char| c.is_ascii_digit()) {
                    "a number"
                } else {
                    "a name"
                }
            }
            other => match TOKEN_WORDS.iter().find(|(t, _)| *t == other) {
                Some((_, word)) => word,
                None => continue,
            },
        };
        words.insert(word);
    }
    words
}

/// Tokens of the grammar as they are quoted in messages.
const TOKEN_WORDS: &[(&str, &str)] = &[
    ("(", "`(`"),
    (")", "`)`"),
    ("{", "`{`"),
    ("}", "`}`"),
    ("[", "`[`"),
    ("]", "`]`"),
    (",", "`,`"),
    (":", "`:`"),
    (".", "`.`"),
    ("=", "`=`"),
    ("=>", "`=>`"),
    ("->", "`->`"),
    ("|", "`|`"),
    ("?", "`?`"),
    ("@", "`@`"),
    ("_", "`_`"),
    ("flow", "`flow`"),
    ("on", "`on`"),
    ("as", "`as`"),
    ("let", "`let`"),
    ("if", "`if`"),
    ("else", "`else`"),
    ("branch", "`branch`"),
    ("delay", "`delay`"),
    ("until", "`until`"),
    ("retry", "`retry`"),
    ("times", "`times`"),
    ("every", "`every`"),
    ("backoff", "`backoff`"),
    ("catch", "`catch`"),
    ("stop", "`stop`"),
    ("fail", "`fail`"),
    ("wait", "`wait`"),
    ("for", "`for`"),
    ("within", "`within`"),
    ("trigger", "`trigger`"),
    ("action", "`action`"),
    ("type", "`type`"),
    ("error", "`error`"),
    ("raises", "`raises`"),
    ("not", "`not`"),
    ("matches", "`matches`"),
    ("true", "`true` or `false`"),
    ("false", "`true` or `false`"),
    ("none", "`none`"),
    ("test", "`test`"),
    ("given", "`given`"),
    ("with", "`with`"),
    ("expect", "`expect`"),
    ("after", "`after`"),
    ("fails", "`fails`, `stops` or `completes`"),
    ("stops", "`fails`, `stops` or `completes`"),
    ("completes", "`fails`, `stops` or `completes`"),
    ("inbound", "`inbound`, `sender`, `ai` or `failure`"),
    ("offline", "`offline`"),
    ("answer", "`answer`"),
    ("ago", "`ago`"),
];

/// Joins descriptions: "a name, `{` or a string".
fn join_words(words: BTreeSet<&'static str>) -> String {
    let mut words: Vec<&str> = words.into_iter().collect();
    // "an expression" covers literals and names; keep the list short.
    if words.contains(&"an expression") {
        words.retain(|w| !COVERED_BY_EXPRESSION.contains(w));
    }
    if words.contains(&ARM) {
        words.retain(|w| !COVERED_BY_ARM.contains(w));
    }
    // A statement or a name may start with `_`; saying so adds nothing.
    if words.contains(&"a statement") {
        words.retain(|w| !matches!(*w, "a name" | "`_`" | "an action call"));
    }
    if words.contains(&"a name") {
        words.retain(|w| *w != "`_`");
    }
    match words.len() {
        0 => String::new(),
        1 => words[0].to_string(),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    }
}

const ARM: &str = "a branch arm such as `\"value\" => ...`";

const COVERED_BY_ARM: &[&str] = &[
    "`_`",
    "`matches`",
    "`contains`",
    "`none`",
    "`true` or `false`",
    "a number",
    "a whole number",
    "a string",
    "a duration such as `10m`",
];

const COVERED_BY_EXPRESSION: &[&str] = &[
    "`_`",
    "a string",
    "a number",
    "a whole number",
    "a duration such as `10m`",
    "`true` or `false`",
    "`none`",
    "a list `[...]`",
    "a record `{ key: value }`",
    "a name",
    "an action call",
    "`not` or `-`",
];

/// One rule in plain words; `None` for rules that are never the thing a user
/// is missing.
fn describe(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        EOI => "end of file",
        item_at | file | declaration => {
            "`flow`, `trigger`, `action`, `type`, `error`, `test` or `@`"
        }
        test_def | kw_test => "`test`",
        test_given | kw_given => "`given`",
        kw_at => "`at`",
        test_fact | kw_with => "`with`",
        fact_inbound | fact_offline | fact_ai | fact_failure | fact_handed_over | kw_inbound
        | kw_sender | kw_ai | kw_failure | kw_conversation => {
            "`inbound`, `sender`, `ai`, `failure` or `conversation`"
        }
        kw_handed => "`handed`",
        kw_over => "`over`",
        kw_from => "`from`",
        kw_to => "`to`",
        kw_ago => "`ago`",
        kw_offline => "`offline`",
        kw_answer => "`answer`",
        kw_call => "`call`",
        test_expect | kw_expect => "`expect`",
        expectation => "an expected action call such as `after 10m notify(\"team\")`",
        kw_after => "`after`",
        kw_restart => "`restart`",
        test_then | kw_then => "`then`",
        test_outcome | kw_fails | kw_stops | kw_completes | kw_nothing => {
            "`fails`, `stops`, `completes` or `nothing runs`"
        }
        kw_runs => "`runs`",
        flow_def | kw_flow => "`flow`",
        handler | kw_on => "`on`",
        kw_as => "`as`",
        debounce_opt | kw_debounce => "`debounce`",
        via_opt | kw_via => "`via`",
        attribute => "`@`",
        attribute_args => "`(`",
        trigger_decl | kw_trigger => "`trigger`",
        action_decl | kw_action => "`action`",
        type_decl | kw_type => "`type`",
        error_decl | kw_error => "`error`",
        params | param => "a parameter `name: Type`",
        returns => "`->`",
        raises | kw_raises => "`raises`",
        field_decl | trigger_field => "a field `name: Type`",
        type_expr | named_type | list_type | record_type => "a type",
        optional => "`?`",
        type_args => "`(`",
        type_arg => "a type argument such as `max: 20` or `unique: id`",
        block => "`{`",
        stmt | let_stmt | if_stmt | branch_stmt | delay_stmt | stop_stmt | fail_stmt
        | wait_stmt => "a statement",
        wait_binding => "`let`",
        kw_wait => "`wait`",
        kw_for => "`for`",
        kw_within => "`within`",
        kw_let => "`let`",
        kw_if => "`if`",
        else_clause | else_if | kw_else => "`else`",
        kw_branch => "`branch`",
        kw_delay => "`delay`",
        delay_until | kw_until => "`until`",
        kw_stop => "`stop`",
        kw_fail => "`fail`",
        arm | patterns => ARM,
        wildcard => "`_`",
        matches_pat | kw_matches => "`matches /regex/`",
        regex | regex_body => "a pattern `/regex/`",
        contains_pat => "`contains \"text\"`",
        retry_clause | kw_retry => "`retry`",
        kw_times => "`times`",
        kw_every => "`every`",
        kw_backoff => "`backoff`",
        catch_clause | kw_catch => "`catch`",
        error_kinds => "an error kind",
        expr | operand | postfix_expr | paren => "an expression",
        op_not | op_neg | kw_not => "`not` or `-`",
        op_default | op_or | op_and | op_eq | op_ne | op_le | op_ge | op_lt | op_gt | op_add
        | op_sub | op_mul | op_div | op_contains | kw_and | kw_or | kw_contains => "an operator",
        field_access => "`.`",
        call => "an action call",
        arg => "an argument",
        list => "a list `[...]`",
        record | record_field => "a record `{ key: value }`",
        float | number => "a number",
        int => "a whole number",
        duration => "a duration such as `10m`",
        boolean => "`true` or `false`",
        none => "`none`",
        string | str_text | str_escape => "a string",
        interpolation => "`{`",
        name | ident | qualified_name => "a name",
        _ => return None,
    })
}

struct Found {
    description: String,
    len_bytes: usize,
}

/// What the text has at `at`: a word, a quoted string start, one character,
/// or the end.
fn found_at(text: &str, at: usize) -> Found {
    let rest = text.get(at..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return Found {
            description: "end of file".into(),
            len_bytes: 0,
        };
    };
    if first.is_alphanumeric() || first == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        return Found {
            len_bytes: word.len(),
            description: format!("`{word}`"),
        };
    }
    let description = match first {
        '\n' | '\r' => "end of line".to_string(),
        '`' => "a backtick".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    };
    Found {
        description,
        len_bytes: first.len_utf8(),
    }
}

/// A hint for common mistakes, judged from the text around the error.
fn hint(text: &str, at: usize, found: &str) -> Option<String> {
    let before = text.get(..at).unwrap_or("");
    let line_before = before.rsplit('\n').next().unwrap_or("");
    if found == "`=`"
        && line_before
            .trim_end()
            .ends_with(|c: char| c.is_alphanumeric())
        && !line_before.trim_start().starts_with("let")
    {
        return Some("to bind a name write `let name = value`; to compare use `==`".into());
    }
    if found == "`'`" {
        return Some("strings are written in double quotes: \"like this\"".into());
    }
    if found == "`:`" && line_before.contains('(') {
        return Some("named arguments are written `name: value`, separated by commas".into());
    }
    if found == "end of file" {
        let opens = text.matches('{').count();
        let closes = text.matches('}').count();
        if opens > closes {
            return Some("a `{` is not closed: add the missing `}`".into());
        }
        if text.matches('"').count() % 2 == 1 {
            return Some("a string is not closed: add the missing `\"`".into());
        }
    }
    None
}
