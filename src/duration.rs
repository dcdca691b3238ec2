//! Durations as the language writes them: `500ms`, `30s`, `10m`, `24h`,
//! `7d`, `2w`, and combinations like `1h30m`. One parser and one printer for
//! the syntax, the checker's messages, events and the runtime.

const UNITS: [(u64, &str); 6] = [
    (604_800_000, "w"),
    (86_400_000, "d"),
    (3_600_000, "h"),
    (60_000, "m"),
    (1_000, "s"),
    (1, "ms"),
];

/// Parses `1h30m`, `500ms`, `7d` into milliseconds; `None` when the text is
/// not a duration or does not fit in 64 bits.
///
/// ```
/// assert_eq!(flowc::duration::parse("4m30s"), Some(270_000));
/// assert_eq!(flowc::duration::parse("10"), None);
/// ```
pub fn parse(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let unit = rest.chars().next()?;
            let ms = UNITS
                .iter()
                .find(|(_, u)| u.len() == 1 && u.starts_with(unit))?
                .0;
            (ms, 1)
        };
        rest = &rest[len..];
        total = total.checked_add(number.checked_mul(unit_ms)?)?;
    }
    Some(total)
}

/// Formats milliseconds in the literal syntax, largest units first.
///
/// ```
/// assert_eq!(flowc::duration::format(5_400_000), "1h30m");
/// assert_eq!(flowc::duration::format(0), "0s");
/// ```
pub fn format(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (size, unit) in UNITS {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in ["10m", "1h30m", "500ms", "7d", "2w3d", "1m1s1ms"] {
            let ms = parse(text).unwrap();
            assert_eq!(parse(&format(ms)), Some(ms), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for text in ["", "10", "m", "10x", "99999999999999999999d", "1.5h"] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
