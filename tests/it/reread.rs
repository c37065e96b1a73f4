//! A record read again: on SQLite each runtime thread keeps the detail answers it
//! wrote while nothing is committed to the database (`api::memo`), so these check that
//! a kept answer is the read's answer, and that every kind of commit is read at once.

use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::conditional::one_of_each;
use crate::crm::*;

async fn get(app: &TestApp, path: &str) -> Answer {
    let answer = app.send(Method::GET, path, &app.admin_key, None, &[]).await;
    assert_eq!(answer.status, 200, "GET {path} → {}", answer.body);
    answer
}

/// Read again, each kind answers the same record and `ETag`, with the request's own id.
async fn a_record_read_again_is_answered_the_same(app: &mut TestApp) {
    let paths = one_of_each(app).await;
    for path in &paths {
        let first = get(app, path).await;
        for _ in 0..4 {
            let again = get(app, path).await;
            assert_eq!(again.body["data"], first.body["data"], "{path}");
            assert_eq!(again.header("etag"), first.header("etag"), "{path}");
            assert_eq!(again.header("x-request-id").as_deref(), again.body["meta"]["requestId"].as_str());
            assert_ne!(again.body["meta"]["requestId"], first.body["meta"]["requestId"], "{path}");
        }
    }
    // A kept record is answered for its own kind only: another resource's path naming
    // its id is a 404, before and after the record is read again.
    let id = paths[0].rsplit('/').next().expect("id");
    for _ in 0..2 {
        get(app, &paths[0]).await;
        let other = app.send(Method::GET, &format!("/api/v1/deals/{id}"), &app.admin_key, None, &[]).await;
        assert_eq!((other.status, other.body["error"]["code"].as_str()), (404, Some("not_found")), "{}", other.body);
    }
}

/// Every write is read by the next GET: of the record itself, of one of its children
/// (a deal's stage history), and of another record (any commit moves every answer on).
async fn each_write_is_read_by_the_next_get(app: &mut TestApp) {
    let paths = one_of_each(app).await;
    let account_path = &paths[0];
    let deal = &paths[2];
    for round in 0..12 {
        for path in &paths {
            get(app, path).await;
        }
        let seats = 100 + round;
        let patched = app.send(Method::PATCH, account_path, &app.admin_key, Some(&json!({ "seats": seats })), &[]).await;
        assert_eq!(patched.status, 200, "{}", patched.body);
        let read = get(app, account_path).await;
        assert_eq!(read.body["data"]["seats"], seats, "round {round}");
        assert_eq!(read.header("etag"), patched.header("etag"), "round {round}");
    }
    let before = get(app, deal).await;
    let history = |a: &Answer| a.body["data"]["stageHistory"].as_array().map_or(0, Vec::len);
    let moved = app.send(Method::PATCH, deal, &app.admin_key, Some(&json!({ "stage": "PROPOSAL" })), &[]).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let after = get(app, deal).await;
    assert_eq!(after.body["data"]["stage"], "PROPOSAL");
    assert_eq!(history(&after), history(&before) + 1, "{}", after.body);
    // A commit elsewhere empties the kept answers; they are read and kept again.
    let unrelated = get(app, &paths[4]).await;
    account(app, "Elsewhere Ltd").await;
    assert_eq!(get(app, &paths[4]).await.body["data"], unrelated.body["data"]);
}

/// A write that does not come through this server (another process on the same file,
/// say the CLI, or SQL by hand) is read at once too.
async fn a_write_from_outside_the_server_is_read_at_once(app: &mut TestApp) {
    let id = account(app, "Outside Ltd").await;
    let path = format!("/api/v1/accounts/{id}");
    for round in 0..10 {
        get(app, &path).await;
        get(app, &path).await;
        let name = format!("Renamed {round}");
        let updated = sqlx::query("UPDATE accounts SET name = $1, version = version + 1 WHERE id = $2")
            .bind(&name)
            .bind(&id)
            .execute(app.service.db().writer())
            .await
            .expect("update");
        assert_eq!(updated.rows_affected(), 1);
        let read = get(app, &path).await;
        assert_eq!(read.body["data"]["name"], Value::from(name), "round {round}");
    }
}

both_backends!(a_record_read_again_is_answered_the_same, each_write_is_read_by_the_next_get, a_write_from_outside_the_server_is_read_at_once);
