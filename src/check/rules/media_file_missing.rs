//! F3017 media-file-missing (warning): a local media file named by a literal
//! does not exist.
//!
//! Why: the runtime uploads `file:` when the call runs; a missing file fails
//! the call with `MediaError`. It is a warning, not an error, because the
//! file may be created before the flow runs (an export, a generated
//! invoice).
//!
//! Where files are looked for: relative paths are resolved against the
//! project root, the folder of flow.toml (the working directory `flowc
//! serve` runs in), or, without flow.toml, the folder of the flow file.
//!
//! Example: `whatsapp.send_document(..., file: "brochures/solar-2026.pdf")`
//! with no such file.
//!
//! Instead: fix the path, or make sure the file exists where the runtime runs.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// The file at `path` (as written), looked for at `looked_at`, is missing.
pub fn diagnostic(span: Span, path: &str, looked_at: &str) -> Diagnostic {
    Diagnostic::new(
        Code::MediaFileMissing,
        format!("media file `{path}` does not exist"),
    )
    .with_label(span, format!("not found at {looked_at}"))
    .with_help(
        "relative paths start at the project root (the folder of flow.toml), where the runtime runs; \
         fix the path, or make sure the file is there before the flow runs",
    )
}
