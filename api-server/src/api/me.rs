//! `GET /api/v1/me`: who the caller is.

use poem_openapi::{Object, OpenApi};

use breadbox_auth::Principal;

use super::security::{AnyScope, Auth};
use super::wire::Body;
use super::ApiTags;
use crate::envelope::Single;
use crate::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The organization every request of this credential acts in.
    pub org_id: String,
    /// `live` or `test`: the partition of data this credential sees.
    pub environment: String,
    /// The scopes granted to the credential.
    pub scopes: Vec<String>,
    /// Every scope the credential may act with, implications applied.
    pub effective_scopes: Vec<String>,
    /// The API key id (`key_…`) or OAuth client id (`cli_…`).
    pub credential_id: String,
    /// `api_key` or `oauth_client`.
    pub credential_kind: String,
    /// The access token's `jti`, when a JWT was presented.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

impl From<&Principal> for Me {
    fn from(p: &Principal) -> Self {
        Me {
            org_id: p.org_id.clone(),
            environment: p.env.as_str().to_owned(),
            scopes: p.scopes.to_vec(),
            effective_scopes: p.scopes.effective().to_vec(),
            credential_id: p.credential_id.clone(),
            credential_kind: p.kind.as_str().to_owned(),
            token_id: p.token_id.clone(),
        }
    }
}

pub struct MeApi;

#[OpenApi(prefix_path = "/api/v1")]
impl MeApi {
    /// Who am I
    ///
    /// The organization, environment, scopes and credential of the caller. Any valid
    /// credential may call it; useful to check a key or token.
    #[oai(path = "/me", method = "get", operation_id = "get_me", tag = "ApiTags::Identity")]
    async fn get_me(&self, auth: Auth<AnyScope>) -> Result<Body<Single<Me>>, ApiError> {
        Ok(Body(Single::new(Me::from(&auth.principal))))
    }
}
