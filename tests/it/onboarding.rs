//! Onboarding: projects with milestones, created by operators, progressed by completing
//! milestones.

use std::time::Duration;

use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;

const ADMIN_PROJECTS: &str = "/api/v1/admin/onboarding-projects";

/// Creates a project of `account_id` with milestones named `names` (the first due in
/// the past), checking the 201's `Location`.
pub async fn project(app: &TestApp, account_id: &str, names: &[&str]) -> Value {
    let milestones: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| if i == 0 { json!({"name": n, "dueDate": "2020-01-31"}) } else { json!({"name": n, "dueDate": "2999-12-31"}) })
        .collect();
    let body = json!({"accountId": account_id, "name": "Go-live", "startDate": "2020-01-01", "targetDate": "2999-12-31", "milestones": milestones});
    let answer = app.send(Method::POST, ADMIN_PROJECTS, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let data = answer.body["data"].clone();
    assert_eq!(answer.header("location"), Some(format!("/api/v1/onboarding/projects/{}", data["id"].as_str().expect("id"))));
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

fn milestone_ids(project: &Value) -> Vec<String> {
    project["milestones"].as_array().expect("milestones").iter().map(id).collect()
}

async fn complete(app: &TestApp, key: &str, project_id: &str, milestone_id: &str) -> Answer {
    let path = format!("{ADMIN_PROJECTS}/{project_id}/milestones/{milestone_id}/complete");
    app.send(Method::POST, &path, key, None, &[]).await
}

async fn completing_milestones_moves_the_project_along(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let created = project(app, &acme, &["Agents deployed", "Backups verified", "Handover"]).await;
    assert!(id(&created).starts_with("onb_"));
    assert_eq!((created["status"].as_str(), created["progressPercent"].as_i64()), (Some("NOT_STARTED"), Some(0)));
    let statuses: Vec<&str> = created["milestones"].as_array().expect("milestones").iter().filter_map(|m| m["status"].as_str()).collect();
    assert_eq!(statuses, ["OVERDUE", "PENDING", "PENDING"]);
    let ms = milestone_ids(&created);
    assert!(ms.iter().all(|m| m.starts_with("ms_")));

    let (key_id, key) = app.key(breadbox_auth::Environment::Live, "admin:write").await;
    let first = complete(app, &key, &id(&created), &ms[0]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let data = &first.body["data"];
    assert_eq!((data["status"].as_str(), data["progressPercent"].as_i64(), data["milestonesCompleted"].as_i64()), (Some("IN_PROGRESS"), Some(33), Some(1)));
    assert_eq!((data["milestones"][0]["status"].as_str(), data["milestones"][0]["completedBy"].as_str()), (Some("COMPLETED"), Some(key_id.as_str())));
    let completed_at = data["milestones"][0]["completedAt"].as_str().expect("completedAt").to_owned();
    let etag = first.header("etag");

    let again = complete(app, &key, &id(&created), &ms[0]).await;
    assert_eq!((again.status, again.body["data"]["milestonesCompleted"].as_i64()), (200, Some(1)), "completing twice counts once");
    assert_eq!(again.body["data"]["milestones"][0]["completedAt"].as_str(), Some(completed_at.as_str()));
    assert_eq!(again.header("etag"), etag, "nothing changed");

    complete(app, &key, &id(&created), &ms[2]).await;
    let last = complete(app, &key, &id(&created), &ms[1]).await;
    assert_eq!((last.body["data"]["status"].as_str(), last.body["data"]["progressPercent"].as_i64()), (Some("COMPLETED"), Some(100)));

    let (status, got) = app.get_key(&format!("/api/v1/onboarding/projects/{}", id(&created)), &app.admin_key).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = got["data"]["milestones"].as_array().expect("milestones").iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["Agents deployed", "Backups verified", "Handover"], "milestones keep their order");

    for (project_id, milestone_id) in [(id(&created), "ms_nope".to_owned()), ("onb_nope".to_owned(), ms[0].clone())] {
        let answer = complete(app, &key, &project_id, &milestone_id).await;
        assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (404, Some("not_found")));
    }
    let other = project(app, &acme, &["Other"]).await;
    let crossed = complete(app, &key, &id(&other), &ms[0]).await;
    assert_eq!(crossed.status, 404, "a milestone of another project");
}

async fn onboarding_projects_list_with_filters_and_progress(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let globex = account(app, "Globex").await;
    let a = project(app, &acme, &["One", "Two"]).await;
    let b = project(app, &globex, &["One"]).await;
    let c = project(app, &acme, &["One", "Two", "Three", "Four"]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let done = complete(app, &app.admin_key, &id(&c), &milestone_ids(&c)[1]).await;
    assert_eq!(done.status, 200);

    let key = &app.admin_key;
    let (_, of_acme) = app.get_key(&format!("/api/v1/onboarding/projects?accountId={acme}"), key).await;
    assert_eq!(sorted(ids(&of_acme)), sorted(vec![id(&a), id(&c)]));
    assert!(of_acme["data"][0].get("milestones").is_none(), "lists leave milestones out");
    let listed = of_acme["data"].as_array().expect("data").iter().find(|p| p["id"] == id(&c).as_str()).expect("c listed");
    assert_eq!((listed["progressPercent"].as_i64(), listed["status"].as_str()), (Some(25), Some("IN_PROGRESS")));
    let (_, not_started) = app.get_key("/api/v1/onboarding/projects?status=NOT_STARTED", key).await;
    assert_eq!(sorted(ids(&not_started)), sorted(vec![id(&a), id(&b)]));
    let since = done.body["data"]["updatedAt"].as_str().expect("updatedAt");
    let (_, changed) = app.get_key(&format!("/api/v1/onboarding/projects?updatedSince={since}"), key).await;
    assert_eq!(sorted(ids(&changed)), sorted(vec![id(&c)]), "completing a milestone updates the project");
    let pages = walk(app, key, "/api/v1/onboarding/projects", 2, Duration::ZERO).await;
    assert_eq!(sorted(pages), sorted(vec![id(&a), id(&b), id(&c)]));
    let (status, _) = app.get_key("/api/v1/onboarding/projects?status=DONE", key).await;
    assert_eq!(status, 400);
}

async fn onboarding_validation_reports_every_failing_field(app: &mut TestApp) {
    let theirs = other_org_key(app, "accounts:write").await;
    let foreign = app.send(Method::POST, "/api/v1/accounts", &theirs, Some(&json!({"name": "Theirs"})), &[]).await;
    let body = json!({
        "accountId": foreign.body["data"]["id"], "name": "", "startDate": "2024-06-10", "targetDate": "2024-06-01",
        "milestones": [{"name": "Fine"}, {"name": " ", "dueDate": "31/12/2024"}, {"dueDate": "2024-07-01"}]
    });
    let answer = app.send(Method::POST, ADMIN_PROJECTS, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(
        failing_fields(&answer),
        ["name", "targetDate", "milestones[1].name", "milestones[1].dueDate", "milestones[2].name", "accountId"]
    );
    let answer = app.send(Method::POST, ADMIN_PROJECTS, &app.admin_key, Some(&json!({"notes": "n"})), &[]).await;
    assert_eq!(failing_fields(&answer), ["accountId", "name", "milestones"]);
    let acme = account(app, "Acme").await;
    let empty = json!({"accountId": acme, "name": "P", "milestones": []});
    let answer = app.send(Method::POST, ADMIN_PROJECTS, &app.admin_key, Some(&empty), &[]).await;
    assert_eq!(failing_fields(&answer), ["milestones"]);
    let extra = json!({"accountId": acme, "name": "P", "milestones": [{"name": "M"}], "status": "COMPLETED"});
    let answer = app.send(Method::POST, ADMIN_PROJECTS, &app.admin_key, Some(&extra), &[]).await;
    assert_eq!(failing_fields(&answer), ["status"]);
}

async fn onboarding_endpoints_require_their_scopes_and_stay_in_their_partition(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let p = project(app, &acme, &["One", "Two"]).await;
    let ms = milestone_ids(&p);
    let one = format!("/api/v1/onboarding/projects/{}", id(&p));
    let completion = format!("{ADMIN_PROJECTS}/{}/milestones/{}/complete", id(&p), ms[0]);
    let new = json!({"accountId": acme, "name": "Second", "milestones": [{"name": "M"}]});
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
            case(Method::GET, "/api/v1/onboarding/projects", None, "onboarding:read", "accounts:write compliance:read"),
            case(Method::GET, &one, None, "onboarding:read", "accounts:write"),
            case(Method::POST, ADMIN_PROJECTS, Some(new), "admin:write", "onboarding:read admin:read accounts:write"),
            case(Method::POST, &completion, None, "admin:write", "onboarding:read admin:read"),
        ],
    )
    .await;

    for key in [other_org_key(app, "admin:write").await, test_env_key(app, "admin:write").await] {
        let (status, _) = app.get_key(&one, &key).await;
        assert_eq!(status, 404);
        let path = format!("{ADMIN_PROJECTS}/{}/milestones/{}/complete", id(&p), ms[1]);
        let answer = app.send(Method::POST, &path, &key, None, &[]).await;
        assert_eq!(answer.status, 404);
        let (_, list) = app.get_key("/api/v1/onboarding/projects", &key).await;
        assert!(ids(&list).is_empty());
        let mine = json!({"accountId": acme, "name": "Sneaky", "milestones": [{"name": "M"}]});
        let answer = app.send(Method::POST, ADMIN_PROJECTS, &key, Some(&mine), &[]).await;
        assert_eq!(failing_fields(&answer), ["accountId"]);
    }
    let (_, ours) = app.get_key(&one, &app.admin_key).await;
    assert_eq!(ours["data"]["milestonesCompleted"], 1, "only the scope matrix's completion counted");
}

async fn concurrent_completions_all_count(app: &mut TestApp) {
    let acme = account(app, "Acme").await;
    let p = project(app, &acme, &["A", "B", "C", "D", "E", "F"]).await;
    let mut calls = Vec::new();
    for m in milestone_ids(&p).into_iter().chain(milestone_ids(&p)) {
        let (http, key) = (app.http.clone(), app.admin_key.clone());
        let url = app.url(&format!("{ADMIN_PROJECTS}/{}/milestones/{m}/complete", id(&p)));
        calls.push(tokio::spawn(async move { http.post(&url).header("X-API-Key", &key).send().await.expect("complete").status() }));
    }
    for call in calls {
        assert_eq!(call.await.expect("call"), 200);
    }
    let (_, got) = app.get_key(&format!("/api/v1/onboarding/projects/{}", id(&p)), &app.admin_key).await;
    let data = &got["data"];
    assert_eq!((data["milestonesCompleted"].as_i64(), data["status"].as_str(), data["progressPercent"].as_i64()), (Some(6), Some("COMPLETED"), Some(100)));
}

both_backends!(
    completing_milestones_moves_the_project_along,
    concurrent_completions_all_count,
    onboarding_projects_list_with_filters_and_progress,
    onboarding_validation_reports_every_failing_field,
    onboarding_endpoints_require_their_scopes_and_stay_in_their_partition,
);
