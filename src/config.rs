//! The project configuration, `flow.toml`: senders, templates and assistants,
//! and the providers behind them.
//!
//! Flows name things by string (`sender: "berlin-office"`, `template:
//! "appointment_confirmed"`, `assistant: "lead-qualifier"`); this file says
//! what those names stand for. The checker looks names up here (unknown
//! sender, template variable count, marketing without opt-out) and the runtime
//! takes the WhatsApp phone number id and the template language from here.
//!
//! It also says which provider each sender and assistant uses: the WhatsApp
//! Cloud API account of `[whatsapp]` or a dry run, an `[ai.NAME]`
//! chat completions endpoint or the scripted AI. Secrets are never in the
//! file: it names the environment variables that hold them
//! ([`WhatsAppConfig::access_token_env`], [`AiEndpointConfig::api_key_env`]).
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
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml_edit::{ImDocument, Item, TableLike};

use crate::diag::{Code, Diagnostic};
use crate::media::MediaKind;
use crate::phone;
use crate::source::{FileId, Span};

/// An enum of keywords as flow.toml writes them: the variants, `ALL` in the
/// order help texts list them, `as_str`, `Display` and an exact `FromStr`.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        $(#[$meta])*
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )*
        }

        impl $name {
            /// Every value, in the order help texts list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name as written in `flow.toml`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();

            /// Parses the exact lower-case name, as `flow.toml` requires.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or(())
            }
        }
    };
}

/// Top-level tables that later features own (store, server, rate limits,
/// campaigns, notifications). They are accepted and not looked into, so a
/// project can already write them without this loader calling them unknown.
const RESERVED_TABLES: &[&str] = &["serve", "notify"];

/// Tables read with serde into the campaign settings
/// ([`crate::campaign::settings`]): their keys are the structs' fields.
const SERDE_TABLES: &[&str] = &["campaigns", "opt_out", "limits", "store"];

/// The longest `timeout` a provider call may have; a call that hangs longer
/// holds up the run.
const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// The range of `temperature`, as the chat completions API accepts it.
const TEMPERATURE_RANGE: std::ops::RangeInclusive<f64> = 0.0..=2.0;

/// The range of `max_tokens`.
const MAX_TOKENS_RANGE: std::ops::RangeInclusive<i64> = 1..=100_000;

/// The range of `history`.
const HISTORY_RANGE: std::ops::RangeInclusive<i64> = 0..=1000;

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
// Not `Eq`: an assistant's temperature is an `f32`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// WhatsApp business numbers that flows send from, by name.
    pub senders: BTreeMap<String, SenderConfig>,
    /// Approved WhatsApp templates, by their name at Meta.
    pub templates: BTreeMap<String, TemplateConfig>,
    /// AI assistants, by name.
    pub assistants: BTreeMap<String, AssistantConfig>,
    /// The WhatsApp Cloud API account, `[whatsapp]`, when the file has one
    /// (and it has no problem).
    pub whatsapp: Option<WhatsAppConfig>,
    /// AI endpoints, `[ai.NAME]`, by name.
    pub ai: BTreeMap<String, AiEndpointConfig>,
    /// `[conversations]`: how replies to waiting runs are handled.
    pub conversations: ConversationsConfig,
    /// `[campaigns]`: the messaging tier, quiet hours, the quality guard.
    pub campaigns: crate::campaign::settings::CampaignsConfig,
    /// `[opt_out]`: the words that opt a customer out of marketing and back in.
    pub opt_out: crate::campaign::OptOutConfig,
    /// `[limits]`: send pacing.
    pub limits: crate::campaign::settings::LimitsConfig,
    /// `[store]`: where the durable store is (docs/deploy.md).
    pub store: crate::providers::location::StoreConfig,
}

/// `[conversations]`: how a message that answers a run waiting at
/// `wait for` is handled.
///
/// ```
/// use flowc::config::Config;
/// use flowc::source::FileId;
///
/// let (config, diagnostics) = Config::parse("[conversations]\nreplies_start_flows = true\n", FileId(0));
/// assert!(diagnostics.is_empty());
/// assert!(config.conversations.replies_start_flows);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConversationsConfig {
    /// Whether a message that answered a waiting run also starts the flows
    /// on its trigger. `false` by default: the reply is the waiting run's.
    pub replies_start_flows: bool,
}

/// The WhatsApp Cloud API account: `[whatsapp]`. Every setting has a
/// default, so an empty `[whatsapp]` table means "send through the Cloud API
/// at graph.facebook.com with the token in `WHATSAPP_ACCESS_TOKEN`".
///
/// The access token itself is never in `flow.toml`: the file names the
/// environment variable that holds it.
///
/// ```
/// use std::time::Duration;
/// use flowc::config::{Config, SenderProvider, WhatsAppConfig};
/// use flowc::source::FileId;
///
/// let text = r#"
/// [whatsapp]
/// business_account_id = "102290129340398"
/// timeout = "20s"
///
/// [senders.berlin-office]
/// phone_number_id = "106540352242922"
/// "#;
/// let (config, diagnostics) = Config::parse(text, FileId(0));
/// assert!(diagnostics.is_empty());
/// let whatsapp = config.whatsapp.as_ref().unwrap();
/// assert_eq!(whatsapp.base_url, WhatsAppConfig::DEFAULT_BASE_URL);
/// assert_eq!(whatsapp.api_version, "v21.0");
/// assert_eq!(whatsapp.access_token_env, "WHATSAPP_ACCESS_TOKEN");
/// assert_eq!(whatsapp.business_account_id.as_deref(), Some("102290129340398"));
/// assert_eq!(whatsapp.timeout, Duration::from_secs(20));
/// // With a `[whatsapp]` table, senders use the Cloud API unless they say otherwise.
/// assert_eq!(config.senders["berlin-office"].provider, SenderProvider::CloudApi);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppConfig {
    /// The Graph API's address without a trailing `/`, e.g.
    /// `https://graph.facebook.com`; tests point it at a local server.
    pub base_url: String,
    /// The Graph API version in the request path, e.g. `v21.0`.
    pub api_version: String,
    /// The name of the environment variable that holds the access token,
    /// e.g. `WHATSAPP_ACCESS_TOKEN`.
    pub access_token_env: String,
    /// The WhatsApp Business Account id (digits), for reading the account's
    /// templates; `None` when not given.
    pub business_account_id: Option<String>,
    /// How long one API call may take.
    pub timeout: Duration,
    /// The table key's span (`whatsapp` in `[whatsapp]`); [`Span::default`]
    /// for [`WhatsAppConfig::default`].
    pub span: Span,
}

impl WhatsAppConfig {
    /// The default `base_url`.
    pub const DEFAULT_BASE_URL: &'static str = "https://graph.facebook.com";
    /// The default `api_version`.
    pub const DEFAULT_API_VERSION: &'static str = "v21.0";
    /// The default `access_token_env`.
    pub const DEFAULT_ACCESS_TOKEN_ENV: &'static str = "WHATSAPP_ACCESS_TOKEN";
    /// The default `timeout`: 15 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
}

impl Default for WhatsAppConfig {
    /// Every setting at its default, as an empty `[whatsapp]` table gives.
    ///
    /// ```
    /// use flowc::config::WhatsAppConfig;
    ///
    /// let whatsapp = WhatsAppConfig::default();
    /// assert_eq!(whatsapp.base_url, "https://graph.facebook.com");
    /// assert_eq!(whatsapp.business_account_id, None);
    /// ```
    fn default() -> Self {
        WhatsAppConfig {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            api_version: Self::DEFAULT_API_VERSION.to_owned(),
            access_token_env: Self::DEFAULT_ACCESS_TOKEN_ENV.to_owned(),
            business_account_id: None,
            timeout: Self::DEFAULT_TIMEOUT,
            span: Span::default(),
        }
    }
}

/// An OpenAI-compatible chat completions endpoint: `[ai.NAME]`. Assistants
/// choose one by name with `provider = "NAME"`.
///
/// ```
/// use std::time::Duration;
/// use flowc::config::{AssistantProvider, Config};
/// use flowc::source::FileId;
///
/// let text = r#"
/// [ai.openai]
/// base_url = "https://api.openai.com/v1"
/// api_key_env = "OPENAI_API_KEY"
///
/// [ai.local]
/// base_url = "http://localhost:11434/v1"
/// timeout = "2m"
///
/// [assistants.lead-qualifier]
/// provider = "openai"
/// model = "gpt-4o-mini"
/// "#;
/// let (config, diagnostics) = Config::parse(text, FileId(0));
/// assert!(diagnostics.is_empty());
/// let local = &config.ai["local"];
/// assert_eq!(local.api_key_env, None); // a local server needs no key
/// assert_eq!(local.timeout, Duration::from_secs(120));
/// let assistant = &config.assistants["lead-qualifier"];
/// assert_eq!(assistant.provider, AssistantProvider::Endpoint("openai".into()));
/// assert_eq!(config.endpoint_of(assistant).unwrap().base_url, "https://api.openai.com/v1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiEndpointConfig {
    /// The name assistants use, e.g. `openai`.
    pub name: String,
    /// The endpoint's base address without a trailing `/`, e.g.
    /// `https://api.openai.com/v1`.
    pub base_url: String,
    /// The name of the environment variable that holds the API key, e.g.
    /// `OPENAI_API_KEY`; `None` for servers that need no key.
    pub api_key_env: Option<String>,
    /// How long one completion may take.
    pub timeout: Duration,
    /// The table key's span (`openai` in `[ai.openai]`).
    pub span: Span,
}

impl AiEndpointConfig {
    /// The default `timeout`: 30 seconds, as answers take seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// What sends its messages: `provider = "cloud-api" | "dry-run"`, by
    /// default the Cloud API when the file has a `[whatsapp]` table, else the
    /// dry run. When [`Config::parse`] reports no errors, every
    /// [`SenderProvider::CloudApi`] sender has a [`Config::whatsapp`].
    pub provider: SenderProvider,
    /// The table key's span (`berlin-office` in `[senders.berlin-office]`).
    pub span: Span,
}

keyword_enum! {
    /// What sends a sender's messages.
    ///
    /// ```
    /// use flowc::config::SenderProvider;
    ///
    /// assert_eq!(SenderProvider::CloudApi.to_string(), "cloud-api");
    /// assert_eq!("dry-run".parse(), Ok(SenderProvider::DryRun));
    /// ```
    #[serde(rename_all = "kebab-case")]
    pub enum SenderProvider {
        /// The WhatsApp Cloud API, with the account of `[whatsapp]`.
        CloudApi = "cloud-api",
        /// Nothing is sent: the messages are printed.
        DryRun = "dry-run",
    }
}

/// What answers for an assistant.
///
/// ```
/// use flowc::config::AssistantProvider;
///
/// let openai = AssistantProvider::Endpoint("openai".into());
/// assert_eq!(openai.endpoint(), Some("openai"));
/// assert_eq!(openai.to_string(), "openai");
/// assert_eq!(AssistantProvider::Scripted.endpoint(), None);
/// assert_eq!(AssistantProvider::Scripted.to_string(), "scripted");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssistantProvider {
    /// The `[ai.NAME]` endpoint of this name; always one in [`Config::ai`]
    /// when [`Config::parse`] reports no errors.
    Endpoint(String),
    /// The built-in scripted AI: canned answers from rules, no network.
    Scripted,
}

impl AssistantProvider {
    /// The name of the `[ai.NAME]` endpoint, if the provider is one.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            AssistantProvider::Endpoint(name) => Some(name),
            AssistantProvider::Scripted => None,
        }
    }
}

impl fmt::Display for AssistantProvider {
    /// The value as written in `flow.toml`: the endpoint's name, or `scripted`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.endpoint().unwrap_or(SCRIPTED))
    }
}

/// The `provider` value of the scripted AI.
const SCRIPTED: &str = "scripted";

/// The `format`s of a template header.
const HEADER_FORMATS: &[&str] = &["text", "image", "document", "video"];
/// The most characters of a text header.
const MAX_HEADER_CHARS: usize = 60;
/// The most buttons of a template.
const MAX_BUTTONS: usize = 10;
/// The most URL buttons of a template.
const MAX_URL_BUTTONS: usize = 2;
/// The most characters of a button's text.
const MAX_BUTTON_TEXT_CHARS: usize = 25;

/// An approved WhatsApp template: `[templates.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateConfig {
    /// The template's name at Meta, e.g. `appointment_confirmed`.
    pub name: String,
    /// The language code it was approved in, e.g. `de` or `pt_BR`.
    pub language: String,
    /// Marketing, utility or authentication.
    pub category: TemplateCategory,
    /// The body text, with its placeholders; shared with the messages that
    /// use it.
    pub body: Arc<str>,
    /// The placeholders of [`TemplateConfig::body`].
    pub placeholders: Placeholders,
    /// An explicit answer to "does this template offer an opt-out", for
    /// opt-outs the body text does not show (e.g. a quick-reply button).
    pub opt_out: Option<bool>,
    /// The header above the body, if the template has one.
    pub header: Option<TemplateHeaderConfig>,
    /// The buttons under the body, in the template's order.
    pub buttons: Vec<TemplateButtonConfig>,
    /// The table key's span (`appointment_confirmed` in `[templates.appointment_confirmed]`).
    pub span: Span,
}

keyword_enum! {
    /// A template's category at Meta; it decides pricing and the rules, e.g.
    /// marketing messages should offer an opt-out.
    ///
    /// ```
    /// use flowc::config::TemplateCategory;
    ///
    /// assert_eq!(TemplateCategory::Utility.to_string(), "utility");
    /// assert_eq!("marketing".parse(), Ok(TemplateCategory::Marketing));
    /// ```
    #[serde(rename_all = "lowercase")]
    pub enum TemplateCategory {
        /// Promotions, offers, re-engagement.
        Marketing = "marketing",
        /// Updates about something the customer did: orders, appointments.
        Utility = "utility",
        /// One-time passcodes.
        Authentication = "authentication",
    }
}

/// A template's header: `header = { format = "image" }` or
/// `header = { format = "text", text = "Order {{1}}" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateHeaderConfig {
    /// A bold text line; a send supplies a value when it has a placeholder.
    Text {
        /// The text, with at most one placeholder.
        text: String,
        /// Its placeholder, if any.
        placeholders: Placeholders,
    },
    /// An image, document or video a send supplies as a link or media id.
    Media(crate::media::MediaKind),
}

/// One button of a template: `buttons = [{ type = "quick_reply", text = "Yes" }, ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateButtonConfig {
    /// What the button does.
    pub kind: TemplateButtonKind,
    /// What the button says.
    pub text: String,
    /// For URL buttons: the link; `{{1}}` at its end is filled by the send.
    pub url: Option<String>,
}

keyword_enum! {
    /// What a template button does.
    #[serde(rename_all = "snake_case")]
    pub enum TemplateButtonKind {
        /// Sends a reply the flow receives as `reply_id` (the send's payload,
        /// else the button's text).
        QuickReply = "quick_reply",
        /// Opens a link.
        Url = "url",
        /// Calls a phone number.
        PhoneNumber = "phone_number",
        /// Copies a code: an authentication template's one-time password,
        /// or a marketing template's coupon code. The send passes the code.
        CopyCode = "copy_code",
    }
}

/// The longest code a copy-code button copies (a one-time password or a
/// coupon code).
pub const MAX_COPY_CODE_CHARS: usize = 15;

impl TemplateButtonConfig {
    /// Whether a send passes a parameter for this button: a quick reply's
    /// payload, the end of a URL with a placeholder, or the code a copy-code
    /// button copies.
    pub fn takes_parameter(&self) -> bool {
        match self.kind {
            TemplateButtonKind::QuickReply | TemplateButtonKind::CopyCode => true,
            TemplateButtonKind::Url => self.url.as_deref().is_some_and(|u| u.contains("{{")),
            TemplateButtonKind::PhoneNumber => false,
        }
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
///
/// ```
/// use flowc::config::{AssistantProvider, Config};
/// use flowc::source::FileId;
///
/// let text = r#"
/// [assistants.lead-qualifier]
/// model = "gpt-4o-mini"
/// temperature = 0.3
/// max_tokens = 512
///
/// [assistants.test-double]
/// provider = "scripted"
/// rules = "ai_rules.toml"
/// history = 0
/// "#;
/// let (config, diagnostics) = Config::parse(text, FileId(0));
/// assert!(diagnostics.is_empty());
/// let qualifier = &config.assistants["lead-qualifier"];
/// // No `[ai.NAME]` table: the scripted AI answers.
/// assert_eq!(qualifier.provider, AssistantProvider::Scripted);
/// assert_eq!(qualifier.temperature, Some(0.3));
/// assert_eq!(qualifier.max_tokens, Some(512));
/// assert_eq!(qualifier.history, 20);
/// assert_eq!(config.assistants["test-double"].rules.as_deref(), Some("ai_rules.toml"));
/// ```
// Not `Eq`: `temperature` is an `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantConfig {
    /// The name flows use, e.g. `lead-qualifier`.
    pub name: String,
    /// The model, e.g. `gpt-4o-mini`; the AI provider's default when absent.
    pub model: Option<String>,
    /// The system instructions.
    pub instructions: Option<String>,
    /// What answers: `provider = "NAME"` of an `[ai.NAME]` table, or
    /// `"scripted"`; by default the only `[ai.NAME]` endpoint when the file
    /// has exactly one, else the scripted AI.
    pub provider: AssistantProvider,
    /// The sampling temperature, 0 to 2; the endpoint's default when absent.
    pub temperature: Option<f32>,
    /// The most tokens an answer may have, 1 to 100,000; the endpoint's
    /// default when absent.
    pub max_tokens: Option<u32>,
    /// How many earlier messages of the conversation with a customer are
    /// sent along, 0 to 1,000; [`AssistantConfig::DEFAULT_HISTORY`] by default.
    pub history: usize,
    /// The scripted AI's rules file, as written: a path relative to
    /// `flow.toml`. Only with [`AssistantProvider::Scripted`]; the built-in
    /// rules when absent.
    pub rules: Option<String>,
    /// The table key's span (`lead-qualifier` in `[assistants.lead-qualifier]`).
    pub span: Span,
}

impl AssistantConfig {
    /// The default `history`: 20 messages per customer.
    pub const DEFAULT_HISTORY: usize = 20;
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
    /// assert!(diagnostics[0].help.as_deref().unwrap().starts_with("did you mean `model`? an assistant takes `model`, `instructions`"));
    /// let span = diagnostics[0].span().unwrap();
    /// assert_eq!(&text[span.range()], "modle");
    /// ```
    pub fn parse(text: &str, file: FileId) -> (Config, Vec<Diagnostic>) {
        let mut loader = Loader {
            file,
            text_len: text.len(),
            diagnostics: Vec::new(),
            sender_choices: Vec::new(),
            assistant_choices: Vec::new(),
            whatsapp_present: false,
            ai_tables: Vec::new(),
            serde_spans: Vec::new(),
        };
        let mut config = match ImDocument::parse(text) {
            Ok(document) => loader.document(document.as_table()),
            Err(error) => {
                loader.syntax_error(&error, text);
                Config::default()
            }
        };
        loader.serde_tables(text, &mut config);
        let mut diagnostics = loader.diagnostics;
        diagnostics.sort_by_key(Diagnostic::span);
        (config, diagnostics)
    }

    /// Whether nothing is configured: no senders, templates, assistants,
    /// `[whatsapp]` or AI endpoints.
    ///
    /// ```
    /// use flowc::config::Config;
    ///
    /// assert!(Config::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
            && self.templates.is_empty()
            && self.assistants.is_empty()
            && self.whatsapp.is_none()
            && self.ai.is_empty()
    }

    /// The `[ai.NAME]` endpoint an assistant uses; `None` for the scripted AI.
    ///
    /// ```
    /// use flowc::config::Config;
    /// use flowc::source::FileId;
    ///
    /// let text = "[ai.local]\nbase_url = \"http://localhost:8080/v1\"\n[assistants.helper]\n";
    /// let (config, _) = Config::parse(text, FileId(0));
    /// let helper = &config.assistants["helper"];
    /// assert_eq!(config.endpoint_of(helper).unwrap().name, "local");
    /// ```
    pub fn endpoint_of(&self, assistant: &AssistantConfig) -> Option<&AiEndpointConfig> {
        self.ai.get(assistant.provider.endpoint()?)
    }
}

/// The kinds of tables, with what differs between them: the named entries of
/// `[senders]`, `[templates]`, `[assistants]` and `[ai]`, the single
/// `[whatsapp]` table, and the tables inside a template: its `header` and
/// each of its `buttons` (by position, from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Sender,
    Template,
    Assistant,
    WhatsApp,
    AiEndpoint,
    TemplateHeader,
    TemplateButton(usize),
    /// `[conversations]`: one table, like `[whatsapp]`.
    Conversations,
}

impl EntryKind {
    const ALL: [EntryKind; 6] = [
        EntryKind::Sender,
        EntryKind::Template,
        EntryKind::Assistant,
        EntryKind::WhatsApp,
        EntryKind::AiEndpoint,
        EntryKind::Conversations,
    ];

    fn from_table(name: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|kind| kind.table() == name)
    }

    /// The top-level table, e.g. `senders`.
    fn table(self) -> &'static str {
        match self {
            EntryKind::Sender => "senders",
            EntryKind::Template => "templates",
            EntryKind::Assistant => "assistants",
            EntryKind::WhatsApp => "whatsapp",
            EntryKind::AiEndpoint => "ai",
            EntryKind::TemplateHeader | EntryKind::TemplateButton(_) => "templates",
            EntryKind::Conversations => "conversations",
        }
    }

    /// The noun in messages, e.g. `sender`.
    fn noun(self) -> &'static str {
        match self {
            EntryKind::Sender => "sender",
            EntryKind::Template => "template",
            EntryKind::Assistant => "assistant",
            EntryKind::WhatsApp => "`[whatsapp]`",
            EntryKind::Conversations => "`[conversations]`",
            EntryKind::AiEndpoint => "AI endpoint",
            EntryKind::TemplateHeader => "template header",
            EntryKind::TemplateButton(_) => "template button",
        }
    }

    /// The subject of "... takes `a` and `b`".
    fn with_article(self) -> &'static str {
        match self {
            EntryKind::Sender => "a sender",
            EntryKind::Template => "a template",
            EntryKind::Assistant => "an assistant",
            EntryKind::WhatsApp => "`[whatsapp]`",
            EntryKind::Conversations => "`[conversations]`",
            EntryKind::AiEndpoint => "an AI endpoint",
            EntryKind::TemplateHeader => "a template header",
            EntryKind::TemplateButton(_) => "a template button",
        }
    }

    /// The label on an unknown key, e.g. `not a sender setting`.
    fn not_a_setting(self) -> String {
        match self {
            EntryKind::WhatsApp => "not a `[whatsapp]` setting".to_owned(),
            EntryKind::Conversations => "not a `[conversations]` setting".to_owned(),
            _ => format!("not {} setting", self.with_article()),
        }
    }

    /// An example name, for help texts.
    fn example_name(self) -> &'static str {
        match self {
            EntryKind::Sender => "berlin-office",
            EntryKind::Template => "appointment_confirmed",
            EntryKind::Assistant => "lead-qualifier",
            EntryKind::WhatsApp => "whatsapp",
            EntryKind::Conversations => "conversations",
            EntryKind::AiEndpoint => "openai",
            EntryKind::TemplateHeader | EntryKind::TemplateButton(_) => "appointment_confirmed",
        }
    }

    /// The keys an entry takes, each with an example line for help texts.
    fn keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            EntryKind::Sender => &[
                ("phone_number_id", r#"phone_number_id = "106540352242922""#),
                ("phone", r#"phone = "+4930901820""#),
                ("provider", r#"provider = "cloud-api""#),
            ],
            EntryKind::Template => &[
                ("language", r#"language = "de""#),
                ("category", r#"category = "utility""#),
                (
                    "body",
                    r#"body = "Hello {{1}}, your appointment is confirmed.""#,
                ),
                ("opt_out", "opt_out = true"),
                (
                    "header",
                    r#"header = { format = "text", text = "Order {{1}}" }"#,
                ),
                (
                    "buttons",
                    r#"buttons = [{ type = "quick_reply", text = "Yes, confirm" }]"#,
                ),
            ],
            EntryKind::TemplateHeader => &[
                ("format", r#"format = "text""#),
                ("text", r#"text = "Order {{1}}""#),
            ],
            EntryKind::TemplateButton(_) => &[
                ("type", r#"type = "quick_reply""#),
                ("text", r#"text = "Yes, confirm""#),
                ("url", r#"url = "https://example.com/track/{{1}}""#),
            ],
            EntryKind::Assistant => &[
                ("model", r#"model = "gpt-4o-mini""#),
                (
                    "instructions",
                    r#"instructions = "You qualify leads politely.""#,
                ),
                ("provider", r#"provider = "openai""#),
                ("temperature", "temperature = 0.3"),
                ("max_tokens", "max_tokens = 512"),
                ("history", "history = 20"),
                ("rules", r#"rules = "ai_rules.toml""#),
            ],
            EntryKind::WhatsApp => &[
                ("base_url", r#"base_url = "https://graph.facebook.com""#),
                ("api_version", r#"api_version = "v21.0""#),
                (
                    "access_token_env",
                    r#"access_token_env = "WHATSAPP_ACCESS_TOKEN""#,
                ),
                (
                    "business_account_id",
                    r#"business_account_id = "102290129340398""#,
                ),
                ("timeout", r#"timeout = "15s""#),
            ],
            EntryKind::Conversations => &[("replies_start_flows", "replies_start_flows = true")],
            EntryKind::AiEndpoint => &[
                ("base_url", r#"base_url = "https://api.openai.com/v1""#),
                ("api_key_env", r#"api_key_env = "OPENAI_API_KEY""#),
                ("timeout", r#"timeout = "30s""#),
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

/// One `[senders.NAME]`, `[templates.NAME]`, `[assistants.NAME]` or
/// `[ai.NAME]` table, or the `[whatsapp]` table, being read.
struct Entry<'doc> {
    kind: EntryKind,
    name: &'doc str,
    table: &'doc dyn TableLike,
    /// The span of `NAME` (`whatsapp` for `[whatsapp]`); where problems of
    /// the entry as a whole point.
    key_span: Span,
}

impl Entry<'_> {
    /// The entry in messages: `` sender `berlin` ``, `` `[whatsapp]` ``,
    /// `` the header of template `t` `` or `` button 2 of template `t` ``.
    fn describe(&self) -> String {
        let name = self.name.escape_debug();
        match self.kind {
            EntryKind::WhatsApp | EntryKind::Conversations => self.kind.noun().to_owned(),
            EntryKind::TemplateHeader => format!("the header of template `{name}`"),
            EntryKind::TemplateButton(index) => {
                format!("button {} of template `{name}`", index + 1)
            }
            kind => format!("{} `{name}`", kind.noun()),
        }
    }
}

/// A sender's `provider` as written, decided once the whole file is read
/// (the `[whatsapp]` table may come after the sender).
struct SenderChoice {
    name: String,
    provider: Option<(SenderProvider, Span)>,
}

/// An assistant's `provider` and `rules` as written, decided once the whole
/// file is read (the `[ai.NAME]` tables may come after the assistant).
struct AssistantChoice {
    name: String,
    /// The value and its span.
    provider: Option<(String, Span)>,
    /// The span of the `rules` value.
    rules: Option<Span>,
}

/// A secret that `flow.toml` names by environment variable, for the
/// messages about it.
struct SecretKind {
    /// `access token`.
    noun: &'static str,
    /// `token`.
    short: &'static str,
    /// `access_token_env = "WHATSAPP_ACCESS_TOKEN"`.
    example: &'static str,
    /// What removing the line means.
    without: &'static str,
}

const ACCESS_TOKEN: SecretKind = SecretKind {
    noun: "access token",
    short: "token",
    example: r#"access_token_env = "WHATSAPP_ACCESS_TOKEN""#,
    without: "remove the line to use `WHATSAPP_ACCESS_TOKEN`",
};

const API_KEY: SecretKind = SecretKind {
    noun: "API key",
    short: "key",
    example: r#"api_key_env = "OPENAI_API_KEY""#,
    without: "remove the line if the server needs no key",
};

/// Walks the parsed document, collecting diagnostics.
struct Loader {
    file: FileId,
    text_len: usize,
    diagnostics: Vec<Diagnostic>,
    /// The senders read so far, with their `provider` as written.
    sender_choices: Vec<SenderChoice>,
    /// The assistants read so far, with their `provider` and `rules`.
    assistant_choices: Vec<AssistantChoice>,
    /// Whether the file has a `whatsapp` key, with or without problems.
    whatsapp_present: bool,
    /// The names of the `[ai.NAME]` tables, with or without problems.
    ai_tables: Vec<String>,
    /// The tables read with serde (`SERDE_TABLES`) and their keys' spans.
    serde_spans: Vec<(String, Span)>,
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
                Some(EntryKind::WhatsApp) => self.whatsapp_table(item, key_span, &mut config),
                Some(EntryKind::Conversations) => {
                    self.conversations_table(item, key_span, &mut config)
                }
                Some(kind) => self.section(kind, item, key_span, &mut config),
                None if RESERVED_TABLES.contains(&table_name) => {}
                None if SERDE_TABLES.contains(&table_name) => {
                    self.serde_spans.push((table_name.to_string(), key_span));
                }
                None => self.unknown_top_level(table_name, key_span),
            }
        }
        self.resolve_providers(&mut config);
        config
    }

    /// Reads the campaign settings' tables with serde; a table that does not
    /// fit is reported at its name and left at its defaults.
    fn serde_tables(&mut self, text: &str, config: &mut Config) {
        if self.serde_spans.is_empty() {
            return;
        }
        // The document parsed with toml_edit already: this cannot fail
        // where that succeeded, and the tables are only known after it.
        let Ok(root) = text.parse::<toml::Table>() else {
            return;
        };
        for (name, span) in std::mem::take(&mut self.serde_spans) {
            let Some(value) = root.get(&name).cloned() else {
                continue;
            };
            let problem = match name.as_str() {
                "campaigns" => value
                    .try_into()
                    .map(|table| config.campaigns = table)
                    .map_err(|e: toml::de::Error| e.message().to_string()),
                "opt_out" => value
                    .try_into::<crate::campaign::OptOutConfig>()
                    .map_err(|e| e.message().to_string())
                    .and_then(|table| {
                        crate::campaign::OptOutWords::from_config(&table)
                            .map_err(|e| e.to_string())?;
                        config.opt_out = table;
                        Ok(())
                    }),
                "store" => value
                    .try_into::<crate::providers::location::StoreConfig>()
                    .map_err(|e| e.message().to_string())
                    .and_then(|table| match table.problem() {
                        Some(problem) => Err(problem),
                        None => {
                            config.store = table;
                            Ok(())
                        }
                    }),
                _ => value
                    .try_into::<crate::campaign::settings::LimitsConfig>()
                    .map_err(|e| e.message().to_string())
                    .and_then(|table| {
                        table.pacing()?;
                        config.limits = table;
                        Ok(())
                    }),
            };
            if let Err(problem) = problem {
                self.report(
                    Diagnostic::new(
                        Code::ConfigValue,
                        format!("`[{name}]` in flow.toml is not valid: {}", problem.trim()),
                    )
                    .with_label(span, "this table")
                    .with_help(if name == "store" {
                        "docs/deploy.md lists the settings of `[store]`"
                    } else {
                        "docs/campaigns.md lists the settings of `[campaigns]`, `[opt_out]` and `[limits]`"
                    }),
                );
            }
        }
    }

    fn unknown_top_level(&mut self, name: &str, span: Span) {
        let known: Vec<&str> = EntryKind::ALL
            .iter()
            .map(|kind| kind.table())
            .chain(RESERVED_TABLES.iter().copied())
            .chain(SERDE_TABLES.iter().copied())
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

    /// `[senders]`, `[templates]`, `[assistants]` or `[ai]` with its entries.
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
            // Assistants may name an endpoint whose table has a problem: that
            // problem is reported at the table, not again at each assistant.
            if kind == EntryKind::AiEndpoint && entry_item.is_table_like() && name != SCRIPTED {
                self.ai_tables.push(name.to_owned());
            }
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
                Some(ParsedEntry::AiEndpoint(endpoint)) => {
                    config.ai.insert(endpoint.name.clone(), endpoint);
                }
                None => {}
            }
        }
    }

    /// The `[whatsapp]` table: one account, not named entries.
    fn whatsapp_table(&mut self, item: &Item, key_span: Span, config: &mut Config) {
        self.whatsapp_present = true;
        let Some(table) = item.as_table_like() else {
            let span = self.span(item.span(), key_span);
            self.report(
                Diagnostic::new(Code::ConfigSyntax, "`whatsapp` must be a table")
                    .with_label(span, format!("found {}", with_article(item.type_name())))
                    .with_help(
                        "put the Cloud API account's settings below a `[whatsapp]` header, \
                         e.g. `[whatsapp]` then `access_token_env = \"WHATSAPP_ACCESS_TOKEN\"`",
                    ),
            );
            return;
        };
        let entry = Entry {
            kind: EntryKind::WhatsApp,
            name: EntryKind::WhatsApp.table(),
            table,
            key_span,
        };
        let before = self.diagnostics.len();
        self.unknown_keys(&entry);
        let whatsapp = self.whatsapp(&entry);
        if self.diagnostics.len() == before {
            config.whatsapp = Some(whatsapp);
        }
    }

    /// `[conversations]`: one table of settings, all optional.
    fn conversations_table(&mut self, item: &Item, key_span: Span, config: &mut Config) {
        let Some(table) = item.as_table_like() else {
            let span = self.span(item.span(), key_span);
            self.report(
                Diagnostic::new(Code::ConfigSyntax, "`conversations` must be a table")
                    .with_label(span, format!("found {}", with_article(item.type_name())))
                    .with_help(
                        "put the settings below a `[conversations]` header, e.g. \
                         `[conversations]` then `replies_start_flows = true`",
                    ),
            );
            return;
        };
        let entry = Entry {
            kind: EntryKind::Conversations,
            name: EntryKind::Conversations.table(),
            table,
            key_span,
        };
        self.unknown_keys(&entry);
        if let Some(start) = self.optional_bool(&entry, "replies_start_flows") {
            config.conversations.replies_start_flows = start;
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
            EntryKind::Sender => self.sender(&entry),
            EntryKind::Template => self.template(&entry).map(ParsedEntry::Template),
            EntryKind::Assistant => self.assistant(&entry),
            EntryKind::AiEndpoint => self.ai_endpoint(&entry).map(ParsedEntry::AiEndpoint),
            // `[whatsapp]` is one table, read by `whatsapp_table`; headers
            // and buttons are read with their template.
            EntryKind::WhatsApp
            | EntryKind::Conversations
            | EntryKind::TemplateHeader
            | EntryKind::TemplateButton(_) => None,
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
            let help = match (secret_setting(entry.kind), did_you_mean(key, &known)) {
                // `access_token = "EAAG..."`: steer away from the secret
                // itself, not only towards the right spelling.
                (Some((env_key, secret)), _) if names_a_secret(key) => format!(
                    "did you mean `{env_key}`? flow.toml never holds the {noun} itself: \
                     set it in an environment variable and name the variable, e.g. `{example}`",
                    noun = secret.noun,
                    example = secret.example,
                ),
                (_, Some(suggestion)) => format!("did you mean `{suggestion}`? {takes}"),
                (_, None) => takes,
            };
            self.report(
                Diagnostic::new(
                    Code::ConfigSyntax,
                    format!(
                        "unknown key `{}` in {}",
                        key.escape_debug(),
                        entry.describe()
                    ),
                )
                .with_label(span, entry.kind.not_a_setting())
                .with_help(help),
            );
        }
    }

    fn missing_key(&mut self, entry: &Entry<'_>, key: &str) {
        self.report(
            Diagnostic::new(
                Code::ConfigSyntax,
                format!("{} has no `{key}`", entry.describe()),
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
        // And the opposite: `temperature = "0.3"`, `max_tokens = "512"`.
        let quoted_value = item.as_str().map(str::trim);
        let fits_unquoted = match expected {
            "a number" => quoted_value.is_some_and(|text| text.parse::<f64>().is_ok()),
            "an integer" => quoted_value.is_some_and(|text| text.parse::<i64>().is_ok()),
            "a boolean" => quoted_value.is_some_and(|text| text.parse::<bool>().is_ok()),
            _ => false,
        };
        if fits_unquoted {
            help.push_str(", without quotes");
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

    fn sender(&mut self, entry: &Entry<'_>) -> Option<ParsedEntry> {
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
        let provider = self
            .optional_string(entry, "provider")
            .and_then(|(value, span)| Some((self.sender_provider(&value, span)?, span)));
        // Recorded even for a sender with problems, so that every problem
        // of the file is reported.
        self.sender_choices.push(SenderChoice {
            name: entry.name.to_owned(),
            provider,
        });
        let sender = SenderConfig {
            name: entry.name.to_owned(),
            phone_number_id: phone_number_id?.0,
            phone: phone.map(|(number, _)| number),
            // Decided in `resolve_providers`, once `[whatsapp]` is known.
            provider: SenderProvider::DryRun,
            span: entry.key_span,
        };
        Some(ParsedEntry::Sender(sender))
    }

    fn sender_provider(&mut self, value: &str, span: Span) -> Option<SenderProvider> {
        if let Ok(provider) = value.parse() {
            return Some(provider);
        }
        let names: Vec<&str> = SenderProvider::ALL.iter().map(|p| p.as_str()).collect();
        let rule = "a sender's provider is `cloud-api` (the WhatsApp Cloud API, with the \
                    account of `[whatsapp]`) or `dry-run` (prints the messages, sends nothing)";
        self.unknown_keyword(
            ("sender provider", "not a sender provider"),
            value,
            span,
            &names,
            (rule, rule),
        );
        None
    }

    /// Reports `value`, which is none of `names`: "unknown WHAT `value`"
    /// labelled LABEL, with help saying `rule` after a did-you-mean, or
    /// `fallback` without one.
    fn unknown_keyword(
        &mut self,
        (what, label): (&str, &str),
        value: &str,
        span: Span,
        names: &[&str],
        (rule, fallback): (&str, &str),
    ) {
        let help = match did_you_mean(value, names) {
            Some(suggestion) => format!("did you mean `{suggestion}`? {rule}"),
            None => fallback.to_owned(),
        };
        self.report(
            Diagnostic::new(
                Code::ConfigValue,
                format!("unknown {what} `{}`", value.escape_debug()),
            )
            .with_label(span, label)
            .with_help(help),
        );
    }

    fn check_phone_number_id(&mut self, id: &str, span: Span) {
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        let label = digits_only_label(id);
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
        let header = self.template_header(entry, placeholders.as_ref());
        let buttons = self.template_buttons(entry);
        // A header or button with a problem has been reported; the entry is
        // left out by `section`.
        Some(TemplateConfig {
            name: entry.name.to_owned(),
            language: language?.0,
            category: category?,
            body: body?.0.into(),
            placeholders: placeholders?,
            opt_out,
            header,
            buttons,
            span: entry.key_span,
        })
    }

    /// The table at `key` of `entry` as the entry of `kind`, or a
    /// diagnostic when it is not a table.
    fn sub_entry<'doc>(
        &mut self,
        entry: &Entry<'doc>,
        key: &str,
        kind: EntryKind,
    ) -> Option<Entry<'doc>> {
        let (item, span) = self.lookup(entry, key)?;
        match item.as_table_like() {
            Some(table) => Some(Entry {
                kind,
                name: entry.name,
                table,
                key_span: span,
            }),
            None => {
                self.wrong_type(entry, key, item, span, "a table");
                None
            }
        }
    }

    /// `header = { format = "text", text = "..." }` or `{ format = "image" }`
    /// (`document`, `video`): a text header has at most 60 characters and at
    /// most one placeholder, in the body's format; a media header has no
    /// text.
    fn template_header(
        &mut self,
        entry: &Entry<'_>,
        body: Option<&Placeholders>,
    ) -> Option<TemplateHeaderConfig> {
        let header = self.sub_entry(entry, "header", EntryKind::TemplateHeader)?;
        self.unknown_keys(&header);
        let text = self.optional_string(&header, "text");
        let (format, format_span) = self.required_string(&header, "format")?;
        match self.header_format(&format, format_span)? {
            Some(kind) => {
                if let Some((_, span)) = text {
                    self.report(
                        Diagnostic::new(
                            Code::ConfigValue,
                            format!("{} has no text", header.describe()),
                        )
                        .with_label(span, format!("{format} headers have no text"))
                        .with_help(format!(
                            "remove `text`: a send gives the {format} as a link or media id;                              for a text line above the body use `format = \"text\"`"
                        )),
                    );
                    return None;
                }
                Some(TemplateHeaderConfig::Media(kind))
            }
            None => {
                let Some((text, span)) = text else {
                    self.missing_key(&header, "text");
                    return None;
                };
                let placeholders = self.header_text(&text, span, body)?;
                Some(TemplateHeaderConfig::Text { text, placeholders })
            }
        }
    }

    /// The header's `format`: `Some(kind)` for a media header, `None` for
    /// text; a diagnostic (and `None` outside) for anything else.
    fn header_format(&mut self, format: &str, span: Span) -> Option<Option<MediaKind>> {
        match format {
            "text" => return Some(None),
            "image" => return Some(Some(MediaKind::Image)),
            "document" => return Some(Some(MediaKind::Document)),
            "video" => return Some(Some(MediaKind::Video)),
            _ => {}
        }
        let rule = format!("a header is {}", english_list(HEADER_FORMATS, "or"));
        let fallback = if format.eq_ignore_ascii_case("location") {
            format!("location headers are not supported; {rule}")
        } else {
            format!("{rule}, as approved by Meta")
        };
        self.unknown_keyword(
            ("template header format", "not a header format"),
            format,
            span,
            HEADER_FORMATS,
            (&rule, &fallback),
        );
        None
    }

    /// A text header's placeholders: at most one, in the body's format.
    fn header_text(
        &mut self,
        text: &str,
        span: Span,
        body: Option<&Placeholders>,
    ) -> Option<Placeholders> {
        let problem = |message: &str, label: String, help: &str| {
            Diagnostic::new(Code::ConfigValue, message.to_owned())
                .with_label(span, label)
                .with_help(help.to_owned())
        };
        if text.trim().is_empty() {
            self.report(problem(
                "template header text is empty",
                "no text here".to_owned(),
                "copy the header text of the approved template, or remove the header",
            ));
            return None;
        }
        let chars = text.chars().count();
        if chars > MAX_HEADER_CHARS {
            self.report(problem(
                "template header text is too long",
                format!("{chars} characters; WhatsApp allows at most {MAX_HEADER_CHARS}"),
                "copy the header text of the approved template; WhatsApp headers are one \
                 short line",
            ));
            return None;
        }
        let placeholders = match parse_placeholders(text) {
            Ok(placeholders) => placeholders,
            Err(problem) => {
                self.report(
                    Diagnostic::new(Code::ConfigValue, "invalid placeholder in template header")
                        .with_label(span, problem.to_string())
                        .with_help(problem.help()),
                );
                return None;
            }
        };
        if placeholders.count() > 1 {
            self.report(problem(
                "a template header has at most one placeholder",
                format!("{} placeholders", placeholders.count()),
                "WhatsApp text headers take one variable, e.g. `text = \"Order {{1}}\"`",
            ));
            return None;
        }
        let mixed = match (body, &placeholders) {
            (Some(Placeholders::Named(names)), Placeholders::Positional(1)) => !names.is_empty(),
            (Some(Placeholders::Positional(n)), Placeholders::Named(_)) => *n > 0,
            _ => false,
        };
        if mixed {
            self.report(problem(
                "header and body placeholders are mixed",
                "the body's placeholders are of the other format".to_owned(),
                "a WhatsApp template uses positional placeholders {{1}}, {{2}}, ... or named \
                 ones like {{customer_name}} throughout, header included",
            ));
            return None;
        }
        Some(placeholders)
    }

    /// `buttons = [{ type = "quick_reply", text = "Yes" }, ...]` (or
    /// `[[templates.NAME.buttons]]` tables): each button checked, then
    /// WhatsApp's limits on the whole set.
    fn template_buttons(&mut self, entry: &Entry<'_>) -> Vec<TemplateButtonConfig> {
        let Some((item, span)) = self.lookup(entry, "buttons") else {
            return Vec::new();
        };
        let mut tables: Vec<(&dyn TableLike, Span)> = Vec::new();
        if let Some(array) = item.as_array_of_tables() {
            for table in array.iter() {
                tables.push((table, self.span(table.span(), span)));
            }
        } else if let Some(array) = item.as_array() {
            for value in array.iter() {
                let value_span = self.span(value.span(), span);
                match value.as_inline_table() {
                    Some(table) => tables.push((table, value_span)),
                    None => self.report(
                        Diagnostic::new(Code::ConfigSyntax, "each button must be a table")
                            .with_label(
                                value_span,
                                format!("found {}", with_article(value.type_name())),
                            )
                            .with_help(format!(
                                "write it like `{}`",
                                EntryKind::Template.example_line("buttons")
                            )),
                    ),
                }
            }
        } else {
            self.wrong_type(entry, "buttons", item, span, "a list of tables");
            return Vec::new();
        }
        let mut buttons = Vec::new();
        for (index, (table, button_span)) in tables.into_iter().enumerate() {
            let button = Entry {
                kind: EntryKind::TemplateButton(index),
                name: entry.name,
                table,
                key_span: button_span,
            };
            if let Some(parsed) = self.template_button(&button) {
                buttons.push((parsed, button_span));
            }
        }
        self.button_limits(entry, &buttons);
        buttons.into_iter().map(|(button, _)| button).collect()
    }

    /// One button: a known `type`, a `text` of at most 25 characters, and a
    /// `url` for URL buttons only, with a placeholder only at its end.
    fn template_button(&mut self, button: &Entry<'_>) -> Option<TemplateButtonConfig> {
        self.unknown_keys(button);
        let kind = self
            .required_string(button, "type")
            .and_then(|(name, span)| self.button_kind(&name, span));
        let text = self.required_string(button, "text");
        if let Some((text, span)) = &text {
            let chars = text.chars().count();
            let label = if text.trim().is_empty() {
                Some("no text here".to_owned())
            } else if chars > MAX_BUTTON_TEXT_CHARS {
                Some(format!(
                    "{chars} characters; WhatsApp allows at most {MAX_BUTTON_TEXT_CHARS}"
                ))
            } else {
                None
            };
            if let Some(label) = label {
                self.report(
                    Diagnostic::new(
                        Code::ConfigValue,
                        format!("the text of {} is not usable", button.describe()),
                    )
                    .with_label(*span, label)
                    .with_help(format!(
                        "copy the button text of the approved template: 1 to \
                         {MAX_BUTTON_TEXT_CHARS} characters"
                    )),
                );
            }
        }
        let url = self.optional_string(button, "url");
        let kind = kind?;
        match (kind, &url) {
            (TemplateButtonKind::Url, None) => self.missing_key(button, "url"),
            (TemplateButtonKind::Url, Some((url, span))) => self.check_button_url(url, *span),
            (_, Some((_, span))) => self.report(
                Diagnostic::new(
                    Code::ConfigValue,
                    format!("{} is not a URL button", button.describe()),
                )
                .with_label(*span, format!("`{kind}` buttons have no `url`"))
                .with_help("remove `url`, or make it a link button with `type = \"url\"`"),
            ),
            (_, None) => {}
        }
        Some(TemplateButtonConfig {
            kind,
            text: text?.0,
            url: url.map(|(url, _)| url),
        })
    }

    fn button_kind(&mut self, name: &str, span: Span) -> Option<TemplateButtonKind> {
        if let Ok(kind) = name.parse() {
            return Some(kind);
        }
        let names: Vec<&str> = TemplateButtonKind::ALL.iter().map(|k| k.as_str()).collect();
        let rule = format!("a button is {}", english_list(&names, "or"));
        self.unknown_keyword(
            ("template button type", "not a button type"),
            name,
            span,
            &names,
            (&rule, &rule),
        );
        None
    }

    /// A URL button's link: http(s), and at most one placeholder, `{{1}}`,
    /// at its very end (the part a send fills in).
    fn check_button_url(&mut self, url: &str, span: Span) {
        let rule = "a URL button's link is http:// or https://, optionally ending in `{{1}}` \
                    for the part each send fills in, e.g. \
                    `url = \"https://example.com/track/{{1}}\"`";
        let lower = url.to_ascii_lowercase();
        let label = if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            Some("not an http(s) link".to_owned())
        } else {
            match url.find("{{") {
                None => None,
                Some(at) if &url[at..] == "{{1}}" => None,
                Some(at) if url[at..].ends_with("}}") && !url[at + 2..].contains("{{") => {
                    Some(format!("`{}` is not `{{{{1}}}}`", &url[at..]))
                }
                Some(_) => Some("the placeholder is not at the end".to_owned()),
            }
        };
        if let Some(label) = label {
            self.report(
                Diagnostic::new(Code::ConfigValue, "invalid URL button link")
                    .with_label(span, label)
                    .with_help(rule),
            );
        }
    }

    /// WhatsApp's limits on a template's buttons: at most 10, of which at
    /// most 2 URL buttons, 1 phone number button and 1 copy-code button,
    /// and the quick replies side by side (all before or all after the
    /// others).
    fn button_limits(&mut self, entry: &Entry<'_>, buttons: &[(TemplateButtonConfig, Span)]) {
        if let Some((_, span)) = buttons.get(MAX_BUTTONS) {
            self.report(
                Diagnostic::new(
                    Code::ConfigValue,
                    format!(
                        "template `{}` has {} buttons",
                        entry.name.escape_debug(),
                        buttons.len()
                    ),
                )
                .with_label(*span, format!("button {} is one too many", MAX_BUTTONS + 1))
                .with_help(format!(
                    "WhatsApp templates have at most {MAX_BUTTONS} buttons"
                )),
            );
        }
        for (kind, max) in [
            (TemplateButtonKind::Url, MAX_URL_BUTTONS),
            (TemplateButtonKind::PhoneNumber, 1),
            (TemplateButtonKind::CopyCode, 1),
        ] {
            let extra = buttons.iter().filter(|(b, _)| b.kind == kind).nth(max);
            if let Some((_, span)) = extra {
                self.report(
                    Diagnostic::new(
                        Code::ConfigValue,
                        format!(
                            "template `{}` has too many `{kind}` buttons",
                            entry.name.escape_debug()
                        ),
                    )
                    .with_label(*span, "one too many")
                    .with_help(format!(
                        "WhatsApp templates have at most {max} `{kind}` button{}",
                        if max == 1 { "" } else { "s" }
                    )),
                );
            }
        }
        // Quick replies side by side: the kind changes between quick reply
        // and other at most once.
        let is_quick =
            |(b, _): &(TemplateButtonConfig, Span)| b.kind == TemplateButtonKind::QuickReply;
        let switches: Vec<usize> = buttons
            .windows(2)
            .enumerate()
            .filter(|(_, pair)| is_quick(&pair[0]) != is_quick(&pair[1]))
            .map(|(i, _)| i + 1)
            .collect();
        if let Some(&at) = switches.get(1) {
            self.report(
                Diagnostic::new(
                    Code::ConfigValue,
                    format!(
                        "the quick-reply buttons of template `{}` are not side by side",
                        entry.name.escape_debug()
                    ),
                )
                .with_label(buttons[at].1, "this button splits the group")
                .with_help(
                    "WhatsApp groups the quick replies before or after the other buttons; \
                     copy the button order of the approved template",
                ),
            );
        }
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
        let rule = format!("the category is {}", english_list(&names, "or"));
        self.unknown_keyword(
            ("template category", "not a WhatsApp template category"),
            name,
            span,
            &names,
            (&rule, &format!("{rule}, as approved by Meta")),
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

    fn assistant(&mut self, entry: &Entry<'_>) -> Option<ParsedEntry> {
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
        // Checked against the `[ai.NAME]` tables in `resolve_providers`.
        let provider = self.optional_string(entry, "provider");
        let temperature = self
            .optional_number(entry, "temperature")
            .and_then(|(value, span)| {
                self.check_range(
                    entry,
                    "temperature",
                    TEMPERATURE_RANGE.contains(&value),
                    span,
                    "0 and 2",
                    "0 gives the most predictable answers, 2 the most varied",
                )
                .then_some(value as f32)
            });
        let max_tokens = self
            .optional_integer(entry, "max_tokens")
            .and_then(|(value, span)| {
                self.check_range(
                    entry,
                    "max_tokens",
                    MAX_TOKENS_RANGE.contains(&value),
                    span,
                    "1 and 100000",
                    "a WhatsApp text holds at most 4,096 characters, roughly 1,000 tokens",
                )
                .then(|| u32::try_from(value).ok())
                .flatten()
            });
        let history = match self.optional_integer(entry, "history") {
            Some((value, span)) => self
                .check_range(
                    entry,
                    "history",
                    HISTORY_RANGE.contains(&value),
                    span,
                    "0 and 1000",
                    "it is how many earlier messages with the customer go along with each \
                     question; 0 sends none, and each one costs tokens",
                )
                .then(|| usize::try_from(value).ok())
                .flatten()
                .unwrap_or(AssistantConfig::DEFAULT_HISTORY),
            None => AssistantConfig::DEFAULT_HISTORY,
        };
        let rules = self.optional_string(entry, "rules");
        if let Some((path, span)) = &rules {
            if path.trim().is_empty() {
                self.report(
                    Diagnostic::new(Code::ConfigValue, "rules file path is empty")
                        .with_label(*span, "no path here")
                        .with_help(
                            "name the scripted AI's rules file, relative to flow.toml, e.g. \
                             `rules = \"ai_rules.toml\"`, or remove the line to use the \
                             built-in rules",
                        ),
                );
            }
        }
        // Recorded even for an assistant with problems, so that every
        // problem of the file is reported.
        self.assistant_choices.push(AssistantChoice {
            name: entry.name.to_owned(),
            provider,
            rules: rules.as_ref().map(|(_, span)| *span),
        });
        let assistant = AssistantConfig {
            name: entry.name.to_owned(),
            model: model.map(|(name, _)| name),
            instructions: instructions.map(|(text, _)| text),
            // Decided in `resolve_providers`, once the `[ai]` tables are known.
            provider: AssistantProvider::Scripted,
            temperature,
            max_tokens,
            history,
            rules: rules.map(|(path, _)| path),
            span: entry.key_span,
        };
        Some(ParsedEntry::Assistant(assistant))
    }

    /// Reports a number outside its range; whether it is inside.
    fn check_range(
        &mut self,
        entry: &Entry<'_>,
        key: &str,
        in_range: bool,
        span: Span,
        bounds: &str,
        rule: &str,
    ) -> bool {
        if !in_range {
            self.report(
                Diagnostic::new(Code::ConfigValue, format!("`{key}` is out of range"))
                    .with_label(span, format!("must be between {bounds}"))
                    .with_help(format!(
                        "{rule}; write a value between {bounds}, e.g. `{}`",
                        entry.kind.example_line(key)
                    )),
            );
        }
        in_range
    }

    /// A number, integer or not (`temperature = 1` is `1.0`).
    fn optional_number(&mut self, entry: &Entry<'_>, key: &str) -> Option<(f64, Span)> {
        let (item, span) = self.lookup(entry, key)?;
        let value = item
            .as_float()
            .or_else(|| item.as_integer().map(|value| value as f64));
        if value.is_none() {
            self.wrong_type(entry, key, item, span, "a number");
        }
        Some((value?, span))
    }

    fn optional_integer(&mut self, entry: &Entry<'_>, key: &str) -> Option<(i64, Span)> {
        let (item, span) = self.lookup(entry, key)?;
        match item.as_integer() {
            Some(value) => Some((value, span)),
            None => {
                self.wrong_type(entry, key, item, span, "an integer");
                None
            }
        }
    }

    fn whatsapp(&mut self, entry: &Entry<'_>) -> WhatsAppConfig {
        let defaults = WhatsAppConfig::default();
        let base_url = self.base_url(entry).unwrap_or(defaults.base_url);
        let api_version = match self.optional_string(entry, "api_version") {
            Some((version, span)) => {
                self.check_api_version(&version, span);
                version
            }
            None => defaults.api_version,
        };
        let access_token_env = self
            .env_var_name(entry, "access_token_env", &ACCESS_TOKEN)
            .unwrap_or(defaults.access_token_env);
        let business_account_id = self.optional_string(entry, "business_account_id");
        if let Some((id, span)) = &business_account_id {
            self.check_business_account_id(id, *span);
        }
        let timeout = self.timeout(entry, WhatsAppConfig::DEFAULT_TIMEOUT);
        WhatsAppConfig {
            base_url,
            api_version,
            access_token_env,
            business_account_id: business_account_id.map(|(id, _)| id),
            timeout,
            span: entry.key_span,
        }
    }

    fn ai_endpoint(&mut self, entry: &Entry<'_>) -> Option<AiEndpointConfig> {
        if entry.name == SCRIPTED {
            self.report(
                Diagnostic::new(
                    Code::ConfigValue,
                    "the AI endpoint name `scripted` is reserved",
                )
                .with_label(entry.key_span, "the name of the built-in scripted AI")
                .with_help(
                    "`provider = \"scripted\"` always means the scripted AI; name the \
                         endpoint after its service, e.g. `[ai.openai]` or `[ai.local]`",
                ),
            );
        }
        if !entry.table.contains_key("base_url") {
            self.missing_key(entry, "base_url");
        }
        let base_url = self.base_url(entry);
        let api_key_env = self.env_var_name(entry, "api_key_env", &API_KEY);
        let timeout = self.timeout(entry, AiEndpointConfig::DEFAULT_TIMEOUT);
        Some(AiEndpointConfig {
            name: entry.name.to_owned(),
            base_url: base_url?,
            api_key_env,
            timeout,
            span: entry.key_span,
        })
    }

    /// `base_url`, checked and without a trailing `/`; `None` when absent or
    /// invalid.
    fn base_url(&mut self, entry: &Entry<'_>) -> Option<String> {
        let (url, span) = self.optional_string(entry, "base_url")?;
        if let Err(problem) = check_http_url(&url) {
            let (message, help) = match &problem {
                UrlProblem::Credentials => {
                    let secret = match entry.kind {
                        EntryKind::WhatsApp => &ACCESS_TOKEN,
                        _ => &API_KEY,
                    };
                    (
                        "credentials belong in the environment, not in flow.toml".to_owned(),
                        format!(
                            "remove the `user:password@` part, put the {noun} in an environment \
                             variable and name it, e.g. `{example}`",
                            noun = secret.noun,
                            example = secret.example,
                        ),
                    )
                }
                problem => {
                    let example = entry.kind.example_line("base_url");
                    let help = match problem.suggestion() {
                        Some(fixed) => format!(
                            "did you mean `\"{fixed}\"`? the base URL is http:// or https://, a \
                             host, and an optional port and path, e.g. `{example}`"
                        ),
                        None => format!(
                            "the base URL is http:// or https://, a host, and an optional port \
                             and path, e.g. `{example}`"
                        ),
                    };
                    ("`base_url` is not an http(s) URL".to_owned(), help)
                }
            };
            self.report(
                Diagnostic::new(Code::ConfigValue, message)
                    .with_label(span, problem.to_string())
                    .with_help(help),
            );
            return None;
        }
        let url = url.trim_end_matches('/').to_owned();
        let path = url_path(&url);
        match entry.kind {
            // `https://graph.facebook.com/v21.0`: the version would be sent twice.
            EntryKind::WhatsApp => {
                let last = path.rsplit('/').next().unwrap_or("");
                if !last.is_empty() && is_api_version(last) {
                    let without = &url[..url.len() - last.len() - 1];
                    self.report(
                        Diagnostic::new(Code::ConfigValue, "`base_url` includes the API version")
                            .with_label(span, "the version goes in `api_version`")
                            .with_help(format!(
                                "flowc adds the version to the path itself; write \
                                 `base_url = \"{without}\"` and `api_version = \"{last}\"`"
                            )),
                    );
                    return None;
                }
            }
            // `.../v1/chat/completions`: the path would be sent twice.
            EntryKind::AiEndpoint => {
                if let Some(without) = url.strip_suffix("/chat/completions") {
                    self.report(
                        Diagnostic::new(Code::ConfigValue, "`base_url` includes the endpoint path")
                            .with_label(span, "flowc adds `/chat/completions` itself")
                            .with_help(format!(
                                "end the base URL before `/chat/completions`: \
                                 `base_url = \"{without}\"`"
                            )),
                    );
                    return None;
                }
            }
            _ => {}
        }
        Some(url)
    }

    /// Graph API versions look like `v21.0`.
    fn check_api_version(&mut self, version: &str, span: Span) {
        if is_api_version(version) {
            return;
        }
        let rule = "Graph API versions look like `v21.0`; use the version your Meta app is on";
        let help = match api_version_suggestion(version) {
            Some(fixed) => format!("did you mean `{fixed}`? {rule}"),
            None => rule.to_owned(),
        };
        self.report(
            Diagnostic::new(
                Code::ConfigValue,
                format!("invalid API version `{}`", version.escape_debug()),
            )
            .with_label(span, "not a Graph API version")
            .with_help(help),
        );
    }

    fn check_business_account_id(&mut self, id: &str, span: Span) {
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        let label = digits_only_label(id);
        self.report(
            Diagnostic::new(Code::ConfigValue, "business account id must be digits only")
                .with_label(span, label)
                .with_help(
                    "use the WhatsApp Business Account ID from the Meta app's WhatsApp API Setup \
                 page, digits only, e.g. \"102290129340398\"; remove the line if you do not \
                 pull templates",
                ),
        );
    }

    /// An environment variable name where a secret is meant; `None` when
    /// absent or invalid. The value is never repeated in a diagnostic: it may
    /// be the secret itself.
    fn env_var_name(
        &mut self,
        entry: &Entry<'_>,
        key: &str,
        secret: &SecretKind,
    ) -> Option<String> {
        let (name, span) = self.optional_string(entry, key)?;
        if is_env_var_name(&name) {
            return Some(name);
        }
        let diagnostic = if name.trim().is_empty() {
            Diagnostic::new(Code::ConfigValue, format!("`{key}` is empty"))
                .with_label(span, "no variable name here")
                .with_help(format!(
                    "name the environment variable that holds the {noun}, e.g. `{example}`, \
                     or {without}",
                    noun = secret.noun,
                    example = secret.example,
                    without = secret.without,
                ))
        } else if let Some(fixed) = env_var_name_suggestion(&name) {
            Diagnostic::new(
                Code::ConfigValue,
                format!("`{key}` is not an environment variable name"),
            )
            .with_label(span, "only upper-case letters, digits and `_` are allowed")
            .with_help(format!(
                "did you mean `{fixed}`? flow.toml names the variable; the {noun} itself \
                 stays in the environment, never in flow.toml",
                noun = secret.noun,
            ))
        } else {
            Diagnostic::new(
                Code::ConfigValue,
                format!(
                    "the {} belongs in the environment, not in flow.toml",
                    secret.noun
                ),
            )
            .with_label(
                span,
                format!(
                    "this looks like the {} itself, not a variable name",
                    secret.short
                ),
            )
            .with_help(format!(
                "set the {noun} in an environment variable where flowc runs and name that \
                 variable here, e.g. `{example}`; if this file was shared or committed, \
                 revoke the {short} and create a new one",
                noun = secret.noun,
                short = secret.short,
                example = secret.example,
            ))
        };
        self.report(diagnostic);
        None
    }

    /// `timeout`, or `default` when absent (or invalid: then reported).
    fn timeout(&mut self, entry: &Entry<'_>, default: Duration) -> Duration {
        let Some((text, span)) = self.optional_string(entry, "timeout") else {
            return default;
        };
        let example = entry.kind.example_line("timeout");
        let default_text = crate::duration::format(default.as_millis() as u64);
        let problem = match crate::duration::parse(&text) {
            Some(0) => Some((
                "timeout is zero".to_owned(),
                "every call would fail at once".to_owned(),
                format!(
                    "give calls time to answer, e.g. `{example}`, or remove the line for \
                     the default of {default_text}"
                ),
            )),
            Some(ms) if ms > MAX_TIMEOUT_MS => Some((
                "timeout is too long".to_owned(),
                "more than 10m".to_owned(),
                format!(
                    "a call that hangs holds up the flow that made it; use at most 10m, \
                     e.g. `{example}`"
                ),
            )),
            Some(ms) => return Duration::from_millis(ms),
            None => {
                let rule = format!(
                    "a timeout is a number and a unit (`ms`, `s`, `m` or `h`), like `{example}` \
                     or `timeout = \"1m30s\"`"
                );
                let compact: String = text.split_whitespace().collect();
                let fixed = if !compact.is_empty() && compact.bytes().all(|b| b.is_ascii_digit()) {
                    Some(format!("{compact}s"))
                } else if compact != text && crate::duration::parse(&compact).is_some() {
                    Some(compact)
                } else {
                    None
                };
                let help = match fixed {
                    Some(fixed) => format!("did you mean `\"{fixed}\"`? {rule}"),
                    None => rule,
                };
                Some((
                    format!("invalid timeout `{}`", text.escape_debug()),
                    "not a duration".to_owned(),
                    help,
                ))
            }
        };
        if let Some((message, label, help)) = problem {
            self.report(
                Diagnostic::new(Code::ConfigValue, message)
                    .with_label(span, label)
                    .with_help(help),
            );
        }
        default
    }

    /// Decides every sender's and assistant's provider, now that the whole
    /// file is read; reports and leaves out those whose provider does not
    /// exist. Entries already left out for other problems are checked too,
    /// so every problem is reported; removing them again does nothing.
    fn resolve_providers(&mut self, config: &mut Config) {
        for choice in std::mem::take(&mut self.sender_choices) {
            let provider = match choice.provider {
                Some((SenderProvider::CloudApi, span)) if !self.whatsapp_present => {
                    self.report(
                        Diagnostic::new(
                            Code::ConfigValue,
                            format!(
                                "sender `{}` uses the Cloud API, but there is no `[whatsapp]` table",
                                choice.name.escape_debug()
                            ),
                        )
                        .with_label(span, "needs a `[whatsapp]` table")
                        .with_help(
                            "add the Cloud API account: a `[whatsapp]` table with \
                             `access_token_env = \"WHATSAPP_ACCESS_TOKEN\"` (every setting has a \
                             default); or write `provider = \"dry-run\"` to send nothing",
                        ),
                    );
                    config.senders.remove(&choice.name);
                    continue;
                }
                Some((provider, _)) => provider,
                None if self.whatsapp_present => SenderProvider::CloudApi,
                None => SenderProvider::DryRun,
            };
            if let Some(sender) = config.senders.get_mut(&choice.name) {
                sender.provider = provider;
            }
        }

        let default = match self.ai_tables.as_slice() {
            [only] => AssistantProvider::Endpoint(only.clone()),
            _ => AssistantProvider::Scripted,
        };
        for choice in std::mem::take(&mut self.assistant_choices) {
            let provider = match &choice.provider {
                None => default.clone(),
                Some((value, _)) if value == SCRIPTED => AssistantProvider::Scripted,
                Some((value, _)) if self.ai_tables.contains(value) => {
                    AssistantProvider::Endpoint(value.clone())
                }
                Some((value, span)) => {
                    self.unknown_assistant_provider(value, *span);
                    config.assistants.remove(&choice.name);
                    continue;
                }
            };
            if let (Some(rules_span), AssistantProvider::Endpoint(endpoint)) =
                (choice.rules, &provider)
            {
                let how = if choice.provider.is_some() {
                    "uses"
                } else {
                    "uses by default"
                };
                let mut diagnostic =
                    Diagnostic::new(Code::ConfigValue, "`rules` only applies to the scripted AI")
                        .with_label(
                            rules_span,
                            format!(
                                "assistant `{}` {how} the `{}` endpoint",
                                choice.name.escape_debug(),
                                endpoint.escape_debug()
                            ),
                        )
                        .with_help(format!(
                    "write `provider = \"scripted\"` to answer from these rules, or remove \
                     `rules` to ask the `{}` endpoint",
                    endpoint.escape_debug()
                ));
                if let Some((_, provider_span)) = &choice.provider {
                    diagnostic =
                        diagnostic.with_secondary(*provider_span, "the provider is chosen here");
                }
                self.report(diagnostic);
                config.assistants.remove(&choice.name);
                continue;
            }
            if let Some(assistant) = config.assistants.get_mut(&choice.name) {
                assistant.provider = provider;
            }
        }
    }

    fn unknown_assistant_provider(&mut self, value: &str, span: Span) {
        let mut candidates: Vec<&str> = self.ai_tables.iter().map(String::as_str).collect();
        candidates.push(SCRIPTED);
        let rule = if self.ai_tables.is_empty() {
            let example = if is_valid_entry_name(value) {
                value
            } else {
                "openai"
            };
            format!(
                "there is no `[ai.NAME]` table yet: add one, e.g. `[ai.{example}]` with \
                 `base_url = \"https://api.openai.com/v1\"`, or write `provider = \"scripted\"`"
            )
        } else {
            let tables: Vec<&str> = self.ai_tables.iter().map(String::as_str).collect();
            format!(
                "an assistant's provider is the name of an `[ai.NAME]` table ({}) or `scripted`",
                english_list(&tables, "or")
            )
        };
        let help = match did_you_mean(value, &candidates) {
            Some(suggestion) => format!("did you mean `{suggestion}`? {rule}"),
            None => rule,
        };
        self.report(
            Diagnostic::new(
                Code::ConfigValue,
                format!("unknown AI provider `{}`", value.escape_debug()),
            )
            .with_label(span, format!("no `[ai.{}]` table", value.escape_debug()))
            .with_help(help),
        );
    }
}

enum ParsedEntry {
    Sender(SenderConfig),
    Template(TemplateConfig),
    Assistant(AssistantConfig),
    AiEndpoint(AiEndpointConfig),
}

/// The `*_env` key of the kinds that name a secret, with what the secret is.
fn secret_setting(kind: EntryKind) -> Option<(&'static str, &'static SecretKind)> {
    match kind {
        EntryKind::WhatsApp => Some(("access_token_env", &ACCESS_TOKEN)),
        EntryKind::AiEndpoint => Some(("api_key_env", &API_KEY)),
        _ => None,
    }
}

/// Whether an unknown key is about a secret itself: `access_token`,
/// `api_key`, `token`, `password`; not a misspelt `*_env` key.
fn names_a_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.ends_with("env")
        && ["token", "key", "secret", "password"]
            .iter()
            .any(|word| key.contains(word))
}

/// `^[A-Z_][A-Z0-9_]*$`: what shells and process managers accept, upper case
/// by convention.
fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A valid name close to an invalid one (`openai_api_key` ->
/// `OPENAI_API_KEY`, `$OPENAI_API_KEY` -> `OPENAI_API_KEY`), when the value
/// looks like a name at all. `None` for anything that may be a secret, so a
/// suggestion never repeats one.
fn env_var_name_suggestion(value: &str) -> Option<String> {
    let trimmed = value.trim();
    let trimmed = trimmed.strip_prefix("env:").unwrap_or(trimmed);
    let trimmed = trimmed.strip_prefix('$').unwrap_or(trimmed);
    let trimmed = trimmed
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or(trimmed);
    // Secrets are long, or mix letters and digits within a word, or start
    // like well-known tokens (`sk-...` API keys, `EAA...` Meta tokens).
    let secret_prefix = ["sk-", "sk_", "eaa", "bearer"]
        .iter()
        .any(|prefix| trimmed.to_ascii_lowercase().starts_with(prefix));
    let words: Vec<&str> = trimmed.split(['_', '-', '.', ' ']).collect();
    let name_like = trimmed.len() <= 40
        && !secret_prefix
        && words.iter().all(|word| {
            let letters = word.trim_end_matches(|c: char| c.is_ascii_digit());
            word.len() <= 16 && letters.chars().all(|c| c.is_ascii_alphabetic())
        });
    if !name_like {
        return None;
    }
    let fixed = words
        .iter()
        .filter(|word| !word.is_empty())
        .map(|word| word.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join("_");
    (is_env_var_name(&fixed) && fixed != value).then_some(fixed)
}

/// `v21.0`.
fn is_api_version(version: &str) -> bool {
    let Some((major, minor)) = version
        .strip_prefix('v')
        .and_then(|number| number.split_once('.'))
    else {
        return false;
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// `21.0` -> `v21.0`, `V21` -> `v21.0`.
fn api_version_suggestion(version: &str) -> Option<String> {
    let trimmed = version.trim().to_ascii_lowercase();
    let number = trimmed.strip_prefix('v').unwrap_or(&trimmed);
    let fixed = if number.contains('.') {
        format!("v{number}")
    } else {
        format!("v{number}.0")
    };
    (is_api_version(&fixed) && fixed != version).then_some(fixed)
}

/// Why a base URL is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum UrlProblem {
    #[error("the URL is empty")]
    Empty,
    #[error("spaces are not allowed")]
    Whitespace,
    /// `graph.facebook.com`: the scheme is missing.
    #[error("no `https://` at the start")]
    NoScheme { suggestion: Option<String> },
    #[error("`{scheme}` is not http or https")]
    Scheme { scheme: String },
    #[error("no host name after `://`")]
    NoHost,
    #[error("`{host}` is not a host name")]
    BadHost { host: String },
    #[error("`{port}` is not a port number")]
    BadPort { port: String },
    /// `https://user:password@host`.
    #[error("a user name or password in the URL")]
    Credentials,
    #[error("a base URL has no `?query` or `#fragment`")]
    QueryOrFragment { suggestion: String },
}

impl UrlProblem {
    /// A corrected URL, when there is an obvious one.
    fn suggestion(&self) -> Option<&str> {
        match self {
            UrlProblem::NoScheme { suggestion } => suggestion.as_deref(),
            UrlProblem::QueryOrFragment { suggestion } => Some(suggestion),
            _ => None,
        }
    }
}

/// Checks an http(s) base URL: scheme, host, optional port and path; no
/// credentials, query or fragment.
fn check_http_url(url: &str) -> Result<(), UrlProblem> {
    if url.trim().is_empty() {
        return Err(UrlProblem::Empty);
    }
    if url.chars().any(char::is_whitespace) {
        return Err(UrlProblem::Whitespace);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        // `localhost:8080/v1` and `api.openai.com/v1` are a scheme away.
        let host = url.split(['/', ':']).next().unwrap_or("");
        let local = host == "localhost" || host.starts_with("127.");
        let suggestion = (host.contains('.') || local).then(|| {
            let scheme = if local { "http" } else { "https" };
            format!("{scheme}://{url}")
        });
        return Err(UrlProblem::NoScheme { suggestion });
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(UrlProblem::Scheme {
            scheme: scheme.to_owned(),
        });
    }
    if let Some(cut) = url.find(['?', '#']) {
        return Err(UrlProblem::QueryOrFragment {
            suggestion: url[..cut].trim_end_matches('/').to_owned(),
        });
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(UrlProblem::Credentials);
    }
    // `[::1]:8080`, `localhost:8080`, `api.openai.com`.
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((address, after)) if !address.is_empty() => {
                let host_ok = address
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
                if !host_ok {
                    return Err(UrlProblem::BadHost {
                        host: format!("[{address}]"),
                    });
                }
                match after {
                    "" => ("ipv6", None),
                    _ => match after.strip_prefix(':') {
                        Some(port) => ("ipv6", Some(port)),
                        None => {
                            return Err(UrlProblem::BadHost {
                                host: authority.to_owned(),
                            })
                        }
                    },
                }
            }
            _ => {
                return Err(UrlProblem::BadHost {
                    host: authority.to_owned(),
                })
            }
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlProblem::NoHost);
    }
    let host_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !host.starts_with(['.', '-'])
        && !host.contains("..");
    if !host_ok {
        return Err(UrlProblem::BadHost {
            host: host.to_owned(),
        });
    }
    if let Some(port) = port {
        if port.is_empty() || port.parse::<u16>().map_or(true, |number| number == 0) {
            return Err(UrlProblem::BadPort {
                port: port.to_owned(),
            });
        }
    }
    Ok(())
}

/// The path of a URL that [`check_http_url`] accepted: everything after the
/// host and port, without the leading `/`.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split_once('/').map_or("", |(_, path)| path)
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
/// The label for an id that must be digits only: what is wrong with it.
fn digits_only_label(id: &str) -> String {
    if id.is_empty() {
        return "the id is empty".to_owned();
    }
    let mut bad_characters: Vec<String> = Vec::new();
    for c in id.chars().filter(|c| !c.is_ascii_digit()) {
        let shown = format!("{c:?}");
        if !bad_characters.contains(&shown) {
            bad_characters.push(shown);
        }
    }
    format!("{} not allowed", english_list_plain(&bad_characters))
}

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

[ai.openai]
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[store]
url = "sqlite:flows.db"

[serve]
port = 8080

[limits]
sender_per_second = 80

[campaigns]
tier = 1000
quiet_hours = "21:00-08:00"

[opt_out]
stop_words = ["genug"]

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
            &*template.body,
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
        // The defaults: the only `[ai.NAME]` endpoint, the Cloud API since
        // there is a `[whatsapp]` table.
        assert_eq!(
            assistant.provider,
            AssistantProvider::Endpoint("openai".into())
        );
        assert_eq!(assistant.history, AssistantConfig::DEFAULT_HISTORY);
        assert_eq!(sender.provider, SenderProvider::CloudApi);

        let whatsapp = config.whatsapp.as_ref().unwrap();
        assert_eq!(whatsapp.api_version, "v21.0");
        assert_eq!(&FULL_EXAMPLE[whatsapp.span.range()], "whatsapp");
        let openai = &config.ai["openai"];
        assert_eq!(openai.base_url, "https://api.openai.com/v1");
        assert_eq!(openai.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(openai.timeout, AiEndpointConfig::DEFAULT_TIMEOUT);
        assert_eq!(&FULL_EXAMPLE[openai.span.range()], "openai");
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
        let text = "notify = 3\n[serve]\nanything = { deep = [1, 2] }";
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
            "did you mean `phone_number_id`? a sender takes `phone_number_id`, `phone` and \
             `provider`"
        );
    }

    #[test]
    fn unknown_key_in_template_without_suggestion() {
        let text = "[templates.t]\nlanguage = \"en\"\ncategory = \"utility\"\nbody = \"Hi\"\nfooter = \"x\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(covered, "footer");
        assert_eq!(
            help(&diagnostic),
            "a template takes `language`, `category`, `body`, `opt_out`, `header` and `buttons`"
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

    /// The diagnostics of `text` as (code, message, covered text).
    fn found(text: &str) -> Vec<(&'static str, String, &str)> {
        let (_, diagnostics) = parse(text);
        diagnostics
            .iter()
            .map(|d| {
                (
                    d.code.as_str(),
                    d.message.clone(),
                    &text[d.span().unwrap().range()],
                )
            })
            .collect()
    }

    #[test]
    fn whatsapp_defaults() {
        let text = "[whatsapp]\n";
        let (config, diagnostics) = parse(text);
        assert_eq!(diagnostics, vec![]);
        assert!(!config.is_empty());
        let whatsapp = config.whatsapp.unwrap();
        assert_eq!(
            whatsapp,
            WhatsAppConfig {
                span: whatsapp.span,
                ..WhatsAppConfig::default()
            }
        );
        assert_eq!(whatsapp.base_url, "https://graph.facebook.com");
        assert_eq!(whatsapp.api_version, "v21.0");
        assert_eq!(whatsapp.access_token_env, "WHATSAPP_ACCESS_TOKEN");
        assert_eq!(whatsapp.business_account_id, None);
        assert_eq!(whatsapp.timeout, Duration::from_secs(15));
        assert_eq!(&text[whatsapp.span.range()], "whatsapp");
    }

    #[test]
    fn whatsapp_every_key() {
        let text = r#"
[whatsapp]
base_url = "http://127.0.0.1:9000/graph/"
api_version = "v19.0"
access_token_env = "ACME_WA_TOKEN_2"
business_account_id = "102290129340398"
timeout = "1m30s"
"#;
        let (config, diagnostics) = parse(text);
        assert_eq!(diagnostics, vec![]);
        let whatsapp = config.whatsapp.unwrap();
        // The trailing `/` is dropped, so providers can append `/v19.0/...`.
        assert_eq!(whatsapp.base_url, "http://127.0.0.1:9000/graph");
        assert_eq!(whatsapp.api_version, "v19.0");
        assert_eq!(whatsapp.access_token_env, "ACME_WA_TOKEN_2");
        assert_eq!(
            whatsapp.business_account_id.as_deref(),
            Some("102290129340398")
        );
        assert_eq!(whatsapp.timeout, Duration::from_secs(90));

        // Inline and dotted forms too.
        let (config, diagnostics) = parse("whatsapp = { timeout = \"5s\" }\n");
        assert_eq!(diagnostics, vec![]);
        assert_eq!(config.whatsapp.unwrap().timeout, Duration::from_secs(5));
        let (config, diagnostics) = parse("whatsapp.api_version = \"v22.0\"\n");
        assert_eq!(diagnostics, vec![]);
        assert_eq!(config.whatsapp.unwrap().api_version, "v22.0");
    }

    #[test]
    fn whatsapp_must_be_a_table() {
        let (diagnostic, covered) = single("whatsapp = \"EAAGtoken\"\n");
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "`whatsapp` must be a table");
        assert_eq!(covered, "\"EAAGtoken\"");
        assert_eq!(label(&diagnostic), "found a string");
        assert!(help(&diagnostic).contains("`[whatsapp]`"));

        let (diagnostic, _) = single("[[whatsapp]]\n");
        assert_eq!(label(&diagnostic), "found an array of tables");
    }

    #[test]
    fn whatsapp_with_a_problem_is_left_out() {
        let text = "[whatsapp]\napi_version = \"21.0\"\n";
        let (config, diagnostics) = parse(text);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(config.whatsapp, None);
    }

    #[test]
    fn unknown_key_in_whatsapp() {
        let text = "[whatsapp]\nacess_token_env = \"WA_TOKEN\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(
            diagnostic.message,
            "unknown key `acess_token_env` in `[whatsapp]`"
        );
        assert_eq!(covered, "acess_token_env");
        assert_eq!(label(&diagnostic), "not a `[whatsapp]` setting");
        assert_eq!(
            help(&diagnostic),
            "did you mean `access_token_env`? `[whatsapp]` takes `base_url`, `api_version`, \
             `access_token_env`, `business_account_id` and `timeout`"
        );

        let text = "[whatsapp]\ncolour = \"green\"\n";
        let (diagnostic, _) = single(text);
        assert!(help(&diagnostic).starts_with("`[whatsapp]` takes `base_url`"));
    }

    #[test]
    fn a_secret_key_is_steered_to_the_env_key() {
        let text = "[whatsapp]\naccess_token = \"EAAGm0PX4ZCpsBAKZAHkZDZD\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(covered, "access_token");
        assert_eq!(
            help(&diagnostic),
            "did you mean `access_token_env`? flow.toml never holds the access token itself: \
             set it in an environment variable and name the variable, e.g. \
             `access_token_env = \"WHATSAPP_ACCESS_TOKEN\"`"
        );

        let text = "[ai.openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key = \"sk-x\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(
            diagnostic.message,
            "unknown key `api_key` in AI endpoint `openai`"
        );
        assert_eq!(covered, "api_key");
        assert_eq!(label(&diagnostic), "not an AI endpoint setting");
        assert!(help(&diagnostic)
            .starts_with("did you mean `api_key_env`? flow.toml never holds the API key itself"));
        assert!(help(&diagnostic).contains(r#"api_key_env = "OPENAI_API_KEY""#));
    }

    #[test]
    fn a_secret_where_a_variable_name_belongs() {
        let token = "EAAGm0PX4ZCpsBAKZAHkZDZD8sLtT0xXk3Z";
        let text = format!("[whatsapp]\naccess_token_env = \"{token}\"\n");
        let (config, diagnostics) = parse(&text);
        assert_eq!(config.whatsapp, None);
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(
            diagnostic.message,
            "the access token belongs in the environment, not in flow.toml"
        );
        assert_eq!(
            &text[diagnostic.span().unwrap().range()],
            format!("\"{token}\"")
        );
        assert_eq!(
            label(diagnostic),
            "this looks like the token itself, not a variable name"
        );
        assert!(help(diagnostic).contains(r#"access_token_env = "WHATSAPP_ACCESS_TOKEN""#));
        assert!(help(diagnostic).contains("revoke the token"));

        for key in [
            "sk-proj-Hx7Yq2Lm9Np4Rs8Tv1Wz",
            "sk-abc",
            "3f9a1c0e7b2d4f6a8c1e3b5d7f9a1c3e",
            "Bearer abc",
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmnop",
            "k8Fz2Qp",
        ] {
            let text = format!(
                "[ai.openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"{key}\"\n"
            );
            let (diagnostic, covered) = single(&text);
            assert_eq!(diagnostic.code, Code::ConfigValue, "{key}");
            assert_eq!(
                diagnostic.message, "the API key belongs in the environment, not in flow.toml",
                "{key}"
            );
            assert_eq!(covered, format!("\"{key}\""));
            assert_eq!(
                label(&diagnostic),
                "this looks like the key itself, not a variable name"
            );
            // The secret is never repeated, in any case.
            let secret = key.to_ascii_uppercase();
            for text in [&diagnostic.message, label(&diagnostic), help(&diagnostic)] {
                assert!(!text.to_ascii_uppercase().contains(&secret), "{text}");
            }
        }
    }

    #[test]
    fn a_misspelt_variable_name_gets_a_suggestion() {
        for (written, fixed) in [
            ("openai_api_key", "OPENAI_API_KEY"),
            ("$OPENAI_API_KEY", "OPENAI_API_KEY"),
            ("${OPENAI_API_KEY}", "OPENAI_API_KEY"),
            ("env:OPENAI_API_KEY", "OPENAI_API_KEY"),
            ("OpenAI-Key2", "OPENAI_KEY2"),
        ] {
            let text = format!(
                "[ai.openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"{written}\"\n"
            );
            let (diagnostic, covered) = single(&text);
            assert_eq!(diagnostic.code, Code::ConfigValue);
            assert_eq!(
                diagnostic.message,
                "`api_key_env` is not an environment variable name"
            );
            assert_eq!(covered, format!("\"{written}\""));
            assert_eq!(
                label(&diagnostic),
                "only upper-case letters, digits and `_` are allowed"
            );
            assert!(
                help(&diagnostic).starts_with(&format!("did you mean `{fixed}`?")),
                "{}",
                help(&diagnostic)
            );
            assert!(help(&diagnostic).contains("never in flow.toml"));
        }

        let (diagnostic, covered) = single("[whatsapp]\naccess_token_env = \"\"\n");
        assert_eq!(diagnostic.message, "`access_token_env` is empty");
        assert_eq!(covered, "\"\"");
        assert!(help(&diagnostic).ends_with("remove the line to use `WHATSAPP_ACCESS_TOKEN`"));

        for name in ["A", "_X", "OPENAI_API_KEY", "K8S_TOKEN_2"] {
            assert!(is_env_var_name(name), "{name}");
        }
        for name in ["", "1KEY", "key", "A-B", "A B", "Ä"] {
            assert!(!is_env_var_name(name), "{name}");
        }
    }

    #[test]
    fn base_url_problems() {
        for (url, expected_label, suggestion) in [
            ("", "the URL is empty", None),
            (
                "https://graph. facebook.com",
                "spaces are not allowed",
                None,
            ),
            (
                "graph.facebook.com",
                "no `https://` at the start",
                Some("https://graph.facebook.com"),
            ),
            (
                "localhost:8080",
                "no `https://` at the start",
                Some("http://localhost:8080"),
            ),
            ("graph", "no `https://` at the start", None),
            (
                "ftp://graph.facebook.com",
                "`ftp` is not http or https",
                None,
            ),
            ("https://", "no host name after `://`", None),
            ("https:///v1", "no host name after `://`", None),
            (
                "https://graph..facebook.com",
                "`graph..facebook.com` is not a host name",
                None,
            ),
            (
                "https://exa$mple.com",
                "`exa$mple.com` is not a host name",
                None,
            ),
            ("http://localhost:80a", "`80a` is not a port number", None),
            (
                "http://localhost:70000",
                "`70000` is not a port number",
                None,
            ),
            ("http://localhost:", "`` is not a port number", None),
            (
                "https://graph.facebook.com/?debug=all",
                "a base URL has no `?query` or `#fragment`",
                Some("https://graph.facebook.com"),
            ),
        ] {
            let text = format!("[whatsapp]\nbase_url = \"{url}\"\n");
            let (diagnostic, covered) = single(&text);
            assert_eq!(diagnostic.code, Code::ConfigValue, "{url}");
            assert_eq!(diagnostic.message, "`base_url` is not an http(s) URL");
            assert_eq!(covered, format!("\"{url}\""));
            assert_eq!(label(&diagnostic), expected_label, "{url}");
            match suggestion {
                Some(fixed) => assert!(
                    help(&diagnostic).starts_with(&format!("did you mean `\"{fixed}\"`?")),
                    "{}",
                    help(&diagnostic)
                ),
                None => assert!(help(&diagnostic).starts_with("the base URL is http://")),
            }
        }
        for url in [
            "https://graph.facebook.com",
            "HTTPS://graph.facebook.com/",
            "http://localhost:8080",
            "http://127.0.0.1:1/prefix/path",
            "http://[::1]:8080",
            "http://[::1]",
            "http://my_host.internal",
        ] {
            assert_eq!(check_http_url(url), Ok(()), "{url}");
        }
        assert!(check_http_url("http://[::1").is_err());
        assert!(check_http_url("http://[zz]").is_err());
        assert!(check_http_url("http://[::1]x").is_err());
    }

    #[test]
    fn credentials_in_a_url_are_not_repeated() {
        let text = "[ai.openai]\nbase_url = \"https://user:sk-secret@api.openai.com/v1\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(
            diagnostic.message,
            "credentials belong in the environment, not in flow.toml"
        );
        assert_eq!(covered, "\"https://user:sk-secret@api.openai.com/v1\"");
        assert_eq!(label(&diagnostic), "a user name or password in the URL");
        assert!(!help(&diagnostic).contains("sk-secret"));
        assert!(help(&diagnostic).contains("api_key_env"));
    }

    #[test]
    fn whatsapp_base_url_with_the_version() {
        let text = "[whatsapp]\nbase_url = \"https://graph.facebook.com/v21.0/\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "`base_url` includes the API version");
        assert_eq!(covered, "\"https://graph.facebook.com/v21.0/\"");
        assert_eq!(label(&diagnostic), "the version goes in `api_version`");
        assert!(help(&diagnostic).ends_with(
            r#"write `base_url = "https://graph.facebook.com"` and `api_version = "v21.0"`"#
        ));
    }

    #[test]
    fn ai_base_url_with_the_endpoint_path() {
        let text = "[ai.openai]\nbase_url = \"https://api.openai.com/v1/chat/completions\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "`base_url` includes the endpoint path");
        assert_eq!(covered, "\"https://api.openai.com/v1/chat/completions\"");
        assert_eq!(label(&diagnostic), "flowc adds `/chat/completions` itself");
        assert!(help(&diagnostic).ends_with(r#"`base_url = "https://api.openai.com/v1"`"#));
    }

    #[test]
    fn api_version_must_look_like_v21_0() {
        for (version, suggestion) in [
            ("21.0", Some("v21.0")),
            ("V21.0", Some("v21.0")),
            ("v21", Some("v21.0")),
            ("latest", None),
            ("v21.0.1", None),
            ("", None),
        ] {
            let text = format!("[whatsapp]\napi_version = \"{version}\"\n");
            let (diagnostic, covered) = single(&text);
            assert_eq!(diagnostic.code, Code::ConfigValue);
            assert_eq!(
                diagnostic.message,
                format!("invalid API version `{version}`")
            );
            assert_eq!(covered, format!("\"{version}\""));
            assert_eq!(label(&diagnostic), "not a Graph API version");
            match suggestion {
                Some(fixed) => assert!(
                    help(&diagnostic).starts_with(&format!("did you mean `{fixed}`?")),
                    "{}",
                    help(&diagnostic)
                ),
                None => assert!(help(&diagnostic).starts_with("Graph API versions look like")),
            }
        }
    }

    #[test]
    fn business_account_id_must_be_digits() {
        let text = "[whatsapp]\nbusiness_account_id = \"WABA-1022\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(
            diagnostic.message,
            "business account id must be digits only"
        );
        assert_eq!(covered, "\"WABA-1022\"");
        assert_eq!(label(&diagnostic), "'W', 'A', 'B' and '-' not allowed");

        let text = "[whatsapp]\nbusiness_account_id = 102290129340398\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "`business_account_id` must be a string");
        assert_eq!(covered, "102290129340398");
        assert!(help(&diagnostic).ends_with(", with quotes"));
    }

    #[test]
    fn timeout_problems() {
        for (timeout, message, expected_label, help_start) in [
            (
                "15",
                "invalid timeout `15`",
                "not a duration",
                "did you mean `\"15s\"`?",
            ),
            (
                "1 m",
                "invalid timeout `1 m`",
                "not a duration",
                "did you mean `\"1m\"`?",
            ),
            (
                "15 seconds",
                "invalid timeout `15 seconds`",
                "not a duration",
                "a timeout is",
            ),
            (
                "1.5s",
                "invalid timeout `1.5s`",
                "not a duration",
                "a timeout is",
            ),
            (
                "0s",
                "timeout is zero",
                "every call would fail at once",
                "give calls time",
            ),
            (
                "1h",
                "timeout is too long",
                "more than 10m",
                "a call that hangs",
            ),
        ] {
            let text = format!("[whatsapp]\ntimeout = \"{timeout}\"\n");
            let (diagnostic, covered) = single(&text);
            assert_eq!(diagnostic.code, Code::ConfigValue, "{timeout}");
            assert_eq!(diagnostic.message, message);
            assert_eq!(covered, format!("\"{timeout}\""));
            assert_eq!(label(&diagnostic), expected_label);
            assert!(
                help(&diagnostic).starts_with(help_start),
                "{}",
                help(&diagnostic)
            );
        }
        let (diagnostic, _) = single("[whatsapp]\ntimeout = \"0s\"\n");
        assert!(help(&diagnostic).ends_with("the default of 15s"));

        let text = "[ai.local]\nbase_url = \"http://localhost:8080/v1\"\ntimeout = 30\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "`timeout` must be a string");
        assert_eq!(covered, "30");
        assert_eq!(
            help(&diagnostic),
            r#"write it like `timeout = "30s"`, with quotes"#
        );

        let (config, _) = parse("[whatsapp]\ntimeout = \"10m\"\n");
        assert_eq!(config.whatsapp.unwrap().timeout, Duration::from_secs(600));
        let (config, _) = parse("[whatsapp]\ntimeout = \"250ms\"\n");
        assert_eq!(config.whatsapp.unwrap().timeout, Duration::from_millis(250));
    }

    #[test]
    fn ai_endpoints() {
        let text = r#"
[ai.openai]
base_url = "https://api.openai.com/v1/"
api_key_env = "OPENAI_API_KEY"
timeout = "45s"

[ai.local]
base_url = "http://localhost:11434/v1"
"#;
        let (config, diagnostics) = parse(text);
        assert_eq!(diagnostics, vec![]);
        assert_eq!(config.ai.keys().collect::<Vec<_>>(), ["local", "openai"]);
        let openai = &config.ai["openai"];
        assert_eq!(openai.name, "openai");
        assert_eq!(openai.base_url, "https://api.openai.com/v1");
        assert_eq!(openai.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(openai.timeout, Duration::from_secs(45));
        assert_eq!(&text[openai.span.range()], "openai");
        let local = &config.ai["local"];
        assert_eq!(local.api_key_env, None);
        assert_eq!(local.timeout, Duration::from_secs(30));
    }

    #[test]
    fn ai_endpoint_needs_a_base_url() {
        let text = "[ai.openai]\napi_key_env = \"OPENAI_API_KEY\"\n";
        let (config, diagnostics) = parse(text);
        assert!(config.ai.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "AI endpoint `openai` has no `base_url`");
        assert_eq!(&text[diagnostic.span().unwrap().range()], "openai");
        assert_eq!(
            help(diagnostic),
            r#"`base_url` is required; add a line like `base_url = "https://api.openai.com/v1"`"#
        );
    }

    #[test]
    fn ai_shape_problems() {
        // The old single-provider shape: settings straight under `[ai]`.
        let (diagnostic, covered) = single("[ai]\nprovider = \"openai\"\n");
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "AI endpoint `provider` must be a table");
        assert_eq!(covered, "\"openai\"");
        assert!(help(&diagnostic)
            .contains(r#"`[ai.openai]` then `base_url = "https://api.openai.com/v1"`"#));

        let (diagnostic, _) = single("ai = 1\n");
        assert_eq!(diagnostic.message, "`ai` must be a table");

        let text =
            "[ai.openai]\nbase_url = \"https://api.openai.com/v1\"\nheaders = { x = \"y\" }\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(
            diagnostic.message,
            "unknown key `headers` in AI endpoint `openai`"
        );
        assert_eq!(covered, "headers");
        assert_eq!(
            help(&diagnostic),
            "an AI endpoint takes `base_url`, `api_key_env` and `timeout`"
        );

        let (diagnostic, covered) = single("[ai.\"open ai\"]\nbase_url = \"https://x.example\"\n");
        assert_eq!(diagnostic.message, "invalid AI endpoint name `open ai`");
        assert_eq!(covered, "\"open ai\"");

        let (diagnostic, covered) = single("[ai.scripted]\nbase_url = \"https://x.example\"\n");
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(
            diagnostic.message,
            "the AI endpoint name `scripted` is reserved"
        );
        assert_eq!(covered, "scripted");
    }

    #[test]
    fn sender_provider_default_follows_whatsapp() {
        let sender = "[senders.berlin]\nphone_number_id = \"1\"\n";
        let (config, diagnostics) = parse(sender);
        assert_eq!(diagnostics, vec![]);
        assert_eq!(config.senders["berlin"].provider, SenderProvider::DryRun);

        // `[whatsapp]` before or after the sender: read as a whole.
        for text in [
            format!("[whatsapp]\n{sender}"),
            format!("{sender}[whatsapp]\n"),
        ] {
            let (config, diagnostics) = parse(&text);
            assert_eq!(diagnostics, vec![]);
            assert_eq!(config.senders["berlin"].provider, SenderProvider::CloudApi);
        }

        let text = format!("{sender}provider = \"dry-run\"\n[whatsapp]\n");
        let (config, diagnostics) = parse(&text);
        assert_eq!(diagnostics, vec![]);
        assert_eq!(config.senders["berlin"].provider, SenderProvider::DryRun);

        let text = format!("{sender}provider = \"cloud-api\"\n[whatsapp]\n");
        let (config, _) = parse(&text);
        assert_eq!(config.senders["berlin"].provider, SenderProvider::CloudApi);
    }

    #[test]
    fn cloud_api_sender_needs_whatsapp() {
        let text = "[senders.berlin]\nphone_number_id = \"1\"\nprovider = \"cloud-api\"\n";
        let (config, diagnostics) = parse(text);
        assert!(config.senders.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(
            diagnostic.message,
            "sender `berlin` uses the Cloud API, but there is no `[whatsapp]` table"
        );
        assert_eq!(&text[diagnostic.span().unwrap().range()], "\"cloud-api\"");
        assert_eq!(label(diagnostic), "needs a `[whatsapp]` table");
        assert!(help(diagnostic)
            .contains(r#"a `[whatsapp]` table with `access_token_env = "WHATSAPP_ACCESS_TOKEN"`"#));
        assert!(help(diagnostic).ends_with(r#"`provider = "dry-run"` to send nothing"#));

        // A `[whatsapp]` table with a problem is still there: only its own
        // problem is reported.
        let text = "[senders.berlin]\nphone_number_id = \"1\"\nprovider = \"cloud-api\"\n\
                    [whatsapp]\ntimeout = \"0s\"\n";
        let found = found(text);
        assert_eq!(
            found,
            vec![("F5002", "timeout is zero".to_owned(), "\"0s\"")]
        );
    }

    #[test]
    fn unknown_sender_provider() {
        let text = "[senders.berlin]\nphone_number_id = \"1\"\nprovider = \"cloud_api\"\n";
        let (diagnostic, covered) = single(text);
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "unknown sender provider `cloud_api`");
        assert_eq!(covered, "\"cloud_api\"");
        assert_eq!(label(&diagnostic), "not a sender provider");
        assert!(help(&diagnostic).starts_with("did you mean `cloud-api`? a sender's provider is"));

        let text = "[senders.berlin]\nphone_number_id = \"1\"\nprovider = \"twilio\"\n";
        let (diagnostic, _) = single(text);
        assert!(help(&diagnostic).starts_with("a sender's provider is `cloud-api`"));
    }

    const ENDPOINT: &str = "base_url = \"https://api.openai.com/v1\"\n";

    #[test]
    fn assistant_provider_defaults() {
        let assistant = "[assistants.helper]\n";
        let provider_of = |text: &str| {
            let (config, diagnostics) = parse(text);
            assert_eq!(diagnostics, vec![], "{text}");
            config.assistants["helper"].provider.clone()
        };
        assert_eq!(provider_of(assistant), AssistantProvider::Scripted);
        // The only endpoint, wherever it is in the file.
        assert_eq!(
            provider_of(&format!("{assistant}[ai.openai]\n{ENDPOINT}")),
            AssistantProvider::Endpoint("openai".into())
        );
        assert_eq!(
            provider_of(&format!("[ai.openai]\n{ENDPOINT}{assistant}")),
            AssistantProvider::Endpoint("openai".into())
        );
        // Two endpoints: no guess.
        assert_eq!(
            provider_of(&format!("{assistant}[ai.a]\n{ENDPOINT}[ai.b]\n{ENDPOINT}")),
            AssistantProvider::Scripted
        );
        assert_eq!(
            provider_of(&format!(
                "{assistant}provider = \"b\"\n[ai.a]\n{ENDPOINT}[ai.b]\n{ENDPOINT}"
            )),
            AssistantProvider::Endpoint("b".into())
        );
        assert_eq!(
            provider_of(&format!(
                "{assistant}provider = \"scripted\"\n[ai.openai]\n{ENDPOINT}"
            )),
            AssistantProvider::Scripted
        );
    }

    #[test]
    fn unknown_assistant_provider() {
        let text = format!("[assistants.helper]\nprovider = \"opnai\"\n[ai.openai]\n{ENDPOINT}");
        let (config, diagnostics) = parse(&text);
        assert!(config.assistants.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "unknown AI provider `opnai`");
        assert_eq!(&text[diagnostic.span().unwrap().range()], "\"opnai\"");
        assert_eq!(label(diagnostic), "no `[ai.opnai]` table");
        assert_eq!(
            help(diagnostic),
            "did you mean `openai`? an assistant's provider is the name of an `[ai.NAME]` \
             table (`openai`) or `scripted`"
        );

        let (diagnostic, _) = single("[assistants.helper]\nprovider = \"scriptd\"\n");
        assert!(help(&diagnostic)
            .starts_with("did you mean `scripted`? there is no `[ai.NAME]` table yet"));

        let (diagnostic, covered) = single("[assistants.helper]\nprovider = \"openai\"\n");
        assert_eq!(covered, "\"openai\"");
        assert_eq!(
            help(&diagnostic),
            "there is no `[ai.NAME]` table yet: add one, e.g. `[ai.openai]` with \
             `base_url = \"https://api.openai.com/v1\"`, or write `provider = \"scripted\"`"
        );

        // An endpoint with a problem exists: only its problem is reported.
        let text = "[assistants.helper]\nprovider = \"openai\"\n[ai.openai]\ntimeout = \"1s\"\n";
        let found = found(text);
        assert_eq!(
            found,
            vec![(
                "F5001",
                "AI endpoint `openai` has no `base_url`".to_owned(),
                "openai"
            )]
        );
    }

    #[test]
    fn provider_problems_of_entries_with_other_problems_are_reported_too() {
        let text = "[senders.s]\nphone_number_id = \"x\"\nprovider = \"cloud-api\"\n\
                    [assistants.a]\ntemperature = 3\nprovider = \"opnai\"\n";
        let found: Vec<(&str, &str)> = found(text)
            .into_iter()
            .map(|(code, _, covered)| (code, covered))
            .collect();
        assert_eq!(
            found,
            vec![
                ("F5002", "\"x\""),
                ("F5002", "\"cloud-api\""),
                ("F5002", "3"),
                ("F5002", "\"opnai\""),
            ]
        );
    }

    #[test]
    fn assistant_numbers() {
        let text = "[assistants.a]\ntemperature = 0.7\nmax_tokens = 1000\nhistory = 0\n";
        let (config, diagnostics) = parse(text);
        assert_eq!(diagnostics, vec![]);
        let assistant = &config.assistants["a"];
        assert_eq!(assistant.temperature, Some(0.7));
        assert_eq!(assistant.max_tokens, Some(1000));
        assert_eq!(assistant.history, 0);

        let (config, _) = parse("[assistants.a]\ntemperature = 1\nhistory = 1000\n");
        assert_eq!(config.assistants["a"].temperature, Some(1.0));
        assert_eq!(config.assistants["a"].history, 1000);
        let (config, _) = parse("[assistants.a]\n");
        assert_eq!(config.assistants["a"].temperature, None);
        assert_eq!(config.assistants["a"].max_tokens, None);
        assert_eq!(config.assistants["a"].history, 20);

        for (line, covered_text, message, expected_label) in [
            (
                "temperature = 2.5",
                "2.5",
                "`temperature` is out of range",
                "must be between 0 and 2",
            ),
            (
                "temperature = -0.1",
                "-0.1",
                "`temperature` is out of range",
                "must be between 0 and 2",
            ),
            (
                "temperature = nan",
                "nan",
                "`temperature` is out of range",
                "must be between 0 and 2",
            ),
            (
                "temperature = inf",
                "inf",
                "`temperature` is out of range",
                "must be between 0 and 2",
            ),
            (
                "max_tokens = 0",
                "0",
                "`max_tokens` is out of range",
                "must be between 1 and 100000",
            ),
            (
                "max_tokens = 100001",
                "100001",
                "`max_tokens` is out of range",
                "must be between 1 and 100000",
            ),
            (
                "history = -1",
                "-1",
                "`history` is out of range",
                "must be between 0 and 1000",
            ),
            (
                "history = 5000",
                "5000",
                "`history` is out of range",
                "must be between 0 and 1000",
            ),
        ] {
            let text = format!("[assistants.a]\n{line}\n");
            let (config, diagnostics) = parse(&text);
            assert!(config.assistants.is_empty(), "{line}");
            assert_eq!(diagnostics.len(), 1, "{line}");
            let diagnostic = &diagnostics[0];
            assert_eq!(diagnostic.code, Code::ConfigValue);
            assert_eq!(diagnostic.message, message);
            assert_eq!(&text[diagnostic.span().unwrap().range()], covered_text);
            assert_eq!(label(diagnostic), expected_label);
        }
        let (diagnostic, _) = single("[assistants.a]\nmax_tokens = 0\n");
        assert!(help(&diagnostic)
            .ends_with("write a value between 1 and 100000, e.g. `max_tokens = 512`"));

        let (diagnostic, covered) = single("[assistants.a]\ntemperature = \"0.3\"\n");
        assert_eq!(diagnostic.code, Code::ConfigSyntax);
        assert_eq!(diagnostic.message, "`temperature` must be a number");
        assert_eq!(covered, "\"0.3\"");
        assert_eq!(
            help(&diagnostic),
            "write it like `temperature = 0.3`, without quotes"
        );

        let (diagnostic, covered) = single("[assistants.a]\nmax_tokens = 512.0\n");
        assert_eq!(diagnostic.message, "`max_tokens` must be an integer");
        assert_eq!(covered, "512.0");
        assert_eq!(label(&diagnostic), "found a float");
        assert_eq!(help(&diagnostic), "write it like `max_tokens = 512`");

        let (diagnostic, _) = single("[assistants.a]\nhistory = \"20\"\n");
        assert_eq!(
            help(&diagnostic),
            "write it like `history = 20`, without quotes"
        );
    }

    #[test]
    fn assistant_rules() {
        let text = "[assistants.a]\nprovider = \"scripted\"\nrules = \"rules/ai.toml\"\n";
        let (config, diagnostics) = parse(text);
        assert_eq!(diagnostics, vec![]);
        assert_eq!(
            config.assistants["a"].rules.as_deref(),
            Some("rules/ai.toml")
        );

        let (diagnostic, covered) = single("[assistants.a]\nrules = \" \"\n");
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(diagnostic.message, "rules file path is empty");
        assert_eq!(covered, "\" \"");

        // Rules with an endpoint provider, chosen or by default.
        let text = format!(
            "[assistants.a]\nprovider = \"openai\"\nrules = \"ai.toml\"\n[ai.openai]\n{ENDPOINT}"
        );
        let (config, diagnostics) = parse(&text);
        assert!(config.assistants.is_empty());
        assert_eq!(diagnostics.len(), 1);
        let diagnostic = &diagnostics[0];
        assert_eq!(diagnostic.code, Code::ConfigValue);
        assert_eq!(
            diagnostic.message,
            "`rules` only applies to the scripted AI"
        );
        assert_eq!(&text[diagnostic.span().unwrap().range()], "\"ai.toml\"");
        assert_eq!(
            label(diagnostic),
            "assistant `a` uses the `openai` endpoint"
        );
        assert_eq!(&text[diagnostic.secondary[0].span.range()], "\"openai\"");
        assert!(help(diagnostic)
            .starts_with(r#"write `provider = "scripted"` to answer from these rules"#));

        let text = format!("[assistants.a]\nrules = \"ai.toml\"\n[ai.openai]\n{ENDPOINT}");
        let (diagnostic, _) = single(&text);
        assert_eq!(
            label(&diagnostic),
            "assistant `a` uses by default the `openai` endpoint"
        );
        assert!(diagnostic.secondary.is_empty());
    }

    #[test]
    fn campaign_tables_are_read_and_checked() {
        let (config, diagnostics) = parse(
            "[campaigns]\ntier = \"TIER_10K\"\n[campaigns.senders.b]\nquiet_hours = \"20:00-09:00\"\n\
             [opt_out]\nlanguages = [\"de\"]\n[limits]\nrecipient_interval = \"2s\"\n",
        );
        assert_eq!(diagnostics, vec![]);
        assert_eq!(
            config.campaigns.tier_for("a"),
            crate::campaign::TierLimit::Limited(10_000)
        );
        assert_eq!(
            config.campaigns.quiet_hours_for("b").map(|q| q.to_string()),
            Some("20:00-09:00".to_string())
        );
        assert_eq!(config.opt_out.languages, Some(vec!["de".to_string()]));
        assert_eq!(config.limits.recipient_interval.as_deref(), Some("2s"));

        for (text, says) in [
            (
                "[campaigns]\nquiet_hours = \"late\"\n",
                "`[campaigns]` in flow.toml is not valid",
            ),
            (
                "[opt_out]\nlanguages = [\"xx\"]\n",
                "no default words for the language `xx`",
            ),
            (
                "[limits]\nsender_per_second = -1.0\n",
                "must be a positive number",
            ),
            (
                "[store]\nurl = \"mysql://db/flows\"\n",
                "`mysql://` is not a store flowc knows",
            ),
            (
                "[store]\nurl = \"sqlite:a.db\"\nurl_env = \"DB\"\n",
                "give `url` or `url_env`, not both",
            ),
            ("[store]\npath = \"a.db\"\n", "unknown field `path`"),
        ] {
            let (diagnostic, covered) = single(text);
            assert_eq!(diagnostic.code, Code::ConfigValue);
            assert!(diagnostic.message.contains(says), "{}", diagnostic.message);
            assert!(
                ["campaigns", "opt_out", "limits", "store"].contains(&covered),
                "{covered}"
            );
        }
        let (config, diagnostics) = Config::parse(
            "[store]\nurl_env = \"FLOWC_DATABASE_URL\"\npool_size = 4\n",
            FileId(0),
        );
        assert_eq!(diagnostics, vec![]);
        assert_eq!(config.store.url_env.as_deref(), Some("FLOWC_DATABASE_URL"));
        assert_eq!(config.store.pool_size, Some(4));
    }

    #[test]
    fn new_tables_in_the_known_list() {
        let (diagnostic, covered) = single("[whatsap]\n");
        assert_eq!(covered, "whatsap");
        assert!(help(&diagnostic).starts_with("did you mean `whatsapp`?"));
        assert_eq!(
            help(&diagnostic),
            "did you mean `whatsapp`? flow.toml has the tables `senders`, `templates`, \
             `assistants`, `whatsapp`, `ai`, `conversations`, `serve`, `notify`, `campaigns`, `opt_out`, `limits` and `store`"
        );
    }

    #[test]
    fn endpoint_of_an_assistant() {
        let text = format!(
            "[ai.openai]\n{ENDPOINT}[assistants.a]\n[assistants.b]\nprovider = \"scripted\"\n"
        );
        let (config, diagnostics) = parse(&text);
        assert_eq!(diagnostics, vec![]);
        assert_eq!(
            config.endpoint_of(&config.assistants["a"]).unwrap().name,
            "openai"
        );
        assert!(config.endpoint_of(&config.assistants["b"]).is_none());
    }

    #[test]
    fn provider_enums() {
        for provider in SenderProvider::ALL {
            assert_eq!(provider.as_str().parse(), Ok(*provider));
            let json = serde_json::to_string(provider).unwrap();
            assert_eq!(json, format!("\"{provider}\""));
        }
        assert_eq!("Cloud-API".parse::<SenderProvider>(), Err(()));
        assert_eq!(
            AssistantProvider::Endpoint("local".into()).to_string(),
            "local"
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

    // Template headers and buttons -------------------------------------------

    /// A template `order` with `extra` lines after its body.
    fn order_toml(extra: &str) -> String {
        format!(
            "[templates.order]\nlanguage = \"en\"\ncategory = \"utility\"\n\
             body = \"Hi {{{{1}}}}, your order has shipped.\"\n{extra}"
        )
    }

    fn button(kind: TemplateButtonKind, text: &str, url: Option<&str>) -> TemplateButtonConfig {
        TemplateButtonConfig {
            kind,
            text: text.into(),
            url: url.map(str::to_string),
        }
    }

    #[test]
    fn headers_and_buttons_parse() {
        let text = order_toml(
            "header = { format = \"text\", text = \"Order {{1}}\" }\n\
             buttons = [\n  { type = \"quick_reply\", text = \"Yes\" },\n  \
             { type = \"url\", text = \"Track\", url = \"https://example.com/track/{{1}}\" },\n  \
             { type = \"phone_number\", text = \"Call us\" },\n  \
             { type = \"copy_code\", text = \"Copy code\" },\n]\n",
        );
        let (config, diagnostics) = parse(&text);
        assert_eq!(diagnostics, vec![]);
        let order = &config.templates["order"];
        assert_eq!(
            order.header,
            Some(TemplateHeaderConfig::Text {
                text: "Order {{1}}".into(),
                placeholders: Placeholders::Positional(1),
            })
        );
        assert_eq!(
            order.buttons,
            vec![
                button(TemplateButtonKind::QuickReply, "Yes", None),
                button(
                    TemplateButtonKind::Url,
                    "Track",
                    Some("https://example.com/track/{{1}}")
                ),
                button(TemplateButtonKind::PhoneNumber, "Call us", None),
                button(TemplateButtonKind::CopyCode, "Copy code", None),
            ]
        );
        let takes: Vec<bool> = order.buttons.iter().map(|b| b.takes_parameter()).collect();
        assert_eq!(takes, [true, true, false, true]);

        for (format, kind) in [
            ("image", MediaKind::Image),
            ("document", MediaKind::Document),
            ("video", MediaKind::Video),
        ] {
            let text = order_toml(&format!("header = {{ format = \"{format}\" }}\n"));
            let (config, diagnostics) = parse(&text);
            assert_eq!(diagnostics, vec![]);
            assert_eq!(
                config.templates["order"].header,
                Some(TemplateHeaderConfig::Media(kind))
            );
            assert!(config.templates["order"].buttons.is_empty());
        }

        // Sub-tables and arrays of tables are the same.
        let text = order_toml(
            "\n[templates.order.header]\nformat = \"text\"\ntext = \"Your order\"\n\n\
             [[templates.order.buttons]]\ntype = \"url\"\ntext = \"Track\"\nurl = \"https://example.com/t\"\n\n\
             [[templates.order.buttons]]\ntype = \"quick_reply\"\ntext = \"Stop\"\n",
        );
        let (config, diagnostics) = parse(&text);
        assert_eq!(diagnostics, vec![]);
        let order = &config.templates["order"];
        assert_eq!(
            order.header,
            Some(TemplateHeaderConfig::Text {
                text: "Your order".into(),
                placeholders: Placeholders::Positional(0),
            })
        );
        assert_eq!(order.buttons.len(), 2);
        assert!(!order.buttons[0].takes_parameter());

        // A named header in a named template.
        let text = "[templates.named]\nlanguage = \"en\"\ncategory = \"utility\"\n\
                    body = \"Hi {{name}}\"\nheader = { format = \"text\", text = \"Order {{order_id}}\" }\n";
        let (config, diagnostics) = parse(text);
        assert_eq!(diagnostics, vec![]);
        assert_eq!(
            config.templates["named"].header,
            Some(TemplateHeaderConfig::Text {
                text: "Order {{order_id}}".into(),
                placeholders: Placeholders::Named(vec!["order_id".into()]),
            })
        );
    }

    #[test]
    fn header_problems() {
        // Unknown key, with a suggestion.
        let text = order_toml("header = { format = \"text\", txt = \"Order\" }\n");
        let (config, diagnostics) = parse(&text);
        assert!(config.templates.is_empty());
        // Sorted by position: the missing key points at the whole header.
        assert_eq!(diagnostics.len(), 2, "{diagnostics:#?}");
        assert_eq!(
            diagnostics[0].message,
            "the header of template `order` has no `text`"
        );
        assert_eq!(
            diagnostics[1].message,
            "unknown key `txt` in the header of template `order`"
        );
        assert_eq!(label(&diagnostics[1]), "not a template header setting");
        assert_eq!(
            help(&diagnostics[1]),
            "did you mean `text`? a template header takes `format` and `text`"
        );

        // Not a table.
        let text = order_toml("header = \"text\"\n");
        let (diagnostic, covered) = single(&text);
        assert_eq!(diagnostic.message, "`header` must be a table");
        assert_eq!(covered, "\"text\"");
        assert_eq!(label(&diagnostic), "found a string");

        // Unknown format, with a suggestion.
        let text = order_toml("header = { format = \"imgae\" }\n");
        let (diagnostic, covered) = single(&text);
        assert_eq!(diagnostic.message, "unknown template header format `imgae`");
        assert_eq!(covered, "\"imgae\"");
        assert!(
            help(&diagnostic).starts_with("did you mean `image`? a header is `text`, `image`"),
            "{}",
            help(&diagnostic)
        );
        let (diagnostic, _) = single(&order_toml("header = { format = \"IMAGE\" }\n"));
        assert!(help(&diagnostic).starts_with("did you mean `image`?"));
        let (diagnostic, _) = single(&order_toml("header = { format = \"location\" }\n"));
        assert!(help(&diagnostic).starts_with("location headers are not supported"));

        // Format missing.
        let text = order_toml("header = { text = \"Order\" }\n");
        let (diagnostic, covered) = single(&text);
        assert_eq!(
            diagnostic.message,
            "the header of template `order` has no `format`"
        );
        assert_eq!(covered, "{ text = \"Order\" }");

        // More than one placeholder.
        let text = order_toml("header = { format = \"text\", text = \"Order {{1}} of {{2}}\" }\n");
        let (diagnostic, covered) = single(&text);
        assert_eq!(
            diagnostic.message,
            "a template header has at most one placeholder"
        );
        assert_eq!(covered, "\"Order {{1}} of {{2}}\"");
        assert_eq!(label(&diagnostic), "2 placeholders");

        // Too long, empty, and a broken placeholder.
        let long = "x".repeat(61);
        let (diagnostic, _) = single(&order_toml(&format!(
            "header = {{ format = \"text\", text = \"{long}\" }}\n"
        )));
        assert_eq!(diagnostic.message, "template header text is too long");
        assert_eq!(
            label(&diagnostic),
            "61 characters; WhatsApp allows at most 60"
        );
        let (diagnostic, _) = single(&order_toml(
            "header = { format = \"text\", text = \" \" }\n",
        ));
        assert_eq!(diagnostic.message, "template header text is empty");
        let (diagnostic, _) = single(&order_toml(
            "header = { format = \"text\", text = \"{{2}}\" }\n",
        ));
        assert_eq!(diagnostic.message, "invalid placeholder in template header");

        // Positional body, named header.
        let (diagnostic, _) = single(&order_toml(
            "header = { format = \"text\", text = \"Order {{order_id}}\" }\n",
        ));
        assert_eq!(diagnostic.message, "header and body placeholders are mixed");

        // A media header with text.
        let text = order_toml("header = { format = \"image\", text = \"Photo\" }\n");
        let (diagnostic, covered) = single(&text);
        assert_eq!(
            diagnostic.message,
            "the header of template `order` has no text"
        );
        assert_eq!(covered, "\"Photo\"");
    }

    #[test]
    fn button_problems() {
        // Unknown type with a suggestion, unknown key, text too long.
        let text = order_toml(
            "buttons = [{ type = \"quick-reply\", text = \"Yes\" }, \
             { type = \"url\", text = \"Track\", ulr = \"https://x.example\" }, \
             { type = \"quick_reply\", text = \"Yes, please confirm my appointment\" }]\n",
        );
        let (config, diagnostics) = parse(&text);
        assert!(config.templates.is_empty());
        let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown template button type `quick-reply`",
                "button 2 of template `order` has no `url`",
                "unknown key `ulr` in button 2 of template `order`",
                "the text of button 3 of template `order` is not usable",
            ]
        );
        assert!(help(&diagnostics[0]).starts_with("did you mean `quick_reply`?"));
        assert!(help(&diagnostics[2]).starts_with("did you mean `url`?"));
        assert_eq!(
            label(&diagnostics[3]),
            "34 characters; WhatsApp allows at most 25"
        );

        // A URL on another kind; placeholders not at the end.
        let text = order_toml(
            "buttons = [{ type = \"phone_number\", text = \"Call\", url = \"https://x.example\" }]\n",
        );
        let (diagnostic, covered) = single(&text);
        assert_eq!(
            diagnostic.message,
            "button 1 of template `order` is not a URL button"
        );
        assert_eq!(covered, "\"https://x.example\"");
        for (url, expected) in [
            (
                "https://example.com/{{1}}/track",
                "the placeholder is not at the end",
            ),
            ("https://example.com/{{2}}", "`{{2}}` is not `{{1}}`"),
            (
                "https://example.com/{{1}}{{2}}",
                "the placeholder is not at the end",
            ),
            ("example.com/{{1}}", "not an http(s) link"),
        ] {
            let (diagnostic, _) = single(&order_toml(&format!(
                "buttons = [{{ type = \"url\", text = \"Track\", url = \"{url}\" }}]\n"
            )));
            assert_eq!(diagnostic.message, "invalid URL button link", "{url}");
            assert_eq!(label(&diagnostic), expected, "{url}");
        }

        // Shapes.
        let text = order_toml("buttons = [\"Yes\"]\n");
        let (diagnostic, covered) = single(&text);
        assert_eq!(diagnostic.message, "each button must be a table");
        assert_eq!(covered, "\"Yes\"");
        let (diagnostic, _) = single(&order_toml("buttons = { type = \"url\" }\n"));
        assert_eq!(diagnostic.message, "`buttons` must be a list of tables");
        // No buttons at all is fine.
        let (config, diagnostics) = parse(&order_toml("buttons = []\n"));
        assert_eq!(diagnostics, vec![]);
        assert!(config.templates["order"].buttons.is_empty());
    }

    #[test]
    fn button_limits() {
        let quick = "{ type = \"quick_reply\", text = \"Q\" }";
        let url = "{ type = \"url\", text = \"U\", url = \"https://example.com\" }";
        let phone = "{ type = \"phone_number\", text = \"P\" }";
        let code = "{ type = \"copy_code\", text = \"C\" }";
        let with = |buttons: &[&str]| order_toml(&format!("buttons = [{}]\n", buttons.join(", ")));

        // Ten is fine, eleven is not.
        let (_, diagnostics) = parse(&with(&[quick; 10]));
        assert_eq!(diagnostics, vec![]);
        let text = with(&[quick; 11]);
        let (diagnostic, covered) = single(&text);
        assert_eq!(diagnostic.message, "template `order` has 11 buttons");
        assert_eq!(covered, quick);
        assert_eq!(label(&diagnostic), "button 11 is one too many");

        for (buttons, kind) in [
            (vec![url, url, url], "url"),
            (vec![phone, phone], "phone_number"),
            (vec![code, code], "copy_code"),
        ] {
            let (diagnostic, _) = single(&with(&buttons));
            assert_eq!(
                diagnostic.message,
                format!("template `order` has too many `{kind}` buttons")
            );
        }
        let (_, diagnostics) = parse(&with(&[quick, quick, url, url, phone, code]));
        assert_eq!(diagnostics, vec![]);

        // Quick replies side by side, before or after the others.
        let (_, diagnostics) = parse(&with(&[url, phone, quick, quick]));
        assert_eq!(diagnostics, vec![]);
        let (diagnostic, _) = single(&with(&[quick, url, quick]));
        assert_eq!(
            diagnostic.message,
            "the quick-reply buttons of template `order` are not side by side"
        );
    }

    fn template_with(body: &str, opt_out: Option<bool>) -> TemplateConfig {
        TemplateConfig {
            name: "t".into(),
            language: "en".into(),
            category: TemplateCategory::Marketing,
            body: body.into(),
            placeholders: Placeholders::Positional(0),
            opt_out,
            header: None,
            buttons: Vec::new(),
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

        #[test]
        fn structured_garbage_in_provider_sections_never_panics() {
            let text = r#"
[whatsapp]
base_url = [1]
api_version = 21.0
access_token_env = { a = 1 }
business_account_id = true
timeout = 1979-05-27
[ai.x]
base_url = 3
api_key_env = []
timeout = -1
[ai.y]
base_url = "https://[::1]:99999/é"
[senders.s]
phone_number_id = "1"
provider = 1
[assistants.c]
provider = ["x"]
temperature = "hot"
max_tokens = -9223372036854775808
history = 1e300
rules = 0
"#;
            let (config, diagnostics) = Config::parse(text, FILE);
            assert!(config.is_empty(), "{config:#?}");
            assert_eq!(diagnostics.len(), 15, "{diagnostics:#?}");
            check_never_panics(text);
        }

        proptest! {
            #[test]
            fn urls_never_panic(url in r#"[a-zA-Z]{0,6}(://)?[\[\]a-z0-9:.@/?#%é -]{0,24}"#) {
                let _ = check_http_url(&url);
                let _ = url_path(&url);
            }

            #[test]
            fn env_var_suggestions_are_valid(value in r#"[$]?\{?[a-zA-Z0-9_. -]{0,24}\}?"#) {
                if let Some(fixed) = env_var_name_suggestion(&value) {
                    prop_assert!(is_env_var_name(&fixed));
                }
                let _ = api_version_suggestion(&value);
            }
        }
    }
}
