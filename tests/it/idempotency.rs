//! `Idempotency-Key` on POST: a retry replays the first answer and creates nothing;
//! the key with another request is a 422; while the first runs, a 409; keys belong to
//! one credential.

use std::time::{Duration, Instant};

use breadbox_auth::Environment;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crm::*;

async fn post(app: &TestApp, path: &str, key: &str, body: &Value, idempotency_key: &str) -> Answer {
    app.send(Method::POST, path, key, Some(body), &[("Idempotency-Key", idempotency_key)]).await
}

async fn bearer_post(app: &TestApp, token: &str, body: &Value, idempotency_key: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/api/v1/accounts"))
        .bearer_auth(token)
        .header("Idempotency-Key", idempotency_key)
        .json(body)
        .send()
        .await
        .expect("request");
    read(response).await
}

async fn account_names(app: &TestApp) -> Vec<String> {
    let (_, list) = app.get_key("/api/v1/accounts?limit=100", &app.admin_key).await;
    list["data"].as_array().expect("data").iter().map(|a| a["name"].as_str().expect("name").to_owned()).collect()
}

async fn a_retry_replays_the_first_answer_and_creates_nothing(app: &mut TestApp) {
    let body = json!({"name": "Acme"});
    let first = post(app, "/api/v1/accounts", &app.admin_key, &body, "create-acme-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = post(app, "/api/v1/accounts", &app.admin_key, &body, "create-acme-1").await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(retry.body, first.body, "the same body, the first request id included");
    for header in ["location", "etag", "content-type"] {
        assert_eq!(retry.header(header), first.header(header), "{header}");
    }
    assert_ne!(retry.header("x-request-id"), first.header("x-request-id"), "the retry is a request of its own");
    assert_eq!(account_names(app).await, ["Acme"]);

    let other_key = post(app, "/api/v1/accounts", &app.admin_key, &body, "create-acme-2").await;
    assert_eq!(other_key.status, 201);
    assert_ne!(other_key.body["data"]["id"], first.body["data"]["id"], "another key is another request");

    // A refusal is kept too: the retry gets the same 422 without running again.
    let invalid = post(app, "/api/v1/deals", &app.admin_key, &json!({"name": "No account"}), "bad-deal").await;
    let again = post(app, "/api/v1/deals", &app.admin_key, &json!({"name": "No account"}), "bad-deal").await;
    assert_eq!((invalid.status, again.status), (422, 422));
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.body, invalid.body);
}

async fn the_key_with_another_request_is_refused(app: &mut TestApp) {
    let first = post(app, "/api/v1/accounts", &app.admin_key, &json!({"name": "Acme"}), "k-1").await;
    assert_eq!(first.status, 201);
    let other_body = post(app, "/api/v1/accounts", &app.admin_key, &json!({"name": "Acme Corp"}), "k-1").await;
    assert_eq!(failing_fields(&other_body), ["Idempotency-Key"]);
    let other_path = post(app, "/api/v1/contacts", &app.admin_key, &json!({"name": "Acme"}), "k-1").await;
    assert_eq!(failing_fields(&other_path), ["Idempotency-Key"]);
    assert_eq!(account_names(app).await, ["Acme"]);
}

async fn keys_belong_to_one_credential(app: &mut TestApp) {
    let body = json!({"name": "Shared"});
    let (_, second_key) = app.key(Environment::Live, "accounts:write").await;
    let a = post(app, "/api/v1/accounts", &app.admin_key, &body, "same-key").await;
    let b = post(app, "/api/v1/accounts", &second_key, &body, "same-key").await;
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(b.header("idempotent-replayed"), None);
    assert_ne!(a.body["data"]["id"], b.body["data"]["id"]);

    // Two tokens of one OAuth client share the client's keys.
    let client = app.client(Environment::Live, "accounts:write").await;
    let (first_token, second_token) = (app.token(&client, None).await, app.token(&client, None).await);
    assert_ne!(first_token, second_token);
    let (status, c) = bearer_post(app, &first_token, &body, "same-key").await;
    assert_eq!(status, 201);
    let (status, d) = bearer_post(app, &second_token, &body, "same-key").await;
    assert_eq!((status, &d["data"]["id"]), (201, &c["data"]["id"]), "replayed across the client's tokens");
    assert_ne!(c["data"]["id"], a.body["data"]["id"]);
    assert_eq!(account_names(app).await.len(), 3);
}

async fn malformed_keys_are_a_bad_request(app: &mut TestApp) {
    let body = json!({"name": "Acme"});
    for key in ["x".repeat(256), String::new()] {
        let answer = post(app, "/api/v1/accounts", &app.admin_key, &body, &key).await;
        assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (400, Some("bad_request")), "{key:?}");
    }
    let non_ascii = app
        .http
        .post(app.url("/api/v1/accounts"))
        .header("X-API-Key", &app.admin_key)
        .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").expect("value"))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(read(non_ascii).await.0, 400);
    let longest = post(app, "/api/v1/accounts", &app.admin_key, &body, &"k".repeat(255)).await;
    assert_eq!(longest.status, 201);
    assert!(account_names(app).await == ["Acme"], "nothing created by refused keys");
}

/// Starts a POST of `body` with the key over a raw connection, sending everything but
/// the body's last byte, so that the request stays in progress.
async fn start_slow_post(app: &TestApp, idempotency_key: &str, body: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.expect("connect");
    let head = format!(
        "POST /api/v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {}\r\nIdempotency-Key: {idempotency_key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.admin_key,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&body.as_bytes()[..body.len() - 1]).await.expect("write body");
    stream
}

async fn a_key_in_use_is_a_conflict(app: &mut TestApp) {
    let body = r#"{"name":"Slow"}"#;
    let mut slow = start_slow_post(app, "slow-1", body).await;
    // Wait until the slow request has claimed its key.
    let started = Instant::now();
    loop {
        let claimed: Option<(String,)> = sqlx::query_as("SELECT state FROM idempotency_keys WHERE idem_key = $1")
            .bind("slow-1")
            .fetch_optional(app.service.db().pool())
            .await
            .expect("query");
        if claimed.is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the slow request never claimed its key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let parsed: Value = serde_json::from_str(body).expect("json");
    let concurrent = post(app, "/api/v1/accounts", &app.admin_key, &parsed, "slow-1").await;
    assert_eq!((concurrent.status, concurrent.body["error"]["code"].as_str()), (409, Some("conflict")), "{}", concurrent.body);

    slow.write_all(&body.as_bytes()[body.len() - 1..]).await.expect("finish body");
    let mut raw = String::new();
    slow.read_to_string(&mut raw).await.expect("response");
    assert!(raw.starts_with("HTTP/1.1 201"), "{raw}");
    let after = post(app, "/api/v1/accounts", &app.admin_key, &parsed, "slow-1").await;
    assert_eq!((after.status, after.header("idempotent-replayed").as_deref()), (201, Some("true")));
    let id = after.body["data"]["id"].as_str().expect("id");
    assert!(raw.contains(id), "the replay is the slow request's answer");
    assert_eq!(account_names(app).await, ["Slow"]);
}

both_backends!(
    a_retry_replays_the_first_answer_and_creates_nothing,
    the_key_with_another_request_is_refused,
    keys_belong_to_one_credential,
    malformed_keys_are_a_bad_request,
    a_key_in_use_is_a_conflict,
);
