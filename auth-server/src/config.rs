//! Settings of the authorization server, shared by both binaries (`#[command(flatten)]`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::limits::LimitsConfig;

/// Where data lives and how tokens are minted.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// Database URL: `postgres://…` for PostgreSQL, `sqlite://path` for a given SQLite file.
    /// Empty: the SQLite file `<data-dir>/breadbox.db`, created on first run.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = "", hide_env_values = true)]
    pub database_url: String,

    /// Directory for the embedded SQLite database (used when no DATABASE_URL is given).
    #[arg(long, global = true, env = "BREADBOX_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Largest number of pooled database connections.
    #[arg(long, global = true, env = "BREADBOX_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// The `iss` of issued tokens and the issuer of the RFC 8414 metadata. Empty: the
    /// server's own base URL, `http://<listen address>`.
    #[arg(long, global = true, env = "BREADBOX_ISSUER", default_value = "")]
    pub issuer: String,

    /// The `aud` of issued tokens, required of every token presented to the API.
    #[arg(long, global = true, env = "BREADBOX_AUDIENCE", default_value = "breadbox-api")]
    pub audience: String,

    /// How often each instance polls the revocation feed, in milliseconds (revocations
    /// made on another instance take effect within this, plus one database round trip).
    #[arg(long, global = true, env = "BREADBOX_REVOCATION_POLL_MS", default_value_t = 1000)]
    pub revocation_poll_ms: u64,

    #[command(flatten)]
    pub limits: LimitsConfig,
}

impl AuthConfig {
    /// A configuration for a SQLite database under `data_dir`, other settings default.
    pub fn for_data_dir(data_dir: PathBuf) -> Self {
        AuthConfig {
            database_url: String::new(),
            data_dir,
            db_max_connections: 16,
            issuer: String::new(),
            audience: "breadbox-api".to_owned(),
            revocation_poll_ms: 1000,
            limits: LimitsConfig::default(),
        }
    }

    pub fn revocation_poll(&self) -> Duration {
        Duration::from_millis(self.revocation_poll_ms.max(50))
    }
}
