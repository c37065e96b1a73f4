//! The Authenticator as callers meet it on GET /api/v1/me: three ways in, every 401
//! reason, 403 naming the scope, two credentials refused.

use breadbox_auth::Environment;
use breadbox_tests::*;
use serde_json::Value;

fn reason(body: &Value) -> &str {
    body["error"]["reason"].as_str().unwrap_or("")
}

async fn me_answers_for_jwt_bearer_key_and_x_api_key(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read deals:write").await;
    let token = app.token(&client, None).await;
    let (status, body) = app.get_bearer("/api/v1/me", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["credentialKind"], "oauth_client");
    assert_eq!(body["data"]["credentialId"], client.id.as_str());
    assert_eq!(body["data"]["orgId"], app.org_id.as_str());
    assert_eq!(body["data"]["scopes"], serde_json::json!(["accounts:read", "deals:write"]));
    assert!(body["data"]["effectiveScopes"].as_array().expect("array").contains(&"deals:read".into()));
    assert!(body["data"]["tokenId"].as_str().is_some_and(|j| !j.is_empty()));

    let (key_id, key) = app.key(Environment::Test, "contacts:read").await;
    for (status, body) in [app.get_bearer("/api/v1/me", &key).await, app.get_key("/api/v1/me", &key).await] {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["credentialKind"], "api_key");
        assert_eq!(body["data"]["credentialId"], key_id.as_str());
        assert_eq!(body["data"]["environment"], "test");
        assert!(body["meta"]["requestId"].as_str().is_some_and(|id| id.starts_with("req_")));
    }
}

async fn missing_credential_is_401_missing_api_key_with_request_id(app: &mut TestApp) {
    let response = app.http.get(app.url("/api/v1/me")).send().await.expect("request");
    let header = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, body) = read(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(reason(&body), "MISSING_API_KEY");
    assert_eq!(header.as_deref(), body["error"]["requestId"].as_str());
}

async fn malformed_and_unknown_keys_are_401_invalid_api_key(app: &mut TestApp) {
    let (_, real) = app.key(Environment::Live, "accounts:read").await;
    let mut typo = real.clone().into_bytes();
    typo[20] = if typo[20] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).expect("ascii");
    let other = breadbox_auth::secret::ApiKeySecret::generate(Environment::Live);
    for bad in ["bb_4xK9mZ2nQpR7sT1vW3yA5bC8dE6fG0hJqLnPuVw", "msp_live_short", typo.as_str(), other.expose()] {
        let (status, body) = app.get_key("/api/v1/me", bad).await;
        assert_eq!((status, reason(&body)), (401, "INVALID_API_KEY"), "key {bad}: {body}");
        assert!(!body.to_string().contains(bad), "the key must not be echoed");
    }
    let (status, body) = app.get_bearer("/api/v1/me", "not-a-jwt").await;
    assert_eq!((status, reason(&body)), (401, "INVALID_TOKEN"));
    let response = app.http.get(app.url("/api/v1/me")).header("Authorization", format!("Basic {real}")).send().await.expect("request");
    let (status, body) = read(response).await;
    assert_eq!((status, reason(&body)), (401, "INVALID_API_KEY"));
}

async fn a_key_failing_its_checksum_never_reaches_the_database(app: &mut TestApp) {
    let lookups = || async {
        let text = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix("breadbox_auth_key_db_lookups_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("lookup counter present")
    };
    let before = lookups().await;
    let (_, real) = app.key(Environment::Live, "accounts:read").await;
    let broken = format!("{}{}", &real[..real.len() - 1], if real.ends_with('0') { '1' } else { '0' });
    for _ in 0..20 {
        let (status, _) = app.get_key("/api/v1/me", &broken).await;
        assert_eq!(status, 401);
    }
    assert_eq!(lookups().await, before, "a bad checksum must be refused offline");
    // The counter does move for a well-formed key, so the assertion above means something.
    let unknown = breadbox_auth::secret::ApiKeySecret::generate(Environment::Live);
    let (status, _) = app.get_key("/api/v1/me", unknown.expose()).await;
    assert_eq!(status, 401);
    assert_eq!(lookups().await, before + 1);
}

async fn two_credentials_are_400_bad_request(app: &mut TestApp) {
    let (_, key) = app.key(Environment::Live, "accounts:read").await;
    let response = app
        .http
        .get(app.url("/api/v1/me"))
        .header("X-API-Key", &key)
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
}

async fn missing_scope_is_403_naming_the_scope(app: &mut TestApp) {
    let (_, key) = app.key(Environment::Live, "accounts:write").await;
    let (status, body) = app.get_key("/api/v1/admin/api-keys", &key).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(reason(&body), "admin:read");
    assert!(body["error"]["message"].as_str().expect("message").contains("admin:read"));

    // admin:read implies every read, not writes.
    let (_, reader) = app.key(Environment::Live, "admin:read").await;
    let (status, _) = app.get_key("/api/v1/admin/api-keys", &reader).await;
    assert_eq!(status, 200);
    let (status, body) = app.post_key("/api/v1/admin/api-keys", &reader, &serde_json::json!({"name": "x", "preset": "read_only"})).await;
    assert_eq!((status, reason(&body)), (403, "admin:write"));
}

async fn revoked_key_is_401_revoked_api_key(app: &mut TestApp) {
    let (id, key) = app.key(Environment::Live, "accounts:read").await;
    assert_eq!(app.get_key("/api/v1/me", &key).await.0, 200);
    app.service.revoke_key(&id).await.expect("revoke");
    let (status, body) = app.get_key("/api/v1/me", &key).await;
    assert_eq!((status, reason(&body)), (401, "REVOKED_API_KEY"));
}

both_backends!(
    me_answers_for_jwt_bearer_key_and_x_api_key,
    missing_credential_is_401_missing_api_key_with_request_id,
    malformed_and_unknown_keys_are_401_invalid_api_key,
    a_key_failing_its_checksum_never_reaches_the_database,
    two_credentials_are_400_bad_request,
    missing_scope_is_403_naming_the_scope,
    revoked_key_is_401_revoked_api_key,
);
