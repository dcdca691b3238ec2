//! The interpreter: runs checked programs on the providers.
//!
//! A run goes until it finishes or waits; a waiting run is plain data
//! ([`Run`]) kept in the store until it is due, so a pending reminder
//! survives a restart and another process can resume it.

mod campaigns;
mod conversations;
mod engine;
mod error;
mod event;
mod interp;
pub(crate) mod limits;
mod observe;
mod pacing;
mod phones;
mod run;
mod state;
mod value;

pub use engine::{
    ActionHandler, Engine, EngineBuilder, EngineError, EngineLimits, RunReport, RunStatus,
};
pub use error::ActionError;
pub(crate) use event::convert_json;
pub use event::{Event, EventError};
pub use observe::{NoObserver, Observer, RunEvent};
pub use pacing::{Limits, Pacer};
pub use run::{Frame, Run, Step};
pub use value::{Record, Value};

pub(crate) use state::encode as encode_state;
