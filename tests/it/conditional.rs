//! Conditional GETs: every record read with an `ETag` answers `If-None-Match` naming
//! its current version with a 304 and no body (RFC 9110 §13.1.2, §15.4.5), so that an
//! integrator polling a record downloads it only when it changed.

use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;

/// One record of each kind read with an `ETag`, as its path (created with each
/// resource's own test helper, which checks the 201).
pub(crate) async fn one_of_each(app: &TestApp) -> Vec<String> {
    let account = account(app, "Acme").await;
    let id = |v: Value| v["id"].as_str().expect("id").to_owned();
    let contact = id(create(app, "/api/v1/contacts", json!({"firstName": "Jane", "lastName": "Doe"})).await);
    let deal = id(create(app, "/api/v1/deals", json!({"accountId": account, "name": "Renewal", "amount": 100})).await);
    let device = id(crate::devices::device(app, &account, "agent-1").await);
    let lead = id(create(app, "/api/v1/leads", json!({"companyName": "Initech"})).await);
    let touchpoint = id(create(
        app,
        "/api/v1/touchpoints",
        json!({"accountId": account, "type": "CALL", "occurredAt": "2026-01-05T10:00:00Z", "subject": "Check-in"}),
    )
    .await);
    let contract = id(crate::contracts::active_contract(app, &account, "USD", Vec::new()).await);
    let item = id(crate::compliance::item(app, &account, "SOC2", "CC6.1", "COMPLIANT").await);
    let project = id(crate::onboarding::project(app, &account, &["Kick-off"]).await);
    vec![
        format!("/api/v1/accounts/{account}"),
        format!("/api/v1/contacts/{contact}"),
        format!("/api/v1/deals/{deal}"),
        format!("/api/v1/devices/{device}"),
        format!("/api/v1/leads/{lead}"),
        format!("/api/v1/touchpoints/{touchpoint}"),
        format!("/api/v1/contracts/{contract}"),
        format!("/api/v1/compliance/items/{item}"),
        format!("/api/v1/onboarding/projects/{project}"),
    ]
}

/// A request with `If-None-Match: value`: status, headers and the raw body.
async fn get_unless(app: &TestApp, method: Method, path: &str, value: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = app
        .http
        .request(method, app.url(path))
        .header("X-API-Key", &app.admin_key)
        .header("If-None-Match", value)
        .send()
        .await
        .expect("request");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.bytes().await.expect("body").to_vec())
}

async fn a_current_version_is_not_sent_again(app: &mut TestApp) {
    for path in one_of_each(app).await {
        let first = app.send(Method::GET, &path, &app.admin_key, None, &[]).await;
        assert_eq!(first.status, 200, "GET {path} → {}", first.body);
        let etag = first.header("etag").expect("ETag");
        // Weak, listed (empty list elements ignored, RFC 9110 §5.6.1.2) and any.
        for held in [etag.clone(), format!("W/{etag}"), format!("\"older\", {etag}"), format!(", \"older\",, {etag},"), "*".to_owned()] {
            let (status, headers, body) = get_unless(app, Method::GET, &path, &held).await;
            assert_eq!(status, 304, "GET {path} with If-None-Match {held}");
            assert!(body.is_empty(), "GET {path}: a 304 has no body");
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            // What the 200 would have carried for caches and clients (RFC 9110 §15.4.5).
            assert_eq!(header("etag"), Some(etag.clone()), "GET {path}");
            assert_eq!(header("cache-control").as_deref(), Some("no-store"), "GET {path}");
            assert!(header("x-request-id").is_some_and(|id| id.starts_with("req_")), "GET {path}");
            assert_eq!(header("x-ratelimit-limit"), first.header("x-ratelimit-limit"), "GET {path}");
            assert!(header("content-type").is_none(), "GET {path}: {:?}", header("content-type"));
        }
        let (status, _, body) = get_unless(app, Method::HEAD, &path, &etag).await;
        assert_eq!((status, body.len()), (304, 0), "HEAD {path}");
        let (status, headers, body) = get_unless(app, Method::GET, &path, "\"older\", W/\"other\"").await;
        assert_eq!(status, 200, "GET {path} with only other versions held");
        assert_eq!(headers.get("etag").and_then(|v| v.to_str().ok()), Some(etag.as_str()));
        let again: Value = serde_json::from_slice(&body).expect("a JSON body");
        assert_eq!(again["data"], first.body["data"], "GET {path}");
        assert_eq!(get_unless(app, Method::GET, &path, " , ").await.0, 400, "GET {path}: a list of no tags");
        let (status, _, body) = get_unless(app, Method::GET, &path, "older").await;
        let refused: Value = serde_json::from_slice(&body).expect("an error envelope");
        assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_request")), "GET {path}");
        assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("If-None-Match")), "{refused}");
    }
}

async fn a_changed_record_is_sent_again(app: &mut TestApp) {
    let path = format!("/api/v1/accounts/{}", account(app, "Acme").await);
    let before = app.send(Method::GET, &path, &app.admin_key, None, &[]).await.header("etag").expect("ETag");
    let updated = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"seats": 40})), &[]).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let (status, headers, body) = get_unless(app, Method::GET, &path, &before).await;
    assert_eq!(status, 200, "the version held is no longer current");
    let now = headers.get("etag").and_then(|v| v.to_str().ok()).expect("ETag").to_owned();
    assert_ne!(now, before);
    assert_eq!(Some(now.clone()), updated.header("etag"));
    let fresh: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(fresh["data"]["seats"], 40);
    let (status, headers, _) = get_unless(app, Method::GET, &path, &now).await;
    assert_eq!(status, 304);
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("X-Request-Id").to_owned();
    // Audit-logged like any answer (the log is written in batches).
    let started = std::time::Instant::now();
    loop {
        let log = app.send(Method::GET, "/api/v1/audit-log?status=304", &app.admin_key, None, &[]).await;
        assert_eq!(log.status, 200, "{}", log.body);
        let entries = log.body["data"].as_array().expect("data").clone();
        if let Some(entry) = entries.iter().find(|e| e["requestId"] == request_id.as_str()) {
            assert_eq!((entry["method"].as_str(), entry["status"].as_u64()), (Some("GET"), Some(304)));
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no audit entry for {request_id}: {entries:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn a_condition_reveals_nothing_of_other_tenants(app: &mut TestApp) {
    let path = format!("/api/v1/accounts/{}", account(app, "Acme").await);
    let etag = app.send(Method::GET, &path, &app.admin_key, None, &[]).await.header("etag").expect("ETag");
    let theirs = other_org_key(app, "accounts:read").await;
    let test_env = test_env_key(app, "accounts:read").await;
    for key in [theirs, test_env] {
        for held in [etag.as_str(), "*"] {
            let answer = app.send(Method::GET, &path, &key, None, &[("If-None-Match", held)]).await;
            assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("not_found")), "{held}");
        }
    }
    let missing = app.send(Method::GET, "/api/v1/accounts/acc_missing", &app.admin_key, None, &[("If-None-Match", "*")]).await;
    assert_eq!(missing.status, 404, "`*` matches a current version only");
}

/// A request with each of `lines` as its own line of the header `name`, byte for byte.
async fn with_lines(app: &TestApp, method: Method, path: &str, name: &str, lines: &[&[u8]], body: Option<&Value>) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path)).header("X-API-Key", &app.admin_key);
    for line in lines {
        request = request.header(name, reqwest::header::HeaderValue::from_bytes(line).expect("a valid header value"));
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON") })
}

/// A condition is the header as sent: every line of it is one list (RFC 9110 §5.3), and
/// a tag with bytes past ASCII (obs-text, §8.8.3) is a tag that matches none of ours —
/// not a header to ignore.
async fn conditions_are_read_as_sent(app: &mut TestApp) {
    let path = format!("/api/v1/accounts/{}", account(app, "Acme").await);
    let read = app.send(Method::GET, &path, &app.admin_key, None, &[]).await;
    let etag = read.header("etag").expect("ETag");
    let seats = read.body["data"]["seats"].clone();
    // If-Match naming only a version that is not ours changes nothing.
    for lines in [&[b"\"\xff\"".as_slice()][..], &[b"\"older\", W/\"caf\xe9\"", b"\"\x80\""]] {
        let (status, refused) = with_lines(app, Method::PATCH, &path, "If-Match", lines, Some(&json!({"seats": 99}))).await;
        assert_eq!((status, refused["error"]["code"].as_str()), (412, Some("precondition_failed")), "{lines:?}: {refused}");
        let (status, refused) = with_lines(app, Method::DELETE, &path, "If-Match", lines, None).await;
        assert_eq!(status, 412, "{lines:?}: {refused}");
    }
    let after = app.send(Method::GET, &path, &app.admin_key, None, &[]).await;
    assert_eq!((after.header("etag"), &after.body["data"]["seats"]), (Some(etag.clone()), &seats), "nothing changed");
    // The current version on a later line of the header matches.
    let lines: &[&[u8]] = &[b"\"\xff\"", etag.as_bytes()];
    let (status, updated) = with_lines(app, Method::PATCH, &path, "If-Match", lines, Some(&json!({"seats": 99}))).await;
    assert_eq!((status, &updated["data"]["seats"]), (200, &json!(99)), "{updated}");
    let etag = app.send(Method::GET, &path, &app.admin_key, None, &[]).await.header("etag").expect("ETag");
    // If-None-Match the same way, on every kind of record: obs-text holds nothing of ours,
    // a later line is part of the list, and a malformed line spoils the whole list.
    for path in one_of_each(app).await {
        let etag = app.send(Method::GET, &path, &app.admin_key, None, &[]).await.header("etag").expect("ETag");
        let (status, body) = with_lines(app, Method::GET, &path, "If-None-Match", &[b"\"\xff\""], None).await;
        assert_eq!((status, body["data"].is_object()), (200, true), "GET {path}: {body}");
        let (status, body) = with_lines(app, Method::GET, &path, "If-None-Match", &[b"W/\"\xe9\"", etag.as_bytes()], None).await;
        assert_eq!((status, body), (304, Value::Null), "GET {path}");
        let (status, body) = with_lines(app, Method::GET, &path, "If-None-Match", &[etag.as_bytes(), b"older"], None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "GET {path}: {body}");
    }
    let (status, _) = with_lines(app, Method::PATCH, &path, "If-Match", &[etag.as_bytes(), b"\xff"], Some(&json!({"seats": 1}))).await;
    assert_eq!(status, 400, "an unquoted line spoils an If-Match list too");
}

both_backends!(
    a_current_version_is_not_sent_again,
    a_changed_record_is_sent_again,
    a_condition_reveals_nothing_of_other_tenants,
    conditions_are_read_as_sent,
);
