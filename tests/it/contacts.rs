//! Contacts and their account relationships.

use std::collections::HashSet;
use std::time::Duration;

use breadbox_tests::*;
use reqwest::Method;
use serde_json::json;

use crate::crm::*;

async fn contact_is_created_with_links_read_and_updated(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let globex = account(app, "Globex").await;
    let created = create(
        app,
        "/api/v1/contacts",
        json!({
            "firstName": "Dana",
            "lastName": "Whitfield",
            "email": " Dana@ContosoDental.com ",
            "phone": "+1 207 555 0142",
            "title": "Practice manager",
            "accounts": [{"accountId": acme, "role": "DECISION_MAKER"}, {"accountId": globex, "role": "BILLING"}]
        }),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("con_"));
    assert_eq!(created["email"], "dana@contosodental.com");
    let links = created["accounts"].as_array().expect("accounts");
    let role_at = |account: &str| links.iter().find(|l| l["accountId"] == account).map(|l| l["role"].clone());
    assert_eq!((links.len(), role_at(&acme), role_at(&globex)), (2, Some(json!("DECISION_MAKER")), Some(json!("BILLING"))));
    let acme_linked_at = links.iter().find(|l| l["accountId"] == acme.as_str()).map(|l| l["linkedAt"].clone()).expect("link");
    assert!(acme_linked_at.as_str().is_some_and(|t| t.ends_with('Z')));

    let path = format!("/api/v1/contacts/{id}");
    let got = app.send(Method::GET, &path, &app.admin_key, None, &[]).await;
    assert_eq!((got.status, &got.body["data"]), (200, &created));
    assert!(got.header("etag").is_some());

    // `accounts` replaces every link; a kept link keeps its linkedAt.
    let body = json!({"title": "Operations director", "accounts": [{"accountId": acme, "role": "OWNER"}]});
    let patched = app.send(Method::PATCH, &path, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let data = &patched.body["data"];
    assert_eq!(data["title"], "Operations director");
    assert_eq!(data["accounts"], json!([{"accountId": acme, "role": "OWNER", "linkedAt": acme_linked_at}]));
    assert_eq!(data["firstName"], "Dana");
    let unlinked = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"accounts": []})), &[]).await;
    assert_eq!(unlinked.body["data"]["accounts"], json!([]));
}

async fn contacts_filter_by_account(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let globex = account(app, "Globex").await;
    let link = |account: &str| json!([{"accountId": account, "role": "TECHNICAL"}]);
    let a = create(app, "/api/v1/contacts", json!({"firstName": "A", "lastName": "A", "accounts": link(&acme)})).await;
    let b = create(app, "/api/v1/contacts", json!({"firstName": "B", "lastName": "B", "accounts": link(&globex)})).await;
    let both = json!([{"accountId": acme, "role": "OWNER"}, {"accountId": globex, "role": "OTHER"}]);
    let c = create(app, "/api/v1/contacts", json!({"firstName": "C", "lastName": "C", "accounts": both})).await;
    let id = |v: &serde_json::Value| v["id"].as_str().expect("id").to_owned();
    let (_, of_acme) = app.get_key(&format!("/api/v1/contacts?accountId={acme}"), &app.admin_key).await;
    assert_eq!(ids(&of_acme), [id(&a), id(&c)]);
    assert_eq!(of_acme["data"][1]["accounts"].as_array().map(Vec::len), Some(2), "lists carry the links");
    let (_, all) = app.get_key("/api/v1/contacts", &app.admin_key).await;
    assert_eq!(ids(&all), [id(&a), id(&b), id(&c)]);
    let (status, none) = app.get_key("/api/v1/contacts?accountId=acc_unknown", &app.admin_key).await;
    assert_eq!((status, ids(&none).len()), (200, 0));
}

async fn contact_validation_reports_every_failing_field(app: &mut TestApp) {
    let theirs = other_org_key(app, "accounts:write").await;
    let foreign = app.send(Method::POST, "/api/v1/accounts", &theirs, Some(&json!({"name": "Theirs"})), &[]).await;
    let foreign = foreign.body["data"]["id"].as_str().expect("their account").to_owned();
    let ours = account(app, "Ours").await;
    let body = json!({
        "lastName": "",
        "email": "not-an-email",
        "accounts": [
            {"accountId": ours, "role": "JANITOR"},
            {"accountId": foreign, "role": "OWNER"},
            {"accountId": ours, "role": "OWNER"}
        ]
    });
    let answer = app.send(Method::POST, "/api/v1/contacts", &app.admin_key, Some(&body), &[]).await;
    assert_eq!(
        failing_fields(&answer),
        ["firstName", "lastName", "email", "accounts[0].role", "accounts[2].accountId", "accounts[1].accountId"]
    );
    let answer = app.send(Method::POST, "/api/v1/contacts", &app.admin_key, Some(&json!({"firstName": "A", "lastName": "B", "x": 1})), &[]).await;
    assert_eq!(failing_fields(&answer), ["x"]);
    let link = json!({"firstName": "A", "lastName": "B", "accounts": [{"accountId": ours, "role": "OWNER", "primary": true}]});
    let answer = app.send(Method::POST, "/api/v1/contacts", &app.admin_key, Some(&link), &[]).await;
    assert_eq!(answer.status, 422, "unknown fields are refused in nested objects too: {}", answer.body);

    let first = create(app, "/api/v1/contacts", json!({"firstName": "A", "lastName": "B", "email": "a@contoso.com"})).await;
    let dup = json!({"firstName": "C", "lastName": "D", "email": "A@contoso.com"});
    let answer = app.send(Method::POST, "/api/v1/contacts", &app.admin_key, Some(&dup), &[]).await;
    assert_eq!(failing_fields(&answer), ["email"]);
    assert!(answer.body["error"]["details"][0]["issue"].as_str().unwrap_or_default().contains(first["id"].as_str().expect("id")));
    let answer = app
        .send(Method::PATCH, &format!("/api/v1/contacts/{}", first["id"].as_str().expect("id")), &app.admin_key, Some(&json!({"accounts": null})), &[])
        .await;
    assert_eq!(failing_fields(&answer), ["accounts"]);
}

async fn every_contacts_endpoint_requires_its_scope(app: &mut TestApp) {
    let contact = create(app, "/api/v1/contacts", json!({"firstName": "S", "lastName": "Cope"})).await;
    let one = format!("/api/v1/contacts/{}", contact["id"].as_str().expect("id"));
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
            case(Method::GET, "/api/v1/contacts", None, "contacts:read", "accounts:write deals:write"),
            case(Method::GET, &one, None, "contacts:read", "accounts:write deals:write"),
            case(Method::POST, "/api/v1/contacts", Some(json!({"firstName": "N", "lastName": "W"})), "contacts:write", "contacts:read"),
            case(Method::PATCH, &one, Some(json!({"title": "CTO"})), "contacts:write", "contacts:read admin:read"),
        ],
    )
    .await;
}

async fn contacts_of_other_orgs_and_environments_are_404(app: &mut TestApp) {
    let contact = create(app, "/api/v1/contacts", json!({"firstName": "Ours", "lastName": "Only"})).await;
    let path = format!("/api/v1/contacts/{}", contact["id"].as_str().expect("id"));
    for key in [other_org_key(app, "contacts:write").await, test_env_key(app, "contacts:write").await] {
        for (method, body) in [(Method::GET, None), (Method::PATCH, Some(json!({"firstName": "Stolen"})))] {
            let answer = app.send(method.clone(), &path, &key, body.as_ref(), &[]).await;
            assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("not_found")), "{method}");
        }
        let (_, list) = app.get_key("/api/v1/contacts", &key).await;
        assert!(ids(&list).is_empty());
    }
    let (_, ours) = app.get_key(&path, &app.admin_key).await;
    assert_eq!(ours["data"]["firstName"], "Ours");
}

async fn contact_pages_are_stable_and_updates_are_guarded(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let mut before = HashSet::new();
    for i in 0..12 {
        let c = create(app, "/api/v1/contacts", json!({"firstName": format!("C{i}"), "lastName": "X", "accounts": [{"accountId": acme, "role": "END_USER"}]})).await;
        before.insert(c["id"].as_str().expect("id").to_owned());
    }
    let (http, url, key) = (app.http.clone(), app.url("/api/v1/contacts"), app.admin_key.clone());
    let writer = tokio::spawn(async move {
        for i in 0..8 {
            let body = json!({"firstName": format!("Late{i}"), "lastName": "X", "accounts": [{"accountId": acme, "role": "OTHER"}]});
            let response = http.post(&url).header("X-API-Key", &key).json(&body).send().await.expect("insert");
            assert_eq!(response.status(), 201);
        }
    });
    let seen = walk(app, &app.admin_key, "/api/v1/contacts", 5, Duration::from_millis(10)).await;
    writer.await.expect("writer");
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len());
    assert!(before.is_subset(&unique));

    let id = seen[0].clone();
    let path = format!("/api/v1/contacts/{id}");
    let since = breadbox_api::time::rfc3339(now_ms() + 5);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v1 = app.send(Method::GET, &path, &app.admin_key, None, &[]).await.header("etag").expect("etag");
    let ok = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"phone": "555"})), &[("If-Match", &v1)]).await;
    assert_eq!(ok.status, 200);
    let stale = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"phone": "556"})), &[("If-Match", &v1)]).await;
    assert_eq!((stale.status, stale.body["error"]["code"].as_str()), (412, Some("precondition_failed")));
    let (_, changed) = app.get_key(&format!("/api/v1/contacts?updatedSince={since}"), &app.admin_key).await;
    assert_eq!(ids(&changed), [id]);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

both_backends!(
    contact_is_created_with_links_read_and_updated,
    contacts_filter_by_account,
    contact_validation_reports_every_failing_field,
    every_contacts_endpoint_requires_its_scope,
    contacts_of_other_orgs_and_environments_are_404,
    contact_pages_are_stable_and_updates_are_guarded,
);
