//! A scripted AI provider for offline runs: it answers from a small rules
//! file instead of a model, so `flowc run` can execute flows that use
//! `ai.generate_response` without an account or a network.
//!
//! Every reply starts with `[scripted reply] `, so nobody mistakes it for the
//! assistant's real answer. The rules file is TOML:
//!
//! ```toml
//! default = "Thanks for your message! A colleague will get back to you shortly."
//!
//! [[rules]]
//! contains = ["price", "cost", "kosten"]     # any of, case-insensitive
//! reply = "Our plans start at 19 EUR per month. Shall I send you the details, {customer}?"
//!
//! [[rules]]
//! matches = '(?i)^(hi|hello|hallo)\b'        # a regular expression (regex crate syntax)
//! reply = "Hi! How can I help you today?"
//! ```
//!
//! - The first rule that matches the customer's message wins; without one,
//!   the reply is `default` (or a built-in fallback when there is none).
//! - `contains` is a word or a list of words, any of which must occur in the
//!   message, ignoring case. `matches` is a regular expression. A rule needs
//!   one of the two; with both, both must match.
//! - Replies may use `{customer}`, `{message}`, `{assistant}` and any
//!   `{variable}` of the request's variables. Placeholders that name nothing
//!   stay as written.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use regex::Regex;
use thiserror::Error;

use super::{Ai, AiAnswer, AiRequest};
use crate::runtime::ActionError;

/// What every scripted reply starts with.
pub const REPLY_PREFIX: &str = "[scripted reply] ";

/// The reply when no rule matches and the rules file has no `default`.
pub const FALLBACK_REPLY: &str =
    "Thanks for your message! A colleague will get back to you shortly.";

/// The built-in rules of [`ScriptedAi::default`]: price questions,
/// appointments, opening hours and greetings, in German and English.
pub const BUILTIN_RULES: &str = r#"
default = "Thanks for your message! A colleague will get back to you shortly."

# Price questions.
[[rules]]
contains = ["kosten", "kostet", "preis", "wie viel", "wieviel", "angebot"]
reply = "Unsere Pakete beginnen bei 19 EUR im Monat. Soll ich Ihnen die Details schicken?"

[[rules]]
contains = ["price", "cost", "how much", "quote", "€"]
reply = "Our plans start at 19 EUR per month. Shall I send you the details?"

# Appointments: booking, moving, cancelling.
[[rules]]
contains = ["termin", "verschieben", "absagen", "vereinbaren"]
reply = "Gern! Nennen Sie mir zwei, drei Zeiten, die Ihnen passen, dann bestätigt ein Kollege Ihren Termin."

[[rules]]
contains = ["appointment", "reschedule", "cancel", "booking", "book a"]
reply = "Happy to help with your appointment! Tell me two or three times that suit you and a colleague will confirm."

# Opening hours.
[[rules]]
contains = ["öffnungszeiten", "geöffnet", "geoeffnet", "erreichbar", "wann haben sie offen"]
reply = "Wir sind Montag bis Freitag von 8:00 bis 18:00 Uhr für Sie da."

[[rules]]
contains = ["opening hours", "business hours", "office hours", "are you open", "when do you open"]
reply = "We are here for you Monday to Friday, 8:00 to 18:00."

# Greetings on their own (a greeting followed by a question falls through to
# the rules above or the default).
[[rules]]
matches = '(?i)^\s*(hallo|moin|servus|guten (morgen|tag|abend))\b[\s!.,]*$'
reply = "Hallo! Wie kann ich Ihnen helfen?"

[[rules]]
matches = '(?i)^\s*(hi|hello|hey|good (morning|afternoon|evening))(\s+there)?\b[\s!.,]*$'
reply = "Hi! How can I help you today?"
"#;

/// A rules file could not be read or is not valid.
#[derive(Debug, Error)]
pub enum ScriptError {
    /// The file could not be read.
    #[error("cannot read AI rules {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML.
    #[error("{source_name}: not valid TOML: {message}")]
    Toml {
        /// The file's name, as given.
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// Something outside the rules is wrong (an unknown key, `default` not a text).
    #[error("{source_name}: {problem}")]
    File {
        /// The file's name, as given.
        source_name: String,
        /// What is wrong.
        problem: String,
    },
    /// A rule is wrong.
    #[error("{source_name}: rule {index}: {problem}")]
    Rule {
        /// The file's name, as given.
        source_name: String,
        /// The rule's position, counting `[[rules]]` from 1.
        index: usize,
        /// What is wrong.
        problem: String,
    },
}

/// One rule, ready to match.
#[derive(Debug, Clone)]
struct Rule {
    /// Lower-cased words, any of which must occur; empty for none.
    contains: Vec<String>,
    /// A regular expression that must match.
    matches: Option<Regex>,
    /// The reply, with placeholders.
    reply: String,
}

impl Rule {
    fn applies(&self, message: &str, lowered: &str) -> bool {
        let contains = self.contains.is_empty()
            || self
                .contains
                .iter()
                .any(|word| lowered.contains(word.as_str()));
        let matches = match &self.matches {
            Some(regex) => regex.is_match(message),
            None => true,
        };
        contains && matches
    }
}

/// Where the rules came from, for [`ScriptedAi::describe`].
#[derive(Debug, Clone)]
enum Origin {
    BuiltIn,
    Source(String),
}

/// An [`Ai`] provider that answers from rules, not a model.
///
/// Conversation ids are `scripted-<customer>`, stable per customer. It never
/// fails.
#[derive(Debug, Clone)]
pub struct ScriptedAi {
    origin: Origin,
    default_reply: String,
    rules: Vec<Rule>,
}

impl ScriptedAi {
    /// Reads rules from TOML text; `source_name` names it in errors and in
    /// [`ScriptedAi::describe`].
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use flowc::providers::scripted_ai::ScriptedAi;
    /// use flowc::providers::AiRequest;
    ///
    /// let ai = ScriptedAi::from_toml(r#"
    ///     default = "Thanks, {customer}!"
    ///     [[rules]]
    ///     contains = ["price", "kosten"]
    ///     reply = "Plans start at 19 EUR per month."
    /// "#, "rules.toml")?;
    /// let request = AiRequest {
    ///     assistant: "lead-qualifier".into(),
    ///     model: None,
    ///     instructions: None,
    ///     customer: "+4915112345678".into(),
    ///     message: "What is the PRICE?".into(),
    ///     variables: BTreeMap::new(),
    /// };
    /// assert_eq!(ai.reply(&request), "[scripted reply] Plans start at 19 EUR per month.");
    /// assert_eq!(ai.describe(), "scripted AI (1 rule from rules.toml): not a model");
    /// # Ok::<(), flowc::providers::scripted_ai::ScriptError>(())
    /// ```
    pub fn from_toml(
        text: &str,
        source_name: impl Into<String>,
    ) -> Result<ScriptedAi, ScriptError> {
        let source_name = source_name.into();
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ScriptError::Toml {
                source_name: source_name.clone(),
                message: e.message().to_string(),
            })?;
        let file_error = |problem: String| ScriptError::File {
            source_name: source_name.clone(),
            problem,
        };

        let mut default_reply = None;
        let mut rules = Vec::new();
        for (key, value) in &table {
            match key.as_str() {
                "default" => match value {
                    toml::Value::String(text) => default_reply = Some(text.clone()),
                    other => {
                        return Err(file_error(format!(
                            "`default` must be a text, not {}",
                            type_name(other)
                        )))
                    }
                },
                "rules" => {
                    let toml::Value::Array(items) = value else {
                        return Err(file_error(format!(
                            "`rules` must be a list of tables, written `[[rules]]`, not {}",
                            type_name(value)
                        )));
                    };
                    for (i, item) in items.iter().enumerate() {
                        let rule = parse_rule(item).map_err(|problem| ScriptError::Rule {
                            source_name: source_name.clone(),
                            index: i + 1,
                            problem,
                        })?;
                        rules.push(rule);
                    }
                }
                other => {
                    return Err(file_error(format!(
                        "unknown key `{other}`{}; a rules file has `default` and `[[rules]]`",
                        suggestion(other, &["default", "rules"])
                    )))
                }
            }
        }
        Ok(ScriptedAi {
            origin: Origin::Source(source_name),
            default_reply: default_reply.unwrap_or_else(|| FALLBACK_REPLY.to_string()),
            rules,
        })
    }

    /// Reads rules from a TOML file.
    ///
    /// ```no_run
    /// use flowc::providers::scripted_ai::ScriptedAi;
    ///
    /// let ai = ScriptedAi::from_file("examples/ai_rules.toml")?;
    /// println!("{}", ai.describe());
    /// # Ok::<(), flowc::providers::scripted_ai::ScriptError>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<ScriptedAi, ScriptError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Io {
            path: name.clone(),
            source,
        })?;
        ScriptedAi::from_toml(&text, name)
    }

    /// One line for the CLI saying what answers, e.g.
    /// `scripted AI (3 rules from examples/ai_rules.toml): not a model`.
    pub fn describe(&self) -> String {
        let count = self.rules.len();
        let rules = if count == 1 { "rule" } else { "rules" };
        match &self.origin {
            Origin::BuiltIn => format!("scripted AI ({count} built-in {rules}): not a model"),
            Origin::Source(name) => {
                format!("scripted AI ({count} {rules} from {name}): not a model")
            }
        }
    }

    /// How many rules there are.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The reply to `request`: the first matching rule's, or the default,
    /// with placeholders filled in and [`REPLY_PREFIX`] in front.
    pub fn reply(&self, request: &AiRequest) -> String {
        let lowered = request.message.to_lowercase();
        let template = self
            .rules
            .iter()
            .find(|rule| rule.applies(&request.message, &lowered))
            .map_or(self.default_reply.as_str(), |rule| rule.reply.as_str());
        format!("{REPLY_PREFIX}{}", fill_placeholders(template, request))
    }
}

impl Default for ScriptedAi {
    /// The built-in rules ([`BUILTIN_RULES`]).
    ///
    /// ```
    /// use flowc::providers::scripted_ai::ScriptedAi;
    ///
    /// let ai = ScriptedAi::default();
    /// assert!(ai.describe().starts_with("scripted AI ("));
    /// assert!(ai.describe().ends_with("built-in rules): not a model"));
    /// ```
    fn default() -> Self {
        let mut ai = ScriptedAi::from_toml(BUILTIN_RULES, "built-in rules")
            .expect("the built-in AI rules are valid (checked by a unit test)");
        ai.origin = Origin::BuiltIn;
        ai
    }
}

#[async_trait]
impl Ai for ScriptedAi {
    async fn generate_response(&self, request: &AiRequest) -> Result<AiAnswer, ActionError> {
        Ok(AiAnswer {
            text: self.reply(request),
            conversation_id: format!("scripted-{}", request.customer),
        })
    }
}

/// Reads one `[[rules]]` table; the error is the problem, without the index.
fn parse_rule(value: &toml::Value) -> Result<Rule, String> {
    let toml::Value::Table(table) = value else {
        return Err(format!(
            "must be a table with `contains` or `matches` and `reply`, not {}",
            type_name(value)
        ));
    };
    let mut contains = Vec::new();
    let mut matches = None;
    let mut reply = None;
    for (key, value) in table {
        match key.as_str() {
            "contains" => contains = parse_words(value)?,
            "matches" => {
                let toml::Value::String(pattern) = value else {
                    return Err(format!(
                        "`matches` must be a regular expression in a text, not {}",
                        type_name(value)
                    ));
                };
                let regex = Regex::new(pattern)
                    .map_err(|e| format!("`matches` is not a valid regular expression: {e}"))?;
                matches = Some(regex);
            }
            "reply" => match value {
                toml::Value::String(text) => reply = Some(text.clone()),
                other => return Err(format!("`reply` must be a text, not {}", type_name(other))),
            },
            other => {
                return Err(format!(
                    "unknown key `{other}`{}; a rule has `contains`, `matches` and `reply`",
                    suggestion(other, &["contains", "matches", "reply"])
                ))
            }
        }
    }
    if contains.is_empty() && matches.is_none() {
        return Err(
            "has neither `contains` nor `matches`, so it is not clear when it applies".to_string(),
        );
    }
    let Some(reply) = reply else {
        return Err("has no `reply`".to_string());
    };
    Ok(Rule {
        contains,
        matches,
        reply,
    })
}

/// `contains`: a word or a non-empty list of words, lower-cased.
fn parse_words(value: &toml::Value) -> Result<Vec<String>, String> {
    let words = match value {
        toml::Value::String(word) => vec![word.clone()],
        toml::Value::Array(items) => {
            let mut words = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    toml::Value::String(word) => words.push(word.clone()),
                    other => {
                        return Err(format!(
                            "`contains` must list texts, but has {}",
                            type_name(other)
                        ))
                    }
                }
            }
            words
        }
        other => {
            return Err(format!(
                "`contains` must be a text or a list of texts, not {}",
                type_name(other)
            ))
        }
    };
    if words.is_empty() {
        return Err("`contains` is an empty list, so the rule would never apply".to_string());
    }
    if words.iter().any(|word| word.trim().is_empty()) {
        return Err("`contains` has an empty text, which would match every message".to_string());
    }
    Ok(words.iter().map(|word| word.to_lowercase()).collect())
}

/// `a text`, `a number`, ... for error messages.
fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a text",
        toml::Value::Integer(_) | toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true/false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// ` (did you mean `contains`?)` for a near miss, else nothing.
fn suggestion(key: &str, known: &[&str]) -> String {
    let lowered = key.to_lowercase();
    known
        .iter()
        .map(|candidate| (strsim::levenshtein(&lowered, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default()
}

/// Fills `{customer}`, `{message}`, `{assistant}` and `{variable}` from the
/// request; placeholders that name nothing stay as written. Filled-in values
/// are not scanned again.
pub(crate) fn fill_placeholders(template: &str, request: &AiRequest) -> String {
    fill(template, |name| match name {
        "customer" => Some(request.customer.as_str()),
        "message" => Some(request.message.as_str()),
        "assistant" => Some(request.assistant.as_str()),
        _ => lookup(&request.variables, name),
    })
}

fn lookup<'a>(variables: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    variables.get(name).map(String::as_str)
}

fn fill<'a>(template: &str, value_of: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let filled = after
            .find('}')
            .and_then(|close| value_of(&after[..close]).map(|value| (value, close)));
        match filled {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIEF_EXAMPLE: &str = r#"
default = "Thanks for your message! A colleague will get back to you shortly."
[[rules]]
contains = ["price", "cost", "kosten"]     # any of, case-insensitive
reply = "Our plans start at 19 EUR per month. Shall I send you the details, {customer}?"
[[rules]]
matches = "(?i)^(hi|hello|hallo)\\b"        # regex crate
reply = "Hi! How can I help you today?"
"#;

    fn request(customer: &str, message: &str) -> AiRequest {
        AiRequest {
            assistant: "lead-qualifier".into(),
            model: Some("gpt-4o-mini".into()),
            instructions: None,
            customer: customer.into(),
            message: message.into(),
            variables: BTreeMap::new(),
        }
    }

    fn error(text: &str) -> String {
        match ScriptedAi::from_toml(text, "rules.toml") {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn first_matching_rule_wins_and_replies_are_labelled() {
        let ai = ScriptedAi::from_toml(BRIEF_EXAMPLE, "examples/ai_rules.toml").unwrap();
        let answer = ai
            .generate_response(&request("+4915112345678", "Hello, what does it COST?"))
            .await
            .unwrap();
        assert_eq!(
            answer.text,
            "[scripted reply] Our plans start at 19 EUR per month. Shall I send you the details, +4915112345678?"
        );
        assert_eq!(answer.conversation_id, "scripted-+4915112345678");
        assert_eq!(
            ai.reply(&request("c", "hallo zusammen")),
            "[scripted reply] Hi! How can I help you today?"
        );
        assert_eq!(
            ai.reply(&request("c", "Do you install on flat roofs?")),
            "[scripted reply] Thanks for your message! A colleague will get back to you shortly."
        );
        assert_eq!(
            ai.describe(),
            "scripted AI (2 rules from examples/ai_rules.toml): not a model"
        );
    }

    #[test]
    fn contains_ignores_case_beyond_ascii_and_both_conditions_must_hold() {
        let ai = ScriptedAi::from_toml(
            r#"
            [[rules]]
            contains = "ÖFFNUNGSZEITEN"
            reply = "hours"
            [[rules]]
            contains = ["termin"]
            matches = '(?i)verschieben'
            reply = "move"
            [[rules]]
            contains = ["termin"]
            reply = "book"
            "#,
            "r",
        )
        .unwrap();
        assert_eq!(
            ai.reply(&request("c", "Ihre Öffnungszeiten?")),
            "[scripted reply] hours"
        );
        assert_eq!(
            ai.reply(&request("c", "Termin verschieben")),
            "[scripted reply] move"
        );
        assert_eq!(
            ai.reply(&request("c", "Termin bitte")),
            "[scripted reply] book"
        );
        assert_eq!(
            ai.reply(&request("c", "nichts")),
            format!("{REPLY_PREFIX}{FALLBACK_REPLY}")
        );
    }

    #[test]
    fn placeholders_are_filled_once_and_unknown_ones_stay() {
        let mut req = request("+4915112345678", "I am {customer}");
        req.variables
            .insert("office".into(), "berlin-office".into());
        req.variables
            .insert("customer".into(), "not this one".into());
        let filled = fill_placeholders(
            "{assistant} for {customer} at {office}: {message} {unknown} {{office}} { office } {",
            &req,
        );
        assert_eq!(
            filled,
            "lead-qualifier for +4915112345678 at berlin-office: I am {customer} {unknown} {berlin-office} { office } {"
        );
    }

    #[test]
    fn errors_name_the_rule_and_the_problem() {
        assert_eq!(
            error("[[rules]]\nmatches = '(unclosed'\nreply = 'x'\n[[rules]]\ncontains = 'a'\nreply = 'b'")
                .lines()
                .next()
                .unwrap(),
            "rules.toml: rule 1: `matches` is not a valid regular expression: regex parse error:"
        );
        assert_eq!(
            error("[[rules]]\ncontains = 'a'\nreply = 'x'\n[[rules]]\nreply = 'y'"),
            "rules.toml: rule 2: has neither `contains` nor `matches`, so it is not clear when it applies"
        );
        assert_eq!(
            error("[[rules]]\ncontain = 'a'\nreply = 'x'"),
            "rules.toml: rule 1: unknown key `contain` (did you mean `contains`?); a rule has `contains`, `matches` and `reply`"
        );
        assert_eq!(
            error("[[rules]]\ncontains = 'a'"),
            "rules.toml: rule 1: has no `reply`"
        );
        assert_eq!(
            error("[[rules]]\ncontains = []\nreply = 'x'"),
            "rules.toml: rule 1: `contains` is an empty list, so the rule would never apply"
        );
        assert_eq!(
            error("[[rules]]\ncontains = ['a', '']\nreply = 'x'"),
            "rules.toml: rule 1: `contains` has an empty text, which would match every message"
        );
        assert_eq!(
            error("[[rules]]\ncontains = ['a', 1]\nreply = 'x'"),
            "rules.toml: rule 1: `contains` must list texts, but has a number"
        );
        assert_eq!(
            error("[[rules]]\ncontains = 'a'\nreply = 3"),
            "rules.toml: rule 1: `reply` must be a text, not a number"
        );
        assert_eq!(
            error("defualt = 'x'"),
            "rules.toml: unknown key `defualt` (did you mean `default`?); a rules file has `default` and `[[rules]]`"
        );
        assert_eq!(
            error("default = 1"),
            "rules.toml: `default` must be a text, not a number"
        );
        assert_eq!(
            error("rules = 'x'"),
            "rules.toml: `rules` must be a list of tables, written `[[rules]]`, not a text"
        );
        assert!(error("[[rules]\n").starts_with("rules.toml: not valid TOML: "));
    }

    #[test]
    fn missing_files_are_io_errors() {
        let err = ScriptedAi::from_file("/nonexistent/ai_rules.toml").unwrap_err();
        assert!(matches!(err, ScriptError::Io { .. }));
        assert!(err
            .to_string()
            .starts_with("cannot read AI rules /nonexistent/ai_rules.toml: "));
    }

    #[test]
    fn built_in_rules_answer_in_german_and_english() {
        let ai = ScriptedAi::default();
        assert_eq!(ai.describe(), "scripted AI (8 built-in rules): not a model");
        let reply = |message: &str| ai.reply(&request("c", message));
        assert!(reply("Was kostet das?").contains("19 EUR im Monat"));
        assert!(reply("Hi, what does a 10 kWp system cost?").contains("19 EUR per month"));
        assert!(reply("Kann ich meinen Termin verschieben?").contains("Termin"));
        assert!(reply("I need to reschedule my appointment").contains("appointment"));
        assert!(reply("Wie sind Ihre Öffnungszeiten?").contains("Montag bis Freitag"));
        assert!(reply("What are your opening hours?").contains("Monday to Friday"));
        assert_eq!(
            reply("Guten Morgen!"),
            "[scripted reply] Hallo! Wie kann ich Ihnen helfen?"
        );
        assert_eq!(
            reply("hello there"),
            "[scripted reply] Hi! How can I help you today?"
        );
        assert_eq!(
            reply("Hello! Do you install on flat roofs?"),
            format!("{REPLY_PREFIX}{FALLBACK_REPLY}")
        );
        assert!(reply("anything").starts_with(REPLY_PREFIX));
    }

    #[test]
    fn the_example_rules_qualify_leads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ai_rules.toml");
        let ai = ScriptedAi::from_file(path).unwrap();
        let mut req = request(
            "+4917612345678",
            "Hi, what does a 10 kWp system with battery storage cost for a detached house?",
        );
        req.variables.insert("source".into(), "whatsapp".into());
        req.variables
            .insert("office".into(), "berlin-office".into());
        let price = ai.reply(&req);
        assert!(price.starts_with(REPLY_PREFIX), "{price}");
        assert!(price.contains("EUR"), "{price}");
        assert!(!price.contains('{'), "unfilled placeholder: {price}");

        req.message =
            "Hello, this is urgent: our inverter has shown error E-042 since this morning and the system produces nothing."
                .into();
        assert!(ai.reply(&req).contains("service"), "{}", ai.reply(&req));

        req.message = "Hello! I saw your ad. Do you also install on flat roofs?".into();
        assert!(ai.reply(&req).contains("flat roofs"), "{}", ai.reply(&req));

        req.message = "Wir verbrauchen etwa 4.500 kWh im Jahr.".into();
        assert!(ai.reply(&req).contains("Wann"), "{}", ai.reply(&req));

        // Every reply of the file is free of placeholders the flow does not fill.
        for rule in &ai.rules {
            let filled = fill_placeholders(&rule.reply, &req);
            assert!(
                !filled.contains('{'),
                "unfilled placeholder in {:?}",
                rule.reply
            );
        }
        assert!(ai.describe().ends_with("ai_rules.toml): not a model"));
    }
}
