//! Compliance: items written by operators, read with filters, and framework status.

use std::time::Duration;

use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;

const ADMIN_ITEMS: &str = "/api/v1/admin/compliance-items";

/// Creates an item with the admin key; checks the 201's `Location` and `ETag`.
pub async fn item(app: &TestApp, account_id: &str, framework: &str, control: &str, status: &str) -> Value {
    let body = json!({"accountId": account_id, "framework": framework, "controlId": control, "title": format!("Control {control}"), "status": status});
    let answer = app.send(Method::POST, ADMIN_ITEMS, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let data = answer.body["data"].clone();
    assert_eq!(answer.header("location"), Some(format!("/api/v1/compliance/items/{}", data["id"].as_str().expect("id"))));
    assert!(answer.header("etag").is_some());
    data
}

/// Ids in a fixed order: records created within one millisecond list in id order.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn compliance_items_are_written_by_operators_and_read_with_filters(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let globex = account(app, "Globex").await;
    let body = json!({
        "accountId": acme, "framework": "HIPAA", "controlId": "164.312(a)(1)", "title": "Unique user identification",
        "evidenceNotes": "Shared login at front desk", "dueDate": "2024-09-30", "lastReviewedAt": "2024-06-12T14:00:00Z"
    });
    let answer = app.send(Method::POST, ADMIN_ITEMS, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let hipaa = answer.body["data"].clone();
    assert!(id(&hipaa).starts_with("cmp_"));
    assert_eq!((hipaa["status"].as_str(), hipaa["dueDate"].as_str()), (Some("IN_PROGRESS"), Some("2024-09-30")));
    assert_eq!(hipaa["lastReviewedAt"], "2024-06-12T14:00:00.000Z");
    let soc = item(app, &acme, "SOC2", "CC6.1", "COMPLIANT").await;
    let other = item(app, &globex, "SOC2", "CC6.1", "NON_COMPLIANT").await;

    let key = &app.admin_key;
    let (_, of_acme) = app.get_key(&format!("/api/v1/compliance/items?accountId={acme}"), key).await;
    assert_eq!(sorted(ids(&of_acme)), sorted(vec![id(&hipaa), id(&soc)]));
    let (_, soc2) = app.get_key("/api/v1/compliance/items?framework=SOC2", key).await;
    assert_eq!(sorted(ids(&soc2)), sorted(vec![id(&soc), id(&other)]));
    let (_, failing) = app.get_key("/api/v1/compliance/items?framework=SOC2&status=NON_COMPLIANT", key).await;
    assert_eq!(sorted(ids(&failing)), sorted(vec![id(&other)]));
    let (status, _) = app.get_key("/api/v1/compliance/items?framework=GDPR", key).await;
    assert_eq!(status, 400);

    let path = format!("/api/v1/compliance/items/{}", id(&hipaa));
    let got = app.send(Method::GET, &path, key, None, &[]).await;
    assert_eq!((got.status, got.body["data"]["controlId"].as_str()), (200, Some("164.312(a)(1)")));
    let v1 = got.header("etag").expect("etag");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let admin_path = format!("{ADMIN_ITEMS}/{}", id(&hipaa));
    let fixed = app
        .send(Method::PATCH, &admin_path, key, Some(&json!({"status": "COMPLIANT", "dueDate": null})), &[("If-Match", &v1)])
        .await;
    assert_eq!(fixed.status, 200, "{}", fixed.body);
    assert_eq!((fixed.body["data"]["status"].as_str(), &fixed.body["data"]["dueDate"]), (Some("COMPLIANT"), &Value::Null));
    let stale = app.send(Method::PATCH, &admin_path, key, Some(&json!({"status": "NON_COMPLIANT"})), &[("If-Match", &v1)]).await;
    assert_eq!(stale.status, 412);
    let since = fixed.body["data"]["updatedAt"].as_str().expect("updatedAt");
    let (_, changed) = app.get_key(&format!("/api/v1/compliance/items?updatedSince={since}"), key).await;
    assert_eq!(sorted(ids(&changed)), sorted(vec![id(&hipaa)]));
    let pages = walk(app, key, "/api/v1/compliance/items", 2, Duration::ZERO).await;
    assert_eq!(sorted(pages), sorted(vec![id(&hipaa), id(&soc), id(&other)]));
}

async fn framework_status_counts_items_and_leaves_not_applicable_out(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let globex = account(app, "Globex").await;
    for (control, status) in [("CC1", "COMPLIANT"), ("CC2", "COMPLIANT"), ("CC3", "NON_COMPLIANT"), ("CC4", "NOT_APPLICABLE")] {
        item(app, &acme, "SOC2", control, status).await;
    }
    item(app, &acme, "HIPAA", "H1", "NOT_APPLICABLE").await;
    item(app, &globex, "SOC2", "CC1", "IN_PROGRESS").await;

    let key = &app.admin_key;
    let (status, all) = app.get_key("/api/v1/compliance/frameworks", key).await;
    assert_eq!(status, 200, "{all}");
    let names: Vec<&str> = all["data"]["frameworks"].as_array().expect("frameworks").iter().filter_map(|f| f["framework"].as_str()).collect();
    assert_eq!(names, ["SOC2", "HIPAA", "PCI_DSS", "CIS", "NIST_CSF", "ISO27001"]);
    assert_eq!(all["data"]["accountId"], Value::Null);
    let soc2 = &all["data"]["frameworks"][0];
    assert_eq!(
        (soc2["total"].as_i64(), soc2["compliant"].as_i64(), soc2["nonCompliant"].as_i64(), soc2["inProgress"].as_i64(), soc2["notApplicable"].as_i64()),
        (Some(5), Some(2), Some(1), Some(1), Some(1))
    );
    assert_eq!(soc2["percentCompliant"], 50.0);
    assert_eq!(all["data"]["frameworks"][1]["percentCompliant"], Value::Null, "only NOT_APPLICABLE items");
    assert_eq!((all["data"]["frameworks"][2]["total"].as_i64(), &all["data"]["frameworks"][2]["percentCompliant"]), (Some(0), &Value::Null));

    let (_, of_acme) = app.get_key(&format!("/api/v1/compliance/frameworks?accountId={acme}"), key).await;
    assert_eq!(of_acme["data"]["accountId"], acme.as_str());
    assert_eq!((of_acme["data"]["frameworks"][0]["total"].as_i64(), of_acme["data"]["frameworks"][0]["percentCompliant"].as_f64()), (Some(4), Some(66.7)));
    let (status, missing) = app.get_key("/api/v1/compliance/frameworks?accountId=acc_nope", key).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_found")));
}

async fn compliance_validation_reports_every_failing_field(app: &mut TestApp) {
    let theirs = other_org_key(app, "accounts:write").await;
    let foreign = app.send(Method::POST, "/api/v1/accounts", &theirs, Some(&json!({"name": "Theirs"})), &[]).await;
    let body = json!({
        "accountId": foreign.body["data"]["id"], "framework": "GDPR", "controlId": "", "title": "x".repeat(301),
        "status": "DONE", "dueDate": "soon", "lastReviewedAt": "2999-01-01T00:00:00Z"
    });
    let answer = app.send(Method::POST, ADMIN_ITEMS, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(failing_fields(&answer), ["framework", "controlId", "title", "status", "dueDate", "lastReviewedAt", "accountId"]);
    let answer = app.send(Method::POST, ADMIN_ITEMS, &app.admin_key, Some(&json!({"status": "COMPLIANT"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["accountId", "framework", "controlId", "title"]);
    let acme = account(app, "Acme").await;
    item(app, &acme, "CIS", "1.1", "COMPLIANT").await;
    let again = json!({"accountId": acme, "framework": "CIS", "controlId": "1.1", "title": "Inventory"});
    let answer = app.send(Method::POST, ADMIN_ITEMS, &app.admin_key, Some(&again), &[]).await;
    assert_eq!(failing_fields(&answer), ["controlId"], "one item per control, framework and account");
    let extra = json!({"accountId": acme, "framework": "CIS", "controlId": "1.2", "title": "T", "owner": "me"});
    let answer = app.send(Method::POST, ADMIN_ITEMS, &app.admin_key, Some(&extra), &[]).await;
    assert_eq!(failing_fields(&answer), ["owner"]);
}

async fn compliance_endpoints_require_their_scopes_and_stay_in_their_partition(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let it = item(app, &acme, "PCI_DSS", "8.3", "IN_PROGRESS").await;
    let one = format!("/api/v1/compliance/items/{}", id(&it));
    let admin_one = format!("{ADMIN_ITEMS}/{}", id(&it));
    let new = json!({"accountId": acme, "framework": "PCI_DSS", "controlId": "8.4", "title": "MFA"});
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
            case(Method::GET, "/api/v1/compliance/items", None, "compliance:read", "accounts:write onboarding:read"),
            case(Method::GET, &one, None, "compliance:read", "accounts:write"),
            case(Method::GET, "/api/v1/compliance/frameworks", None, "compliance:read", "leads:write"),
            case(Method::POST, ADMIN_ITEMS, Some(new), "admin:write", "compliance:read admin:read accounts:write"),
            case(Method::PATCH, &admin_one, Some(json!({"status": "COMPLIANT"})), "admin:write", "compliance:read admin:read"),
        ],
    )
    .await;

    for key in [other_org_key(app, "admin:write").await, test_env_key(app, "admin:write").await] {
        let (status, _) = app.get_key(&one, &key).await;
        assert_eq!(status, 404);
        let answer = app.send(Method::PATCH, &admin_one, &key, Some(&json!({"status": "COMPLIANT"})), &[]).await;
        assert_eq!(answer.status, 404);
        let (_, list) = app.get_key("/api/v1/compliance/items", &key).await;
        assert!(ids(&list).is_empty());
        let (_, summary) = app.get_key("/api/v1/compliance/frameworks", &key).await;
        assert_eq!(summary["data"]["frameworks"][2]["total"], 0, "{summary}");
    }
    let (_, ours) = app.get_key(&one, &app.admin_key).await;
    assert_eq!(ours["data"]["status"], "COMPLIANT", "the PATCH with admin:write in the scope matrix");
}

both_backends!(
    compliance_items_are_written_by_operators_and_read_with_filters,
    framework_status_counts_items_and_leaves_not_applicable_out,
    compliance_validation_reports_every_failing_field,
    compliance_endpoints_require_their_scopes_and_stay_in_their_partition,
);
