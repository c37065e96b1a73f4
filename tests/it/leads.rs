//! Leads: ICP scores, filters, validation, scopes, isolation, paging and ETags.

use std::time::Duration;

use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;

async fn lead(app: &TestApp, body: Value) -> Value {
    create(app, "/api/v1/leads", body).await
}

async fn patch_lead(app: &TestApp, key: &str, id: &str, body: Value) -> Answer {
    app.send(Method::PATCH, &format!("/api/v1/leads/{id}"), key, Some(&body), &[]).await
}

/// Ids in a fixed order: records created within one millisecond list in id order.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn lead_score_follows_its_fields_on_every_change(app: &mut TestApp) {
    let body = json!({
        "companyName": "Northwind Dental",
        "domain": "NorthwindDental.com",
        "industry": "HEALTHCARE",
        "employeeCount": 85,
        "seatEstimate": 60,
        "source": "REFERRAL",
        "contactName": "Dana Whitfield",
        "contactEmail": "Dana@NorthwindDental.com"
    });
    let created = lead(app, body).await;
    assert!(id(&created).starts_with("lead_"));
    assert_eq!((created["status"].as_str(), created["icpScore"].as_i64()), (Some("NEW"), Some(100)));
    assert_eq!(created["icpBreakdown"], json!({"industry": 30, "companySize": 25, "seatEstimate": 25, "source": 15, "contact": 5}));
    assert_eq!((created["domain"].as_str(), created["contactEmail"].as_str()), (Some("northwinddental.com"), Some("dana@northwinddental.com")));

    let path = format!("/api/v1/leads/{}", id(&created));
    let changed = patch_lead(app, &app.admin_key, &id(&created), json!({"industry": "TECHNOLOGY", "employeeCount": 5000, "contactEmail": null, "status": "CONTACTED"})).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let data = &changed.body["data"];
    assert_eq!(data["icpBreakdown"], json!({"industry": 5, "companySize": 5, "seatEstimate": 25, "source": 15, "contact": 2}));
    assert_eq!((data["icpScore"].as_i64(), data["status"].as_str()), (Some(52), Some("CONTACTED")));
    let (status, got) = app.get_key(&path, &app.admin_key).await;
    assert_eq!((status, got["data"]["icpScore"].as_i64()), (200, Some(52)), "the new score is stored");

    let bare = lead(app, json!({"companyName": "Unknown Co"})).await;
    assert_eq!(bare["icpScore"], 0);
    assert_eq!((&bare["industry"], &bare["source"], &bare["employeeCount"]), (&Value::Null, &Value::Null, &Value::Null));
    let score = patch_lead(app, &app.admin_key, &id(&bare), json!({"icpScore": 99})).await;
    assert_eq!(failing_fields(&score), ["icpScore"], "the score is computed, never sent");
}

async fn leads_filter_by_status_and_min_score(app: &mut TestApp) {
    let high = lead(app, json!({"companyName": "High", "industry": "LEGAL", "employeeCount": 60, "seatEstimate": 70, "source": "PARTNER"})).await;
    let mid = lead(app, json!({"companyName": "Mid", "industry": "RETAIL", "employeeCount": 20, "status": "QUALIFIED"})).await;
    let low = lead(app, json!({"companyName": "Low", "source": "OUTBOUND", "status": "QUALIFIED"})).await;
    assert_eq!((high["icpScore"].as_i64(), mid["icpScore"].as_i64(), low["icpScore"].as_i64()), (Some(92), Some(25), Some(5)));
    let key = &app.admin_key;
    let (_, qualified) = app.get_key("/api/v1/leads?status=QUALIFIED", key).await;
    assert_eq!(sorted(ids(&qualified)), sorted(vec![id(&mid), id(&low)]));
    let (_, above) = app.get_key("/api/v1/leads?minScore=25", key).await;
    assert_eq!(sorted(ids(&above)), sorted(vec![id(&high), id(&mid)]), "minScore is inclusive");
    let (_, both) = app.get_key("/api/v1/leads?minScore=10&status=QUALIFIED", key).await;
    assert_eq!(sorted(ids(&both)), sorted(vec![id(&mid)]));
    assert_eq!(both["data"][0]["icpBreakdown"]["industry"], 10, "lists carry the breakdown");
    for bad in ["minScore=101", "minScore=-1"] {
        let answer = app.send(Method::GET, &format!("/api/v1/leads?{bad}"), key, None, &[]).await;
        assert_eq!(failing_fields(&answer), ["minScore"]);
    }
    let (status, _) = app.get_key("/api/v1/leads?status=WON", key).await;
    assert_eq!(status, 400);
}

async fn lead_validation_reports_every_failing_field(app: &mut TestApp) {
    let body = json!({
        "companyName": " ",
        "domain": "https://acme.com/x",
        "industry": "FARMING",
        "employeeCount": -3,
        "seatEstimate": 20_000_000,
        "source": "COLD_CALL",
        "status": "WON",
        "contactEmail": "not-an-email"
    });
    let answer = app.send(Method::POST, "/api/v1/leads", &app.admin_key, Some(&body), &[]).await;
    assert_eq!(
        failing_fields(&answer),
        ["companyName", "domain", "industry", "employeeCount", "seatEstimate", "source", "status", "contactEmail"]
    );
    let answer = app.send(Method::POST, "/api/v1/leads", &app.admin_key, Some(&json!({"industry": "LEGAL"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["companyName"]);
    let answer = app.send(Method::POST, "/api/v1/leads", &app.admin_key, Some(&json!({"companyName": "A", "budget": 5})), &[]).await;
    assert_eq!(failing_fields(&answer), ["budget"]);
    // An enumerated field takes one of its values or null, not an empty text.
    let answer = app.send(Method::POST, "/api/v1/leads", &app.admin_key, Some(&json!({"companyName": "A", "industry": "", "source": " "})), &[]).await;
    assert_eq!(failing_fields(&answer), ["industry", "source"]);
    let l = lead(app, json!({"companyName": "Acme"})).await;
    let answer = patch_lead(app, &app.admin_key, &id(&l), json!({"companyName": null, "status": null})).await;
    assert_eq!(failing_fields(&answer), ["companyName", "status"]);
}

async fn every_leads_endpoint_requires_its_scope(app: &mut TestApp) {
    let l = lead(app, json!({"companyName": "Scoped"})).await;
    let one = format!("/api/v1/leads/{}", id(&l));
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
            case(Method::GET, "/api/v1/leads", None, "leads:read", "deals:write accounts:write"),
            case(Method::GET, &one, None, "leads:read", "deals:write accounts:write"),
            case(Method::POST, "/api/v1/leads", Some(json!({"companyName": "N"})), "leads:write", "leads:read deals:write"),
            case(Method::PATCH, &one, Some(json!({"status": "CONTACTED"})), "leads:write", "leads:read admin:read"),
        ],
    )
    .await;
}

async fn leads_of_other_orgs_and_environments_are_404(app: &mut TestApp) {
    let l = lead(app, json!({"companyName": "Ours"})).await;
    let path = format!("/api/v1/leads/{}", id(&l));
    for key in [other_org_key(app, "leads:write").await, test_env_key(app, "leads:write").await] {
        for (method, body) in [(Method::GET, None), (Method::PATCH, Some(json!({"status": "CONVERTED"})))] {
            let answer = app.send(method.clone(), &path, &key, body.as_ref(), &[]).await;
            assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("not_found")), "{method}");
        }
        let (_, list) = app.get_key("/api/v1/leads", &key).await;
        assert!(ids(&list).is_empty());
    }
    let (_, ours) = app.get_key(&path, &app.admin_key).await;
    assert_eq!(ours["data"]["status"], "NEW");
}

async fn lead_pages_follow_cursors_and_updates_are_guarded(app: &mut TestApp) {
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(id(&lead(app, json!({"companyName": format!("L{i}")})).await));
    }
    let seen = walk(app, &app.admin_key, "/api/v1/leads", 3, Duration::ZERO).await;
    assert_eq!(sorted(seen), sorted(made.clone()));

    let path = format!("/api/v1/leads/{}", made[0]);
    let since = app.send(Method::GET, &path, &app.admin_key, None, &[]).await;
    let v1 = since.header("etag").expect("etag");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let ok = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"source": "EVENT"})), &[("If-Match", &v1)]).await;
    assert_eq!((ok.status, ok.body["data"]["icpScore"].as_i64()), (200, Some(8)));
    assert_ne!(ok.header("etag"), Some(v1.clone()));
    let stale = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"source": "REFERRAL"})), &[("If-Match", &v1)]).await;
    assert_eq!((stale.status, stale.body["error"]["code"].as_str()), (412, Some("precondition_failed")));
    let updated_at = ok.body["data"]["updatedAt"].as_str().expect("updatedAt").to_owned();
    let (_, changed) = app.get_key(&format!("/api/v1/leads?updatedSince={updated_at}"), &app.admin_key).await;
    assert_eq!(ids(&changed), [made[0].clone()]);
}

both_backends!(
    lead_score_follows_its_fields_on_every_change,
    leads_filter_by_status_and_min_score,
    lead_validation_reports_every_failing_field,
    every_leads_endpoint_requires_its_scope,
    leads_of_other_orgs_and_environments_are_404,
    lead_pages_follow_cursors_and_updates_are_guarded,
);
