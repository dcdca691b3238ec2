//! Where the engine keeps what must outlive a run step: customers' 24-hour
//! windows, suspended runs and their wake-up times, run history, the log
//! of sent messages, campaigns and the opt-out list. This module has the trait and the in-memory store; the
//! durable SQLite store implements the same trait.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ahash::{HashMap, HashSet};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::campaigns::{
    Campaign, CampaignCounts, CampaignRecipient, CampaignStart, CampaignState, MemoryCampaigns,
    OptChangeRecord, RecipientState,
};
use super::conversations::{Burst, MemoryConversations, PausedConversation};
use crate::campaign::OptOutRecord;
use crate::runtime::Run;

/// A store failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backing storage failed.
    #[error("store: {0}")]
    Backend(String),
    /// The store does not keep this kind of data (a host's own store
    /// without campaigns, say).
    #[error("store: this store cannot keep {0}")]
    Unsupported(&'static str),
    /// Stored data could not be read back.
    #[error("store: corrupt record {id}: {reason}")]
    Corrupt {
        /// The record.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// Stored data of `id` that cannot be read back: the durable stores' word
/// for a row they cannot decode.
pub(crate) fn corrupt(id: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id: id.into(),
        reason: reason.into(),
    }
}

/// `value` as the compact JSON text the durable stores keep.
pub(crate) fn to_json<T: Serialize>(
    value: &T,
    what: impl std::fmt::Display,
) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("{what}: cannot serialize: {e}")))
}

/// A suspended run as the store keeps it: the engine's state is opaque JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    /// The run's id.
    pub id: String,
    /// The flow it belongs to.
    pub flow: String,
    /// When it is due to go on.
    pub wake_at: DateTime<Utc>,
    /// The engine's serialized run.
    pub state: serde_json::Value,
    /// The event a `wait for` of the run received
    /// ([`Store::deliver_to_waiting`]), as its fields' JSON; `None` for a
    /// run that goes on for another reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<serde_json::Value>,
}

impl StoredRun {
    /// A run as a store keeps it, due at `wake_at`: its state encoded.
    pub fn from_run(run: &Run, wake_at: DateTime<Utc>) -> StoredRun {
        StoredRun {
            id: run.id.clone(),
            flow: run.flow.clone(),
            wake_at,
            state: crate::runtime::encode_state(run),
            delivered: None,
        }
    }
}

/// What a run at a `wait for` waits for: an event of `trigger` whose
/// correlation field (`@correlate`) holds `key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WaitKey {
    /// The trigger's qualified name.
    pub trigger: String,
    /// The correlation field's value, e.g. the customer's phone number.
    pub key: String,
}

/// What [`Store::deliver_to_waiting`] did with an event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delivery {
    /// The runs that were waiting for it, now the caller's to resume, with
    /// the event in [`StoredRun::delivered`].
    pub runs: Vec<StoredRun>,
    /// Whether the event answered waiting runs: now, or earlier (an event
    /// with the same id delivered before a crash).
    pub answered: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// It ran to the end of its block.
    Completed,
    /// It ended with `stop`.
    Stopped,
    /// It ended with an error nothing caught, or `fail`.
    Failed {
        /// The error kind, or `Fail` for `fail`.
        kind: String,
        /// What went wrong.
        message: String,
    },
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: String,
    /// Its flow.
    pub flow: String,
    /// The trigger that started it.
    pub trigger: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How.
    pub outcome: RunOutcome,
}

/// One message that WhatsApp accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    /// The run that sent it.
    pub run_id: String,
    /// The sender's name.
    pub sender: String,
    /// The recipient.
    pub to: String,
    /// The template's name, or `None` for free text.
    pub template: Option<String>,
    /// WhatsApp's message id.
    pub message_id: String,
    /// When it was sent.
    pub at: DateTime<Utc>,
}

/// An event kept in the inbox until its runs have started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxEvent {
    /// The event's unique id (a WhatsApp message id, a status id and
    /// status, or the host's own id): a second delivery is recognised by it.
    pub id: String,
    /// The event as JSON (`{"trigger": ..., "fields": ...}`).
    pub event: serde_json::Value,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

/// A customer's message to a sender, which opens their 24-hour window: what
/// [`Store::record_inbound`] takes, for [`Store::begin_runs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbound<'a> {
    /// The customer's phone number.
    pub customer: &'a str,
    /// The sender's name.
    pub sender: &'a str,
    /// When the customer wrote.
    pub at: DateTime<Utc>,
}

/// An inbound event as [`Store::inbound_check`] asks about it, before the
/// engine starts runs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundQuery<'a> {
    /// The customer and the sender of the conversation it belongs to, when
    /// its trigger opens the customer's window.
    pub conversation: Option<(&'a str, &'a str)>,
    /// What runs at a `wait for` would wait under to receive it, when runs
    /// can wait for its trigger (`@correlate`).
    pub wait: Option<WaitKeyRef<'a>>,
    /// The event's unique id, if it has one.
    pub event_id: Option<&'a str>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// A [`WaitKey`] borrowed: no copy of the trigger or key is needed to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitKeyRef<'a> {
    /// The trigger's qualified name.
    pub trigger: &'a str,
    /// The correlation field's value.
    pub key: &'a str,
}

/// What [`Store::inbound_check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboundCheck {
    /// The conversation is handed over at `now`
    /// ([`Store::conversation_paused`]).
    pub paused: bool,
    /// [`Store::deliver_to_waiting`] may do something with the event: a run
    /// waits under its key, or an event with its id answered runs before.
    /// `false` only when it certainly would do nothing.
    pub may_deliver: bool,
}

/// What the store knows of one send, so a resumed run never sends twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SendState {
    /// The send was about to be made: whether it reached WhatsApp is unknown.
    Started,
    /// WhatsApp accepted it with this message id.
    Sent {
        /// WhatsApp's message id.
        message_id: String,
        /// When it was accepted.
        at: DateTime<Utc>,
    },
}

/// Persistence for the engine.
#[async_trait]
pub trait Store: Send + Sync {
    /// Keeps an event in the inbox unless an event with the same id was ever
    /// received; returns whether it is new.
    async fn enqueue_event(&self, event: InboxEvent) -> Result<bool, StoreError>;
    /// Keeps several events at once: for each, in order, whether it is new,
    /// exactly as [`Store::enqueue_event`] one after the other would answer
    /// (a second event with an id seen earlier in the batch is not new).
    /// A durable store commits the batch as one transaction: on an error
    /// none of it is kept. The default calls `enqueue_event` in order.
    async fn enqueue_events(&self, events: Vec<InboxEvent>) -> Result<Vec<bool>, StoreError> {
        let mut new = Vec::with_capacity(events.len());
        for event in events {
            new.push(self.enqueue_event(event).await?);
        }
        Ok(new)
    }
    /// Events received but not yet marked done, oldest first. A store
    /// shared by several processes answers each process only the events
    /// it may handle: none that another process is handling, and no later
    /// event of a customer whose earlier one is with another process (see
    /// [`PostgresStore`](crate::providers::postgres::PostgresStore)).
    async fn pending_events(&self, limit: usize) -> Result<Vec<InboxEvent>, StoreError>;
    /// How many events are in the inbox (for the `/metrics` gauge). The
    /// default reads them all; stores override it with a count.
    async fn pending_count(&self) -> Result<usize, StoreError> {
        Ok(self.pending_events(usize::MAX).await?.len())
    }
    /// Marks an event's runs as started: it leaves the inbox, its id stays
    /// known.
    async fn finish_event(&self, id: &str) -> Result<(), StoreError>;
    /// [`Store::finish_event`] for several events at once. A durable store
    /// commits them as one transaction: on an error none is marked. The
    /// default calls `finish_event` in order.
    async fn finish_events(&self, ids: &[&str]) -> Result<(), StoreError> {
        for id in ids {
            self.finish_event(id).await?;
        }
        Ok(())
    }
    /// Forgets finished inbox events received before `before`, returning
    /// how many: their ids, and the record of which of them answered
    /// waiting runs. A redelivery of a forgotten event is taken as new, so
    /// `before` must lie well past any redelivery window (WhatsApp retries
    /// for up to about a week). Pending events are never forgotten. A store
    /// that keeps send slots ([`Store::reserve_send_slot`]) also forgets the
    /// customers whose next slot was before `before`: they may be written
    /// to at once, with or without their row.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use flowc::providers::{InboxEvent, MemoryStore, Store};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let store = MemoryStore::new();
    /// let now = Utc::now();
    /// let event = |id: &str, days: i64| InboxEvent {
    ///     id: id.into(),
    ///     event: serde_json::json!({}),
    ///     received_at: now - Duration::days(days),
    /// };
    /// store.enqueue_event(event("wamid.old", 20)).await?;
    /// store.enqueue_event(event("wamid.new", 1)).await?;
    /// store.finish_events(&["wamid.old", "wamid.new"]).await?;
    /// assert_eq!(store.prune_finished_events(now - Duration::days(14)).await?, 1);
    /// assert!(store.enqueue_event(event("wamid.old", 0)).await?); // new again
    /// assert!(!store.enqueue_event(event("wamid.new", 0)).await?); // still known
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    async fn prune_finished_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError>;
    /// What is known of the send with this key (run, position, attempt).
    async fn send_state(&self, key: &str) -> Result<Option<SendState>, StoreError>;
    /// Claims a send: records `Started` for `key` unless something is
    /// recorded already, atomically, and returns what was there before
    /// (`None` when the claim is the caller's). Two copies of a run can never
    /// both make the same send.
    async fn claim_send(&self, key: &str) -> Result<Option<SendState>, StoreError>;
    /// Whether a run with this id is waiting, held under a lease, or
    /// finished: an event dispatched again must not start it afresh.
    async fn run_known(&self, id: &str) -> Result<bool, StoreError>;
    /// Records the state of a send; `None` forgets it (the send failed
    /// before reaching WhatsApp, so it may be tried again).
    async fn set_send_state(&self, key: &str, state: Option<SendState>) -> Result<(), StoreError>;

    /// Records that `customer` wrote to `sender` at `at`: the 24-hour window.
    async fn record_inbound(
        &self,
        customer: &str,
        sender: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// When `customer` last wrote to `sender`.
    async fn last_inbound(
        &self,
        customer: &str,
        sender: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Keeps a suspended run until it is due (replacing one with the same
    /// id), with the event delivered to it if it has one. A `wait for`
    /// registration the run had ends.
    async fn save_run(&self, run: StoredRun) -> Result<(), StoreError>;
    /// Saves the runs one event starts, before any of them runs: records
    /// the customer's window if `inbound` is given (as
    /// [`Store::record_inbound`]), then keeps each run (as
    /// [`Store::save_run`]), except, when `only_new`, a run whose id is
    /// known already ([`Store::run_known`]). Returns for each run, in order,
    /// whether it was kept. A durable store does it all in one transaction:
    /// on an error nothing of it is kept. The default calls the single
    /// methods in that order.
    async fn begin_runs(
        &self,
        inbound: Option<Inbound<'_>>,
        runs: Vec<StoredRun>,
        only_new: bool,
    ) -> Result<Vec<bool>, StoreError> {
        if let Some(inbound) = inbound {
            self.record_inbound(inbound.customer, inbound.sender, inbound.at)
                .await?;
        }
        let mut kept = Vec::with_capacity(runs.len());
        for run in runs {
            let keep = !(only_new && self.run_known(&run.id).await?);
            if keep {
                self.save_run(run).await?;
            }
            kept.push(keep);
        }
        Ok(kept)
    }
    /// [`Store::begin_runs`] for runs as the engine holds them, each with
    /// the time it is due if it does not finish first (its lease). The
    /// default encodes them ([`StoredRun::from_run`]) and calls
    /// `begin_runs`; a store that keeps runs in memory can keep them as they
    /// are and encode one only if it is ever read back, which a run that
    /// finishes at once never is.
    async fn begin_runs_from(
        &self,
        inbound: Option<Inbound<'_>>,
        runs: &[(&Run, DateTime<Utc>)],
        only_new: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let stored = runs
            .iter()
            .map(|(run, wake_at)| StoredRun::from_run(run, *wake_at))
            .collect();
        self.begin_runs(inbound, stored, only_new).await
    }
    /// Takes up to `limit` runs due at `now`, earliest first. A taken run is
    /// the caller's: it saves it again or records it as finished. A durable
    /// store keeps a taken run under a lease (its wake-up time moves to
    /// `now + lease`), so a process that dies while running it loses nothing:
    /// the run is due again when the lease ends.
    async fn claim_due_runs(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError>;
    /// The earliest wake-up time of any suspended run.
    async fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// How many runs are suspended.
    async fn suspended_count(&self) -> Result<usize, StoreError>;
    /// Records a finished run, and forgets the suspended run with its id.
    async fn record_run(&self, record: RunRecord) -> Result<(), StoreError>;
    /// Finished runs, oldest first.
    async fn run_history(&self) -> Result<Vec<RunRecord>, StoreError>;
    /// Records a sent message.
    async fn log_send(&self, record: SentRecord) -> Result<(), StoreError>;
    /// Sent messages, oldest first.
    async fn sent_log(&self) -> Result<Vec<SentRecord>, StoreError>;

    // ------------------------------------------------------------------
    // Conversations: handoff and bursts (see `super::conversations`).
    // ------------------------------------------------------------------

    /// Hands a conversation over to a person: its messages start no runs
    /// until it is resumed or `until` passes. Replaces an earlier pause of
    /// the same customer and sender.
    async fn pause_conversation(&self, pause: PausedConversation) -> Result<(), StoreError>;
    /// Gives a conversation back to automation; returns whether it was
    /// paused (a pause that ran out counts as paused until it is resumed).
    async fn resume_conversation(&self, customer: &str, sender: &str) -> Result<bool, StoreError>;
    /// Every paused conversation, also those whose pause ran out, by
    /// customer and sender.
    async fn paused_conversations(&self) -> Result<Vec<PausedConversation>, StoreError>;
    /// Whether the conversation of `customer` with `sender` is paused at
    /// `now`.
    async fn conversation_paused(
        &self,
        customer: &str,
        sender: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Adds the messages of `burst` to the open burst of its flow, handler
    /// and customer, and moves that burst's deadline to `burst.deadline`; or,
    /// without an open one, keeps `burst` as the new open burst (with its
    /// id). A message whose event id was added to a burst of the same
    /// handler before is left out, so an event dispatched again after a
    /// crash is collected once.
    async fn add_to_burst(&self, burst: Burst) -> Result<(), StoreError>;
    /// Takes up to `limit` bursts whose deadline passed at `now`, earliest
    /// first. A taken burst is closed: later messages open a new one. A
    /// durable store keeps it under a lease, like
    /// [`Store::claim_due_runs`], until [`Store::finish_burst`]: a process
    /// that dies before starting its run gets it back when the lease ends.
    async fn claim_due_bursts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Burst>, StoreError>;
    /// Forgets a claimed burst: its run is saved.
    async fn finish_burst(&self, id: &str) -> Result<(), StoreError>;
    /// The earliest deadline of any burst.
    async fn next_burst_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Keeps a run that stands at a `wait for` (as [`Store::save_run`],
    /// due at its timeout) and registers it under `wait`, so that
    /// [`Store::deliver_to_waiting`] finds it. The default refuses: a store
    /// must implement both to support `wait for`.
    async fn save_waiting_run(&self, run: StoredRun, wait: WaitKey) -> Result<(), StoreError> {
        let _ = (run, wait);
        Err(StoreError::Backend(
            "this store cannot keep runs waiting for the customer (`wait for`)".into(),
        ))
    }
    /// Hands an event to the runs waiting under `wait`, atomically: removes
    /// their registrations, keeps the event with each run and takes the runs
    /// as [`Store::claim_due_runs`] does (a durable store leases them, so a
    /// crash before they go on loses nothing: they come back with the
    /// event). A run whose timeout was claimed first is no longer
    /// registered: exactly one of the reply and the timeout wins. With an
    /// `event_id`, the store remembers that the event answered, so the same
    /// event delivered again is handed to no run (not even to one that
    /// waits again by now) and reports `answered`. The default knows no
    /// waiting runs.
    async fn deliver_to_waiting(
        &self,
        wait: &WaitKey,
        event_id: Option<&str>,
        event: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        let _ = (wait, event_id, event, now);
        Ok(Delivery::default())
    }
    /// How many runs wait for an event under `wait`.
    async fn waiting_count(&self, wait: &WaitKey) -> Result<usize, StoreError> {
        let _ = wait;
        Ok(0)
    }

    // ------------------------------------------------------------------
    // Campaigns and opt-outs (see `super::campaigns`). The defaults answer
    // `StoreError::Unsupported`: a store must implement them all to run
    // campaigns; without them, stop words are not recorded and nobody
    // counts as opted out.
    // ------------------------------------------------------------------

    /// Records a campaign and every row of its recipient list, all or
    /// nothing (one transaction in a durable store): a crash never leaves a
    /// partly recorded campaign. Pending recipients may be taken from
    /// `campaign.created_at` on. Fails if the id or a line is taken.
    async fn create_campaign(
        &self,
        campaign: Campaign,
        recipients: Vec<CampaignRecipient>,
    ) -> Result<(), StoreError> {
        let _ = (campaign, recipients);
        Err(no_campaigns())
    }
    /// A campaign and how many of its recipients are in each state.
    async fn campaign(&self, id: &str) -> Result<Option<(Campaign, CampaignCounts)>, StoreError> {
        let _ = id;
        Err(no_campaigns())
    }
    /// Every campaign, oldest first.
    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        Err(no_campaigns())
    }
    /// Moves a campaign to `to` with `reason` if it is in one of `from`,
    /// atomically; whether it moved.
    async fn set_campaign_state(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
        reason: Option<String>,
    ) -> Result<bool, StoreError> {
        let _ = (id, from, to, reason);
        Err(no_campaigns())
    }
    /// Takes up to `limit` pending recipients of a campaign that may go at
    /// `now`, in line order, and keeps them from other claims until
    /// `lease_until` (a process that dies with them loses nothing: they are
    /// pending again then). Atomic: two processes never take the same
    /// recipient while its lease lasts.
    async fn claim_campaign_recipients(
        &self,
        id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<CampaignRecipient>, StoreError> {
        let _ = (id, now, limit, lease_until);
        Err(no_campaigns())
    }
    /// Takes a slot of the sender's messaging tier for a recipient about
    /// to start: at most `limit` customers per rolling 24 hours across all
    /// of the sender's campaigns, a customer already in the window taking
    /// no new one. `None` when the recipient may start (its start time is
    /// recorded now, so a retry after a crash counts it once); else when a
    /// slot frees. Atomic: processes sharing the store never exceed the
    /// tier together.
    async fn take_tier_slot(
        &self,
        id: &str,
        line: u64,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _ = (id, line, now, limit);
        Err(no_campaigns())
    }
    /// Keeps a pending recipient until `until` (quiet hours, the tier).
    async fn defer_campaign_recipient(
        &self,
        id: &str,
        line: u64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _ = (id, line, until);
        Err(no_campaigns())
    }
    /// Records what became of a recipient at `at`, with its run's id.
    async fn finish_campaign_recipient(
        &self,
        id: &str,
        line: u64,
        state: RecipientState,
        run_id: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _ = (id, line, state, run_id, at);
        Err(no_campaigns())
    }
    /// When the next pending recipient of a campaign may be taken; `None`
    /// when none is pending.
    async fn next_campaign_recipient(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _ = id;
        Err(no_campaigns())
    }
    /// Every recipient of a campaign, in line order.
    async fn campaign_recipients(&self, id: &str) -> Result<Vec<CampaignRecipient>, StoreError> {
        let _ = id;
        Err(no_campaigns())
    }
    /// The runs started for recipients of `sender`'s campaigns at or after
    /// `since`, oldest first: the tier's rolling window after a restart.
    async fn campaign_starts(
        &self,
        sender: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<CampaignStart>, StoreError> {
        let _ = (sender, since);
        Err(no_campaigns())
    }
    /// Records an opt-out (or forgets one, for an opt-in).
    async fn record_opt_change(&self, change: OptChangeRecord) -> Result<(), StoreError> {
        let _ = change;
        Err(no_campaigns())
    }
    /// Whether the customer opted out.
    async fn opted_out(&self, phone: &str) -> Result<bool, StoreError> {
        let _ = phone;
        Err(no_campaigns())
    }
    /// Every opted-out customer, by number.
    async fn opt_outs(&self) -> Result<Vec<OptOutRecord>, StoreError> {
        Err(no_campaigns())
    }
    /// Adds opt-outs (an imported list) in one transaction, keeping the
    /// record of a number that is opted out already; how many were new.
    async fn import_opt_outs(&self, records: Vec<OptOutRecord>) -> Result<usize, StoreError> {
        let _ = records;
        Err(no_campaigns())
    }
    /// Both questions the engine has about an inbound event before it
    /// starts runs, in one call (one read in a durable store): whether its
    /// conversation is paused ([`Store::conversation_paused`]), and whether
    /// [`Store::deliver_to_waiting`] could do anything with it. Most
    /// messages answer no run: the engine then neither builds the event's
    /// JSON nor asks to deliver it. The default asks `conversation_paused`
    /// and says that any event runs can wait for may be delivered.
    async fn inbound_check(&self, query: InboundQuery<'_>) -> Result<InboundCheck, StoreError> {
        let paused = match query.conversation {
            Some((customer, sender)) => {
                self.conversation_paused(customer, sender, query.now)
                    .await?
            }
            None => false,
        };
        Ok(InboundCheck {
            paused,
            may_deliver: query.wait.is_some(),
        })
    }
    /// Reserves the earliest send slot at or after `request.now` that keeps
    /// the sender under its throughput and the recipient under the pair
    /// rate *across every process sharing this store*, or `None` when the
    /// store leaves pacing to the process (the default: the in-memory
    /// store, which no other process can see). The durable stores answer
    /// for every process on them (several `flowc serve` nodes on one
    /// PostgreSQL database; `flowc serve` and `flowc campaign start` on one
    /// SQLite file), so the limits are the account's, not each process's.
    async fn reserve_send_slot(
        &self,
        request: SlotRequest<'_>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _ = request;
        Ok(None)
    }
    /// Whether the store answers at all, as cheaply as it can: what a
    /// health check asks. The default counts the suspended runs.
    async fn ping(&self) -> Result<(), StoreError> {
        self.suspended_count().await.map(|_| ())
    }
    /// Whether [`Store::reserve_send_slot`] answers with slots. The engine
    /// asks once, when it is built, so a store that leaves pacing to the
    /// process costs its sends nothing.
    fn paces_sends(&self) -> bool {
        false
    }
}

/// A send asking for its slot: [`Store::reserve_send_slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRequest<'a> {
    /// The sender (a sender name of flow.toml).
    pub sender: &'a str,
    /// The customer's number.
    pub recipient: &'a str,
    /// The earliest the message may go.
    pub now: DateTime<Utc>,
    /// The least time between two sends of the sender (1 / throughput).
    pub sender_spacing: chrono::Duration,
    /// The least time between two sends to the recipient.
    pub recipient_interval: chrono::Duration,
}

/// What a store without campaign support answers.
fn no_campaigns() -> StoreError {
    StoreError::Unsupported("campaigns or opt-outs")
}

/// Maps keyed by engine-made ids (run ids, send keys) use the fast FxHash;
/// those keyed by customers' numbers or event ids use ahash, keyed at
/// random per process, against crafted collisions.
///
/// A run's id is one shared `Arc<str>` for `runs`, `due` and, once the run
/// is finished, `finished`: saving and finishing a run copy it once.
#[derive(Debug, Default)]
struct MemoryInner {
    /// Customer, then sender: looked up by `&str`, without building a key.
    inbound: HashMap<String, HashMap<String, DateTime<Utc>>>,
    runs: FxHashMap<Arc<str>, SuspendedRun>,
    /// Due order: (wake time, run id).
    due: BTreeSet<(DateTime<Utc>, Arc<str>)>,
    history: Vec<RunRecord>,
    sent: Vec<SentRecord>,
    /// Ids of every event received, with when (for pruning).
    seen_events: HashMap<String, DateTime<Utc>>,
    inbox: BTreeMap<(DateTime<Utc>, String), InboxEvent>,
    sends: FxHashMap<String, SendState>,
    /// Ids of finished runs, so `run_known` does not search the history.
    finished: FxHashSet<Arc<str>>,
    /// Bursts and paused conversations.
    conversations: MemoryConversations,
    /// `wait for` registrations: the runs waiting under each key...
    waits: HashMap<WaitKey, Vec<Arc<str>>>,
    /// ...and each waiting run's key.
    wait_of: FxHashMap<Arc<str>, WaitKey>,
    /// Ids of events that answered waiting runs.
    answered: HashSet<String>,
    /// Campaigns, their recipients, opt-outs.
    campaigns: MemoryCampaigns,
}

/// A [`StoredRun`] without its id, which is the map's key.
#[derive(Debug)]
struct SuspendedRun {
    wake_at: DateTime<Utc>,
    state: KeptState,
    delivered: Option<serde_json::Value>,
}

/// A kept run's flow and state: encoded, or as the engine held it when the
/// run began ([`Store::begin_runs_from`]), encoded when it is read back.
#[derive(Debug)]
enum KeptState {
    Encoded {
        flow: String,
        state: serde_json::Value,
    },
    Begun(Box<Run>),
}

impl MemoryInner {
    fn run_known(&self, id: &str) -> bool {
        self.runs.contains_key(id) || self.finished.contains(id)
    }

    fn record_inbound(&mut self, customer: &str, sender: &str, at: DateTime<Utc>) {
        // Known customers and senders (most events) allocate nothing.
        if let Some(last) = self
            .inbound
            .get_mut(customer)
            .and_then(|senders| senders.get_mut(sender))
        {
            if *last < at {
                *last = at;
            }
            return;
        }
        if !self.inbound.contains_key(customer) {
            self.inbound
                .insert(customer.to_string(), HashMap::default());
        }
        if let Some(senders) = self.inbound.get_mut(customer) {
            senders.insert(sender.to_string(), at);
        }
    }

    fn save_run(&mut self, run: StoredRun) {
        self.unregister(&run.id);
        let id = match self.remove_run(&run.id) {
            Some((id, _)) => id,
            None => Arc::from(run.id),
        };
        self.keep(
            id,
            SuspendedRun {
                wake_at: run.wake_at,
                state: KeptState::Encoded {
                    flow: run.flow,
                    state: run.state,
                },
                delivered: run.delivered,
            },
        );
    }

    /// [`Store::begin_runs`] and [`Store::begin_runs_from`]: the window,
    /// then each run given to `keep`, except, when `only_new`, a known one.
    fn begin<R>(
        &mut self,
        inbound: Option<Inbound<'_>>,
        runs: impl ExactSizeIterator<Item = R>,
        only_new: bool,
        id: impl Fn(&R) -> &str,
        mut keep: impl FnMut(&mut Self, R),
    ) -> Vec<bool> {
        if let Some(inbound) = inbound {
            self.record_inbound(inbound.customer, inbound.sender, inbound.at);
        }
        let mut kept = Vec::with_capacity(runs.len());
        for run in runs {
            let new = !(only_new && self.run_known(id(&run)));
            if new {
                keep(self, run);
            }
            kept.push(new);
        }
        kept
    }

    /// Keeps a run that is beginning, as it is.
    fn begin_run(&mut self, run: &Run, wake_at: DateTime<Utc>) {
        self.unregister(&run.id);
        let id = match self.remove_run(&run.id) {
            Some((id, _)) => id,
            None => Arc::from(run.id.as_str()),
        };
        self.keep(
            id,
            SuspendedRun {
                wake_at,
                state: KeptState::Begun(Box::new(run.clone())),
                delivered: None,
            },
        );
    }

    fn keep(&mut self, id: Arc<str>, run: SuspendedRun) {
        self.due.insert((run.wake_at, id.clone()));
        self.runs.insert(id, run);
    }

    /// Forgets the `wait for` registration of a run, if it has one.
    fn unregister(&mut self, id: &str) {
        let Some(wait) = self.wait_of.remove(id) else {
            return;
        };
        if let Some(ids) = self.waits.get_mut(&wait) {
            ids.retain(|waiting| &**waiting != id);
            if ids.is_empty() {
                self.waits.remove(&wait);
            }
        }
    }

    /// Takes a run out of the store, as [`Store::claim_due_runs`] returns it.
    fn take_run(&mut self, id: &str) -> Option<StoredRun> {
        self.unregister(id);
        let (id, run) = self.remove_run(id)?;
        let (flow, state) = match run.state {
            KeptState::Encoded { flow, state } => (flow, state),
            KeptState::Begun(begun) => {
                let state = crate::runtime::encode_state(&begun);
                (begun.flow, state)
            }
        };
        Some(StoredRun {
            id: id.to_string(),
            flow,
            wake_at: run.wake_at,
            state,
            delivered: run.delivered,
        })
    }

    /// Takes a run out of `runs` and `due`; its id, to be reused.
    fn remove_run(&mut self, id: &str) -> Option<(Arc<str>, SuspendedRun)> {
        let (id, run) = self.runs.remove_entry(id)?;
        let key = (run.wake_at, id);
        self.due.remove(&key);
        Some((key.1, run))
    }
}

/// A store in memory: for tests, `flowc run`, and hosts that persist
/// elsewhere.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store poisoned by a panic".into()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn enqueue_event(&self, event: InboxEvent) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        match inner.seen_events.entry(event.id.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => return Ok(false),
            std::collections::hash_map::Entry::Vacant(seen) => {
                seen.insert(event.received_at);
            }
        }
        inner
            .inbox
            .insert((event.received_at, event.id.clone()), event);
        Ok(true)
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        Ok(self.lock()?.inbox.values().take(limit).cloned().collect())
    }

    async fn pending_count(&self) -> Result<usize, StoreError> {
        Ok(self.lock()?.inbox.len())
    }

    async fn finish_event(&self, id: &str) -> Result<(), StoreError> {
        self.lock()?.inbox.retain(|(_, key), _| key != id);
        Ok(())
    }

    async fn finish_events(&self, ids: &[&str]) -> Result<(), StoreError> {
        // One pass over the inbox for the whole batch.
        let ids: FxHashSet<&str> = ids.iter().copied().collect();
        self.lock()?
            .inbox
            .retain(|(_, key), _| !ids.contains(key.as_str()));
        Ok(())
    }

    async fn prune_finished_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let MemoryInner {
            seen_events,
            inbox,
            answered,
            ..
        } = &mut *inner;
        let before_count = seen_events.len();
        seen_events.retain(|id, received_at| {
            let keep = *received_at >= before || inbox.contains_key(&(*received_at, id.clone()));
            if !keep {
                answered.remove(id);
            }
            keep
        });
        Ok(before_count - seen_events.len())
    }

    async fn send_state(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        Ok(self.lock()?.sends.get(key).cloned())
    }

    async fn claim_send(&self, key: &str) -> Result<Option<SendState>, StoreError> {
        let mut inner = self.lock()?;
        match inner.sends.get(key) {
            Some(state) => Ok(Some(state.clone())),
            None => {
                inner.sends.insert(key.to_string(), SendState::Started);
                Ok(None)
            }
        }
    }

    async fn run_known(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.run_known(id))
    }

    async fn set_send_state(&self, key: &str, state: Option<SendState>) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        match state {
            // A claimed send (the usual case) is updated in place.
            Some(state) => match inner.sends.get_mut(key) {
                Some(known) => *known = state,
                None => {
                    inner.sends.insert(key.to_string(), state);
                }
            },
            None => {
                inner.sends.remove(key);
            }
        }
        Ok(())
    }

    async fn record_inbound(
        &self,
        customer: &str,
        sender: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock()?.record_inbound(customer, sender, at);
        Ok(())
    }

    async fn last_inbound(
        &self,
        customer: &str,
        sender: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .lock()?
            .inbound
            .get(customer)
            .and_then(|senders| senders.get(sender))
            .copied())
    }

    async fn save_run(&self, run: StoredRun) -> Result<(), StoreError> {
        self.lock()?.save_run(run);
        Ok(())
    }

    async fn begin_runs(
        &self,
        inbound: Option<Inbound<'_>>,
        runs: Vec<StoredRun>,
        only_new: bool,
    ) -> Result<Vec<bool>, StoreError> {
        Ok(self.lock()?.begin(
            inbound,
            runs.into_iter(),
            only_new,
            |run| &run.id,
            MemoryInner::save_run,
        ))
    }

    async fn begin_runs_from(
        &self,
        inbound: Option<Inbound<'_>>,
        runs: &[(&Run, DateTime<Utc>)],
        only_new: bool,
    ) -> Result<Vec<bool>, StoreError> {
        Ok(self.lock()?.begin(
            inbound,
            runs.iter().copied(),
            only_new,
            |(run, _)| &run.id,
            |inner, (run, wake_at)| inner.begin_run(run, wake_at),
        ))
    }

    async fn claim_due_runs(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let mut inner = self.lock()?;
        let ids: Vec<Arc<str>> = inner
            .due
            .iter()
            .take_while(|(wake, _)| *wake <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        // A run whose `wait for` timed out loses its registration with
        // it: a reply from now on finds nothing.
        Ok(ids.iter().filter_map(|id| inner.take_run(id)).collect())
    }

    async fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock()?.due.first().map(|(wake, _)| *wake))
    }

    async fn suspended_count(&self) -> Result<usize, StoreError> {
        Ok(self.lock()?.runs.len())
    }

    async fn record_run(&self, record: RunRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.unregister(&record.id);
        let id = match inner.remove_run(&record.id) {
            Some((id, _)) => id,
            None => Arc::from(record.id.as_str()),
        };
        inner.finished.insert(id);
        inner.history.push(record);
        Ok(())
    }

    async fn run_history(&self) -> Result<Vec<RunRecord>, StoreError> {
        Ok(self.lock()?.history.clone())
    }

    async fn log_send(&self, record: SentRecord) -> Result<(), StoreError> {
        self.lock()?.sent.push(record);
        Ok(())
    }

    async fn sent_log(&self) -> Result<Vec<SentRecord>, StoreError> {
        Ok(self.lock()?.sent.clone())
    }

    async fn pause_conversation(&self, pause: PausedConversation) -> Result<(), StoreError> {
        self.lock()?.conversations.pause(pause);
        Ok(())
    }

    async fn resume_conversation(&self, customer: &str, sender: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.conversations.resume(customer, sender))
    }

    async fn paused_conversations(&self) -> Result<Vec<PausedConversation>, StoreError> {
        Ok(self.lock()?.conversations.paused())
    }

    async fn conversation_paused(
        &self,
        customer: &str,
        sender: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(self.lock()?.conversations.is_paused(customer, sender, now))
    }

    async fn add_to_burst(&self, burst: Burst) -> Result<(), StoreError> {
        self.lock()?.conversations.add_to_burst(burst);
        Ok(())
    }

    async fn claim_due_bursts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Burst>, StoreError> {
        Ok(self.lock()?.conversations.claim_due(now, limit))
    }

    async fn finish_burst(&self, _id: &str) -> Result<(), StoreError> {
        // Claimed bursts left the memory store already.
        Ok(())
    }

    async fn next_burst_deadline(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock()?.conversations.next_deadline())
    }

    async fn save_waiting_run(&self, run: StoredRun, wait: WaitKey) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let id: Arc<str> = Arc::from(run.id.as_str());
        inner.save_run(run);
        inner
            .waits
            .entry(wait.clone())
            .or_default()
            .push(id.clone());
        inner.wait_of.insert(id, wait);
        Ok(())
    }

    async fn deliver_to_waiting(
        &self,
        wait: &WaitKey,
        event_id: Option<&str>,
        event: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        let mut inner = self.lock()?;
        // Delivered before: the runs it answered went on, and the runs
        // waiting now wait for a later message.
        if event_id.is_some_and(|id| inner.answered.contains(id)) {
            return Ok(Delivery {
                runs: Vec::new(),
                answered: true,
            });
        }
        let ids = inner.waits.remove(wait).unwrap_or_default();
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            inner.wait_of.remove(&id);
            if let Some(mut run) = inner.take_run(&id) {
                run.wake_at = now;
                run.delivered = Some(event.clone());
                runs.push(run);
            }
        }
        if let (Some(id), false) = (event_id, runs.is_empty()) {
            inner.answered.insert(id.to_string());
        }
        Ok(Delivery {
            answered: !runs.is_empty(),
            runs,
        })
    }

    async fn waiting_count(&self, wait: &WaitKey) -> Result<usize, StoreError> {
        Ok(self.lock()?.waits.get(wait).map_or(0, Vec::len))
    }

    async fn create_campaign(
        &self,
        campaign: Campaign,
        recipients: Vec<CampaignRecipient>,
    ) -> Result<(), StoreError> {
        self.lock()?.campaigns.create(campaign, recipients)
    }

    async fn campaign(&self, id: &str) -> Result<Option<(Campaign, CampaignCounts)>, StoreError> {
        Ok(self.lock()?.campaigns.get(id))
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        Ok(self.lock()?.campaigns.list())
    }

    async fn set_campaign_state(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
        reason: Option<String>,
    ) -> Result<bool, StoreError> {
        Ok(self.lock()?.campaigns.set_state(id, from, to, reason))
    }

    async fn claim_campaign_recipients(
        &self,
        id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<CampaignRecipient>, StoreError> {
        Ok(self.lock()?.campaigns.claim(id, now, limit, lease_until))
    }

    async fn defer_campaign_recipient(
        &self,
        id: &str,
        line: u64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock()?.campaigns.defer(id, line, until);
        Ok(())
    }

    async fn finish_campaign_recipient(
        &self,
        id: &str,
        line: u64,
        state: RecipientState,
        run_id: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock()?.campaigns.finish(id, line, state, run_id, at);
        Ok(())
    }

    async fn next_campaign_recipient(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock()?.campaigns.next_pending(id))
    }

    async fn campaign_recipients(&self, id: &str) -> Result<Vec<CampaignRecipient>, StoreError> {
        Ok(self.lock()?.campaigns.recipients(id))
    }

    async fn campaign_starts(
        &self,
        sender: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<CampaignStart>, StoreError> {
        Ok(self.lock()?.campaigns.starts(sender, since))
    }

    async fn take_tier_slot(
        &self,
        id: &str,
        line: u64,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock()?.campaigns.take_tier_slot(id, line, now, limit))
    }

    async fn record_opt_change(&self, change: OptChangeRecord) -> Result<(), StoreError> {
        self.lock()?.campaigns.record_opt_change(change);
        Ok(())
    }

    async fn opted_out(&self, phone: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.campaigns.is_opted_out(phone))
    }

    async fn opt_outs(&self) -> Result<Vec<OptOutRecord>, StoreError> {
        Ok(self.lock()?.campaigns.opt_outs())
    }

    async fn import_opt_outs(&self, records: Vec<OptOutRecord>) -> Result<usize, StoreError> {
        Ok(self.lock()?.campaigns.import(records))
    }

    /// One lock; with nothing paused, waiting or answered (most of the
    /// time) no key is hashed and nothing is copied.
    async fn inbound_check(&self, query: InboundQuery<'_>) -> Result<InboundCheck, StoreError> {
        let inner = self.lock()?;
        let paused = query.conversation.is_some_and(|(customer, sender)| {
            inner.conversations.is_paused(customer, sender, query.now)
        });
        let may_deliver = query.wait.is_some_and(|wait| {
            let answered_before = !inner.answered.is_empty()
                && query.event_id.is_some_and(|id| inner.answered.contains(id));
            answered_before
                || (!inner.waits.is_empty()
                    && inner.waits.contains_key(&WaitKey {
                        trigger: wait.trigger.to_string(),
                        key: wait.key.to_string(),
                    }))
        });
        Ok(InboundCheck {
            paused,
            may_deliver,
        })
    }
}
