//! From flow.toml to providers: each sender to the Cloud API or the dry-run
//! console, each assistant to its OpenAI-compatible endpoint or the scripted
//! AI, with credentials read from the environment variables the
//! configuration names.

use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use super::cloud_api::{CloudApi, CloudApiSettings};
use super::openai::{OpenAiCompatible, OpenAiSettings};
use super::routing::{AssistantRouter, SenderRouter};
use super::scripted_ai::ScriptedAi;
use super::{Ai, Secret, SecretError, WhatsApp};
use crate::config::{AssistantProvider, Config, SenderProvider};

/// A provider flow.toml asks for could not be set up.
#[derive(Debug, Error)]
pub enum SetupError {
    /// A credential is missing from the environment.
    #[error("{what} needs a credential: {source}")]
    Credential {
        /// What needs it, e.g. "sender `berlin-office` (Cloud API)".
        what: String,
        /// Which variable is missing.
        #[source]
        source: SecretError,
    },
    /// A sender uses the Cloud API but flow.toml has no `[whatsapp]` table.
    #[error("sender `{0}` uses the Cloud API, but flow.toml has no [whatsapp] table")]
    NoWhatsApp(String),
    /// The Cloud API provider refused its settings.
    #[error("the WhatsApp Cloud API settings are invalid: {0}")]
    CloudApi(String),
    /// An assistant's AI endpoint is missing or invalid.
    #[error("assistant `{assistant}`: {reason}")]
    Assistant {
        /// The assistant.
        assistant: String,
        /// What is wrong.
        reason: String,
    },
}

/// The providers a configuration asks for.
pub struct Providers {
    /// WhatsApp, routed by sender.
    pub whatsapp: SenderRouter,
    /// AI, routed by assistant.
    pub ai: AssistantRouter,
    /// Senders that send for real, for the CLI to say so.
    pub live_senders: Vec<String>,
    /// Assistants answered by a real model.
    pub live_assistants: Vec<String>,
}

/// Builds the providers of `config`. `config_dir` resolves relative paths
/// (scripted AI rules); `dry_run` serves the senders marked `dry-run`.
///
/// ```
/// use std::sync::Arc;
/// use flowc::config::Config;
/// use flowc::providers::console::Console;
/// use flowc::providers::setup::providers_from_config;
/// use flowc::source::FileId;
///
/// let (config, _) = Config::parse("[senders.test]\nphone_number_id = \"1\"\nprovider = \"dry-run\"\n", FileId(0));
/// let console = Arc::new(Console::new(Box::new(std::io::sink())));
/// let providers = providers_from_config(&config, std::path::Path::new("."), console).unwrap();
/// assert!(providers.live_senders.is_empty());
/// ```
pub fn providers_from_config(
    config: &Config,
    config_dir: &Path,
    dry_run: Arc<dyn WhatsApp>,
) -> Result<Providers, SetupError> {
    let mut whatsapp = SenderRouter::new(dry_run);
    let mut live_senders = Vec::new();
    let mut cloud: Option<Arc<dyn WhatsApp>> = None;
    for (name, sender) in &config.senders {
        if sender.provider != SenderProvider::CloudApi {
            continue;
        }
        let provider = match &cloud {
            Some(provider) => provider.clone(),
            None => {
                let settings = config
                    .whatsapp
                    .as_ref()
                    .ok_or_else(|| SetupError::NoWhatsApp(name.clone()))?;
                let token = Secret::from_env(&settings.access_token_env).map_err(|source| {
                    SetupError::Credential {
                        what: format!("sender `{name}` (WhatsApp Cloud API)"),
                        source,
                    }
                })?;
                let mut api = CloudApiSettings::new(token);
                api.base_url = settings.base_url.clone();
                api.api_version = settings.api_version.clone();
                api.business_account_id = settings.business_account_id.clone();
                api.timeout = settings.timeout;
                let provider: Arc<dyn WhatsApp> =
                    Arc::new(CloudApi::new(api).map_err(|e| SetupError::CloudApi(e.to_string()))?);
                cloud = Some(provider.clone());
                provider
            }
        };
        whatsapp = whatsapp.route(name.clone(), provider);
        live_senders.push(name.clone());
    }

    let default_scripted: Arc<dyn Ai> = Arc::new(ScriptedAi::default());
    let mut ai = AssistantRouter::new(default_scripted.clone());
    let mut live_assistants = Vec::new();
    for (name, assistant) in &config.assistants {
        let provider: Arc<dyn Ai> = match &assistant.provider {
            AssistantProvider::Scripted => match &assistant.rules {
                Some(rules) => {
                    Arc::new(ScriptedAi::from_file(config_dir.join(rules)).map_err(|e| {
                        SetupError::Assistant {
                            assistant: name.clone(),
                            reason: e.to_string(),
                        }
                    })?)
                }
                None => default_scripted.clone(),
            },
            AssistantProvider::Endpoint(endpoint_name) => {
                let endpoint =
                    config
                        .ai
                        .get(endpoint_name)
                        .ok_or_else(|| SetupError::Assistant {
                            assistant: name.clone(),
                            reason: format!("flow.toml has no usable [ai.{endpoint_name}] table"),
                        })?;
                let api_key = match &endpoint.api_key_env {
                    Some(variable) => Some(Secret::from_env(variable).map_err(|source| {
                        SetupError::Credential {
                            what: format!("assistant `{name}` ([ai.{endpoint_name}])"),
                            source,
                        }
                    })?),
                    None => None,
                };
                // One client per assistant: model, temperature, token limit and
                // history length are the assistant's own.
                let mut settings = OpenAiSettings::new(endpoint.base_url.clone());
                settings.api_key = api_key;
                settings.default_model = assistant.model.clone();
                settings.timeout = endpoint.timeout;
                settings.temperature = assistant.temperature;
                settings.max_tokens = assistant.max_tokens;
                settings.history_limit = assistant.history;
                live_assistants.push(name.clone());
                Arc::new(
                    OpenAiCompatible::new(settings).map_err(|e| SetupError::Assistant {
                        assistant: name.clone(),
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        ai = ai.route(name.clone(), provider);
    }
    Ok(Providers {
        whatsapp,
        ai,
        live_senders,
        live_assistants,
    })
}
