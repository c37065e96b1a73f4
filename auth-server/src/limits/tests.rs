//! The engine on a fake clock, and the Redis script against `governor` on the same
//! sequence of requests (when `TEST_REDIS_URL` is set).

use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use poem::http::HeaderMap;

use super::local::Local;
use super::redis_store::RedisStore;
use super::*;

fn specs(scale: f64) -> Specs {
    Specs::new(&LimitsConfig { rate_limit_time_scale: scale, ..LimitsConfig::default() })
}

fn admitted(v: Verdict) -> bool {
    matches!(v, Verdict::Admitted { .. })
}

#[test]
fn every_bucket_admits_its_burst_then_refuses_until_one_interval_passed() {
    let specs = specs(1.0);
    let clock = FakeRelativeClock::default();
    let local = Local::with_clock(&specs, clock.clone());
    let id = "key_1".to_owned();
    for spec in specs.iter() {
        let subject = match spec.bucket {
            Bucket::Ip | Bucket::FailedAuth => Subject::Ip([10, 0, 0, 1].into()),
            _ => Subject::Id(&id),
        };
        for n in 0..spec.burst {
            let verdict = local.check(&specs, spec.bucket, subject);
            assert_eq!(
                verdict,
                Verdict::Admitted { remaining: spec.burst - n - 1, reset: spec.t * (n + 1) },
                "{:?} request {n}",
                spec.bucket
            );
        }
        let Verdict::Refused { wait, reset } = local.check(&specs, spec.bucket, subject) else {
            panic!("{:?} admitted more than its burst", spec.bucket);
        };
        assert_eq!(wait, spec.t, "{:?}", spec.bucket);
        assert_eq!(reset, spec.t * spec.burst, "{:?}", spec.bucket);
        clock.advance(spec.t);
        assert!(admitted(local.check(&specs, spec.bucket, subject)), "{:?} after its wait", spec.bucket);
        assert!(!admitted(local.check(&specs, spec.bucket, subject)), "{:?} one cell only", spec.bucket);
        clock.advance(spec.t * spec.burst);
    }
}

#[test]
fn quotas_are_the_seeds_and_scale_divides_windows() {
    let specs = specs(60.0);
    let list = specs.get(Bucket::Class(Class::List));
    assert_eq!((list.limit, list.burst, list.window_secs), (100, 200, 1));
    assert_eq!(list.t, Duration::from_micros(10_000));
    assert_eq!(list.policy, "\"list\";q=100;w=1");
    let report = specs.get(Bucket::Class(Class::Report));
    assert_eq!((report.limit, report.burst, report.window_secs), (10, 20, 60));
    let specs = super::Specs::new(&LimitsConfig::default());
    let expected = [
        (Bucket::Key(Plan::Starter), 30, 30),
        (Bucket::Key(Plan::Growth), 60, 60),
        (Bucket::Key(Plan::Scale), 120, 120),
        (Bucket::Key(Plan::Pro), 120, 120),
        (Bucket::Org(Plan::Starter), 60, 60),
        (Bucket::Org(Plan::Growth), 120, 120),
        (Bucket::Org(Plan::Scale), 240, 240),
        (Bucket::Org(Plan::Pro), 480, 480),
        (Bucket::Class(Class::Auth), 10, 20),
        (Bucket::Class(Class::Detail), 200, 400),
        (Bucket::Class(Class::Write), 50, 100),
        (Bucket::Class(Class::Bulk), 5, 10),
        (Bucket::Ip, 1200, 1200),
        (Bucket::FailedAuth, 30, 60),
    ];
    for (bucket, limit, burst) in expected {
        let spec = specs.get(bucket);
        assert_eq!((spec.limit, spec.burst), (limit, burst), "{bucket:?}");
    }
    assert_eq!(specs.get(Bucket::Class(Class::Report)).policy, "\"report\";q=10;w=3600");
}

#[test]
fn idle_buckets_are_evicted() {
    let specs = specs(1.0);
    let clock = FakeRelativeClock::default();
    let local = Local::with_clock(&specs, clock.clone());
    for i in 0..1000u32 {
        local.check(&specs, Bucket::Ip, Subject::Ip(std::net::IpAddr::from(i.to_be_bytes())));
    }
    assert_eq!(local.len(), 1000);
    clock.advance(Duration::from_secs(61));
    local.evict_idle();
    assert_eq!(local.len(), 0);
}

#[tokio::test]
async fn headers_name_the_deciding_bucket_and_every_policy() {
    let specs = specs(1.0);
    let mut headers = HeaderMap::new();
    context::scope(None, async {
        context::record(Bucket::Ip, Verdict::Admitted { remaining: 1100, reset: Duration::from_secs(5) });
        context::record(Bucket::Key(Plan::Starter), Verdict::Admitted { remaining: 3, reset: Duration::from_millis(54_500) });
        context::record(Bucket::Class(Class::List), Verdict::Admitted { remaining: 150, reset: Duration::from_secs(30) });
        context::record(Bucket::Org(Plan::Starter), Verdict::Admitted { remaining: 20, reset: Duration::from_secs(40) });
        context::write_headers(&specs, &mut headers);
    })
    .await;
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(get("x-ratelimit-limit").as_deref(), Some("30"));
    assert_eq!(get("x-ratelimit-remaining").as_deref(), Some("3"));
    assert_eq!(get("x-ratelimit-reset").as_deref(), Some("55"));
    assert_eq!(
        get("ratelimit-policy").as_deref(),
        Some("\"ip\";q=1200;w=60, \"key\";q=30;w=60, \"list\";q=100;w=60, \"org\";q=60;w=60")
    );
    assert_eq!(get("ratelimit").as_deref(), Some("\"key\";r=3;t=55"));
    assert!(get("retry-after").is_none());

    let mut headers = HeaderMap::new();
    context::scope(None, async {
        context::record(Bucket::Ip, Verdict::Admitted { remaining: 1100, reset: Duration::from_secs(5) });
        context::record(Bucket::Class(Class::Write), Verdict::Refused { wait: Duration::from_millis(1), reset: Duration::from_secs(119) });
        context::write_headers(&specs, &mut headers);
    })
    .await;
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(get("retry-after").as_deref(), Some("1"), "rounded up, never 0");
    assert_eq!(get("ratelimit").as_deref(), Some("\"write\";r=0;t=119"));
    assert_eq!(get("x-ratelimit-limit").as_deref(), Some("100"));
}

fn test_redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty())
}

/// The Lua script and `governor` give the same verdicts on the same requests.
#[tokio::test]
async fn redis_script_decides_exactly_as_governor() {
    let Some(url) = test_redis_url() else {
        eprintln!("TEST_REDIS_URL is not set: Redis parity skipped");
        return;
    };
    let specs = specs(1.0);
    let clock = FakeRelativeClock::default();
    let local = Local::with_clock(&specs, clock.clone());
    let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
    let redis = RedisStore::new(&url, &prefix).expect("redis url");
    redis.start().await;
    let (key, org) = ("key_parity".to_owned(), "org_parity".to_owned());
    let items = [
        (Bucket::Key(Plan::Starter), Subject::Id(&key)),
        (Bucket::Class(Class::Bulk), Subject::Id(&key)),
        (Bucket::Org(Plan::Starter), Subject::Id(&org)),
    ];
    let base_us: u64 = 1_700_000_000_000_000;
    let mut elapsed_us: u64 = 0;
    let mut seed: u64 = 42;
    let (mut admitted_count, mut refused_count) = (0, 0);
    for step in 0..400 {
        // Bursts of back-to-back requests with pauses of up to 4 s between them.
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let pause = if seed >> 60 < 10 { 0 } else { (seed >> 20) % 4_000_000 };
        clock.advance(Duration::from_micros(pause));
        elapsed_us += pause;
        let shared = redis.check_at(&specs, &items, Some(base_us + elapsed_us)).await.expect("Redis answers");
        let mut here = Verdicts::default();
        for &(bucket, subject) in &items {
            let verdict = local.check(&specs, bucket, subject);
            here.push(verdict);
            if !admitted(verdict) {
                break;
            }
        }
        let shared: Vec<Verdict> = shared.iter().collect();
        let here: Vec<Verdict> = here.iter().collect();
        assert_eq!(shared.len(), here.len(), "step {step}: {shared:?} vs {here:?}");
        for (s, h) in shared.iter().zip(&here) {
            match (s, h) {
                (Verdict::Admitted { remaining: a, .. }, Verdict::Admitted { remaining: b, .. }) => {
                    assert_eq!(a, b, "step {step}")
                }
                (Verdict::Refused { wait: a, .. }, Verdict::Refused { wait: b, .. }) => assert_eq!(a, b, "step {step}"),
                _ => panic!("step {step}: Redis {s:?}, governor {h:?}"),
            }
        }
        if here.iter().all(|v| admitted(*v)) {
            admitted_count += 1;
        } else {
            refused_count += 1;
        }
    }
    assert!(admitted_count > 20 && refused_count > 20, "{admitted_count} admitted, {refused_count} refused");
}

/// Checks sent at once, over one multiplexed connection, are each decided atomically:
/// at one instant, three credentials of one Starter organization (key burst 30 each,
/// org burst 60) get exactly the org's 60 between them, each refusal stops at the
/// bucket that refused, and every check gets an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redis_checks_are_decided_atomically() {
    let Some(url) = test_redis_url() else {
        eprintln!("TEST_REDIS_URL is not set: concurrent Redis checks skipped");
        return;
    };
    let specs = Arc::new(specs(1.0));
    let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
    let redis = Arc::new(RedisStore::new(&url, &prefix).expect("redis url"));
    redis.start().await;
    let now_us: u64 = 1_700_000_000_000_000;
    let org = "org_batch".to_owned();
    let checks = (0..400).map(|i| {
        let (redis, specs, org) = (redis.clone(), specs.clone(), org.clone());
        tokio::spawn(async move {
            let key = format!("key_batch_{}", i % 3);
            let items = [
                (Bucket::Key(Plan::Starter), Subject::Id(&key)),
                (Bucket::Class(Class::List), Subject::Id(&key)),
                (Bucket::Org(Plan::Starter), Subject::Id(&org)),
            ];
            redis.check_at(&specs, &items, Some(now_us)).await.expect("Redis answers").iter().collect::<Vec<_>>()
        })
    });
    let answers = futures::future::join_all(checks).await;
    let (mut admitted_all, mut refused_by_org) = (0, 0);
    for answer in answers {
        let verdicts = answer.expect("check task");
        match verdicts.as_slice() {
            [a, b, c] if admitted(*a) && admitted(*b) && admitted(*c) => admitted_all += 1,
            [a, b, Verdict::Refused { .. }] if admitted(*a) && admitted(*b) => refused_by_org += 1,
            [Verdict::Refused { .. }] => {}
            other => panic!("unexpected verdicts {other:?}"),
        }
    }
    assert_eq!(admitted_all, 60, "the org's burst, shared by the three keys");
    // Each key's own burst (30) passed its key bucket: 90 reached the org bucket, which
    // refused the 30 beyond its 60; the rest of the 400 were refused by the key bucket.
    assert_eq!(refused_by_org, 30, "{admitted_all} admitted");
}

/// Two instances flooding one credential's buckets through leases admit together the
/// burst of its tightest bucket, no more, in far fewer script calls than checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_admit_no_more_than_the_shared_buckets() {
    let Some(url) = test_redis_url() else {
        eprintln!("TEST_REDIS_URL is not set: Redis leases skipped");
        return;
    };
    let specs = Arc::new(specs(1.0));
    let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
    let mut instances = Vec::new();
    for _ in 0..2 {
        let redis = Arc::new(RedisStore::new(&url, &prefix).expect("redis url"));
        redis.start().await;
        instances.push(redis);
    }
    // The detail class: burst 400, one more every 0.3 s; the Pro org: burst 480.
    let (key, org) = ("key_lease".to_owned(), "org_lease".to_owned());
    let started = std::time::Instant::now();
    let floods = (0..4).map(|i| {
        let (redis, specs, key, org) = (instances[i % 2].clone(), specs.clone(), key.clone(), org.clone());
        tokio::spawn(async move {
            let items = [(Bucket::Class(Class::Detail), Subject::Id(&key)), (Bucket::Org(Plan::Pro), Subject::Id(&org))];
            let mut admitted_here = 0;
            loop {
                let verdicts = redis.check(&specs, &items).await.expect("Redis answers");
                if verdicts.iter().all(admitted) && verdicts.iter().count() == 2 {
                    admitted_here += 1;
                } else {
                    return admitted_here;
                }
            }
        })
    });
    let mut total = 0;
    for flood in futures::future::join_all(floods).await {
        total += flood.expect("flood task");
    }
    let refills = (started.elapsed().as_secs_f64() / 0.3).ceil() as usize;
    assert!((400..=400 + refills).contains(&total), "admitted {total}; the burst is 400 (+{refills} refilled)");
    let calls: u64 = instances.iter().map(|r| r.calls()).sum();
    assert!(calls < 100, "{calls} script calls for {total} admissions: two checks at most per call without leases");
}

/// What a lease did not hand out goes back to Redis once it expires, so another
/// instance finds it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_gives_back_what_it_did_not_hand_out() {
    let Some(url) = test_redis_url() else {
        eprintln!("TEST_REDIS_URL is not set: Redis leases skipped");
        return;
    };
    let specs = specs(1.0);
    let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
    let (one, other) = (RedisStore::new(&url, &prefix).expect("redis url"), RedisStore::new(&url, &prefix).expect("redis url"));
    one.start().await;
    other.start().await;
    let key = "key_give_back".to_owned();
    let items = [(Bucket::Class(Class::Detail), Subject::Id(&key))];
    let started = std::time::Instant::now();
    for n in 0..50 {
        let verdicts = one.check(&specs, &items).await.expect("Redis answers");
        assert!(matches!(verdicts.iter().next(), Some(Verdict::Admitted { remaining, .. }) if remaining >= 349 - n), "{verdicts:?}");
    }
    let held = one.leased(&items).expect("a lease");
    assert!(held > 0, "leases of 1, 2, 4, 8, 16, 32 cover 50 with some left");
    tokio::time::sleep(super::leases::LEASE_TTL * 4).await;
    assert_eq!(one.leased(&items), None, "swept");
    let refills = (started.elapsed().as_secs_f64() / 0.3).ceil() as u32;
    match other.check(&specs, &items).await.expect("Redis answers").iter().next() {
        // 400, less the 50 handed out and this one.
        Some(Verdict::Admitted { remaining, .. }) => {
            assert!((349..=349 + refills).contains(&remaining), "{remaining} left: the {held} not handed out came back")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_client_ip_is_the_peer_unless_forwarded_for_is_trusted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = crate::db::Db::connect(None, dir.path(), 1).await.expect("db");
    let request = || {
        poem::Request::builder().header("x-forwarded-for", "203.0.113.9, 198.51.100.7").finish()
    };
    let peer_only = Limits::new(&LimitsConfig::default(), db.clone()).expect("limits");
    assert_eq!(peer_only.client_ip(&request()), None, "no peer address in a built request, and XFF ignored");
    let trusting = Limits::new(&LimitsConfig { trust_forwarded_for: true, ..LimitsConfig::default() }, db).expect("limits");
    assert_eq!(trusting.client_ip(&request()), Some("198.51.100.7".parse().unwrap()), "the entry the proxy appended");
}

/// The limiter's cost per request on the hot path (per-IP gate, the principal's three
/// buckets, the headers). `cargo test --release -p breadbox-auth --lib hot_path -- --ignored --nocapture`
#[tokio::test(flavor = "current_thread")]
#[ignore]
async fn hot_path_cost() {
    use crate::principal::{CredentialKind, Environment, Principal};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = crate::db::Db::connect(None, dir.path(), 1).await.expect("db");
    let config = LimitsConfig { rate_limit_time_scale: 1e6, rate_limit_per_ip: 4_000_000_000, ..LimitsConfig::default() };
    let limits = Limits::new(&config, db).expect("limits");
    // Many credentials and orgs, so that no bucket empties at this pace.
    let principals: Vec<Principal> = (0..1000)
        .map(|i| Principal {
            org_id: format!("org_bench{i}"),
            env: Environment::Live,
            scopes: crate::scope::ScopeSet::parse("accounts:read").expect("scope"),
            credential_id: format!("key_bench{i}"),
            kind: CredentialKind::ApiKey,
            token_id: None,
        })
        .collect();
    for p in &principals {
        limits.plans.insert(p.org_id.clone(), (Plan::Pro, std::time::Instant::now() + PLAN_TTL * 100));
    }
    let ip: std::net::IpAddr = [127, 0, 0, 1].into();
    let n = 200_000u32;
    let time = |label: &str, started: std::time::Instant| eprintln!("{label}: {:?} per request", started.elapsed() / n);
    let started = std::time::Instant::now();
    for _ in 0..n {
        context::scope(Some(ip), async { limits.gate(Some(ip)).expect("admitted") }).await;
    }
    time("per-IP gate", started);
    let started = std::time::Instant::now();
    for i in 0..n {
        let principal = &principals[i as usize % principals.len()];
        context::scope(Some(ip), async { limits.check_principal(principal, Class::Detail).await.expect("admitted") }).await;
    }
    time("principal buckets", started);
    let started = std::time::Instant::now();
    for i in 0..n {
        let principal = &principals[i as usize % principals.len()];
        let mut headers = HeaderMap::new();
        context::scope(Some(ip), async {
            limits.gate(Some(ip)).expect("admitted");
            limits.check_principal(principal, Class::Detail).await.expect("admitted");
            context::write_headers(&limits.specs, &mut headers);
        })
        .await;
        assert!(headers.contains_key("ratelimit"));
    }
    time("limiter hot path, headers included", started);
}
