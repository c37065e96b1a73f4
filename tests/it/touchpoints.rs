//! Touchpoints: logging from external tools, QBR records, deduplication, lists.

use std::collections::HashSet;
use std::time::Duration;

use breadbox_auth::db::now_ms;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;
use crate::health::events;

fn at(ago_ms: i64) -> String {
    breadbox_api::time::rfc3339(now_ms() - ago_ms)
}

fn call(account_id: &str, subject: &str) -> Value {
    json!({"accountId": account_id, "type": "CALL", "occurredAt": at(3_600_000), "subject": subject})
}

async fn log(app: &TestApp, body: Value) -> Answer {
    app.send(Method::POST, "/api/v1/touchpoints", &app.admin_key, Some(&body), &[]).await
}

async fn touchpoints_are_logged_read_and_announced(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let jane = create(app, "/api/v1/contacts", json!({"firstName": "Jane", "lastName": "Doe"})).await;
    let jane = jane["id"].as_str().expect("id").to_owned();
    let occurred = at(86_400_000);
    let qbr = json!({
        "accountId": acme, "contactId": jane, "type": "QBR", "occurredAt": occurred,
        "subject": "Q2 review", "summary": "SLA and roadmap", "agenda": "SLA; backups", "outcome": "MDR pilot",
        "source": "halopsa", "externalId": "appt-1"
    });
    let created = create(app, "/api/v1/touchpoints", qbr).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("tp_"));
    assert_eq!((created["type"].as_str(), created["contactId"].as_str()), (Some("QBR"), Some(jane.as_str())));
    assert_eq!((created["agenda"].as_str(), created["outcome"].as_str()), (Some("SLA; backups"), Some("MDR pilot")));
    assert_eq!(created["occurredAt"].as_str().map(|t| &t[..19]), Some(&occurred[..19]));

    let (status, got) = app.get_key(&format!("/api/v1/touchpoints/{id}"), &app.admin_key).await;
    assert_eq!(status, 200);
    assert_eq!(got["data"], created);
    let announced = events(app, "touchpoint.created").await;
    assert_eq!(announced, std::slice::from_ref(&created), "the event carries the touchpoint as the API shows it");

    let plain = create(app, "/api/v1/touchpoints", call(&acme, "Follow-up")).await;
    assert_eq!((&plain["contactId"], &plain["agenda"], &plain["source"]), (&Value::Null, &Value::Null, &Value::Null));
    let globex = account(app, "Globex").await;
    let other = create(app, "/api/v1/touchpoints", call(&globex, "Intro")).await;
    let idof = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let key = &app.admin_key;
    let (_, of_acme) = app.get_key(&format!("/api/v1/touchpoints?accountId={acme}"), key).await;
    assert_eq!(ids(&of_acme), [idof(&created), idof(&plain)]);
    let (_, calls) = app.get_key("/api/v1/touchpoints?type=CALL", key).await;
    assert_eq!(ids(&calls), [idof(&plain), idof(&other)]);
    let (_, qbrs_of_globex) = app.get_key(&format!("/api/v1/touchpoints?type=QBR&accountId={globex}"), key).await;
    assert!(ids(&qbrs_of_globex).is_empty());
    let (status, _) = app.get_key("/api/v1/touchpoints?type=LUNCH", key).await;
    assert_eq!(status, 400);
}

async fn the_same_external_touchpoint_is_logged_once(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let mut body = call(&acme, "Ticket 881 call");
    body["source"] = json!("halopsa");
    body["externalId"] = json!("call-881");
    let first = log(app, body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let mut again = body.clone();
    again["subject"] = json!("Resent with another subject");
    let second = log(app, again).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["data"], first.body["data"], "the first one stays");
    assert_eq!(second.header("location"), first.header("location"));
    let mut elsewhere = body.clone();
    elsewhere["source"] = json!("connectwise");
    assert_eq!(log(app, elsewhere).await.status, 201, "external ids are unique per source");
    assert_eq!(events(app, "touchpoint.created").await.len(), 2);

    let (http, url, key) = (app.http.clone(), app.url("/api/v1/touchpoints"), app.admin_key.clone());
    let mut racers = Vec::new();
    for _ in 0..4 {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        let mut body = body.clone();
        body["externalId"] = json!("call-race");
        racers.push(tokio::spawn(async move {
            let response = http.post(&url).header("X-API-Key", &key).json(&body).send().await.expect("post");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (status, body["data"]["id"].as_str().expect("id").to_owned())
        }));
    }
    let mut results = Vec::new();
    for racer in racers {
        results.push(racer.await.expect("racer"));
    }
    let ids: HashSet<_> = results.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids.len(), 1, "concurrent duplicates agree on one touchpoint: {results:?}");
    assert_eq!(results.iter().filter(|(status, _)| *status == 201).count(), 1);
}

async fn touchpoint_validation_reports_every_failing_field(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let missing = log(app, json!({})).await;
    assert_eq!(failing_fields(&missing), ["accountId", "type", "occurredAt", "subject"]);
    let bad = json!({
        "accountId": acme, "type": "LUNCH", "occurredAt": "last tuesday", "subject": "",
        "externalId": "x-1", "agenda": "n/a"
    });
    assert_eq!(failing_fields(&log(app, bad).await), ["type", "occurredAt", "subject", "externalId"]);
    let qbr = json!({"accountId": acme, "type": "QBR", "occurredAt": at(0), "subject": "Q3 review"});
    assert_eq!(failing_fields(&log(app, qbr).await), ["agenda", "outcome"]);
    let mut with_agenda = call(&acme, "Call");
    with_agenda["agenda"] = json!("Things");
    assert_eq!(failing_fields(&log(app, with_agenda).await), ["agenda"]);
    let mut future = call(&acme, "Call");
    future["occurredAt"] = json!(at(-3_600_000));
    assert_eq!(failing_fields(&log(app, future).await), ["occurredAt"]);

    let theirs = other_org_key(app, "accounts:write contacts:write").await;
    let foreign = app.send(Method::POST, "/api/v1/accounts", &theirs, Some(&json!({"name": "Theirs"})), &[]).await;
    let contact = json!({"firstName": "Joe", "lastName": "Theirs"});
    let their_contact = app.send(Method::POST, "/api/v1/contacts", &theirs, Some(&contact), &[]).await;
    let mut foreign_refs = call(foreign.body["data"]["id"].as_str().expect("id"), "Call");
    foreign_refs["contactId"] = their_contact.body["data"]["id"].clone();
    assert_eq!(failing_fields(&log(app, foreign_refs).await), ["accountId", "contactId"]);
    let mut extra = call(&acme, "Call");
    extra["durationMinutes"] = json!(30);
    assert_eq!(failing_fields(&log(app, extra).await), ["durationMinutes"]);
    assert!(events(app, "touchpoint.created").await.is_empty(), "refused touchpoints leave no event");
}

async fn every_touchpoints_endpoint_requires_its_scope(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let one = create(app, "/api/v1/touchpoints", call(&acme, "Scoped")).await;
    let path = format!("/api/v1/touchpoints/{}", one["id"].as_str().expect("id"));
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
            case(Method::GET, "/api/v1/touchpoints", None, "touchpoints:read", "accounts:write health:write"),
            case(Method::GET, &path, None, "touchpoints:read", "accounts:write health:write"),
            case(Method::POST, "/api/v1/touchpoints", Some(call(&acme, "N")), "touchpoints:write", "touchpoints:read accounts:write"),
        ],
    )
    .await;
}

async fn touchpoints_of_other_orgs_and_environments_are_404(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let ours = create(app, "/api/v1/touchpoints", call(&acme, "Ours")).await;
    let path = format!("/api/v1/touchpoints/{}", ours["id"].as_str().expect("id"));
    for key in [other_org_key(app, "touchpoints:write").await, test_env_key(app, "touchpoints:write").await] {
        let answer = app.send(Method::GET, &path, &key, None, &[]).await;
        assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("not_found")));
        let (_, list) = app.get_key("/api/v1/touchpoints", &key).await;
        assert!(ids(&list).is_empty());
        let sneaky = app.send(Method::POST, "/api/v1/touchpoints", &key, Some(&call(&acme, "Sneaky")), &[]).await;
        assert_eq!(failing_fields(&sneaky), ["accountId"], "another partition's account does not exist for them");
    }
}

async fn touchpoint_pages_are_stable_and_follow_updated_since(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let mut before = HashSet::new();
    for i in 0..7 {
        before.insert(create(app, "/api/v1/touchpoints", call(&acme, &format!("T{i}"))).await["id"].as_str().expect("id").to_owned());
    }
    let seen = walk(app, &app.admin_key, "/api/v1/touchpoints", 3, Duration::ZERO).await;
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), before);
    assert_eq!(seen.len(), 7);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let since = at(0);
    let late = create(app, "/api/v1/touchpoints", call(&acme, "Late")).await;
    let (_, fresh) = app.get_key(&format!("/api/v1/touchpoints?updatedSince={since}"), &app.admin_key).await;
    assert_eq!(ids(&fresh), [late["id"].as_str().expect("id")]);
}

both_backends!(
    touchpoints_are_logged_read_and_announced,
    the_same_external_touchpoint_is_logged_once,
    touchpoint_validation_reports_every_failing_field,
    every_touchpoints_endpoint_requires_its_scope,
    touchpoints_of_other_orgs_and_environments_are_404,
    touchpoint_pages_are_stable_and_follow_updated_since,
);
