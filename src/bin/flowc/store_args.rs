//! The `--config` and `--store` options of the commands that work on the
//! store of `flowc serve` without running it (`flowc conversation`,
//! `flowc campaign status`, `flowc opt-outs`), and the store they open.

use std::path::PathBuf;

use clap::Args;
use flowc::providers::sqlite::SqliteStore;

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The project configuration.
    #[arg(long, value_name = "FILE", default_value = "flow.toml")]
    pub config: PathBuf,
    /// The SQLite database of `flowc serve`; by default flows.db next to
    /// flow.toml.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

impl StoreArgs {
    /// The project's store: `--store`, or flows.db next to flow.toml.
    pub fn open(&self) -> Result<SqliteStore, String> {
        let path = match &self.store {
            Some(path) => path.clone(),
            None => self
                .config
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default()
                .join("flows.db"),
        };
        SqliteStore::open(&path).map_err(|e| e.to_string())
    }
}
