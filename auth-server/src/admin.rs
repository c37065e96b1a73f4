//! Managing organizations and credentials: what the admin CLI and the admin HTTP API
//! both call. Every change that other instances must honour is also written to the
//! revocation feed and applied to this instance's caches at once.

use std::time::Duration;

use serde::Serialize;

use crate::db::{is_unique_violation, now_ms};
use crate::jwt::generate_signing_key;
use crate::principal::{Environment, Plan};
use crate::repo::{self, api_keys::ApiKeyRecord, clients::ClientRecord, orgs::OrgRecord};
use crate::scope::ScopeSet;
use crate::secret::{new_id, random_base62, ApiKeySecret, ClientSecret};
use crate::service::AuthService;
use crate::sync::FeedKind;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// An organization as shown to admins.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgInfo {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub created_at: i64,
}

/// A static key as listed (never the key itself).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub id: String,
    pub org_id: String,
    pub env: Environment,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub replaced_by: Option<String>,
}

/// An OAuth client as listed (never the secret).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: String,
    pub org_id: String,
    pub env: Environment,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl TryFrom<OrgRecord> for OrgInfo {
    type Error = AdminError;
    fn try_from(r: OrgRecord) -> Result<Self, AdminError> {
        Ok(OrgInfo { plan: r.plan.parse().map_err(AdminError::Invalid)?, id: r.id, name: r.name, created_at: r.created_at })
    }
}

impl TryFrom<ApiKeyRecord> for KeyInfo {
    type Error = AdminError;
    fn try_from(r: ApiKeyRecord) -> Result<Self, AdminError> {
        Ok(KeyInfo {
            env: r.env.parse().map_err(AdminError::Invalid)?,
            scopes: ScopeSet::parse(&r.scopes).map_err(|e| AdminError::Invalid(e.to_string()))?.to_vec(),
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            prefix: r.prefix,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            replaced_by: r.replaced_by,
        })
    }
}

impl TryFrom<ClientRecord> for ClientInfo {
    type Error = AdminError;
    fn try_from(r: ClientRecord) -> Result<Self, AdminError> {
        Ok(ClientInfo {
            env: r.env.parse().map_err(AdminError::Invalid)?,
            scopes: ScopeSet::parse(&r.scopes).map_err(|e| AdminError::Invalid(e.to_string()))?.to_vec(),
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            created_at: r.created_at,
            disabled_at: r.disabled_at,
            last_used_at: r.last_used_at,
        })
    }
}

/// The longest name of an organization, a key or a client, as sent.
pub const NAME_MAX: usize = 200;

/// A name as stored: trimmed, 1 to [`NAME_MAX`] characters as sent, no control
/// character but tab, line feed and carriage return (the API's rule for every text).
fn check_name(name: &str) -> Result<String, AdminError> {
    let control = name.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > NAME_MAX || control {
        return Err(AdminError::Invalid(format!("name must be 1 to {NAME_MAX} characters, without control characters")));
    }
    Ok(trimmed.to_owned())
}

fn check_scopes(scopes: ScopeSet) -> Result<ScopeSet, AdminError> {
    if scopes.is_empty() {
        return Err(AdminError::Invalid("at least one scope is required".into()));
    }
    Ok(scopes)
}

impl AuthService {
    pub async fn create_org(&self, name: &str, plan: Plan) -> Result<OrgInfo, AdminError> {
        let now = now_ms();
        let record = OrgRecord {
            id: new_id("org"),
            name: check_name(name)?,
            plan: plan.as_str().to_owned(),
            created_at: now,
            updated_at: now,
        };
        repo::orgs::insert(self.db.pool(), &record).await?;
        record.try_into()
    }

    pub async fn get_org(&self, id: &str) -> Result<OrgInfo, AdminError> {
        repo::orgs::get(self.db.pool(), id).await?.ok_or(AdminError::NotFound("organization"))?.try_into()
    }

    pub async fn list_orgs(&self) -> Result<Vec<OrgInfo>, AdminError> {
        repo::orgs::list(self.db.pool()).await?.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn count_orgs(&self) -> Result<i64, AdminError> {
        Ok(repo::orgs::count(self.db.pool()).await?)
    }

    pub async fn set_plan(&self, org_id: &str, plan: Plan) -> Result<OrgInfo, AdminError> {
        if !repo::orgs::set_plan(self.db.pool(), org_id, plan.as_str(), now_ms()).await? {
            return Err(AdminError::NotFound("organization"));
        }
        self.limits.forget_plan(org_id);
        self.get_org(org_id).await
    }

    /// Creates a static key; the returned secret is the only copy there will ever be.
    pub async fn create_key(
        &self,
        org_id: &str,
        env: Environment,
        scopes: ScopeSet,
        name: &str,
    ) -> Result<(KeyInfo, ApiKeySecret), AdminError> {
        self.get_org(org_id).await?;
        let scopes = check_scopes(scopes)?;
        let name = check_name(name)?;
        loop {
            let secret = ApiKeySecret::generate(env);
            let record = ApiKeyRecord {
                id: new_id("key"),
                org_id: org_id.to_owned(),
                env: env.as_str().to_owned(),
                name: name.clone(),
                prefix: secret.display_prefix(),
                key_hash: secret.hash(),
                scopes: scopes.to_string(),
                created_at: now_ms(),
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
                replaced_by: None,
            };
            match repo::api_keys::insert(self.db.pool(), &record).await {
                Ok(()) => return Ok((record.try_into()?, secret)),
                // A 256-bit collision is not going to happen; retrying costs nothing.
                Err(err) if is_unique_violation(&err) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    pub async fn get_key(&self, id: &str) -> Result<KeyInfo, AdminError> {
        repo::api_keys::get(self.db.pool(), id).await?.ok_or(AdminError::NotFound("API key"))?.try_into()
    }

    pub async fn list_keys(&self, org_id: &str) -> Result<Vec<KeyInfo>, AdminError> {
        repo::api_keys::list_for_org(self.db.pool(), org_id).await?.into_iter().map(TryInto::try_into).collect()
    }

    /// Revokes a key: refused on this instance at once, on every other within one poll.
    pub async fn revoke_key(&self, id: &str) -> Result<KeyInfo, AdminError> {
        let key = self.get_key(id).await?;
        if repo::api_keys::revoke(self.db.pool(), id, now_ms()).await? {
            self.publish(FeedKind::ApiKey, id, None).await?;
        }
        self.get_key(&key.id).await
    }

    /// Issues a successor with the same org, environment, scopes and name; the old key
    /// keeps working for `grace` (zero: it stops at once).
    pub async fn rotate_key(&self, id: &str, grace: Duration) -> Result<(KeyInfo, ApiKeySecret), AdminError> {
        let old = self.get_key(id).await?;
        if old.revoked_at.is_some() {
            return Err(AdminError::Invalid("a revoked key cannot be rotated".into()));
        }
        if old.replaced_by.is_some() {
            return Err(AdminError::Invalid("this key was already rotated".into()));
        }
        let scopes = ScopeSet::parse(&old.scopes.join(" ")).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let (new, secret) = self.create_key(&old.org_id, old.env, scopes, &old.name).await?;
        let ends = now_ms() + grace.as_millis() as i64;
        repo::api_keys::retire(self.db.pool(), &old.id, ends, &new.id).await?;
        self.publish(FeedKind::ApiKey, &old.id, None).await?;
        Ok((new, secret))
    }

    /// Creates an OAuth client; the returned secret is the only copy there will ever be.
    pub async fn create_client(
        &self,
        org_id: &str,
        env: Environment,
        scopes: ScopeSet,
        name: &str,
    ) -> Result<(ClientInfo, ClientSecret), AdminError> {
        self.get_org(org_id).await?;
        let secret = ClientSecret::generate();
        let record = ClientRecord {
            id: format!("cli_{}", random_base62(16)),
            org_id: org_id.to_owned(),
            env: env.as_str().to_owned(),
            name: check_name(name)?,
            secret_hash: hash_off_thread(secret.clone()).await?,
            secret_version: 1,
            scopes: check_scopes(scopes)?.to_string(),
            created_at: now_ms(),
            disabled_at: None,
            last_used_at: None,
        };
        repo::clients::insert(self.db.pool(), &record).await?;
        Ok((record.try_into()?, secret))
    }

    pub async fn get_client(&self, id: &str) -> Result<ClientInfo, AdminError> {
        repo::clients::get(self.db.pool(), id).await?.ok_or(AdminError::NotFound("OAuth client"))?.try_into()
    }

    pub async fn list_clients(&self, org_id: &str) -> Result<Vec<ClientInfo>, AdminError> {
        repo::clients::list_for_org(self.db.pool(), org_id).await?.into_iter().map(TryInto::try_into).collect()
    }

    /// Replaces a client's secret; the old one stops working at once (tokens already
    /// issued stay valid until they expire or are revoked).
    pub async fn rotate_client_secret(&self, id: &str) -> Result<(ClientInfo, ClientSecret), AdminError> {
        let client = self.get_client(id).await?;
        if client.disabled_at.is_some() {
            return Err(AdminError::Invalid("a disabled client cannot get a new secret".into()));
        }
        let secret = ClientSecret::generate();
        repo::clients::set_secret(self.db.pool(), id, &hash_off_thread(secret.clone()).await?).await?;
        self.publish(FeedKind::Client, id, None).await?;
        Ok((client, secret))
    }

    /// Disables a client: no new tokens, and every token it holds is refused.
    pub async fn disable_client(&self, id: &str) -> Result<ClientInfo, AdminError> {
        self.get_client(id).await?;
        if repo::clients::disable(self.db.pool(), id, now_ms()).await? {
            self.publish(FeedKind::Client, id, None).await?;
        }
        self.get_client(id).await
    }

    /// Starts signing with a new key; old public keys stay in the JWKS until their
    /// tokens have expired. Returns the new `kid`.
    pub async fn rotate_signing_key(&self) -> Result<String, AdminError> {
        let record = generate_signing_key();
        repo::signing_keys::rotate(self.db.pool(), &record).await?;
        self.publish(FeedKind::SigningKeys, &record.kid, None).await?;
        Ok(record.kid)
    }

    /// Revokes one access token by `jti` until it would have expired (`exp`, seconds).
    pub async fn revoke_jti(&self, jti: &str, exp: i64) -> Result<(), AdminError> {
        self.publish(FeedKind::Jti, jti, Some(exp * 1000)).await?;
        Ok(())
    }
}

async fn hash_off_thread(secret: ClientSecret) -> Result<String, AdminError> {
    tokio::task::spawn_blocking(move || secret.hash_argon2())
        .await
        .map_err(|_| AdminError::Invalid("hashing was interrupted".into()))
}
