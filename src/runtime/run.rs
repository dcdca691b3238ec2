//! A run as data: where it is in its flow and what its variables hold.
//!
//! A suspended run is this value, serialized into the store; any process with
//! the same program can load it and go on. Positions are paths through the
//! handler's blocks (statement index, then which branch, arm or catch), not
//! Rust futures.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::value::Value;

/// One step down from a statement into one of its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Branch `.1` (0 for the `if`, then each `else if`) of the `if` at
    /// statement index `.0`.
    Then(u32, u32),
    /// The `else` block of the `if` at this statement index.
    Else(u32),
    /// Arm `.1` of the `branch` at statement index `.0`.
    Arm(u32, u32),
    /// Catch clause `.1` of the statement at index `.0`.
    Catch(u32, u32),
}

impl Step {
    /// The index of the statement the block belongs to.
    pub fn statement(self) -> usize {
        match self {
            Step::Then(i, _) | Step::Else(i) | Step::Arm(i, _) | Step::Catch(i, _) => i as usize,
        }
    }
}

/// A block being run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The way from the handler's body to this block.
    pub path: Vec<Step>,
    /// The index of the statement to run next.
    pub next: usize,
    /// Names bound in this block.
    pub vars: Vec<(String, Value)>,
    /// Failed tries so far of the statement at `next` (for `retry`).
    pub attempt: u32,
}

/// A run of one handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Unique id.
    pub id: String,
    /// The flow's name.
    pub flow: String,
    /// Which `on` block of the flow.
    pub handler: usize,
    /// The trigger that started it.
    pub trigger: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Blocks being run, outermost first.
    pub frames: Vec<Frame>,
    /// Statements run so far, against the step budget.
    pub steps: u64,
}
