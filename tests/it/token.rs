use breadbox_tests::*;

use std::collections::BTreeSet;

use breadbox_auth::{Environment, Plan, ScopeSet};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{BasicClient, BasicTokenResponse, BasicTokenType};
use oauth2::{AuthType, ClientId, ClientSecret, TokenResponse, TokenUrl};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const TOKEN: &str = "/api/v1/auth/token";
const INTROSPECT: &str = "/api/v1/auth/introspect";
const REVOKE: &str = "/api/v1/auth/revoke";

/// Status, headers and body of a response, the body both raw and as JSON.
struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
    json: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("response body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, headers, text, json }
}

/// POSTs a form, authenticating with HTTP Basic when `basic` is given.
async fn post_form(app: &TestApp, path: &str, basic: Option<&TestClient>, form: &[(&str, &str)]) -> Answer {
    let mut request = app.http.post(app.url(path)).form(form);
    if let Some(client) = basic {
        request = request.basic_auth(&client.id, Some(&client.secret));
    }
    answer(request.send().await.expect("request")).await
}

/// A `client_credentials` request with the secret in the form body.
async fn token_form(app: &TestApp, id: &str, secret: &str, scope: Option<&str>) -> Answer {
    let mut form = vec![("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    form.extend(scope.map(|s| ("scope", s)));
    post_form(app, TOKEN, None, &form).await
}

/// Asserts an RFC 6749 §5.2 error: the status, the code, and nothing but
/// `error` and `error_description` in the body.
fn assert_oauth_error(answer: &Answer, status: u16, error: &str) {
    assert_eq!(answer.status, status, "unexpected status; body: {}", answer.text);
    let object = answer.json.as_object().expect("an OAuth error is a JSON object");
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["error", "error_description"]), "body: {}", answer.text);
    assert_eq!(answer.json["error"], error, "body: {}", answer.text);
    assert!(answer.json["error_description"].as_str().is_some_and(|d| !d.is_empty()));
}

fn words(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

/// The `issuer` of the RFC 8414 metadata document.
pub(crate) async fn issuer(app: &TestApp) -> String {
    let response = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.expect("metadata");
    assert_eq!(response.status(), 200);
    let metadata: Value = response.json().await.expect("metadata JSON");
    metadata["issuer"].as_str().expect("issuer").to_owned()
}

/// The JWKS, fetched over HTTP.
pub(crate) async fn jwks(app: &TestApp) -> JwkSet {
    let response = app.http.get(app.url("/.well-known/jwks.json")).send().await.expect("jwks request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a JWK set")
}

async fn oauth2_token(app: &TestApp, client: &TestClient, auth: AuthType, scopes: &[&str]) -> BasicTokenResponse {
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_token_uri(TokenUrl::new(app.url(TOKEN)).expect("token URL"))
        .set_auth_type(auth);
    // oauth2 recommends a client that does not follow redirects (SSRF).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let request = scopes
        .iter()
        .fold(oauth.exchange_client_credentials(), |r, s| r.add_scope(oauth2::Scope::new((*s).to_owned())));
    match request.request_async(&http).await {
        Ok(token) => token,
        Err(err) => panic!("oauth2 client could not get a token: {err:?}"),
    }
}

fn granted(token: &BasicTokenResponse) -> BTreeSet<String> {
    token.scopes().expect("scope is returned").iter().map(|s| s.to_string()).collect()
}

async fn oauth2_client_gets_tokens_with_basic_and_body_auth(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read contacts:write deals:read").await;
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let token = oauth2_token(app, &client, auth.clone(), &[]).await;
        assert_eq!(*token.token_type(), BasicTokenType::Bearer, "{auth:?}");
        assert_eq!(token.expires_in(), Some(std::time::Duration::from_secs(3600)), "{auth:?}");
        assert_eq!(granted(&token), words("accounts:read contacts:write deals:read"), "{auth:?}");
        let (status, me) = app.get_bearer("/api/v1/me", token.access_token().secret()).await;
        assert_eq!(status, 200, "{auth:?}: {me}");
        assert_eq!(me["data"]["credentialId"], client.id.as_str());

        let subset = oauth2_token(app, &client, auth.clone(), &["contacts:write", "deals:read"]).await;
        assert_eq!(granted(&subset), words("contacts:write deals:read"), "{auth:?}");
        let (status, me) = app.get_bearer("/api/v1/me", subset.access_token().secret()).await;
        assert_eq!(status, 200);
        let scopes: BTreeSet<String> =
            me["data"]["scopes"].as_array().expect("scopes").iter().map(|s| s.as_str().unwrap_or("").to_owned()).collect();
        assert_eq!(scopes, words("contacts:write deals:read"));
    }
}

async fn json_body_token_response_matches_seed(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read devices:write").await;
    let body = json!({"client_id": client.id, "client_secret": client.secret, "grant_type": "client_credentials"});
    let response = app.http.post(app.url(TOKEN)).json(&body).send().await.expect("token request");
    let answer = answer(response).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let object = answer.json.as_object().expect("JSON object");
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["access_token", "token_type", "expires_in", "scope"]));
    assert_eq!(answer.json["token_type"], "Bearer");
    assert_eq!(answer.json["expires_in"], 3600);
    assert_eq!(words(answer.json["scope"].as_str().expect("scope")), words("accounts:read devices:write"));
    let token = answer.json["access_token"].as_str().expect("access_token");
    assert_eq!(token.split('.').count(), 3, "a compact JWS");
    let (status, _) = app.get_bearer("/api/v1/me", token).await;
    assert_eq!(status, 200);
}

async fn token_verifies_with_jwks_and_carries_claims(app: &mut TestApp) {
    let issuer = issuer(app).await;
    let jwks = jwks(app).await;
    for env in [Environment::Live, Environment::Test] {
        let client = app.client(env, "accounts:read mrr:read").await;
        let token = app.token(&client, Some("mrr:read")).await;
        let header = jsonwebtoken::decode_header(&token).expect("JWT header");
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let kid = header.kid.expect("kid");
        let jwk = jwks.find(&kid).expect("the token's kid is in the JWKS");
        let key = DecodingKey::from_jwk(jwk).expect("a usable JWK");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["breadbox-api"]);
        validation.set_issuer(&[issuer.as_str()]);
        let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("token verifies").claims;
        assert_eq!(claims["iss"], issuer.as_str());
        assert_eq!(claims["sub"], client.id.as_str());
        assert_eq!(claims["client_id"], client.id.as_str());
        assert_eq!(claims["aud"], "breadbox-api");
        assert_eq!(claims["scope"], "mrr:read");
        assert_eq!(claims["org_id"], app.org_id.as_str());
        assert_eq!(claims["env"], env.as_str());
        let iat = claims["iat"].as_i64().expect("iat");
        let exp = claims["exp"].as_i64().expect("exp");
        assert_eq!(exp, iat + 3600);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        assert!((iat - now).abs() <= 5, "iat {iat} is not now ({now})");
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16), "jti: {}", claims["jti"]);
    }
}

async fn token_rejects_bad_client_credentials(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let unknown = token_form(app, "cli_doesnotexist000000", &client.secret, None).await;
    let wrong_secret = TestClient { id: client.id.clone(), secret: format!("{}x", client.secret) };
    let wrong_body = token_form(app, &wrong_secret.id, &wrong_secret.secret, None).await;
    let wrong_basic = post_form(app, TOKEN, Some(&wrong_secret), &[("grant_type", "client_credentials")]).await;
    let no_credentials = post_form(app, TOKEN, None, &[("grant_type", "client_credentials")]).await;
    for answer in [&unknown, &wrong_body, &wrong_basic, &no_credentials] {
        assert_oauth_error(answer, 401, "invalid_client");
        let challenge = answer.headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(challenge.starts_with("Basic"), "WWW-Authenticate: {challenge:?}");
        assert!(!answer.text.contains(&client.secret), "the secret leaked: {}", answer.text);
    }
    assert_eq!(unknown.json, wrong_body.json, "an unknown id and a wrong secret look the same");
}

async fn token_rejects_malformed_requests(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let (id, secret) = (client.id.as_str(), client.secret.as_str());
    let cases = [
        ("missing grant_type", post_form(app, TOKEN, None, &[("client_id", id), ("client_secret", secret)]).await, "invalid_request"),
        (
            "password grant",
            post_form(app, TOKEN, Some(&client), &[("grant_type", "password"), ("username", "u"), ("password", "p")]).await,
            "unsupported_grant_type",
        ),
        ("unknown scope", token_form(app, id, secret, Some("accounts:read bogus:scope")).await, "invalid_scope"),
        ("scope not held", token_form(app, id, secret, Some("accounts:write")).await, "invalid_scope"),
        (
            "Basic and client_secret",
            post_form(app, TOKEN, Some(&client), &[("grant_type", "client_credentials"), ("client_secret", secret)]).await,
            "invalid_request",
        ),
        (
            "text/plain body",
            answer(
                app.http
                    .post(app.url(TOKEN))
                    .header("content-type", "text/plain")
                    .body(format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"))
                    .send()
                    .await
                    .expect("request"),
            )
            .await,
            "invalid_request",
        ),
    ];
    for (case, answer, error) in &cases {
        assert_eq!(answer.status, 400, "{case}: {}", answer.text);
        assert_oauth_error(answer, 400, error);
        assert!(!answer.text.contains(secret), "{case}: the secret leaked: {}", answer.text);
    }
}

async fn metadata_document_lists_endpoints(app: &mut TestApp) {
    let response = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.expect("metadata");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("metadata JSON");
    assert_eq!(doc["issuer"], app.base.as_str());
    for (field, path) in [
        ("token_endpoint", TOKEN),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("introspection_endpoint", INTROSPECT),
        ("revocation_endpoint", REVOKE),
    ] {
        assert_eq!(doc[field], app.url(path), "{field}");
    }
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    let methods = json!(["client_secret_basic", "client_secret_post"]);
    assert_eq!(doc["token_endpoint_auth_methods_supported"], methods);
    assert_eq!(doc["introspection_endpoint_auth_methods_supported"], methods);
    assert_eq!(doc["revocation_endpoint_auth_methods_supported"], methods);
    let scopes = doc["scopes_supported"].as_array().expect("scopes_supported");
    assert!(scopes.contains(&json!("accounts:read")) && scopes.contains(&json!("admin:write")));
}

async fn rotated_client_secret_replaces_the_old_one(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let before = app.token(&client, None).await;
    let path = format!("/api/v1/admin/oauth-clients/{}/rotate-secret", client.id);
    let (status, body) = app.post_key(&path, &app.admin_key, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let new_secret = body["data"]["clientSecret"].as_str().expect("clientSecret").to_owned();
    assert_ne!(new_secret, client.secret);
    assert_oauth_error(&token_form(app, &client.id, &client.secret, None).await, 401, "invalid_client");
    let fresh = token_form(app, &client.id, &new_secret, None).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    let (status, _) = app.get_bearer("/api/v1/me", &before).await;
    assert_eq!(status, 200, "tokens issued before a rotation stay valid");
}

async fn disabled_client_gets_no_token_and_its_tokens_are_refused(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let token = app.token(&client, None).await;
    let (status, _) = app.get_bearer("/api/v1/me", &token).await;
    assert_eq!(status, 200);
    let path = format!("/api/v1/admin/oauth-clients/{}/disable", client.id);
    let (status, body) = app.post_key(&path, &app.admin_key, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["disabledAt"].is_string(), "{body}");
    assert_oauth_error(&token_form(app, &client.id, &client.secret, None).await, 401, "invalid_client");
    let (status, body) = app.get_bearer("/api/v1/me", &token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(body["error"]["reason"], "INVALID_TOKEN");
}

async fn introspection_reports_token_state(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read devices:read").await;
    let token = app.token(&client, Some("accounts:read")).await;
    let live = post_form(app, INTROSPECT, Some(&client), &[("token", &token)]).await;
    assert_eq!(live.status, 200, "{}", live.text);
    assert_eq!(live.json["active"], true);
    assert_eq!(live.json["scope"], "accounts:read");
    assert_eq!(live.json["client_id"], client.id.as_str());
    assert_eq!(live.json["token_type"], "Bearer");
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&token).expect("claims").claims;
    assert_eq!(live.json["exp"], claims["exp"]);

    let (_, key) = app.key(Environment::Live, "contacts:read").await;
    let (id, secret) = (client.id.as_str(), client.secret.as_str());
    let static_key = post_form(app, INTROSPECT, None, &[("token", &key), ("client_id", id), ("client_secret", secret)]).await;
    assert_eq!(static_key.status, 200, "{}", static_key.text);
    assert_eq!(static_key.json["active"], true);
    assert_eq!(static_key.json["token_type"], "api_key");
    assert_eq!(static_key.json["scope"], "contacts:read");

    for garbage in ["not-a-token", "a.b.c", &format!("{token}x")] {
        let dead = post_form(app, INTROSPECT, Some(&client), &[("token", garbage)]).await;
        assert_eq!(dead.status, 200, "{}", dead.text);
        assert_eq!(dead.json, json!({"active": false}), "{garbage}");
    }
}

async fn introspection_hides_other_organizations(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let other_org = app.service.create_org("Other org", Plan::Starter).await.expect("second org");
    let scopes = ScopeSet::parse("accounts:read").expect("scopes");
    let (info, secret) =
        app.service.create_client(&other_org.id, Environment::Live, scopes, "other").await.expect("other client");
    let other = TestClient { id: info.id, secret: secret.expose().to_owned() };
    let foreign_token = app.token(&other, None).await;
    let (_, foreign_key) =
        app.service.create_key(&other_org.id, Environment::Live, scopes, "other key").await.expect("other key");

    for token in [foreign_token.as_str(), foreign_key.expose()] {
        let answer = post_form(app, INTROSPECT, Some(&client), &[("token", token)]).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json, json!({"active": false}));
    }
    let own = post_form(app, INTROSPECT, Some(&other), &[("token", &foreign_token)]).await;
    assert_eq!(own.json["active"], true, "the other org's client sees its own token");

    // The same organization's test environment is another partition too.
    let test_client = app.client(Environment::Test, "accounts:read").await;
    let test_token = app.token(&test_client, None).await;
    let (_, test_key) = app.key(Environment::Test, "accounts:read").await;
    for token in [test_token.as_str(), test_key.as_str()] {
        let answer = post_form(app, INTROSPECT, Some(&client), &[("token", token)]).await;
        assert_eq!(answer.json, json!({"active": false}), "a live client cannot inspect test credentials");
    }
}

async fn introspection_requires_client_authentication(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let token = app.token(&client, None).await;
    let anonymous = post_form(app, INTROSPECT, None, &[("token", &token)]).await;
    assert_oauth_error(&anonymous, 401, "invalid_client");
    let wrong = TestClient { id: client.id.clone(), secret: "mcs_wrong".to_owned() };
    let wrong_secret = post_form(app, INTROSPECT, Some(&wrong), &[("token", &token)]).await;
    assert_oauth_error(&wrong_secret, 401, "invalid_client");
    for answer in [&anonymous, &wrong_secret] {
        assert!(answer.headers.contains_key("www-authenticate"));
        assert!(!answer.text.contains(&token), "introspection errors never echo the token");
    }
}

async fn revoked_token_is_refused_everywhere(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let token = app.token(&client, None).await;
    let (status, _) = app.get_bearer("/api/v1/me", &token).await;
    assert_eq!(status, 200);
    let revoked = post_form(app, REVOKE, Some(&client), &[("token", &token), ("token_type_hint", "access_token")]).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let (status, body) = app.get_bearer("/api/v1/me", &token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["reason"], "INVALID_TOKEN");
    let introspected = post_form(app, INTROSPECT, Some(&client), &[("token", &token)]).await;
    assert_eq!(introspected.json, json!({"active": false}));

    let again = post_form(app, REVOKE, Some(&client), &[("token", &token)]).await;
    assert_eq!(again.status, 200, "revoking twice is harmless");
    let garbage = post_form(app, REVOKE, Some(&client), &[("token", "garbage.not.jwt")]).await;
    assert_eq!(garbage.status, 200, "RFC 7009 §2.2: unknown tokens are answered 200; {}", garbage.text);
    let fresh = app.token(&client, None).await;
    let (status, _) = app.get_bearer("/api/v1/me", &fresh).await;
    assert_eq!(status, 200, "revoking one token leaves the client's others alone");
}

async fn revoking_another_clients_token_is_refused(app: &mut TestApp) {
    let mine = app.client(Environment::Live, "accounts:read").await;
    let theirs = app.client(Environment::Live, "accounts:read").await;
    let token = app.token(&theirs, None).await;
    let refused = post_form(app, REVOKE, Some(&mine), &[("token", &token)]).await;
    assert_oauth_error(&refused, 400, "unauthorized_client");
    let (status, _) = app.get_bearer("/api/v1/me", &token).await;
    assert_eq!(status, 200, "the token survives a refused revocation");
    let anonymous = post_form(app, REVOKE, None, &[("token", &token)]).await;
    assert_oauth_error(&anonymous, 401, "invalid_client");
}

both_backends!(
    oauth2_client_gets_tokens_with_basic_and_body_auth,
    json_body_token_response_matches_seed,
    token_verifies_with_jwks_and_carries_claims,
    token_rejects_bad_client_credentials,
    token_rejects_malformed_requests,
    metadata_document_lists_endpoints,
    rotated_client_secret_replaces_the_old_one,
    disabled_client_gets_no_token_and_its_tokens_are_refused,
    introspection_reports_token_state,
    introspection_hides_other_organizations,
    introspection_requires_client_authentication,
    revoked_token_is_refused_everywhere,
    revoking_another_clients_token_is_refused,
);
