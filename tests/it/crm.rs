//! Helpers shared by the CRM resource tests: creating records, walking lists page by
//! page, credentials of other organizations and environments, the scope matrix.

use std::time::Duration;

use breadbox_auth::{Environment, Plan, ScopeSet};
use breadbox_tests::*;
use reqwest::Method;
use serde_json::Value;

/// POSTs `body` with the admin key and returns the created record, checking the
/// 201 answer's `Location` and `ETag`.
pub async fn create(app: &TestApp, path: &str, body: Value) -> Value {
    let answer = app.send(Method::POST, path, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(answer.status, 201, "POST {path} {body} → {}", answer.body);
    let data = answer.body["data"].clone();
    let id = data["id"].as_str().expect("id");
    assert_eq!(answer.header("location"), Some(format!("{path}/{id}")));
    assert!(answer.header("etag").is_some_and(|t| t.starts_with('"') && t.ends_with('"')), "ETag on 201");
    data
}

/// A new account's id.
pub async fn account(app: &TestApp, name: &str) -> String {
    let data = create(app, "/api/v1/accounts", serde_json::json!({ "name": name })).await;
    data["id"].as_str().expect("id").to_owned()
}

/// A live key of another organization.
pub async fn other_org_key(app: &TestApp, scopes: &str) -> String {
    let org = app.service.create_org("Other MSP", Plan::Starter).await.expect("org");
    let set = ScopeSet::parse(scopes).expect("scopes");
    let (_, key) = app.service.create_key(&org.id, Environment::Live, set, "theirs").await.expect("key");
    key.expose().to_owned()
}

/// A key of the test organization's `test` environment.
pub async fn test_env_key(app: &TestApp, scopes: &str) -> String {
    app.key(Environment::Test, scopes).await.1
}

/// The ids of a list answer.
pub fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .expect("data is an array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Every id of `path` (which may carry filters), following `nextCursor` at `limit` per
/// page and pausing `pause` between pages; checks the list envelope on every page.
pub async fn walk(app: &TestApp, key: &str, path: &str, limit: u32, pause: Duration) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let answer = app.send(Method::GET, &url, key, None, &[]).await;
        assert_eq!(answer.status, 200, "GET {url} → {}", answer.body);
        let page = ids(&answer.body);
        let pagination = &answer.body["pagination"];
        assert!(page.len() <= limit as usize);
        assert_eq!(pagination["limit"], limit);
        assert!(answer.body["meta"]["requestId"].as_str().is_some_and(|id| id.starts_with("req_")));
        seen.extend(page);
        match pagination["nextCursor"].as_str() {
            Some(next) => {
                assert_eq!(pagination["hasMore"], true);
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(pagination["hasMore"], false);
                return seen;
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// One operation of the scope matrix: a key holding only `without` is refused with 403
/// naming `scope`; a key holding only `scope` gets a 2xx.
pub struct ScopeCase<'a> {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub scope: &'a str,
    pub without: &'a str,
}

pub async fn scope_matrix(app: &TestApp, cases: Vec<ScopeCase<'_>>) {
    for case in cases {
        let (_, lacking) = app.key(Environment::Live, case.without).await;
        let refused = app.send(case.method.clone(), &case.path, &lacking, case.body.as_ref(), &[]).await;
        assert_eq!(
            (refused.status, refused.body["error"]["code"].as_str(), refused.body["error"]["reason"].as_str()),
            (403, Some("forbidden"), Some(case.scope)),
            "{} {} with only {}",
            case.method,
            case.path,
            case.without
        );
        let (_, holding) = app.key(Environment::Live, case.scope).await;
        let accepted = app.send(case.method.clone(), &case.path, &holding, case.body.as_ref(), &[]).await;
        assert!((200..300).contains(&accepted.status), "{} {} with {} → {}", case.method, case.path, case.scope, accepted.body);
    }
}

/// The `field`s of a 422's details, in order.
pub fn failing_fields(answer: &Answer) -> Vec<String> {
    assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (422, Some("validation_error")), "{}", answer.body);
    answer.body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field").to_owned())
        .collect()
}
