//! Watching runs: every step the engine takes, for `flowc run`'s trace, for
//! metrics, or for a host's audit log.

use chrono::{DateTime, Utc};

use super::value::Value;
use super::ActionError;
use crate::providers::{RunOutcome, WaitKey};

/// One thing that happened in a run.
#[derive(Debug, Clone, Copy)]
pub enum RunEvent<'a> {
    /// A run started.
    Started {
        /// The run's id.
        run: &'a str,
        /// Its flow.
        flow: &'a str,
        /// The trigger.
        trigger: &'a str,
        /// When.
        at: DateTime<Utc>,
    },
    /// An action is about to be called.
    Action {
        /// The run's id.
        run: &'a str,
        /// The action.
        action: &'a str,
        /// Its arguments by parameter name, in declaration order.
        args: &'a [(String, Value)],
        /// When.
        at: DateTime<Utc>,
    },
    /// An action succeeded.
    ActionDone {
        /// The run's id.
        run: &'a str,
        /// The action.
        action: &'a str,
        /// What it returned.
        result: &'a Value,
        /// When.
        at: DateTime<Utc>,
    },
    /// An action failed.
    ActionFailed {
        /// The run's id.
        run: &'a str,
        /// The action.
        action: &'a str,
        /// Why.
        error: &'a ActionError,
        /// When.
        at: DateTime<Utc>,
    },
    /// A failed action will be tried again.
    Retry {
        /// The run's id.
        run: &'a str,
        /// Which try comes next (2 for the first retry).
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// A catch clause took an error.
    Caught {
        /// The run's id.
        run: &'a str,
        /// The error kind.
        kind: &'a str,
    },
    /// The run waits until `until`, or, for a `wait for`, until the event
    /// it waits for comes.
    Suspended {
        /// The run's id.
        run: &'a str,
        /// When it goes on (at the latest, for a `wait for`).
        until: DateTime<Utc>,
        /// For a `wait for`: the trigger and the correlation key.
        waiting_for: Option<&'a WaitKey>,
    },
    /// A waiting run goes on.
    Resumed {
        /// The run's id.
        run: &'a str,
        /// When.
        at: DateTime<Utc>,
    },
    /// An event started nothing because its conversation is handed over
    /// to a person.
    Held {
        /// The trigger.
        trigger: &'a str,
        /// The customer.
        customer: &'a str,
        /// The sender.
        sender: &'a str,
        /// When.
        at: DateTime<Utc>,
    },
    /// The run ended.
    Finished {
        /// The run's id.
        run: &'a str,
        /// How.
        outcome: &'a RunOutcome,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Receives run events. Must be quick: it runs on the engine's path.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: &RunEvent<'_>);
}

/// Ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn event(&self, _: &RunEvent<'_>) {}
}
