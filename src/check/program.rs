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
    /// The actions its handlers call.
    pub called_actions: BTreeSet<String>,
    /// The senders its handlers name as literals (`sender: "berlin-office"`);
    /// a sender computed at run time (`sender: msg.sender_id`) is not here.
    pub named_senders: BTreeSet<String>,
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
    pub fn called_actions(&self) -> BTreeSet<&str> {
        self.flows
            .iter()
            .flat_map(|flow| flow.called_actions.iter().map(String::as_str))
            .collect()
    }

    /// The same program with only the flows that have a handler in the
    /// source named `file` (as given to the compiler): `flowc run FILE`
    /// checks FILE with the rest of its project, and runs FILE's flows.
    ///
    /// ```
    /// use flowc::check::Compiler;
    ///
    /// let mut compiler = Compiler::new();
    /// compiler.add_source("a.flow", "flow a\non call.ended as call { log(\"a\") }");
    /// compiler.add_source("b.flow", "flow b\non call.ended as call { log(\"b\") }");
    /// let program = compiler.check().into_result().unwrap();
    /// let only_b = program.only_flows_in("b.flow");
    /// assert_eq!(only_b.flows().len(), 1);
    /// assert_eq!(only_b.flows()[0].name, "b");
    /// ```
    pub fn only_flows_in(&self, file: &str) -> Program {
        let mut own = self.clone();
        own.flows.retain(|flow| {
            flow.handlers
                .iter()
                .any(|handler| self.sources.get(handler.span.file).name() == file)
        });
        own
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
