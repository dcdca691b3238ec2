//! `flowc lsp`: a Language Server Protocol server for `.flow` files.
//!
//! The editor sends the text of open documents; the server answers with the
//! diagnostics `flowc check` gives (same codes, same `flow.toml`, the other
//! files of the project included), hover with the schema and documentation of
//! actions, arguments, triggers and fields, completion, go to definition of
//! the project's own triggers and actions, and formatting.
//!
//! Never blocking the editor: checks run on one worker thread. Every change
//! replaces the pending work, the worker waits until typing pauses
//! ([`DEBOUNCE`]) and drops results that a newer change has already made
//! stale. Requests are answered at once on the main thread from the newest
//! text and the latest finished check; they read the text around the cursor,
//! so they work while the file does not parse.
//!
//! ```no_run
//! // What `flowc lsp` does:
//! flowc::lsp::run_stdio().expect("the editor connection failed");
//! ```

mod analysis;
mod completion;
mod context;
mod definition;
mod diagnostics;
pub mod documents;
mod formatting;
mod hover;

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use lsp_server::{Connection, ErrorCode, Message, Notification, ProtocolError, Request, Response};
use lsp_types::{
    CompletionOptions, CompletionParams, CompletionResponse, DidChangeTextDocumentParams,
    DidCloseTextDocumentParams, DidOpenTextDocumentParams, DocumentFormattingParams,
    GotoDefinitionParams, HoverParams, HoverProviderCapability, OneOf, PublishDiagnosticsParams,
    ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind, Uri,
};
use serde::de::DeserializeOwned;
use thiserror::Error;

use analysis::{Analysis, OpenText, ProjectKey};
use documents::Document;

/// How long the worker waits for typing to pause before checking.
pub const DEBOUNCE: Duration = Duration::from_millis(60);

/// Why the language server stopped.
#[derive(Debug, Error)]
pub enum LspError {
    /// The editor broke the protocol, e.g. sent no `initialize` first.
    #[error("language server protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The editor sent `exit` without asking for `shutdown` first; the
    /// protocol asks the server to exit with code 1 then.
    #[error("the editor sent `exit` before `shutdown`")]
    ExitBeforeShutdown,
    /// Reading or writing stdio failed.
    #[error("editor connection failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves the editor on stdin and stdout until it sends `exit` or closes the
/// connection.
pub fn run_stdio() -> Result<(), LspError> {
    let (connection, io_threads) = Connection::stdio();
    serve(connection)?;
    io_threads.join()?;
    Ok(())
}

/// Serves one editor over a connection (stdio, or in memory for tests) until
/// it sends `exit` or closes the connection.
pub fn serve(connection: Connection) -> Result<(), LspError> {
    let (id, _params) = connection.initialize_start()?;
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": { "name": "flowc", "version": env!("CARGO_PKG_VERSION") },
    });
    connection.initialize_finish(id, result)?;

    let sender = connection.sender.clone();
    let mut server = Server::start(Arc::new(move |message| sender.send(message).is_ok()));
    let mut shutting_down = false;
    for message in &connection.receiver {
        match message {
            Message::Request(request) => {
                let response = if request.method == "shutdown" {
                    shutting_down = true;
                    Response::new_ok(request.id, ())
                } else if shutting_down {
                    Response::new_err(
                        request.id,
                        ErrorCode::InvalidRequest as i32,
                        "the server is shutting down".to_string(),
                    )
                } else {
                    let id = request.id.clone();
                    // A bug in one answer must not take the editor's server down.
                    catch_unwind(AssertUnwindSafe(|| server.request(request))).unwrap_or_else(
                        |_| {
                            Response::new_err(
                                id,
                                ErrorCode::InternalError as i32,
                                "internal error".to_string(),
                            )
                        },
                    )
                };
                if connection.sender.send(response.into()).is_err() {
                    break;
                }
            }
            Message::Notification(notification) => {
                if notification.method == "exit" {
                    server.stop();
                    return if shutting_down {
                        Ok(())
                    } else {
                        Err(LspError::ExitBeforeShutdown)
                    };
                }
                let _ = catch_unwind(AssertUnwindSafe(|| server.notification(notification)));
            }
            Message::Response(_) => {}
        }
    }
    server.stop();
    Ok(())
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![
                ".".to_string(),
                "\"".to_string(),
                "(".to_string(),
                ",".to_string(),
            ]),
            ..Default::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..Default::default()
    }
}

/// Sends a message to the editor; `false` when the connection is gone.
type Outbox = Arc<dyn Fn(Message) -> bool + Send + Sync>;

/// An open document and its project.
struct Open {
    document: Document,
    project: ProjectKey,
}

/// The work handed to the checking thread; each change replaces it.
#[derive(Default)]
struct Queue {
    /// Counts changes, so the worker can tell whether typing has paused and
    /// whether a result is already stale.
    generation: u64,
    /// Every open document at the newest change.
    open: Vec<(ProjectKey, OpenText)>,
    /// Projects to check again.
    dirty: BTreeSet<ProjectKey>,
    /// Documents opened or closed since: what they were last sent no longer
    /// shows in the editor, so their next diagnostics are sent in any case.
    forget: BTreeSet<String>,
    stop: bool,
}

/// What the main thread and the worker share.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The latest finished check of each project.
    analyses: Mutex<HashMap<ProjectKey, Arc<Analysis>>>,
}

/// A poisoned lock only means another thread panicked mid-update; the data
/// is still the best there is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct Server {
    documents: HashMap<String, Open>,
    outbox: Outbox,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl Server {
    fn start(outbox: Outbox) -> Server {
        let shared = Arc::new(Shared::default());
        let worker_shared = shared.clone();
        let worker_outbox = outbox.clone();
        let worker = std::thread::Builder::new()
            .name("flowc-lsp-check".to_string())
            .spawn(move || worker(&worker_shared, worker_outbox))
            .ok();
        Server {
            documents: HashMap::new(),
            outbox,
            shared,
            worker,
        }
    }

    fn stop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }

    /// Hands the newest texts to the worker and marks `project` for a check.
    fn schedule(&self, project: ProjectKey, forget: Option<&Uri>) {
        let open = self
            .documents
            .values()
            .map(|o| {
                (
                    o.project.clone(),
                    OpenText {
                        uri: o.document.uri.clone(),
                        path: o.document.path.clone(),
                        version: o.document.version,
                        text: o.document.index.shared_text(),
                    },
                )
            })
            .collect();
        let mut queue = lock(&self.shared.queue);
        queue.generation += 1;
        queue.open = open;
        queue.dirty.insert(project);
        if let Some(uri) = forget {
            queue.forget.insert(uri.as_str().to_string());
        }
        drop(queue);
        self.shared.wake.notify_all();
    }

    fn notification(&mut self, notification: Notification) {
        match notification.method.as_str() {
            "textDocument/didOpen" => {
                let Some(params) = parse::<DidOpenTextDocumentParams>(notification.params) else {
                    return;
                };
                let item = params.text_document;
                let document = Document::new(item.uri, item.version, item.text);
                let project = analysis::project_key(&document.uri, document.path.as_deref());
                let uri = document.uri.clone();
                self.documents.insert(
                    document.uri.as_str().to_string(),
                    Open {
                        document,
                        project: project.clone(),
                    },
                );
                self.schedule(project, Some(&uri));
            }
            "textDocument/didChange" => {
                let Some(params) = parse::<DidChangeTextDocumentParams>(notification.params) else {
                    return;
                };
                let uri = params.text_document.uri;
                let Some(open) = self.documents.get_mut(uri.as_str()) else {
                    return;
                };
                open.document
                    .apply_changes(params.text_document.version, params.content_changes);
                let project = open.project.clone();
                self.schedule(project, None);
            }
            "textDocument/didClose" => {
                let Some(params) = parse::<DidCloseTextDocumentParams>(notification.params) else {
                    return;
                };
                if let Some(open) = self.documents.remove(params.text_document.uri.as_str()) {
                    // Clear what the editor showed; a file on disk gets its
                    // disk text's diagnostics from the next check, if any.
                    let params = PublishDiagnosticsParams {
                        uri: open.document.uri.clone(),
                        diagnostics: Vec::new(),
                        version: None,
                    };
                    let message =
                        Notification::new("textDocument/publishDiagnostics".to_string(), params);
                    (self.outbox)(message.into());
                    self.schedule(open.project, Some(&open.document.uri));
                }
            }
            // Another file of the project may have changed on disk.
            "textDocument/didSave" | "workspace/didChangeWatchedFiles" => {
                let projects: BTreeSet<ProjectKey> =
                    self.documents.values().map(|o| o.project.clone()).collect();
                for project in projects {
                    self.schedule(project, None);
                }
            }
            _ => {}
        }
    }

    fn request(&mut self, request: Request) -> Response {
        let id = request.id.clone();
        let answer = match request.method.as_str() {
            "textDocument/hover" => parse::<HoverParams>(request.params).map(|params| {
                let at = params.text_document_position_params;
                let result = self.at(&at.text_document.uri, at.position, hover::hover);
                serde_json::to_value(result)
            }),
            "textDocument/completion" => parse::<CompletionParams>(request.params).map(|params| {
                let at = params.text_document_position;
                let items = self
                    .at(&at.text_document.uri, at.position, |index, offset, a| {
                        Some(completion::complete(index, offset, a))
                    })
                    .unwrap_or_default();
                serde_json::to_value(CompletionResponse::Array(items))
            }),
            "textDocument/definition" => {
                parse::<GotoDefinitionParams>(request.params).map(|params| {
                    let at = params.text_document_position_params;
                    let result =
                        self.at(&at.text_document.uri, at.position, definition::definition);
                    serde_json::to_value(result)
                })
            }
            "textDocument/formatting" => {
                parse::<DocumentFormattingParams>(request.params).map(|params| {
                    let edits = self
                        .documents
                        .get(params.text_document.uri.as_str())
                        .map(|open| formatting::format(&open.document.index));
                    serde_json::to_value(edits)
                })
            }
            _ => {
                return Response::new_err(
                    id,
                    ErrorCode::MethodNotFound as i32,
                    format!("flowc lsp does not handle {}", request.method),
                )
            }
        };
        match answer {
            Some(Ok(value)) => Response {
                id,
                result: Some(value),
                error: None,
            },
            Some(Err(error)) => {
                Response::new_err(id, ErrorCode::InternalError as i32, error.to_string())
            }
            None => Response::new_err(
                id,
                ErrorCode::InvalidParams as i32,
                "invalid parameters".to_string(),
            ),
        }
    }

    /// Answers a request at a position of an open document from its newest
    /// text and its project's latest check.
    fn at<T>(
        &self,
        uri: &Uri,
        position: lsp_types::Position,
        answer: impl FnOnce(&documents::LineIndex, usize, &Analysis) -> Option<T>,
    ) -> Option<T> {
        let open = self.documents.get(uri.as_str())?;
        let analysis = lock(&self.shared.analyses)
            .get(&open.project)
            .cloned()
            .unwrap_or_else(Analysis::standard);
        let offset = open.document.index.offset(position);
        answer(&open.document.index, offset, &analysis)
    }
}

fn parse<T: DeserializeOwned>(params: serde_json::Value) -> Option<T> {
    serde_json::from_value(params).ok()
}

/// The checking thread: waits for work, lets typing pause, checks the dirty
/// projects and publishes diagnostics that are still current.
fn worker(shared: &Shared, outbox: Outbox) {
    // What each file last got, so unchanged diagnostics are not sent again.
    let mut published: HashMap<String, Vec<lsp_types::Diagnostic>> = HashMap::new();
    loop {
        let mut queue = lock(&shared.queue);
        while queue.dirty.is_empty() && !queue.stop {
            queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
        // Debounce: wait until no change came for a whole interval.
        loop {
            if queue.stop {
                return;
            }
            let seen = queue.generation;
            queue = shared
                .wake
                .wait_timeout(queue, DEBOUNCE)
                .map(|(q, _)| q)
                .unwrap_or_else(|e| e.into_inner().0);
            if queue.generation == seen {
                break;
            }
        }
        if queue.stop {
            return;
        }
        let dirty = std::mem::take(&mut queue.dirty);
        for uri in std::mem::take(&mut queue.forget) {
            published.remove(&uri);
        }
        let open = queue.open.clone();
        drop(queue);

        for project in dirty {
            let docs: Vec<OpenText> = open
                .iter()
                .filter(|(key, _)| *key == project)
                .map(|(_, doc)| doc.clone())
                .collect();
            let Ok(mut result) =
                catch_unwind(AssertUnwindSafe(|| analysis::analyze(&project, &docs)))
            else {
                continue;
            };
            let previous = lock(&shared.analyses).get(&project).cloned();
            if let Some(previous) = previous {
                analysis::keep_lost_declarations(&previous, &mut result);
            }
            let result = Arc::new(result);
            lock(&shared.analyses).insert(project.clone(), result.clone());
            // A newer text of this project is waiting: these diagnostics are
            // already stale, and the next check replaces them.
            let queue = lock(&shared.queue);
            if queue.stop {
                return;
            }
            if queue.dirty.contains(&project) {
                continue;
            }
            drop(queue);
            let fallback = docs.first().map(|d| &d.uri);
            for file in diagnostics::by_file(&result, fallback) {
                let key = file.uri.as_str().to_string();
                let unchanged = match published.get(&key) {
                    Some(previous) => *previous == file.diagnostics,
                    // Files that are not open get diagnostics only when they
                    // have some; open ones always get their first answer.
                    None => file.diagnostics.is_empty() && file.version.is_none(),
                };
                if unchanged {
                    continue;
                }
                published.insert(key, file.diagnostics.clone());
                let params = PublishDiagnosticsParams {
                    uri: file.uri,
                    diagnostics: file.diagnostics,
                    version: file.version,
                };
                let message =
                    Notification::new("textDocument/publishDiagnostics".to_string(), params);
                if !outbox(message.into()) {
                    return;
                }
            }
        }
    }
}
