//! Request headers → `Principal`. Exactly one credential per request: a JWT or a
//! static key as `Authorization: Bearer …`, or a static key as `X-API-Key`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poem::http::{header, HeaderMap};

use crate::db::now_ms;
use crate::jwt::{AccessClaims, TokenRejection, LEEWAY_SECS};
use crate::principal::{CredentialKind, Environment, Principal};
use crate::repo;
use crate::scope::{Scope, ScopeSet};
use crate::secret::ApiKeySecret;
use crate::service::AuthService;

/// How long a resolved static key is trusted without asking the database again.
/// Revocations reach every instance sooner, through the revocation feed.
const KEY_CACHE_MAX_AGE: Duration = Duration::from_secs(60);

/// The `reason` of a 401, as listed in DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnauthorizedReason {
    MissingApiKey,
    InvalidApiKey,
    RevokedApiKey,
    InvalidToken,
    ExpiredToken,
}

impl UnauthorizedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnauthorizedReason::MissingApiKey => "MISSING_API_KEY",
            UnauthorizedReason::InvalidApiKey => "INVALID_API_KEY",
            UnauthorizedReason::RevokedApiKey => "REVOKED_API_KEY",
            UnauthorizedReason::InvalidToken => "INVALID_TOKEN",
            UnauthorizedReason::ExpiredToken => "EXPIRED_TOKEN",
        }
    }
}

/// Why a request could not be authenticated or authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 400: more than one credential was presented.
    #[error("send exactly one credential: either Authorization or X-API-Key, not both")]
    TwoCredentials,
    /// 401 with a reason.
    #[error("{message}")]
    Unauthorized { reason: UnauthorizedReason, message: &'static str },
    /// 403: authenticated, but the scope is missing.
    #[error("this credential lacks the `{0}` scope")]
    Forbidden(Scope),
    /// 500: the database failed while resolving a key.
    #[error("credential store unavailable")]
    Internal,
}

impl AuthError {
    fn unauthorized(reason: UnauthorizedReason, message: &'static str) -> Self {
        AuthError::Unauthorized { reason, message }
    }
}

/// A static key resolved from the database.
#[derive(Debug)]
pub(crate) struct CachedKey {
    pub id: String,
    pub principal: Arc<Principal>,
    pub revoked: bool,
    /// End of a rotation's grace period (ms).
    pub expires_at: Option<i64>,
    pub loaded_at: std::time::Instant,
    /// Last use seen by this instance (ms; 0: none) and the last value written.
    pub last_used: AtomicI64,
    pub flushed: AtomicI64,
}

/// A JWT whose signature and claims were verified once.
#[derive(Debug)]
pub(crate) struct CachedToken {
    pub claims: AccessClaims,
    pub principal: Arc<Principal>,
}

impl Principal {
    /// 403 unless the principal's scopes allow `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.allows(scope) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(scope))
        }
    }
}

impl AuthService {
    /// Authenticates a request from its headers. The principal is the credential's
    /// cached one, shared: each request's own copy was three or four strings allocated
    /// here and again for the audit entry, freed by the audit writer's thread.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
        let authorization = headers.get(header::AUTHORIZATION);
        let api_key = headers.get("x-api-key");
        match (authorization, api_key) {
            (Some(_), Some(_)) => Err(AuthError::TwoCredentials),
            (None, None) => Err(AuthError::unauthorized(
                UnauthorizedReason::MissingApiKey,
                "send a credential: Authorization: Bearer <token or key>, or X-API-Key: <key>",
            )),
            (None, Some(value)) => {
                let key = value.to_str().map_err(|_| invalid_key())?.trim();
                self.authenticate_key(key).await
            }
            (Some(value), None) => {
                let value = value.to_str().map_err(|_| invalid_key())?;
                let (scheme, credential) = value.trim().split_once(' ').ok_or_else(|| {
                    AuthError::unauthorized(
                        UnauthorizedReason::InvalidApiKey,
                        "the Authorization header must be `Bearer <token or key>`",
                    )
                })?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(AuthError::unauthorized(
                        UnauthorizedReason::InvalidApiKey,
                        "the Authorization header must use the Bearer scheme",
                    ));
                }
                let credential = credential.trim();
                if ApiKeySecret::looks_like_key(credential) {
                    self.authenticate_key(credential).await
                } else {
                    self.authenticate_jwt(credential)
                }
            }
        }
    }

    /// Resolves a static key; a key failing its prefix or checksum never reaches the database.
    pub async fn authenticate_key(&self, presented: &str) -> Result<Arc<Principal>, AuthError> {
        // Checked in place and cached by the digest's bytes: the key is not copied, nor
        // its digest written in hex, unless the database is asked.
        ApiKeySecret::check(presented).map_err(|_| invalid_key())?;
        let digest = ApiKeySecret::digest(presented);
        let cached = match self.key_cache.get(&digest) {
            Some(entry) if entry.loaded_at.elapsed() < KEY_CACHE_MAX_AGE => entry,
            stale => {
                let entry = self.load_key(&crate::secret::to_hex(&digest)).await?.ok_or_else(invalid_key)?;
                if let Some(old) = stale {
                    entry.last_used.store(old.last_used.load(Ordering::Relaxed), Ordering::Relaxed);
                    entry.flushed.store(old.flushed.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                self.key_cache.insert(digest, entry.clone());
                entry
            }
        };
        if cached.revoked {
            return Err(AuthError::unauthorized(UnauthorizedReason::RevokedApiKey, "this API key has been revoked"));
        }
        if cached.expires_at.is_some_and(|at| at <= now_ms()) {
            return Err(AuthError::unauthorized(
                UnauthorizedReason::RevokedApiKey,
                "this API key was rotated and its grace period has ended",
            ));
        }
        cached.last_used.store(now_ms(), Ordering::Relaxed);
        Ok(cached.principal.clone())
    }

    async fn load_key(&self, hash: &str) -> Result<Option<Arc<CachedKey>>, AuthError> {
        self.key_db_lookups.fetch_add(1, Ordering::Relaxed);
        let record = repo::api_keys::find_by_hash(self.db.pool(), hash).await.map_err(|err| {
            tracing::error!(error = %err, "api key lookup failed");
            AuthError::Internal
        })?;
        let Some(record) = record else { return Ok(None) };
        let env: Environment = record.env.parse().map_err(|_| AuthError::Internal)?;
        let scopes = ScopeSet::parse(&record.scopes).map_err(|_| AuthError::Internal)?;
        Ok(Some(Arc::new(CachedKey {
            principal: Arc::new(Principal {
                org_id: record.org_id,
                env,
                scopes,
                credential_id: record.id.clone(),
                kind: CredentialKind::ApiKey,
                token_id: None,
            }),
            id: record.id,
            revoked: record.revoked_at.is_some(),
            expires_at: record.expires_at,
            loaded_at: std::time::Instant::now(),
            last_used: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
        })))
    }

    /// Verifies a JWT (once per distinct token; later only expiry and revocation).
    pub fn authenticate_jwt(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let entry = match self.token_cache.get(token) {
            Some(entry) => entry,
            None => {
                let claims = self.keyring.verify(token).map_err(|rejection| match rejection {
                    TokenRejection::Expired => expired_token(),
                    TokenRejection::Invalid => AuthError::unauthorized(
                        UnauthorizedReason::InvalidToken,
                        "the access token is malformed, or its signature, issuer or audience is wrong",
                    ),
                })?;
                let entry = Arc::new(CachedToken { principal: Arc::new(principal_of(&claims)?), claims });
                self.token_cache.insert(token.to_owned(), entry.clone());
                entry
            }
        };
        if entry.claims.exp + (LEEWAY_SECS as i64) < now_ms() / 1000 {
            self.token_cache.remove(token);
            return Err(expired_token());
        }
        if self.revoked_jtis.read().contains_key(&entry.claims.jti) {
            return Err(AuthError::unauthorized(UnauthorizedReason::InvalidToken, "this access token has been revoked"));
        }
        if self.disabled_clients.read().contains(&entry.claims.client_id) {
            return Err(AuthError::unauthorized(
                UnauthorizedReason::InvalidToken,
                "the client this token was issued to is disabled",
            ));
        }
        Ok(entry.principal.clone())
    }

    /// The claims of a token whose signature, issuer and audience verify (expired or
    /// revoked ones included), or `None`.
    pub fn token_claims(&self, token: &str) -> Option<AccessClaims> {
        if let Some(entry) = self.token_cache.get(token) {
            return Some(entry.claims.clone());
        }
        self.keyring.verify(token).ok()
    }

    /// How many times a static key was looked up in the database since start.
    pub fn key_db_lookups(&self) -> u64 {
        self.key_db_lookups.load(Ordering::Relaxed)
    }
}

fn principal_of(claims: &AccessClaims) -> Result<Principal, AuthError> {
    let scopes = ScopeSet::parse(&claims.scope).map_err(|_| {
        AuthError::unauthorized(UnauthorizedReason::InvalidToken, "the access token carries an unknown scope")
    })?;
    Ok(Principal {
        org_id: claims.org_id.clone(),
        env: claims.env,
        scopes,
        credential_id: claims.client_id.clone(),
        kind: CredentialKind::OauthClient,
        token_id: Some(claims.jti.clone()),
    })
}

fn invalid_key() -> AuthError {
    AuthError::unauthorized(UnauthorizedReason::InvalidApiKey, "the API key is not valid")
}

fn expired_token() -> AuthError {
    AuthError::unauthorized(UnauthorizedReason::ExpiredToken, "the access token has expired; request a new one")
}
