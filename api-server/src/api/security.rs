//! Authentication and scopes for operations. An operation takes `auth: Auth<R>`,
//! where `R` names the scope it requires, and declares the same scope for the spec
//! with `#[oai(scope = "Scopes::…")]` on that parameter. `Auth` authenticates with
//! the shared `AuthService` and checks `R` before the handler runs.
//!
//! Right after authentication it passes the caller's rate-limit buckets (credential,
//! endpoint class, organization); a failed authentication counts against the
//! client IP. The decision reaches the response headers through `limits::context`.
//! The route and the caller are noted for the audit log (`crate::audit`), so that
//! refusals after authentication (403, 429) are attributed too.

use std::marker::PhantomData;
use std::sync::Arc;

use poem::PathPattern;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaOAuthFlow, MetaOAuthFlows, MetaOAuthScope, MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, OAuthScopes};

use breadbox_auth::limits::{class_of, Class};
use breadbox_auth::{AuthError, AuthService, Principal, Scope};

use crate::error::{ApiError, Rejected};

pub const OAUTH2: &str = "OAuth2";
pub const BEARER: &str = "BearerAuth";
pub const API_KEY: &str = "ApiKeyAuth";

/// Every scope, for the OAuth2 scheme and the `scope` attribute of operations.
#[derive(Debug, Clone, Copy, OAuthScopes)]
pub enum Scopes {
    #[oai(rename = "accounts:read")]
    AccountsRead,
    #[oai(rename = "accounts:write")]
    AccountsWrite,
    #[oai(rename = "contacts:read")]
    ContactsRead,
    #[oai(rename = "contacts:write")]
    ContactsWrite,
    #[oai(rename = "contracts:read")]
    ContractsRead,
    #[oai(rename = "deals:read")]
    DealsRead,
    #[oai(rename = "deals:write")]
    DealsWrite,
    #[oai(rename = "health:read")]
    HealthRead,
    #[oai(rename = "health:write")]
    HealthWrite,
    #[oai(rename = "touchpoints:read")]
    TouchpointsRead,
    #[oai(rename = "touchpoints:write")]
    TouchpointsWrite,
    #[oai(rename = "devices:read")]
    DevicesRead,
    #[oai(rename = "devices:write")]
    DevicesWrite,
    #[oai(rename = "reconciliation:read")]
    ReconciliationRead,
    #[oai(rename = "reconciliation:write")]
    ReconciliationWrite,
    #[oai(rename = "mrr:read")]
    MrrRead,
    #[oai(rename = "leads:read")]
    LeadsRead,
    #[oai(rename = "leads:write")]
    LeadsWrite,
    #[oai(rename = "compliance:read")]
    ComplianceRead,
    #[oai(rename = "onboarding:read")]
    OnboardingRead,
    #[oai(rename = "admin:read")]
    AdminRead,
    #[oai(rename = "admin:write")]
    AdminWrite,
}

/// What an operation requires of its caller.
pub trait Requirement: Send + Sync {
    /// The scope required; `None` for operations any valid credential may call.
    const SCOPE: Option<Scope>;
}

macro_rules! requirements {
    ($($name:ident => $scope:expr),* $(,)?) => {
        $(
            #[doc = concat!("Requires the `", stringify!($name), "` scope.")]
            pub struct $name;
            impl Requirement for $name {
                const SCOPE: Option<Scope> = $scope;
            }
        )*
    };
}

requirements! {
    AnyScope => None,
    AccountsRead => Some(Scope::AccountsRead),
    AccountsWrite => Some(Scope::AccountsWrite),
    ContactsRead => Some(Scope::ContactsRead),
    ContactsWrite => Some(Scope::ContactsWrite),
    ContractsRead => Some(Scope::ContractsRead),
    DealsRead => Some(Scope::DealsRead),
    DealsWrite => Some(Scope::DealsWrite),
    HealthRead => Some(Scope::HealthRead),
    HealthWrite => Some(Scope::HealthWrite),
    TouchpointsRead => Some(Scope::TouchpointsRead),
    TouchpointsWrite => Some(Scope::TouchpointsWrite),
    DevicesRead => Some(Scope::DevicesRead),
    DevicesWrite => Some(Scope::DevicesWrite),
    ReconciliationRead => Some(Scope::ReconciliationRead),
    ReconciliationWrite => Some(Scope::ReconciliationWrite),
    MrrRead => Some(Scope::MrrRead),
    LeadsRead => Some(Scope::LeadsRead),
    LeadsWrite => Some(Scope::LeadsWrite),
    ComplianceRead => Some(Scope::ComplianceRead),
    OnboardingRead => Some(Scope::OnboardingRead),
    AdminRead => Some(Scope::AdminRead),
    AdminWrite => Some(Scope::AdminWrite),
}

/// An authenticated caller holding the scope `R` requires.
pub struct Auth<R: Requirement> {
    pub principal: Arc<Principal>,
    _requirement: PhantomData<R>,
}

impl<R: Requirement> std::ops::Deref for Auth<R> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

fn register_schemes(registry: &mut Registry) {
    let scopes = Scopes::meta();
    registry.create_security_scheme(
        OAUTH2,
        MetaSecurityScheme {
            ty: "oauth2",
            description: Some(
                "OAuth 2.0 client credentials: exchange a client id and secret at the token endpoint \
                 for a one-hour JWT, then send it as `Authorization: Bearer <token>`.",
            ),
            name: None,
            key_in: None,
            scheme: None,
            bearer_format: None,
            flows: Some(MetaOAuthFlows {
                implicit: None,
                password: None,
                client_credentials: Some(MetaOAuthFlow {
                    authorization_url: None,
                    token_url: Some(breadbox_auth::http::TOKEN_PATH),
                    refresh_url: None,
                    scopes: scopes.into_iter().map(|s: MetaOAuthScope| s).collect(),
                }),
                authorization_code: None,
            }),
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        BEARER,
        MetaSecurityScheme {
            ty: "http",
            description: Some("A JWT from the token endpoint, or a static key (`msp_live_…`/`msp_test_…`), as `Authorization: Bearer …`."),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: Some("JWT or msp_ API key"),
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        API_KEY,
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some("A static key (`msp_live_…`/`msp_test_…`) in the `X-API-Key` header."),
            name: Some("X-API-Key"),
            key_in: Some("header"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
}

impl<'a, R: Requirement> ApiExtractor<'a> for Auth<R> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![OAUTH2, BEARER, API_KEY]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let service = request
            .data::<Arc<AuthService>>()
            .ok_or_else(|| Rejected::error(ApiError::internal(&"authentication service missing")))?;
        let pattern = request.data::<PathPattern>();
        if let Some(pattern) = pattern {
            crate::audit::note_route(&pattern.0);
        }
        let limits = service.limits();
        let principal = match service.authenticate(request.headers()).await {
            Ok(principal) => {
                crate::audit::note_principal(&principal);
                principal
            }
            Err(err @ AuthError::Unauthorized { .. }) => {
                limits.note_auth_failure().await.map_err(|r| Rejected::error(ApiError::rate_limited(&r)))?;
                return Err(Rejected::error(err.into()));
            }
            Err(err) => return Err(Rejected::error(err.into())),
        };
        if limits.enabled() {
            let template = pattern.map(|p| &*p.0).unwrap_or(request.uri().path());
            limits
                .check_principal(&principal, operation_class(request, template))
                .await
                .map_err(|r| Rejected::error(ApiError::rate_limited(&r)))?;
        }
        if let Some(scope) = R::SCOPE {
            principal.require(scope).map_err(|e| Rejected::error(e.into()))?;
        }
        Ok(Auth { principal, _requirement: PhantomData })
    }
}

/// The rate-limit class of the operation being called, from its route template (the
/// same function classifies the operations of the spec).
fn operation_class(request: &Request, template: &str) -> Class {
    // Every operation lives under /api/v1, where class_of always answers.
    class_of(request.method().as_str(), template).unwrap_or(Class::Detail)
}
