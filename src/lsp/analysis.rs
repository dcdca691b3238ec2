//! Checking a project the way `flowc check` does, for the editor.
//!
//! A document belongs to a project: the folder of the nearest `flow.toml` at or
//! above it, or its own folder when there is none. A check reads that
//! project's `.flow` files, takes the editor's text instead of the disk's for
//! open documents, and runs [`Compiler`] on them with the `flow.toml`, so the
//! editor shows exactly what `flowc check FOLDER` prints. The result is kept
//! as an [`Analysis`]: the diagnostics, and the schemas and configuration that
//! hover, completion and definition answer from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use lsp_types::Uri;

use super::documents::{path_to_uri, LineIndex};
use crate::check::{Compiler, Schemas, STD_DECLARATIONS};
use crate::config::Config;
use crate::diag::{Diagnostic, Diagnostics};
use crate::project::CONFIG_FILE;
use crate::source::FileId;
use crate::syntax::{self, ast};

/// The most `.flow` files read from disk for one project: a document opened
/// outside any project (say, in the home folder) must not make the server
/// read a whole disk.
const MAX_PROJECT_FILES: usize = 2_000;

/// Folders never searched for `.flow` files: build output and dependencies.
const SKIPPED_FOLDERS: &[&str] = &["target", "node_modules"];

/// Which project a document belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProjectKey {
    /// A folder on disk.
    Folder(PathBuf),
    /// A document without a file (`untitled:`), checked alone.
    Alone(String),
}

/// The project of a document: the nearest folder at or above it that holds
/// a `flow.toml`, else the document's own folder.
pub fn project_key(uri: &Uri, path: Option<&Path>) -> ProjectKey {
    let Some(folder) = path.and_then(Path::parent) else {
        return ProjectKey::Alone(uri.as_str().to_string());
    };
    let with_config = folder
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE).is_file());
    ProjectKey::Folder(with_config.unwrap_or(folder).to_path_buf())
}

/// An open document as a check sees it.
#[derive(Debug, Clone)]
pub struct OpenText {
    /// The editor's name for it.
    pub uri: Uri,
    /// Its file, if it has one.
    pub path: Option<PathBuf>,
    /// The editor's version.
    pub version: i32,
    /// The text.
    pub text: Arc<str>,
}

/// One file that took part in a check, by its [`FileId`].
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Where the editor can open it; `None` for the embedded standard
    /// declarations.
    pub uri: Option<Uri>,
    /// The version of an open document, for publishing.
    pub version: Option<i32>,
    /// Its text as checked.
    pub index: LineIndex,
}

/// The result of checking one project.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Every file, indexed by the [`FileId`] spans carry.
    pub files: Vec<FileEntry>,
    /// What the checker found, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// Everything declared (standard and the project's own), also when the
    /// flows have errors.
    pub schemas: Arc<Schemas>,
    /// The project configuration, if there is a `flow.toml`.
    pub config: Option<Arc<Config>>,
}

impl Analysis {
    /// The file a span points into.
    pub fn file(&self, id: FileId) -> Option<&FileEntry> {
        self.files.get(id.0 as usize)
    }

    /// An analysis of the standard declarations alone, for answering before
    /// the first check of a project has finished.
    pub fn standard() -> Arc<Analysis> {
        static STANDARD: OnceLock<Arc<Analysis>> = OnceLock::new();
        STANDARD
            .get_or_init(|| {
                let files = std_files();
                let modules = std_modules();
                Arc::new(Analysis {
                    files,
                    diagnostics: Vec::new(),
                    schemas: Arc::new(load_schemas(modules.iter())),
                    config: None,
                })
            })
            .clone()
    }
}

fn std_files() -> Vec<FileEntry> {
    STD_DECLARATIONS
        .iter()
        .map(|(_, text)| FileEntry {
            uri: None,
            version: None,
            index: LineIndex::new(*text),
        })
        .collect()
}

/// The standard declarations parsed with the file ids [`Compiler::new`]
/// gives them (the first ones), once per process.
fn std_modules() -> &'static [ast::Module] {
    static STD: OnceLock<Vec<ast::Module>> = OnceLock::new();
    STD.get_or_init(|| {
        STD_DECLARATIONS
            .iter()
            .enumerate()
            .map(|(i, (_, text))| syntax::parse(FileId(i as u32), text).0)
            .collect()
    })
}

/// The schemas of `modules`; mistakes in the declarations are the checker
/// run's to report, so they are dropped here.
fn load_schemas<'a>(modules: impl Iterator<Item = &'a ast::Module>) -> Schemas {
    crate::check::load_schemas(modules, &mut Diagnostics::new())
}

/// Checks one project: its `.flow` files on disk, with the open documents'
/// texts instead, and its `flow.toml`. Never panics on any text.
pub fn analyze(key: &ProjectKey, open: &[OpenText]) -> Analysis {
    let mut files = std_files();
    let mut compiler = Compiler::new();
    let mut sources: Vec<(String, Arc<str>)> = Vec::new();
    let mut config = None;

    let open_by_path: HashMap<&Path, &OpenText> = open
        .iter()
        .filter_map(|doc| doc.path.as_deref().map(|p| (p, doc)))
        .collect();
    match key {
        ProjectKey::Alone(_) => {
            for doc in open {
                files.push(FileEntry {
                    uri: Some(doc.uri.clone()),
                    version: Some(doc.version),
                    index: LineIndex::new(doc.text.clone()),
                });
                sources.push((doc.uri.as_str().to_string(), doc.text.clone()));
            }
        }
        ProjectKey::Folder(root) => {
            let mut paths = Vec::new();
            collect_flows(root, &mut paths);
            // Open documents not yet saved to disk take part too.
            for doc in open {
                if let Some(path) = &doc.path {
                    if !paths.contains(path) {
                        paths.push(path.clone());
                    }
                }
            }
            // Name order, as `flowc check` reads them: which of two
            // duplicates is "defined again" must not depend on open order.
            paths.sort();
            for path in paths {
                let (text, uri, version) = match open_by_path.get(path.as_path()) {
                    Some(doc) => (doc.text.clone(), Some(doc.uri.clone()), Some(doc.version)),
                    None => match crate::project::read_text(&path) {
                        Ok(text) => (Arc::from(text), path_to_uri(&path), None),
                        // A file that vanished or is not text is not part of
                        // the project any more.
                        Err(_) => continue,
                    },
                };
                files.push(FileEntry {
                    uri,
                    version,
                    index: LineIndex::new(text.clone()),
                });
                sources.push((path.display().to_string(), text));
            }
            let config_path = root.join(CONFIG_FILE);
            if let Ok(text) = crate::project::read_text(&config_path) {
                config = Some((config_path, text));
            }
        }
    }

    for (name, text) in &sources {
        compiler.add_source(name.clone(), text.to_string());
    }
    let mut parsed_config = None;
    if let Some((path, text)) = config {
        let id = compiler.add_config(path.display().to_string(), text.clone());
        // The checker keeps its configuration to itself; completion needs the
        // names, so the file is parsed once more here.
        parsed_config = Some(Arc::new(Config::parse(&text, id).0));
        files.push(FileEntry {
            uri: path_to_uri(&path),
            version: None,
            index: LineIndex::new(text),
        });
    }
    let checked = compiler.check();
    let schemas = match &checked.program {
        Some(program) => program.schemas().clone(),
        // With errors there is no program, but hover and completion still
        // need the project's declarations: the parser recovers item by item,
        // so every well-formed declaration is found.
        None => {
            let base = STD_DECLARATIONS.len();
            // Only files that may declare something are parsed again: a
            // long file of flows costs nothing extra.
            let user: Vec<ast::Module> = sources
                .iter()
                .enumerate()
                .filter(|(_, (_, text))| may_declare(text))
                .map(|(i, (_, text))| syntax::parse(FileId((base + i) as u32), text).0)
                .collect();
            load_schemas(std_modules().iter().chain(user.iter()))
        }
    };
    Analysis {
        files,
        diagnostics: checked.diagnostics.into_vec(),
        schemas: Arc::new(schemas),
        config: parsed_config,
    }
}

/// While the project has syntax errors, keeps the declarations of the
/// previous check that the broken text lost, so hover and completion still
/// know a trigger whose declaration is being edited. Once everything parses,
/// the check's own declarations are the truth again.
pub fn keep_lost_declarations(previous: &Analysis, result: &mut Analysis) {
    let broken = result
        .diagnostics
        .iter()
        .any(|d| d.code == crate::diag::Code::SyntaxError);
    if !broken {
        return;
    }
    let mut schemas = (*result.schemas).clone();
    for (name, trigger) in &previous.schemas.triggers {
        schemas
            .triggers
            .entry(name.clone())
            .or_insert_with(|| trigger.clone());
    }
    for (name, action) in &previous.schemas.actions {
        schemas
            .actions
            .entry(name.clone())
            .or_insert_with(|| action.clone());
    }
    for (name, ty) in &previous.schemas.types {
        schemas
            .types
            .entry(name.clone())
            .or_insert_with(|| ty.clone());
    }
    for (name, error) in &previous.schemas.errors {
        schemas
            .errors
            .entry(name.clone())
            .or_insert_with(|| error.clone());
    }
    result.schemas = Arc::new(schemas);
}

/// Whether a text may hold a declaration: a line that starts (after
/// attributes and spaces) with `trigger`, `action`, `type` or `error`.
fn may_declare(text: &str) -> bool {
    static DECLARATION: OnceLock<Option<regex::Regex>> = OnceLock::new();
    DECLARATION
        .get_or_init(|| {
            regex::Regex::new(
                r"(?m)^[ \t]*(?:@\w+(?:\([^)\n]*\))?[ \t]*)*(?:trigger|action|type|error)\b",
            )
            .ok()
        })
        .as_ref()
        .is_none_or(|re| re.is_match(text))
}

/// The `.flow` files under `folder`, in name order, as `flowc check FOLDER`
/// finds them, without hidden and build folders and at most
/// [`MAX_PROJECT_FILES`].
fn collect_flows(folder: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if out.len() >= MAX_PROJECT_FILES {
            return;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && !SKIPPED_FOLDERS.contains(&name) {
                collect_flows(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "flow") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alone(text: &str) -> Analysis {
        let uri: Uri = "untitled:t.flow".parse().unwrap();
        let key = ProjectKey::Alone(uri.as_str().to_string());
        let open = OpenText {
            uri,
            path: None,
            version: 1,
            text: Arc::from(text),
        };
        analyze(&key, &[open])
    }

    #[test]
    fn declarations_being_edited_are_kept_while_the_text_is_broken() {
        let good = alone("trigger shop.order { id: String }\n");
        assert!(good.schemas.triggers.contains_key("shop.order"));
        let mut broken = alone("trigger shop.order { id: Str\n");
        assert!(!broken.schemas.triggers.contains_key("shop.order"));
        keep_lost_declarations(&good, &mut broken);
        assert!(broken.schemas.triggers.contains_key("shop.order"));
        // Fixed text with the trigger removed: it is gone.
        let mut fixed = alone("flow f\non call.ended as c { stop }\n");
        keep_lost_declarations(&good, &mut fixed);
        assert!(!fixed.schemas.triggers.contains_key("shop.order"));
    }

    #[test]
    fn declarations_are_recognised_by_their_first_word() {
        assert!(may_declare(
            "## doc\n@opens_window(phone)\ntrigger a.b {\n}\n"
        ));
        assert!(may_declare("flow f\n@retryable error Down\n"));
        assert!(may_declare("  type Lead { id: String }"));
        assert!(!may_declare(
            "flow f\non call.ended as c {\n    log(\"type error\")\n}\n"
        ));
    }
}
