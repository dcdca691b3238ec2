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

/// Cities people write that are not zone names of their own, with their zone.
const CITY_ZONES: &[(&str, &str)] = &[
    ("munich", "Europe/Berlin"),
    ("münchen", "Europe/Berlin"),
    ("hamburg", "Europe/Berlin"),
    ("frankfurt", "Europe/Berlin"),
    ("cologne", "Europe/Berlin"),
    ("köln", "Europe/Berlin"),
    ("stuttgart", "Europe/Berlin"),
    ("düsseldorf", "Europe/Berlin"),
    ("salzburg", "Europe/Vienna"),
    ("graz", "Europe/Vienna"),
    ("geneva", "Europe/Zurich"),
    ("bern", "Europe/Zurich"),
    ("milan", "Europe/Rome"),
    ("barcelona", "Europe/Madrid"),
    ("san francisco", "America/Los_Angeles"),
    ("boston", "America/New_York"),
    ("washington", "America/New_York"),
];

/// The diagnostic for `zone` at `span`, if it is not a location-based IANA
/// name. Abbreviations such as "CET" are in the IANA database for history's
/// sake, but they do not follow a place's daylight saving rules, so they are
/// refused with the rest.
pub fn check(zone: &str, span: Span) -> Option<Diagnostic> {
    let parses = zone.parse::<Tz>().is_ok();
    if parses && (zone.contains('/') || zone == "UTC") {
        return None;
    }
    let city = zone
        .rsplit('/')
        .next()
        .unwrap_or(zone)
        .replace('_', " ")
        .to_lowercase();
    let alias = CITY_ZONES.iter().find(|(c, _)| *c == city).map(|(_, z)| *z);
    let locations = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .filter(|name| name.contains('/'));
    let help = match alias {
        Some(zone) => format!("did you mean `{zone}`?"),
        None if parses => format!(
            "\"{zone}\" ignores local daylight saving rules: use a location such as \"Europe/Berlin\""
        ),
        None => did_you_mean(zone, locations)
            .unwrap_or_else(|| "use an IANA time zone name such as \"Europe/Berlin\"".to_string()),
    };
    let label = if parses {
        "not a location-based time zone"
    } else {
        "not an IANA time zone"
    };
    Some(
        Diagnostic::new(
            Code::InvalidTimeZone,
            format!("unknown time zone \"{zone}\""),
        )
        .with_label(span, label)
        .with_help(help),
    )
}
