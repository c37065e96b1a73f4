//! Health scores: weighted signals, breakdown, daily history, trend, events.

use breadbox_api::domain::health::{day_of, DAY_MS};
use breadbox_auth::db::now_ms;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;

/// The `data` of the test organization's outbox events of `kind`, oldest first.
pub async fn events(app: &TestApp, kind: &str) -> Vec<Value> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT data FROM events WHERE org_id = $1 AND type = $2 ORDER BY created_at, id")
        .bind(&app.org_id)
        .bind(kind)
        .fetch_all(app.service.db().pool())
        .await
        .expect("events");
    rows.into_iter().map(|(data,)| serde_json::from_str(&data).expect("event data is JSON")).collect()
}

fn signal(source: &str, name: &str, value: f64, weight: f64, observed_ago_ms: i64) -> Value {
    let at = breadbox_api::time::rfc3339(now_ms() - observed_ago_ms);
    json!({"source": source, "name": name, "value": value, "weight": weight, "observedAt": at})
}

async fn post_signal(app: &TestApp, account_id: &str, body: Value) -> Answer {
    let path = format!("/api/v1/health-scores/{account_id}/signals");
    app.send(Method::POST, &path, &app.admin_key, Some(&body), &[]).await
}

async fn push(app: &TestApp, account_id: &str, body: Value) -> Value {
    let answer = post_signal(app, account_id, body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["data"].clone()
}

async fn score_of(app: &TestApp, account_id: &str) -> Value {
    let (status, body) = app.get_key(&format!("/api/v1/health-scores/{account_id}"), &app.admin_key).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

fn breakdown(data: &Value) -> Vec<(String, f64, f64)> {
    data["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .map(|s| {
            let name = format!("{}/{}", s["source"].as_str().expect("source"), s["name"].as_str().expect("name"));
            (name, s["value"].as_f64().expect("value"), s["contribution"].as_f64().expect("contribution"))
        })
        .collect()
}

async fn score_is_the_weighted_mean_of_the_latest_signals(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let fresh = score_of(app, &acme).await;
    assert_eq!((&fresh["accountName"], &fresh["score"], &fresh["band"]), (&json!("Acme"), &Value::Null, &Value::Null));
    assert_eq!((&fresh["trend"], &fresh["computedAt"]), (&Value::Null, &Value::Null));
    assert_eq!(fresh["signals"], json!([]));
    let history = fresh["history"].as_array().expect("history");
    assert_eq!(history.len(), 90);
    assert!(history.iter().all(|p| p["score"].is_null()));

    let first = push(app, &acme, signal("psa", "tickets", 80.0, 2.0, 60_000)).await;
    assert_eq!((first["score"].as_i64(), first["band"].as_str()), (Some(80), Some("HEALTHY")));
    assert!(first.get("history").is_none(), "a push answers without the history");
    let second = push(app, &acme, signal("survey", "nps", 50.0, 1.0, 60_000)).await;
    assert_eq!((second["score"].as_i64(), second["band"].as_str()), (Some(70), Some("HEALTHY")));
    assert_eq!(breakdown(&second), [(String::from("psa/tickets"), 80.0, 53.33), (String::from("survey/nps"), 50.0, 16.67)]);

    let worse = push(app, &acme, signal("psa", "tickets", 20.0, 2.0, 1_000)).await;
    assert_eq!((worse["score"].as_i64(), worse["band"].as_str()), (Some(30), Some("CRITICAL")));
    let late = push(app, &acme, signal("psa", "tickets", 100.0, 2.0, 3_600_000)).await;
    assert_eq!(late["score"].as_i64(), Some(30), "an observation older than the stored one is ignored");
    assert_eq!(breakdown(&late)[0].1, 20.0);
    let middling = push(app, &acme, signal("survey", "nps", 95.0, 1.0, 0)).await;
    assert_eq!((middling["score"].as_i64(), middling["band"].as_str()), (Some(45), Some("AT_RISK")));

    let detail = score_of(app, &acme).await;
    assert_eq!(detail["score"].as_i64(), Some(45));
    assert!(detail["computedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let history = detail["history"].as_array().expect("history");
    let today = breadbox_api::time::rfc3339(now_ms())[..10].to_owned();
    assert_eq!((history[89]["date"].as_str(), history[89]["score"].as_i64()), (Some(today.as_str()), Some(45)));
    assert!(history[..89].iter().all(|p| p["score"].is_null()), "no score before the first signal");
    assert_eq!(detail["trend"], Value::Null, "no score 30 days ago");
}

async fn score_changes_and_alerts_are_events(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    push(app, &acme, signal("psa", "tickets", 80.0, 1.0, 60_000)).await;
    push(app, &acme, signal("psa", "tickets", 80.0, 1.0, 30_000)).await;
    push(app, &acme, signal("psa", "tickets", 35.0, 1.0, 20_000)).await;
    push(app, &acme, signal("psa", "tickets", 20.0, 1.0, 10_000)).await;
    push(app, &acme, signal("psa", "tickets", 90.0, 1.0, 0)).await;
    let changed = events(app, "health_score.changed").await;
    let steps: Vec<(Option<i64>, Option<i64>)> = changed.iter().map(|e| (e["previousScore"].as_i64(), e["score"].as_i64())).collect();
    assert_eq!(steps, [(None, Some(80)), (Some(80), Some(35)), (Some(35), Some(20)), (Some(20), Some(90))], "no event without a change");
    let alerts = events(app, "health_score.alert").await;
    assert_eq!(alerts.len(), 1, "only entering CRITICAL alerts: {alerts:?}");
    assert_eq!((alerts[0]["accountId"].as_str(), alerts[0]["band"].as_str()), (Some(acme.as_str()), Some("CRITICAL")));

    let globex = account(app, "Globex").await;
    push(app, &globex, signal("rmm", "patching", 10.0, 1.0, 0)).await;
    assert_eq!(events(app, "health_score.alert").await.len(), 2, "a first score that is critical alerts");
}

/// Stores a past day's score as the server would have on that day.
async fn seed_day(app: &TestApp, account_id: &str, days_ago: i64, score: i64) {
    let day = day_of(now_ms()) - days_ago * DAY_MS;
    sqlx::query("INSERT INTO health_score_days (account_id, day, org_id, env, score, updated_at) VALUES ($1, $2, $3, 'live', $4, $2)")
        .bind(account_id)
        .bind(day)
        .bind(&app.org_id)
        .bind(score)
        .execute(app.service.db().pool())
        .await
        .expect("seed day");
}

async fn history_carries_scores_forward_and_trend_compares_with_30_days_ago(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    seed_day(app, &acme, 120, 90).await;
    seed_day(app, &acme, 40, 50).await;
    seed_day(app, &acme, 10, 60).await;
    push(app, &acme, signal("psa", "tickets", 80.0, 1.0, 0)).await;
    let detail = score_of(app, &acme).await;
    let scores: Vec<Option<i64>> = detail["history"].as_array().expect("history").iter().map(|p| p["score"].as_i64()).collect();
    let mut expected = vec![Some(90); 49];
    expected.extend(vec![Some(50); 30]);
    expected.extend(vec![Some(60); 10]);
    expected.push(Some(80));
    assert_eq!(scores, expected);
    assert_eq!((detail["trend"].as_str(), detail["scoreChange30d"].as_i64()), (Some("UP"), Some(30)));

    let globex = account(app, "Globex").await;
    seed_day(app, &globex, 31, 75).await;
    push(app, &globex, signal("psa", "tickets", 45.0, 1.0, 0)).await;
    let initech = account(app, "Initech").await;
    let (_, list) = app.get_key("/api/v1/health-scores", &app.admin_key).await;
    // Account id, score, band and trend of each row.
    type Row<'a> = (&'a str, Option<i64>, Option<&'a str>, Option<&'a str>);
    let rows: Vec<Row> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| (r["accountId"].as_str().expect("id"), r["score"].as_i64(), r["band"].as_str(), r["trend"].as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (acme.as_str(), Some(80), Some("HEALTHY"), Some("UP")),
            (globex.as_str(), Some(45), Some("AT_RISK"), Some("DOWN")),
            (initech.as_str(), None, None, None),
        ]
    );
    assert!(list["data"][0].get("history").is_none() && list["data"][0].get("signals").is_none());
}

async fn health_lists_filter_by_band_and_page(app: &mut TestApp) {
    let mut accounts = Vec::new();
    for (i, value) in [90.0, 20.0, 55.0, 10.0, 75.0].into_iter().enumerate() {
        let id = account(app, &format!("A{i}")).await;
        push(app, &id, signal("psa", "tickets", value, 1.0, 0)).await;
        accounts.push(id);
    }
    let key = &app.admin_key;
    let account_ids = |body: &Value| -> Vec<String> {
        body["data"].as_array().expect("data").iter().map(|r| r["accountId"].as_str().expect("id").to_owned()).collect()
    };
    let (_, critical) = app.get_key("/api/v1/health-scores?band=CRITICAL", key).await;
    assert_eq!(account_ids(&critical), [accounts[1].clone(), accounts[3].clone()]);
    let (_, healthy) = app.get_key("/api/v1/health-scores?band=HEALTHY", key).await;
    assert_eq!(account_ids(&healthy), [accounts[0].clone(), accounts[4].clone()]);
    let (status, _) = app.get_key("/api/v1/health-scores?band=FINE", key).await;
    assert_eq!(status, 400);

    let (_, first) = app.get_key("/api/v1/health-scores?limit=3", key).await;
    assert_eq!((account_ids(&first), &first["pagination"]["hasMore"]), (accounts[..3].to_vec(), &json!(true)));
    let cursor = first["pagination"]["nextCursor"].as_str().expect("cursor");
    let (_, second) = app.get_key(&format!("/api/v1/health-scores?limit=3&cursor={cursor}"), key).await;
    assert_eq!((account_ids(&second), &second["pagination"]["hasMore"]), (accounts[3..].to_vec(), &json!(false)));
    let (status, _) = app.get_key(&format!("/api/v1/deals?cursor={cursor}"), key).await;
    assert_eq!(status, 400, "a cursor of one list is refused by another");
    let answer = app.send(Method::GET, "/api/v1/health-scores?limit=101", key, None, &[]).await;
    assert_eq!(failing_fields(&answer), ["limit"]);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let since = breadbox_api::time::rfc3339(now_ms());
    push(app, &accounts[2], signal("psa", "tickets", 60.0, 1.0, 0)).await;
    let (_, changed) = app.get_key(&format!("/api/v1/health-scores?updatedSince={since}"), key).await;
    assert_eq!(account_ids(&changed), [accounts[2].clone()]);
}

async fn signal_validation_reports_every_failing_field(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let send = |body: Value| post_signal(app, &acme, body);
    let bad = json!({"source": "", "name": "bad name!", "value": 100.5, "weight": 0, "observedAt": "yesterday"});
    assert_eq!(failing_fields(&send(bad).await), ["source", "name", "value", "weight", "observedAt"]);
    assert_eq!(failing_fields(&send(json!({})).await), ["source", "name", "value", "weight", "observedAt"]);
    let future = signal("psa", "tickets", 50.0, 10.5, -3_600_000);
    assert_eq!(failing_fields(&send(future).await), ["weight", "observedAt"]);
    let mut extra = signal("psa", "tickets", 50.0, 1.0, 0);
    extra["mood"] = json!("good");
    assert_eq!(failing_fields(&send(extra).await), ["mood"]);
    let skewed = signal("psa", "tickets", 0.0, 10.0, -60_000);
    assert_eq!(send(skewed).await.status, 200, "a minute of clock skew is fine, and so are 0 and 10");
    assert_eq!(events(app, "health_score.changed").await.len(), 1, "refused signals change nothing");
}

async fn every_health_endpoint_requires_its_scope(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let one = format!("/api/v1/health-scores/{acme}");
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
            case(Method::GET, "/api/v1/health-scores", None, "health:read", "accounts:write touchpoints:write"),
            case(Method::GET, &one, None, "health:read", "accounts:write touchpoints:write"),
            case(Method::POST, &format!("{one}/signals"), Some(signal("psa", "t", 50.0, 1.0, 0)), "health:write", "health:read accounts:write"),
        ],
    )
    .await;
}

async fn health_of_other_orgs_and_environments_is_404(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    push(app, &acme, signal("psa", "tickets", 50.0, 1.0, 0)).await;
    for key in [other_org_key(app, "health:write").await, test_env_key(app, "health:write").await] {
        let get = app.send(Method::GET, &format!("/api/v1/health-scores/{acme}"), &key, None, &[]).await;
        assert_eq!((get.status, get.body["error"]["code"].as_str()), (404, Some("not_found")));
        let path = format!("/api/v1/health-scores/{acme}/signals");
        let post = app.send(Method::POST, &path, &key, Some(&signal("psa", "tickets", 0.0, 1.0, 0)), &[]).await;
        assert_eq!((post.status, post.body["error"]["code"].as_str()), (404, Some("not_found")));
        let (_, list) = app.get_key("/api/v1/health-scores", &key).await;
        assert_eq!(list["data"], json!([]));
    }
    assert_eq!(score_of(app, &acme).await["score"].as_i64(), Some(50), "their pushes changed nothing");
    let missing = app.send(Method::GET, "/api/v1/health-scores/acc_nope", &app.admin_key, None, &[]).await;
    assert_eq!(missing.status, 404);
}

both_backends!(
    score_is_the_weighted_mean_of_the_latest_signals,
    score_changes_and_alerts_are_events,
    history_carries_scores_forward_and_trend_compares_with_30_days_ago,
    health_lists_filter_by_band_and_page,
    signal_validation_reports_every_failing_field,
    every_health_endpoint_requires_its_scope,
    health_of_other_orgs_and_environments_is_404,
);
