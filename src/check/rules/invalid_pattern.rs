//! F3011 invalid-pattern: a branch pattern is not a valid regular expression.
//!
//! Why: the arm could never match, and the run would fail when it is tried.
//!
//! Instead: fix the expression (the syntax is Rust's `regex` crate); write
//! `(?i)` at the start to ignore case, `\/` for a slash.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The diagnostic for `pattern` at `span`, if it does not compile.
pub fn check(pattern: &str, span: Span) -> Option<Diagnostic> {
    let reason = error_of(pattern)?;
    Some(
        Diagnostic::new(Code::InvalidPattern, "invalid regular expression")
            .with_label(span, reason)
            .with_help("patterns use Rust regex syntax; start with (?i) to ignore case"),
    )
}

/// Most patterns whose verdict is remembered, and the longest one: the cache
/// only has to catch the same few patterns repeated across flows and checks
/// (an editor re-checks on every keystroke), not grow without bound.
const CACHE_ENTRIES: usize = 4096;
const CACHE_PATTERN_BYTES: usize = 1024;

/// Why `pattern` does not compile, or `None` when it does.
///
/// Compiling a regex is by far the dearest thing the checker does (tens of
/// microseconds for a small pattern, more than checking the rest of its
/// flow), and projects repeat their patterns, so verdicts are remembered per
/// process. The verdict only depends on the pattern text.
fn error_of(pattern: &str) -> Option<String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let cacheable = pattern.len() <= CACHE_PATTERN_BYTES;
    if cacheable {
        // A panic while the lock was held cannot leave a wrong verdict
        // behind (entries are inserted whole), so a poisoned lock is usable.
        let cached = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(pattern)
            .cloned();
        if let Some(verdict) = cached {
            return verdict;
        }
    }
    let verdict = crate::pattern::compile(pattern)
        .err()
        .map(|error| match &error {
            regex::Error::Syntax(text) => text
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .map(|l| l.trim_start_matches("error:").trim().to_string())
                .unwrap_or_else(|| "invalid syntax".to_string()),
            regex::Error::CompiledTooBig(_) => "the expression is too large".to_string(),
            _ => "invalid regular expression".to_string(),
        });
    if cacheable {
        let mut cache = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() < CACHE_ENTRIES {
            cache.insert(pattern.to_string(), verdict.clone());
        }
    }
    verdict
}
