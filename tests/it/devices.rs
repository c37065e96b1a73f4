//! Devices: single writes, scopes and isolation. The bulk upsert and the events are in
//! `device_bulk`.

use breadbox_auth::Environment;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;

pub async fn device(app: &TestApp, account_id: &str, agent: &str) -> Value {
    create(app, "/api/v1/devices", json!({"accountId": account_id, "rmmAgentId": agent, "hostname": agent.to_uppercase()})).await
}

async fn patch_device(app: &TestApp, key: &str, id: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
    app.send(Method::PATCH, &format!("/api/v1/devices/{id}"), key, Some(&body), headers).await
}

async fn device_is_created_read_and_updated(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let (_, key) = app.key(Environment::Live, "devices:write").await;
    let body = json!({
        "accountId": acme, "rmmAgentId": " ninja-1 ", "hostname": "ACME-FS01", "kind": "SERVER",
        "os": "Windows Server", "osVersion": "2019", "serialNumber": "CZ29", "manufacturer": "HPE",
        "model": "DL380", "lastSeenAt": "2024-06-03T09:58:12Z", "warrantyExpiresAt": "2025-03-31T00:00:00Z",
        "endOfLifeDate": "2029-01-09"
    });
    let created = app.send(Method::POST, "/api/v1/devices", &key, Some(&body), &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let data = &created.body["data"];
    let id = data["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("dev_"));
    assert_eq!(created.header("location"), Some(format!("/api/v1/devices/{id}")));
    assert_eq!((data["rmmAgentId"].as_str(), data["kind"].as_str()), (Some("ninja-1"), Some("SERVER")));
    assert_eq!((data["status"].as_str(), data["lastSeenAt"].as_str()), (Some("ACTIVE"), Some("2024-06-03T09:58:12.000Z")));
    assert_eq!((data["endOfLifeDate"].as_str(), data["model"].as_str()), (Some("2029-01-09"), Some("DL380")));

    let minimal = create(app, "/api/v1/devices", json!({"accountId": acme, "rmmAgentId": "n-2", "hostname": "PC"})).await;
    assert_eq!((minimal["kind"].as_str(), &minimal["os"], &minimal["lastSeenAt"]), (Some("OTHER"), &Value::Null, &Value::Null));

    let path = format!("/api/v1/devices/{id}");
    let got = app.send(Method::GET, &path, &key, None, &[]).await;
    assert_eq!((got.status, &got.body["data"]), (200, data));
    let v1 = got.header("etag").expect("etag");
    let renamed = patch_device(app, &key, &id, json!({"hostname": "ACME-FS02", "os": null}), &[("If-Match", &v1)]).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!((renamed.body["data"]["hostname"].as_str(), &renamed.body["data"]["os"]), (Some("ACME-FS02"), &Value::Null));
    let stale = patch_device(app, &key, &id, json!({"status": "RETIRED"}), &[("If-Match", &v1)]).await;
    assert_eq!((stale.status, stale.body["error"]["code"].as_str()), (412, Some("precondition_failed")));
    let v2 = renamed.header("etag").expect("etag");
    let same = patch_device(app, &key, &id, json!({"hostname": "ACME-FS02"}), &[]).await;
    assert_eq!((same.header("etag"), &same.body["data"]["updatedAt"]), (Some(v2), &renamed.body["data"]["updatedAt"]));
}

async fn devices_are_listed_by_account_kind_and_status(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let globex = account(app, "Globex").await;
    let a = device(app, &acme, "a").await;
    let server = create(app, "/api/v1/devices", json!({"accountId": acme, "rmmAgentId": "s", "hostname": "S", "kind": "SERVER"})).await;
    let b = create(app, "/api/v1/devices", json!({"accountId": globex, "rmmAgentId": "b", "hostname": "B", "status": "RETIRED"})).await;
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let key = &app.admin_key;
    let (_, of_acme) = app.get_key(&format!("/api/v1/devices?accountId={acme}"), key).await;
    assert_eq!(ids(&of_acme), [id(&a), id(&server)]);
    let (_, servers) = app.get_key("/api/v1/devices?kind=SERVER", key).await;
    assert_eq!(ids(&servers), [id(&server)]);
    let (_, retired) = app.get_key("/api/v1/devices?status=RETIRED", key).await;
    assert_eq!(ids(&retired), [id(&b)]);
    let all = walk(app, key, "/api/v1/devices", 2, std::time::Duration::ZERO).await;
    assert_eq!(all, [id(&a), id(&server), id(&b)]);
    let (_, since) = app.get_key("/api/v1/devices?updatedSince=2999-01-01T00:00:00Z", key).await;
    assert!(ids(&since).is_empty());
    let (status, _) = app.get_key("/api/v1/devices?kind=TOASTER", key).await;
    assert_eq!(status, 400);
    let (status, _) = app.get_key("/api/v1/devices?limit=101", key).await;
    assert_eq!(status, 422);
}

async fn device_validation_reports_every_failing_field(app: &mut TestApp) {
    let theirs = other_org_key(app, "accounts:write").await;
    let foreign = app.send(Method::POST, "/api/v1/accounts", &theirs, Some(&json!({"name": "Theirs"})), &[]).await;
    let body = json!({
        "accountId": foreign.body["data"]["id"], "rmmAgentId": "x", "hostname": " ", "kind": "TOASTER",
        "lastSeenAt": "yesterday", "warrantyExpiresAt": "2025-13-01T00:00:00Z", "endOfLifeDate": "2029-02-30",
        "status": "GONE"
    });
    let answer = app.send(Method::POST, "/api/v1/devices", &app.admin_key, Some(&body), &[]).await;
    assert_eq!(
        failing_fields(&answer),
        ["hostname", "kind", "lastSeenAt", "warrantyExpiresAt", "endOfLifeDate", "status", "accountId"]
    );
    let answer = app.send(Method::POST, "/api/v1/devices", &app.admin_key, Some(&json!({"kind": "SERVER"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["accountId", "rmmAgentId", "hostname"]);
    let future = json!({"accountId": "acc_x", "rmmAgentId": "x", "hostname": "h", "lastSeenAt": "2999-01-01T00:00:00Z"});
    let answer = app.send(Method::POST, "/api/v1/devices", &app.admin_key, Some(&future), &[]).await;
    assert_eq!(failing_fields(&answer), ["lastSeenAt", "accountId"]);

    let acme = account(app, "Acme").await;
    let d = device(app, &acme, "agent-1").await;
    let again = json!({"accountId": acme, "rmmAgentId": "agent-1", "hostname": "Other"});
    let answer = app.send(Method::POST, "/api/v1/devices", &app.admin_key, Some(&again), &[]).await;
    assert_eq!(failing_fields(&answer), ["rmmAgentId"], "rmmAgentId is unique per tenant");
    let id = d["id"].as_str().expect("id");
    let answer = patch_device(app, &app.admin_key, id, json!({"colour": "red"}), &[]).await;
    assert_eq!(failing_fields(&answer), ["colour"]);
    let answer = patch_device(app, &app.admin_key, id, json!({"hostname": null, "accountId": "acc_nope"}), &[]).await;
    assert_eq!(failing_fields(&answer), ["hostname", "accountId"]);
}

async fn every_devices_endpoint_requires_its_scope(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let d = device(app, &acme, "scoped").await;
    let one = format!("/api/v1/devices/{}", d["id"].as_str().expect("id"));
    let new = json!({"accountId": acme, "rmmAgentId": "new", "hostname": "N"});
    let bulk = json!({"devices": [{"accountId": acme, "rmmAgentId": "bulk", "hostname": "B"}]});
    let case = |method: Method, path: &str, body: Option<Value>, scope, without| ScopeCase {
        method,
        path: path.to_owned(),
        body,
        scope,
        without,
    };
    scope_matrix(
        app,
        vec![
            case(Method::GET, "/api/v1/devices", None, "devices:read", "accounts:write deals:write"),
            case(Method::GET, &one, None, "devices:read", "accounts:write deals:write"),
            case(Method::POST, "/api/v1/devices", Some(new), "devices:write", "devices:read accounts:write"),
            case(Method::PATCH, &one, Some(json!({"kind": "LAPTOP"})), "devices:write", "devices:read admin:read"),
            case(Method::POST, "/api/v1/devices/bulk", Some(bulk), "devices:write", "devices:read accounts:write"),
        ],
    )
    .await;
}

async fn devices_of_other_orgs_and_environments_are_404(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let d = device(app, &acme, "ours").await;
    let path = format!("/api/v1/devices/{}", d["id"].as_str().expect("id"));
    for key in [other_org_key(app, "devices:write").await, test_env_key(app, "devices:write").await] {
        for (method, body) in [(Method::GET, None), (Method::PATCH, Some(json!({"hostname": "Mine"})))] {
            let answer = app.send(method.clone(), &path, &key, body.as_ref(), &[]).await;
            assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("not_found")), "{method}");
        }
        let (_, list) = app.get_key("/api/v1/devices", &key).await;
        assert!(ids(&list).is_empty());
        let mine = json!({"accountId": acme, "rmmAgentId": "ours", "hostname": "Sneaky"});
        let answer = app.send(Method::POST, "/api/v1/devices", &key, Some(&mine), &[]).await;
        assert_eq!(failing_fields(&answer), ["accountId"], "another partition's account does not exist for them");
    }
    let (_, ours) = app.get_key(&path, &app.admin_key).await;
    assert_eq!(ours["data"]["hostname"], "OURS");
}

both_backends!(
    device_is_created_read_and_updated,
    devices_are_listed_by_account_kind_and_status,
    device_validation_reports_every_failing_field,
    every_devices_endpoint_requires_its_scope,
    devices_of_other_orgs_and_environments_are_404,
);
