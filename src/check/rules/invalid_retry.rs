//! F4006 invalid-retry: a `retry` clause has a count, interval or backoff that
//! cannot work.
//!
//! Why: zero retries do nothing; a zero interval hammers a rate-limited API;
//! a backoff below 1 shrinks the wait; huge counts keep a run busy for days.
//!
//! Instead: 1 to 20 retries, an interval of at least 1s, a backoff from 1 to
//! 10 (the product document's strategy: `retry 1 times every 1m`).

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// Most retries a clause may ask for.
pub const MAX_TIMES: i64 = 20;

/// A problem at `span`: `what` is wrong, `label` says it at the place.
pub fn diagnostic(span: Span, what: &str, label: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidRetry, what.to_string())
        .with_label(span, label.to_string())
        .with_help(format!(
            "retry 1 to {MAX_TIMES} times, every 1s or more, with a backoff from 1 to 10, e.g. `retry 3 times every 1m backoff 2`"
        ))
}
