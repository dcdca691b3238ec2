//! `flowc conversation pause|resume|list`: hands a customer's conversation
//! to a person (no automated replies) and back, in the project's store,
//! the one `flowc serve` uses (a SQLite file, or the nodes' PostgreSQL
//! database).

use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Subcommand};
use flowc::providers::PausedConversation;

use crate::check::usage_error;
use crate::store_args::{config, StoreArgs};

#[derive(Debug, Args)]
pub struct ConversationArgs {
    #[command(subcommand)]
    command: ConversationCommand,
}

#[derive(Debug, Subcommand)]
enum ConversationCommand {
    /// Hand a conversation to a person: the customer's messages start no
    /// flows until it is resumed (or `--for` has passed).
    Pause(PauseArgs),
    /// Give a conversation back to automation.
    Resume(ConversationTarget),
    /// List the conversations handed over now.
    List(StoreArgs),
}

#[derive(Debug, Args)]
struct ConversationTarget {
    /// The customer's phone number in E.164, e.g. +4915112345678.
    #[arg(value_name = "PHONE")]
    customer: String,
    /// The sender (a `[senders.NAME]` of flow.toml); may be left out when
    /// flow.toml has only one.
    #[arg(long, value_name = "NAME")]
    sender: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
struct PauseArgs {
    #[command(flatten)]
    target: ConversationTarget,
    /// Resume by itself after this long, e.g. 4h; by default only
    /// `flowc conversation resume` does.
    #[arg(long = "for", value_name = "DURATION")]
    duration: Option<String>,
}

pub fn run(args: ConversationArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match args.command {
            ConversationCommand::Pause(pause) => pause_conversation(pause).await,
            ConversationCommand::Resume(target) => resume_conversation(target).await,
            ConversationCommand::List(store) => list(store).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => usage_error(&message),
    }
}

/// The customer's number and the sender's name, checked against flow.toml.
fn target(args: &ConversationTarget) -> Result<(String, String), String> {
    if let Err(problems) = flowc::phone::check_e164(&args.customer) {
        return Err(format!(
            "\"{}\" is not a phone number in E.164 ({}), such as +4915112345678",
            args.customer,
            flowc::phone::describe(&problems)
        ));
    }
    let config = config(&args.store.config)?;
    let known: Vec<&str> = config.senders.keys().map(String::as_str).collect();
    let sender = match &args.sender {
        Some(sender) if config.senders.contains_key(sender) => sender.clone(),
        Some(sender) => {
            let hint = match flowc::check::rules::closest(sender, known.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("flow.toml has {}", names(&known)),
            };
            return Err(format!("unknown sender `{sender}`: {hint}"));
        }
        None => match known.as_slice() {
            [only] => only.to_string(),
            [] => {
                return Err(format!(
                    "{} lists no senders: add `[senders.NAME]` with its phone_number_id",
                    args.store.config.display()
                ))
            }
            _ => {
                return Err(format!(
                    "flow.toml has several senders ({}): choose one with --sender",
                    names(&known)
                ))
            }
        },
    };
    Ok((args.customer.clone(), sender))
}

fn names(known: &[&str]) -> String {
    known
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn pause_conversation(args: PauseArgs) -> Result<(), String> {
    let (customer, sender) = target(&args.target)?;
    let now = Utc::now();
    let until = match &args.duration {
        None => None,
        Some(text) => {
            let ms = flowc::duration::parse(text)
                .and_then(|ms| i64::try_from(ms).ok())
                .filter(|ms| *ms > 0)
                .ok_or_else(|| format!("--for: \"{text}\" is not a duration such as 4h"))?;
            Some(now + chrono::Duration::milliseconds(ms))
        }
    };
    let store = args.target.store.open().await?;
    store
        .pause_conversation(PausedConversation {
            customer: customer.clone(),
            sender: sender.clone(),
            paused_at: now,
            until,
        })
        .await
        .map_err(|e| e.to_string())?;
    match until {
        Some(until) => say!(
            "{customer} with {sender}: handed over until {}",
            until.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => say!("{customer} with {sender}: handed over until resumed"),
    }
    Ok(())
}

async fn resume_conversation(args: ConversationTarget) -> Result<(), String> {
    let (customer, sender) = target(&args)?;
    let store = args.store.open().await?;
    let was = store
        .resume_conversation(&customer, &sender)
        .await
        .map_err(|e| e.to_string())?;
    if was {
        say!("{customer} with {sender}: automation resumed");
    } else {
        say!("{customer} with {sender}: was not handed over");
    }
    Ok(())
}

async fn list(args: StoreArgs) -> Result<(), String> {
    let store = args.open().await?;
    let now = Utc::now();
    let paused = store
        .paused_conversations()
        .await
        .map_err(|e| e.to_string())?;
    let paused: Vec<&PausedConversation> = paused.iter().filter(|p| p.holds_at(now)).collect();
    if paused.is_empty() {
        say!("no conversation is handed over");
    }
    for p in paused {
        let until = p.until.map_or("until resumed".to_string(), |u| {
            format!("until {}", u.format("%Y-%m-%d %H:%M:%S UTC"))
        });
        say!(
            "{}  {}  since {}  {until}",
            p.customer,
            p.sender,
            p.paused_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    Ok(())
}
