//! The campaign runner's types: what starting a campaign takes, what it
//! answers, and why it fails. The runner itself is a part of the engine
//! ([`crate::runtime::Engine::start_campaign`],
//! [`crate::runtime::Engine::run_campaign`] and their neighbours), because it
//! starts runs and reads the store and the clock the engine has.
//!
//! # How a campaign runs
//!
//! 1. [`crate::runtime::Engine::start_campaign`] resolves the flow, its
//!    trigger and the sender, checks the whole file in one pass (as
//!    [`super::validate_recipients`] does), then records the campaign and every
//!    row (recipient, bad row, duplicate) in one store transaction. A file
//!    with a problem records nothing.
//! 2. [`crate::runtime::Engine::run_campaign`] claims pending recipients in
//!    line order under a lease (so two processes never take the same one),
//!    skips and counts opted-out customers, defers a customer in quiet hours
//!    to when they end, waits for the sender's tier, and starts the flow with
//!    [`crate::runtime::Engine::dispatch_once`] under the id
//!    `campaign:{id}:{line}`. A crash between the start and its record is
//!    harmless: the same id starts nothing the second time.
//! 3. A person pauses, resumes or cancels; the quality guard pauses.

use std::path::PathBuf;

use thiserror::Error;

use super::{QuietHours, RecipientOptions, RecipientsError, Report};
use crate::providers::{Campaign, CampaignCounts, CampaignState, StoreError};
use crate::runtime::EngineError;

/// How to start a campaign.
#[derive(Debug, Clone, Default)]
pub struct CampaignOptions {
    /// The flow to start; may be left out when one flow's trigger takes a
    /// recipient list.
    pub flow: Option<String>,
    /// The sender whose tier, quiet hours and quality guard apply; may be
    /// left out when flow.toml has one sender.
    pub sender: Option<String>,
    /// Quiet hours for this campaign, over the sender's from flow.toml.
    pub quiet_hours: Option<QuietHours>,
    /// The campaign's id; made from the flow and the time when left out.
    pub id: Option<String>,
    /// How to read the list.
    pub recipients: RecipientOptions,
}

/// What a campaign is about to do: its flow, trigger and sender, and the
/// list's report. [`crate::runtime::Engine::plan_campaign`] gives it
/// without recording anything (`--dry-run`).
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignPlan {
    /// The flow.
    pub flow: String,
    /// The trigger the rows become events of.
    pub trigger: String,
    /// The sender.
    pub sender: String,
    /// The list.
    pub file: PathBuf,
    /// Counts, bad rows and duplicates.
    pub report: Report,
    /// The events of the first few recipients, as they would start the flow.
    pub preview: Vec<crate::runtime::Event>,
}

/// A campaign and its counts, as `flowc campaign status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignStatus {
    /// The campaign.
    pub campaign: Campaign,
    /// Its recipients by state.
    pub counts: CampaignCounts,
}

/// How [`crate::runtime::Engine::run_campaign`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignOutcome {
    /// Every recipient was handled.
    Finished,
    /// Paused, with the reason.
    Paused(Option<String>),
    /// Cancelled.
    Cancelled,
}

/// Why a campaign could not be started or changed.
#[derive(Debug, Error)]
pub enum CampaignError {
    /// No loaded flow can take a recipient list, or several can.
    #[error("{0}")]
    Flow(String),
    /// The sender is unknown or not given.
    #[error("{0}")]
    Sender(String),
    /// The list cannot be used.
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Starting a run failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No campaign has this id.
    #[error("no campaign has the id `{0}`; `flowc campaign status` lists them")]
    Unknown(String),
    /// The campaign is not in a state the change applies to.
    #[error("campaign `{id}` is {}: it cannot be {wanted}", state.as_str())]
    State {
        /// The campaign.
        id: String,
        /// Where it stands.
        state: CampaignState,
        /// What was asked, e.g. `resumed`.
        wanted: &'static str,
    },
    /// Handling a recipient panicked or was aborted; the recipient is taken
    /// again when its lease ends.
    #[error("campaign `{id}`: handling a recipient failed: {reason}")]
    Crashed {
        /// The campaign.
        id: String,
        /// What the task reported.
        reason: String,
    },
    /// The stored settings of the campaign are not valid any more.
    #[error("campaign `{id}`: {problem}")]
    Settings {
        /// The campaign.
        id: String,
        /// What is wrong.
        problem: String,
    },
}
