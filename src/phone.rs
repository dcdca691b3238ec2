//! Phone numbers in strict E.164, as WhatsApp needs them.
//!
//! The product document accepts `+4915112345678` and rejects `0151/12345678`
//! and `+49 (0) 151 12345678`. The phonenumber crate alone accepts the last one
//! (it strips punctuation and the trunk prefix), so the shape
//! `+[1-9][0-9]{1,14}` is checked first and validity against the numbering
//! plan second. The checker (on literals) and the runtime (on every recipient)
//! share this one function.

use std::fmt;

/// Why a phone number is not strict E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneProblem {
    /// The text is empty.
    Empty,
    /// No leading `+`; `national_prefix` is true when it starts with a trunk `0`.
    NoPlus {
        /// Starts with `0`, as national numbers do.
        national_prefix: bool,
    },
    /// A character other than the leading `+` and digits.
    BadCharacter(char),
    /// The country code would start with 0.
    ZeroCountryCode,
    /// Fewer than 2 or more than 15 digits.
    BadLength(usize),
    /// The right shape, but no valid number of its country's numbering plan.
    NotValid,
}

impl fmt::Display for PhoneProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneProblem::Empty => f.write_str("the number is empty"),
            PhoneProblem::NoPlus {
                national_prefix: true,
            } => f.write_str("no leading + and country code"),
            PhoneProblem::NoPlus {
                national_prefix: false,
            } => f.write_str("no leading +"),
            PhoneProblem::BadCharacter(' ') => f.write_str("spaces are not allowed"),
            PhoneProblem::BadCharacter(c) => write!(f, "'{c}' is not allowed"),
            PhoneProblem::ZeroCountryCode => f.write_str("a country code never starts with 0"),
            PhoneProblem::BadLength(n) => write!(
                f,
                "{n} digits; E.164 numbers have a country code and at most 15 digits in all"
            ),
            PhoneProblem::NotValid => {
                f.write_str("not a valid number in its country's numbering plan")
            }
        }
    }
}

/// Checks that `text` is a phone number in strict E.164 format.
///
/// ```
/// use flowc::phone::{check_e164, PhoneProblem};
///
/// assert!(check_e164("+4915112345678").is_ok());
/// assert!(check_e164("+436641234567").is_ok());
/// assert_eq!(check_e164("0151/12345678"), Err(vec![
///     PhoneProblem::NoPlus { national_prefix: true },
///     PhoneProblem::BadCharacter('/'),
/// ]));
/// assert!(check_e164("+49 (0) 151 12345678").is_err());
/// assert!(check_e164("+491").is_err());
/// ```
///
/// All shape problems are returned together, so a message can name each.
pub fn check_e164(text: &str) -> Result<(), Vec<PhoneProblem>> {
    if text.is_empty() {
        return Err(vec![PhoneProblem::Empty]);
    }
    let mut problems = Vec::new();
    let digits_part = match text.strip_prefix('+') {
        Some(rest) => rest,
        None => {
            problems.push(PhoneProblem::NoPlus {
                national_prefix: text.starts_with('0'),
            });
            text
        }
    };
    let mut seen = Vec::new();
    for c in digits_part.chars() {
        if !c.is_ascii_digit() && !seen.contains(&c) {
            seen.push(c);
            problems.push(PhoneProblem::BadCharacter(c));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if digits_part.starts_with('0') {
        return Err(vec![PhoneProblem::ZeroCountryCode]);
    }
    if !(2..=15).contains(&digits_part.len()) {
        return Err(vec![PhoneProblem::BadLength(digits_part.len())]);
    }
    match phonenumber::parse(None, text) {
        Ok(number) if phonenumber::is_valid(&number) => Ok(()),
        _ => Err(vec![PhoneProblem::NotValid]),
    }
}

/// Describes a list of problems in one line, e.g.
/// `no leading + and country code; '/' is not allowed`.
pub fn describe(problems: &[PhoneProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_document_examples() {
        assert_eq!(check_e164("+4915112345678"), Ok(()));
        assert_eq!(check_e164("+436641234567"), Ok(()));
        let slash = check_e164("0151/12345678").unwrap_err();
        assert_eq!(
            describe(&slash),
            "no leading + and country code; '/' is not allowed"
        );
        let spaced = check_e164("+49 (0) 151 12345678").unwrap_err();
        assert_eq!(
            describe(&spaced),
            "spaces are not allowed; '(' is not allowed; ')' is not allowed"
        );
        assert_eq!(check_e164("+491"), Err(vec![PhoneProblem::NotValid]));
    }

    #[test]
    fn shape_edges() {
        assert_eq!(check_e164(""), Err(vec![PhoneProblem::Empty]));
        assert_eq!(
            check_e164("+0151"),
            Err(vec![PhoneProblem::ZeroCountryCode])
        );
        assert_eq!(
            check_e164("+1234567890123456"),
            Err(vec![PhoneProblem::BadLength(16)])
        );
        assert_eq!(check_e164("+"), Err(vec![PhoneProblem::BadLength(0)]));
        assert!(check_e164("+٤٩١٥١").is_err());
    }
}
