//! Go to definition: from a use of a trigger, an action, an argument, an
//! event field or an error kind to where the project declares it, and from a
//! sender, template or assistant name to its entry in `flow.toml`.
//!
//! The standard declarations are embedded in the binary and have no file the
//! editor could open, so only the project's own declarations are targets.

use lsp_types::{GotoDefinitionResponse, Location};

use super::analysis::Analysis;
use super::documents::LineIndex;
use super::hover::{config_name, resolve};

/// The declaration of the symbol at byte offset `offset`.
pub fn definition(
    index: &LineIndex,
    offset: usize,
    analysis: &Analysis,
) -> Option<GotoDefinitionResponse> {
    let span = match config_name(index.text(), offset, analysis) {
        Some(entry) => entry.span(),
        None => resolve(index.text(), offset, &analysis.schemas)?.span()?,
    };
    let file = analysis.file(span.file)?;
    let uri = file.uri.clone()?;
    let range = file.index.range(span.start as usize, span.end as usize);
    Some(GotoDefinitionResponse::Scalar(Location::new(uri, range)))
}
