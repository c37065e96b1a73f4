//! The client-credentials grant (RFC 6749 §4.4): verify the client, pick the scopes,
//! sign the token. Secrets are argon2id at rest; a verified-secret cache keyed by the
//! SHA-256 of the presented secret keeps argon2 off the hot path.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::now_ms;
use crate::jwt::{AccessClaims, TOKEN_TTL_SECS};
use crate::principal::Environment;
use crate::repo;
use crate::scope::ScopeSet;
use crate::secret::{digest_eq, ClientSecret};
use crate::service::AuthService;

/// How long a verified secret is trusted without re-reading the client. Rotation and
/// disabling evict at once on this instance and through the feed on the others.
const CLIENT_CACHE_MAX_AGE: Duration = Duration::from_secs(60);

/// A client whose secret was verified.
#[derive(Debug)]
pub struct VerifiedClient {
    pub id: String,
    pub org_id: String,
    pub env: Environment,
    pub scopes: ScopeSet,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) verified_at: Instant,
    /// Last token issued by this instance (ms; 0: none) and the last value written.
    pub(crate) last_used: AtomicI64,
    pub(crate) flushed: AtomicI64,
}

/// The RFC 6749 §5.2 error codes this server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedTokenType,
    InvalidScope,
    ServerError,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::UnsupportedTokenType => "unsupported_token_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::ServerError => "server_error",
        }
    }
}

/// An OAuth error with its human-readable description (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        OAuthError { code, description: description.into() }
    }

    fn bad_client() -> Self {
        OAuthError::new(OAuthErrorCode::InvalidClient, "client authentication failed")
    }

    fn server() -> Self {
        OAuthError::new(OAuthErrorCode::ServerError, "the authorization server could not complete the request")
    }
}

/// A freshly issued access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: ScopeSet,
    pub claims: AccessClaims,
}

impl AuthService {
    /// Authenticates an OAuth client by id and secret.
    pub async fn verify_client(&self, client_id: &str, secret: &ClientSecret) -> Result<Arc<VerifiedClient>, OAuthError> {
        let fingerprint = secret.fingerprint();
        if let Some(hit) = self.client_cache.get(client_id) {
            if hit.verified_at.elapsed() < CLIENT_CACHE_MAX_AGE && digest_eq(&hit.fingerprint, &fingerprint) {
                return Ok(hit);
            }
        }
        let record = repo::clients::get(self.db.pool(), client_id).await.map_err(|err| {
            tracing::error!(error = %err, "client lookup failed");
            OAuthError::server()
        })?;
        let Some(record) = record else {
            // Spend the same time as a real verification so unknown ids are not distinguishable.
            burn_argon2(secret.clone()).await;
            return Err(OAuthError::bad_client());
        };
        if record.disabled_at.is_some() {
            return Err(OAuthError::bad_client());
        }
        let phc = record.secret_hash.clone();
        let presented = secret.clone();
        let ok = tokio::task::spawn_blocking(move || presented.verify_argon2(&phc))
            .await
            .map_err(|_| OAuthError::server())?;
        if !ok {
            return Err(OAuthError::bad_client());
        }
        let env: Environment = record.env.parse().map_err(|_| OAuthError::server())?;
        let scopes = ScopeSet::parse(&record.scopes).map_err(|_| OAuthError::server())?;
        let verified = Arc::new(VerifiedClient {
            id: record.id,
            org_id: record.org_id,
            env,
            scopes,
            fingerprint,
            verified_at: Instant::now(),
            last_used: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
        });
        self.client_cache.insert(client_id.to_owned(), verified.clone());
        Ok(verified)
    }

    /// The client-credentials grant for a client [`verify_client`](Self::verify_client)
    /// authenticated: `requested` is the raw `scope` parameter, if any.
    pub fn issue_token(&self, client: &VerifiedClient, requested: Option<&str>) -> Result<IssuedToken, OAuthError> {
        if self.disabled_clients.read().contains(&client.id) {
            return Err(OAuthError::bad_client());
        }
        let scope = match requested.map(str::trim).filter(|s| !s.is_empty()) {
            None => client.scopes,
            Some(raw) => {
                let wanted = ScopeSet::parse(raw)
                    .map_err(|unknown| OAuthError::new(OAuthErrorCode::InvalidScope, unknown.to_string()))?;
                if !client.scopes.covers(wanted) {
                    return Err(OAuthError::new(
                        OAuthErrorCode::InvalidScope,
                        "the requested scope exceeds the scopes granted to this client",
                    ));
                }
                wanted
            }
        };
        let now = now_ms() / 1000;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: client.id.clone(),
            aud: self.audience.clone(),
            exp: now + TOKEN_TTL_SECS,
            iat: now,
            jti: new_jti(),
            client_id: client.id.clone(),
            scope: scope.to_string(),
            org_id: client.org_id.clone(),
            env: client.env,
        };
        let access_token = self.keyring.current().sign(&claims).map_err(|err| {
            tracing::error!(error = %err, "token signing failed");
            OAuthError::server()
        })?;
        client.last_used.store(now_ms(), Ordering::Relaxed);
        TOKENS_ISSUED.increment(1);
        Ok(IssuedToken { access_token, expires_in: TOKEN_TTL_SECS, scope, claims })
    }
}

/// Registered on first use (after the server installed its recorder): looking it up in
/// the registry on every token hashed its name each time.
static TOKENS_ISSUED: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("breadbox_tokens_issued_total"));

/// 22 random base62 digits (over 128 bits) from the thread's CSPRNG: unique and
/// unguessable without a system call per token.
fn new_jti() -> String {
    let mut jti = String::with_capacity(22);
    crate::secret::push_random_base62(&mut jti, 22);
    jti
}

async fn burn_argon2(secret: ClientSecret) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let _ = tokio::task::spawn_blocking(move || {
        let dummy = DUMMY.get_or_init(|| ClientSecret::generate().hash_argon2());
        secret.verify_argon2(dummy)
    })
    .await;
}
