//! The audit log: every call under /api/v1 is recorded (refusals too), listed newest
//! first to the caller's organization and environment only, filtered, paged, and kept
//! across a graceful stop and, on SQLite, from where an earlier version kept them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use breadbox_auth::Environment;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::crm::*;

/// The audit entries `key` sees at `query`, once `ready` holds of them (entries are
/// written in batches), or after 10 s.
async fn entries_when(app: &TestApp, key: &str, query: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let answer = app.send(Method::GET, &format!("/api/v1/audit-log{query}"), key, None, &[]).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let entries = answer.body["data"].as_array().expect("data").clone();
        if ready(&entries) || started.elapsed() > Duration::from_secs(10) {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn request_ids(entries: &[Value]) -> HashSet<String> {
    entries.iter().filter_map(|e| e["requestId"].as_str().map(str::to_owned)).collect()
}

fn has_all(entries: &[Value], wanted: &[String]) -> bool {
    let seen = request_ids(entries);
    wanted.iter().all(|id| seen.contains(id))
}

async fn credential_id(app: &TestApp, key: &str) -> String {
    let (_, me) = app.get_key("/api/v1/me", key).await;
    me["data"]["credentialId"].as_str().expect("credentialId").to_owned()
}

async fn calls_are_recorded_with_refusals(app: &mut TestApp) {
    let created = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&json!({"name": "Acme"})), &[]).await;
    assert_eq!(created.status, 201);
    let missing = app.send(Method::GET, "/api/v1/accounts/acc_missing", &app.admin_key, None, &[]).await;
    assert_eq!(missing.status, 404);
    let (reader_id, reader) = app.key(Environment::Live, "accounts:read").await;
    let refused = app.send(Method::GET, "/api/v1/deals", &reader, None, &[]).await;
    assert_eq!(refused.status, 403);
    let calls = [&created, &missing, &refused].map(|a| a.header("x-request-id").expect("request id"));

    let entries = entries_when(app, &app.admin_key, "", |e| has_all(e, &calls)).await;
    let by_request = |id: &str| entries.iter().find(|e| e["requestId"] == id).cloned().expect("entry of the call");
    let admin_id = credential_id(app, &app.admin_key).await;
    let expected = [
        (&calls[0], "POST", "/api/v1/accounts", 201, &admin_id),
        (&calls[1], "GET", "/api/v1/accounts/{id}", 404, &admin_id),
        (&calls[2], "GET", "/api/v1/deals", 403, &reader_id),
    ];
    for (request, method, route, status, credential) in expected {
        let entry = by_request(request.as_str());
        assert_eq!(
            (entry["method"].as_str(), entry["route"].as_str(), entry["status"].as_u64(), entry["credentialId"].as_str()),
            (Some(method), Some(route), Some(status), Some(credential.as_str())),
            "{entry}"
        );
        assert_eq!(entry["clientIp"], "127.0.0.1");
        assert!(entry["latencyMs"].as_f64().is_some_and(|ms| ms >= 0.0));
        assert!(entry["id"].as_str().is_some_and(|id| id.starts_with("aud_")));
        assert!(entry["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    let times: Vec<&str> = entries.iter().map(|e| e["at"].as_str().expect("at")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
}

async fn the_log_is_filtered(app: &mut TestApp) {
    let (one_id, one) = app.key(Environment::Live, "accounts:read").await;
    let (_, two) = app.key(Environment::Live, "accounts:read").await;
    let mut calls = Vec::new();
    for (key, path) in [(&one, "/api/v1/accounts"), (&two, "/api/v1/accounts"), (&one, "/api/v1/accounts/acc_x")] {
        let answer = app.send(Method::GET, path, key, None, &[]).await;
        calls.push(answer.header("x-request-id").expect("request id"));
        // Distinct arrival times, for the time filters below.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = entries_when(app, &app.admin_key, "", |e| has_all(e, &calls)).await;
    assert!(has_all(&all, &calls), "every call is listed");

    let mine = entries_when(app, &app.admin_key, &format!("?credentialId={one_id}"), |_| true).await;
    assert_eq!(request_ids(&mine), HashSet::from([calls[0].clone(), calls[2].clone()]));
    let not_found = entries_when(app, &app.admin_key, "?status=404", |_| true).await;
    assert_eq!(request_ids(&not_found), HashSet::from([calls[2].clone()]));

    let at = |request: &String| all.iter().find(|e| e["requestId"] == request.as_str()).expect("entry")["at"].as_str().expect("at").to_owned();
    let second = at(&calls[1]);
    let since = entries_when(app, &app.admin_key, &format!("?credentialId={one_id}&from={second}"), |_| true).await;
    assert_eq!(request_ids(&since), HashSet::from([calls[2].clone()]));
    let third = at(&calls[2]);
    let before = entries_when(app, &app.admin_key, &format!("?credentialId={one_id}&to={third}"), |_| true).await;
    assert_eq!(request_ids(&before), HashSet::from([calls[0].clone()]));
    let updated = entries_when(app, &app.admin_key, &format!("?credentialId={one_id}&updatedSince={second}"), |_| true).await;
    assert_eq!(request_ids(&updated), request_ids(&since), "updatedSince is from");

    let key = &app.admin_key;
    let bad_time = app.send(Method::GET, "/api/v1/audit-log?from=yesterday", key, None, &[]).await;
    assert_eq!((bad_time.status, bad_time.body["error"]["code"].as_str()), (400, Some("bad_request")));
    let bad = app.send(Method::GET, &format!("/api/v1/audit-log?status=42&from={third}&to={second}"), key, None, &[]).await;
    assert_eq!(failing_fields(&bad), ["status", "to"]);
    let too_many = app.send(Method::GET, "/api/v1/audit-log?limit=101", key, None, &[]).await;
    assert_eq!(failing_fields(&too_many), ["limit"]);
}

async fn the_log_pages_newest_first_and_needs_admin_read(app: &mut TestApp) {
    let (_, reader) = app.key(Environment::Live, "accounts:read").await;
    let mut calls = Vec::new();
    for _ in 0..7 {
        let answer = app.send(Method::GET, "/api/v1/accounts", &reader, None, &[]).await;
        calls.push(answer.header("x-request-id").expect("request id"));
    }
    entries_when(app, &app.admin_key, "?limit=100", |e| has_all(e, &calls)).await;
    // Up to a moment every earlier entry has been written by: the reads below add
    // entries of their own, after it.
    let until = breadbox_api::time::rfc3339(breadbox_auth::db::now_ms());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, auditor) = app.key(Environment::Live, "admin:read").await;
    let whole = entries_when(app, &auditor, &format!("?limit=100&to={until}"), |_| true).await;
    assert!(has_all(&whole, &calls));
    let walked = walk(app, &auditor, &format!("/api/v1/audit-log?to={until}"), 2, Duration::ZERO).await;
    let listed: Vec<String> = whole.iter().map(|e| e["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(walked, listed, "pages join up to the whole list, newest first, no duplicates or gaps");

    let refused = app.send(Method::GET, "/api/v1/audit-log", &reader, None, &[]).await;
    assert_eq!((refused.status, refused.body["error"]["reason"].as_str()), (403, Some("admin:read")));
}

async fn each_org_and_environment_sees_only_its_own(app: &mut TestApp) {
    let ours = app.send(Method::GET, "/api/v1/me", &app.admin_key, None, &[]).await;
    let ours = ours.header("x-request-id").expect("request id");
    let theirs = other_org_key(app, "admin:read").await;
    let test_env = test_env_key(app, "admin:read").await;
    let their_call = app.send(Method::GET, "/api/v1/me", &theirs, None, &[]).await.header("x-request-id").expect("id");
    let test_call = app.send(Method::GET, "/api/v1/me", &test_env, None, &[]).await.header("x-request-id").expect("id");
    let all = [ours.clone(), their_call.clone(), test_call.clone()];

    let mine = entries_when(app, &app.admin_key, "?limit=100", |e| has_all(e, &all[..1])).await;
    let seen_by_them = entries_when(app, &theirs, "?limit=100", |e| has_all(e, &all[1..2])).await;
    let seen_in_test = entries_when(app, &test_env, "?limit=100", |e| has_all(e, &all[2..])).await;
    for (entries, own) in [(&mine, &ours), (&seen_by_them, &their_call), (&seen_in_test, &test_call)] {
        let ids = request_ids(entries);
        assert!(ids.contains(own));
        assert_eq!(all.iter().filter(|id| ids.contains(*id)).count(), 1, "only its own calls: {ids:?}");
    }

    let first = app.send(Method::GET, "/api/v1/audit-log?limit=1", &app.admin_key, None, &[]).await;
    let cursor = first.body["pagination"]["nextCursor"].as_str().expect("more than one entry").to_owned();
    let foreign = app.send(Method::GET, &format!("/api/v1/audit-log?cursor={cursor}"), &theirs, None, &[]).await;
    assert_eq!(foreign.status, 400, "a cursor is bound to its organization");
}

/// The newest 100 entries the admin key sees, read from a server started anew on the
/// stopped `app`'s database (which it migrates first, as any start does).
async fn newest_after_a_restart(app: &TestApp) -> Vec<Value> {
    let peer = app.spawn_peer().await;
    let response = app
        .http
        .get(peer.url("/api/v1/audit-log?limit=100"))
        .header("X-API-Key", &app.admin_key)
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    peer.stop().await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().expect("data").clone()
}

async fn entries_written_just_before_a_graceful_stop_are_kept(app: &mut TestApp) {
    let mut calls = Vec::new();
    for n in 0..30 {
        let body = json!({"name": format!("Account {n}")});
        let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&body), &[]).await;
        calls.push(answer.header("x-request-id").expect("request id"));
    }
    app.stop().await;
    let entries = newest_after_a_restart(app).await;
    let missing: Vec<&String> = calls.iter().filter(|id| !request_ids(&entries).contains(*id)).collect();
    assert!(missing.is_empty(), "lost at shutdown: {missing:?}");
}

both_backends!(
    calls_are_recorded_with_refusals,
    the_log_is_filtered,
    the_log_pages_newest_first_and_needs_admin_read,
    each_org_and_environment_sees_only_its_own,
    entries_written_just_before_a_graceful_stop_are_kept,
);

/// A database an earlier version wrote, with its audit entries in the main file: the
/// next server moves them into the audit log's own file, and lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_an_earlier_version_kept_in_the_main_file_are_moved_and_listed() {
    run(Backend::Sqlite, |h| {
        Box::pin(async move {
            let mut app = h.app().await;
            app.stop().await;
            let main_file = app.data_dir().join("breadbox.db");
            sqlx::any::install_default_drivers();
            let url = format!("sqlite://{}", main_file.display());
            let mut conn = sqlx::AnyConnection::connect(&url).await.expect("the main file");
            sqlx::query(
                "INSERT INTO audit_log \
                 (org_id, env, created_at, id, request_id, credential_id, method, route, status, latency_us, client_ip) \
                 VALUES ($1, 'live', $2, 'aud_from_an_earlier_version', 'req_earlier', NULL, 'GET', '/api/v1/me', 200, 5, NULL)",
            )
            .bind(&app.org_id)
            .bind(breadbox_auth::db::now_ms() - 60_000)
            .execute(&mut conn)
            .await
            .expect("an entry where an earlier version wrote it");
            conn.close().await.expect("close");

            let entries = newest_after_a_restart(&app).await;
            assert!(request_ids(&entries).contains("req_earlier"), "the earlier entry is listed: {entries:?}");

            let mut conn = sqlx::AnyConnection::connect(&url).await.expect("the main file");
            let (left,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM audit_log").fetch_one(&mut conn).await.expect("count");
            conn.close().await.expect("close");
            assert_eq!(left, 0, "nothing left in the main file");
            assert!(app.data_dir().join("breadbox.audit.db").exists(), "the audit log's own file");
        })
    })
    .await;
}
