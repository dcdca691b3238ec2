//! `flowc serve`: the engine as a service. Meta's signed webhooks and the
//! host's own events come in over HTTP, are kept in the store's inbox, and
//! start runs from there; a timer resumes waiting runs when they fall due;
//! running campaigns are driven in the background.
//!
//! - [`webhook`]: signatures, the verification handshake, payloads to events.
//! - [`server`]: the routes and the workers.
//! - [`metrics`]: the counters behind `/metrics`.

pub mod metrics;
pub mod server;
pub mod webhook;

pub use metrics::Metrics;
pub use server::{router, serve, ServeOptions, Service};
