//! Finding a project's files: the `.flow` files under the given paths and the
//! `flow.toml` next to them, read into a [`Compiler`].

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::check::Compiler;

/// The name of the project configuration file.
pub const CONFIG_FILE: &str = "flow.toml";

/// Why a project could not be read.
#[derive(Debug, Error)]
pub enum ProjectError {
    /// A path given does not exist.
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file is not UTF-8 text.
    #[error("{} is not UTF-8 text (invalid byte at offset {offset})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// No `.flow` file was found under the paths.
    #[error("no .flow files found in {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoFlows {
        /// The paths that were searched.
        paths: Vec<PathBuf>,
    },
}

/// The files of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The `.flow` files, in a stable order.
    pub flows: Vec<PathBuf>,
    /// The configuration file, if one was given or found.
    pub config: Option<PathBuf>,
}

impl Project {
    /// Finds the `.flow` files under `paths` (files as given, folders searched
    /// recursively, in name order) and the configuration: `config` when given,
    /// else the first `flow.toml` in the folder of a path.
    ///
    /// ```
    /// use flowc::project::Project;
    ///
    /// let project = Project::discover(&["examples".into()], None).unwrap();
    /// assert!(project.flows.iter().any(|p| p.ends_with("call_follow_up.flow")));
    /// assert!(project.config.unwrap().ends_with("flow.toml"));
    /// ```
    pub fn discover(paths: &[PathBuf], config: Option<&Path>) -> Result<Project, ProjectError> {
        let mut flows = Vec::new();
        let mut found_config = None;
        for path in paths {
            if !path.exists() {
                return Err(ProjectError::NotFound(path.clone()));
            }
            let folder = if path.is_dir() {
                collect_flows(path, &mut flows)?;
                Some(path.as_path())
            } else {
                flows.push(path.clone());
                path.parent()
            };
            if found_config.is_none() {
                let candidate = folder.map(|f| f.join(CONFIG_FILE)).filter(|c| c.is_file());
                found_config = candidate;
            }
        }
        if flows.is_empty() {
            return Err(ProjectError::NoFlows {
                paths: paths.to_vec(),
            });
        }
        // A file named twice (`a.flow` and its folder, `x/` and `./x/`) is
        // one file: checking it twice would report its flows as duplicates.
        let mut seen = std::collections::HashSet::new();
        flows.retain(|path| {
            seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
        });
        let config = match config {
            Some(path) if !path.exists() => return Err(ProjectError::NotFound(path.to_path_buf())),
            Some(path) => Some(path.to_path_buf()),
            None => found_config,
        };
        Ok(Project { flows, config })
    }

    /// The paths to check when a command is given `paths` and acts on
    /// them only: a `.flow` file inside a project (a flow.toml beside it, or
    /// `config` given) is checked with its whole folder, whose declarations
    /// and sends it may rely on; folders and files outside a project stay as
    /// given. `flowc run FILE` and `flowc test FILE` use it, then keep the
    /// flows or tests of the files given ([`Project::names_of`]).
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use flowc::project::Project;
    ///
    /// let paths = Project::widen(&[PathBuf::from("examples/call_follow_up.flow")], None);
    /// assert_eq!(paths, [PathBuf::from("examples")]);
    /// ```
    pub fn widen(paths: &[PathBuf], config: Option<&Path>) -> Vec<PathBuf> {
        let mut widened: Vec<PathBuf> = Vec::with_capacity(paths.len());
        for path in paths {
            let folder = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let in_project =
                path.is_file() && (config.is_some() || folder.join(CONFIG_FILE).is_file());
            let path = if in_project { folder } else { path.clone() };
            if !widened.contains(&path) {
                widened.push(path);
            }
        }
        widened
    }

    /// The names the compiler knows the `files` by (as this project found
    /// them), for [`crate::check::Program::only_flows_in`] and for picking
    /// tests; files the project did not find are left out.
    pub fn names_of(&self, files: &[PathBuf]) -> Vec<String> {
        let canonical = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
        let wanted: Vec<PathBuf> = files.iter().map(|f| canonical(f)).collect();
        self.flows
            .iter()
            .filter(|path| wanted.contains(&canonical(path)))
            .map(|path| display_name(path))
            .collect()
    }

    /// Reads every file into a compiler with the standard declarations.
    pub fn compiler(&self) -> Result<Compiler, ProjectError> {
        let mut compiler = Compiler::new();
        for path in &self.flows {
            compiler.add_source(display_name(path), read_text(path)?);
        }
        if let Some(path) = &self.config {
            compiler.add_config(display_name(path), read_text(path)?);
        }
        Ok(compiler)
    }
}

fn display_name(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a file as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, ProjectError> {
    let bytes = std::fs::read(path).map_err(|source| ProjectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| ProjectError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

fn collect_flows(folder: &Path, out: &mut Vec<PathBuf>) -> Result<(), ProjectError> {
    let read_error = |source| ProjectError::Read {
        path: folder.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(read_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_flows(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "flow") {
            out.push(path);
        }
    }
    Ok(())
}
