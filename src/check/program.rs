//! The checked program: the runtime's only input.
//!
//! A [`Program`] exists only for sources that passed the checker without
//! errors. It holds the flows (their syntax trees, now known to be
//! well-typed), the schemas they were checked against, and the project
//! configuration, so the runtime never looks at text or declarations again.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::schema::Schemas;
use crate::config::Config;
use crate::source::SourceMap;
use crate::syntax::ast;

/// A checked set of flows, ready to run.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) flows: Vec<CheckedFlow>,
    pub(crate) schemas: Arc<Schemas>,
    pub(crate) called_actions: BTreeSet<String>,
    pub(crate) tests: Vec<super::CheckedTest>,
    pub(crate) config: Arc<Config>,
    pub(crate) sources: Arc<SourceMap>,
}

/// One flow of a program.
#[derive(Debug, Clone)]
pub struct CheckedFlow {
    /// The flow's name.
    pub name: String,
    /// Its handlers, one per `on` block.
    pub handlers: Vec<ast::Handler>,
}

impl Program {
    /// The flows in source order.
    pub fn flows(&self) -> &[CheckedFlow] {
        &self.flows
    }

    /// The flow with this name.
    pub fn flow(&self, name: &str) -> Option<&CheckedFlow> {
        self.flows.iter().find(|f| f.name == name)
    }

    /// Every handler whose trigger is `trigger`, with its flow's name.
    pub fn handlers_for<'a>(
        &'a self,
        trigger: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a ast::Handler)> + 'a {
        self.flows.iter().flat_map(move |flow| {
            flow.handlers
                .iter()
                .filter(move |h| h.trigger.name == trigger)
                .map(move |h| (flow.name.as_str(), h))
        })
    }

    /// The checked `test` blocks, in source order; `flowc test` runs them.
    /// They never change how the flows run.
    pub fn tests(&self) -> &[super::CheckedTest] {
        &self.tests
    }

    /// Every action some flow calls.
    pub fn called_actions(&self) -> &BTreeSet<String> {
        &self.called_actions
    }

    /// The schemas the flows were checked against.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// The project configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sources, for rendering positions.
    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }
}
