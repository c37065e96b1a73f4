//! The admin HTTP API: keys and clients created, rotated and revoked over HTTP, and
//! revocation reaching every instance.

use std::time::{Duration, Instant};

use breadbox_auth::{Environment, Plan};
use breadbox_tests::*;
use serde_json::json;

async fn created_key_is_shown_once_and_works(app: &mut TestApp) {
    let (status, body) = app
        .post_key("/api/v1/admin/api-keys", &app.admin_key, &json!({"name": "PSA sync", "preset": "read_only"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let key = body["data"]["key"].as_str().expect("key shown").to_owned();
    assert!(key.starts_with("msp_live_"));
    let id = body["data"]["apiKey"]["id"].as_str().expect("id").to_owned();
    assert_eq!(body["data"]["apiKey"]["scopes"], json!(["admin:read"]));
    let (status, me) = app.get_key("/api/v1/me", &key).await;
    assert_eq!(status, 200);
    assert_eq!(me["data"]["credentialId"], id.as_str());

    let (status, list) = app.get_key("/api/v1/admin/api-keys", &app.admin_key).await;
    assert_eq!(status, 200);
    assert!(list["data"].as_array().expect("list").iter().any(|k| k["id"] == id.as_str()));
    assert!(!list.to_string().contains(&key), "a listed key never shows the secret");
    let (status, one) = app.get_key(&format!("/api/v1/admin/api-keys/{id}"), &app.admin_key).await;
    assert_eq!(status, 200);
    assert_eq!(one["data"]["prefix"], &key[..13]);
}

async fn key_creation_is_validated(app: &mut TestApp) {
    let cases = [
        (json!({"name": "x"}), "scopes"),
        (json!({"name": "x", "scopes": ["accounts:read"], "preset": "read_only"}), "preset"),
        (json!({"name": "x", "scopes": ["accounts:delete"]}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": ["accounts:read"], "extra": 1}), "extra"),
        (json!({"name": "  ", "preset": "read_only"}), "name"),
        (json!({"name": "PSA\u{7}sync", "preset": "read_only"}), "name"),
        (json!({"name": "x".repeat(201), "preset": "read_only"}), "name"),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post_key("/api/v1/admin/api-keys", &app.admin_key, &body).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], "validation_error");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{answer}");
    }
    let response = app
        .http
        .post(app.url("/api/v1/admin/api-keys"))
        .header("X-API-Key", &app.admin_key)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    let (status, answer) = read(response).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_json")));
    // An OAuth client's name follows the same rule; a name is stored trimmed.
    let body = json!({"name": "\u{1b}[31m", "scopes": ["devices:read"]});
    let (status, answer) = app.post_key("/api/v1/admin/oauth-clients", &app.admin_key, &body).await;
    assert_eq!((status, &answer["error"]["details"][0]["field"]), (422, &json!("name")), "{answer}");
    let body = json!({"name": " RMM sync ", "scopes": ["devices:read"]});
    let (status, answer) = app.post_key("/api/v1/admin/oauth-clients", &app.admin_key, &body).await;
    assert_eq!((status, answer["data"]["client"]["name"].as_str()), (200, Some("RMM sync")), "{answer}");
}

async fn only_admin_write_manages_credentials(app: &mut TestApp) {
    let (_, full) = app.key(Environment::Live, "accounts:write admin:read").await;
    let (status, body) = app.post_key("/api/v1/admin/api-keys", &full, &json!({"name": "x", "preset": "read_only"})).await;
    assert_eq!((status, body["error"]["reason"].as_str()), (403, Some("admin:write")));
}

async fn another_orgs_credentials_are_404(app: &mut TestApp) {
    let other = app.service.create_org("Other MSP", Plan::Starter).await.expect("org");
    let scopes = breadbox_auth::ScopeSet::parse("accounts:read").expect("scopes");
    let (key, _) = app.service.create_key(&other.id, Environment::Live, scopes, "theirs").await.expect("key");
    let (client, _) = app.service.create_client(&other.id, Environment::Live, scopes, "theirs").await.expect("client");
    for path in [format!("/api/v1/admin/api-keys/{}", key.id), format!("/api/v1/admin/oauth-clients/{}", client.id)] {
        let (status, body) = app.get_key(&path, &app.admin_key).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{path}");
    }
    let (status, _) = app.post_key(&format!("/api/v1/admin/api-keys/{}/revoke", key.id), &app.admin_key, &json!({})).await;
    assert_eq!(status, 404);
    assert!(app.service.get_key(&key.id).await.expect("key").revoked_at.is_none(), "not revoked across orgs");
    // A test-environment credential does not see live keys either.
    let (_, test_admin) = app.key(Environment::Test, "admin:write").await;
    let (status, _) = app.get_key(&format!("/api/v1/admin/api-keys/{}", app.service.list_keys(&app.org_id).await.expect("keys")[0].id), &test_admin).await;
    assert_eq!(status, 404);
}

async fn revoke_and_rotate_over_http_take_effect(app: &mut TestApp) {
    let (id, key) = app.key(Environment::Live, "accounts:read").await;
    let (status, body) = app.post_key(&format!("/api/v1/admin/api-keys/{id}/revoke"), &app.admin_key, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["revokedAt"].is_string());
    let (status, body) = app.get_key("/api/v1/me", &key).await;
    assert_eq!((status, body["error"]["reason"].as_str()), (401, Some("REVOKED_API_KEY")));

    // Rotation with a grace period: both work; without one, the old key stops at once.
    let (id, old) = app.key(Environment::Live, "accounts:read").await;
    let (status, body) = app
        .post_key(&format!("/api/v1/admin/api-keys/{id}/rotate?graceSeconds=3600"), &app.admin_key, &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let new = body["data"]["key"].as_str().expect("new key").to_owned();
    assert_eq!(app.get_key("/api/v1/me", &old).await.0, 200);
    assert_eq!(app.get_key("/api/v1/me", &new).await.0, 200);
    let new_id = body["data"]["apiKey"]["id"].as_str().expect("id");
    let (status, body) = app.post_key(&format!("/api/v1/admin/api-keys/{new_id}/rotate"), &app.admin_key, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let newest = body["data"]["key"].as_str().expect("newest").to_owned();
    let (status, body) = app.get_key("/api/v1/me", &new).await;
    assert_eq!((status, body["error"]["reason"].as_str()), (401, Some("REVOKED_API_KEY")));
    assert_eq!(app.get_key("/api/v1/me", &newest).await.0, 200);
    let (status, _) = app.post_key(&format!("/api/v1/admin/api-keys/{id}/rotate"), &app.admin_key, &json!({})).await;
    assert_eq!(status, 422, "a key is rotated once");
}

async fn clients_created_over_http_get_tokens(app: &mut TestApp) {
    let (status, body) = app
        .post_key("/api/v1/admin/oauth-clients", &app.admin_key, &json!({"name": "RMM", "scopes": ["devices:write"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let client = TestClient {
        id: body["data"]["client"]["id"].as_str().expect("id").to_owned(),
        secret: body["data"]["clientSecret"].as_str().expect("secret").to_owned(),
    };
    let token = app.token(&client, None).await;
    let (status, me) = app.get_bearer("/api/v1/me", &token).await;
    assert_eq!(status, 200);
    assert_eq!(me["data"]["scopes"], json!(["devices:write"]));
    let (status, list) = app.get_key("/api/v1/admin/oauth-clients", &app.admin_key).await;
    assert_eq!(status, 200);
    assert!(!list.to_string().contains(&client.secret));
}

async fn revocation_reaches_another_instance_within_seconds(app: &mut TestApp) {
    let peer = app.spawn_peer().await;
    let (id, key) = app.key(Environment::Live, "accounts:read").await;
    let client = app.client(Environment::Live, "accounts:read").await;
    let token = app.token(&client, None).await;
    let on_peer = |credential: String| {
        let url = peer.url("/api/v1/me");
        let http = app.http.clone();
        async move { http.get(url).bearer_auth(credential).send().await.expect("peer request").status().as_u16() }
    };
    assert_eq!(on_peer(key.clone()).await, 200, "the peer has the key cached now");
    assert_eq!(on_peer(token.clone()).await, 200);

    app.service.revoke_key(&id).await.expect("revoke");
    app.service.disable_client(&client.id).await.expect("disable");
    let started = Instant::now();
    loop {
        let (k, t) = (on_peer(key.clone()).await, on_peer(token.clone()).await);
        if k == 401 && t == 401 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "peer still accepts after 5 s ({k}, {t})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peer.stop().await;
}

both_backends!(
    created_key_is_shown_once_and_works,
    key_creation_is_validated,
    only_admin_write_manages_credentials,
    another_orgs_credentials_are_404,
    revoke_and_rotate_over_http_take_effect,
    clients_created_over_http_get_tokens,
    revocation_reaches_another_instance_within_seconds,
);
