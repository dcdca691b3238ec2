//! The engine's side of conversations: handing a conversation over to a
//! person (automation paused), `via` (handlers limited to some senders) and
//! `debounce` (a customer's burst of messages collected into one event).
//!
//! [`super::engine`] calls into this module while it starts runs; the
//! bursts whose customer paused are started from [`Engine::run_due`].

use chrono::{DateTime, Utc};

use super::engine::{Engine, EngineError, RunReport};
use super::event::Event;
use super::observe::RunEvent;
use super::run::{Frame, Run};
use super::value::Value;
use crate::check::schema::TriggerSchema;
use crate::check::types::{FieldTy, Ty};
use crate::check::Program;
use crate::providers::conversations::joined_fields;
use crate::providers::{Burst, BurstMessage, PausedConversation, StoreError};
use crate::syntax::ast::Handler;

/// Bursts started per store call.
const BURST_BATCH: usize = 16;

/// The value of the trigger's sender field (the first field of type
/// `Sender`), if the trigger has one and the event fills it.
pub(crate) fn event_sender<'v>(
    program: &Program,
    trigger: &str,
    value: &'v Value,
) -> Option<&'v str> {
    sender_of(program.schemas().triggers.get(trigger)?, value)
}

/// [`event_sender`] with the trigger's schema at hand.
pub(crate) fn sender_of<'v>(trigger: &TriggerSchema, value: &'v Value) -> Option<&'v str> {
    sender_field(trigger)
        .and_then(|f| value.field(&f.name))
        .and_then(Value::as_str)
}

/// The trigger's sender field: its first field of type `Sender`.
pub(crate) fn sender_field(trigger: &TriggerSchema) -> Option<&FieldTy> {
    trigger
        .fields
        .fields
        .iter()
        .find(|f| *f.ty.non_optional() == Ty::Sender)
}

/// Whether `handler` takes events to `sender`: a handler without `via` takes
/// every sender's; one with `via` only those it names.
pub(crate) fn via_matches(handler: &Handler, sender: Option<&str>) -> bool {
    handler.via.is_empty()
        || sender.is_some_and(|s| handler.via.iter().any(|v| v.name.as_deref() == Some(s)))
}

/// Whether any program has a `debounce` handler for `trigger`: only then
/// are the event's raw fields kept for a burst.
pub(crate) fn debounces(programs: &[std::sync::Arc<Program>], trigger: &str) -> bool {
    programs.iter().any(|program| {
        program
            .handlers_for(trigger)
            .any(|(_, handler)| handler.debounce.is_some())
    })
}

impl Engine {
    /// Hands the conversation of `customer` with `sender` over to a person:
    /// until [`Engine::resume_conversation`], or `until` if given, the
    /// customer's messages to that sender start no runs. They are still
    /// deduplicated and recorded, and open the 24-hour window.
    ///
    /// ```
    /// use flowc::providers::recording::Recorder;
    /// use flowc::runtime::{Engine, Event};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let recorder = Recorder::new();
    /// let engine = Engine::builder().notify(recorder.notify()).build();
    /// engine.load(engine.compile(r#"
    ///     flow assistant
    ///     on whatsapp.message_received as msg { notify("bot", "answering {msg.phone}") }
    /// "#)?)?;
    /// let message = || Event::from_json(r#"{"trigger": "whatsapp.message_received", "fields": {
    ///     "phone": "+4915112345678", "text": "Hello?", "sender_id": "berlin-office",
    ///     "timestamp": "2026-12-01T09:00:00Z", "conversation_id": "c", "message_id": "m"}}"#);
    ///
    /// engine.pause_conversation("+4915112345678", "berlin-office", None).await?;
    /// assert!(engine.dispatch(message()?).await?.is_empty()); // a person answers
    /// assert!(engine.resume_conversation("+4915112345678", "berlin-office").await?);
    /// assert_eq!(engine.dispatch(message()?).await?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn pause_conversation(
        &self,
        customer: &str,
        sender: &str,
        until: Option<DateTime<Utc>>,
    ) -> Result<(), EngineError> {
        let pause = PausedConversation {
            customer: customer.to_string(),
            sender: sender.to_string(),
            paused_at: self.clock().now(),
            until,
        };
        self.store().pause_conversation(pause).await?;
        Ok(())
    }

    /// Gives a conversation back to automation; returns whether it was
    /// handed over.
    pub async fn resume_conversation(
        &self,
        customer: &str,
        sender: &str,
    ) -> Result<bool, EngineError> {
        Ok(self.store().resume_conversation(customer, sender).await?)
    }

    /// The conversations handed over now (pauses that ran out are left out).
    pub async fn paused_conversations(&self) -> Result<Vec<PausedConversation>, EngineError> {
        let now = self.clock().now();
        let mut paused = self.store().paused_conversations().await?;
        paused.retain(|p| p.holds_at(now));
        Ok(paused)
    }

    /// Whether an event from `customer` to `sender` is held: the
    /// conversation is handed over. Tells the observer when it is.
    pub(crate) async fn held(
        &self,
        trigger: &str,
        customer: &str,
        sender: &str,
    ) -> Result<bool, EngineError> {
        let now = self.clock().now();
        let held = self
            .store()
            .conversation_paused(customer, sender, now)
            .await?;
        if held {
            self.observe_held(trigger, customer, sender, now);
        }
        Ok(held)
    }

    /// Tells the observer that an event from `customer` to `sender` was
    /// held: the conversation is handed over.
    pub(crate) fn observe_held(
        &self,
        trigger: &str,
        customer: &str,
        sender: &str,
        at: DateTime<Utc>,
    ) {
        self.inner.observe(&RunEvent::Held {
            trigger,
            customer,
            sender,
            at,
        });
    }

    /// Adds an event to the burst of each `debounce` handler of `program`
    /// that takes it. `fields` are the event's fields as received.
    pub(crate) async fn collect_bursts(
        &self,
        program: &Program,
        trigger: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        customer: &str,
        sender: Option<&str>,
        event_id: Option<&str>,
    ) -> Result<(), EngineError> {
        let now = self.clock().now();
        for flow in program.flows() {
            for (index, handler) in flow.handlers.iter().enumerate() {
                let Some(debounce) = &handler.debounce else {
                    continue;
                };
                if handler.trigger.name != trigger || !via_matches(handler, sender) {
                    continue;
                }
                let pause = chrono::Duration::milliseconds(
                    i64::try_from(debounce.millis.unwrap_or(0)).unwrap_or(i64::MAX),
                );
                // The burst's id becomes its run's: from the first message's
                // id, like the runs an event starts.
                let first = match event_id {
                    Some(id) => id.to_string(),
                    None => self.new_run_id(now),
                };
                let burst = Burst {
                    id: format!("{first}#{}#{index}", flow.name),
                    flow: flow.name.clone(),
                    handler: index,
                    trigger: trigger.to_string(),
                    customer: customer.to_string(),
                    messages: vec![BurstMessage {
                        event_id: event_id.map(str::to_string),
                        fields: fields.clone(),
                    }],
                    deadline: now + pause,
                };
                self.store().add_to_burst(burst).await?;
            }
        }
        Ok(())
    }

    /// Starts one run for every burst whose customer paused. A burst's run
    /// has the burst's id: a burst claimed again after a crash does not
    /// start a second run.
    pub(crate) async fn start_due_bursts(&self) -> Result<Vec<RunReport>, EngineError> {
        let mut reports = Vec::new();
        loop {
            let now = self.clock().now();
            let due = self.store().claim_due_bursts(now, BURST_BATCH).await?;
            if due.is_empty() {
                return Ok(reports);
            }
            for burst in due {
                if let Some(report) = self.start_burst(burst).await? {
                    reports.push(report);
                }
            }
        }
    }

    async fn start_burst(&self, burst: Burst) -> Result<Option<RunReport>, EngineError> {
        let programs = self.programs();
        let handler = programs.iter().find_map(|program| {
            let flow = program.flow(&burst.flow)?;
            let handler = flow.handlers.get(burst.handler)?;
            (handler.trigger.name == burst.trigger).then_some((program, handler))
        });
        let Some((program, handler)) = handler else {
            self.inner.write_log(
                &burst.flow,
                "error",
                &format!(
                    "burst {} dropped: no loaded flow `{}` has handler {} on `{}`",
                    burst.id, burst.flow, burst.handler, burst.trigger
                ),
            );
            self.store().finish_burst(&burst.id).await?;
            return Ok(None);
        };
        let Some(fields) = joined_fields(&burst.messages) else {
            self.store().finish_burst(&burst.id).await?;
            return Ok(None);
        };
        let event = Event {
            trigger: burst.trigger.clone(),
            fields,
        };
        let value = match event.to_value(program.schemas()) {
            Ok(value) => value,
            Err(error) => {
                self.inner.write_log(
                    &burst.flow,
                    "error",
                    &format!("burst {} dropped: {error}", burst.id),
                );
                self.store().finish_burst(&burst.id).await?;
                return Ok(None);
            }
        };
        // Handed over while the burst was collecting: the person answers it.
        if let Some(inbound) = self.window(program, &burst.trigger, &value) {
            if self
                .held(&burst.trigger, inbound.customer, inbound.sender)
                .await?
            {
                self.store().finish_burst(&burst.id).await?;
                return Ok(None);
            }
        }
        let now = self.clock().now();
        let run = Run {
            id: burst.id.clone(),
            flow: burst.flow.clone(),
            handler: burst.handler,
            trigger: burst.trigger.clone(),
            started_at: now,
            frames: vec![Frame {
                path: Vec::new(),
                next: 0,
                vars: vec![(handler.binding.name.clone(), value)],
                attempt: 0,
            }],
            steps: 0,
        };
        let lease = self.inner.limits.run_lease;
        let kept = self
            .store()
            .begin_runs(
                None,
                vec![crate::providers::StoredRun::from_run(&run, now + lease)],
                true,
            )
            .await?;
        self.store().finish_burst(&burst.id).await?;
        match kept.first() {
            Some(true) => {}
            Some(false) => return Ok(None),
            None => {
                return Err(EngineError::Store(StoreError::Backend(
                    "the store answered for 0 of 1 runs".into(),
                )))
            }
        }
        self.inner.observe(&RunEvent::Started {
            run: &run.id,
            flow: &run.flow,
            trigger: &run.trigger,
            at: now,
        });
        Ok(Some(self.advance(program, run, None).await?))
    }

    /// When the next suspended run or burst is due.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, EngineError> {
        let run = self.store().next_wake().await?;
        let burst = self.store().next_burst_deadline().await?;
        Ok(match (run, burst) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
}
