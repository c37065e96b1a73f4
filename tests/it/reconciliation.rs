//! MRR from the active contracts, and reconciliation of reported counts against them.

use breadbox_auth::Environment;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::contracts::{active_contract, contract, events, line};
use crate::crm::*;

const RECONCILIATION: &str = "/api/v1/reconciliation";

async fn mrr_sums_active_recurring_lines_per_currency_and_category(app: &mut TestApp) {
    let (_, reader) = app.key(Environment::Live, "mrr:read").await;
    let (status, empty) = app.get_key("/api/v1/mrr", &reader).await;
    assert_eq!(status, 200);
    assert_eq!((&empty["data"]["currencies"], empty["data"]["contractCount"].as_i64()), (&json!([]), Some(0)));

    let acme = account(app, "Acme").await;
    let globex = account(app, "Globex").await;
    active_contract(app, &acme, "USD", vec![line("MANAGED_SERVICES", 25, 9_900, "MONTHLY"), line("PROJECT", 1, 900_000, "MONTHLY")]).await;
    active_contract(app, &globex, "USD", vec![line("MANAGED_SERVICES", 10, 9_900, "MONTHLY"), line("BACKUP", 1, 100, "QUARTERLY"), line("SECURITY", 3, 120_000, "ANNUAL")]).await;
    active_contract(app, &globex, "EUR", vec![line("VOIP", 4, 2_500, "MONTHLY")]).await;
    contract(app, json!({"accountId": acme, "name": "Draft", "startDate": "2025-01-01", "serviceLines": [line("CLOUD", 100, 100_000, "MONTHLY")]})).await;
    let test_key = test_env_key(app, "admin:write").await;
    let (_, theirs) = app.post_key("/api/v1/accounts", &test_key, &json!({"name": "Sandbox"})).await;
    let sandbox = json!({"accountId": theirs["data"]["id"], "name": "Test", "status": "ACTIVE", "startDate": "2024-01-01",
                         "serviceLines": [line("CLOUD", 1, 1_000_000, "MONTHLY")]});
    assert_eq!(app.post_key("/api/v1/admin/contracts", &test_key, &sandbox).await.0, 201);

    let (status, got) = app.get_key("/api/v1/mrr", &reader).await;
    assert_eq!(status, 200, "{got}");
    let data = &got["data"];
    assert_eq!((data["contractCount"].as_i64(), data["accountCount"].as_i64()), (Some(3), Some(2)));
    let currencies = data["currencies"].as_array().expect("currencies");
    let codes: Vec<&str> = currencies.iter().map(|c| c["currency"].as_str().expect("code")).collect();
    assert_eq!(codes, ["EUR", "USD"]);
    assert_eq!(currencies[0]["mrr"], 10_000);
    let usd = &currencies[1];
    // 247,500 + 99,000 monthly; 100 a quarter is 33.33; 360,000 a year is 30,000.
    assert_eq!((usd["mrr"].as_i64(), usd["arr"].as_i64()), (Some(376_533), Some(376_533 * 12)));
    assert_eq!((usd["contractCount"].as_i64(), usd["accountCount"].as_i64()), (Some(2), Some(2)));
    let by_category: Vec<(&str, i64, i64)> = usd["byCategory"]
        .as_array()
        .expect("categories")
        .iter()
        .map(|c| (c["category"].as_str().expect("c"), c["mrr"].as_i64().expect("m"), c["lineCount"].as_i64().expect("n")))
        .collect();
    assert_eq!(by_category, [("MANAGED_SERVICES", 346_500, 2), ("SECURITY", 30_000, 1), ("BACKUP", 33, 1)]);
    assert!(data["computedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
}

async fn report_is_compared_with_the_active_contracts(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let a = active_contract(app, &acme, "USD", vec![line("MANAGED_SERVICES", 25, 9_900, "MONTHLY"), line("SECURITY", 10, 500, "MONTHLY")]).await;
    let b = active_contract(app, &acme, "USD", vec![line("MANAGED_SERVICES", 5, 9_900, "MONTHLY"), line("PROJECT", 1, 1, "MONTHLY")]).await;
    contract(app, json!({"accountId": acme, "name": "Draft", "startDate": "2025-01-01", "serviceLines": [line("BACKUP", 3, 100, "MONTHLY")]})).await;
    let (key_id, writer) = app.key(Environment::Live, "reconciliation:write").await;

    let report = json!({"accountId": acme, "source": "NinjaOne", "reportedAt": "2024-06-01T06:00:00Z",
                        "counts": [{"category": "BACKUP", "quantity": 2}, {"category": "SECURITY", "quantity": 10},
                                   {"category": "MANAGED_SERVICES", "quantity": 28}]});
    let answer = app.send(Method::POST, RECONCILIATION, &writer, Some(&report), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let record = answer.body["data"].clone();
    let id = record["id"].as_str().expect("id").to_owned();
    assert_eq!(answer.header("location"), Some(format!("{RECONCILIATION}/{id}")));
    assert_eq!(
        record["lines"],
        json!([
            {"category": "MANAGED_SERVICES", "contracted": 30, "reported": 28, "variance": -2, "variancePercent": -6.67, "hasVariance": true},
            {"category": "SECURITY", "contracted": 10, "reported": 10, "variance": 0, "variancePercent": 0.0, "hasVariance": false},
            {"category": "BACKUP", "contracted": 0, "reported": 2, "variance": 2, "variancePercent": null, "hasVariance": true},
        ])
    );
    assert_eq!((record["hasVariance"].as_bool(), record["source"].as_str()), (Some(true), Some("NinjaOne")));
    assert_eq!(record["reportedAt"], "2024-06-01T06:00:00.000Z");
    assert_eq!(record["contractIds"], json!([a["id"], b["id"]]));
    assert_eq!(record["submittedBy"], key_id.as_str());

    let exact = json!({"accountId": acme, "source": "PSA", "counts": [{"category": "SECURITY", "quantity": 10}]});
    let answer = app.send(Method::POST, RECONCILIATION, &writer, Some(&exact), &[]).await;
    assert_eq!((answer.status, answer.body["data"]["hasVariance"].as_bool()), (201, Some(false)));
    let exact_id = answer.body["data"]["id"].as_str().expect("id").to_owned();

    assert_eq!(events(app, "reconciliation.variance_detected").await, std::slice::from_ref(&record), "one event, for the variance");

    let (_, reader) = app.key(Environment::Live, "reconciliation:read").await;
    let (status, got) = app.get_key(&format!("{RECONCILIATION}/{id}"), &reader).await;
    assert_eq!((status, &got["data"]), (200, &record));
    let (_, all) = app.get_key(RECONCILIATION, &reader).await;
    assert_eq!(ids(&all), [id.clone(), exact_id.clone()]);
    let (_, varying) = app.get_key(&format!("{RECONCILIATION}?hasVariance=true&accountId={acme}"), &reader).await;
    assert_eq!(ids(&varying), std::slice::from_ref(&id));
    let (_, matching) = app.get_key(&format!("{RECONCILIATION}?hasVariance=false"), &reader).await;
    assert_eq!(ids(&matching), [exact_id]);
    let (_, paged) = app.get_key(&format!("{RECONCILIATION}?limit=1"), &reader).await;
    assert_eq!((ids(&paged), paged["pagination"]["hasMore"].as_bool()), (vec![id], Some(true)));
}

async fn reconciliation_validation_reports_every_failing_field(app: &mut TestApp) {
    let theirs = other_org_key(app, "accounts:write").await;
    let foreign = app.send(Method::POST, "/api/v1/accounts", &theirs, Some(&json!({"name": "Theirs"})), &[]).await;
    let body = json!({"accountId": foreign.body["data"]["id"], "source": " ", "reportedAt": "2999-01-01T00:00:00Z",
                      "counts": [{"category": "PROJECT", "quantity": 1}, {"category": "CLOUD", "quantity": -3},
                                 {"category": "VOIP", "quantity": 2}, {"category": "VOIP", "quantity": 4}, {}]});
    let answer = app.send(Method::POST, RECONCILIATION, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(
        failing_fields(&answer),
        ["source", "reportedAt", "counts[0].category", "counts[1].quantity", "counts[3].category", "counts[4].category",
         "counts[4].quantity", "accountId"]
    );
    let answer = app.send(Method::POST, RECONCILIATION, &app.admin_key, Some(&json!({"counts": []})), &[]).await;
    assert_eq!(failing_fields(&answer), ["accountId", "source", "counts"]);
    let answer = app.send(Method::POST, RECONCILIATION, &app.admin_key, Some(&json!({"source": "x", "seats": 3})), &[]).await;
    assert_eq!(failing_fields(&answer), ["seats"]);
    let (_, list) = app.get_key(RECONCILIATION, &app.admin_key).await;
    assert!(ids(&list).is_empty(), "nothing was stored");
}

async fn mrr_and_reconciliation_require_their_scopes_and_stay_in_their_partition(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    active_contract(app, &acme, "USD", vec![line("NETWORK", 2, 5_000, "MONTHLY")]).await;
    let report = json!({"accountId": acme, "source": "RMM", "counts": [{"category": "NETWORK", "quantity": 3}]});
    let answer = app.send(Method::POST, RECONCILIATION, &app.admin_key, Some(&report), &[]).await;
    let one = format!("{RECONCILIATION}/{}", answer.body["data"]["id"].as_str().expect("id"));
    let case = |method: Method, path: String, body: Option<Value>, scope, without| ScopeCase { method, path, body, scope, without };
    scope_matrix(
        app,
        vec![
            case(Method::GET, "/api/v1/mrr".into(), None, "mrr:read", "contracts:read accounts:write"),
            case(Method::GET, RECONCILIATION.into(), None, "reconciliation:read", "mrr:read contracts:read"),
            case(Method::GET, one.clone(), None, "reconciliation:read", "mrr:read accounts:write"),
            case(Method::POST, RECONCILIATION.into(), Some(report.clone()), "reconciliation:write", "reconciliation:read"),
        ],
    )
    .await;
    for key in [other_org_key(app, "reconciliation:read reconciliation:write mrr:read").await,
                test_env_key(app, "reconciliation:read reconciliation:write mrr:read").await] {
        let (status, _) = app.get_key(&one, &key).await;
        assert_eq!(status, 404);
        let (_, list) = app.get_key(RECONCILIATION, &key).await;
        assert!(ids(&list).is_empty());
        let (_, mrr) = app.get_key("/api/v1/mrr", &key).await;
        assert_eq!(mrr["data"]["currencies"], json!([]));
        let answer = app.send(Method::POST, RECONCILIATION, &key, Some(&report), &[]).await;
        assert_eq!(failing_fields(&answer), ["accountId"]);
    }
}

both_backends!(
    mrr_sums_active_recurring_lines_per_currency_and_category,
    report_is_compared_with_the_active_contracts,
    reconciliation_validation_reports_every_failing_field,
    mrr_and_reconciliation_require_their_scopes_and_stay_in_their_partition,
);
