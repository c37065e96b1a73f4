//! Operational behaviour: health, readiness, metrics, the envelope for routing errors,
//! request ids, and nothing lost on a graceful shutdown.

use breadbox_auth::{AuthService, Environment};
use breadbox_tests::*;

async fn health_and_readiness_answer(app: &mut TestApp) {
    let (status, body) = read(app.http.get(app.url("/healthz")).send().await.expect("healthz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = read(app.http.get(app.url("/readyz")).send().await.expect("readyz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

async fn metrics_count_requests_tokens_and_failures(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let token = app.token(&client, None).await;
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.0, 200);
    assert_eq!(app.get_key("/api/v1/me", "msp_live_nope").await.0, 401);
    let response = app.http.get(app.url("/metrics")).send().await.expect("metrics");
    assert!(response.headers()["content-type"].to_str().expect("type").starts_with("text/plain"));
    let text = response.text().await.expect("text");
    for needle in [
        "breadbox_http_requests_total{route=\"get_me\",status=\"200\"}",
        "breadbox_http_request_duration_seconds_bucket{route=\"get_me\"",
        "breadbox_tokens_issued_total",
        "breadbox_auth_failures_total{reason=\"INVALID_API_KEY\"}",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}");
    }
}

async fn routing_errors_use_the_envelope(app: &mut TestApp) {
    let response = app.http.get(app.url("/api/v1/no-such-thing")).send().await.expect("request");
    let id = response.headers().get("x-request-id").expect("request id").to_str().expect("ascii").to_owned();
    let (status, body) = read(response).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(body["error"]["requestId"], id.as_str());

    let response = app.http.delete(app.url("/api/v1/me")).send().await.expect("request");
    let allow = |response: &reqwest::Response| response.headers().get("allow").map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(allow(&response).as_deref(), Some("GET, HEAD"), "a 405 says what the path allows (RFC 9110)");
    let id = response.headers().get("x-request-id").expect("request id").to_str().expect("ascii").to_owned();
    let (status, body) = read(response).await;
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")));
    assert_eq!(body["error"]["message"], "DELETE is not supported on /api/v1/me");
    assert_eq!(body["error"]["requestId"], id.as_str());
    let response = app.http.put(app.url("/api/v1/accounts/acc_1")).send().await.expect("request");
    assert_eq!(response.status(), 405);
    assert_eq!(allow(&response).as_deref(), Some("DELETE, GET, HEAD, PATCH"));
    // The OAuth routes too, each with the methods it answers (and answers no other).
    for (path, methods) in [
        ("/api/v1/auth/token", "POST"),
        ("/api/v1/auth/introspect", "POST"),
        ("/api/v1/auth/revoke", "POST"),
        ("/.well-known/oauth-authorization-server", "GET, HEAD"),
        ("/.well-known/jwks.json", "GET, HEAD"),
    ] {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
            let response =
                app.http.request(reqwest::Method::from_bytes(method.as_bytes()).expect("a method"), app.url(path)).send().await.expect("request");
            if methods.split(", ").any(|m| m == method) {
                assert_ne!(response.status(), 405, "{method} {path}");
                continue;
            }
            assert_eq!(allow(&response).as_deref(), Some(methods), "{method} {path}");
            let (status, body) = read(response).await;
            let code = if method == "HEAD" { None } else { Some("method_not_allowed") };
            assert_eq!((status, body["error"]["code"].as_str()), (405, code), "{method} {path}");
        }
    }

    // HEAD is the GET without its body, as poem's method router answers it.
    let response = app.http.head(app.url("/api/v1/me")).header("X-API-Key", &app.admin_key).send().await.expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "GET's headers, got {content_type:?}");
    assert_eq!(response.bytes().await.expect("body").len(), 0, "no body");

    let response = app
        .http
        .post(app.url("/api/v1/admin/api-keys"))
        .header("X-API-Key", &app.admin_key)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")));
}

async fn every_response_has_a_distinct_request_id(app: &mut TestApp) {
    let mut seen = std::collections::HashSet::new();
    for path in ["/healthz", "/api/v1/me", "/.well-known/jwks.json", "/nope", "/api/v1/openapi.json"] {
        let response = app.http.get(app.url(path)).send().await.expect("request");
        let id = response.headers().get("x-request-id").unwrap_or_else(|| panic!("{path} has no X-Request-Id"));
        assert!(seen.insert(id.to_str().expect("ascii").to_owned()));
    }
}

// An API answer (success or error, with a key or without) is never stored by a cache
// or the browser; the spec and the health checks may be.
async fn api_answers_are_not_to_be_stored(app: &mut TestApp) {
    let cases = [
        ("/api/v1/accounts", Some(app.admin_key.as_str()), Some("no-store")),
        ("/api/v1/accounts/acc_missing", Some(app.admin_key.as_str()), Some("no-store")),
        ("/api/v1/me", None, Some("no-store")),
        ("/api/v1/nope", Some(app.admin_key.as_str()), Some("no-store")),
        ("/api/v1/openapi.json", None, None),
        ("/healthz", None, None),
    ];
    for (path, key, expected) in cases {
        let mut request = app.http.get(app.url(path));
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        let response = request.send().await.expect("request");
        let cache = response.headers().get("cache-control").and_then(|v| v.to_str().ok());
        assert_eq!(cache, expected, "{path} ({})", response.status());
    }
    let token = app.http.post(app.url("/api/v1/auth/token")).form(&[("grant_type", "client_credentials")]).send().await;
    let token = token.expect("request");
    assert_eq!(token.status(), 401, "no client given");
    assert_eq!(token.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "RFC 6749 §5.1");
}

async fn last_use_is_recorded_by_a_graceful_shutdown(app: &mut TestApp) {
    let (id, key) = app.key(Environment::Live, "accounts:read").await;
    assert_eq!(app.get_key("/api/v1/me", &key).await.0, 200);
    assert!(app.service.get_key(&id).await.expect("key").last_used_at.is_none(), "batched, not written per request");
    app.stop().await;
    let reopened = AuthService::start(app.auth_config.clone(), "http://localhost".into()).await.expect("reopen");
    assert!(reopened.get_key(&id).await.expect("key").last_used_at.is_some(), "flushed on shutdown");
    reopened.db().close().await;
}

both_backends!(
    health_and_readiness_answer,
    metrics_count_requests_tokens_and_failures,
    routing_errors_use_the_envelope,
    every_response_has_a_distinct_request_id,
    api_answers_are_not_to_be_stored,
    last_use_is_recorded_by_a_graceful_shutdown,
);
