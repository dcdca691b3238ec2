//! The engine: providers, loaded programs, and the loop that starts, suspends
//! and resumes runs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use thiserror::Error;

use super::conversations::{self, event_sender, sender_field, sender_of, via_matches};
use super::event::{Event, EventError};
use super::interp::{self, Outcome};
use super::observe::{NoObserver, Observer, RunEvent};
use super::pacing::{Limits, Pacer};
use super::run::{Frame, Run};
use super::value::Value;
use super::ActionError;
use crate::check::schema::TriggerSchema;
use crate::check::types::FieldTy;
use crate::check::{CheckError, Compiler, Program};
use crate::providers::console::Console;
use crate::providers::scripted_ai::ScriptedAi;
use crate::providers::{
    Ai, Clock, Inbound, InboundCheck, InboundQuery, Log, MemoryStore, Notify, RunOutcome,
    RunRecord, Store, StoreError, StoredRun, SystemClock, WaitKey, WaitKeyRef, WhatsApp,
};

/// A host-implemented action (declared with `action` in a `.flow` file).
pub trait ActionHandler: Send + Sync {
    /// Runs the action with its arguments by parameter name (defaults filled
    /// in, left-out optionals as `none`).
    fn call(
        &self,
        args: HashMap<String, Value>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ActionError>> + Send>>;
}

impl<F, Fut> ActionHandler for F
where
    F: Fn(HashMap<String, Value>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, ActionError>> + Send + 'static,
{
    fn call(
        &self,
        args: HashMap<String, Value>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ActionError>> + Send>> {
        Box::pin(self(args))
    }
}

/// Limits that keep runs finite and providers honest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineLimits {
    /// Statements one run may execute in all.
    pub step_budget: u64,
    /// How long one provider call may take.
    pub provider_timeout: std::time::Duration,
    /// Sender throughput and recipient pacing.
    pub pacing: Limits,
    /// How long a started run is kept from other workers while it runs. The
    /// run is saved before its first statement, due at `now + run_lease`: if
    /// the process dies mid-run, the run goes on once the lease ends.
    pub run_lease: chrono::Duration,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            step_budget: 10_000,
            // Above the HTTP providers' own limits (15 s, 30 s): this one only
            // catches providers that hang without one.
            provider_timeout: std::time::Duration::from_secs(45),
            pacing: Limits::default(),
            run_lease: chrono::Duration::minutes(5),
        }
    }
}

/// Why dispatching or resuming failed. Action errors never end up here: they
/// are the run's business (caught, or recorded as the run's outcome).
#[derive(Debug, Error)]
pub enum EngineError {
    /// The event does not fit its trigger.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored run could not be resumed.
    #[error("run {id} cannot be resumed: {reason}")]
    Resume {
        /// The run.
        id: String,
        /// Why.
        reason: String,
    },
    /// Flows call actions that have no implementation.
    #[error(
        "no implementation for {}: register them with `EngineBuilder::action`",
        .0.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
    )]
    MissingActions(Vec<String>),
    /// No program is loaded.
    #[error("no program is loaded: call `Engine::load` first")]
    NoProgram,
}

/// What became of a run after one step of the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    /// It is waiting until this instant, kept in the store.
    Suspended(DateTime<Utc>),
    /// It ended.
    Finished(RunOutcome),
    /// Another task of this engine is running it already.
    Running,
    /// It cannot go on with the loaded programs: its flow is not loaded, or
    /// its saved state or the event it received no longer fits (a deploy
    /// changed them). It is back in the store unchanged, due again at
    /// `retry_at`, so that a deploy that can run it takes it up; nothing of
    /// it is lost, and the other due runs go on meanwhile.
    NotResumed {
        /// Why, in words.
        reason: String,
        /// When it is due again.
        retry_at: DateTime<Utc>,
    },
}

/// One run's report from [`Engine::dispatch`] or a resume.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The run's id.
    pub id: String,
    /// The flow.
    pub flow: String,
    /// Where it stands now.
    pub status: RunStatus,
}

pub(crate) struct Inner {
    pub(crate) whatsapp: Arc<dyn WhatsApp>,
    pub(crate) ai: Arc<dyn Ai>,
    pub(crate) notify: Arc<dyn Notify>,
    pub(crate) log: Arc<dyn Log>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) observer: Arc<dyn Observer>,
    /// Whether an observer was installed: without one, results nobody uses
    /// are not built.
    pub(crate) observed: bool,
    pub(crate) actions: HashMap<String, Arc<dyn ActionHandler>>,
    pub(crate) limits: EngineLimits,
    pub(crate) pacer: Pacer,
    /// Whether the store paces sends across processes
    /// ([`Store::paces_sends`](crate::providers::Store::paces_sends)).
    pub(crate) store_paces: bool,
    /// Where `whatsapp.download_media` saves files.
    pub(crate) media_dir: std::path::PathBuf,
    /// Whether an event that answered a `wait for` also starts flows.
    replies_start_flows: bool,
    /// The opt-out words of the loaded programs (see `super::campaigns`).
    pub(crate) campaign_rules: super::campaigns::CampaignRules,
    /// Replaced whole on `load`, so a dispatch takes the current list with
    /// one reference count instead of copying it.
    programs: RwLock<Arc<[Arc<Program>]>>,
    next_id: AtomicU64,
    /// Runs this engine is executing now: the timer does not take a second
    /// copy of one whose lease ran out while it waits for a send slot.
    /// Keyed by run ids (engine-made): the fast FxHash.
    executing: std::sync::Mutex<rustc_hash::FxHashSet<Arc<str>>>,
}

/// Marks a run as executing in this engine while it lives.
struct Executing<'a> {
    inner: &'a Inner,
    /// Shared with the set: one copy of the id, not two.
    id: Arc<str>,
}

impl<'a> Executing<'a> {
    /// `None` when the run is executing already.
    fn start(inner: &'a Inner, id: &str) -> Option<Executing<'a>> {
        let mut executing = match inner.executing.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if executing.contains(id) {
            return None;
        }
        let id: Arc<str> = Arc::from(id);
        executing.insert(id.clone());
        Some(Executing { inner, id })
    }
}

impl Drop for Executing<'_> {
    fn drop(&mut self) {
        let mut executing = match self.inner.executing.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        executing.remove(&*self.id);
    }
}

/// Runs checked flows.
///
/// ```
/// use flowc::runtime::{Engine, Event};
/// use flowc::providers::recording::Recorder;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let recorder = Recorder::new();
/// let engine = Engine::builder().notify(recorder.notify()).log(recorder.log()).build();
/// let program = engine.compile(r#"
///     flow hello
///     on call.ended as call {
///         notify("team", "call {call.call_id} ended: {call.outcome}")
///     }
/// "#).unwrap();
/// engine.load(program).unwrap();
/// let event = Event::new("call.ended", serde_json::json!({
///     "customer_phone": "+4915112345678", "agent_name": "Jonas", "outcome": "no_answer",
///     "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c-1",
/// }));
/// engine.dispatch(event).await.unwrap();
/// assert_eq!(recorder.notifications()[0].1, "call c-1 ended: no_answer");
/// # });
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Builds an [`Engine`]; every provider has a default that needs no account:
/// the dry-run console for WhatsApp, notifications and logs, the scripted AI,
/// the system clock and the in-memory store.
pub struct EngineBuilder {
    whatsapp: Option<Arc<dyn WhatsApp>>,
    ai: Option<Arc<dyn Ai>>,
    notify: Option<Arc<dyn Notify>>,
    log: Option<Arc<dyn Log>>,
    clock: Option<Arc<dyn Clock>>,
    store: Option<Arc<dyn Store>>,
    observer: Option<Arc<dyn Observer>>,
    actions: HashMap<String, Arc<dyn ActionHandler>>,
    limits: EngineLimits,
    media_dir: Option<std::path::PathBuf>,
    replies_start_flows: bool,
}

impl Inner {
    /// Tells the observer, which must not take the engine down with it.
    pub(crate) fn observe(&self, event: &RunEvent<'_>) {
        let observer = &self.observer;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| observer.event(event)));
    }

    /// Writes a `log(...)` line; a log provider that panics loses the line,
    /// not the run.
    pub(crate) fn write_log(&self, flow: &str, level: &str, message: &str) {
        let log = &self.log;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            log.log(flow, level, message)
        }));
    }
}

impl EngineBuilder {
    /// The WhatsApp provider.
    pub fn whatsapp(mut self, provider: impl WhatsApp + 'static) -> Self {
        self.whatsapp = Some(Arc::new(provider));
        self
    }

    /// The AI provider.
    pub fn ai(mut self, provider: impl Ai + 'static) -> Self {
        self.ai = Some(Arc::new(provider));
        self
    }

    /// Where `notify(...)` goes.
    pub fn notify(mut self, provider: impl Notify + 'static) -> Self {
        self.notify = Some(Arc::new(provider));
        self
    }

    /// Where `log(...)` goes.
    pub fn log(mut self, provider: impl Log + 'static) -> Self {
        self.log = Some(Arc::new(provider));
        self
    }

    /// The clock ([`crate::providers::VirtualClock`] for tests).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The clock, shared with other parts of the host.
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The store.
    pub fn store(mut self, store: impl Store + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The store, shared with other parts of the host.
    pub fn shared_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Receives every step of every run (for `flowc run`'s trace, metrics).
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Implements an action declared in a `.flow` file.
    ///
    /// ```
    /// use flowc::runtime::{Engine, Event, Value};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let engine = Engine::builder()
    ///     .action("crm.score", |args: std::collections::HashMap<String, Value>| async move {
    ///         let phone = args.get("phone").map(ToString::to_string).unwrap_or_default();
    ///         Ok(Value::Int(if phone.starts_with("+49") { 80 } else { 20 }))
    ///     })
    ///     .build();
    /// let program = engine.compile(r#"
    ///     action crm.score(phone: Phone) -> Int
    ///     flow scoring
    ///     on call.ended as call {
    ///         let score = crm.score(call.customer_phone)
    ///         log("score {score}")
    ///     }
    /// "#)?;
    /// engine.load(program)?;
    /// let reports = engine.dispatch(Event::from_json(r#"{"trigger": "call.ended", "fields": {
    ///     "customer_phone": "+4915112345678", "agent_name": "Jonas", "outcome": "interested",
    ///     "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c-1"}}"#)?).await?;
    /// assert_eq!(reports.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn action(
        mut self,
        name: impl Into<String>,
        handler: impl ActionHandler + 'static,
    ) -> Self {
        self.actions.insert(name.into(), Arc::new(handler));
        self
    }

    /// Step budget, provider timeout and pacing.
    pub fn limits(mut self, limits: EngineLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Where `whatsapp.download_media` saves the files customers sent; by
    /// default `flowc-media` in the system's temporary directory.
    pub fn media_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.media_dir = Some(dir.into());
        self
    }

    /// Whether an event that answers a run waiting at `wait for` also
    /// starts the flows on its trigger (`[conversations]
    /// replies_start_flows` in flow.toml). Off by default: the reply is the
    /// waiting run's, so an assistant on `whatsapp.message_received` does
    /// not answer a questionnaire too. The customer's window is recorded
    /// either way.
    pub fn replies_start_flows(mut self, start: bool) -> Self {
        self.replies_start_flows = start;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        let console = Arc::new(Console::stdout());
        let store: Arc<dyn Store> = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        Engine {
            inner: Arc::new(Inner {
                whatsapp: self.whatsapp.unwrap_or_else(|| console.clone()),
                ai: self.ai.unwrap_or_else(|| Arc::new(ScriptedAi::default())),
                notify: self.notify.unwrap_or_else(|| console.clone()),
                log: self.log.unwrap_or_else(|| console.clone()),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                store_paces: store.paces_sends(),
                store,
                observed: self.observer.is_some(),
                observer: self.observer.unwrap_or_else(|| Arc::new(NoObserver)),
                actions: self.actions,
                pacer: Pacer::new(self.limits.pacing),
                limits: self.limits,
                media_dir: self
                    .media_dir
                    .unwrap_or_else(|| std::env::temp_dir().join("flowc-media")),
                replies_start_flows: self.replies_start_flows,
                campaign_rules: super::campaigns::CampaignRules::default(),
                programs: RwLock::new(Arc::from(Vec::new())),
                next_id: AtomicU64::new(1),
                executing: std::sync::Mutex::new(rustc_hash::FxHashSet::default()),
            }),
        }
    }
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            whatsapp: None,
            ai: None,
            notify: None,
            log: None,
            clock: None,
            store: None,
            observer: None,
            actions: HashMap::new(),
            limits: EngineLimits::default(),
            media_dir: None,
            replies_start_flows: false,
        }
    }

    /// Parses and checks one source with the standard declarations and no
    /// flow.toml. Use [`Compiler`] for several files or a configuration.
    pub fn compile(&self, source: &str) -> Result<Program, CheckError> {
        let mut compiler = Compiler::new();
        compiler.add_source("<source>", source);
        compiler.check().into_result()
    }

    /// Loads a program: its flows start on matching events from now on.
    ///
    /// Fails when a flow calls an action the host declared but did not
    /// implement with [`EngineBuilder::action`]: better now than in the
    /// middle of a customer's run.
    pub fn load(&self, program: Program) -> Result<(), EngineError> {
        let missing: Vec<String> = program
            .called_actions()
            .into_iter()
            .filter(|name| {
                !interp::BUILTIN_ACTIONS.contains(name) && !self.inner.actions.contains_key(*name)
            })
            .map(String::from)
            .collect();
        if !missing.is_empty() {
            return Err(EngineError::MissingActions(missing));
        }
        self.inner.campaign_rules.load(&program);
        let mut programs = match self.inner.programs.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut loaded = programs.to_vec();
        loaded.push(Arc::new(program));
        *programs = loaded.into();
        Ok(())
    }

    pub(crate) fn programs(&self) -> Arc<[Arc<Program>]> {
        match self.inner.programs.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Starts every flow whose trigger matches the event, and runs each
    /// until it finishes or waits. The event is checked against the trigger
    /// first; a bad event starts nothing.
    pub async fn dispatch(&self, event: Event) -> Result<Vec<RunReport>, EngineError> {
        self.record_opt_change(&event).await?;
        self.start_runs(event, None, None).await
    }

    /// Like [`Engine::dispatch`] for an event with a unique id (a WhatsApp
    /// message id, the host's idempotency key): its runs get ids derived
    /// from it, so dispatching the same event again after a crash resumes
    /// the same runs, and their sends are never made twice.
    ///
    /// ```
    /// use flowc::providers::recording::Recorder;
    /// use flowc::runtime::{Engine, Event};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let recorder = Recorder::new();
    /// let engine = Engine::builder().notify(recorder.notify()).build();
    /// engine.load(engine.compile(r#"
    ///     flow lost
    ///     on call.ended as call { notify("sales", "call {call.call_id} ended") }
    /// "#)?)?;
    /// let event = || Event::from_json(r#"{"trigger": "call.ended", "fields": {
    ///     "customer_phone": "+4915112345678", "agent_name": "Jonas", "outcome": "no_answer",
    ///     "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c-7"}}"#);
    /// engine.dispatch_once("phone-system:c-7", event()?).await?;
    /// engine.dispatch_once("phone-system:c-7", event()?).await?; // delivered again
    /// assert_eq!(recorder.notifications().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn dispatch_once(
        &self,
        event_id: &str,
        event: Event,
    ) -> Result<Vec<RunReport>, EngineError> {
        self.record_opt_change(&event).await?;
        self.start_runs(event, Some(event_id), None).await
    }

    /// Like [`Engine::dispatch_once`], but starts only the handlers of
    /// `flow`: what a campaign does, so that other flows on the same
    /// trigger do not run once per recipient too. Runs waiting for the
    /// event still get it.
    ///
    /// ```
    /// use flowc::providers::recording::Recorder;
    /// use flowc::runtime::{Engine, Event};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let recorder = Recorder::new();
    /// let engine = Engine::builder().notify(recorder.notify()).build();
    /// engine.load(engine.compile(r#"
    ///     trigger shop.sale { phone: Phone }
    ///     flow offer
    ///     on shop.sale as s { notify("sales", "offer to {s.phone}") }
    ///     flow audit
    ///     on shop.sale as s { notify("audit", "sale event") }
    /// "#)?)?;
    /// let event = Event::from_json(r#"{"trigger": "shop.sale", "fields": {"phone": "+4915112345678"}}"#)?;
    /// let reports = engine.dispatch_once_to("offer", "row-2", event).await?;
    /// assert_eq!(reports.len(), 1);
    /// assert_eq!(recorder.notifications()[0].0, "sales");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn dispatch_once_to(
        &self,
        flow: &str,
        event_id: &str,
        event: Event,
    ) -> Result<Vec<RunReport>, EngineError> {
        self.record_opt_change(&event).await?;
        self.start_runs(event, Some(event_id), Some(flow)).await
    }

    async fn start_runs(
        &self,
        mut event: Event,
        event_id: Option<&str>,
        only_flow: Option<&str>,
    ) -> Result<Vec<RunReport>, EngineError> {
        let programs = self.programs();
        if programs.is_empty() {
            return Err(EngineError::NoProgram);
        }
        // A `debounce` handler collects the event as received: its fields
        // are kept before they are moved into values.
        let raw_fields =
            conversations::debounces(&programs, &event.trigger).then(|| event.fields.clone());
        // The field runs at a `wait for` match this trigger's events by.
        let correlation: Option<&str> = programs.iter().find_map(|p| {
            p.schemas()
                .triggers
                .get(&event.trigger)?
                .correlate
                .as_deref()
        });
        let only = programs.len() == 1;
        // Runs waiting for the event receive its JSON, which is built only
        // when the store says one may (most messages answer no run). With
        // one program the event's texts move into its value below, so then
        // the store is asked first, with the texts as received: the same
        // texts the value will hold.
        let mut json = None;
        let mut asked_early = None;
        let trigger = programs[0].schemas().triggers.get(&event.trigger);
        if let (true, Some(trigger), Some(_)) = (only, trigger, correlation) {
            let now = self.inner.clock.now();
            match inbound_query_as_received(trigger, &event, correlation, event_id, now) {
                Some(query) => {
                    let check = self.inner.store.inbound_check(query).await?;
                    if check.may_deliver {
                        json = serde_json::to_value(&event).ok();
                    }
                    asked_early = Some((check, now));
                }
                None => json = serde_json::to_value(&event).ok(),
            }
        }
        // Each program checks the event against its own declarations; a
        // trigger no program declares is an error, not silence. A program's
        // value stays here if none of its handlers takes it.
        let mut checked: Vec<(&Arc<Program>, Option<Value>)> = Vec::with_capacity(programs.len());
        let mut first_error = None;
        for program in programs.iter() {
            // With one program (the usual case), the event's texts are moved
            // into its value: the same checks, no copies.
            let value = if only {
                event.take_value(program.schemas())
            } else {
                event.to_value(program.schemas())
            };
            match value {
                Ok(value) => checked.push((program, Some(value))),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if checked.is_empty() {
            return Err(first_error.map_or(EngineError::NoProgram, EngineError::Event));
        }
        // A conversation handed over to a person starts nothing and wakes
        // no waiting run: the event only opens the window.
        let (check, now) = match asked_early {
            Some(asked) => asked,
            None => {
                let now = self.inner.clock.now();
                let conversation = self.conversation(&checked, &event.trigger);
                let key = correlation.and_then(|field| {
                    checked
                        .iter()
                        .find_map(|(_, value)| value.as_ref()?.field(field).map(key_text))
                });
                let query = InboundQuery {
                    conversation,
                    wait: key.as_deref().map(|key| WaitKeyRef {
                        trigger: &event.trigger,
                        key,
                    }),
                    event_id,
                    now,
                };
                let check = if query.conversation.is_none() && query.wait.is_none() {
                    InboundCheck::default()
                } else {
                    self.inner.store.inbound_check(query).await?
                };
                (check, now)
            }
        };
        let held = check.paused;
        // The conversation's names are only copied when they are used.
        let conversation = (held || raw_fields.is_some())
            .then(|| self.conversation(&checked, &event.trigger))
            .flatten()
            .map(|(customer, sender)| (customer.to_string(), sender.to_string()));
        if let (true, Some((customer, sender))) = (held, &conversation) {
            self.observe_held(&event.trigger, customer, sender, now);
        }
        // Runs waiting for this event get it first.
        let mut reports = Vec::new();
        let mut answered = false;
        if let (Some(field), false, true) = (correlation, held, check.may_deliver) {
            let key = checked
                .iter()
                .find_map(|(_, value)| value.as_ref()?.field(field).map(interp::correlation_key));
            // With several programs the event kept its texts.
            if json.is_none() && !only {
                json = serde_json::to_value(&event).ok();
            }
            if let (Some(key), Some(json)) = (key, json) {
                let wait = WaitKey {
                    trigger: event.trigger.clone(),
                    key,
                };
                let now = self.inner.clock.now();
                let delivery = self
                    .inner
                    .store
                    .deliver_to_waiting(&wait, event_id, json, now)
                    .await?;
                answered = delivery.answered;
                // The answer opened the customer's window: recorded before
                // the runs go on, so that their free text may answer it.
                if !delivery.runs.is_empty() {
                    let inbound = checked.iter().find_map(|(program, value)| {
                        self.window(program, &event.trigger, value.as_ref()?)
                    });
                    if let Some(inbound) = inbound {
                        self.inner
                            .store
                            .record_inbound(inbound.customer, inbound.sender, inbound.at)
                            .await?;
                    }
                }
                for stored in delivery.runs {
                    reports.push(self.resume(stored).await?);
                }
            }
        }
        let start_flows = !held && (!answered || self.inner.replies_start_flows);
        // Every run the event starts is built and saved before any of them
        // runs, together with the customer's window: one store call (one
        // transaction in a durable store) instead of several per run.
        let mut starting: Vec<(&Arc<Program>, Run)> = Vec::new();
        for (program, value) in checked.iter_mut().filter(|_| start_flows) {
            let program = *program;
            // `via`: the sender the event came to; only read when a handler
            // names senders or collects bursts.
            let wanted = raw_fields.is_some()
                || program
                    .handlers_for(&event.trigger)
                    .any(|(_, h)| !h.via.is_empty());
            let sender: Option<String> = value
                .as_ref()
                .filter(|_| wanted)
                .and_then(|v| event_sender(program, &event.trigger, v))
                .map(str::to_string);
            if let (Some(fields), Some((customer, _))) = (&raw_fields, &conversation) {
                self.collect_bursts(
                    program,
                    &event.trigger,
                    fields,
                    customer,
                    sender.as_deref(),
                    event_id,
                )
                .await?;
            }
            let mut matching = handlers(program, &event.trigger, sender.as_deref())
                .filter(|(flow, _, _)| only_flow.is_none_or(|only| only == *flow))
                .peekable();
            while let Some((flow, handler_index, binding)) = matching.next() {
                // The last handler takes the event's value, the others a copy.
                let bound = if matching.peek().is_none() {
                    value.take().unwrap_or(Value::None)
                } else {
                    value.clone().unwrap_or(Value::None)
                };
                let now = self.inner.clock.now();
                let id = match event_id {
                    Some(event_id) => format!("{event_id}#{flow}#{handler_index}"),
                    None => self.new_run_id(now),
                };
                // Room for a few nested blocks without growing.
                let mut frames = Vec::with_capacity(4);
                frames.push(Frame {
                    path: Vec::new(),
                    next: 0,
                    vars: vec![(binding.to_string(), bound)],
                    attempt: 0,
                });
                let run = Run {
                    id,
                    flow: flow.to_string(),
                    handler: handler_index,
                    trigger: event.trigger.clone(),
                    started_at: now,
                    frames,
                    steps: 0,
                };
                starting.push((program, run));
            }
        }
        // The window is recorded even when no handler takes the event.
        let inbound = checked.iter().find_map(|(program, unbound)| {
            let value = match unbound {
                Some(value) => value,
                None => starting
                    .iter()
                    .find(|(p, _)| Arc::ptr_eq(p, program))
                    .and_then(|(_, run)| bound_value(run))?,
            };
            self.window(program, &event.trigger, value)
        });
        // Saved before they run, under a lease: a crash from here on loses
        // nothing.
        let lease = self.inner.limits.run_lease;
        let beginning: Vec<(&Run, DateTime<Utc>)> = starting
            .iter()
            .map(|(_, run)| (run, run.started_at + lease))
            .collect();
        // Dispatched again (a crash before the event left the inbox): a run
        // that exists goes on from the store, and is not started afresh.
        let kept = self
            .inner
            .store
            .begin_runs_from(inbound, &beginning, event_id.is_some())
            .await?;
        if kept.len() != starting.len() {
            return Err(EngineError::Store(StoreError::Backend(format!(
                "the store answered for {} of {} runs",
                kept.len(),
                starting.len()
            ))));
        }
        reports.reserve(starting.len());
        for ((program, run), kept) in starting.into_iter().zip(kept) {
            if !kept {
                continue;
            }
            self.inner.observe(&RunEvent::Started {
                run: &run.id,
                flow: &run.flow,
                trigger: &event.trigger,
                at: run.started_at,
            });
            reports.push(self.advance(program, run, None).await?);
        }
        Ok(reports)
    }

    /// The customer and the sender of the conversation an event belongs
    /// to, from the first checked value whose trigger opens windows.
    fn conversation<'v>(
        &self,
        checked: &'v [(&Arc<Program>, Option<Value>)],
        trigger: &str,
    ) -> Option<(&'v str, &'v str)> {
        checked.iter().find_map(|(program, value)| {
            let inbound = self.window(program, trigger, value.as_ref()?)?;
            Some((inbound.customer, inbound.sender))
        })
    }

    /// The 24-hour window a customer's message opens with the sender, if
    /// the trigger opens windows.
    pub(crate) fn window<'v>(
        &self,
        program: &Program,
        trigger: &str,
        value: &'v Value,
    ) -> Option<Inbound<'v>> {
        let schema = program.schemas().triggers.get(trigger)?;
        let field = schema.opens_window.as_ref()?;
        let customer = value.field(field).and_then(Value::as_str)?;
        let sender = sender_of(schema, value).unwrap_or("");
        // The window opens when the customer wrote; a timestamp from the
        // future (a skewed clock) counts as now.
        let now = self.inner.clock.now();
        let at = match value.field("timestamp") {
            Some(Value::DateTime(t)) => t.with_timezone(&Utc).min(now),
            _ => now,
        };
        Some(Inbound {
            customer,
            sender,
            at,
        })
    }

    pub(crate) fn new_run_id(&self, now: DateTime<Utc>) -> String {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        // `run-{millis}-{n}`, without the formatting machinery.
        let mut id = String::with_capacity(36);
        id.push_str("run-");
        let millis = now.timestamp_millis();
        if millis < 0 {
            id.push('-');
        }
        interp::push_number(&mut id, millis.unsigned_abs());
        id.push('-');
        interp::push_number(&mut id, n);
        id
    }

    /// Runs until the run finishes or waits; saves or records it.
    /// `delivered` is the event a `wait for` the run stands at received.
    pub(crate) async fn advance(
        &self,
        program: &Program,
        mut run: Run,
        delivered: Option<Value>,
    ) -> Result<RunReport, EngineError> {
        let Some(_executing) = Executing::start(&self.inner, &run.id) else {
            // Another task of this engine runs it; its own saves decide.
            return Ok(RunReport {
                id: run.id,
                flow: run.flow,
                status: RunStatus::Running,
            });
        };
        let outcome = interp::run_until_wait(&self.inner, program, &mut run, delivered).await;
        let status = match outcome {
            Outcome::Waiting {
                until,
                trigger,
                key,
            } => {
                let wait = WaitKey { trigger, key };
                self.inner.observe(&RunEvent::Suspended {
                    run: &run.id,
                    until,
                    waiting_for: Some(&wait),
                });
                self.inner
                    .store
                    .save_waiting_run(StoredRun::from_run(&run, until), wait)
                    .await?;
                RunStatus::Suspended(until)
            }
            Outcome::Suspended(wake_at) => {
                self.save(&run, wake_at).await?;
                self.inner.observe(&RunEvent::Suspended {
                    run: &run.id,
                    until: wake_at,
                    waiting_for: None,
                });
                RunStatus::Suspended(wake_at)
            }
            Outcome::Finished(result) => {
                let now = self.inner.clock.now();
                if let RunOutcome::Failed { kind, message } = &result {
                    self.inner.write_log(
                        &run.flow,
                        "error",
                        &format!("run {} failed: {kind}: {message}", run.id),
                    );
                }
                self.inner.observe(&RunEvent::Finished {
                    run: &run.id,
                    outcome: &result,
                    at: now,
                });
                self.inner
                    .store
                    .record_run(RunRecord {
                        id: run.id.clone(),
                        flow: run.flow.clone(),
                        // The run is done with it.
                        trigger: std::mem::take(&mut run.trigger),
                        started_at: run.started_at,
                        finished_at: now,
                        outcome: result.clone(),
                    })
                    .await?;
                RunStatus::Finished(result)
            }
        };
        Ok(RunReport {
            id: run.id,
            flow: run.flow,
            status,
        })
    }

    /// Keeps a run in the store until `wake_at`.
    async fn save(&self, run: &Run, wake_at: DateTime<Utc>) -> Result<(), EngineError> {
        self.inner
            .store
            .save_run(StoredRun::from_run(run, wake_at))
            .await?;
        Ok(())
    }

    /// Resumes a suspended run taken from the store. A run that cannot go
    /// on with the loaded programs is saved back for a later deploy and
    /// reported [`RunStatus::NotResumed`].
    pub async fn resume(&self, stored: StoredRun) -> Result<RunReport, EngineError> {
        let programs = self.programs();
        let (program, run, delivered) = match resumable(&programs, &stored) {
            Ok(resumable) => resumable,
            Err(reason) => return self.put_back(stored, reason).await,
        };
        self.inner.observe(&RunEvent::Resumed {
            run: &run.id,
            at: self.inner.clock.now(),
        });
        self.advance(program, run, delivered).await
    }

    /// Saves a run that cannot go on back into the store, due again after
    /// a lease, with the event it received.
    async fn put_back(&self, stored: StoredRun, reason: String) -> Result<RunReport, EngineError> {
        let retry_at = self.inner.clock.now() + self.inner.limits.run_lease;
        let report = RunReport {
            id: stored.id.clone(),
            flow: stored.flow.clone(),
            status: RunStatus::NotResumed { reason, retry_at },
        };
        self.inner
            .store
            .save_run(StoredRun {
                wake_at: retry_at,
                ..stored
            })
            .await?;
        Ok(report)
    }

    /// Starts the runs of bursts whose customer paused, and resumes every
    /// run that is due now, one after the other, in the order they fall
    /// due. Returns their reports.
    pub async fn run_due(&self) -> Result<Vec<RunReport>, EngineError> {
        let mut reports = self.start_due_bursts().await?;
        loop {
            let due = self
                .inner
                .store
                .claim_due_runs(self.inner.clock.now(), 16)
                .await?;
            if due.is_empty() {
                return Ok(reports);
            }
            for stored in due {
                reports.push(self.resume(stored).await?);
            }
        }
    }

    /// Like [`Engine::run_due`], but resumes up to `concurrency` claimed
    /// runs at once, each as a task of its own: what a service does, where
    /// one run waiting for its send slot (a customer's pair interval) must
    /// not hold up the others, and each run's store calls wait on a
    /// database. Runs due at the same moment may then act in any order.
    /// Every claimed run is resumed even when one fails; the first failure
    /// is returned after the batch.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use flowc::providers::recording::Recorder;
    /// use flowc::providers::VirtualClock;
    /// use flowc::runtime::{Engine, Event};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let start = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    /// let recorder = Recorder::new();
    /// let engine = Engine::builder()
    ///     .clock(VirtualClock::starting_at(start))
    ///     .notify(recorder.notify())
    ///     .build();
    /// engine.load(engine.compile(r#"
    ///     flow follow_up
    ///     on call.ended as call {
    ///         delay 1h
    ///         notify("sales", "call {call.customer_phone} again")
    ///     }
    /// "#)?)?;
    /// for n in 0..3 {
    ///     engine.dispatch(Event::from_json(&format!(r#"{{"trigger": "call.ended", "fields": {{
    ///         "customer_phone": "+491511234567{n}", "agent_name": "Jonas", "outcome": "no_answer",
    ///         "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c-{n}"}}}}"#))?).await?;
    /// }
    /// tokio::time::advance(std::time::Duration::from_secs(3600)).await;
    /// let reports = engine.run_due_concurrently(8).await?;
    /// assert_eq!(reports.len(), 3);
    /// assert_eq!(recorder.notifications().len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn run_due_concurrently(
        &self,
        concurrency: usize,
    ) -> Result<Vec<RunReport>, EngineError> {
        let mut reports = self.start_due_bursts().await?;
        loop {
            let due = self
                .inner
                .store
                .claim_due_runs(self.inner.clock.now(), concurrency.max(1))
                .await?;
            if due.is_empty() {
                return Ok(reports);
            }
            let mut tasks = tokio::task::JoinSet::new();
            let mut runs = HashMap::new();
            for stored in due {
                let engine = self.clone();
                let id = stored.id.clone();
                let task = tasks.spawn(async move { engine.resume(stored).await });
                runs.insert(task.id(), id);
            }
            let mut failure = None;
            while let Some(joined) = tasks.join_next_with_id().await {
                let outcome = match joined {
                    Ok((_, outcome)) => outcome,
                    // The run stays leased and is due again after the lease.
                    Err(error) => Err(EngineError::Resume {
                        id: runs.remove(&error.id()).unwrap_or_default(),
                        reason: format!("resuming it failed: {error}"),
                    }),
                };
                match outcome {
                    Ok(report) => reports.push(report),
                    Err(error) => {
                        failure.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = failure {
                return Err(error);
            }
        }
    }

    /// Waits for and resumes suspended runs until none is left. With a
    /// [`crate::providers::VirtualClock`] in a paused runtime this
    /// fast-forwards through days of waiting at once.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use flowc::providers::recording::Recorder;
    /// use flowc::providers::VirtualClock;
    /// use flowc::runtime::{Engine, Event};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let start = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    /// let recorder = Recorder::new();
    /// let engine = Engine::builder()
    ///     .clock(VirtualClock::starting_at(start))
    ///     .notify(recorder.notify())
    ///     .build();
    /// engine.load(engine.compile(r#"
    ///     flow follow_up
    ///     on call.ended as call {
    ///         delay 3d
    ///         notify("sales", "call {call.customer_phone} again")
    ///     }
    /// "#)?)?;
    /// engine.dispatch(Event::from_json(r#"{"trigger": "call.ended", "fields": {
    ///     "customer_phone": "+4915112345678", "agent_name": "Jonas", "outcome": "no_answer",
    ///     "ended_at": "2026-12-01T10:00:00+01:00", "call_id": "c-9"}}"#)?).await?;
    /// assert!(recorder.notifications().is_empty()); // waiting three days
    /// engine.run_until_idle().await?; // no real time passes
    /// assert_eq!(recorder.notifications().len(), 1);
    /// assert_eq!(engine.clock().now(), start + chrono::Duration::days(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A run that cannot go on ([`RunStatus::NotResumed`]) would come due
    /// again for ever: the engine cannot become idle, and this fails with
    /// [`EngineError::Resume`] naming it.
    pub async fn run_until_idle(&self) -> Result<Vec<RunReport>, EngineError> {
        let mut reports = Vec::new();
        while let Some(wake) = self.next_due().await? {
            self.inner.clock.sleep_until(wake).await;
            let round = self.run_due().await?;
            if let Some((id, reason)) = round.iter().find_map(|report| match &report.status {
                RunStatus::NotResumed { reason, .. } => Some((report.id.clone(), reason.clone())),
                _ => None,
            }) {
                return Err(EngineError::Resume { id, reason });
            }
            reports.extend(round);
        }
        Ok(reports)
    }
}

/// The program, run and received event of a stored run, or why the loaded
/// programs cannot go on with it.
fn resumable<'p>(
    programs: &'p [Arc<Program>],
    stored: &StoredRun,
) -> Result<(&'p Arc<Program>, Run, Option<Value>), String> {
    let run = super::state::decode(&stored.id, &stored.flow, &stored.state)
        .map_err(|e| format!("its saved state is not a run: {e}"))?;
    let program = programs
        .iter()
        .find(|p| p.flow(&run.flow).is_some())
        .ok_or_else(|| format!("no loaded program has its flow `{}`", run.flow))?;
    // The event a `wait for` received, checked against its trigger like
    // any event.
    let delivered = match &stored.delivered {
        None => None,
        Some(json) => Some(
            <Event as serde::Deserialize>::deserialize(json)
                .map_err(|e| e.to_string())
                .and_then(|event| event.to_value(program.schemas()).map_err(|e| e.to_string()))
                .map_err(|reason| {
                    format!("the event it received no longer fits its trigger: {reason}")
                })?,
        ),
    };
    Ok((program, run, delivered))
}

/// The correlation key of a field's value ([`interp::correlation_key`]),
/// borrowed when the value is a text.
fn key_text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(text) => std::borrow::Cow::Borrowed(text),
        other => std::borrow::Cow::Owned(interp::correlation_key(other)),
    }
}

/// What [`Store::inbound_check`] is asked about `event`, from its fields as
/// received, before they are checked and moved into its value. The answer
/// is the one the value would give: a text field's value is its text as
/// received, unchanged, and a field that is `null` or left out without a
/// default is `none`. `None` when a field the question needs is anything
/// else (a number, a default to fill in): then it waits for the value.
fn inbound_query_as_received<'e>(
    trigger: &TriggerSchema,
    event: &'e Event,
    correlation: Option<&str>,
    event_id: Option<&'e str>,
    now: DateTime<Utc>,
) -> Option<InboundQuery<'e>> {
    // `Some(None)`: the value will be `none`.
    let text_of = |field: &FieldTy| -> Option<Option<&'e str>> {
        match event.fields.get(&field.name) {
            Some(serde_json::Value::String(text)) if field.ty.non_optional().is_text() => {
                Some(Some(text.as_str()))
            }
            Some(serde_json::Value::Null) => Some(None),
            None if field.default.is_none() => Some(None),
            _ => None,
        }
    };
    let field = |name: &str| trigger.fields.field(name);
    let conversation = match &trigger.opens_window {
        Some(customer_field) => match text_of(field(customer_field)?)? {
            Some(customer) => {
                let sender = match sender_field(trigger) {
                    Some(sender) => text_of(sender)?,
                    None => None,
                };
                Some((customer, sender.unwrap_or("")))
            }
            None => None,
        },
        None => None,
    };
    let wait = match correlation {
        // `none` reads as the empty text.
        Some(correlation_field) => Some(WaitKeyRef {
            trigger: &event.trigger,
            key: text_of(field(correlation_field)?)?.unwrap_or(""),
        }),
        None => None,
    };
    Some(InboundQuery {
        conversation,
        wait,
        event_id,
        now,
    })
}

/// The value a new run's handler binds (the event's).
fn bound_value(run: &Run) -> Option<&Value> {
    run.frames.first()?.vars.first().map(|(_, value)| value)
}

/// The handlers of `program` that an event of `trigger` to `sender` starts
/// at once (`debounce` handlers collect it instead): flow name, handler
/// index, binding.
fn handlers<'a>(
    program: &'a Program,
    trigger: &'a str,
    sender: Option<&'a str>,
) -> impl Iterator<Item = (&'a str, usize, &'a str)> + 'a {
    program.flows().iter().flat_map(move |flow| {
        flow.handlers
            .iter()
            .enumerate()
            .filter(move |(_, h)| {
                h.trigger.name == trigger && h.debounce.is_none() && via_matches(h, sender)
            })
            .map(move |(i, h)| (flow.name.as_str(), i, h.binding.name.as_str()))
    })
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trigger of the host's whose correlation field is a number, and one
    /// whose correlation field has a default.
    const TRIGGERS: &str = r#"
## An order changed.
@correlate(order)
trigger shop.order_update {
    ## The order's number.
    order: Int
}

## A parcel moved.
@correlate(carrier)
trigger shop.parcel {
    ## Who carries it.
    carrier: String = "post"
}
"#;

    fn program() -> Program {
        let mut compiler = Compiler::new();
        compiler.add_source("triggers.flow", TRIGGERS);
        match compiler.check().into_result() {
            Ok(program) => program,
            Err(e) => panic!("{e}"),
        }
    }

    /// The question asked before the event is checked is the one its value
    /// gives, or none is asked before.
    #[test]
    fn the_question_from_the_fields_as_received_is_the_values() {
        let program = program();
        let now = Utc::now();
        let message = |name: serde_json::Value| {
            serde_json::json!({
                "phone": "+4915112345678", "text": "hi", "sender_id": "berlin-office",
                "timestamp": "2026-12-01T09:00:00+01:00", "conversation_id": "c-1",
                "message_id": "wamid.1", "name": name,
            })
        };
        let events = [
            Event::new("whatsapp.message_received", message("Anna".into())),
            Event::new(
                "whatsapp.message_received",
                message(serde_json::Value::Null),
            ),
            Event::new("shop.order_update", serde_json::json!({"order": 7})),
            Event::new("shop.parcel", serde_json::json!({})),
            Event::new("shop.parcel", serde_json::json!({"carrier": "dhl"})),
        ];
        let asked: Vec<bool> = events
            .into_iter()
            .map(|mut event| {
                let trigger = &program.schemas().triggers[&event.trigger];
                let correlation = trigger.correlate.as_deref();
                let before = inbound_query_as_received(trigger, &event, correlation, None, now)
                    .map(|q| {
                        let conversation =
                            q.conversation.map(|(c, s)| (c.to_string(), s.to_string()));
                        (conversation, q.wait.map(|w| w.key.to_string()))
                    });
                let value = match event.take_value(program.schemas()) {
                    Ok(value) => value,
                    Err(e) => panic!("{e}"),
                };
                let conversation = trigger.opens_window.as_ref().and_then(|field| {
                    let customer = value.field(field)?.as_str()?;
                    Some((
                        customer.to_string(),
                        sender_of(trigger, &value).unwrap_or("").to_string(),
                    ))
                });
                let key = correlation.and_then(|field| value.field(field).map(key_text));
                if let Some(before) = &before {
                    assert_eq!(before, &(conversation, key.map(|k| k.into_owned())));
                }
                before.is_some()
            })
            .collect();
        // A number, and a default to fill in, wait for the value.
        assert_eq!(asked, [true, true, false, false, true]);
    }
}
