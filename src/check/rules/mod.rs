//! One file per diagnostic code of the checker.
//!
//! Each file documents its rule for users (what it catches, why, an example
//! and the fix) and builds its diagnostic; where the rule's logic stands on
//! its own (a phone literal, a regex), the check lives there too. The walk in
//! `check/flows.rs` decides where each rule applies.

pub mod catch_cannot_raise;
pub mod catch_shadowed;
pub mod duplicate_argument;
pub mod duplicate_definition;
pub mod duplicate_item;
pub mod flow_without_trigger;
pub mod invalid_date_format;
pub mod invalid_debounce;
pub mod invalid_media;
pub mod invalid_pattern;
pub mod invalid_retry;
pub mod invalid_time_zone;
pub mod invalid_wait;
pub mod item_count;
pub mod marketing_without_opt_out;
pub mod media_file_missing;
pub mod message_too_long;
pub mod missing_argument;
pub mod no_value;
pub mod one_of_arguments;
pub mod outside_window;
pub mod phone_not_e164;
pub mod retry_not_action;
pub mod template_parameters;
pub mod template_variables;
pub mod text_too_long;
pub mod too_many_arguments;
pub mod type_mismatch;
pub mod unhandled_reply_id;
pub mod unknown_action;
pub mod unknown_argument;
pub mod unknown_assistant;
pub mod unknown_attribute;
pub mod unknown_error_kind;
pub mod unknown_field;
pub mod unknown_reply_id;
pub mod unknown_sender;
pub mod unknown_template;
pub mod unknown_trigger;
pub mod unknown_type;
pub mod unknown_variable;
pub mod unreachable_code;
pub mod unset_after_catch;
pub mod via_without_sender;
pub mod wait_else_continues;
pub mod window_not_proven;

/// The candidate closest to `name`, if it is close enough to be a likely
/// typo: within a third of the name's length in edits, or the same ignoring
/// case and separators.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Names are short; a long string is no typo of one, and comparing it
    // with hundreds of candidates would cost milliseconds.
    if name.len() > 64 {
        return None;
    }
    let normalized = |s: &str| s.to_lowercase().replace(['_', '-', '.'], "");
    let wanted = normalized(name);
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            let distance = if normalized(c) == wanted {
                0
            } else {
                strsim::levenshtein(name, c)
            };
            (distance, c)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, c)| c)
}

/// `did you mean `x`?` or a fallback text.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Lists names for a help text, at most `max`, as `a`, `b` and `c`.
pub(crate) fn list_names<'a>(names: impl IntoIterator<Item = &'a str>, max: usize) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    let shown: Vec<String> = names.iter().take(max).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(max);
    match (shown.len(), more) {
        (0, _) => "none".to_string(),
        (1, 0) => shown[0].clone(),
        (n, 0) => format!("{} and {}", shown[..n - 1].join(", "), shown[n - 1]),
        (_, more) => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_not_strangers() {
        let names = ["appointment_reminder", "missed_you", "welcome"];
        assert_eq!(
            closest("apointment_reminder", names),
            Some("appointment_reminder")
        );
        assert_eq!(closest("welcom", names), Some("welcome"));
        assert_eq!(closest("invoice", names), None);
        assert_eq!(closest("Missed-You", names), Some("missed_you"));
    }

    #[test]
    fn lists_are_readable() {
        assert_eq!(list_names(["a"], 3), "`a`");
        assert_eq!(list_names(["a", "b", "c"], 3), "`a`, `b` and `c`");
        assert_eq!(list_names(["a", "b", "c", "d"], 2), "`a`, `b` and 2 more");
    }
}
