//! F3001 phone-not-e164: a phone number literal is not in strict E.164.
//!
//! Why: WhatsApp addresses customers by international number. The product
//! document lists `0151/12345678` and `+49 (0) 151 12345678` as wrong and
//! `+4915112345678` as right; a wrong number fails the send (InvalidPhone).
//!
//! Instead: write `+`, the country code, then the number's digits only.

use crate::diag::{Code, Diagnostic};
use crate::phone::{check_e164, describe};
use crate::source::Span;

/// The diagnostic for `number` written at `span`, if it is not strict E.164.
pub fn check(number: &str, span: Span) -> Option<Diagnostic> {
    let problems = check_e164(number).err()?;
    Some(
        Diagnostic::new(Code::PhoneNotE164, "phone number is not in E.164 format")
            .with_label(span, describe(&problems))
            .with_help(
                "WhatsApp needs +, the country code, then digits only, e.g. \"+4915112345678\"",
            ),
    )
}
