//! The engine's side of campaigns (see [`crate::campaign::runner`]): start a
//! campaign from a recipient list, drive it, pause, resume and cancel it;
//! the opt-out words on inbound messages; the quality guard on
//! `phone_number_quality_update`.

use std::path::Path;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use super::engine::Engine;
use super::event::Event;
use super::EngineError;
use crate::campaign::runner::{
    CampaignError, CampaignOptions, CampaignOutcome, CampaignPlan, CampaignStatus,
};
use crate::campaign::{
    customer_zone, OptChange, OptOutWords, QualityDecision, QualityRating, QualityUpdate,
    QuietHours, RecipientReader, TierLimit, TierWindow,
};
use crate::check::Program;
use crate::providers::{
    Campaign, CampaignRecipient, CampaignState, OptChangeRecord, RecipientState, SenderRef,
    StoreError,
};

/// How many recipients one claim takes, and how many of their runs go at
/// once: enough to keep a remote API busy, few enough that a crash leaves
/// little under a lease.
const BATCH: usize = 32;

/// The longest the runner waits (for quiet hours, the tier, a lease)
/// before it looks at the campaign again: a pause, resume or cancel from
/// another process is seen within it.
const LOOK_AGAIN: chrono::Duration = chrono::Duration::minutes(1);

/// How many events a plan shows.
const PREVIEW: usize = 5;

/// The trigger whose texts may be stop or start words.
const MESSAGE_RECEIVED: &str = "whatsapp.message_received";

/// What the engine keeps for campaigns between calls: the opt-out words of
/// the loaded programs, built once per load.
#[derive(Debug, Default)]
pub(crate) struct CampaignRules {
    opt_out: RwLock<Option<Arc<OptOutWords>>>,
}

impl CampaignRules {
    /// Builds the opt-out words of a program being loaded; a program whose
    /// `[opt_out]` the checker refused keeps the defaults.
    pub(crate) fn load(&self, program: &Program) {
        let words = OptOutWords::from_config(&program.config().opt_out)
            .unwrap_or_else(|_| OptOutWords::defaults());
        let mut slot = match self.opt_out.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Some(Arc::new(words));
    }

    fn words(&self) -> Arc<OptOutWords> {
        let slot = match self.opt_out.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &*slot {
            Some(words) => words.clone(),
            None => Arc::new(OptOutWords::defaults()),
        }
    }
}

/// What became of one claimed recipient.
enum Handled {
    Started,
    Skipped,
    Deferred,
    /// Deferred because the sender's tier is full.
    TierFull,
}

/// The campaign being driven, shared by the tasks of one batch.
struct Drive {
    campaign: Campaign,
    quiet_hours: Option<QuietHours>,
    /// The sender's tier: slots are taken in the store, one per start.
    limit: TierLimit,
}

impl Engine {
    /// Records an opt-out or opt-in when an inbound WhatsApp message is
    /// exactly a stop or start word (after trimming, case, accents and
    /// courtesy words: "STOP", "Stopp bitte"), before any flow runs. Other
    /// texts ("cancel my appointment") change nothing. The message still
    /// starts flows, so one may confirm.
    pub(crate) async fn record_opt_change(&self, event: &Event) -> Result<(), EngineError> {
        if event.trigger != MESSAGE_RECEIVED {
            return Ok(());
        }
        let (Some(text), Some(phone)) = (
            event.fields.get("text").and_then(|t| t.as_str()),
            event.fields.get("phone").and_then(|p| p.as_str()),
        ) else {
            return Ok(());
        };
        let Some(change) = self.inner.campaign_rules.words().classify(text) else {
            return Ok(());
        };
        let recorded = self
            .inner
            .store
            .record_opt_change(OptChangeRecord {
                phone: phone.to_string(),
                opted_out: change == OptChange::OptOut,
                at: self.inner.clock.now(),
                source: "message".to_string(),
            })
            .await;
        match recorded {
            Ok(()) => Ok(()),
            // A host's store without opt-outs: the message still runs.
            Err(StoreError::Unsupported(what)) => {
                self.inner.write_log(
                    "campaigns",
                    "warn",
                    &format!("a stop or start word from {phone} is not recorded: the store cannot keep {what}"),
                );
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The flow, trigger and sender a campaign would use, and the report
    /// of its list, recording nothing: what `--dry-run` prints.
    pub fn plan_campaign(
        &self,
        recipients: &Path,
        options: &CampaignOptions,
    ) -> Result<CampaignPlan, CampaignError> {
        let programs = self.programs();
        let (program, flow, trigger) = campaign_flow(&programs, options.flow.as_deref())?;
        let sender = campaign_sender(program, &flow, options.sender.as_deref())?;
        let schema = program.schemas().triggers.get(&trigger).ok_or_else(|| {
            CampaignError::Flow(format!("the trigger `{trigger}` is not declared"))
        })?;
        // One pass over the whole file: the report, and the first events
        // for a preview.
        let mut reader = RecipientReader::open(recipients, schema, &options.recipients)?;
        let mut preview = Vec::new();
        while let Some(row) = reader.next_row()? {
            if let (crate::campaign::recipients::Row::Recipient(r), true) =
                (row, preview.len() < PREVIEW)
            {
                preview.push(r.to_event(&trigger));
            }
        }
        let report = reader.into_report();
        Ok(CampaignPlan {
            flow,
            trigger,
            sender,
            file: recipients.to_path_buf(),
            report,
            preview,
        })
    }

    /// The first recipient of a list, to try the flow on one number
    /// (`--test-recipient`): its event, with the phone replaced.
    pub fn test_recipient_event(
        &self,
        recipients: &Path,
        options: &CampaignOptions,
        phone: &str,
    ) -> Result<(CampaignPlan, Event), CampaignError> {
        let plan = self.plan_campaign(recipients, options)?;
        let programs = self.programs();
        let (program, _, _) = campaign_flow(&programs, Some(&plan.flow))?;
        let schema = &program.schemas().triggers[&plan.trigger];
        let mut reader = RecipientReader::open(recipients, schema, &options.recipients)?;
        let phone_field = reader.phone_field().to_string();
        let first = reader
            .by_ref()
            .next()
            .transpose()?
            .ok_or_else(|| CampaignError::Flow("the list has no valid row".to_string()))?;
        let mut event = first.to_event(&plan.trigger);
        event
            .fields
            .insert(phone_field, serde_json::Value::String(phone.to_string()));
        Ok((plan, event))
    }

    /// Starts a campaign: checks the whole list, then records the campaign
    /// and every row in one store transaction (nothing when the list has a
    /// problem). Returns its id; [`Engine::run_campaign`] sends.
    ///
    /// ```
    /// use flowc::campaign::runner::{CampaignOptions, CampaignOutcome};
    /// use flowc::providers::recording::Recorder;
    /// use flowc::runtime::Engine;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let recorder = Recorder::new();
    /// let engine = Engine::builder().whatsapp(recorder.whatsapp()).build();
    /// let mut compiler = flowc::check::Compiler::new();
    /// compiler.add_source("sale.flow", r#"
    ///     trigger campaign.sale { phone: Phone, name: String }
    ///     flow sale
    ///     on campaign.sale as c {
    ///         whatsapp.send_template(sender: "office", template: "sale", to: c.phone, variables: [c.name])
    ///     }
    /// "#);
    /// compiler.add_config("flow.toml", r#"
    ///     [senders.office]
    ///     phone_number_id = "106540352242922"
    ///     [templates.sale]
    ///     language = "en"
    ///     category = "marketing"
    ///     body = "Hi {{1}}, 20% off this week. Reply STOP to unsubscribe."
    /// "#);
    /// engine.load(compiler.check().into_result()?)?;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let list = dir.path().join("customers.csv");
    /// std::fs::write(&list, "phone,name\n+4915112345678,Anna\n0151/1234,Max\n")?;
    /// let (id, plan) = engine.start_campaign(&list, CampaignOptions::default()).await?;
    /// assert_eq!(plan.report.recipients, 1); // line 3 is skipped: not E.164
    /// assert_eq!(engine.run_campaign(&id).await?, CampaignOutcome::Finished);
    /// assert_eq!(recorder.templates()[0].to, "+4915112345678");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn start_campaign(
        &self,
        recipients: &Path,
        options: CampaignOptions,
    ) -> Result<(String, CampaignPlan), CampaignError> {
        let plan = self.plan_campaign(recipients, &options)?;
        let programs = self.programs();
        let (program, _, _) = campaign_flow(&programs, Some(&plan.flow))?;
        // A program loaded since the plan may not have the trigger any more.
        let schema = program
            .schemas()
            .triggers
            .get(&plan.trigger)
            .ok_or_else(|| {
                CampaignError::Flow(format!("the trigger `{}` is not declared", plan.trigger))
            })?;
        let mut reader = RecipientReader::open(recipients, schema, &options.recipients)?;
        let mut rows = Vec::with_capacity(usize::try_from(plan.report.rows).unwrap_or(0));
        while let Some(row) = reader.next_row()? {
            rows.push(match row {
                crate::campaign::recipients::Row::Recipient(r) => CampaignRecipient {
                    line: r.line,
                    phone: r.phone,
                    fields: r.fields,
                    state: RecipientState::Pending,
                    run_id: None,
                },
                crate::campaign::recipients::Row::Skipped(s) => CampaignRecipient {
                    line: s.line,
                    phone: String::new(),
                    fields: serde_json::Map::new(),
                    state: RecipientState::SkippedBad,
                    run_id: None,
                },
                crate::campaign::recipients::Row::Duplicate(d) => CampaignRecipient {
                    line: d.line,
                    phone: d.phone,
                    fields: serde_json::Map::new(),
                    state: RecipientState::Duplicate,
                    run_id: None,
                },
            });
        }
        let now = self.inner.clock.now();
        let id = options
            .id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", plan.flow, now.format("%Y%m%d-%H%M%S")));
        let quiet_hours = options
            .quiet_hours
            .or_else(|| program.config().campaigns.quiet_hours_for(&plan.sender));
        let campaign = Campaign {
            id: id.clone(),
            flow: plan.flow.clone(),
            trigger: plan.trigger.clone(),
            sender: plan.sender.clone(),
            state: CampaignState::Running,
            pause_reason: None,
            quiet_hours: quiet_hours.map(|q| q.to_string()),
            source: recipients.display().to_string(),
            created_at: now,
        };
        self.inner.store.create_campaign(campaign, rows).await?;
        Ok((id, plan))
    }

    /// A campaign and its counts.
    pub async fn campaign_status(&self, id: &str) -> Result<CampaignStatus, CampaignError> {
        match self.inner.store.campaign(id).await? {
            Some((campaign, counts)) => Ok(CampaignStatus { campaign, counts }),
            None => Err(CampaignError::Unknown(id.to_string())),
        }
    }

    /// Every campaign with its counts, oldest first.
    pub async fn campaign_statuses(&self) -> Result<Vec<CampaignStatus>, CampaignError> {
        let mut all = Vec::new();
        for campaign in self.inner.store.campaigns().await? {
            all.push(self.campaign_status(&campaign.id).await?);
        }
        Ok(all)
    }

    /// Pauses a running campaign; `reason` shows in its status.
    pub async fn pause_campaign(
        &self,
        id: &str,
        reason: Option<String>,
    ) -> Result<(), CampaignError> {
        self.change_campaign(
            id,
            &[CampaignState::Running],
            CampaignState::Paused,
            reason,
            "paused",
        )
        .await
    }

    /// Resumes a paused campaign ([`Engine::run_campaign`] goes on with it).
    pub async fn resume_campaign(&self, id: &str) -> Result<(), CampaignError> {
        self.change_campaign(
            id,
            &[CampaignState::Paused],
            CampaignState::Running,
            None,
            "resumed",
        )
        .await
    }

    /// Cancels a running or paused campaign for good: its pending
    /// recipients are never started.
    pub async fn cancel_campaign(&self, id: &str) -> Result<(), CampaignError> {
        self.change_campaign(
            id,
            &[CampaignState::Running, CampaignState::Paused],
            CampaignState::Cancelled,
            None,
            "cancelled",
        )
        .await
    }

    async fn change_campaign(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
        reason: Option<String>,
        wanted: &'static str,
    ) -> Result<(), CampaignError> {
        if self
            .inner
            .store
            .set_campaign_state(id, from, to, reason)
            .await?
        {
            return Ok(());
        }
        let status = self.campaign_status(id).await?;
        Err(CampaignError::State {
            id: id.to_string(),
            state: status.campaign.state,
            wanted,
        })
    }

    /// Drives a campaign until every recipient is handled (it is then
    /// finished), or it is paused or cancelled. Recipients go in line
    /// order, each started once across restarts and processes; one in quiet
    /// hours waits for their end while the others go on; the sender's tier
    /// holds (counted from the store, so it survives restarts); runs are
    /// paced by the engine's limits. Waits on the engine's clock.
    pub async fn run_campaign(&self, id: &str) -> Result<CampaignOutcome, CampaignError> {
        let status = self.campaign_status(id).await?;
        let campaign = status.campaign;
        let programs = self.programs();
        let (program, _, _) = campaign_flow(&programs, Some(&campaign.flow))?;
        let quiet_hours = match &campaign.quiet_hours {
            Some(text) => {
                Some(
                    text.parse::<QuietHours>()
                        .map_err(|e| CampaignError::Settings {
                            id: id.to_string(),
                            problem: e.to_string(),
                        })?,
                )
            }
            None => None,
        };
        let limit = program.config().campaigns.tier_for(&campaign.sender);
        // The quality guard on the rating read before each claim: a
        // campaign does not begin below the threshold; once begun, a drop
        // from the rating it had when this drive began pauses it, so a
        // person's resume holds until the next drop.
        let guard = &program.config().campaigns.quality;
        let mut last_rating = match status.counts.started {
            0 => None,
            _ => self.sender_rating(program, &campaign.sender).await,
        };

        let drive = Arc::new(Drive {
            campaign,
            quiet_hours,
            limit,
        });
        let lease = self.inner.limits.run_lease;
        // Whether the tier may be full: at first it may (other campaigns of
        // the sender), then only after a recipient found it full.
        let mut tier_may_be_full = true;
        loop {
            let Some((campaign, _)) = self.inner.store.campaign(id).await? else {
                return Err(CampaignError::Unknown(id.to_string()));
            };
            match campaign.state {
                CampaignState::Running => {}
                CampaignState::Paused => return Ok(CampaignOutcome::Paused(campaign.pause_reason)),
                CampaignState::Cancelled => return Ok(CampaignOutcome::Cancelled),
                CampaignState::Finished => return Ok(CampaignOutcome::Finished),
            }
            if let Some(rating) = self.sender_rating(program, &drive.campaign.sender).await {
                if let QualityDecision::Pause { reason } = guard.on_rating(last_rating, rating) {
                    let reason = format!("sender `{}`: {reason}", drive.campaign.sender);
                    self.pause_for_quality(program, Some(&drive.campaign.sender), &reason)
                        .await?;
                    continue;
                }
                last_rating = Some(rating);
            }
            let now = self.inner.clock.now();
            // A full tier claims nothing until a slot frees. Each start
            // takes its slot in the store (`take_tier_slot`), so what other
            // processes start for the sender counts too; this read only
            // spares claims that would be deferred. It reads every start of
            // the last 24 hours, so it is made only when the tier may be
            // full, not before every batch of a campaign that fits.
            if tier_may_be_full && limit.max().is_some() {
                let window = self.tier_window(&drive.campaign.sender, limit, now).await?;
                let slot = window.next_slot(now);
                if slot > now {
                    self.inner
                        .clock
                        .sleep_until(slot.min(now + LOOK_AGAIN))
                        .await;
                    continue;
                }
                tier_may_be_full = false;
            }
            let claimed = self
                .inner
                .store
                .claim_campaign_recipients(id, now, BATCH, now + lease)
                .await?;
            if claimed.is_empty() {
                match self.inner.store.next_campaign_recipient(id).await? {
                    Some(next) => {
                        let wake = next.max(now).min(now + LOOK_AGAIN);
                        self.inner.clock.sleep_until(wake).await;
                        continue;
                    }
                    None => {
                        self.inner
                            .store
                            .set_campaign_state(
                                id,
                                &[CampaignState::Running],
                                CampaignState::Finished,
                                None,
                            )
                            .await?;
                        continue;
                    }
                }
            }
            let mut tasks = tokio::task::JoinSet::new();
            for recipient in claimed {
                let (engine, drive) = (self.clone(), drive.clone());
                tasks.spawn(async move { engine.handle_recipient(&drive, recipient).await });
            }
            let mut first_error = None;
            while let Some(joined) = tasks.join_next().await {
                let result = joined.map_err(|e| CampaignError::Crashed {
                    id: id.to_string(),
                    reason: e.to_string(),
                });
                match result.and_then(|handled| handled) {
                    Ok(Handled::TierFull) => tier_may_be_full = true,
                    Ok(_) => {}
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = first_error {
                return Err(error);
            }
        }
    }

    /// The sender's tier window as the store knows it: the campaign runs
    /// started in the last 24 hours.
    async fn tier_window(
        &self,
        sender: &str,
        limit: TierLimit,
        now: DateTime<Utc>,
    ) -> Result<TierWindow, CampaignError> {
        let starts = self
            .inner
            .store
            .campaign_starts(sender, now - chrono::Duration::hours(24))
            .await?;
        let mut window = TierWindow::new(limit);
        for start in starts {
            window.record_for(&start.phone, start.at);
        }
        Ok(window)
    }

    /// One claimed recipient: skipped if opted out, deferred in quiet hours
    /// or when the tier is full, else started.
    async fn handle_recipient(
        &self,
        drive: &Drive,
        recipient: CampaignRecipient,
    ) -> Result<Handled, CampaignError> {
        let store = &self.inner.store;
        let campaign = &drive.campaign;
        let now = self.inner.clock.now();
        if store.opted_out(&recipient.phone).await? {
            store
                .finish_campaign_recipient(
                    &campaign.id,
                    recipient.line,
                    RecipientState::SkippedOptedOut,
                    None,
                    now,
                )
                .await?;
            return Ok(Handled::Skipped);
        }
        if let Some(quiet) = &drive.quiet_hours {
            let zone = customer_zone(None, &recipient.phone, chrono_tz::UTC).zone;
            let allowed = quiet.next_allowed(now, zone);
            if allowed > now {
                store
                    .defer_campaign_recipient(&campaign.id, recipient.line, allowed)
                    .await?;
                return Ok(Handled::Deferred);
            }
        }
        // A slot of the tier, taken in the store: other processes driving
        // the sender's campaigns take theirs from the same count.
        let full_until = match drive.limit.max() {
            Some(limit) => {
                store
                    .take_tier_slot(&campaign.id, recipient.line, now, limit)
                    .await?
            }
            None => None,
        };
        if let Some(slot) = full_until {
            store
                .defer_campaign_recipient(&campaign.id, recipient.line, slot)
                .await?;
            return Ok(Handled::TierFull);
        }
        let event_id = format!("campaign:{}:{}", campaign.id, recipient.line);
        let event = Event {
            trigger: campaign.trigger.clone(),
            fields: recipient.fields,
        };
        let reports = match self
            .dispatch_once_to(&campaign.flow, &event_id, event)
            .await
        {
            Ok(reports) => reports,
            // The row was checked against the trigger when the campaign
            // started; a flow changed since then may not take it. It is
            // skipped like a bad row, not tried again and again.
            Err(EngineError::Event(error)) => {
                self.inner.write_log(
                    &campaign.flow,
                    "error",
                    &format!(
                        "campaign {} line {}: the row does not fit the trigger: {error}",
                        campaign.id, recipient.line
                    ),
                );
                store
                    .finish_campaign_recipient(
                        &campaign.id,
                        recipient.line,
                        RecipientState::SkippedBad,
                        None,
                        now,
                    )
                    .await?;
                return Ok(Handled::Skipped);
            }
            Err(error) => return Err(error.into()),
        };
        let run_id = reports
            .first()
            .map(|r| r.id.clone())
            .unwrap_or_else(|| event_id.clone());
        store
            .finish_campaign_recipient(
                &campaign.id,
                recipient.line,
                RecipientState::Started,
                Some(run_id),
                now,
            )
            .await?;
        Ok(Handled::Started)
    }

    /// Drives every running campaign in the store once to its end or pause,
    /// one after the other: what a host calls now and then (`flowc serve`
    /// does, so a campaign whose `flowc campaign start` was killed goes on).
    pub async fn run_campaigns(&self) -> Result<usize, CampaignError> {
        let mut driven = 0;
        for campaign in self.inner.store.campaigns().await? {
            if campaign.state == CampaignState::Running {
                self.run_campaign(&campaign.id).await?;
                driven += 1;
            }
        }
        Ok(driven)
    }

    /// Judges a `phone_number_quality_update` by the `[campaigns.quality]`
    /// guard; on a pause, pauses the running campaigns of the sender with
    /// that number (every sender's when the number is not in flow.toml) and
    /// tells the team through `notify`. Returns the paused campaigns' ids.
    pub async fn on_quality_update(
        &self,
        update: &QualityUpdate,
    ) -> Result<Vec<String>, CampaignError> {
        let programs = self.programs();
        let Some(program) = programs.first() else {
            return Ok(Vec::new());
        };
        let config = program.config();
        let QualityDecision::Pause { reason } = config.campaigns.quality.on_update(update) else {
            return Ok(Vec::new());
        };
        let digits = |text: &str| {
            text.chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        };
        let number = digits(&update.display_phone_number);
        let sender = config
            .senders
            .iter()
            .find(|(_, s)| s.phone.as_deref().is_some_and(|p| digits(p) == number))
            .map(|(name, _)| name.clone());
        self.pause_for_quality(program, sender.as_deref(), &reason)
            .await
    }

    /// Pauses the running campaigns of `sender` (of every sender when
    /// `None`) with `reason`, and tells the team; the paused campaigns' ids.
    async fn pause_for_quality(
        &self,
        program: &Program,
        sender: Option<&str>,
        reason: &str,
    ) -> Result<Vec<String>, CampaignError> {
        let mut paused = Vec::new();
        for campaign in self.inner.store.campaigns().await? {
            let matches = sender.is_none_or(|s| s == campaign.sender);
            if !matches || campaign.state != CampaignState::Running {
                continue;
            }
            if self
                .inner
                .store
                .set_campaign_state(
                    &campaign.id,
                    &[CampaignState::Running],
                    CampaignState::Paused,
                    Some(reason.to_string()),
                )
                .await?
            {
                paused.push(campaign.id);
            }
        }
        if !paused.is_empty() {
            let message = format!(
                "Campaigns paused ({}): {reason}. Resume with `flowc campaign resume ID` once the quality recovers.",
                paused.join(", ")
            );
            let channel = &program.config().campaigns.notify;
            if let Err(error) = self.inner.notify.notify(channel, &message).await {
                self.inner
                    .write_log("campaigns", "error", &format!("notify failed: {error}"));
            }
        }
        Ok(paused)
    }

    /// The sender's quality rating as the WhatsApp provider reports it now
    /// (the Cloud API caches it for a minute); `None` when it cannot be
    /// read, which pauses nothing.
    async fn sender_rating(&self, program: &Program, sender: &str) -> Option<QualityRating> {
        let config = program.config().senders.get(sender)?;
        let reference = SenderRef {
            name: sender.to_string(),
            phone_number_id: config.phone_number_id.clone(),
        };
        let read = tokio::time::timeout(
            self.inner.limits.provider_timeout,
            self.inner.whatsapp.sender_status(&reference),
        )
        .await;
        match read {
            Ok(Ok(status)) => Some(QualityRating::from_api(&status.quality)),
            _ => None,
        }
    }
}

/// The flow a campaign starts and its trigger: `wanted`, or the one flow
/// whose handler's trigger takes a recipient list (has a Phone field and
/// is not a WhatsApp trigger).
fn campaign_flow<'p>(
    programs: &'p [Arc<Program>],
    wanted: Option<&str>,
) -> Result<(&'p Program, String, String), CampaignError> {
    let mut candidates = Vec::new();
    for program in programs {
        for flow in program.flows() {
            if wanted.is_some_and(|w| w != flow.name) {
                continue;
            }
            for handler in &flow.handlers {
                let trigger = &handler.trigger.name;
                let Some(schema) = program.schemas().triggers.get(trigger) else {
                    continue;
                };
                let has_phone = schema
                    .fields
                    .fields
                    .iter()
                    .any(|f| matches!(f.ty.non_optional(), crate::check::types::Ty::Phone));
                if has_phone && !trigger.starts_with("whatsapp.") {
                    candidates.push((program.as_ref(), flow.name.clone(), trigger.clone()));
                }
            }
        }
    }
    candidates.dedup_by(|a, b| a.1 == b.1 && a.2 == b.2);
    match (candidates.len(), wanted) {
        (1, _) => Ok(candidates.remove(0)),
        (0, Some(name)) => {
            let exists = programs.iter().any(|p| p.flow(name).is_some());
            Err(CampaignError::Flow(if exists {
                format!(
                    "flow `{name}` has no handler whose trigger takes a recipient list: \
                     declare a trigger with a Phone field, e.g. `trigger campaign.spring_sale {{ phone: Phone }}`"
                )
            } else {
                format!("no flow is named `{name}`")
            }))
        }
        (0, None) => Err(CampaignError::Flow(
            "no flow can take a recipient list: declare a trigger with a Phone field, e.g. \
             `trigger campaign.spring_sale { phone: Phone }`, and a flow `on` it"
                .to_string(),
        )),
        _ => Err(CampaignError::Flow(format!(
            "several flows can take a recipient list ({}): choose one with --flow",
            candidates
                .iter()
                .map(|(_, flow, trigger)| format!("`{flow}` on `{trigger}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The campaign's sender: `wanted`, or the only sender of flow.toml.
/// The sender whose tier, quiet hours and quality apply: `wanted`, else
/// the only one in flow.toml, else the only one the flow names.
fn campaign_sender(
    program: &Program,
    flow: &str,
    wanted: Option<&str>,
) -> Result<String, CampaignError> {
    let senders = &program.config().senders;
    let named: Vec<&String> = program
        .flow(flow)
        .map(|f| f.named_senders.iter().collect())
        .unwrap_or_default();
    match wanted {
        Some(name) if senders.contains_key(name) => Ok(name.to_string()),
        Some(name) => Err(CampaignError::Sender(format!(
            "unknown sender `{name}`: flow.toml has {}",
            names(senders.keys())
        ))),
        None => match senders.len() {
            1 => Ok(senders.keys().next().cloned().unwrap_or_default()),
            0 => Err(CampaignError::Sender(
                "flow.toml lists no senders: add `[senders.NAME]` with its phone_number_id"
                    .to_string(),
            )),
            _ => match named.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(CampaignError::Sender(format!(
                    "flow.toml has several senders ({}) and the flow `{flow}` does not name \
                     exactly one: choose the campaign's with --sender",
                    names(senders.keys())
                ))),
            },
        },
    }
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let listed: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if listed.is_empty() {
        "none".to_string()
    } else {
        listed.join(", ")
    }
}
