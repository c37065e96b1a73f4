//! `AuthService`: the one shared state of the authorization server. Its behaviour is
//! split by concern: `authenticator` (request → Principal), `issuer` (client
//! credentials → token), `admin` (managing credentials), `sync` (the revocation feed).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use quick_cache::sync::Cache;

use crate::authenticator::{CachedKey, CachedToken};
use crate::config::AuthConfig;
use crate::db::{now_ms, Db};
use crate::issuer::VerifiedClient;
use crate::jwt::{generate_signing_key, KeySet, Keyring, LEEWAY_SECS, TOKEN_TTL_SECS};
use crate::limits::Limits;
use crate::repo;

/// Distinct static keys kept resolved in memory.
const KEY_CACHE_CAPACITY: usize = 100_000;
/// Distinct verified JWTs kept in memory (each until its `exp`).
const TOKEN_CACHE_CAPACITY: usize = 100_000;
/// OAuth clients whose secret was verified recently.
const CLIENT_CACHE_CAPACITY: usize = 10_000;

pub struct AuthService {
    pub(crate) db: Db,
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) config: AuthConfig,
    pub(crate) keyring: Keyring,
    /// By the SHA-256 of the key, as bytes.
    pub(crate) key_cache: Cache<[u8; 32], Arc<CachedKey>>,
    pub(crate) token_cache: Cache<String, Arc<CachedToken>>,
    pub(crate) client_cache: Cache<String, Arc<VerifiedClient>>,
    /// Revoked token ids with their expiry (ms); pruned once expired.
    pub(crate) revoked_jtis: RwLock<HashMap<String, i64>>,
    pub(crate) disabled_clients: RwLock<HashSet<String>>,
    /// Database look-ups made to resolve static keys (exposed as a metric).
    pub(crate) key_db_lookups: AtomicU64,
    pub(crate) feed_watermark: Mutex<i64>,
    pub(crate) limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("database error while loading keys: {0}")]
    Query(#[from] sqlx::Error),
    #[error(transparent)]
    Keys(#[from] crate::jwt::KeyError),
    #[error("invalid Redis URL for rate limits: {0}")]
    Redis(#[from] redis::RedisError),
}

impl AuthService {
    /// Opens the database, applies migrations, makes sure a signing key exists and
    /// loads the revocation state.
    pub async fn start(config: AuthConfig, default_issuer: String) -> Result<Arc<AuthService>, StartError> {
        let url = (!config.database_url.is_empty()).then_some(config.database_url.as_str());
        let db = Db::connect(url, &config.data_dir, config.db_max_connections).await?;
        db.migrate().await?;
        Self::with_db(db, config, default_issuer).await
    }

    pub async fn with_db(db: Db, config: AuthConfig, default_issuer: String) -> Result<Arc<AuthService>, StartError> {
        let mut records = repo::signing_keys::list_live(db.pool(), signing_key_horizon()).await?;
        if !records.iter().any(|r| r.retired_at.is_none()) {
            let fresh = generate_signing_key();
            repo::signing_keys::rotate(db.pool(), &fresh).await?;
            records = repo::signing_keys::list_live(db.pool(), signing_key_horizon()).await?;
        }
        let issuer = if config.issuer.is_empty() { default_issuer } else { config.issuer.clone() };
        let keyring = Keyring::new(KeySet::from_records(&records)?, &issuer, &config.audience);
        let limits = Limits::new(&config.limits, db.clone())?;
        limits.connect().await;
        let service = AuthService {
            issuer,
            audience: config.audience.clone(),
            keyring,
            key_cache: Cache::new(KEY_CACHE_CAPACITY),
            token_cache: Cache::new(TOKEN_CACHE_CAPACITY),
            client_cache: Cache::new(CLIENT_CACHE_CAPACITY),
            revoked_jtis: RwLock::new(HashMap::new()),
            disabled_clients: RwLock::new(HashSet::new()),
            key_db_lookups: AtomicU64::new(0),
            feed_watermark: Mutex::new(now_ms()),
            limits,
            config,
            db,
        };
        service.load_revocation_state().await?;
        Ok(Arc::new(service))
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The rate limiter of this instance.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The JWKS document (RFC 7517) of every key whose tokens may be alive.
    pub fn jwks(&self) -> Arc<str> {
        self.keyring.current().jwks()
    }

    /// Reloads signing keys from the database.
    pub async fn reload_signing_keys(&self) -> Result<(), StartError> {
        let records = repo::signing_keys::list_live(self.db.pool(), signing_key_horizon()).await?;
        self.keyring.replace(KeySet::from_records(&records)?);
        Ok(())
    }
}

/// Keys retired before this instant (ms) signed only tokens that have all expired.
pub(crate) fn signing_key_horizon() -> i64 {
    now_ms() - (TOKEN_TTL_SECS + LEEWAY_SECS as i64) * 1000
}
