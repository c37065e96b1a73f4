//! `/api/v1/admin/…`: the caller's organization, its static keys and OAuth clients.
//! Everything acts within the caller's organization and environment; a credential
//! can never grant a scope it does not hold itself.

use std::time::Duration;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{Enum, Object, OpenApi};

use breadbox_auth::admin::{ClientInfo, KeyInfo, OrgInfo};
use breadbox_auth::{AuthService, Principal, ScopeSet};

use super::body::JsonBody;
use super::text::{format, Text};
use super::security::{AdminRead, AdminWrite, Auth, Scopes};
use super::wire::{Body, IdempotencyKey};
use super::ApiTags;
use crate::envelope::{List, Single};
use crate::error::ApiError;
use crate::time::rfc3339;

use std::sync::Arc;

/// An organization.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    /// starter, growth, scale or pro: sets the rate limits.
    pub plan: String,
    pub created_at: String,
}

/// A static API key as listed: never the key itself.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// `live` or `test`.
    pub environment: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    /// When a rotated key stops working.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Updated in batches, so up to a few seconds behind.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// The key that replaced this one on rotation.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// A key just created: the only time `key` is ever shown.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct NewApiKey {
    /// The key in clear. Store it now: it cannot be retrieved again.
    pub key: String,
    pub api_key: ApiKey,
}

/// An OAuth client as listed: never the secret.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct OAuthClient {
    /// The public `client_id`.
    pub id: String,
    pub name: String,
    pub environment: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

/// A client with its secret: shown on creation and rotation only.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct NewOAuthClient {
    /// The `client_secret` in clear. Store it now: it cannot be retrieved again.
    pub client_secret: String,
    pub client: OAuthClient,
}

/// Scope presets of static keys.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Preset {
    /// `admin:read`: read access to everything.
    ReadOnly,
    /// Every scope of the scope table.
    FullAccess,
}

/// What a new credential may do: explicit scopes or a preset (one of the two).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// A name to recognise the key by, e.g. "ConnectWise sync".
    pub name: Text<{ breadbox_auth::admin::NAME_MAX }, { format::NON_BLANK }>,
    /// Scopes to grant, e.g. `["accounts:read", "devices:write"]`.
    pub scopes: Option<Vec<Text>>,
    /// A preset instead of `scopes`.
    pub preset: Option<Preset>,
}

/// A new OAuth client.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOAuthClient {
    /// A name to recognise the client by.
    pub name: Text<{ breadbox_auth::admin::NAME_MAX }, { format::NON_BLANK }>,
    /// Scopes the client may request.
    pub scopes: Vec<Text>,
}

/// A key's or a client's name, checked as every text of the API (a 422 naming `name`).
fn credential_name(name: &str) -> Result<String, ApiError> {
    let mut v = crate::domain::validate::Violations::default();
    let name = crate::domain::validate::text(&mut v, "name", name, breadbox_auth::admin::NAME_MAX);
    v.finish(())?;
    Ok(name.unwrap_or_default())
}

fn organization(org: OrgInfo) -> Organization {
    Organization { id: org.id, name: org.name, plan: org.plan.as_str().to_owned(), created_at: rfc3339(org.created_at) }
}

fn api_key(k: KeyInfo) -> ApiKey {
    ApiKey {
        id: k.id,
        name: k.name,
        environment: k.env.as_str().to_owned(),
        prefix: k.prefix,
        scopes: k.scopes,
        created_at: rfc3339(k.created_at),
        expires_at: k.expires_at.map(rfc3339),
        revoked_at: k.revoked_at.map(rfc3339),
        last_used_at: k.last_used_at.map(rfc3339),
        replaced_by: k.replaced_by,
    }
}

fn oauth_client(c: ClientInfo) -> OAuthClient {
    OAuthClient {
        id: c.id,
        name: c.name,
        environment: c.env.as_str().to_owned(),
        scopes: c.scopes,
        created_at: rfc3339(c.created_at),
        disabled_at: c.disabled_at.map(rfc3339),
        last_used_at: c.last_used_at.map(rfc3339),
    }
}

/// Parses requested scopes and refuses any the caller could not grant.
fn grantable<S: AsRef<str>>(caller: &Principal, field: &str, scopes: &[S]) -> Result<ScopeSet, ApiError> {
    if scopes.is_empty() {
        return Err(ApiError::field(field, "must name at least one scope"));
    }
    let set = ScopeSet::parse(&scopes.iter().map(AsRef::as_ref).collect::<Vec<&str>>().join(" ")).map_err(|e| ApiError::field(field, e.to_string()))?;
    if !caller.scopes.covers(set) {
        return Err(ApiError::field(field, "cannot grant a scope the calling credential does not hold"));
    }
    Ok(set)
}

/// 404 unless the record belongs to the caller's organization and environment.
fn own<T>(caller: &Principal, org_id: &str, env: breadbox_auth::Environment, value: T, what: &str) -> Result<T, ApiError> {
    if org_id == caller.org_id && env == caller.env {
        Ok(value)
    } else {
        Err(ApiError::not_found(what))
    }
}

pub struct AdminApi;

#[OpenApi(prefix_path = "/api/v1/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// Get the caller's organization
    #[oai(path = "/organization", method = "get", operation_id = "get_organization")]
    async fn get_organization(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(service): Data<&Arc<AuthService>>,
    ) -> Result<Body<Single<Organization>>, ApiError> {
        Ok(Body(Single::new(organization(service.get_org(&auth.org_id).await?))))
    }

    /// List API keys
    ///
    /// Every static key of the caller's organization and environment, revoked ones included.
    #[oai(path = "/api-keys", method = "get", operation_id = "list_api_keys")]
    async fn list_api_keys(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(service): Data<&Arc<AuthService>>,
    ) -> Result<Body<List<ApiKey>>, ApiError> {
        let keys = service.list_keys(&auth.org_id).await?;
        let keys = keys.into_iter().filter(|k| k.env == auth.env).map(api_key).collect();
        Ok(Body(List::complete(keys)))
    }

    /// Create an API key
    ///
    /// The key is returned once, in this response. It belongs to the caller's organization
    /// and environment and may hold only scopes the caller holds.
    #[oai(path = "/api-keys", method = "post", operation_id = "create_api_key")]
    async fn create_api_key(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(service): Data<&Arc<AuthService>>,
        body: JsonBody<CreateApiKey>,
    ) -> Result<Body<Single<NewApiKey>>, ApiError> {
        let scopes = match (&body.scopes, body.preset) {
            (Some(_), Some(_)) => return Err(ApiError::field("preset", "give either scopes or preset, not both")),
            (None, None) => return Err(ApiError::field("scopes", "give scopes or a preset")),
            (Some(scopes), None) => grantable(&auth, "scopes", scopes)?,
            (None, Some(preset)) => {
                let set = match preset {
                    Preset::ReadOnly => ScopeSet::read_only(),
                    Preset::FullAccess => ScopeSet::full_access(),
                };
                grantable(&auth, "preset", &set.to_vec())?
            }
        };
        let (info, secret) = service.create_key(&auth.org_id, auth.env, scopes, &credential_name(&body.name)?).await?;
        Ok(Body(Single::new(NewApiKey { key: secret.expose().to_owned(), api_key: api_key(info) })))
    }

    /// Get an API key
    #[oai(path = "/api-keys/:id", method = "get", operation_id = "get_api_key")]
    async fn get_api_key(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(service): Data<&Arc<AuthService>>,
        id: Path<String>,
    ) -> Result<Body<Single<ApiKey>>, ApiError> {
        let key = service.get_key(&id).await?;
        let key = own(&auth, &key.org_id.clone(), key.env, key, "API key")?;
        Ok(Body(Single::new(api_key(key))))
    }

    /// Revoke an API key
    ///
    /// Takes effect on every instance within seconds. Revoking twice is harmless.
    #[oai(path = "/api-keys/:id/revoke", method = "post", operation_id = "revoke_api_key")]
    async fn revoke_api_key(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(service): Data<&Arc<AuthService>>,
        id: Path<String>,
    ) -> Result<Body<Single<ApiKey>>, ApiError> {
        let key = service.get_key(&id).await?;
        own(&auth, &key.org_id, key.env, (), "API key")?;
        Ok(Body(Single::new(api_key(service.revoke_key(&id).await?))))
    }

    /// Rotate an API key
    ///
    /// Creates a successor with the same name and scopes (returned once, here); the old key
    /// keeps working for `graceSeconds` (query parameter).
    #[oai(path = "/api-keys/:id/rotate", method = "post", operation_id = "rotate_api_key")]
    async fn rotate_api_key(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(service): Data<&Arc<AuthService>>,
        id: Path<String>,
        /// How long the old key keeps working, in seconds (default 0: it stops at once; at most 30 days).
        #[oai(name = "graceSeconds", validator(maximum(value = "2592000")))]
        grace_seconds: Query<Option<u64>>,
    ) -> Result<Body<Single<NewApiKey>>, ApiError> {
        let key = service.get_key(&id).await?;
        own(&auth, &key.org_id, key.env, (), "API key")?;
        let scopes = ScopeSet::parse(&key.scopes.join(" ")).map_err(|e| ApiError::internal(&e))?;
        if !auth.scopes.covers(scopes) {
            return Err(ApiError::new(
                crate::error::ErrorCode::Forbidden,
                "cannot rotate a key holding scopes the calling credential does not hold",
            ));
        }
        let grace = Duration::from_secs(grace_seconds.0.unwrap_or(0));
        let (info, secret) = service.rotate_key(&id, grace).await?;
        Ok(Body(Single::new(NewApiKey { key: secret.expose().to_owned(), api_key: api_key(info) })))
    }

    /// List OAuth clients
    #[oai(path = "/oauth-clients", method = "get", operation_id = "list_oauth_clients")]
    async fn list_oauth_clients(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(service): Data<&Arc<AuthService>>,
    ) -> Result<Body<List<OAuthClient>>, ApiError> {
        let clients = service.list_clients(&auth.org_id).await?;
        let clients = clients.into_iter().filter(|c| c.env == auth.env).map(oauth_client).collect();
        Ok(Body(List::complete(clients)))
    }

    /// Create an OAuth client
    ///
    /// The secret is returned once, in this response.
    #[oai(path = "/oauth-clients", method = "post", operation_id = "create_oauth_client")]
    async fn create_oauth_client(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(service): Data<&Arc<AuthService>>,
        body: JsonBody<CreateOAuthClient>,
    ) -> Result<Body<Single<NewOAuthClient>>, ApiError> {
        let name = credential_name(&body.name)?;
        let scopes = grantable(&auth, "scopes", &body.scopes)?;
        let (info, secret) = service.create_client(&auth.org_id, auth.env, scopes, &name).await?;
        Ok(Body(Single::new(NewOAuthClient { client_secret: secret.expose().to_owned(), client: oauth_client(info) })))
    }

    /// Get an OAuth client
    #[oai(path = "/oauth-clients/:id", method = "get", operation_id = "get_oauth_client")]
    async fn get_oauth_client(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(service): Data<&Arc<AuthService>>,
        id: Path<String>,
    ) -> Result<Body<Single<OAuthClient>>, ApiError> {
        let client = service.get_client(&id).await?;
        let client = own(&auth, &client.org_id.clone(), client.env, client, "OAuth client")?;
        Ok(Body(Single::new(oauth_client(client))))
    }

    /// Rotate an OAuth client's secret
    ///
    /// The old secret stops working at once; tokens already issued stay valid until they expire.
    #[oai(path = "/oauth-clients/:id/rotate-secret", method = "post", operation_id = "rotate_oauth_client_secret")]
    async fn rotate_oauth_client_secret(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(service): Data<&Arc<AuthService>>,
        id: Path<String>,
    ) -> Result<Body<Single<NewOAuthClient>>, ApiError> {
        let client = service.get_client(&id).await?;
        own(&auth, &client.org_id, client.env, (), "OAuth client")?;
        let (info, secret) = service.rotate_client_secret(&id).await?;
        Ok(Body(Single::new(NewOAuthClient { client_secret: secret.expose().to_owned(), client: oauth_client(info) })))
    }

    /// Disable an OAuth client
    ///
    /// No new tokens are issued to it and every token it holds is refused from now on.
    #[oai(path = "/oauth-clients/:id/disable", method = "post", operation_id = "disable_oauth_client")]
    async fn disable_oauth_client(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(service): Data<&Arc<AuthService>>,
        id: Path<String>,
    ) -> Result<Body<Single<OAuthClient>>, ApiError> {
        let client = service.get_client(&id).await?;
        own(&auth, &client.org_id, client.env, (), "OAuth client")?;
        Ok(Body(Single::new(oauth_client(service.disable_client(&id).await?))))
    }
}
