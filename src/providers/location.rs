//! Where the engine's durable store lives, named by a URL: a SQLite file
//! (`sqlite:flows.db`, the default, for one machine) or a PostgreSQL
//! database (`postgres://...`, shared by several nodes). Read from `[store]`
//! in flow.toml or a command line's `--store`, and opened as a
//! [`Store`](super::Store).
//!
//! ```
//! use std::path::Path;
//! use flowc::providers::location::StoreLocation;
//!
//! let project = Path::new("/srv/shop");
//! assert_eq!(
//!     StoreLocation::parse("sqlite:flows.db", project).unwrap(),
//!     StoreLocation::Sqlite(project.join("flows.db"))
//! );
//! let cluster = StoreLocation::parse("postgres://flowc:secret@db:5432/flows", project).unwrap();
//! assert!(matches!(cluster, StoreLocation::Postgres(_)));
//! // Shown without its password.
//! assert_eq!(cluster.to_string(), "postgres://flowc:***@db:5432/flows");
//! assert!(StoreLocation::parse("mysql://db/flows", project).is_err());
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::postgres::{redact, PostgresOptions, PostgresStore};
use super::sqlite::{SqliteOptions, SqliteStore};
use super::{Store, StoreError};

/// A store's place.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: Debug shows what Display shows.
        write!(f, "StoreLocation({self})")
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl StoreLocation {
    /// Reads a store URL: `sqlite:PATH`, `postgres://...`,
    /// `postgresql://...`, or a plain path, taken as a SQLite file. A
    /// relative SQLite path is relative to `base` (the folder of flow.toml).
    pub fn parse(text: &str, base: &Path) -> Result<StoreLocation, String> {
        let text = text.trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(text.to_string()));
        }
        let path = match text.strip_prefix("sqlite:") {
            // `sqlite://PATH` is also common; `sqlite:///abs` is absolute.
            Some(rest) => rest.strip_prefix("//").unwrap_or(rest),
            None => {
                if let Some((scheme, _)) = text.split_once("://") {
                    return Err(format!(
                        "`{scheme}://` is not a store flowc knows: use `sqlite:FILE` or \
                         `postgres://USER@HOST/DATABASE`"
                    ));
                }
                text
            }
        };
        if path.is_empty() {
            return Err("the store URL names no file: use `sqlite:flows.db`".to_string());
        }
        Ok(StoreLocation::Sqlite(base.join(path)))
    }

    /// Whether several processes on several machines can share the store.
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreLocation::Postgres(_))
    }

    /// Opens the store (creating a SQLite file, migrating either schema).
    /// A SQLite file is opened on a blocking thread.
    pub async fn open(&self, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
        match self {
            StoreLocation::Sqlite(path) => {
                let path = path.clone();
                let sqlite = SqliteOptions {
                    lease: options.lease,
                    ..SqliteOptions::default()
                };
                let store =
                    tokio::task::spawn_blocking(move || SqliteStore::open_with(path, sqlite))
                        .await
                        .map_err(|e| StoreError::Backend(format!("sqlite: opening: {e}")))??;
                Ok(Arc::new(store))
            }
            StoreLocation::Postgres(url) => {
                let postgres = PostgresOptions {
                    lease: options.lease,
                    pool_size: options
                        .pool_size
                        .unwrap_or(PostgresOptions::default().pool_size),
                    ..PostgresOptions::default()
                };
                Ok(Arc::new(PostgresStore::connect_with(url, postgres).await?))
            }
        }
    }
}

/// How [`StoreLocation::open`] opens a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// How long a claimed run stays leased (5 minutes by default).
    pub lease: chrono::Duration,
    /// A PostgreSQL node's most connections; `None` for the default.
    pub pool_size: Option<usize>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            lease: chrono::Duration::minutes(5),
            pool_size: None,
        }
    }
}

/// `[store]` in flow.toml: where `flowc serve` and the commands on its store
/// keep it. Without the table, flows.db next to flow.toml.
///
/// ```toml
/// [store]
/// url_env = "FLOWC_DATABASE_URL"   # or: url = "sqlite:flows.db"
/// pool_size = 16
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The store URL, e.g. `sqlite:flows.db` or `postgres://flowc@db/flows`.
    pub url: Option<String>,
    /// The environment variable that holds the URL, so a database password
    /// stays out of flow.toml.
    pub url_env: Option<String>,
    /// The most connections each node keeps to PostgreSQL.
    pub pool_size: Option<usize>,
}

impl StoreConfig {
    /// What is wrong with the settings themselves, checked with flow.toml.
    pub fn problem(&self) -> Option<String> {
        if self.url.is_some() && self.url_env.is_some() {
            return Some("give `url` or `url_env`, not both".to_string());
        }
        if self.pool_size == Some(0) {
            return Some("`pool_size` must be at least 1".to_string());
        }
        let url = self.url.as_deref()?;
        StoreLocation::parse(url, Path::new("")).err()
    }

    /// The configured store, with `url_env` read now; `None` when flow.toml
    /// names none.
    pub fn location(&self, base: &Path) -> Result<Option<StoreLocation>, String> {
        let url = match (&self.url, &self.url_env) {
            (Some(url), _) => url.clone(),
            (None, Some(variable)) => std::env::var(variable).map_err(|_| {
                format!("flow.toml [store] reads the store URL from ${variable}, which is not set")
            })?,
            (None, None) => return Ok(None),
        };
        StoreLocation::parse(&url, base).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        let base = Path::new("/p");
        for (text, expected) in [
            ("flows.db", "/p/flows.db"),
            ("sqlite:data/flows.db", "/p/data/flows.db"),
            ("sqlite:///var/flows.db", "/var/flows.db"),
            ("/var/flows.db", "/var/flows.db"),
        ] {
            assert_eq!(
                StoreLocation::parse(text, base).unwrap(),
                StoreLocation::Sqlite(PathBuf::from(expected)),
                "{text}"
            );
        }
        assert!(StoreLocation::parse("postgresql://db/flows", base)
            .unwrap()
            .is_shared());
        let error = StoreLocation::parse("redis://cache", base).unwrap_err();
        assert!(error.contains("`redis://` is not a store"), "{error}");
        assert!(StoreLocation::parse("sqlite:", base).is_err());
    }

    #[test]
    fn config_problems() {
        let both = StoreConfig {
            url: Some("sqlite:a.db".into()),
            url_env: Some("DB".into()),
            pool_size: None,
        };
        assert_eq!(both.problem().unwrap(), "give `url` or `url_env`, not both");
        let unknown = StoreConfig {
            url: Some("mongodb://x".into()),
            ..StoreConfig::default()
        };
        assert!(unknown.problem().unwrap().contains("mongodb"));
        let missing = StoreConfig {
            url_env: Some("FLOWC_TEST_SURELY_UNSET_VARIABLE".into()),
            ..StoreConfig::default()
        };
        assert!(missing.problem().is_none());
        assert!(missing
            .location(Path::new(""))
            .unwrap_err()
            .contains("$FLOWC_TEST_SURELY_UNSET_VARIABLE, which is not set"));
        assert_eq!(StoreConfig::default().location(Path::new("")), Ok(None));
    }
}
