//! F3007 invalid-time-zone: a time zone is not an IANA time zone name.
//!
//! Why: a reminder formatted in a wrong zone tells the customer the wrong
//! hour. Abbreviations like "CET" or offsets are ambiguous across daylight
//! saving time.
//!
//! Instead: use an IANA name such as "Europe/Berlin" or "America/New_York".

use chrono_tz::Tz;

use super::did_you_mean;
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The diagnostic for `zone` at `span`, if it is not an IANA name.
pub fn check(zone: &str, span: Span) -> Option<Diagnostic> {
    if zone.parse::<Tz>().is_ok() {
        return None;
    }
    let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    let help = did_you_mean(zone, names)
        .unwrap_or_else(|| "use an IANA time zone name such as \"Europe/Berlin\"".to_string());
    Some(
        Diagnostic::new(
            Code::InvalidTimeZone,
            format!("unknown time zone \"{zone}\""),
        )
        .with_label(span, "not an IANA time zone")
        .with_help(help),
    )
}
