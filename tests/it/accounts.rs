//! Accounts, and the machinery every list and update shares (tested here once in
//! depth): cursor pagination under concurrent inserts, `limit`, cursors, `updatedSince`,
//! validation of every field, ETag/If-Match.

use std::collections::HashSet;
use std::time::Duration;

use breadbox_tests::*;
use reqwest::Method;
use serde_json::json;

use crate::crm::*;

async fn account_is_created_read_updated_and_listed(app: &mut TestApp) {
    let created = create(
        app,
        "/api/v1/accounts",
        json!({
            "name": "  Contoso Dental ",
            "domain": "ContosoDental.com",
            "industry": "Healthcare",
            "sites": [{"name": "Head office", "address": "12 Harbour St"}, {"name": "Annex"}],
            "seats": 42,
            "notes": "QBR in March"
        }),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("acc_"));
    assert_eq!(created["name"], "Contoso Dental");
    assert_eq!(created["domain"], "contosodental.com");
    assert_eq!(created["lifecycle"], "LEAD", "the default lifecycle");
    assert_eq!(created["sites"], json!([{"name": "Head office", "address": "12 Harbour St"}, {"name": "Annex", "address": null}]));
    assert_eq!(created["seats"], 42);
    assert_eq!(created["primaryContactId"], serde_json::Value::Null);
    assert!(created["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    let got = app.send(Method::GET, &format!("/api/v1/accounts/{id}"), &app.admin_key, None, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["data"], created);
    assert!(got.body["meta"]["requestId"].is_string());
    let etag = got.header("etag").expect("ETag on GET");

    let contact = create(app, "/api/v1/contacts", json!({"firstName": "Dana", "lastName": "Whitfield"})).await;
    let body = json!({"lifecycle": "ACTIVE", "notes": null, "seats": 45, "primaryContactId": contact["id"]});
    let patched = app.send(Method::PATCH, &format!("/api/v1/accounts/{id}"), &app.admin_key, Some(&body), &[]).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let data = &patched.body["data"];
    assert_eq!((data["lifecycle"].as_str(), data["seats"].as_i64()), (Some("ACTIVE"), Some(45)));
    assert_eq!(data["notes"], serde_json::Value::Null, "null clears");
    assert_eq!(data["name"], "Contoso Dental", "absent fields stay");
    assert_eq!(data["primaryContactId"], contact["id"]);
    assert_ne!(patched.header("etag"), Some(etag), "a change makes a new ETag");
    assert!(data["updatedAt"].as_str() >= created["updatedAt"].as_str());

    let (status, list) = app.get_key("/api/v1/accounts", &app.admin_key).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"], json!([data]));
    assert_eq!(list["pagination"], json!({"limit": 50, "hasMore": false}));
}

async fn delete_is_a_soft_delete_to_churned(app: &mut TestApp) {
    let id = account(app, "Fabrikam").await;
    let path = format!("/api/v1/accounts/{id}");
    let deleted = app.send(Method::DELETE, &path, &app.admin_key, None, &[]).await;
    assert_eq!((deleted.status, deleted.body["data"]["lifecycle"].as_str()), (200, Some("CHURNED")), "{}", deleted.body);
    let (status, got) = app.get_key(&path, &app.admin_key).await;
    assert_eq!((status, got["data"]["lifecycle"].as_str()), (200, Some("CHURNED")), "still readable");
    let again = app.send(Method::DELETE, &path, &app.admin_key, None, &[]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("etag"), deleted.header("etag"), "deleting again changes nothing");
    let (_, churned) = app.get_key("/api/v1/accounts?lifecycle=CHURNED", &app.admin_key).await;
    assert_eq!(ids(&churned), [id]);
}

async fn lists_filter_by_lifecycle_and_industry(app: &mut TestApp) {
    let a = create(app, "/api/v1/accounts", json!({"name": "A", "lifecycle": "ACTIVE", "industry": "Legal"})).await;
    let b = create(app, "/api/v1/accounts", json!({"name": "B", "lifecycle": "AT_RISK", "industry": "Legal"})).await;
    let c = create(app, "/api/v1/accounts", json!({"name": "C", "lifecycle": "ACTIVE", "industry": "Retail"})).await;
    let key = &app.admin_key;
    let (_, active) = app.get_key("/api/v1/accounts?lifecycle=ACTIVE", key).await;
    assert_eq!(ids(&active), [&a["id"], &c["id"]].map(|v| v.as_str().expect("id").to_owned()));
    let (_, legal) = app.get_key("/api/v1/accounts?industry=Legal", key).await;
    assert_eq!(ids(&legal), [&a["id"], &b["id"]].map(|v| v.as_str().expect("id").to_owned()));
    let (_, both) = app.get_key("/api/v1/accounts?industry=Legal&lifecycle=AT_RISK", key).await;
    assert_eq!(ids(&both), [b["id"].as_str().expect("id")]);
    let (status, bad) = app.get_key("/api/v1/accounts?lifecycle=SLEEPING", key).await;
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("bad_request")));
}

async fn every_accounts_endpoint_requires_its_scope(app: &mut TestApp) {
    let id = account(app, "Scoped").await;
    let one = format!("/api/v1/accounts/{id}");
    let case = |method: Method, path: &str, body: Option<serde_json::Value>, scope, without| ScopeCase {
        method,
        path: path.to_owned(),
        body,
        scope,
        without,
    };
    scope_matrix(
        app,
        vec![
            case(Method::GET, "/api/v1/accounts", None, "accounts:read", "contacts:write deals:write"),
            case(Method::GET, &one, None, "accounts:read", "contacts:write deals:write"),
            case(Method::POST, "/api/v1/accounts", Some(json!({"name": "X"})), "accounts:write", "accounts:read"),
            case(Method::PATCH, &one, Some(json!({"seats": 3})), "accounts:write", "accounts:read admin:read"),
            case(Method::DELETE, &one, None, "accounts:write", "accounts:read"),
        ],
    )
    .await;
}

async fn other_orgs_and_environments_see_404(app: &mut TestApp) {
    let id = account(app, "Ours").await;
    let path = format!("/api/v1/accounts/{id}");
    let theirs = other_org_key(app, "accounts:write").await;
    let test_env = test_env_key(app, "accounts:write").await;
    for key in [&theirs, &test_env] {
        for (method, body) in [(Method::GET, None), (Method::PATCH, Some(json!({"name": "Stolen"}))), (Method::DELETE, None)] {
            let answer = app.send(method.clone(), &path, key, body.as_ref(), &[]).await;
            assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("not_found")), "{method}");
        }
        let (status, list) = app.get_key("/api/v1/accounts", key).await;
        assert_eq!((status, ids(&list).len()), (200, 0));
    }
    let (_, ours) = app.get_key(&path, &app.admin_key).await;
    assert_eq!((ours["data"]["name"].as_str(), ours["data"]["lifecycle"].as_str()), (Some("Ours"), Some("LEAD")));
}

async fn pagination_walks_every_record_once_while_inserts_happen(app: &mut TestApp) {
    let mut before = HashSet::new();
    for i in 0..30 {
        before.insert(account(app, &format!("Account {i:02}")).await);
    }
    let (http, url, key) = (app.http.clone(), app.url("/api/v1/accounts"), app.admin_key.clone());
    let writer = tokio::spawn(async move {
        for i in 0..20 {
            let response = http.post(&url).header("X-API-Key", &key).json(&json!({"name": format!("Late {i}")})).send().await;
            assert_eq!(response.expect("insert").status(), 201);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    let seen = walk(app, &app.admin_key, "/api/v1/accounts", 7, Duration::from_millis(10)).await;
    writer.await.expect("writer");
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no record twice");
    assert!(before.is_subset(&unique), "every record that existed before the walk is seen");
    let all = walk(app, &app.admin_key, "/api/v1/accounts", 100, Duration::ZERO).await;
    assert_eq!(all.len(), 50);
    let (_, first) = app.get_key("/api/v1/accounts?limit=100", &app.admin_key).await;
    assert_eq!(ids(&first), all, "pages follow one order");
}

async fn limit_cursor_and_updated_since_are_checked(app: &mut TestApp) {
    for i in 0..3 {
        account(app, &format!("A{i}")).await;
    }
    let key = app.admin_key.clone();
    for limit in ["101", "0", "-5"] {
        let answer = app.send(Method::GET, &format!("/api/v1/accounts?limit={limit}"), &key, None, &[]).await;
        assert_eq!(failing_fields(&answer), ["limit"], "limit={limit}");
    }
    let (_, page) = app.get_key("/api/v1/accounts?limit=1", &key).await;
    let cursor = page["pagination"]["nextCursor"].as_str().expect("cursor").to_owned();
    let mut tampered = cursor.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for (path, why) in [
        (format!("/api/v1/accounts?cursor={tampered}"), "tampered"),
        ("/api/v1/accounts?cursor=not-a-cursor".to_owned(), "garbage"),
        (format!("/api/v1/deals?cursor={cursor}"), "another list's cursor"),
        ("/api/v1/accounts?updatedSince=yesterday".to_owned(), "updatedSince"),
        ("/api/v1/accounts?limit=ten".to_owned(), "limit not a number"),
    ] {
        let (status, body) = app.get_key(&path, &key).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{why}: {body}");
    }
    let other = test_env_key(app, "accounts:read").await;
    let (status, _) = app.get_key(&format!("/api/v1/accounts?cursor={cursor}"), &other).await;
    assert_eq!(status, 400, "a cursor is bound to its environment");
    let (status, next) = app.get_key(&format!("/api/v1/accounts?limit=1&cursor={cursor}"), &key).await;
    assert_eq!(status, 200);
    assert_ne!(ids(&next), ids(&page));
}

async fn updated_since_returns_only_later_changes(app: &mut TestApp) {
    let old = account(app, "Old").await;
    let changed = account(app, "Changed").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = time_now_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let answer = app.send(Method::PATCH, &format!("/api/v1/accounts/{changed}"), &app.admin_key, Some(&json!({"seats": 1})), &[]).await;
    assert_eq!(answer.status, 200);
    let fresh = account(app, "Fresh").await;
    let (status, list) = app.get_key(&format!("/api/v1/accounts?updatedSince={since}"), &app.admin_key).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), [changed, fresh]);
    assert!(!ids(&list).contains(&old));
}

async fn validation_reports_every_failing_field(app: &mut TestApp) {
    let body = json!({
        "name": " ",
        "domain": "https://contoso.com/home",
        "lifecycle": "SLEEPING",
        "sites": [{"name": "Ok"}, {"name": ""}],
        "primaryContactId": "con_nope",
        "seats": -1
    });
    let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&body), &[]).await;
    assert_eq!(failing_fields(&answer), ["name", "domain", "lifecycle", "sites[1].name", "seats", "primaryContactId"]);
    let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&json!({"seats": 2})), &[]).await;
    assert_eq!(failing_fields(&answer), ["name"], "a required field that is missing");
    let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&json!({"name": "X", "colour": "red"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["colour"], "unknown fields are refused");
    let id = account(app, "Valid").await;
    let answer =
        app.send(Method::PATCH, &format!("/api/v1/accounts/{id}"), &app.admin_key, Some(&json!({"name": null, "lifecycle": null})), &[]).await;
    assert_eq!(failing_fields(&answer), ["name", "lifecycle"], "required fields cannot be cleared");
    let (_, unchanged) = app.get_key(&format!("/api/v1/accounts/{id}"), &app.admin_key).await;
    assert_eq!(unchanged["data"]["name"], "Valid");
}

// poem-openapi's own `String` takes a number or a boolean and keeps its text (a phone
// number "false"); a field documented as a string takes only a string, and the 422
// names the value's path (poem-openapi's message names no field).
async fn a_number_or_a_boolean_is_no_string(app: &mut TestApp) {
    let issue = |answer: &Answer| answer.body["error"]["details"][0]["issue"].as_str().unwrap_or_default().to_owned();
    let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&json!({"name": 12345})), &[]).await;
    assert_eq!(failing_fields(&answer), ["name"]);
    assert_eq!(issue(&answer), "must be a string, not 12345");
    let sites = json!({"name": "Ok", "sites": [{"name": true}]});
    let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&sites), &[]).await;
    assert_eq!(failing_fields(&answer), ["sites[0].name"]);
    assert_eq!(issue(&answer), "must be a string, not true");
    let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&json!({"name": "Ok", "seats": "12"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["seats"], "any type, not only strings");
    assert_eq!(issue(&answer), "must be an integer, not \"12\"");
    let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&json!([{"name": "Ok"}])), &[]).await;
    assert_eq!(failing_fields(&answer), ["body"], "the body itself");
    let (_, none) = app.get_key("/api/v1/accounts", &app.admin_key).await;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0), "nothing was created");
    let id = account(app, "Valid").await;
    let path = format!("/api/v1/accounts/{id}");
    let answer = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"domain": false})), &[]).await;
    assert_eq!(failing_fields(&answer), ["domain"]);
    let (_, unchanged) = app.get_key(&path, &app.admin_key).await;
    assert_eq!(unchanged["data"]["domain"], serde_json::Value::Null);
    // In a bulk upsert the item is refused alone.
    let devices = json!({"devices": [
        {"accountId": id, "rmmAgentId": "ok-0", "hostname": "ok"},
        {"accountId": id, "rmmAgentId": "bad-1", "hostname": 42}
    ]});
    let answer = app.send(Method::POST, "/api/v1/devices/bulk", &app.admin_key, Some(&devices), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["data"]["created"], 1, "{}", answer.body);
    assert_eq!(answer.body["data"]["errors"][0]["index"], 1, "{}", answer.body);
    assert_eq!(answer.body["data"]["errors"][0]["field"], "hostname", "{}", answer.body);
}

async fn a_domain_belongs_to_one_account(app: &mut TestApp) {
    let first = create(app, "/api/v1/accounts", json!({"name": "One", "domain": "contoso.com"})).await;
    let answer = app.send(Method::POST, "/api/v1/accounts", &app.admin_key, Some(&json!({"name": "Two", "domain": "CONTOSO.com"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["domain"]);
    let issue = answer.body["error"]["details"][0]["issue"].as_str().unwrap_or_default().to_owned();
    assert!(issue.contains(first["id"].as_str().expect("id")), "{issue}");
    let second = account(app, "Two").await;
    let answer = app.send(Method::PATCH, &format!("/api/v1/accounts/{second}"), &app.admin_key, Some(&json!({"domain": "contoso.com"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["domain"]);
    // Another environment has its own namespace.
    let test_env = test_env_key(app, "accounts:write").await;
    let answer = app.send(Method::POST, "/api/v1/accounts", &test_env, Some(&json!({"name": "One", "domain": "contoso.com"})), &[]).await;
    assert_eq!(answer.status, 201);
}

async fn if_match_guards_updates_with_412(app: &mut TestApp) {
    let id = account(app, "Guarded").await;
    let path = format!("/api/v1/accounts/{id}");
    let key = app.admin_key.clone();
    let v1 = app.send(Method::GET, &path, &key, None, &[]).await.header("etag").expect("etag");
    let body = json!({"seats": 10});
    let ok = app.send(Method::PATCH, &path, &key, Some(&body), &[("If-Match", &v1)]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let v2 = ok.header("etag").expect("etag");
    let stale = app.send(Method::PATCH, &path, &key, Some(&json!({"seats": 11})), &[("If-Match", &v1)]).await;
    assert_eq!((stale.status, stale.body["error"]["code"].as_str()), (412, Some("precondition_failed")), "{}", stale.body);
    // A change that breaks a rule is a 422 whatever its If-Match (RFC 9110 §13.2.1).
    let invalid = app.send(Method::PATCH, &path, &key, Some(&json!({"seats": -1})), &[("If-Match", &v1)]).await;
    assert_eq!(failing_fields(&invalid), ["seats"]);
    let stale_delete = app.send(Method::DELETE, &path, &key, None, &[("If-Match", &v1)]).await;
    assert_eq!(stale_delete.status, 412);
    let weak = app.send(Method::PATCH, &path, &key, Some(&body), &[("If-Match", &format!("W/{v2}"))]).await;
    assert_eq!(weak.status, 412, "If-Match compares strongly");
    let any = app.send(Method::PATCH, &path, &key, Some(&json!({"seats": 12})), &[("If-Match", "*")]).await;
    assert_eq!(any.status, 200);
    let malformed = app.send(Method::PATCH, &path, &key, Some(&body), &[("If-Match", "v2")]).await;
    assert_eq!((malformed.status, malformed.body["error"]["code"].as_str()), (400, Some("bad_request")));
    let listed = format!("\"nope\", {}", any.header("etag").expect("etag"));
    let current = app.send(Method::PATCH, &path, &key, Some(&json!({"seats": 13})), &[("If-Match", &listed)]).await;
    assert_eq!(current.status, 200, "any listed tag may match");
    let (_, got) = app.get_key(&path, &key).await;
    assert_eq!(got["data"]["seats"], 13);
}

/// Another instance on the same database sees each write as soon as it is answered
/// (on SQLite its reads keep a snapshot while the WAL index says nothing was committed).
async fn another_instance_reads_each_write_at_once(app: &mut TestApp) {
    let peer = app.spawn_peer().await;
    let get_on_peer = |path: String| {
        let (http, url, key) = (app.http.clone(), peer.url(&path), app.admin_key.clone());
        async move { read(http.get(url).header("X-API-Key", key).send().await.expect("peer request")).await }
    };
    let id = account(app, "Snapshot Ltd").await;
    for _ in 0..3 {
        let (status, body) = get_on_peer(format!("/api/v1/accounts/{id}")).await;
        assert_eq!((status, body["data"]["seats"].clone()), (200, serde_json::Value::Null));
    }
    for seats in 1..=25 {
        let body = json!({ "seats": seats });
        let patched = app.send(Method::PATCH, &format!("/api/v1/accounts/{id}"), &app.admin_key, Some(&body), &[]).await;
        assert_eq!(patched.status, 200, "{}", patched.body);
        let (status, got) = get_on_peer(format!("/api/v1/accounts/{id}")).await;
        assert_eq!((status, got["data"]["seats"].as_i64()), (200, Some(seats)), "the peer's read after update {seats}");
        if seats % 5 == 0 {
            let new = account(app, &format!("Snapshot {seats}")).await;
            let (status, _) = get_on_peer(format!("/api/v1/accounts/{new}")).await;
            assert_eq!(status, 200, "the peer finds the account created just before");
            let (status, list) = get_on_peer("/api/v1/accounts?limit=100".to_owned()).await;
            assert_eq!(status, 200);
            let ids: Vec<&str> = list["data"].as_array().expect("data").iter().filter_map(|a| a["id"].as_str()).collect();
            assert_eq!(ids.len(), 1 + seats as usize / 5, "the peer's list has every account: {ids:?}");
            assert!(ids.contains(&new.as_str()));
        }
    }
    peer.stop().await;
}

/// RFC 3339 for now, as a client would send it.
fn time_now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    breadbox_api::time::rfc3339(now.as_millis() as i64)
}

both_backends!(
    account_is_created_read_updated_and_listed,
    delete_is_a_soft_delete_to_churned,
    lists_filter_by_lifecycle_and_industry,
    every_accounts_endpoint_requires_its_scope,
    other_orgs_and_environments_see_404,
    pagination_walks_every_record_once_while_inserts_happen,
    limit_cursor_and_updated_since_are_checked,
    updated_since_returns_only_later_changes,
    validation_reports_every_failing_field,
    a_number_or_a_boolean_is_no_string,
    a_domain_belongs_to_one_account,
    if_match_guards_updates_with_412,
    another_instance_reads_each_write_at_once,
);
