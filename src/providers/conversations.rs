//! What the store keeps for conversations: bursts of a customer's messages
//! collected for `debounce` handlers, and conversations handed over to a
//! person (automation paused). The records and the in-memory keeping live
//! here; [`super::Store`] has the methods, [`super::sqlite`] the tables.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// A conversation a person has taken over: while it is paused, the
/// customer's messages to the sender start no automated runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedConversation {
    /// The customer's phone number.
    pub customer: String,
    /// The sender's name.
    pub sender: String,
    /// When it was paused.
    pub paused_at: DateTime<Utc>,
    /// When automation resumes by itself; `None` for never (until resumed).
    pub until: Option<DateTime<Utc>>,
}

impl PausedConversation {
    /// Whether the pause holds at `now` (it has not run out).
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// One message of a burst: the event's fields as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurstMessage {
    /// The event's unique id (a WhatsApp message id), when it has one: a
    /// message added again after a crash is recognised by it.
    pub event_id: Option<String>,
    /// The event's fields as JSON.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A customer's messages collected for one `debounce` handler until the
/// customer pauses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Burst {
    /// The burst's id, which becomes the id of the run it starts.
    pub id: String,
    /// The flow.
    pub flow: String,
    /// The handler's index in the flow.
    pub handler: usize,
    /// The trigger.
    pub trigger: String,
    /// The customer (the trigger's `@opens_window` field).
    pub customer: String,
    /// The messages, oldest first.
    pub messages: Vec<BurstMessage>,
    /// When the burst ends unless another message comes.
    pub deadline: DateTime<Utc>,
}

impl Burst {
    /// The key of the message `event_id` in the burst's handler: a message
    /// is added to one burst of a handler at most once.
    pub fn message_key(&self, event_id: &str) -> String {
        format!("{}#{}#{}", self.flow, self.handler, event_id)
    }
}

/// Bursts and paused conversations of a [`super::MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct MemoryConversations {
    /// Customer, then sender.
    paused: HashMap<String, HashMap<String, PausedConversation>>,
    /// Open bursts by id.
    bursts: FxHashMap<String, Burst>,
    /// The open burst of each (flow, handler, customer).
    open: HashMap<(String, usize, String), String>,
    /// Keys of messages added to bursts ([`Burst::message_key`]).
    seen: FxHashSet<String>,
}

impl MemoryConversations {
    pub(crate) fn pause(&mut self, pause: PausedConversation) {
        self.paused
            .entry(pause.customer.clone())
            .or_default()
            .insert(pause.sender.clone(), pause);
    }

    pub(crate) fn resume(&mut self, customer: &str, sender: &str) -> bool {
        let Some(senders) = self.paused.get_mut(customer) else {
            return false;
        };
        let removed = senders.remove(sender).is_some();
        if senders.is_empty() {
            self.paused.remove(customer);
        }
        removed
    }

    pub(crate) fn paused(&self) -> Vec<PausedConversation> {
        let mut all: Vec<PausedConversation> = self
            .paused
            .values()
            .flat_map(|senders| senders.values().cloned())
            .collect();
        all.sort_by(|a, b| (&a.customer, &a.sender).cmp(&(&b.customer, &b.sender)));
        all
    }

    pub(crate) fn is_paused(&self, customer: &str, sender: &str, now: DateTime<Utc>) -> bool {
        // Nothing handed over (most of the time): no key is hashed.
        !self.paused.is_empty()
            && self
                .paused
                .get(customer)
                .and_then(|senders| senders.get(sender))
                .is_some_and(|pause| pause.holds_at(now))
    }

    pub(crate) fn add_to_burst(&mut self, burst: Burst) {
        let mut burst = burst;
        let messages = std::mem::take(&mut burst.messages);
        let mut fresh = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(id) = &message.event_id {
                if !self.seen.insert(burst.message_key(id)) {
                    continue;
                }
            }
            fresh.push(message);
        }
        if fresh.is_empty() {
            return;
        }
        let key = (burst.flow.clone(), burst.handler, burst.customer.clone());
        if let Some(open) = self.open.get(&key).and_then(|id| self.bursts.get_mut(id)) {
            open.messages.extend(fresh);
            open.deadline = burst.deadline;
            return;
        }
        burst.messages = fresh;
        self.open.insert(key, burst.id.clone());
        self.bursts.insert(burst.id.clone(), burst);
    }

    /// Takes the due bursts out: in memory, nothing outlives the process,
    /// so a claimed burst needs no lease.
    pub(crate) fn claim_due(&mut self, now: DateTime<Utc>, limit: usize) -> Vec<Burst> {
        let mut due: Vec<(DateTime<Utc>, String)> = self
            .bursts
            .values()
            .filter(|b| b.deadline <= now)
            .map(|b| (b.deadline, b.id.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        due.into_iter()
            .filter_map(|(_, id)| {
                let burst = self.bursts.remove(&id)?;
                self.open
                    .remove(&(burst.flow.clone(), burst.handler, burst.customer.clone()));
                Some(burst)
            })
            .collect()
    }

    pub(crate) fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.bursts.values().map(|b| b.deadline).min()
    }
}

/// The messages of a burst joined into one event's fields: `text` joined by
/// line breaks, every other field from the last message. `None` for a burst
/// without messages.
pub fn joined_fields(
    messages: &[BurstMessage],
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let last = messages.last()?;
    let mut fields = last.fields.clone();
    let texts: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.fields.get("text").and_then(serde_json::Value::as_str))
        .filter(|t| !t.is_empty())
        .collect();
    if !texts.is_empty() {
        fields.insert("text".into(), serde_json::Value::String(texts.join("\n")));
    }
    Some(fields)
}
