//! Webhooks: endpoint management, signed delivery from the outbox, retries, disabling,
//! attempts and re-sending, refused targets, several instances on one database.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use breadbox_auth::Environment;
use breadbox_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crm::*;
use crate::receiver::*;

const ENDPOINTS: &str = "/api/v1/webhook-endpoints";

/// Registers `url` for `events`; returns (endpoint id, secret).
async fn register(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let answer = app.send(Method::POST, ENDPOINTS, &app.admin_key, Some(&json!({"url": url, "events": events})), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let data = &answer.body["data"];
    let id = data["endpoint"]["id"].as_str().expect("id").to_owned();
    assert_eq!(answer.header("location"), Some(format!("{ENDPOINTS}/{id}")));
    (id, data["secret"].as_str().expect("secret").to_owned())
}

async fn send_test(app: &TestApp, endpoint: &str) -> String {
    let answer = app.send(Method::POST, &format!("{ENDPOINTS}/{endpoint}/test"), &app.admin_key, None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["data"]["deliveryId"].as_str().expect("deliveryId").to_owned()
}

async fn endpoint(app: &TestApp, id: &str) -> Value {
    let answer = app.send(Method::GET, &format!("{ENDPOINTS}/{id}"), &app.admin_key, None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["data"].clone()
}

async fn delivery(app: &TestApp, endpoint: &str, id: &str) -> Value {
    let answer = app.send(Method::GET, &format!("{ENDPOINTS}/{endpoint}/deliveries"), &app.admin_key, None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["data"].as_array().expect("list").iter().find(|d| d["id"] == id).cloned().expect("delivery listed")
}

async fn attempts(app: &TestApp, endpoint: &str, id: &str) -> Vec<Value> {
    let path = format!("{ENDPOINTS}/{endpoint}/deliveries/{id}/attempts?limit=100");
    let answer = app.send(Method::GET, &path, &app.admin_key, None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["data"].as_array().expect("list").clone()
}

/// Polls `check` on the endpoint until it holds.
async fn eventually(app: &TestApp, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let e = endpoint(app, id).await;
        if check(&e) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen: {}", endpoint(app, id).await);
}

fn assert_signed(received: &Received, secret: &str) {
    assert!(msp_signature_valid(received, secret), "X-MSP-Signature does not verify");
    assert!(standard_signature_valid(received, secret), "webhook-signature does not verify");
    assert_eq!(received.header("webhook-id"), received.json()["id"].as_str().expect("id"));
    assert_eq!(received.header("content-type"), "application/json");
    keep_sample(received, secret);
}

/// With `WEBHOOK_SAMPLES_DIR` set (as `.ci/run` sets it), keeps each verified delivery
/// — secret, headers, body — so that an independent Standard Webhooks implementation
/// (the `standardwebhooks` package from PyPI) can verify it too.
fn keep_sample(received: &Received, secret: &str) {
    let Ok(dir) = std::env::var("WEBHOOK_SAMPLES_DIR") else { return };
    let sample = json!({
        "secret": secret,
        "headers": received.headers,
        "body": String::from_utf8_lossy(&received.body),
    });
    let path = std::path::Path::new(&dir).join(format!("{}.json", received.header("webhook-id")));
    std::fs::create_dir_all(&dir).expect("create the samples dir");
    std::fs::write(path, sample.to_string()).expect("write a webhook sample");
}

async fn endpoints_are_managed_over_the_api(app: &mut TestApp) {
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["deal.closed_won", "account.created"], "description": "PSA sync"});
    let created = app.send(Method::POST, ENDPOINTS, &app.admin_key, Some(&body), &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["data"]["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    let e = &created.body["data"]["endpoint"];
    let id = e["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("we_"));
    assert_eq!((e["enabled"].as_bool(), e["description"].as_str()), (Some(true), Some("PSA sync")));

    let got = endpoint(app, &id).await;
    assert!(got.get("secret").is_none(), "the secret is shown once");
    assert_eq!(got["events"], json!(["deal.closed_won", "account.created"]));
    let listed = app.send(Method::GET, ENDPOINTS, &app.admin_key, None, &[]).await;
    assert_eq!(ids(&listed.body), std::slice::from_ref(&id));

    let patch = json!({"events": ["*"], "enabled": false, "description": null});
    let updated = app.send(Method::PATCH, &format!("{ENDPOINTS}/{id}"), &app.admin_key, Some(&patch), &[]).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let data = &updated.body["data"];
    assert_eq!((&data["events"], &data["enabled"], &data["description"]), (&json!(["*"]), &json!(false), &Value::Null));

    let rotated = app.send(Method::POST, &format!("{ENDPOINTS}/{id}/rotate-secret"), &app.admin_key, None, &[]).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_ne!(rotated.body["data"]["secret"].as_str(), Some(secret));
    assert!(rotated.body["data"]["endpoint"]["previousSecretExpiresAt"].as_str().is_some());

    let bad = json!({"url": "ftp://example.com", "events": ["deal.signed"]});
    let refused = app.send(Method::POST, ENDPOINTS, &app.admin_key, Some(&bad), &[]).await;
    assert_eq!(failing_fields(&refused), ["url", "events[0]"]);
    let missing = app.send(Method::POST, ENDPOINTS, &app.admin_key, Some(&json!({})), &[]).await;
    assert_eq!(failing_fields(&missing), ["url", "events"]);
    let unknown = json!({"url": "http://127.0.0.1:9/", "events": ["*"], "secret": "mine"});
    let refused = app.send(Method::POST, ENDPOINTS, &app.admin_key, Some(&unknown), &[]).await;
    assert_eq!(failing_fields(&refused), ["secret"]);

    let (_, reader) = app.key(Environment::Live, "admin:read").await;
    let forbidden = app.send(Method::POST, ENDPOINTS, &reader, Some(&body), &[]).await;
    assert_eq!((forbidden.status, forbidden.body["error"]["reason"].as_str()), (403, Some("admin:write")));
    assert_eq!(app.send(Method::GET, &format!("{ENDPOINTS}/{id}"), &reader, None, &[]).await.status, 200);
    for key in [other_org_key(app, "admin:write").await, test_env_key(app, "admin:write").await] {
        assert_eq!(app.send(Method::GET, &format!("{ENDPOINTS}/{id}"), &key, None, &[]).await.status, 404);
        assert_eq!(app.send(Method::DELETE, &format!("{ENDPOINTS}/{id}"), &key, None, &[]).await.status, 404);
        let listed = app.send(Method::GET, ENDPOINTS, &key, None, &[]).await;
        assert_eq!(ids(&listed.body), Vec::<String>::new());
    }

    let deleted = app.send(Method::DELETE, &format!("{ENDPOINTS}/{id}"), &app.admin_key, None, &[]).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(app.send(Method::GET, &format!("{ENDPOINTS}/{id}"), &app.admin_key, None, &[]).await.status, 404);
}

async fn private_targets_are_refused_unless_allowed(app: &mut TestApp) {
    for url in ["http://10.0.0.5/hook", "http://169.254.169.254/latest/meta-data", "http://192.168.1.1/", "http://[fd00::1]/"] {
        let answer = app.send(Method::POST, ENDPOINTS, &app.admin_key, Some(&json!({"url": url, "events": ["*"]})), &[]).await;
        assert_eq!(failing_fields(&answer), ["url"], "{url}");
    }
    // Tests run with loopback allowed, as local development would.
    let (id, _) = register(app, "http://127.0.0.1:9/hook", json!(["*"])).await;
    let patch = json!({"url": "http://10.1.1.1/"});
    let answer = app.send(Method::PATCH, &format!("{ENDPOINTS}/{id}"), &app.admin_key, Some(&patch), &[]).await;
    assert_eq!(failing_fields(&answer), ["url"]);
}

async fn a_test_event_arrives_signed_with_the_standard_headers(app: &mut TestApp) {
    let receiver = Receiver::start().await;
    let (id, secret) = register(app, &receiver.url, json!(["deal.closed_won"])).await;
    let delivery_id = send_test(app, &id).await;
    let received = receiver.event("webhook.test").await;
    assert_signed(&received, &secret);
    let body = received.json();
    assert!(body["id"].as_str().is_some_and(|i| i.starts_with("evt_")));
    assert_eq!((body["environment"].as_str(), body["data"]["endpointId"].as_str()), (Some("live"), Some(id.as_str())));
    assert!(body["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    // The delivery is recorded with its attempt.
    for _ in 0..100 {
        if delivery(app, &id, &delivery_id).await["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = delivery(app, &id, &delivery_id).await;
    assert_eq!((d["status"].as_str(), d["attempts"].as_i64(), d["eventType"].as_str()), (Some("delivered"), Some(1), Some("webhook.test")));
    assert_eq!(d["eventId"], body["id"]);
    let tries = attempts(app, &id, &delivery_id).await;
    assert_eq!(tries.len(), 1);
    assert_eq!((tries[0]["statusCode"].as_i64(), tries[0]["responseSnippet"].as_str()), (Some(200), Some("ok")));

    // After a rotation both secrets sign, so receivers switch without a gap.
    let rotated = app.send(Method::POST, &format!("{ENDPOINTS}/{id}/rotate-secret"), &app.admin_key, None, &[]).await;
    let new_secret = rotated.body["data"]["secret"].as_str().expect("secret").to_owned();
    send_test(app, &id).await;
    let both = receiver.wait_for(Duration::from_secs(10), "second test", |r| r.len() >= 2).await;
    assert_signed(&both[1], &secret);
    assert_signed(&both[1], &new_secret);
}

async fn a_receiver_that_comes_up_late_gets_the_event_after_retries(app: &mut TestApp) {
    let port = free_port();
    let (id, secret) = register(app, &format!("http://127.0.0.1:{port}/hook"), json!(["*"])).await;
    let delivery_id = send_test(app, &id).await;
    for _ in 0..200 {
        if delivery(app, &id, &delivery_id).await["attempts"].as_i64() >= Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = attempts(app, &id, &delivery_id).await;
    assert!(refused.len() >= 3, "retried while down: {refused:?}");
    assert!(refused.iter().all(|a| a["statusCode"].is_null() && a["error"].as_str().is_some()));
    let receiver = Receiver::on_port(port).await;
    let received = receiver.event("webhook.test").await;
    assert_signed(&received, &secret);
    assert_eq!(eventually(app, &id, "recovery", |e| e["failingSince"].is_null()).await["enabled"], true);
    let d = delivery(app, &id, &delivery_id).await;
    assert_eq!(d["status"], "delivered");
    let ok = attempts(app, &id, &delivery_id).await;
    assert_eq!(ok.last().expect("attempt")["statusCode"], 200, "{d}");
    assert_eq!(ok.len() as i64, d["attempts"].as_i64().expect("attempts"));
}

async fn an_endpoint_failing_for_good_is_disabled_with_a_notification(app: &mut TestApp) {
    let failing = Receiver::start().await;
    failing.answer(500, &[]);
    let watcher = Receiver::start().await;
    let (bad, _) = register(app, &failing.url, json!(["*"])).await;
    let (_, watcher_secret) = register(app, &watcher.url, json!(["notification.created"])).await;
    let delivery_id = send_test(app, &bad).await;
    let disabled = eventually(app, &bad, "disabling", |e| e["enabled"] == false).await;
    assert!(disabled["disabledReason"].as_str().is_some_and(|r| r.contains("failed")), "{disabled}");
    let d = delivery(app, &bad, &delivery_id).await;
    assert_eq!((d["status"].as_str(), d["attempts"].as_i64()), (Some("failed"), Some(9)), "{d}");
    let tries = attempts(app, &bad, &delivery_id).await;
    assert_eq!(tries.len(), 9);
    assert!(tries.iter().all(|a| a["statusCode"] == 500 && a["latencyMs"].as_i64().is_some()));
    let ids: HashSet<String> = failing.received().iter().map(|r| r.header("webhook-id").to_owned()).collect();
    assert_eq!(ids.len(), 1, "every retry carries the same event id");

    let notice = watcher.event("notification.created").await;
    assert_signed(&notice, &watcher_secret);
    assert_eq!(notice.json()["data"]["endpointId"], bad.as_str());

    // Re-enabled and fixed, the failed delivery is re-sent with the same event id.
    failing.answer(200, &[]);
    let enable = json!({"enabled": true});
    let answer = app.send(Method::PATCH, &format!("{ENDPOINTS}/{bad}"), &app.admin_key, Some(&enable), &[]).await;
    assert_eq!((answer.status, &answer.body["data"]["disabledReason"]), (200, &Value::Null));
    let resent = app.send(Method::POST, &format!("{ENDPOINTS}/{bad}/deliveries/{delivery_id}/resend"), &app.admin_key, None, &[]).await;
    assert_eq!((resent.status, resent.body["data"]["status"].as_str()), (200, Some("pending")), "{}", resent.body);
    let all = failing.wait_for(Duration::from_secs(10), "re-send", |r| r.len() >= 10).await;
    assert_eq!(all[9].header("webhook-id"), all[0].header("webhook-id"));
}

async fn gone_disables_the_endpoint_at_once(app: &mut TestApp) {
    let receiver = Receiver::start().await;
    receiver.answer(410, &[]);
    let (id, _) = register(app, &receiver.url, json!(["*"])).await;
    let delivery_id = send_test(app, &id).await;
    let e = eventually(app, &id, "disabling on 410", |e| e["enabled"] == false).await;
    assert!(e["disabledReason"].as_str().is_some_and(|r| r.contains("410")));
    assert_eq!(delivery(app, &id, &delivery_id).await["status"], "failed");
    assert_eq!(receiver.received().len(), 1);
    let missing = app.send(Method::GET, &format!("{ENDPOINTS}/{id}/deliveries/msg_nope/attempts"), &app.admin_key, None, &[]).await;
    assert_eq!(missing.status, 404);
}

async fn retry_after_is_honoured(app: &mut TestApp) {
    // The test schedule is 10,000 times faster than production, so a first retry
    // comes after 0.5 ms; `Retry-After: 20000` (scaled: 2 s) must hold it back.
    let receiver = Receiver::start().await;
    receiver.answer(503, &[("retry-after", "20000")]);
    let (id, _) = register(app, &receiver.url, json!(["*"])).await;
    let delivery_id = send_test(app, &id).await;
    receiver.wait_for(Duration::from_secs(5), "first attempt", |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), 1, "no retry before Retry-After");
    let d = delivery(app, &id, &delivery_id).await;
    assert_eq!((d["status"].as_str(), d["attempts"].as_i64()), (Some("pending"), Some(1)));
    receiver.answer(200, &[]);
    receiver.wait_for(Duration::from_secs(10), "retry after the wait", |r| r.len() == 2).await;
}

async fn two_instances_deliver_each_event_once(app: &mut TestApp) {
    let receiver = Receiver::start().await;
    let (_, secret) = register(app, &receiver.url, json!(["account.created"])).await;
    let peer = app.spawn_peer().await;
    let pool = app.service.db().pool().clone();
    const EVENTS: usize = 1000;
    let mut tx = pool.begin().await.expect("tx");
    for i in 0..EVENTS {
        sqlx::query("INSERT INTO events (id, org_id, env, type, data, created_at) VALUES ($1, $2, 'live', 'account.created', $3, $4)")
            .bind(format!("evt_bulk{i:05}"))
            .bind(&app.org_id)
            .bind(json!({"id": format!("acc_{i}"), "name": format!("Account {i}")}).to_string())
            .bind(1_700_000_000_000_i64 + i as i64)
            .execute(&mut *tx)
            .await
            .expect("event");
    }
    tx.commit().await.expect("commit");
    let all = receiver.wait_for(Duration::from_secs(90), "1000 deliveries", |r| r.len() >= EVENTS).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = if receiver.received().len() > all.len() { receiver.received() } else { all };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &all {
        *seen.entry(r.header("webhook-id").to_owned()).or_default() += 1;
    }
    assert_eq!(seen.len(), EVENTS, "every event delivered");
    assert!(seen.values().all(|n| *n == 1), "none delivered twice");
    assert_signed(&all[0], &secret);
    peer.stop().await;
}

async fn account_contact_and_deal_changes_arrive_as_signed_events(app: &mut TestApp) {
    let receiver = Receiver::start().await;
    let (_, secret) = register(app, &receiver.url, json!(["*"])).await;
    let acme = account(app, "Acme").await;
    let path = format!("/api/v1/accounts/{acme}");
    let renamed = app.send(Method::PATCH, &path, &app.admin_key, Some(&json!({"seats": 12})), &[]).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    let contact = create(app, "/api/v1/contacts", json!({"firstName": "Ada", "lastName": "Lovelace"})).await;
    let contact_id = contact["id"].as_str().expect("id");
    let patched = app.send(Method::PATCH, &format!("/api/v1/contacts/{contact_id}"), &app.admin_key, Some(&json!({"title": "CTO"})), &[]).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let won = create(app, "/api/v1/deals", json!({"accountId": acme, "name": "Backup", "amount": 1000})).await;
    let won_id = won["id"].as_str().expect("id");
    let lost = create(app, "/api/v1/deals", json!({"accountId": acme, "name": "SOC", "amount": 2000})).await;
    let lost_id = lost["id"].as_str().expect("id");
    for (id, body) in [(won_id, json!({"stage": "WON"})), (lost_id, json!({"stage": "LOST", "outcomeReason": "Price"}))] {
        let closed = app.send(Method::PATCH, &format!("/api/v1/deals/{id}"), &app.admin_key, Some(&body), &[]).await;
        assert_eq!(closed.status, 200, "{}", closed.body);
    }
    let deleted = app.send(Method::DELETE, &path, &app.admin_key, None, &[]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);

    let expected = [
        "account.created",
        "account.updated",
        "contact.created",
        "contact.updated",
        "deal.created",
        "deal.stage_changed",
        "deal.closed_won",
        "deal.closed_lost",
        "account.deleted",
    ];
    let all = receiver
        .wait_for(Duration::from_secs(15), "every event", |r| {
            let types: HashSet<String> = r.iter().map(|r| r.json()["type"].as_str().unwrap_or("").to_owned()).collect();
            expected.iter().all(|t| types.contains(*t))
        })
        .await;
    for received in &all {
        assert_signed(received, &secret);
        let body = received.json();
        assert_eq!(body["environment"], "live");
    }
    let of = |kind: &str| all.iter().map(Received::json).find(|b| b["type"] == kind).expect(kind);
    assert_eq!(of("account.created")["data"]["id"], acme.as_str());
    assert_eq!(of("account.updated")["data"]["seats"], 12);
    assert_eq!(of("account.deleted")["data"]["lifecycle"], "CHURNED");
    assert_eq!(of("contact.updated")["data"]["title"], "CTO");
    assert_eq!(of("deal.closed_won")["data"]["id"], won_id);
    assert_eq!(of("deal.closed_lost")["data"]["outcomeReason"], "Price");
    // The data is the resource as the API returns it.
    let (_, got) = app.get_key(&format!("/api/v1/deals/{lost_id}"), &app.admin_key).await;
    assert_eq!(of("deal.closed_lost")["data"], got["data"]);
    let ids: HashSet<&str> = all.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), all.len(), "one delivery per event");
}

/// A test event is for its endpoint alone; the fan-out passes it over and goes on to
/// the changes after it, which reach every subscriber.
async fn a_test_event_reaches_its_endpoint_only(app: &mut TestApp) {
    let (tested, other) = (Receiver::start().await, Receiver::start().await);
    let (tested_id, _) = register(app, &tested.url, json!(["*"])).await;
    let (_, other_secret) = register(app, &other.url, json!(["*"])).await;
    send_test(app, &tested_id).await;
    tested.event("webhook.test").await;
    let acme = account(app, "After the test").await;
    let created = other.event("account.created").await;
    assert_signed(&created, &other_secret);
    assert_eq!(created.json()["data"]["id"], acme.as_str());
    tested.event("account.created").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = other.received();
    let types: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(types, ["account.created"], "the other endpoint got only the change");
}

both_backends!(
    a_test_event_reaches_its_endpoint_only,
    account_contact_and_deal_changes_arrive_as_signed_events,
    endpoints_are_managed_over_the_api,
    private_targets_are_refused_unless_allowed,
    a_test_event_arrives_signed_with_the_standard_headers,
    a_receiver_that_comes_up_late_gets_the_event_after_retries,
    an_endpoint_failing_for_good_is_disabled_with_a_notification,
    gone_disables_the_endpoint_at_once,
    retry_after_is_honoured,
    two_instances_deliver_each_event_once,
);
