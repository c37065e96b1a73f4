//! Deals: stages, history, won/lost outcomes.

use std::collections::HashSet;
use std::time::Duration;

use breadbox_auth::Environment;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;

async fn deal(app: &TestApp, account_id: &str, name: &str) -> Value {
    create(app, "/api/v1/deals", json!({"accountId": account_id, "name": name, "amount": 1_250_000})).await
}

async fn patch_deal(app: &TestApp, key: &str, id: &str, body: Value) -> Answer {
    app.send(Method::PATCH, &format!("/api/v1/deals/{id}"), key, Some(&body), &[]).await
}

async fn deal_moves_through_stages_and_keeps_its_history(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let (key_id, key) = app.key(Environment::Live, "deals:write").await;
    let body = json!({"accountId": acme, "name": "Managed security", "amount": 1_250_000, "currency": "eur", "expectedCloseDate": "2024-07-31"});
    let created = app.send(Method::POST, "/api/v1/deals", &key, Some(&body), &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let data = &created.body["data"];
    let id = data["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("deal_"));
    assert_eq!((data["stage"].as_str(), data["currency"].as_str()), (Some("DISCOVERY"), Some("EUR")));
    assert_eq!((data["amount"].as_i64(), data["expectedCloseDate"].as_str()), (Some(1_250_000), Some("2024-07-31")));
    assert_eq!((&data["closedAt"], &data["outcomeReason"]), (&Value::Null, &Value::Null));
    let history = data["stageHistory"].as_array().expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["toStage"], "DISCOVERY");
    assert_eq!(history[0]["changedBy"], key_id.as_str());
    assert!(history[0].get("fromStage").is_none());

    let proposal = patch_deal(app, &key, &id, json!({"stage": "PROPOSAL", "amount": 1_500_000})).await;
    assert_eq!(proposal.status, 200, "{}", proposal.body);
    let lost_without_reason = patch_deal(app, &key, &id, json!({"stage": "LOST"})).await;
    assert_eq!(failing_fields(&lost_without_reason), ["outcomeReason"]);
    let reason_while_open = patch_deal(app, &key, &id, json!({"outcomeReason": "Too early"})).await;
    assert_eq!(failing_fields(&reason_while_open), ["outcomeReason"]);

    let lost = patch_deal(app, &key, &id, json!({"stage": "LOST", "outcomeReason": "Chose a cheaper provider"})).await;
    assert_eq!(lost.status, 200, "{}", lost.body);
    let data = &lost.body["data"];
    assert_eq!(data["stage"], "LOST");
    assert_eq!(data["outcomeReason"], "Chose a cheaper provider");
    assert!(data["closedAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    let reopened = patch_deal(app, &key, &id, json!({"stage": "NEGOTIATION"})).await;
    assert_eq!(reopened.status, 200, "{}", reopened.body);
    assert_eq!((&reopened.body["data"]["closedAt"], &reopened.body["data"]["outcomeReason"]), (&Value::Null, &Value::Null));
    let won = patch_deal(app, &key, &id, json!({"stage": "WON", "outcomeReason": "Best SLA"})).await;
    assert_eq!(won.status, 200, "{}", won.body);
    let switched = patch_deal(app, &key, &id, json!({"stage": "LOST"})).await;
    assert_eq!(failing_fields(&switched), ["outcomeReason"], "the reason for winning is no reason for losing");

    let (status, got) = app.get_key(&format!("/api/v1/deals/{id}"), &app.admin_key).await;
    assert_eq!(status, 200);
    let steps: Vec<(Option<&str>, &str, Option<&str>)> = got["data"]["stageHistory"]
        .as_array()
        .expect("history")
        .iter()
        .map(|c| (c["fromStage"].as_str(), c["toStage"].as_str().expect("to"), c["reason"].as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (None, "DISCOVERY", None),
            (Some("DISCOVERY"), "PROPOSAL", None),
            (Some("PROPOSAL"), "LOST", Some("Chose a cheaper provider")),
            (Some("LOST"), "NEGOTIATION", None),
            (Some("NEGOTIATION"), "WON", Some("Best SLA")),
        ]
    );
    assert_eq!((got["data"]["stage"].as_str(), got["data"]["amount"].as_i64()), (Some("WON"), Some(1_500_000)));
    let renamed = patch_deal(app, &key, &id, json!({"name": "Managed security (3 yr)"})).await;
    assert_eq!(renamed.body["data"]["stageHistory"].as_array().map(Vec::len), Some(5), "no stage change, no entry");
}

async fn deals_can_be_created_closed_and_filtered(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let globex = account(app, "Globex").await;
    let a = deal(app, &acme, "A").await;
    let b = create(app, "/api/v1/deals", json!({"accountId": globex, "name": "B", "amount": 0, "stage": "WON"})).await;
    assert!(b["closedAt"].is_string(), "created closed");
    let c = create(app, "/api/v1/deals", json!({"accountId": acme, "name": "C", "amount": 5, "stage": "LOST", "outcomeReason": "Budget"})).await;
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let key = &app.admin_key;
    let (_, of_acme) = app.get_key(&format!("/api/v1/deals?accountId={acme}"), key).await;
    assert_eq!(ids(&of_acme), [id(&a), id(&c)]);
    let (_, won) = app.get_key("/api/v1/deals?stage=WON", key).await;
    assert_eq!(ids(&won), [id(&b)]);
    let (_, lost_at_acme) = app.get_key(&format!("/api/v1/deals?stage=LOST&accountId={acme}"), key).await;
    assert_eq!(ids(&lost_at_acme), [id(&c)]);
    let (_, all) = app.get_key("/api/v1/deals", key).await;
    assert!(all["data"][0].get("stageHistory").is_none(), "lists leave the history out");
    let (status, _) = app.get_key("/api/v1/deals?stage=CLOSED", key).await;
    assert_eq!(status, 400);
}

async fn deal_validation_reports_every_failing_field(app: &mut TestApp) {
    let theirs = other_org_key(app, "accounts:write").await;
    let foreign = app.send(Method::POST, "/api/v1/accounts", &theirs, Some(&json!({"name": "Theirs"})), &[]).await;
    let body = json!({
        "accountId": foreign.body["data"]["id"],
        "name": "",
        "stage": "CLOSED",
        "amount": -1,
        "currency": "DOLLARS",
        "expectedCloseDate": "next week",
        "outcomeReason": "n/a"
    });
    let answer = app.send(Method::POST, "/api/v1/deals", &app.admin_key, Some(&body), &[]).await;
    assert_eq!(
        failing_fields(&answer),
        ["name", "stage", "amount", "currency", "expectedCloseDate", "outcomeReason", "accountId"]
    );
    let answer = app.send(Method::POST, "/api/v1/deals", &app.admin_key, Some(&json!({"stage": "DISCOVERY"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["accountId", "name", "amount"]);
    let answer = app.send(Method::POST, "/api/v1/deals", &app.admin_key, Some(&json!({"amount": "lots"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["amount"], "a value of the wrong JSON type is a 422 naming it");
    let acme = account(app, "Acme").await;
    let d = deal(app, &acme, "D").await;
    let answer = patch_deal(app, &app.admin_key, d["id"].as_str().expect("id"), json!({"probability": 50})).await;
    assert_eq!(failing_fields(&answer), ["probability"]);
}

async fn every_deals_endpoint_requires_its_scope(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let d = deal(app, &acme, "Scoped").await;
    let one = format!("/api/v1/deals/{}", d["id"].as_str().expect("id"));
    let new = json!({"accountId": acme, "name": "N", "amount": 1});
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
            case(Method::GET, "/api/v1/deals", None, "deals:read", "accounts:write contacts:write"),
            case(Method::GET, &one, None, "deals:read", "accounts:write contacts:write"),
            case(Method::POST, "/api/v1/deals", Some(new), "deals:write", "deals:read accounts:write"),
            case(Method::PATCH, &one, Some(json!({"stage": "PROPOSAL"})), "deals:write", "deals:read admin:read"),
        ],
    )
    .await;
}

async fn deals_of_other_orgs_and_environments_are_404(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let d = deal(app, &acme, "Ours").await;
    let path = format!("/api/v1/deals/{}", d["id"].as_str().expect("id"));
    for key in [other_org_key(app, "deals:write").await, test_env_key(app, "deals:write").await] {
        for (method, body) in [(Method::GET, None), (Method::PATCH, Some(json!({"stage": "WON"})))] {
            let answer = app.send(method.clone(), &path, &key, body.as_ref(), &[]).await;
            assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("not_found")), "{method}");
        }
        let (_, list) = app.get_key("/api/v1/deals", &key).await;
        assert!(ids(&list).is_empty());
        let mine = json!({"accountId": acme, "name": "Sneaky", "amount": 1});
        let answer = app.send(Method::POST, "/api/v1/deals", &key, Some(&mine), &[]).await;
        assert_eq!(failing_fields(&answer), ["accountId"], "another partition's account does not exist for them");
    }
    let (_, ours) = app.get_key(&path, &app.admin_key).await;
    assert_eq!(ours["data"]["stage"], "DISCOVERY");
}

async fn deal_pages_are_stable_and_updates_are_guarded(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let mut before = HashSet::new();
    for i in 0..12 {
        before.insert(deal(app, &acme, &format!("D{i}")).await["id"].as_str().expect("id").to_owned());
    }
    let (http, url, key, account_id) = (app.http.clone(), app.url("/api/v1/deals"), app.admin_key.clone(), acme.clone());
    let writer = tokio::spawn(async move {
        for i in 0..8 {
            let body = json!({"accountId": account_id, "name": format!("Late {i}"), "amount": 1});
            let response = http.post(&url).header("X-API-Key", &key).json(&body).send().await.expect("insert");
            assert_eq!(response.status(), 201);
        }
    });
    let seen = walk(app, &app.admin_key, &format!("/api/v1/deals?accountId={acme}"), 5, Duration::from_millis(10)).await;
    writer.await.expect("writer");
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len());
    assert!(before.is_subset(&unique));

    let path = format!("/api/v1/deals/{}", seen[0]);
    let v1 = app.send(Method::GET, &path, &app.admin_key, None, &[]).await.header("etag").expect("etag");
    let ok = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"stage": "ASSESSMENT"})), &[("If-Match", &v1)]).await;
    assert_eq!(ok.status, 200);
    let stale = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"stage": "WON"})), &[("If-Match", &v1)]).await;
    assert_eq!((stale.status, stale.body["error"]["code"].as_str()), (412, Some("precondition_failed")));
    let (_, got) = app.get_key(&path, &app.admin_key).await;
    assert_eq!(got["data"]["stage"], "ASSESSMENT", "the refused change left no trace");
    assert_eq!(got["data"]["stageHistory"].as_array().map(Vec::len), Some(2));
}

both_backends!(
    deal_moves_through_stages_and_keeps_its_history,
    deals_can_be_created_closed_and_filtered,
    deal_validation_reports_every_failing_field,
    every_deals_endpoint_requires_its_scope,
    deals_of_other_orgs_and_environments_are_404,
    deal_pages_are_stable_and_updates_are_guarded,
);
