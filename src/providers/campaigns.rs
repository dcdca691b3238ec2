//! What the store keeps for campaigns: each campaign (its flow, sender,
//! state and why it paused), each of its recipients (line, number, fields,
//! what became of it), and the customers who opted out of marketing. The
//! records and the in-memory keeping live here; [`super::Store`] has the
//! methods, [`super::sqlite`] the tables.
//!
//! A recipient is `pending` until the runner takes it: then it becomes
//! `started` (its run began), or `skipped_opted_out`. Rows that are never
//! sent to are recorded as such when the campaign is created
//! (`skipped_bad`, `duplicate`), so the counts add up to the file's rows.
//! A pending recipient has a time before which it is not taken
//! (`not_before`): a claim moves it to the end of the claim's lease, a
//! deferral (quiet hours, the tier) to when it may go.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::campaign::{OptOutRecord, TierLimit, TierWindow};

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Recipients are being started.
    Running,
    /// Paused by a person or by the quality guard; `resume` goes on.
    Paused,
    /// Stopped for good; pending recipients are never started.
    Cancelled,
    /// Every recipient was handled.
    Finished,
}

impl CampaignState {
    /// The state's name as stored and shown, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Cancelled => "cancelled",
            CampaignState::Finished => "finished",
        }
    }

    /// The state named `text`.
    pub fn parse(text: &str) -> Option<CampaignState> {
        [
            CampaignState::Running,
            CampaignState::Paused,
            CampaignState::Cancelled,
            CampaignState::Finished,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

/// What became of a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientState {
    /// Not handled yet.
    Pending,
    /// Its run was started.
    Started,
    /// Its row has a bad value (a bad phone number): never sent to.
    SkippedBad,
    /// The customer opted out: not sent to.
    SkippedOptedOut,
    /// Its number came on an earlier row: not sent to again.
    Duplicate,
}

impl RecipientState {
    /// The state's name as stored and shown, e.g. `skipped_opted_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Started => "started",
            RecipientState::SkippedBad => "skipped_bad",
            RecipientState::SkippedOptedOut => "skipped_opted_out",
            RecipientState::Duplicate => "duplicate",
        }
    }

    /// The state named `text`.
    pub fn parse(text: &str) -> Option<RecipientState> {
        [
            RecipientState::Pending,
            RecipientState::Started,
            RecipientState::SkippedBad,
            RecipientState::SkippedOptedOut,
            RecipientState::Duplicate,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

/// A campaign as recorded, without its recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// The campaign's id, e.g. `c-20260601-0900-spring_sale`.
    pub id: String,
    /// The flow it starts.
    pub flow: String,
    /// The trigger of the flow's handler the recipients' events go to.
    pub trigger: String,
    /// The sender whose tier, quiet hours and quality rating apply.
    pub sender: String,
    /// Where it stands.
    pub state: CampaignState,
    /// Why it is paused (a person, or the quality guard's reason).
    pub pause_reason: Option<String>,
    /// Quiet hours in the customers' time zones, e.g. `21:00-08:00`.
    pub quiet_hours: Option<String>,
    /// The recipient list it was started from, as given.
    pub source: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// How many recipients of a campaign are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignCounts {
    /// Not handled yet.
    pub pending: u64,
    /// Runs started.
    pub started: u64,
    /// Rows with a bad value.
    pub skipped_bad: u64,
    /// Customers who opted out.
    pub skipped_opted_out: u64,
    /// Rows whose number came before.
    pub duplicate: u64,
}

impl CampaignCounts {
    /// Every recorded row.
    pub fn total(&self) -> u64 {
        self.pending + self.started + self.skipped_bad + self.skipped_opted_out + self.duplicate
    }

    /// Counts one recipient in `state`.
    pub fn add(&mut self, state: RecipientState, n: u64) {
        match state {
            RecipientState::Pending => self.pending += n,
            RecipientState::Started => self.started += n,
            RecipientState::SkippedBad => self.skipped_bad += n,
            RecipientState::SkippedOptedOut => self.skipped_opted_out += n,
            RecipientState::Duplicate => self.duplicate += n,
        }
    }
}

/// One row of a campaign's recipient list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRecipient {
    /// The row's line in the file: unique within the campaign.
    pub line: u64,
    /// The phone number as written (strict E.164 for a recipient).
    pub phone: String,
    /// The event's fields (empty for rows never sent to).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// What became of it.
    pub state: RecipientState,
    /// The id of the run it started.
    pub run_id: Option<String>,
}

/// A run started for a campaign recipient of a sender, as
/// [`super::Store::campaign_starts`] reports it: what the tier counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignStart {
    /// The customer.
    pub phone: String,
    /// When the run started.
    pub at: DateTime<Utc>,
}

/// A customer's opt-out state changed: what
/// [`super::Store::record_opt_change`] takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptChangeRecord {
    /// The customer's phone number.
    pub phone: String,
    /// `true` for an opt-out, `false` for an opt-in (which forgets it).
    pub opted_out: bool,
    /// When.
    pub at: DateTime<Utc>,
    /// Where it came from: `message`, `import`, `cli`.
    pub source: String,
}

/// Campaigns in memory, for [`super::MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct MemoryCampaigns {
    campaigns: BTreeMap<String, MemoryCampaign>,
    opt_outs: BTreeMap<String, OptOutRecord>,
}

#[derive(Debug)]
struct MemoryCampaign {
    campaign: Campaign,
    /// By line.
    recipients: BTreeMap<u64, MemoryRecipient>,
}

#[derive(Debug)]
struct MemoryRecipient {
    recipient: CampaignRecipient,
    not_before: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
}

impl MemoryCampaigns {
    pub(crate) fn create(
        &mut self,
        campaign: Campaign,
        recipients: Vec<CampaignRecipient>,
    ) -> Result<(), StoreError> {
        if self.campaigns.contains_key(&campaign.id) {
            return Err(duplicate_campaign(&campaign.id));
        }
        let created = campaign.created_at;
        let mut rows = BTreeMap::new();
        for recipient in recipients {
            if rows.contains_key(&recipient.line) {
                return Err(duplicate_line(&campaign.id, recipient.line));
            }
            rows.insert(
                recipient.line,
                MemoryRecipient {
                    recipient,
                    not_before: created,
                    started_at: None,
                },
            );
        }
        self.campaigns.insert(
            campaign.id.clone(),
            MemoryCampaign {
                campaign,
                recipients: rows,
            },
        );
        Ok(())
    }

    pub(crate) fn get(&self, id: &str) -> Option<(Campaign, CampaignCounts)> {
        let stored = self.campaigns.get(id)?;
        let mut counts = CampaignCounts::default();
        for row in stored.recipients.values() {
            counts.add(row.recipient.state, 1);
        }
        Some((stored.campaign.clone(), counts))
    }

    pub(crate) fn list(&self) -> Vec<Campaign> {
        let mut all: Vec<Campaign> = self
            .campaigns
            .values()
            .map(|c| c.campaign.clone())
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    pub(crate) fn set_state(
        &mut self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
        reason: Option<String>,
    ) -> bool {
        match self.campaigns.get_mut(id) {
            Some(stored) if from.contains(&stored.campaign.state) => {
                stored.campaign.state = to;
                stored.campaign.pause_reason = reason;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn claim(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
    ) -> Vec<CampaignRecipient> {
        let Some(stored) = self.campaigns.get_mut(id) else {
            return Vec::new();
        };
        let mut claimed = Vec::new();
        for row in stored.recipients.values_mut() {
            if claimed.len() >= limit {
                break;
            }
            if row.recipient.state == RecipientState::Pending && row.not_before <= now {
                row.not_before = lease_until;
                claimed.push(row.recipient.clone());
            }
        }
        claimed
    }

    pub(crate) fn defer(&mut self, id: &str, line: u64, until: DateTime<Utc>) {
        if let Some(row) = self
            .campaigns
            .get_mut(id)
            .and_then(|c| c.recipients.get_mut(&line))
        {
            row.not_before = until;
        }
    }

    pub(crate) fn finish(
        &mut self,
        id: &str,
        line: u64,
        state: RecipientState,
        run_id: Option<String>,
        at: DateTime<Utc>,
    ) {
        if let Some(row) = self
            .campaigns
            .get_mut(id)
            .and_then(|c| c.recipients.get_mut(&line))
        {
            row.recipient.state = state;
            row.recipient.run_id = run_id;
            if state == RecipientState::Started {
                // The tier slot taken before the start keeps its time.
                row.started_at.get_or_insert(at);
            }
        }
    }

    /// [`super::Store::take_tier_slot`]: the window is every start of the
    /// sender's campaigns since `now - 24h`, this recipient's included.
    pub(crate) fn take_tier_slot(
        &mut self,
        id: &str,
        line: u64,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Option<DateTime<Utc>> {
        let sender = self.campaigns.get(id)?.campaign.sender.clone();
        let phone = self
            .campaigns
            .get(id)?
            .recipients
            .get(&line)?
            .recipient
            .phone
            .clone();
        let mut window = TierWindow::new(TierLimit::Limited(limit));
        for start in self.starts(&sender, now - chrono::Duration::hours(24)) {
            window.record_for(&start.phone, start.at);
        }
        if !window.is_counted(&phone, now) {
            let slot = window.next_slot(now);
            if slot > now {
                return Some(slot);
            }
        }
        let row = self.campaigns.get_mut(id)?.recipients.get_mut(&line)?;
        row.started_at.get_or_insert(now);
        None
    }

    pub(crate) fn next_pending(&self, id: &str) -> Option<DateTime<Utc>> {
        self.campaigns
            .get(id)?
            .recipients
            .values()
            .filter(|r| r.recipient.state == RecipientState::Pending)
            .map(|r| r.not_before)
            .min()
    }

    pub(crate) fn recipients(&self, id: &str) -> Vec<CampaignRecipient> {
        self.campaigns.get(id).map_or_else(Vec::new, |c| {
            c.recipients.values().map(|r| r.recipient.clone()).collect()
        })
    }

    pub(crate) fn starts(&self, sender: &str, since: DateTime<Utc>) -> Vec<CampaignStart> {
        let mut starts: Vec<CampaignStart> = self
            .campaigns
            .values()
            .filter(|c| c.campaign.sender == sender)
            .flat_map(|c| c.recipients.values())
            .filter_map(|r| {
                let at = r.started_at.filter(|at| *at >= since)?;
                Some(CampaignStart {
                    phone: r.recipient.phone.clone(),
                    at,
                })
            })
            .collect();
        starts.sort_by_key(|s| s.at);
        starts
    }

    pub(crate) fn record_opt_change(&mut self, change: OptChangeRecord) {
        if change.opted_out {
            self.opt_outs.insert(
                change.phone.clone(),
                OptOutRecord {
                    phone: change.phone,
                    opted_out_at: Some(change.at),
                    source: change.source,
                },
            );
        } else {
            self.opt_outs.remove(&change.phone);
        }
    }

    pub(crate) fn import(&mut self, records: Vec<OptOutRecord>) -> usize {
        let mut added = 0;
        for record in records {
            if !self.opt_outs.contains_key(&record.phone) {
                added += 1;
                self.opt_outs.insert(record.phone.clone(), record);
            }
        }
        added
    }

    pub(crate) fn is_opted_out(&self, phone: &str) -> bool {
        self.opt_outs.contains_key(phone)
    }

    pub(crate) fn opt_outs(&self) -> Vec<OptOutRecord> {
        self.opt_outs.values().cloned().collect()
    }
}

/// A campaign id used twice.
pub(crate) fn duplicate_campaign(id: &str) -> StoreError {
    StoreError::Backend(format!("a campaign with the id `{id}` exists already"))
}

/// Two rows of one campaign with the same line.
pub(crate) fn duplicate_line(id: &str, line: u64) -> StoreError {
    StoreError::Backend(format!(
        "campaign `{id}`: line {line} is recorded twice; nothing of the campaign was kept"
    ))
}

/// Counts by state from `(state, count)` pairs.
pub(crate) fn counts_from(
    pairs: impl IntoIterator<Item = (RecipientState, u64)>,
) -> CampaignCounts {
    let mut counts = CampaignCounts::default();
    for (state, n) in pairs {
        counts.add(state, n);
    }
    counts
}
