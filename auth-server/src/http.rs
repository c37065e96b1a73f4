//! The authorization server's HTTP surface: token (RFC 6749 §4.4), introspection
//! (RFC 7662), revocation (RFC 7009), metadata (RFC 8414) and the JWKS. Errors use
//! the RFC 6749 §5.2 shape so that standard OAuth clients understand them.
//!
//! Rate limits: a client that authenticated passes its `auth` class bucket (the
//! three client-authenticated endpoints share it); a failed client authentication
//! counts against the caller's IP (see `limits`). A refusal is a 429 in the RFC 6749
//! shape — `invalid_request`, since the RFC has no code for it — with `Retry-After`.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use poem::http::{header, HeaderMap, HeaderValue, StatusCode};
use poem::web::Data;
use poem::{get, handler, post, Body, Endpoint, IntoResponse, Middleware, Request, Response, Route};
use serde::Deserialize;
use serde_json::json;

use crate::issuer::{IssuedToken, OAuthError, OAuthErrorCode, VerifiedClient};
use crate::limits::Refusal;
use crate::principal::CredentialKind;
use crate::scope::Scope;
use crate::secret::{ApiKeySecret, ClientSecret};
use crate::service::AuthService;

pub const TOKEN_PATH: &str = "/api/v1/auth/token";
pub const INTROSPECT_PATH: &str = "/api/v1/auth/introspect";
pub const REVOKE_PATH: &str = "/api/v1/auth/revoke";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Largest accepted body on the OAuth endpoints.
const MAX_BODY: usize = 16 * 1024;

/// Adds the authorization server's routes to `route`. They expect an
/// `Arc<AuthService>` in the request data (`.data(service)` on the app).
pub fn attach(route: Route) -> Route {
    route
        .at(TOKEN_PATH, post(token_endpoint))
        .at(INTROSPECT_PATH, post(introspect_endpoint))
        .at(REVOKE_PATH, post(revoke_endpoint))
        .at(METADATA_PATH, get(metadata_endpoint))
        .at(JWKS_PATH, get(jwks_endpoint))
}

/// The methods `attach` routes on `path` (a GET answers HEAD too), as the `Allow` of
/// its 405 (RFC 9110 §15.5.6); `None` for a path that is not one of them.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        TOKEN_PATH | INTROSPECT_PATH | REVOKE_PATH => Some("POST"),
        METADATA_PATH | JWKS_PATH => Some("GET, HEAD"),
        _ => None,
    }
}

/// Parameters of the OAuth endpoints, from a form or a JSON body. Unknown parameters
/// are ignored (RFC 6749 §3.2); repeated ones are an error.
#[derive(Debug, Default, Deserialize)]
struct OAuthParams {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    token: Option<String>,
}

fn oauth_error(err: &OAuthError, basic_attempted: bool) -> Response {
    let status = match err.code {
        OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    metrics::counter!("breadbox_auth_failures_total", "reason" => err.code.as_str()).increment(1);
    let mut response = json_response(
        status,
        json!({ "error": err.code.as_str(), "error_description": err.description }).to_string(),
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if basic_attempted {
            r#"Basic realm="breadbox", error="invalid_client""#
        } else {
            r#"Basic realm="breadbox""#
        };
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    response
}

/// A 429 in the RFC 6749 §5.2 shape, with `Retry-After`.
pub fn rate_limited_response(refusal: &Refusal) -> Response {
    let body = json!({ "error": OAuthErrorCode::InvalidRequest.as_str(), "error_description": refusal.message() });
    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, body.to_string());
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(refusal.retry_after_secs()));
    response
}

/// Why an OAuth endpoint did not answer 200.
enum Failure {
    OAuth(OAuthError),
    Limited(Refusal),
}

impl From<OAuthError> for Failure {
    fn from(err: OAuthError) -> Self {
        Failure::OAuth(err)
    }
}

/// The response of an OAuth endpoint; a failed client authentication counts against
/// the caller's IP, and answers 429 once the IP has failed too often.
async fn finish(service: &AuthService, outcome: Result<Response, Failure>, basic_attempted: bool) -> Response {
    match outcome {
        Ok(response) => response,
        Err(Failure::Limited(refusal)) => rate_limited_response(&refusal),
        Err(Failure::OAuth(err)) => {
            if err.code == OAuthErrorCode::InvalidClient {
                if let Err(refusal) = service.limits().note_auth_failure().await {
                    return rate_limited_response(&refusal);
                }
            }
            oauth_error(&err, basic_attempted)
        }
    }
}

/// Verifies the client, then takes a request from its `auth` bucket.
async fn authenticate_client(
    service: &AuthService,
    client_id: &str,
    secret: &ClientSecret,
) -> Result<Arc<VerifiedClient>, Failure> {
    let client = service.verify_client(client_id, secret).await?;
    service.limits().check_client(&client.id).await.map_err(Failure::Limited)?;
    Ok(client)
}

fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(body)
}

fn invalid_request(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidRequest, description)
}

async fn read_params(req: &Request, body: Body) -> Result<OAuthParams, OAuthError> {
    let bytes = body
        .into_bytes_limit(MAX_BODY)
        .await
        .map_err(|_| invalid_request("the request body is too large or could not be read"))?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| invalid_request(format!("malformed form body: {e}"))),
        "application/json" => serde_json::from_slice(&bytes)
            .map_err(|e| invalid_request(format!("malformed JSON body: {e}"))),
        "" if bytes.is_empty() => Ok(OAuthParams::default()),
        other => Err(invalid_request(format!(
            "unsupported content type `{other}`: use application/x-www-form-urlencoded or application/json"
        ))),
    }
}

/// Client credentials from HTTP Basic (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let bad = || OAuthError::new(OAuthErrorCode::InvalidClient, "malformed Basic credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else { return Err(bad()) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::new(OAuthErrorCode::InvalidClient, "client authentication must use the Basic scheme"));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|v| v.into_owned())
            .map_err(|_| bad())
    };
    Ok(Some((decode(id)?, decode(secret)?)))
}

/// Resolves the client's id and secret from exactly one authentication method.
fn client_credentials(headers: &HeaderMap, params: &OAuthParams) -> Result<(String, ClientSecret, bool), OAuthError> {
    match basic_credentials(headers)? {
        Some((id, secret)) => {
            if params.client_secret.is_some() {
                return Err(invalid_request("use one client authentication method: HTTP Basic or client_secret in the body, not both"));
            }
            if params.client_id.as_deref().is_some_and(|body_id| body_id != id) {
                return Err(invalid_request("client_id in the body differs from the Basic credentials"));
            }
            Ok((id, ClientSecret::from_presented(secret), true))
        }
        None => match (&params.client_id, &params.client_secret) {
            (Some(id), Some(secret)) if !id.is_empty() => Ok((id.clone(), ClientSecret::from_presented(secret.clone()), false)),
            _ => Err(OAuthError::new(
                OAuthErrorCode::InvalidClient,
                "client authentication is required: HTTP Basic, or client_id and client_secret in the body",
            )),
        },
    }
}

/// The token response of seed 001 / RFC 6749 §5.1, written by hand: the token is our
/// signer's base64url and dots and the scope a `ScopeSet`'s names, so neither needs
/// JSON escaping, and serde's scan of every byte for characters to escape (a kilobyte
/// and more for a client with many scopes; 2 % of the endpoint's CPU) is skipped.
fn token_response(issued: &IssuedToken) -> String {
    let (token, scope) = (issued.access_token.as_str(), issued.claims.scope.as_str());
    // The message names neither value: the token is a credential.
    debug_assert!(json_plain(token) && json_plain(scope), "a token response value needs JSON escaping");
    let mut body = String::with_capacity(token.len() + scope.len() + 80);
    body.push_str(r#"{"access_token":""#);
    body.push_str(token);
    body.push_str(r#"","token_type":"Bearer","expires_in":"#);
    let _ = write!(body, "{}", issued.expires_in);
    body.push_str(r#","scope":""#);
    body.push_str(scope);
    body.push_str(r#""}"#);
    body
}

/// Whether `text` is written in JSON as it is (no quote, backslash or control character).
fn json_plain(text: &str) -> bool {
    text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

#[handler]
async fn token_endpoint(req: &Request, body: Body, Data(service): Data<&Arc<AuthService>>) -> Response {
    let basic_attempted = req.headers().contains_key(header::AUTHORIZATION);
    let outcome = issue(req, body, service).await;
    finish(service, outcome, basic_attempted).await
}

async fn issue(req: &Request, body: Body, service: &AuthService) -> Result<Response, Failure> {
    let params = read_params(req, body).await?;
    match params.grant_type.as_deref() {
        None | Some("") => return Err(invalid_request("grant_type is required").into()),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!("grant type `{other}` is not supported; use client_credentials"),
            )
            .into())
        }
    }
    let (client_id, secret, _) = client_credentials(req.headers(), &params)?;
    let client = authenticate_client(service, &client_id, &secret).await?;
    let issued = service.issue_token(&client, params.scope.as_deref())?;
    Ok(json_response(StatusCode::OK, token_response(&issued)))
}

#[handler]
async fn introspect_endpoint(req: &Request, body: Body, Data(service): Data<&Arc<AuthService>>) -> Response {
    let basic_attempted = req.headers().contains_key(header::AUTHORIZATION);
    let outcome = introspect_inner(req, body, service).await;
    finish(service, outcome, basic_attempted).await
}

async fn introspect_inner(req: &Request, body: Body, service: &AuthService) -> Result<Response, Failure> {
    let params = read_params(req, body).await?;
    let (client_id, secret, _) = client_credentials(req.headers(), &params)?;
    let caller = authenticate_client(service, &client_id, &secret).await?;
    // A client learns only about credentials of its own organization and environment.
    let token = params.token.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let Some(token) = token else { return Err(invalid_request("token is required").into()) };
    let inactive = || json_response(StatusCode::OK, json!({ "active": false }).to_string());
    if ApiKeySecret::looks_like_key(token) {
        return Ok(match service.authenticate_key(token).await {
            Ok(principal) if principal.org_id == caller.org_id && principal.env == caller.env => json_response(
                StatusCode::OK,
                json!({
                    "active": true,
                    "token_type": "api_key",
                    "scope": principal.scopes.to_string(),
                    "sub": principal.credential_id,
                    "org_id": principal.org_id,
                    "env": principal.env,
                    "credential_kind": CredentialKind::ApiKey.as_str(),
                })
                .to_string(),
            ),
            _ => inactive(),
        });
    }
    Ok(match service.authenticate_jwt(token) {
        Ok(principal) if principal.org_id == caller.org_id && principal.env == caller.env => match service.token_claims(token) {
            Some(c) => json_response(
                StatusCode::OK,
                json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": c.scope, "client_id": c.client_id, "sub": c.sub, "aud": c.aud,
                    "iss": c.iss, "exp": c.exp, "iat": c.iat, "jti": c.jti,
                    "org_id": c.org_id, "env": c.env,
                    "credential_kind": CredentialKind::OauthClient.as_str(),
                })
                .to_string(),
            ),
            None => inactive(),
        },
        _ => inactive(),
    })
}

#[handler]
async fn revoke_endpoint(req: &Request, body: Body, Data(service): Data<&Arc<AuthService>>) -> Response {
    let basic_attempted = req.headers().contains_key(header::AUTHORIZATION);
    let outcome = revoke_inner(req, body, service).await;
    finish(service, outcome, basic_attempted).await
}

async fn revoke_inner(req: &Request, body: Body, service: &AuthService) -> Result<Response, Failure> {
    let params = read_params(req, body).await?;
    let (client_id, secret, _) = client_credentials(req.headers(), &params)?;
    let caller = authenticate_client(service, &client_id, &secret).await?;
    let Some(token) = params.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(invalid_request("token is required").into());
    };
    if ApiKeySecret::looks_like_key(token) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnsupportedTokenType,
            "static API keys are revoked through the admin API or CLI",
        )
        .into());
    }
    // RFC 7009 §2.2: an invalid or unknown token is answered 200 all the same.
    if let Some(claims) = service.token_claims(token) {
        if claims.client_id != caller.id {
            return Err(OAuthError::new(OAuthErrorCode::UnauthorizedClient, "this token was not issued to this client").into());
        }
        service.revoke_jti(&claims.jti, claims.exp).await.map_err(|err| {
            tracing::error!(error = %err, "token revocation failed");
            OAuthError::new(OAuthErrorCode::ServerError, "the token could not be revoked")
        })?;
    }
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CACHE_CONTROL, "no-store")
        .finish())
}

#[handler]
fn metadata_endpoint(Data(service): Data<&Arc<AuthService>>) -> Response {
    let issuer = service.issuer().trim_end_matches('/');
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
        "service_documentation": format!("{issuer}/docs"),
    });
    Response::builder()
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(body.to_string())
}

#[handler]
fn jwks_endpoint(Data(service): Data<&Arc<AuthService>>) -> Response {
    Response::builder()
        .content_type("application/jwk-set+json")
        .header(header::CACHE_CONTROL, "public, max-age=60")
        .body(service.jwks().to_string())
}

/// The per-IP gate and the rate-limit headers, for the authorization server alone (the
/// all-in-one server does the same in its outermost middleware).
pub struct RateLimitGate(pub Arc<AuthService>);

impl<E: Endpoint> Middleware<E> for RateLimitGate {
    type Output = RateLimitGateEndpoint<E>;
    fn transform(&self, inner: E) -> Self::Output {
        RateLimitGateEndpoint { inner, service: self.0.clone() }
    }
}

pub struct RateLimitGateEndpoint<E> {
    inner: E,
    service: Arc<AuthService>,
}

impl<E: Endpoint> Endpoint for RateLimitGateEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let limits = self.service.limits();
        let ip = limits.client_ip(&req);
        let inner = || async move {
            match self.inner.call(req).await {
                Ok(output) => output.into_response(),
                Err(err) => err.into_response(),
            }
        };
        Ok(limits.serve(ip, rate_limited_response, inner).await)
    }
}

#[cfg(test)]
mod token_response_tests {
    use super::*;
    use crate::jwt::AccessClaims;
    use crate::principal::Environment;
    use crate::scope::ScopeSet;

    #[test]
    fn the_hand_written_token_response_is_the_json_serde_writes() {
        let scope = ScopeSet::full_access();
        let claims = AccessClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "cli_1".into(),
            aud: "breadbox-api".into(),
            exp: 3600,
            iat: 0,
            jti: "j".into(),
            client_id: "cli_1".into(),
            scope: scope.to_string(),
            org_id: "org_1".into(),
            env: Environment::Live,
        };
        let issued = IssuedToken { access_token: "eyJh.eyJz-_9.c2ln".into(), expires_in: 3600, scope, claims };
        let written: serde_json::Value = serde_json::from_str(&token_response(&issued)).expect("JSON");
        let expected = serde_json::json!({
            "access_token": "eyJh.eyJz-_9.c2ln",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": scope.to_string(),
        });
        assert_eq!(written, expected);
        assert!(json_plain("abc.DEF-_09 accounts:read"));
        assert!(!json_plain("a\"b"));
        assert!(!json_plain("a\\b"));
        assert!(!json_plain("a\nb"));
    }
}
