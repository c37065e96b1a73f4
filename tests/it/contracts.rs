//! Contracts: created and amended by operators, read by integrators; their events,
//! including `contract.expiring_soon` from the sweep.

use std::time::Duration;

use breadbox_api::domain::contracts::sweep_expiring;
use breadbox_api::domain::Crm;
use breadbox_auth::Environment;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;

const ADMIN_CONTRACTS: &str = "/api/v1/admin/contracts";

pub fn line(category: &str, quantity: i64, unit_price: i64, period: &str) -> Value {
    json!({"category": category, "description": format!("{category} service"), "quantity": quantity,
           "unitPrice": unit_price, "billingPeriod": period})
}

/// Creates a contract through the admin API and returns it, checking the 201.
pub async fn contract(app: &TestApp, body: Value) -> Value {
    let answer = app.send(Method::POST, ADMIN_CONTRACTS, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let id = answer.body["data"]["id"].as_str().expect("id");
    assert_eq!(answer.header("location"), Some(format!("/api/v1/contracts/{id}")));
    assert!(answer.header("etag").is_some());
    answer.body["data"].clone()
}

/// An `ACTIVE` contract of `account` with `lines`.
pub async fn active_contract(app: &TestApp, account: &str, currency: &str, lines: Vec<Value>) -> Value {
    contract(
        app,
        json!({"accountId": account, "name": "Managed IT", "status": "ACTIVE", "startDate": "2024-01-01",
               "endDate": "2030-03-01", "currency": currency, "serviceLines": lines}),
    )
    .await
}

/// The `data` of every stored event of `kind` in the test organization, oldest first.
pub async fn events(app: &TestApp, kind: &str) -> Vec<Value> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT data FROM events WHERE type = $1 AND org_id = $2 ORDER BY created_at, id")
        .bind(kind)
        .bind(&app.org_id)
        .fetch_all(app.service.db().pool())
        .await
        .expect("events");
    rows.into_iter().map(|(data,)| serde_json::from_str(&data).expect("event data is JSON")).collect()
}

fn amend_path(id: &str) -> String {
    format!("{ADMIN_CONTRACTS}/{id}/amendments")
}

async fn operator_creates_a_contract_and_integrators_read_it(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let created = contract(
        app,
        json!({"accountId": acme, "name": " Managed IT 2024 ", "status": "ACTIVE", "startDate": "2024-01-01",
               "endDate": "2024-12-31", "autoRenew": true, "currency": "eur",
               "serviceLines": [line("MANAGED_SERVICES", 25, 9_900, "MONTHLY"), line("BACKUP", 1, 30_000, "QUARTERLY"),
                                line("SECURITY", 2, 60_000, "ANNUAL"), line("PROJECT", 1, 500_000, "MONTHLY")]}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("ctr_"));
    assert_eq!((created["name"].as_str(), created["currency"].as_str()), (Some("Managed IT 2024"), Some("EUR")));
    assert_eq!((created["autoRenew"].as_bool(), created["endDate"].as_str()), (Some(true), Some("2024-12-31")));
    assert_eq!(created["totals"], json!({"monthlyRecurring": 267_500, "annualRecurring": 3_210_000, "oneOff": 500_000}));
    let monthly: Vec<i64> = created["serviceLines"].as_array().expect("lines").iter().map(|l| l["monthlyRecurring"].as_i64().expect("n")).collect();
    assert_eq!(monthly, [247_500, 10_000, 10_000, 0]);
    assert_eq!(created["amendments"], json!([]));

    let (_, reader) = app.key(Environment::Live, "contracts:read").await;
    let got = app.send(Method::GET, &format!("/api/v1/contracts/{id}"), &reader, None, &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["data"], created);
    assert!(got.header("etag").is_some());

    let globex = account(app, "Globex").await;
    let draft = contract(app, json!({"accountId": globex, "name": "Draft", "startDate": "2025-01-01", "serviceLines": []})).await;
    assert_eq!((draft["status"].as_str(), draft["currency"].as_str(), draft["autoRenew"].as_bool()), (Some("DRAFT"), Some("USD"), Some(false)));
    assert_eq!(draft["endDate"], Value::Null, "open-ended");
    let draft_id = draft["id"].as_str().expect("id").to_owned();

    let (_, all) = app.get_key("/api/v1/contracts", &reader).await;
    assert_eq!(ids(&all), [id.clone(), draft_id.clone()]);
    assert!(all["data"][0].get("serviceLines").is_none() && all["data"][0].get("amendments").is_none(), "lists are lean");
    assert_eq!(all["data"][0]["totals"]["monthlyRecurring"], 267_500);
    let (_, of_globex) = app.get_key(&format!("/api/v1/contracts?accountId={globex}"), &reader).await;
    assert_eq!(ids(&of_globex), std::slice::from_ref(&draft_id));
    let (_, active) = app.get_key("/api/v1/contracts?status=ACTIVE", &reader).await;
    assert_eq!(ids(&active), std::slice::from_ref(&id));
    let (status, _) = app.get_key("/api/v1/contracts?status=SIGNED", &reader).await;
    assert_eq!(status, 400);
    let walked = walk(app, &reader, "/api/v1/contracts", 1, Duration::ZERO).await;
    assert_eq!(walked, [id, draft_id]);

    let created_events = events(app, "contract.created").await;
    assert_eq!(created_events.len(), 2);
    assert_eq!(created_events[0], created, "the event carries the contract as the API shows it");
}

async fn amendment_changes_the_contract_and_records_what_changed(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let c = active_contract(app, &acme, "USD", vec![line("MANAGED_SERVICES", 25, 10_000, "MONTHLY")]).await;
    let id = c["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/contracts/{id}");
    let v1 = app.send(Method::GET, &path, &app.admin_key, None, &[]).await.header("etag").expect("etag");

    let body = json!({"effectiveDate": "2024-04-01", "description": "Five more seats, renewed to 2031",
                      "endDate": "2031-03-01", "serviceLines": [line("MANAGED_SERVICES", 30, 10_000, "MONTHLY")]});
    let amended = app.send(Method::POST, &amend_path(&id), &app.admin_key, Some(&body), &[("If-Match", &v1)]).await;
    assert_eq!(amended.status, 201, "{}", amended.body);
    assert_eq!(amended.header("location"), Some(path.clone()));
    let v2 = amended.header("etag").expect("etag");
    assert_ne!(v1, v2);
    let data = &amended.body["data"];
    assert_eq!((data["endDate"].as_str(), data["totals"]["monthlyRecurring"].as_i64()), (Some("2031-03-01"), Some(300_000)));
    let amendments = data["amendments"].as_array().expect("amendments");
    assert_eq!(amendments.len(), 1);
    assert_eq!(amendments[0]["effectiveDate"], "2024-04-01");
    let changed: Vec<&str> = amendments[0]["changes"].as_array().expect("changes").iter().map(|c| c["field"].as_str().expect("f")).collect();
    assert_eq!(changed, ["endDate", "serviceLines"]);
    assert_eq!((&amendments[0]["changes"][0]["from"], &amendments[0]["changes"][0]["to"]), (&json!("2030-03-01"), &json!("2031-03-01")));
    assert_eq!(amendments[0]["changes"][1]["from"][0]["quantity"], 25);
    assert!(amendments[0]["createdBy"].as_str().is_some_and(|k| k.starts_with("key_")));

    let stale = app.send(Method::POST, &amend_path(&id), &app.admin_key, Some(&json!({"effectiveDate": "2024-05-01", "description": "x", "status": "CANCELLED"})), &[("If-Match", &v1)]).await;
    assert_eq!((stale.status, stale.body["error"]["code"].as_str()), (412, Some("precondition_failed")));
    let bad = app.send(Method::POST, &amend_path(&id), &app.admin_key, Some(&json!({"effectiveDate": "someday", "status": "PAUSED", "endDate": "2020-01-01"})), &[]).await;
    assert_eq!(failing_fields(&bad), ["effectiveDate", "description", "status", "endDate"]);
    // A broken rule is a 422 even with a stale If-Match (RFC 9110 §13.2.1).
    let bad_and_stale = app.send(Method::POST, &amend_path(&id), &app.admin_key, Some(&json!({"effectiveDate": "someday", "description": "x"})), &[("If-Match", &v1)]).await;
    assert_eq!(failing_fields(&bad_and_stale), ["effectiveDate"]);
    let unknown = app.send(Method::POST, &amend_path(&id), &app.admin_key, Some(&json!({"effectiveDate": "2024-05-01", "description": "x", "price": 1})), &[]).await;
    assert_eq!(failing_fields(&unknown), ["price"]);

    let (_, got) = app.get_key(&path, &app.admin_key).await;
    assert_eq!(got["data"], *data, "refused amendments left no trace");
    let updated = events(app, "contract.updated").await;
    assert_eq!(updated, std::slice::from_ref(data));
}

async fn contract_validation_reports_every_failing_field(app: &mut TestApp) {
    let theirs = other_org_key(app, "accounts:write").await;
    let foreign = app.send(Method::POST, "/api/v1/accounts", &theirs, Some(&json!({"name": "Theirs"})), &[]).await;
    let body = json!({
        "accountId": foreign.body["data"]["id"],
        "name": "",
        "status": "SIGNED",
        "startDate": "2024-13-01",
        "endDate": "soon",
        "currency": "DOLLARS",
        "serviceLines": [line("SECURITY", 1, 1, "MONTHLY"),
                         {"category": "CATERING", "description": "", "quantity": -1, "unitPrice": 20_000_000_000_i64, "billingPeriod": "WEEKLY"}]
    });
    let answer = app.send(Method::POST, ADMIN_CONTRACTS, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(
        failing_fields(&answer),
        ["name", "status", "startDate", "endDate", "currency", "serviceLines[1].category", "serviceLines[1].description",
         "serviceLines[1].quantity", "serviceLines[1].unitPrice", "serviceLines[1].billingPeriod", "accountId"]
    );
    let answer = app.send(Method::POST, ADMIN_CONTRACTS, &app.admin_key, Some(&json!({"status": "ACTIVE"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["accountId", "name", "startDate", "serviceLines"]);
    let acme = account(app, "Acme").await;
    let backwards = json!({"accountId": acme, "name": "N", "startDate": "2024-06-01", "endDate": "2024-05-31", "serviceLines": []});
    let answer = app.send(Method::POST, ADMIN_CONTRACTS, &app.admin_key, Some(&backwards), &[]).await;
    assert_eq!(failing_fields(&answer), ["endDate"]);
    let unknown = json!({"accountId": acme, "name": "N", "startDate": "2024-06-01", "serviceLines": [], "discount": 5});
    let answer = app.send(Method::POST, ADMIN_CONTRACTS, &app.admin_key, Some(&unknown), &[]).await;
    assert_eq!(failing_fields(&answer), ["discount"]);
    let (_, list) = app.get_key("/api/v1/contracts", &app.admin_key).await;
    assert!(ids(&list).is_empty(), "nothing was created");
}

async fn every_contracts_endpoint_requires_its_scope(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let c = active_contract(app, &acme, "USD", vec![]).await;
    let id = c["id"].as_str().expect("id");
    let new = json!({"accountId": acme, "name": "N", "startDate": "2024-01-01", "serviceLines": []});
    let amendment = json!({"effectiveDate": "2024-02-01", "description": "Note"});
    let case = |method: Method, path: String, body: Option<Value>, scope, without| ScopeCase { method, path, body, scope, without };
    scope_matrix(
        app,
        vec![
            case(Method::GET, "/api/v1/contracts".into(), None, "contracts:read", "accounts:write deals:write"),
            case(Method::GET, format!("/api/v1/contracts/{id}"), None, "contracts:read", "accounts:write deals:write"),
            case(Method::POST, ADMIN_CONTRACTS.into(), Some(new), "admin:write", "contracts:read accounts:write admin:read"),
            case(Method::POST, amend_path(id), Some(amendment), "admin:write", "contracts:read admin:read"),
        ],
    )
    .await;
}

async fn contracts_of_other_orgs_and_environments_are_404(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let c = active_contract(app, &acme, "USD", vec![line("CLOUD", 1, 100, "MONTHLY")]).await;
    let id = c["id"].as_str().expect("id");
    for key in [other_org_key(app, "admin:write").await, test_env_key(app, "admin:write").await] {
        let got = app.send(Method::GET, &format!("/api/v1/contracts/{id}"), &key, None, &[]).await;
        assert_eq!((got.status, got.body["error"]["code"].as_str()), (404, Some("not_found")));
        let amend = json!({"effectiveDate": "2024-02-01", "description": "Sneaky", "status": "CANCELLED"});
        let answer = app.send(Method::POST, &amend_path(id), &key, Some(&amend), &[]).await;
        assert_eq!(answer.status, 404);
        let (_, list) = app.get_key("/api/v1/contracts", &key).await;
        assert!(ids(&list).is_empty());
        let mine = json!({"accountId": acme, "name": "Sneaky", "startDate": "2024-01-01", "serviceLines": []});
        let answer = app.send(Method::POST, ADMIN_CONTRACTS, &key, Some(&mine), &[]).await;
        assert_eq!(failing_fields(&answer), ["accountId"]);
    }
    let (_, ours) = app.get_key(&format!("/api/v1/contracts/{id}"), &app.admin_key).await;
    assert_eq!(ours["data"]["status"], "ACTIVE");
}

/// Noon UTC of 2030-01-15, 2030-02-05 and 2031-01-15.
const JAN_15_2030: i64 = 1_894_708_800_000;
const FEB_05_2030: i64 = 1_896_523_200_000;
const JAN_15_2031: i64 = 1_926_244_800_000;

async fn expiring_contracts_are_announced_once_per_threshold(app: &mut TestApp) {
    let crm = Crm::load(app.service.db().clone()).await.expect("crm");
    let acme = account(app, "Acme").await;
    let c = active_contract(app, &acme, "USD", vec![]).await; // ends 2030-03-01
    let id = c["id"].as_str().expect("id").to_owned();
    contract(app, json!({"accountId": acme, "name": "Draft", "startDate": "2024-01-01", "endDate": "2030-03-01", "serviceLines": []})).await;
    contract(app, json!({"accountId": acme, "name": "Open-ended", "status": "ACTIVE", "startDate": "2024-01-01", "serviceLines": []})).await;

    assert_eq!(sweep_expiring(&crm, JAN_15_2030 - 86_400_000 * 30).await.expect("sweep"), 0, "75 days out: nothing yet");
    assert_eq!(sweep_expiring(&crm, JAN_15_2030).await.expect("sweep"), 1, "45 days out: the 60-day notice");
    assert_eq!(sweep_expiring(&crm, JAN_15_2030).await.expect("sweep"), 0, "once");
    assert_eq!(sweep_expiring(&crm, FEB_05_2030).await.expect("sweep"), 1, "24 days out: the 30-day notice");
    assert_eq!(sweep_expiring(&crm, FEB_05_2030 + 86_400_000).await.expect("sweep"), 0, "once");
    let sent = events(app, "contract.expiring_soon").await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|e| e["id"] == id.as_str() && e["endDate"] == "2030-03-01"));

    let renew = json!({"effectiveDate": "2030-02-10", "description": "Renewed", "endDate": "2031-03-01"});
    let answer = app.send(Method::POST, &amend_path(&id), &app.admin_key, Some(&renew), &[]).await;
    assert_eq!(answer.status, 201);
    let late = contract(app, json!({"accountId": acme, "name": "Late", "status": "ACTIVE", "startDate": "2024-01-01", "endDate": "2031-02-04", "serviceLines": []})).await;
    assert_eq!(sweep_expiring(&crm, JAN_15_2031).await.expect("sweep"), 2, "the new end date arms the notices again");
    assert_eq!(sweep_expiring(&crm, JAN_15_2031 + 86_400_000 * 20).await.expect("sweep"), 1, "the renewed one reaches 30 days");
    assert_eq!(sweep_expiring(&crm, JAN_15_2031 + 86_400_000 * 21).await.expect("sweep"), 0);
    let sent = events(app, "contract.expiring_soon").await;
    let late_notices = sent.iter().filter(|e| e["id"] == late["id"]).count();
    assert_eq!((sent.len(), late_notices), (5, 1), "a contract first seen within 30 days gets one notice");
}

both_backends!(
    operator_creates_a_contract_and_integrators_read_it,
    amendment_changes_the_contract_and_records_what_changed,
    contract_validation_reports_every_failing_field,
    every_contracts_endpoint_requires_its_scope,
    contracts_of_other_orgs_and_environments_are_404,
    expiring_contracts_are_announced_once_per_threshold,
);
