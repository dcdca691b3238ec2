//! The project configuration, `flow.toml`: senders, templates and assistants.
//!
//! Flows name things by string (`sender: "berlin-office"`, `template:
//! "appointment_confirmed"`, `assistant: "lead-qualifier"`); this file says
//! what those names stand for. The checker looks names up here (unknown
//! sender, template variable count, marketing without opt-out) and the runtime
//! takes the WhatsApp phone number id and the template language from here.
//!
//! [`Config::parse`] never stops at the first problem: it reports every one as
//! a [`Diagnostic`] pointing at the exact key or value in `flow.toml`, and keeps
//! every entry that is free of problems, so the checker can still judge the
//! flows that only use the good entries.
//!
//! ```
//! use flowc::config::{Config, Placeholders, TemplateCategory};
//! use flowc::source::FileId;
//!
//! let text = r#"
//! [senders.berlin-office]
//! phone_number_id = "106540352242922"
//!
//! [templates.spring_sale]
//! language = "de"
//! category = "marketing"
//! body = "Hallo {{customer_name}}, 20 % auf alles! Antworte STOP zum Abmelden."
//! "#;
//! let (config, diagnostics) = Config::parse(text, FileId(0));
//! assert!(diagnostics.is_empty());
//! let sale = &config.templates["spring_sale"];
//! assert_eq!(sale.category, TemplateCategory::Marketing);
//! assert_eq!(sale.placeholders, Placeholders::Named(vec!["customer_name".into()]));
//! assert!(sale.has_opt_out());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml_edit::{ImDocument, Item, TableLike};

use crate::diag::{Code, Diagnostic};
use crate::phone;
use crate::source::{FileId, Span};

/// Top-level tables that later features own (WhatsApp credentials, AI
/// provider, store, server, rate limits, campaigns, notifications). They are
/// accepted and not looked into, so a project can already write them without
/// this loader calling them unknown.
const RESERVED_TABLES: &[&str] = &[
    "whatsapp",
    "ai",
    "store",
    "serve",
    "limits",
    "campaigns",
    "notify",
];

/// Wordings that offer a way to opt out of messages, lower case, in the
/// languages WhatsApp businesses commonly write templates in. Matched as whole
/// words, so "stop" does not match "nonstop" or "stopover".
const OPT_OUT_PHRASES: &[&str] = &[
    // English
    "stop",
    "unsubscribe",
    "opt out",
    "opt-out",
    "optout",
    // German
    "abmelden",
    "abbestellen",
    "abmeldung",
    "stopp",
    // French
    "désabonner",
    "désabonnement",
    "désinscrire",
    // Spanish
    "darse de baja",
    "dar de baja",
    "date de baja",
    "cancelar suscripción",
    // Portuguese
    "cancelar inscrição",
    "descadastrar",
    // Italian
    "disiscriviti",
    "annulla iscrizione",
    // Dutch
    "afmelden",
    "uitschrijven",
    // Turkish
    "abonelikten çık",
    // Polish
    "wypisz się",
    // Russian
    "отписаться",
];

/// The parsed `flow.toml`: every sender, template and assistant that has no
/// problem, by name.
///
/// ```
/// use flowc::config::Config;
/// use flowc::source::FileId;
///
/// let (config, diagnostics) = Config::parse("", FileId(0));
/// assert!(config.is_empty());
/// assert!(diagnostics.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// WhatsApp business numbers that flows send from, by name.
    pub senders: BTreeMap<String, SenderConfig>,
    /// Approved WhatsApp templates, by their name at Meta.
    pub templates: BTreeMap<String, TemplateConfig>,
    /// AI assistants, by name.
    pub assistants: BTreeMap<String, AssistantConfig>,
}

/// A WhatsApp business number: `[senders.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderConfig {
    /// The name flows use, e.g. `berlin-office`.
    pub name: String,
    /// The Cloud API's phone number id (digits), used in the send URL.
    pub phone_number_id: String,
    /// The number itself in E.164, when given; for display and logs.
    pub phone: Option<String>,
    /// The table key's span (`berlin-office` in `[senders.berlin-office]`).
    pub span: Span,
}

/// An approved WhatsApp template: `[templates.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateConfig {
    /// The template's name at Meta, e.g. `appointment_confirmed`.
    pub name: String,
    /// The language code it was approved in, e.g. `de` or `pt_BR`.
    pub language: String,
    /// Marketing, utility or authentication.
    pub category: TemplateCategory,
    /// The body text, with its placeholders.
    pub body: String,
    /// The placeholders of [`TemplateConfig::body`].
    pub placeholders: Placeholders,
    /// An explicit answer to "does this template offer an opt-out", for
    /// opt-outs the body text does not show (e.g. a quick-reply button).
    pub opt_out: Option<bool>,
    /// The table key's span (`appointment_confirmed` in `[templates.appointment_confirmed]`).
    pub span: Span,
}

/// A template's category at Meta; it decides pricing and the rules, e.g.
/// marketing messages should offer an opt-out.
///
/// ```
/// use flowc::config::TemplateCategory;
///
/// assert_eq!(TemplateCategory::Utility.to_string(), "utility");
/// assert_eq!("marketing".parse(), Ok(TemplateCategory::Marketing));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateCategory {
    /// Promotions, offers, re-engagement.
    Marketing,
    /// Updates about something the customer did: orders, appointments.
    Utility,
    /// One-time passcodes.
    Authentication,
}

impl TemplateCategory {
    /// Every category, in the order help texts list them.
    pub const ALL: &'static [TemplateCategory] = &[
        TemplateCategory::Marketing,
        TemplateCategory::Utility,
        TemplateCategory::Authentication,
    ];

    /// The name as written in `flow.toml`, e.g. `utility`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateCategory::Marketing => "marketing",
            TemplateCategory::Utility => "utility",
            TemplateCategory::Authentication => "authentication",
        }
    }
}

impl fmt::Display for TemplateCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TemplateCategory {
    type Err = ();

    /// Parses the exact lower-case name, as `flow.toml` requires.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TemplateCategory::ALL
            .iter()
            .copied()
            .find(|category| category.as_str() == s)
            .ok_or(())
    }
}

/// The placeholders of a template body; a send must supply a value for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholders {
    /// `{{1}}`..`{{n}}`; the number is `n`, 0 when the body has none.
    Positional(usize),
    /// `{{customer_name}}` and the like, in order of first appearance, each once.
    Named(Vec<String>),
}

impl Placeholders {
    /// How many values a send must supply.
    ///
    /// ```
    /// use flowc::config::Placeholders;
    ///
    /// assert_eq!(Placeholders::Positional(4).count(), 4);
    /// assert_eq!(Placeholders::Named(vec!["name".into()]).count(), 1);
    /// ```
    pub fn count(&self) -> usize {
        match self {
            Placeholders::Positional(highest) => *highest,
            Placeholders::Named(names) => names.len(),
        }
    }
}

/// An AI assistant: `[assistants.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantConfig {
    /// The name flows use, e.g. `lead-qualifier`.
    pub name: String,
    /// The model, e.g. `gpt-4o-mini`; the AI provider's default when absent.
    pub model: Option<String>,
    /// The system instructions.
    pub instructions: Option<String>,
    /// The table key's span (`lead-qualifier` in `[assistants.lead-qualifier]`).
    pub span: Span,
}

/// Why a template body's placeholders are not what WhatsApp accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderProblem {
    /// Both `{{1}}`-style and `{{name}}`-style placeholders; a template has one format.
    #[error("positional `{positional}` and named `{named}` placeholders are mixed")]
    Mixed {
        /// The first positional placeholder, with braces, e.g. `{{1}}`.
        positional: String,
        /// The first named placeholder, with braces, e.g. `{{name}}`.
        named: String,
    },
    /// Positional placeholders that are not exactly `{{1}}`..`{{highest}}`.
    // `{{{{` and `}}}}` are escaped braces: the text reads `{{2}} is missing`.
    #[error(
        "`{{{{{missing}}}}}` is missing; placeholders must be numbered 1 to {highest} without gaps"
    )]
    Gap {
        /// The first number between 1 and `highest` that no placeholder has.
        missing: usize,
        /// The highest number used.
        highest: usize,
    },
    /// A placeholder that is neither a number from 1 nor a lower-case name.
    #[error("`{{{{{name}}}}}` is not a valid placeholder")]
    InvalidName {
        /// The text between the braces.
        name: String,
    },
    /// `{{}}`.
    #[error("`{{{{}}}}` is an empty placeholder")]
    Empty,
    /// A `{{` with no `}}` after it.
    #[error("a `{{{{` is never closed with `}}}}`")]
    Unclosed,
}

impl PlaceholderProblem {
    /// The rule and how to fix the body, for a diagnostic's help.
    ///
    /// ```
    /// use flowc::config::parse_placeholders;
    ///
    /// let problem = parse_placeholders("Hi {{1}}, see you at {{3}}").unwrap_err();
    /// assert!(problem.help().contains("{{2}}"));
    /// ```
    pub fn help(&self) -> String {
        match self {
            PlaceholderProblem::Mixed { .. } => "a WhatsApp template uses either positional \
                placeholders {{1}}, {{2}}, ... or named ones like {{customer_name}}, not both"
                .to_owned(),
            PlaceholderProblem::Gap { missing, highest } => format!(
                "WhatsApp numbers positional placeholders {{{{1}}}}, {{{{2}}}}, ... without gaps; \
                 use {{{{{missing}}}}} or renumber the placeholders up to {{{{{highest}}}}}"
            ),
            PlaceholderProblem::InvalidName { name } => {
                let suggestion = placeholder_name_suggestion(name);
                let rule = "placeholders are numbers from {{1}} or names of lower-case \
                            letters, digits and `_`, like {{customer_name}}";
                match suggestion {
                    Some(fixed) => format!("{rule}; write {{{{{fixed}}}}}"),
                    None => rule.to_owned(),
                }
            }
            PlaceholderProblem::Empty => {
                "put a number like {{1}} or a name like {{customer_name}} between the braces"
                    .to_owned()
            }
            PlaceholderProblem::Unclosed => {
                "close the placeholder with `}}`, e.g. {{1}}; WhatsApp template bodies cannot \
                 contain a literal `{{`"
                    .to_owned()
            }
        }
    }
}

/// A valid spelling close to an invalid placeholder name (`First Name` ->
/// `first_name`, ` 1 ` -> `1`), when there is one.
fn placeholder_name_suggestion(name: &str) -> Option<String> {
    let trimmed = name.trim();
    let mut fixed = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' => fixed.push(c),
            'A'..='Z' => fixed.push(c.to_ascii_lowercase()),
            ' ' | '-' | '.' if !fixed.ends_with('_') => fixed.push('_'),
            _ => {}
        }
    }
    let fixed = fixed.trim_matches('_').to_owned();
    (classify_placeholder(&fixed).is_ok() && fixed != name).then_some(fixed)
}

/// Reads the placeholders of a template body: `{{1}}`..`{{n}}` positional or
/// `{{name}}` named (names of lower-case letters, digits and `_`, as Meta
/// allows).
///
/// ```
/// use flowc::config::{parse_placeholders, Placeholders, PlaceholderProblem};
///
/// assert_eq!(
///     parse_placeholders("Hello {{1}}, your appointment with {{2}} on {{3}} is confirmed."),
///     Ok(Placeholders::Positional(3)),
/// );
/// assert_eq!(
///     parse_placeholders("Hi {{name}}, order {{order_id}} for {{name}} has shipped."),
///     Ok(Placeholders::Named(vec!["name".into(), "order_id".into()])),
/// );
/// assert_eq!(parse_placeholders("No variables."), Ok(Placeholders::Positional(0)));
/// assert_eq!(
///     parse_placeholders("{{1}} and {{3}}"),
///     Err(PlaceholderProblem::Gap { missing: 2, highest: 3 }),
/// );
/// ```
pub fn parse_placeholders(body: &str) -> Result<Placeholders, PlaceholderProblem> {
    let mut positional_numbers: Vec<usize> = Vec::new();
    let mut first_positional: Option<String> = None;
    let mut named: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find("{{") {
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            return Err(PlaceholderProblem::Unclosed);
        };
        let inner = &after_open[..close];
        // `{{1}, {{2}}`: the first `{{` was never closed; without this the
        // inner text `1}, {{2` would be reported as a strange name.
        if inner.contains("{{") {
            return Err(PlaceholderProblem::Unclosed);
        }
        match classify_placeholder(inner)? {
            PlaceholderKind::Positional(number) => {
                first_positional.get_or_insert_with(|| format!("{{{{{inner}}}}}"));
                positional_numbers.push(number);
            }
            PlaceholderKind::Named => {
                if !named.iter().any(|seen| seen == inner) {
                    named.push(inner.to_owned());
                }
            }
        }
        rest = &after_open[close + 2..];
    }

    if let (Some(positional), Some(first_named)) = (first_positional, named.first()) {
        return Err(PlaceholderProblem::Mixed {
            positional,
            named: format!("{{{{{first_named}}}}}"),
        });
    }
    if !named.is_empty() {
        return Ok(Placeholders::Named(named));
    }
    positional_numbers.sort_unstable();
    positional_numbers.dedup();
    let highest = positional_numbers.last().copied().unwrap_or(0);
    // After sorting and deduplicating, 1..=n without gaps means the i-th
    // number is i + 1; the first place where that fails names the gap.
    if let Some(missing) = positional_numbers
        .iter()
        .enumerate()
        .find(|&(index, &number)| number != index + 1)
        .map(|(index, _)| index + 1)
    {
        return Err(PlaceholderProblem::Gap { missing, highest });
    }
    Ok(Placeholders::Positional(highest))
}

enum PlaceholderKind {
    Positional(usize),
    Named,
}

/// Whether the text between `{{` and `}}` is a number, a name, or invalid.
fn classify_placeholder(inner: &str) -> Result<PlaceholderKind, PlaceholderProblem> {
    if inner.is_empty() {
        return Err(PlaceholderProblem::Empty);
    }
    let invalid = || PlaceholderProblem::InvalidName {
        name: inner.to_owned(),
    };
    if inner.bytes().all(|b| b.is_ascii_digit()) {
        // Numbering starts at 1 and has no leading zeros ({{0}}, {{01}}).
        if inner.starts_with('0') {
            return Err(invalid());
        }
        return inner
            .parse()
            .map(PlaceholderKind::Positional)
            .map_err(|_| invalid());
    }
    if inner
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Ok(PlaceholderKind::Named);
    }
    Err(invalid())
}

impl TemplateConfig {
    /// Whether the template offers an opt-out: [`TemplateConfig::opt_out`]
    /// when set, else whether the body contains an opt-out wording such as
    /// "stop", "unsubscribe" or "abmelden" (any case, whole words).
    ///
    /// ```
    /// use flowc::config::Config;
    /// use flowc::source::FileId;
    ///
    /// let text = r#"
    /// [templates.newsletter]
    /// language = "en"
    /// category = "marketing"
    /// body = "New arrivals are in! Reply STOP to unsubscribe."
    ///
    /// [templates.spring_sale]
    /// language = "en"
    /// category = "marketing"
    /// body = "Our spring sale starts today."
    ///
    /// [templates.button_opt_out]
    /// language = "en"
    /// category = "marketing"
    /// body = "Our spring sale starts today."
    /// opt_out = true
    /// "#;
    /// let (config, _) = Config::parse(text, FileId(0));
    /// assert!(config.templates["newsletter"].has_opt_out());
    /// assert!(!config.templates["spring_sale"].has_opt_out());
    /// assert!(config.templates["button_opt_out"].has_opt_out());
    /// ```
    pub fn has_opt_out(&self) -> bool {
        self.opt_out
            .unwrap_or_else(|| body_has_opt_out_wording(&self.body))
    }
}

fn body_has_opt_out_wording(body: &str) -> bool {
    let body = body.to_lowercase();
    OPT_OUT_PHRASES
        .iter()
        .any(|phrase| contains_whole_phrase(&body, phrase))
}

/// Whether `phrase` occurs in `text` with no letter or digit right before or
/// after it.
fn contains_whole_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

impl Config {
    /// Parses `flow.toml` text. `file` is the id of the text in the
    /// [`SourceMap`](crate::source::SourceMap), for spans.
    ///
    /// Never panics. Every problem becomes a [`Diagnostic`]: `F5001` when the
    /// text is not TOML, has the wrong shape or an unknown key, `F5002` when a
    /// value is invalid. All problems are reported (except after a TOML syntax
    /// error, where the parser cannot go on), sorted by position. Entries with
    /// a problem are left out of the returned `Config`; the rest is kept.
    ///
    /// ```
    /// use flowc::config::{Config, Placeholders};
    /// use flowc::source::FileId;
    ///
    /// let text = r#"
    /// [senders.berlin-office]
    /// phone_number_id = "106540352242922"
    /// phone = "+4930901820"
    ///
    /// [templates.appointment_confirmed]
    /// language = "de"
    /// category = "utility"
    /// body = "Hello {{1}}, your appointment with {{2}} on {{3}} is confirmed.\nLocation: {{4}}"
    ///
    /// [assistants.lead-qualifier]
    /// model = "gpt-4o-mini"
    ///
    /// [assistants.broken]
    /// modle = "gpt-4o"
    /// "#;
    /// let (config, diagnostics) = Config::parse(text, FileId(0));
    /// assert_eq!(config.senders["berlin-office"].phone_number_id, "106540352242922");
    /// assert_eq!(
    ///     config.templates["appointment_confirmed"].placeholders,
    ///     Placeholders::Positional(4),
    /// );
    /// assert!(config.assistants.contains_key("lead-qualifier"));
    ///
    /// // The misspelt key is reported, and its assistant left out.
    /// assert!(!config.assistants.contains_key("broken"));
    /// assert_eq!(diagnostics.len(), 1);
    /// assert_eq!(diagnostics[0].code.as_str(), "F5001");
    /// assert_eq!(diagnostics[0].help.as_deref(), Some("did you mean `model`? an assistant takes `model` and `instructions`"));
    /// let span = diagnostics[0].span().unwrap();
    /// assert_eq!(&text[span.range()], "modle");
    /// ```
    pub fn parse(text: &str, file: FileId) -> (Config, Vec<Diagnostic>) {
        let mut loader = Loader {
            file,
            text_len: text.len(),
            diagnostics: Vec::new(),
        };
        let config = match ImDocument::parse(text) {
            Ok(document) => loader.document(document.as_table()),
            Err(error) => {
                loader.syntax_error(&error, text);
                Config::default()
            }
        };
        let mut diagnostics = loader.diagnostics;
        diagnostics.sort_by_key(Diagnostic::span);
        (config, diagnostics)
    }

    /// Whether there are no senders, templates or assistants.
    ///
    /// ```
    /// use flowc::config::Config;
    ///
    /// assert!(Config::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty() && self.templates.is_empty() && self.assistants.is_empty()
    }
}

/// The three kinds of named entries, with what differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Sender,
    Template,
    Assistant,
}

impl EntryKind {
    const ALL: [EntryKind; 3] = [EntryKind::Sender, EntryKind::Template, EntryKind::Assistant];

    fn from_table(name: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|kind| kind.table() == name)
    }

    /// The top-level table, e.g. `senders`.
    fn table(self) -> &'static str {
        match self {
            EntryKind::Sender => "senders",
            EntryKind::Template => "templates",
            EntryKind::Assistant => "assistants",
        }
    }

    /// The noun in messages, e.g. `sender`.
    fn noun(self) -> &'static str {
        match self {
            EntryKind::Sender => "sender",
            EntryKind::Template => "template",
            EntryKind::Assistant => "assistant",
        }
    }

    fn with_article(self) -> &'static str {
        match self {
            EntryKind::Sender => "a sender",
            EntryKind::Template => "a template",
            EntryKind::Assistant => "an assistant",
        }
    }

    /// An example name, for help texts.
    fn example_name(self) -> &'static str {
        match self {
            EntryKind::Sender => "berlin-office",
            EntryKind::Template => "appointment_confirmed",
            EntryKind::Assistant => "lead-qualifier",
        }
    }

    /// The keys an entry takes, each with an example line for help texts.
    fn keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            EntryKind::Sender => &[
                ("phone_number_id", r#"phone_number_id = "106540352242922""#),
                ("phone", r#"phone = "+4930901820""#),
            ],
            EntryKind::Template => &[
                ("language", r#"language = "de""#),
                ("category", r#"category = "utility""#),
                (
                    "body",
                    r#"body = "Hello {{1}}, your appointment is confirmed.""#,
                ),
                ("opt_out", "opt_out = true"),
            ],
            EntryKind::Assistant => &[
                ("model", r#"model = "gpt-4o-mini""#),
                (
                    "instructions",
                    r#"instructions = "You qualify leads politely.""#,
                ),
            ],
        }
    }

    fn example_line(self, key: &str) -> &'static str {
        self.keys()
            .iter()
            .find(|(known, _)| *known == key)
            .map_or("", |(_, example)| example)
    }

    /// `` `phone_number_id` and `phone` `` for help texts.
    fn key_list(self) -> String {
        let names: Vec<&str> = self.keys().iter().map(|(key, _)| *key).collect();
        english_list(&names, "and")
    }
}

/// One `[senders.NAME]`, `[templates.NAME]` or `[assistants.NAME]` table
/// being read.
struct Entry<'doc> {
    kind: EntryKind,
    name: &'doc str,
    table: &'doc dyn TableLike,
    /// The span of `NAME`; where problems of the entry as a whole point.
    key_span: Span,
}

/// Walks the parsed document, collecting diagnostics.
struct Loader {
    file: FileId,
    text_len: usize,
    diagnostics: Vec<Diagnostic>,
}

impl Loader {
    /// A span from a toml_edit byte range; `fallback` when toml_edit has none
    /// (it has one for everything it parsed, but the API says `Option`).
    fn span(&self, range: Option<Range<usize>>, fallback: Span) -> Span {
        match range {
            Some(range) => {
                let end = range.end.min(self.text_len);
                Span::new(self.file, range.start.min(end), end)
            }
            None => fallback,
        }
    }

    fn whole_file(&self) -> Span {
        Span::new(self.file, 0, 0)
    }

    fn key_span(&self, table: &dyn TableLike, key: &str, fallback: Span) -> Span {
        self.span(table.key(key).and_then(|key| key.span()), fallback)
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn syntax_error(&mut self, error: &toml_edit::TomlError, text: &str) {
        let mut span = self.span(error.span(), self.whole_file());
        let at_end_of_file = span.is_empty() && span.start as usize == text.len();
        // An error at the very end ("a =") has an empty span past the last
        // character, which renderers cannot draw a label on; cover the last
        // character instead.
        if at_end_of_file {
            if let Some((last_start, _)) = text.char_indices().next_back() {
                span = Span::new(self.file, last_start, text.len());
            }
        }
        // toml_edit's message is one or more lines: "invalid table header",
        // "expected `.`, `]`"; a label is one line.
        let detail = error
            .message()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let detail = if !detail.is_empty() {
            detail
        } else if at_end_of_file {
            "the file ends too early here".to_owned()
        } else {
            "invalid TOML here".to_owned()
        };
        self.report(
            Diagnostic::new(Code::ConfigSyntax, "flow.toml is not valid TOML")
                .with_label(span, detail)
                .with_help(
                    "flow.toml is TOML (https://toml.io): `[senders.NAME]` headers, then \
                     `key = \"value\"` lines; fix the text here and check again",
                ),
        );
    }

    fn document(&mut self, root: &toml_edit::Table) -> Config {
        let mut config = Config::default();
        let file_start = self.whole_file();
        for (table_name, item) in root.iter() {
            let key_span = self.key_span(root, table_name, file_start);
            match EntryKind::from_table(table_name) {
                Some(kind) => self.section(kind, item, key_span, &mut config),
                None if RESERVED_TABLES.contains(&table_name) => {}
                None => self.unknown_top_level(table_name, key_span),
            }
        }
        config
    }

    fn unknown_top_level(&mut self, name: &str, span: Span) {
        let known: Vec<&str> = EntryKind::ALL
            .iter()
            .map(|kind| kind.table())
            .chain(RESERVED_TABLES.iter().copied())
            .collect();
        let list = english_list(&known, "and");
        let help = match did_you_mean(name, &known) {
            Some(suggestion) => {
                format!("did you mean `{suggestion}`? flow.toml has the tables {list}")
            }
            None => format!("flow.toml has the tables {list}"),
        };
        self.report(
            Diagnostic::new(
                Code::ConfigSyntax,
                format!("unknown table `{}` in flow.toml", name.escape_debug()),
            )
            .with_label(span, "not a flow.toml table")
            .with_help(help),
        );
    }

    /// `[senders]`, `[templates]` or `[assistants]` with its entries.
    fn section(&mut self, kind: EntryKind, item: &Item, key_span: Span, config: &mut Config) {
        let Some(section) = item.as_table_like() else {
            let span = self.span(item.span(), key_span);
            let example = kind.example_name();
            self.report(
                Diagnostic::new(
                    Code::ConfigSyntax,
                    format!("`{}` must be a table", kind.table()),
                )
                .with_label(span, format!("found {}", with_article(item.type_name())))
                .with_help(format!(
                    "write each {noun} as its own table, e.g. `[{table}.{example}]`",
                    noun = kind.noun(),
                    table = kind.table(),
                )),
            );
            return;
        };
        for (name, entry_item) in section.iter() {
            let entry_key_span = self.key_span(section, name, key_span);
            let before = self.diagnostics.len();
            let entry = self.entry(kind, name, entry_item, entry_key_span);
            // An entry with any problem is left out, so the checker reports
            // "unknown sender" at the use instead of trusting half a sender.
            if self.diagnostics.len() > before {
                continue;
            }
            match entry {
                Some(ParsedEntry::Sender(sender)) => {
                    config.senders.insert(sender.name.clone(), sender);
                }
                Some(ParsedEntry::Template(template)) => {
                    config.templates.insert(template.name.clone(), template);
                }
                Some(ParsedEntry::Assistant(assistant)) => {
                    config.assistants.insert(assistant.name.clone(), assistant);
                }
                None => {}
            }
        }
    }

    fn entry(
        &mut self,
        kind: EntryKind,
        name: &str,
        item: &Item,
        key_span: Span,
    ) -> Option<ParsedEntry> {
        self.check_entry_name(kind, name, key_span);
        let Some(table) = item.as_table_like() else {
            let span = self.span(item.span(), key_span);
            self.report(
                Diagnostic::new(
                    Code::ConfigSyntax,
                    format!("{} `{}` must be a table", kind.noun(), name.escape_debug()),
                )
                .with_label(span, format!("found {}", with_article(item.type_name())))
                .with_help(format!(
                    "name the {noun} in a table header and put its settings below, e.g. \
                     `[{table}.{example}]` then `{line}`",
                    noun = kind.noun(),
                    table = kind.table(),
                    example = kind.example_name(),
                    line = kind.keys().first().map_or("", |(_, line)| *line),
                )),
            );
            return None;
        };
        let entry = Entry {
            kind,
            name,
            table,
            key_span,
        };
        self.unknown_keys(&entry);
        match kind {
            EntryKind::Sender => self.sender(&entry).map(ParsedEntry::Sender),
            EntryKind::Template => self.template(&entry).map(ParsedEntry::Template),
            EntryKind::Assistant => self.assistant(&entry).map(ParsedEntry::Assistant),
        }
    }

    /// Names are used as strings in flows and in Meta's API, so they keep to
    /// letters, digits, `-` and `_`.
    fn check_entry_name(&mut self, kind: EntryKind, name: &str, span: Span) {
        if is_valid_entry_name(name) {
            return;
        }
        let suggestion = entry_name_suggestion(name, kind);
        let mut help = format!(
            "{} names use only letters, digits, `-` and `_`",
            kind.noun()
        );
        if let Some(suggestion) = suggestion {
            help.push_str(&format!(", e.g. `{suggestion}`"));
        }
        let label = if name.is_empty() {
            "the name is empty".to_owned()
        } else {
            "only letters, digits, `-` and `_` are allowed".to_owned()
        };
        self.report(
            Diagnostic::new(
                Code::ConfigValue,
                format!("invalid {} name `{}`", kind.noun(), name.escape_debug()),
            )
            .with_label(span, label)
            .with_help(help),
        );
    }

    fn unknown_keys(&mut self, entry: &Entry<'_>) {
        let known: Vec<&str> = entry.kind.keys().iter().map(|(key, _)| *key).collect();
        for (key, _) in entry.table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = self.key_span(entry.table, key, entry.key_span);
            let takes = format!(
                "{} takes {}",
                entry.kind.with_article(),
                entry.kind.key_list()
            );
            let help = match did_you_mean(key, &known) {
                Some(suggestion) => format!("did you mean `{suggestion}`? {takes}"),
                None => takes,
            };
            self.report(
                Diagnostic::new(
                    Code::ConfigSyntax,
                    format!(
                        "unknown key `{}` in {} `{}`",
                        key.escape_debug(),
                        entry.kind.noun(),
                        entry.name.escape_debug()
                    ),
                )
                .with_label(span, format!("not {} setting", entry.kind.with_article()))
                .with_help(help),
            );
        }
    }

    fn missing_key(&mut self, entry: &Entry<'_>, key: &str) {
        self.report(
            Diagnostic::new(
                Code::ConfigSyntax,
                format!(
                    "{} `{}` has no `{key}`",
                    entry.kind.noun(),
                    entry.name.escape_debug()
                ),
            )
            .with_label(entry.key_span, format!("`{key}` is missing here"))
            .with_help(format!(
                "`{key}` is required; add a line like `{}`",
                entry.kind.example_line(key)
            )),
        );
    }

    /// The item at `key` and the span of its value, if the key is there.
    fn lookup<'doc>(&self, entry: &Entry<'doc>, key: &str) -> Option<(&'doc Item, Span)> {
        let (_, item) = entry.table.get_key_value(key)?;
        let key_span = self.key_span(entry.table, key, entry.key_span);
        Some((item, self.span(item.span(), key_span)))
    }

    fn wrong_type(
        &mut self,
        entry: &Entry<'_>,
        key: &str,
        item: &Item,
        span: Span,
        expected: &str,
    ) {
        let mut help = format!("write it like `{}`", entry.kind.example_line(key));
        // The common case is an id written as a bare number; the example line
        // alone would not make the missing quotes obvious.
        if expected == "a string" && item.is_integer() {
            help.push_str(", with quotes");
        }
        self.report(
            Diagnostic::new(Code::ConfigSyntax, format!("`{key}` must be {expected}"))
                .with_label(span, format!("found {}", with_article(item.type_name())))
                .with_help(help),
        );
    }

    fn optional_string(&mut self, entry: &Entry<'_>, key: &str) -> Option<(String, Span)> {
        let (item, span) = self.lookup(entry, key)?;
        match item.as_str() {
            Some(value) => Some((value.to_owned(), span)),
            None => {
                self.wrong_type(entry, key, item, span, "a string");
                None
            }
        }
    }

    fn required_string(&mut self, entry: &Entry<'_>, key: &str) -> Option<(String, Span)> {
        if !entry.table.contains_key(key) {
            self.missing_key(entry, key);
            return None;
        }
        self.optional_string(entry, key)
    }

    fn optional_bool(&mut self, entry: &Entry<'_>, key: &str) -> Option<bool> {
        let (item, span) = self.lookup(entry, key)?;
        match item.as_bool() {
            Some(value) => Some(value),
            None => {
                self.wrong_type(entry, key, item, span, "a boolean");
                None
            }
        }
    }

    fn sender(&mut self, entry: &Entry<'_>) -> Option<SenderConfig> {
        let phone_number_id = self.required_string(entry, "phone_number_id");
        if let Some((id, span)) = &phone_number_id {
            self.check_phone_number_id(id, *span);
        }
        let phone = self.optional_string(entry, "phone");
        if let Some((number, span)) = &phone {
            if let Err(problems) = phone::check_e164(number) {
                self.report(
                    Diagnostic::new(Code::ConfigValue, "phone number is not in E.164 format")
                        .with_label(*span, phone::describe(&problems))
                        .with_help(
                            "WhatsApp needs +, the country code, then digits only, \
                             e.g. \"+4915112345678\"",
                        ),
                );
            }
        }
        Some(SenderConfig {
            name: entry.name.to_owned(),
            phone_number_id: phone_number_id?.0,
            phone: phone.map(|(number, _)| number),
            span: entry.key_span,
        })
    }

    fn check_phone_number_id(&mut self, id: &str, span: Span) {
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        let label = if id.is_empty() {
            "the id is empty".to_owned()
        } else {
            let mut bad_characters: Vec<String> = Vec::new();
            for c in id.chars().filter(|c| !c.is_ascii_digit()) {
                let shown = format!("{c:?}");
                if !bad_characters.contains(&shown) {
                    bad_characters.push(shown);
                }
            }
            format!("{} not allowed", english_list_plain(&bad_characters))
        };
        let help = if id.starts_with('+') {
            "this looks like the phone number itself: put it in `phone`, and the Phone \
             number ID from WhatsApp Manager (API Setup), digits only, in `phone_number_id`"
        } else {
            "use the Phone number ID from WhatsApp Manager (API Setup), digits only, \
             e.g. \"106540352242922\""
        };
        self.report(
            Diagnostic::new(Code::ConfigValue, "phone number id must be digits only")
                .with_label(span, label)
                .with_help(help),
        );
    }

    fn template(&mut self, entry: &Entry<'_>) -> Option<TemplateConfig> {
        let language = self.required_string(entry, "language");
        if let Some((code, span)) = &language {
            self.check_language(code, *span);
        }
        let category = self
            .required_string(entry, "category")
            .and_then(|(name, span)| self.category(&name, span));
        let body = self.required_string(entry, "body");
        let placeholders = body
            .as_ref()
            .and_then(|(text, span)| self.body_placeholders(text, *span));
        let opt_out = self.optional_bool(entry, "opt_out");
        Some(TemplateConfig {
            name: entry.name.to_owned(),
            language: language?.0,
            category: category?,
            body: body?.0,
            placeholders: placeholders?,
            opt_out,
            span: entry.key_span,
        })
    }

    /// Meta's codes are a lower-case language, optionally `_` and an
    /// upper-case region: `de`, `en_US`, `pt_BR`, `fil`.
    fn check_language(&mut self, code: &str, span: Span) {
        if is_valid_language_code(code) {
            return;
        }
        let fixed = normalize_language_code(code);
        let rule = "WhatsApp language codes look like `de`, `en`, `en_US` or `pt_BR`";
        let help = match fixed.filter(|fixed| fixed != code) {
            Some(fixed) => format!("did you mean `{fixed}`? {rule}"),
            None => rule.to_owned(),
        };
        self.report(
            Diagnostic::new(
                Code::ConfigValue,
                format!("invalid template language `{}`", code.escape_debug()),
            )
            .with_label(span, "not a WhatsApp language code")
            .with_help(help),
        );
    }

    fn category(&mut self, name: &str, span: Span) -> Option<TemplateCategory> {
        if let Ok(category) = name.parse() {
            return Some(category);
        }
        let names: Vec<&str> = TemplateCategory::ALL.iter().map(|c| c.as_str()).collect();
        let list = english_list(&names, "or");
        let help = match did_you_mean(name, &names) {
            Some(suggestion) => format!("did you mean `{suggestion}`? the category is {list}"),
            None => format!("the category is {list}, as approved by Meta"),
        };
        self.report(
            Diagnostic::new(
                Code::ConfigValue,
                format!("unknown template category `{}`", name.escape_debug()),
            )
            .with_label(span, "not a WhatsApp template category")
            .with_help(help),
        );
        None
    }

    fn body_placeholders(&mut self, body: &str, span: Span) -> Option<Placeholders> {
        if body.trim().is_empty() {
            self.report(
                Diagnostic::new(Code::ConfigValue, "template body is empty")
                    .with_label(span, "no text here")
                    .with_help(
                        "copy the body text of the approved template, placeholders included",
                    ),
            );
            return None;
        }
        match parse_placeholders(body) {
            Ok(placeholders) => Some(placeholders),
            Err(problem) => {
                self.report(
                    Diagnostic::new(Code::ConfigValue, "invalid placeholders in template body")
                        .with_label(span, problem.to_string())
                        .with_help(problem.help()),
                );
                None
            }
        }
    }

    fn assistant(&mut self, entry: &Entry<'_>) -> Option<AssistantConfig> {
        let model = self.optional_string(entry, "model");
        if let Some((name, span)) = &model {
            if name.trim().is_empty() {
                self.report(
                    Diagnostic::new(Code::ConfigValue, "assistant model is empty")
                        .with_label(*span, "no model name here")
                        .with_help(
                            "name a model, e.g. `model = \"gpt-4o-mini\"`, or remove the line \
                             to use the AI provider's default",
                        ),
                );
            }
        }
        let instructions = self.optional_string(entry, "instructions");
        Some(AssistantConfig {
            name: entry.name.to_owned(),
            model: model.map(|(name, _)| name),
            instructions: instructions.map(|(text, _)| text),
            span: entry.key_span,
        })
    }
}

enum ParsedEntry {
    Sender(SenderConfig),
    Template(TemplateConfig),
    Assistant(AssistantConfig),
}

fn is_valid_entry_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `berlin office` -> `berlin-office` (templates: `_`, as Meta's names use).
fn entry_name_suggestion(name: &str, kind: EntryKind) -> Option<String> {
    let separator = if kind == EntryKind::Template {
        '_'
    } else {
        '-'
    };
    let mut fixed = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            fixed.push(c);
        } else if !fixed.is_empty() && !fixed.ends_with(separator) {
            fixed.push(separator);
        }
    }
    let fixed = fixed.trim_end_matches(separator).to_owned();
    is_valid_entry_name(&fixed).then_some(fixed)
}

fn is_valid_language_code(code: &str) -> bool {
    let (language, region) = match code.split_once('_') {
        Some((language, region)) => (language, Some(region)),
        None => (code, None),
    };
    let language_ok =
        (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = match region {
        Some(region) => region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()),
        None => true,
    };
    language_ok && region_ok
}

/// `en-us` -> `en_US`, `DE` -> `de`, when the result is a valid code.
fn normalize_language_code(code: &str) -> Option<String> {
    let trimmed = code.trim();
    let (language, region) = match trimmed.split_once(['_', '-']) {
        Some((language, region)) => (language, Some(region)),
        None => (trimmed, None),
    };
    let mut fixed = language.to_ascii_lowercase();
    if let Some(region) = region {
        fixed.push('_');
        fixed.push_str(&region.to_ascii_uppercase());
    }
    is_valid_language_code(&fixed).then_some(fixed)
}

/// The candidate closest to `name`, if it is close enough to be a likely typo:
/// a case-insensitive match, or at most a third of its letters different.
fn did_you_mean<'c>(name: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lowered = name.to_lowercase();
    candidates
        .iter()
        .map(|candidate| (*candidate, strsim::damerau_levenshtein(&lowered, candidate)))
        .filter(|(candidate, distance)| *distance <= (candidate.chars().count() / 3).max(1))
        .min_by_key(|(_, distance)| *distance)
        .map(|(candidate, _)| candidate)
}

/// `` `a`, `b` and `c` ``.
fn english_list(items: &[&str], conjunction: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("`{item}`")).collect();
    join_english(&quoted, conjunction)
}

/// `a, b and c` without quoting.
fn english_list_plain(items: &[String]) -> String {
    join_english(items, "and")
}

fn join_english(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// `an integer`, `a string`, from toml_edit's type names.
fn with_article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: FileId = FileId(3);

    const FULL_EXAMPLE: &str = r#"
[senders.berlin-office]
phone_number_id = "106540352242922"   # required, digits only
phone = "+4930901820"                  # optional

[templates.appointment_confirmed]
language = "de"
category = "utility"
body = "Hello {{1}}, your appointment with {{2}} on {{3}} is confirmed.\nLocation: {{4}}"
opt_out = true

[assistants.lead-qualifier]
model = "gpt-4o-mini"
instructions = "Ask for budget and timeline."

[whatsapp]
api_version = "v21.0"

[ai]
provider = "openai"

[store]
path = "flows.db"

[serve]
port = 8080

[limits]
per_second = 80

[[campaigns]]
name = "spring"

[notify]
email = "team@example.com"
"#;

    fn parse(text: &str) -> (Config, Vec<Diagnostic>) {
        Config::parse(text, FILE)
    }

    /// The one diagnostic of `text`, with the text its span covers.
    fn single(text: &str) -> (Diagnostic, &str) {
        let (_, diagnostics) = parse(text);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        let diagnostic = diagnostics.into_iter().next().unwrap();
        let span = diagnostic.span().unwrap();
        assert_eq!(span.file, FILE);
        let covered = &text[span.range()];
        (diagnostic, covered)
    }

    fn label(diagnostic: &Diagnostic) -> &str {
        &diagnostic.primary.as_ref().unwrap().text
    }

    fn help(diagnostic: &Diagnostic) -> &str {
        diagnostic.help.as_deref().unwrap()
    }

    #[test]
    fn full_example_parses() {
        let (config, diagnostics) = parse(FULL_EXAMPLE);
        assert_eq!(diagnostics, vec![]);
        assert!(!config.is_empty());

        let sender = &config.senders["berlin-office"];
        assert_eq!(sender.name, "berlin-office");
        assert_eq!(sender.phone_number_id, "106540352242922");
        assert_eq!(sender.phone.as_deref(), Some("+4930901820"));
        assert_eq!(&FULL_EXAMPLE[sender.span.range()], "berlin-office");
        assert_eq!(sender.span.file, FILE);

        let template = &config.templates["appointment_confirmed"];
        assert_eq!(template.language, "de");
        assert_eq!(template.category, TemplateCategory::Utility);
        assert_eq!(
            template.body,
            "Hello {{1}}, your appointment with {{2}} on {{3}} is confirmed.\nLocation: {{4}}"
        );
        assert_eq!(template.placeholders, Placeholders::Positional(4));
        assert_eq!(template.opt_out, Some(true));
        assert_eq!(
            &FULL_EXAMPLE[template.span.range()],
            "appointment_confirmed"
        );

        let assistant = &config.assistants["lead-qualifier"];
        assert_eq!(assistant.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(
            assistant.instructions.as_deref(),
            Some("Ask for budget and timeline.")
        );
        assert_eq!(&FULL_EXAMPLE[assistant.span.range()], "lead-qualifier");
    }

    #[test]
    fn inline_and_dotted_forms_are_accepted() {
        let text = r#"
senders.main = { phone_number_id = "1" }
[assistants]
helper.model = "gpt-4o"
"#;
        let (config, diagnostics) = parse(text);
        assert_eq!(diagnostics, vec![]);
        assert_eq!(&text[config.senders["main"].span.range()], "main");
        assert_eq!(config.assistants["helper"].model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_configs() {
        for text in ["", "\n\n", "# nothing yet\n", "[senders]\n[templates]\n"] {
            let (config, diagnostics) = parse(text);
            assert!(config.is_empty(), "{text:?}");
            assert_eq!(diagnostics, vec![], "{text:?}");
        }
    }

    #[test]
    fn syntax_error_points_at_the_error() {
        let text = "[senders.berlin]\nphone_number_id = \"1\n";
        let (config, diagnostics) = parse(text);
        assert!(config.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "flow.toml is not valid TOML");
        let span = diagnostic.span().unwrap();
        // The error is inside the unterminated string on line 2.
        assert!(span.start as usize >= text.find("\"1").unwrap(), "{span:?}");
        assert!(!label(diagnostic).is_empty());
        assert!(help(diagnostic).contains("toml.io"));
    }

    #[test]
    fn syntax_error_at_end_of_file_covers_the_last_character() {
        let (diagnostic, covered) = single("a =");
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(covered, "=");
        assert_eq!(label(&diagnostic), "the file ends too early here");
    }

    #[test]
    fn duplicate_table_is_a_syntax_error() {
        let text = "[senders.a]\nphone_number_id = \"1\"\n[senders.a]\nphone_number_id = \"2\"\n";
        let (diagnostic, _) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        let span = diagnostic.span().unwrap();
        assert!(
            span.start as usize >= text.rfind("[senders").unwrap(),
            "{span:?}"
        );
    }

    #[test]
    fn unknown_top_level_table_with_suggestion() {
        let (diagnostic, covered) = single("[sender.berlin]\nphone_number_id = \"1\"\n");
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "unknown table `sender` in flow.toml");
        assert_eq!(covered, "sender");
        assert_eq!(label(&diagnostic), "not a flow.toml table");
        assert!(help(&diagnostic).starts_with("did you mean `senders`?"));
    }

    #[test]
    fn unknown_top_level_key_without_suggestion() {
        let (diagnostic, covered) = single("colour = \"blue\"\n");
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(covered, "colour");
        assert!(help(&diagnostic).starts_with("flow.toml has the tables `senders`"));
    }

    #[test]
    fn reserved_tables_are_ignored_whatever_they_hold() {
        let text = "whatsapp = 3\n[ai]\nanything = { deep = [1, 2] }\n[[limits]]\nx = 1\n";
        let (config, diagnostics) = parse(text);
        assert!(config.is_empty());
        assert_eq!(diagnostics, vec![]);
    }

    #[test]
    fn unknown_key_in_sender_suggests_the_close_one() {
        let text = "[senders.berlin]\nphone_number_id = \"1\"\nphone_nubmer_id = \"1\"\n";
        let (config, diagnostics) = parse(text);
        assert!(
            config.senders.is_empty(),
            "an entry with a problem is left out"
        );
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(
            diagnostic.message,
            "unknown key `phone_nubmer_id` in sender `berlin`"
        );
        assert_eq!(&text[diagnostic.span().unwrap().range()], "phone_nubmer_id");
        assert_eq!(label(diagnostic), "not a sender setting");
        assert_eq!(
            help(diagnostic),
            "did you mean `phone_number_id`? a sender takes `phone_number_id` and `phone`"
        );
    }

    #[test]
    fn unknown_key_in_template_without_suggestion() {
        let text = "[templates.t]\nlanguage = \"en\"\ncategory = \"utility\"\nbody = \"Hi\"\nfooter = \"x\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(covered, "footer");
        assert_eq!(
            help(&diagnostic),
            "a template takes `language`, `category`, `body` and `opt_out`"
        );
    }

    #[test]
    fn missing_required_key_points_at_the_entry_name() {
        let text = "[senders.berlin-office]\nphone = \"+4930901820\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(
            diagnostic.message,
            "sender `berlin-office` has no `phone_number_id`"
        );
        assert_eq!(covered, "berlin-office");
        assert_eq!(label(&diagnostic), "`phone_number_id` is missing here");
        assert!(help(&diagnostic).contains(r#"phone_number_id = "106540352242922""#));
    }

    #[test]
    fn template_missing_everything_reports_each_key() {
        let text = "[templates.empty]\n";
        let (config, diagnostics) = parse(text);
        assert!(config.templates.is_empty());
        let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "template `empty` has no `language`",
                "template `empty` has no `category`",
                "template `empty` has no `body`",
            ]
        );
        for diagnostic in &diagnostics {
            assert_eq!(&text[diagnostic.span().unwrap().range()], "empty");
        }
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let text = "[senders.berlin]\nphone_number_id = 106540352242922\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "`phone_number_id` must be a string");
        assert_eq!(covered, "106540352242922");
        assert_eq!(label(&diagnostic), "found an integer");
        assert_eq!(
            help(&diagnostic),
            r#"write it like `phone_number_id = "106540352242922"`, with quotes"#
        );

        let text = "[templates.t]\nlanguage = \"en\"\ncategory = \"utility\"\nbody = \"Hi\"\nopt_out = \"yes\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.message, "`opt_out` must be a boolean");
        assert_eq!(covered, "\"yes\"");
        assert_eq!(label(&diagnostic), "found a string");
    }

    #[test]
    fn section_and_entry_must_be_tables() {
        let (diagnostic, covered) = single("senders = \"berlin\"\n");
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "`senders` must be a table");
        assert_eq!(covered, "\"berlin\"");

        let (diagnostic, covered) = single("[senders]\nphone_number_id = \"1\"\n");
        assert_eq!(
            diagnostic.message,
            "sender `phone_number_id` must be a table"
        );
        assert_eq!(covered, "\"1\"");
        assert!(help(&diagnostic).contains("[senders.berlin-office]"));

        let (diagnostic, _) = single("[[templates]]\nlanguage = \"de\"\n");
        assert_eq!(diagnostic.message, "`templates` must be a table");
        assert_eq!(label(&diagnostic), "found an array of tables");
    }

    #[test]
    fn invalid_entry_name() {
        let text = "[senders.\"berlin office\"]\nphone_number_id = \"1\"\n";
        let (config, diagnostics) = parse(text);
        assert!(config.senders.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "invalid sender name `berlin office`");
        assert_eq!(
            &text[diagnostic.span().unwrap().range()],
            "\"berlin office\""
        );
        assert_eq!(
            help(diagnostic),
            "sender names use only letters, digits, `-` and `_`, e.g. `berlin-office`"
        );

        let text = "[templates.\"\"]\nlanguage = \"de\"\ncategory = \"utility\"\nbody = \"Hi\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.message, "invalid template name ``");
        assert_eq!(covered, "\"\"");
        assert_eq!(label(&diagnostic), "the name is empty");
    }

    #[test]
    fn phone_number_id_must_be_digits() {
        let text = "[senders.berlin]\nphone_number_id = \"10654-0352\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "phone number id must be digits only");
        assert_eq!(covered, "\"10654-0352\"");
        assert_eq!(label(&diagnostic), "'-' not allowed");

        let text = "[senders.berlin]\nphone_number_id = \"+4930901820\"\n";
        let (diagnostic, _) = single(text);
        assert!(help(&diagnostic).starts_with("this looks like the phone number itself"));

        let text = "[senders.berlin]\nphone_number_id = \"\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(covered, "\"\"");
        assert_eq!(label(&diagnostic), "the id is empty");
    }

    #[test]
    fn phone_must_be_e164() {
        let text = "[senders.berlin]\nphone_number_id = \"1\"\nphone = \"0151/12345678\"\n";
        let (config, diagnostics) = parse(text);
        assert!(config.senders.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "phone number is not in E.164 format");
        assert_eq!(
            &text[diagnostic.span().unwrap().range()],
            "\"0151/12345678\""
        );
        assert_eq!(
            label(diagnostic),
            "no leading + and country code; '/' is not allowed"
        );
        assert!(help(diagnostic).contains("+4915112345678"));
    }

    #[test]
    fn language_must_be_a_whatsapp_code() {
        for (code, suggestion) in [
            ("en-US", Some("en_US")),
            ("DE", Some("de")),
            ("pt_br", Some("pt_BR")),
            ("german", None),
            ("", None),
        ] {
            let text = format!(
                "[templates.t]\nlanguage = \"{code}\"\ncategory = \"utility\"\nbody = \"Hi\"\n"
            );
            let (diagnostic, covered) = single(&text);
            assert_eq!(diagnostic.code, Code::ConfigValue);
            assert_eq!(
                diagnostic.message,
                format!("invalid template language `{code}`")
            );
            assert_eq!(covered, format!("\"{code}\""));
            match suggestion {
                Some(fixed) => assert!(
                    help(&diagnostic).starts_with(&format!("did you mean `{fixed}`?")),
                    "{}",
                    help(&diagnostic)
                ),
                None => assert!(!help(&diagnostic).contains("did you mean")),
            }
        }
        for code in ["de", "en", "en_US", "pt_BR", "fil", "zh_HK"] {
            assert!(is_valid_language_code(code), "{code}");
        }
    }

    #[test]
    fn category_must_be_known() {
        let text = "[templates.t]\nlanguage = \"de\"\ncategory = \"marketting\"\nbody = \"Hi\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "unknown template category `marketting`");
        assert_eq!(covered, "\"marketting\"");
        assert!(help(&diagnostic).starts_with("did you mean `marketing`?"));

        let text = "[templates.t]\nlanguage = \"de\"\ncategory = \"UTILITY\"\nbody = \"Hi\"\n";
        let (diagnostic, _) = single(text);
        assert!(help(&diagnostic).starts_with("did you mean `utility`?"));

        let text = "[templates.t]\nlanguage = \"de\"\ncategory = \"promo\"\nbody = \"Hi\"\n";
        let (diagnostic, _) = single(text);
        assert_eq!(
            help(&diagnostic),
            "the category is `marketing`, `utility` or `authentication`, as approved by Meta"
        );
    }

    #[test]
    fn body_placeholder_problems_point_at_the_body() {
        let text = "[templates.t]\nlanguage = \"de\"\ncategory = \"utility\"\nbody = \"Hi {{1}}, at {{3}}\"\n";
        let (config, diagnostics) = parse(text);
        assert!(config.templates.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "invalid placeholders in template body");
        assert_eq!(
            &text[diagnostic.span().unwrap().range()],
            "\"Hi {{1}}, at {{3}}\""
        );
        assert_eq!(
            label(diagnostic),
            "`{{2}}` is missing; placeholders must be numbered 1 to 3 without gaps"
        );

        let text = "[templates.t]\nlanguage = \"de\"\ncategory = \"utility\"\nbody = \"Hi {{1}} and {{name}}\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(covered, "\"Hi {{1}} and {{name}}\"");
        assert_eq!(
            label(&diagnostic),
            "positional `{{1}}` and named `{{name}}` placeholders are mixed"
        );

        let text = "[templates.t]\nlanguage = \"de\"\ncategory = \"utility\"\nbody = \"Hi {{First Name}}\"\n";
        let (diagnostic, _) = single(text);
        assert_eq!(
            label(&diagnostic),
            "`{{First Name}}` is not a valid placeholder"
        );
        assert!(
            help(&diagnostic).ends_with("write {{first_name}}"),
            "{}",
            help(&diagnostic)
        );

        // A multi-line body: the span covers the whole literal, quotes included.
        let text = "[templates.t]\nlanguage = \"de\"\ncategory = \"utility\"\nbody = \"\"\"\nHi {{}}\n\"\"\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(covered, "\"\"\"\nHi {{}}\n\"\"\"");
        assert_eq!(label(&diagnostic), "`{{}}` is an empty placeholder");

        let text = "[templates.t]\nlanguage = \"de\"\ncategory = \"utility\"\nbody = \"  \"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.message, "template body is empty");
        assert_eq!(covered, "\"  \"");
    }

    #[test]
    fn empty_model_is_invalid() {
        let text = "[assistants.a]\nmodel = \"\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "assistant model is empty");
        assert_eq!(covered, "\"\"");
    }

    #[test]
    fn all_problems_are_collected_and_good_entries_kept() {
        let text = r#"
[senders.good]
phone_number_id = "1"

[senders.bad]
phone_number_id = "x1"
phone = "+49 30 901820"
colour = "red"

[templates.good]
language = "en"
category = "marketing"
body = "Sale! Reply STOP to opt out."

[templates.bad]
language = "english"
category = "promo"
body = "{{1}} {{x}}"

[assistants.good]

[sales]
"#;
        let (config, diagnostics) = parse(text);
        assert_eq!(config.senders.keys().collect::<Vec<_>>(), ["good"]);
        assert_eq!(config.templates.keys().collect::<Vec<_>>(), ["good"]);
        assert_eq!(config.assistants.keys().collect::<Vec<_>>(), ["good"]);
        let found: Vec<(&str, &str)> = diagnostics
            .iter()
            .map(|d| (d.code.as_str(), &text[d.span().unwrap().range()]))
            .collect();
        assert_eq!(
            found,
            vec![
                ("F5002", "\"x1\""),
                ("F5002", "\"+49 30 901820\""),
                ("F5001", "colour"),
                ("F5002", "\"english\""),
                ("F5002", "\"promo\""),
                ("F5002", "\"{{1}} {{x}}\""),
                ("F5001", "sales"),
            ]
        );
    }

    #[test]
    fn placeholders_positional() {
        assert_eq!(parse_placeholders(""), Ok(Placeholders::Positional(0)));
        assert_eq!(parse_placeholders("{{1}}"), Ok(Placeholders::Positional(1)));
        assert_eq!(
            parse_placeholders("{{2}} before {{1}}, {{2}} twice"),
            Ok(Placeholders::Positional(2))
        );
        assert_eq!(
            parse_placeholders("{ {1} } and {single} braces"),
            Ok(Placeholders::Positional(0))
        );
    }

    #[test]
    fn placeholders_named() {
        assert_eq!(
            parse_placeholders("{{b}} {{a_1}} {{b}} {{order_2}}"),
            Ok(Placeholders::Named(vec![
                "b".into(),
                "a_1".into(),
                "order_2".into()
            ]))
        );
    }

    #[test]
    fn placeholders_mixed() {
        assert_eq!(
            parse_placeholders("{{name}} {{1}} {{2}} {{other}}"),
            Err(PlaceholderProblem::Mixed {
                positional: "{{1}}".into(),
                named: "{{name}}".into()
            })
        );
    }

    #[test]
    fn placeholders_gaps() {
        assert_eq!(
            parse_placeholders("{{1}} {{3}}"),
            Err(PlaceholderProblem::Gap {
                missing: 2,
                highest: 3
            })
        );
        assert_eq!(
            parse_placeholders("{{2}}"),
            Err(PlaceholderProblem::Gap {
                missing: 1,
                highest: 2
            })
        );
        // A huge number is a gap, not an allocation.
        assert_eq!(
            parse_placeholders("{{1}} {{18446744073709551615}}"),
            Err(PlaceholderProblem::Gap {
                missing: 2,
                highest: usize::MAX
            })
        );
    }

    #[test]
    fn placeholders_invalid() {
        let invalid = |name: &str| PlaceholderProblem::InvalidName { name: name.into() };
        assert_eq!(parse_placeholders("{{0}}"), Err(invalid("0")));
        assert_eq!(parse_placeholders("{{01}}"), Err(invalid("01")));
        assert_eq!(parse_placeholders("{{ 1 }}"), Err(invalid(" 1 ")));
        assert_eq!(parse_placeholders("{{Name}}"), Err(invalid("Name")));
        assert_eq!(
            parse_placeholders("{{first-name}}"),
            Err(invalid("first-name"))
        );
        assert_eq!(parse_placeholders("{{ä}}"), Err(invalid("ä")));
        assert_eq!(
            parse_placeholders("{{99999999999999999999999999}}"),
            Err(invalid("99999999999999999999999999"))
        );
        assert_eq!(
            parse_placeholders("Hi {{}}"),
            Err(PlaceholderProblem::Empty)
        );
        assert_eq!(
            parse_placeholders("Hi {{1"),
            Err(PlaceholderProblem::Unclosed)
        );
        assert_eq!(
            parse_placeholders("Hi {{1}, see {{2}}"),
            Err(PlaceholderProblem::Unclosed)
        );
        assert!(invalid(" 1 ").help().ends_with("write {{1}}"));
    }

    fn template_with(body: &str, opt_out: Option<bool>) -> TemplateConfig {
        TemplateConfig {
            name: "t".into(),
            language: "en".into(),
            category: TemplateCategory::Marketing,
            body: body.into(),
            placeholders: Placeholders::Positional(0),
            opt_out,
            span: Span::default(),
        }
    }

    #[test]
    fn opt_out_wording() {
        for body in [
            "Reply STOP to end these messages.",
            "To unsubscribe, reply here.",
            "You can opt out anytime.",
            "Opt-out: reply NO.",
            "Zum Abmelden antworte mit STOPP.",
            "Newsletter abbestellen? Einfach antworten.",
            "Répondez pour vous DÉSABONNER.",
            "Responde para darse de baja.",
            "Cancelar suscripción: responde BAJA.",
            "stop",
        ] {
            assert!(template_with(body, None).has_opt_out(), "{body:?}");
        }
        for body in [
            "Our spring sale starts today.",
            "Nonstop deals all week!",
            "Book a stopover in Lisbon.",
            "",
        ] {
            assert!(!template_with(body, None).has_opt_out(), "{body:?}");
        }
    }

    #[test]
    fn explicit_opt_out_wins_over_wording() {
        assert!(template_with("Sale today.", Some(true)).has_opt_out());
        assert!(!template_with("Reply STOP to unsubscribe.", Some(false)).has_opt_out());
    }

    #[test]
    fn category_display_and_serde() {
        for category in TemplateCategory::ALL {
            assert_eq!(category.to_string(), category.as_str());
            let json = serde_json::to_string(category).unwrap();
            assert_eq!(json, format!("\"{}\"", category.as_str()));
            let back: TemplateCategory = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *category);
        }
    }

    #[test]
    fn deeply_nested_input_does_not_panic() {
        let arrays = format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let (_, diagnostics) = parse(&arrays);
        assert_eq!(diagnostics.len(), 1);
        let tables = format!("[senders.a]\nphone = {}\n", "{a = ".repeat(50_000));
        let (_, diagnostics) = parse(&tables);
        assert_eq!(diagnostics.len(), 1);
        let headers = format!("[{}]\n", vec!["a"; 50_000].join("."));
        let _ = parse(&headers);
        let unclosed = "[".repeat(100_000);
        let (_, diagnostics) = parse(&unclosed);
        assert_eq!(diagnostics.len(), 1);
    }

    #[test]
    fn diagnostics_spans_stay_inside_the_text() {
        for text in [
            "[",
            "a =",
            "\"",
            "[senders.a]\nphone_number_id = ",
            "\u{feff}x = 1",
            "é = 1",
        ] {
            let (_, diagnostics) = parse(text);
            assert!(!diagnostics.is_empty(), "{text:?}");
            for diagnostic in &diagnostics {
                let span = diagnostic.span().unwrap();
                assert!(text.get(span.range()).is_some(), "{text:?} {span:?}");
            }
        }
    }

    mod garbage {
        use super::*;
        use proptest::prelude::*;

        fn check_never_panics(text: &str) {
            let (_, diagnostics) = Config::parse(text, FILE);
            for diagnostic in &diagnostics {
                let span = diagnostic.span().expect("every diagnostic has a span");
                assert!(span.end as usize <= text.len());
                assert!(!diagnostic.message.is_empty());
                assert!(diagnostic.help.is_some());
            }
        }

        proptest! {
            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                check_never_panics(&String::from_utf8_lossy(&bytes));
            }

            #[test]
            fn toml_like_text_never_panics(text in r#"(\[{1,3}[a-z.\-" ]{0,20}\]{0,3}\n|[a-z_]{1,12} ?= ?("[^"\n]{0,20}"|[0-9]{1,5}|true|\{[^\n]{0,20}\}|\[[^\n]{0,20}\])\n|#[^\n]{0,10}\n){0,12}"#) {
                check_never_panics(&text);
            }

            #[test]
            fn placeholders_never_panic(body in r"(\{\{|\}\}|[0-9]{1,3}|[a-zA-Z_ ]{1,4}|é){0,16}") {
                let _ = parse_placeholders(&body);
            }
        }

        #[test]
        fn structured_garbage_in_known_sections_never_panics() {
            let text = r#"
[senders.a]
phone_number_id = [1, [2, [3]]]
phone = { x = { y = 1 } }
[templates.b]
language = 1979-05-27T07:32:00Z
category = 1.5
body = []
opt_out = { }
[assistants.c]
model = true
instructions = [[]]
"#;
            let (config, diagnostics) = Config::parse(text, FILE);
            assert!(config.is_empty());
            assert_eq!(diagnostics.len(), 8, "{diagnostics:#?}");
            check_never_panics(text);
        }
    }
}
