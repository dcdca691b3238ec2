//! The store of `flowc serve`, for every command that opens it: where it is
//! (`--store`, else `[store]` in flow.toml, else flows.db next to
//! flow.toml), and the `--config`/`--store` options of the commands that
//! work on it without running flows (`flowc conversation`, `flowc campaign
//! status`, `flowc opt-outs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use flowc::config::Config;
use flowc::providers::location::{OpenOptions, StoreLocation};
use flowc::providers::Store;
use flowc::source::FileId;

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The project configuration.
    #[arg(long, value_name = "FILE", default_value = "flow.toml")]
    pub config: PathBuf,
    /// The store of `flowc serve`: a SQLite file (`flows.db`,
    /// `sqlite:flows.db`) or a PostgreSQL URL (`postgres://...`); by
    /// default `[store]` of flow.toml, else flows.db next to flow.toml.
    #[arg(long, value_name = "URL", env = "FLOWC_STORE", hide_env_values = true)]
    pub store: Option<String>,
}

impl StoreArgs {
    /// The project's store, opened.
    pub async fn open(&self) -> Result<Arc<dyn Store>, String> {
        let base = self.config.parent().map(PathBuf::from).unwrap_or_default();
        let config = if self.store.is_none() && self.config.exists() {
            Some(config(&self.config)?)
        } else {
            None
        };
        let location = store_location(self.store.as_deref(), config.as_ref(), &base)?;
        open(&location, &OpenOptions::default()).await
    }
}

/// flow.toml, refused when it has errors.
pub fn config(path: &Path) -> Result<Config, String> {
    let text = flowc::project::read_text(path).map_err(|e| e.to_string())?;
    let (config, diagnostics) = Config::parse(&text, FileId(0));
    if let Some(problem) = diagnostics.iter().find(|d| d.is_error()) {
        return Err(format!(
            "{} has errors ({}): run `flowc check` on your flows to see them",
            path.display(),
            problem.message
        ));
    }
    Ok(config)
}

/// Where the store is: `flag` (`--store`; a relative file is relative to
/// the current folder, as any command-line path), else `[store]` of
/// `config` (relative to `base`, the folder of flow.toml), else flows.db
/// in `base`.
pub fn store_location(
    flag: Option<&str>,
    config: Option<&Config>,
    base: &Path,
) -> Result<StoreLocation, String> {
    if let Some(flag) = flag {
        return StoreLocation::parse(flag, Path::new("")).map_err(|e| format!("--store: {e}"));
    }
    if let Some(location) = config
        .map(|config| config.store.location(base))
        .transpose()?
        .flatten()
    {
        return Ok(location);
    }
    Ok(StoreLocation::Sqlite(base.join("flows.db")))
}

/// Opens the store, saying which one failed.
pub async fn open(
    location: &StoreLocation,
    options: &OpenOptions,
) -> Result<Arc<dyn Store>, String> {
    location
        .open(options)
        .await
        .map_err(|e| format!("cannot open the store {location}: {e}"))
}
