//! Rate limits over real HTTP: each bucket admits its burst, then answers 429 with
//! `Retry-After` and the rate-limit headers, and admits again after the wait; the
//! tightest bucket decides; keys of one organization share its bucket; plan changes
//! apply at once; instances sharing Redis admit together what one would; a Redis
//! that goes away leaves the server serving. Windows are scaled down
//! (`rate_limit_time_scale`) so that nothing waits long.

use std::time::{Duration, Instant};

use breadbox_auth::{AuthConfig, Environment, Plan, ScopeSet};
use breadbox_tests::*;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Status, headers and JSON body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn retry_after(&self) -> u64 {
        let value = self.header("retry-after").expect("a 429 carries Retry-After");
        value.parse().expect("Retry-After in whole seconds")
    }

    /// Asserts the five rate-limit headers, the deciding bucket being `bucket`.
    fn assert_headers(&self, bucket: &str) {
        for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit-policy", "ratelimit"] {
            assert!(self.header(name).is_some(), "{} lacks {name}; headers: {:?}", self.status, self.headers);
        }
        let field = self.header("ratelimit").expect("RateLimit");
        assert!(field.starts_with(&format!("\"{bucket}\";r=")), "deciding bucket: {field}");
        let remaining: u64 = self.header("x-ratelimit-remaining").unwrap().parse().expect("number");
        assert!(field.contains(&format!(";r={remaining};")), "{field} vs X-RateLimit-Remaining {remaining}");
        let reset: u64 = self.header("x-ratelimit-reset").unwrap().parse().expect("number");
        assert!(reset >= 1, "reset is rounded up");
        assert!(field.ends_with(&format!(";t={reset}")), "{field} vs X-RateLimit-Reset {reset}");
    }

    fn policy(&self) -> &str {
        self.header("ratelimit-policy").expect("RateLimit-Policy")
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let json = response.json().await.unwrap_or(Value::Null);
    Answer { status, headers, json }
}

async fn get(app: &TestApp, path: &str, key: &str) -> Answer {
    answer(app.http.get(app.url(path)).header("X-API-Key", key).send().await.expect("request")).await
}

/// Sends `request` until the first 429 (at most `max` times); returns how many were
/// admitted first, and the 429.
async fn until_refused<F, Fut>(max: usize, mut request: F) -> (usize, Answer)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    for admitted in 0..max {
        let answer = request().await;
        if answer.status == 429 {
            return (admitted, answer);
        }
        assert!(answer.status < 500, "unexpected {}: {}", answer.status, answer.json);
    }
    panic!("no 429 after {max} requests");
}

/// Asserts that `admitted` is the burst, allowing one more per interval `t` that
/// passed while the requests were sent (the bucket refills meanwhile).
fn assert_burst(admitted: usize, burst: usize, t: Duration, elapsed: Duration) {
    let refills = (elapsed.as_secs_f64() / t.as_secs_f64()).ceil() as usize;
    assert!(
        (burst..=burst + refills).contains(&admitted),
        "admitted {admitted}, burst {burst} (+{refills} refilled in {elapsed:?})"
    );
}

/// A 429 in the envelope naming `bucket`, with every header and `Retry-After`.
fn assert_refused(answer: &Answer, bucket: &str) {
    assert_eq!(answer.status, 429);
    assert_eq!(answer.json["error"]["code"], "rate_limited", "{}", answer.json);
    assert_eq!(answer.json["error"]["reason"], bucket, "{}", answer.json);
    let message = answer.json["error"]["message"].as_str().expect("message");
    assert!(message.contains(&format!("`{bucket}`")), "the message names the bucket: {message}");
    answer.assert_headers(bucket);
    assert_eq!(answer.header("x-ratelimit-remaining"), Some("0"));
    assert!(answer.retry_after() >= 1, "never 0");
}

async fn sleep_secs(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(50)).await;
}

fn scaled(scale: f64) -> impl FnOnce(&mut AuthConfig) {
    move |config: &mut AuthConfig| config.limits.rate_limit_time_scale = scale
}

/// An organization on `plan` with `n` keys that may read everything.
async fn org_keys(app: &TestApp, plan: Plan, n: usize) -> (String, Vec<String>) {
    let org = app.service.create_org("Limited org", plan).await.expect("org");
    let mut keys = Vec::new();
    for i in 0..n {
        let (_, key) = app
            .service
            .create_key(&org.id, Environment::Live, ScopeSet::parse("admin:read").expect("scopes"), &format!("key {i}"))
            .await
            .expect("key");
        keys.push(key.expose().to_owned());
    }
    (org.id, keys)
}

/// A test on a fresh SQLite server configured by `$configure` (the limits do not
/// depend on the database; the plan look-up is tested on both backends elsewhere).
macro_rules! limits_test {
    ($name:ident, $configure:expr, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run_with(Backend::Sqlite, $configure, |h| {
                Box::pin(async move {
                    let mut app = h.app().await;
                    $body(&mut app).await;
                })
            })
            .await;
        }
    };
}

// The per-key bucket by plan, and the tightest bucket deciding: a Starter key (30/min)
// on a list endpoint (100/min, burst 200) is refused by its key bucket.
async fn key_bucket(app: &mut TestApp) {
    let (_, keys) = org_keys(app, Plan::Starter, 1).await;
    let started = Instant::now();
    let (admitted, refused) = until_refused(100, || get(app, "/api/v1/admin/api-keys", &keys[0])).await;
    // Scale 2: 30 per 30 s, one request per second.
    assert_burst(admitted, 30, Duration::from_secs(1), started.elapsed());
    assert_refused(&refused, "key");
    assert_eq!(refused.header("x-ratelimit-limit"), Some("30"));
    assert_eq!(
        refused.policy(),
        "\"ip\";q=1200;w=30, \"key\";q=30;w=30, \"list\";q=100;w=30, \"org\";q=60;w=30",
        "every bucket that applied"
    );
    sleep_secs(refused.retry_after()).await;
    let again = get(app, "/api/v1/admin/api-keys", &keys[0]).await;
    assert_eq!(again.status, 200, "admitted after Retry-After: {}", again.json);
    again.assert_headers("key");
}
limits_test!(key_bucket_admits_its_burst_then_429_until_retry_after, scaled(2.0), key_bucket);

// The org bucket, shared by the org's keys: three Starter keys (30/min each) share
// 60/min; the org refuses while the third key still has room.
async fn org_bucket(app: &mut TestApp) {
    let (_, keys) = org_keys(app, Plan::Starter, 3).await;
    let (_, other_org_keys) = org_keys(app, Plan::Starter, 1).await;
    let started = Instant::now();
    let mut sent = 0usize;
    let (admitted, refused) = until_refused(200, || {
        sent += 1;
        get(app, "/api/v1/me", &keys[sent % 3])
    })
    .await;
    // Scale 1: the org refills one request per second.
    assert_burst(admitted, 60, Duration::from_secs(1), started.elapsed());
    assert_refused(&refused, "org");
    assert!(refused.json["error"]["message"].as_str().unwrap().contains("per organization"));
    let other = get(app, "/api/v1/me", &other_org_keys[0]).await;
    assert_eq!(other.status, 200, "another organization has its own bucket");
    sleep_secs(refused.retry_after()).await;
    assert_eq!(get(app, "/api/v1/me", &keys[0]).await.status, 200);
}
limits_test!(keys_of_one_org_share_the_org_bucket, scaled(1.0), org_bucket);

// The write class (50/min, burst 100) is tighter than a Pro key (120/min).
async fn write_bucket(app: &mut TestApp) {
    let key = app.admin_key.clone();
    let started = Instant::now();
    let (admitted, refused) = until_refused(200, || async {
        let response = app.http.post(app.url("/api/v1/admin/api-keys/key_missing/revoke")).header("X-API-Key", &key);
        answer(response.send().await.expect("request")).await
    })
    .await;
    assert_burst(admitted, 100, Duration::from_millis(1200), started.elapsed());
    assert_refused(&refused, "write");
    assert!(refused.policy().contains("\"write\";q=50;w=60"));
    sleep_secs(refused.retry_after()).await;
    let again = app.http.post(app.url("/api/v1/admin/api-keys/key_missing/revoke")).header("X-API-Key", &key);
    let again = answer(again.send().await.expect("request")).await;
    assert_eq!(again.status, 404, "admitted again (and not found)");
    again.assert_headers("write");
}
limits_test!(write_class_bucket_is_tighter_than_a_pro_key, scaled(1.0), write_bucket);

// The auth class at the token endpoint, per client id: 10/min, burst 20; the 429 is in
// the RFC 6749 shape.
async fn auth_bucket(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    let form = [("grant_type", "client_credentials"), ("client_id", &client.id), ("client_secret", &client.secret)];
    let started = Instant::now();
    let (admitted, refused) = until_refused(60, || async {
        answer(app.http.post(app.url("/api/v1/auth/token")).form(&form).send().await.expect("request")).await
    })
    .await;
    // Scale 6: one token per second.
    assert_burst(admitted, 20, Duration::from_secs(1), started.elapsed());
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json["error"], "invalid_request", "an RFC 6749 error code: {}", refused.json);
    assert!(refused.json["error_description"].as_str().unwrap().contains("rate limit exceeded"));
    assert_eq!(refused.json.as_object().unwrap().len(), 2, "only error and error_description");
    refused.assert_headers("auth");
    assert!(refused.policy().contains("\"auth\";q=10;w=10"));
    // Another client is not affected.
    let other = app.client(Environment::Live, "accounts:read").await;
    app.token(&other, None).await;
    sleep_secs(refused.retry_after()).await;
    let again = answer(app.http.post(app.url("/api/v1/auth/token")).form(&form).send().await.expect("request")).await;
    assert_eq!(again.status, 200, "{}", again.json);
    again.assert_headers("auth");
}
limits_test!(token_endpoint_limits_each_client, scaled(6.0), auth_bucket);

// Failed authentication per IP: 30/min, burst 60. Past it, even a valid credential
// from that IP is refused, before any credential work, until the wait has passed.
async fn failed_auth_bucket(app: &mut TestApp) {
    let (_, good) = app.key(Environment::Live, "accounts:read").await;
    // Another last character (the checksum then fails). Always `x` made the "bad" key
    // the good one whenever the key ended in `x`: 120 admitted, by the key bucket.
    let bad = format!("{}{}", &good[..good.len() - 1], if good.ends_with('x') { 'y' } else { 'x' });
    assert_ne!(bad, good);
    let started = Instant::now();
    let (admitted, refused) = until_refused(200, || get(app, "/api/v1/me", &bad)).await;
    // Scale 2: one failure per second.
    assert_burst(admitted, 60, Duration::from_secs(1), started.elapsed());
    assert_refused(&refused, "failed-auth");
    let blocked = get(app, "/api/v1/me", &good).await;
    assert_refused(&blocked, "failed-auth");
    // The token endpoint counts failed client authentication in the same bucket.
    let token = app
        .http
        .post(app.url("/api/v1/auth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "cli_nope"), ("client_secret", "nope")])
        .send()
        .await
        .expect("request");
    let token = answer(token).await;
    assert_eq!((token.status, token.json["error"].as_str()), (429, Some("invalid_request")));
    token.assert_headers("failed-auth");
    sleep_secs(blocked.retry_after()).await;
    let again = get(app, "/api/v1/me", &good).await;
    assert_eq!(again.status, 200, "{}", again.json);
}
limits_test!(failed_authentication_blocks_the_ip, scaled(2.0), failed_auth_bucket);

// Every request from one IP, whatever it is (here 20/min).
async fn ip_bucket(app: &mut TestApp) {
    let started = Instant::now();
    let (admitted, refused) = until_refused(100, || async {
        answer(app.http.get(app.url("/healthz")).send().await.expect("request")).await
    })
    .await;
    // Scale 3: one request per second.
    assert_burst(admitted, 20, Duration::from_secs(1), started.elapsed());
    assert_refused(&refused, "ip");
    assert_eq!(refused.policy(), "\"ip\";q=20;w=20");
    sleep_secs(refused.retry_after()).await;
    let again = answer(app.http.get(app.url("/healthz")).send().await.expect("request")).await;
    assert_eq!(again.status, 200);
    again.assert_headers("ip");
}
limits_test!(
    every_request_counts_against_its_ip,
    |config: &mut AuthConfig| {
        config.limits.rate_limit_time_scale = 3.0;
        config.limits.rate_limit_per_ip = 20;
    },
    ip_bucket
);

// Headers on every response, success or error; the deciding bucket has the least room.
async fn headers_everywhere(app: &mut TestApp) {
    let key = app.admin_key.clone();
    let me = get(app, "/api/v1/me", &key).await;
    assert_eq!(me.status, 200);
    me.assert_headers("key");
    assert_eq!(me.header("x-ratelimit-limit"), Some("120"), "a Pro key");
    assert_eq!(me.header("x-ratelimit-remaining"), Some("119"));
    assert_eq!(me.policy(), "\"ip\";q=1200;w=60, \"key\";q=120;w=60, \"detail\";q=200;w=60, \"org\";q=480;w=60");
    let missing = get(app, "/api/v1/admin/api-keys/key_missing", &key).await;
    assert_eq!(missing.status, 404);
    missing.assert_headers("key");
    assert!(missing.policy().contains("\"detail\""));
    let list = get(app, "/api/v1/admin/api-keys", &key).await;
    assert!(list.policy().contains("\"list\";q=100;w=60"));
    let unauthorized = get(app, "/api/v1/me", "msp_live_nope").await;
    assert_eq!(unauthorized.status, 401);
    unauthorized.assert_headers("failed-auth");
    assert_eq!(unauthorized.policy(), "\"ip\";q=1200;w=60, \"failed-auth\";q=30;w=60");
    assert_eq!(unauthorized.header("x-ratelimit-limit"), Some("60"));
    let no_route = answer(app.http.get(app.url("/api/v1/nowhere")).send().await.expect("request")).await;
    assert_eq!(no_route.status, 404);
    no_route.assert_headers("ip");
    let jwks = answer(app.http.get(app.url("/.well-known/jwks.json")).send().await.expect("request")).await;
    jwks.assert_headers("ip");
    assert!(me.header("retry-after").is_none());
}
limits_test!(every_response_carries_rate_limit_headers, scaled(1.0), headers_everywhere);

// A plan change applies to the next request, without a restart.
async fn plan_change(app: &mut TestApp) {
    let (org, keys) = org_keys(app, Plan::Starter, 1).await;
    let (admitted, refused) = until_refused(100, || get(app, "/api/v1/me", &keys[0])).await;
    assert!((30..=31).contains(&admitted), "admitted {admitted}");
    assert_refused(&refused, "key");
    app.service.set_plan(&org, Plan::Growth).await.expect("set plan");
    let upgraded = get(app, "/api/v1/me", &keys[0]).await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.json);
    assert!(upgraded.policy().contains("\"key\";q=60;w=60"), "{}", upgraded.policy());
    assert!(upgraded.policy().contains("\"org\";q=120;w=60"), "{}", upgraded.policy());
}
limits_test!(a_plan_change_applies_without_restart, scaled(1.0), plan_change);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_applies_without_restart_on_postgres() {
    run_with(Backend::Postgres, scaled(1.0), |h| {
        Box::pin(async move {
            let mut app = h.app().await;
            plan_change(&mut app).await;
        })
    })
    .await;
}

// `--rate-limit off`: nothing is limited and no header is sent.
async fn switched_off(app: &mut TestApp) {
    let (_, keys) = org_keys(app, Plan::Starter, 1).await;
    for _ in 0..40 {
        let me = get(app, "/api/v1/me", &keys[0]).await;
        assert_eq!(me.status, 200);
        assert!(me.header("ratelimit").is_none() && me.header("x-ratelimit-limit").is_none());
    }
}
limits_test!(
    the_off_switch_disables_limits_and_headers,
    |config: &mut AuthConfig| config.limits.rate_limit = breadbox_auth::limits::Switch::Off,
    switched_off
);

mod redis {
    //! Buckets shared through Redis (`TEST_REDIS_URL`; skipped when unset).

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    fn redis_url() -> Option<String> {
        std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty())
    }

    fn shared(url: String, scale: f64) -> impl FnOnce(&mut AuthConfig) {
        move |config: &mut AuthConfig| {
            config.limits.redis_url = url;
            config.limits.redis_key_prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
            config.limits.rate_limit_time_scale = scale;
        }
    }

    // Two instances on one Redis admit together what one instance would: a Pro key's
    // burst of 120 (windows ×10, so nothing refills during the test), not 240.
    async fn two_instances(app: &mut TestApp) {
        assert_eq!(app.service.limits().redis_up(), Some(true), "Redis answers");
        let peer = app.spawn_peer().await;
        let (_, key) = app.key(Environment::Live, "accounts:read").await;
        let bases = [app.base.clone(), peer.base.clone()];
        let mut workers = Vec::new();
        for worker in 0..4 {
            let (http, key, base) = (app.http.clone(), key.clone(), bases[worker % 2].clone());
            workers.push(tokio::spawn(async move {
                let mut admitted = 0;
                for _ in 0..75 {
                    let response = http.get(format!("{base}/api/v1/me")).header("X-API-Key", &key).send().await;
                    let response = response.expect("request");
                    assert!(response.headers().contains_key("ratelimit"));
                    match response.status().as_u16() {
                        200 => admitted += 1,
                        429 => {}
                        other => panic!("unexpected {other}"),
                    }
                }
                admitted
            }));
        }
        let mut admitted = 0;
        for worker in workers {
            admitted += worker.await.expect("worker");
        }
        peer.stop().await;
        assert!((114..=126).contains(&admitted), "300 requests over two instances admitted {admitted}, one would admit 120");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_share_their_buckets() {
        let Some(url) = redis_url() else {
            eprintln!("TEST_REDIS_URL is not set: Redis test skipped");
            return;
        };
        run_with(Backend::Sqlite, shared(url, 0.1), |h| {
            Box::pin(async move {
                let mut app = h.app().await;
                two_instances(&mut app).await;
            })
        })
        .await;
    }

    // Redis on a closed port: served by the in-process buckets, headers and all.
    async fn unreachable(app: &mut TestApp) {
        assert_eq!(app.service.limits().redis_up(), Some(false));
        let (_, keys) = org_keys(app, Plan::Starter, 1).await;
        let (admitted, refused) = until_refused(100, || get(app, "/api/v1/me", &keys[0])).await;
        assert!((30..=31).contains(&admitted), "still limited in process: {admitted}");
        assert_refused(&refused, "key");
        let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        assert!(metrics.contains("breadbox_rate_limit_redis_fallbacks_total"), "fallbacks are counted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_redis_falls_back_to_in_process_buckets() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("redis://127.0.0.1:{}", closed.local_addr().expect("addr").port());
        drop(closed);
        run_with(Backend::Sqlite, shared(url, 1.0), |h| {
            Box::pin(async move {
                let mut app = h.app().await;
                unreachable(&mut app).await;
            })
        })
        .await;
    }

    /// A TCP relay to Redis that can be cut and restored.
    struct Relay {
        port: u16,
        cut: Arc<AtomicBool>,
        generation: tokio::sync::watch::Sender<u64>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Relay {
        async fn start(target: String) -> Relay {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let cut = Arc::new(AtomicBool::new(false));
            let (generation, _) = tokio::sync::watch::channel(0u64);
            let (flag, notify) = (cut.clone(), generation.clone());
            let task = tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if flag.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused at once
                    }
                    let target = target.clone();
                    let mut cut_signal = notify.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut_signal.changed() => {}
                        }
                    });
                }
            });
            Relay { port, cut, generation, task }
        }

        fn cut(&self) {
            self.cut.store(true, Ordering::SeqCst);
            self.generation.send_modify(|g| *g += 1);
        }

        fn restore(&self) {
            self.cut.store(false, Ordering::SeqCst);
        }
    }

    // Redis going away mid-test: requests keep being served, with headers; when it
    // answers again, the instance goes back to it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_going_away_keeps_the_server_serving() {
        let Some(url) = redis_url() else {
            eprintln!("TEST_REDIS_URL is not set: Redis test skipped");
            return;
        };
        let target = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
        let relay = Relay::start(target).await;
        let relayed = format!("redis://127.0.0.1:{}", relay.port);
        run_with(Backend::Sqlite, shared(relayed, 1.0), |h| {
            Box::pin(async move {
                let mut guard = h.app().await;
                let app = &mut *guard;
                let key = app.admin_key.clone();
                assert_eq!(get(app, "/api/v1/me", &key).await.status, 200);
                assert_eq!(app.service.limits().redis_up(), Some(true));
                relay.cut();
                for _ in 0..10 {
                    let me = get(app, "/api/v1/me", &key).await;
                    assert_eq!(me.status, 200, "served without Redis");
                    me.assert_headers("key");
                }
                assert_eq!(app.service.limits().redis_up(), Some(false));
                relay.restore();
                let deadline = Instant::now() + Duration::from_secs(10);
                while app.service.limits().redis_up() != Some(true) {
                    assert!(Instant::now() < deadline, "back to Redis within a few seconds");
                    let me = get(app, "/api/v1/me", &key).await;
                    assert_eq!(me.status, 200);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                relay.task.abort();
            })
        })
        .await;
    }
}
