//! `flowc explain CODE`: the long explanation of a diagnostic code (why the
//! rule exists, an example, what to do instead), as `docs/diagnostics.md`
//! gives it. The page is built from the rule files' doc comments and kept
//! current by `tests/docs.rs`; it is embedded, so the binary explains
//! without the source tree.

use super::Code;

/// The reference page of every code.
const PAGE: &str = include_str!("../../docs/diagnostics.md");

impl Code {
    /// The code written as `F4010` or as its slug `invalid-wait` (any case).
    ///
    /// ```
    /// use flowc::diag::Code;
    ///
    /// assert_eq!(Code::find("f4010"), Some(Code::InvalidWait));
    /// assert_eq!(Code::find("invalid-wait"), Some(Code::InvalidWait));
    /// assert_eq!(Code::find("F9999"), None);
    /// ```
    pub fn find(text: &str) -> Option<Code> {
        let text = text.trim();
        Code::ALL.iter().copied().find(|code| {
            code.as_str().eq_ignore_ascii_case(text) || code.slug().eq_ignore_ascii_case(text)
        })
    }

    /// The code's section of the reference: its slug and summary, then,
    /// where the rule has them, why it exists, an example and what to do
    /// instead.
    ///
    /// ```
    /// use flowc::diag::Code;
    ///
    /// let text = Code::PhoneNotE164.explanation();
    /// assert!(text.starts_with("F3001 `phone-not-e164`: A phone number literal"));
    /// assert!(text.contains("Why:"));
    /// ```
    pub fn explanation(self) -> String {
        let heading = format!("## {}\n", self.as_str());
        let section = PAGE
            .split_once(&heading)
            .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
            .map(str::trim)
            .filter(|text| !text.is_empty());
        match section {
            Some(text) => format!("{} {text}\n", self.as_str()),
            // The page lags behind a new code until tests/docs.rs is run.
            None => format!("{} `{}`: {}\n", self.as_str(), self.slug(), self.summary()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_section() {
        for code in Code::ALL {
            let text = code.explanation();
            assert!(
                text.starts_with(&format!("{} `{}`: ", code.as_str(), code.slug())),
                "{text}"
            );
            assert!(!text.contains("\n## "), "{text}");
        }
    }
}
