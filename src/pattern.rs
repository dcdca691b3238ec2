//! Branch patterns (`matches /.../`): one way to compile them, for the
//! checker that rejects bad ones and the runtime that matches with them.

/// The most memory a compiled pattern may take. Branch patterns are short; a
/// pattern over this is a mistake, and failing early keeps checks fast.
pub const SIZE_LIMIT: usize = 1 << 18;

/// Compiles a branch pattern (Rust regex syntax).
///
/// ```
/// let refund = flowc::pattern::compile("(?i)refund|money back").unwrap();
/// assert!(refund.is_match("I want a REFUND"));
/// assert!(flowc::pattern::compile("(").is_err());
/// ```
pub fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
}
