//! Phone numbers already found valid, so the engine checks each number with
//! the full metadata once instead of on every event and every send.
//!
//! `phonenumber`'s validation runs the country's number patterns, tens of
//! microseconds per call: more than the rest of a small flow's run. Whether a
//! text is a valid E.164 number depends on nothing but the text, so a
//! positive answer can be kept. The cache is bounded: when it is full it is
//! emptied and fills again with the numbers in use.

use std::sync::Mutex;

use crate::phone::{check_e164, PhoneProblem};

/// Numbers kept before the cache starts over (about 3 MB at most).
const CAPACITY: usize = 65_536;

static VALID: Mutex<Option<ahash::HashSet<Box<str>>>> = Mutex::new(None);

/// [`check_e164`], answered from the cache for numbers seen valid before.
pub(crate) fn check(phone: &str) -> Result<(), Vec<PhoneProblem>> {
    if let Ok(guard) = VALID.lock() {
        if guard.as_ref().is_some_and(|valid| valid.contains(phone)) {
            return Ok(());
        }
    }
    check_e164(phone)?;
    // A poisoned lock only costs the cache, never the answer.
    if let Ok(mut guard) = VALID.lock() {
        let valid = guard.get_or_insert_with(Default::default);
        if valid.len() >= CAPACITY {
            valid.clear();
        }
        valid.insert(phone.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_like_the_full_check_twice() {
        for phone in [
            "+4915112345678",
            "0151/12345678",
            "+49",
            "",
            "+4915112345678",
        ] {
            assert_eq!(check(phone).is_ok(), check_e164(phone).is_ok(), "{phone}");
            assert_eq!(check(phone).is_ok(), check_e164(phone).is_ok(), "{phone}");
        }
    }
}
