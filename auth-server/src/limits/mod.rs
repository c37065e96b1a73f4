//! Rate limits (DESIGN.md, "Rate limits"): GCRA buckets per client IP, per failed
//! authentication from an IP, per credential and per organization by plan, and per
//! endpoint class per credential. Every request passes every bucket that applies, in
//! a fixed order; the first that refuses decides, and the decision reaches the
//! response headers through a task-local ([`context`]).
//!
//! Buckets live in process (`governor`) or, with a Redis URL, in Redis (the same GCRA
//! in a Lua script, each check atomic; concurrent checks share a script call; a flood of
//! one credential takes several admissions at a time, [`leases`]). When Redis fails the
//! in-process buckets take over (fail-open for availability) until Redis answers again.

mod class;
mod config;
pub mod context;
mod leases;
mod local;
mod redis_store;
mod spec;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use poem::Request;
use quick_cache::sync::Cache;

use crate::db::Db;
use crate::principal::{Plan, Principal};
use crate::repo;

pub use class::{class_of, Class};
pub use config::{LimitsConfig, Switch};
pub use context::{current_ip, Decision};
pub(crate) use spec::{Spec, Specs};

use local::Local;
use redis_store::RedisStore;

/// How long an organization's plan is trusted before it is read again. A plan changed
/// on this instance applies at once; one changed elsewhere within this.
pub const PLAN_TTL: Duration = Duration::from_secs(5);
/// How often idle buckets are dropped from memory.
pub const EVICT_EVERY: Duration = Duration::from_secs(10);
/// Organizations whose plan is kept in memory.
const PLAN_CACHE_CAPACITY: usize = 100_000;
/// IPs remembered as blocked for failed authentications.
const BLOCKED_CAPACITY: usize = 100_000;
/// Buckets checked together at most (a principal's key, class and org).
pub(crate) const MAX_ITEMS: usize = 4;

/// One bucket of the limiter: what it counts and by which quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Every request from one client IP.
    Ip,
    /// Failed authentications from one client IP.
    FailedAuth,
    /// Requests of one credential (API key or OAuth client), by its organization's plan.
    Key(Plan),
    /// Requests of one credential to one endpoint class.
    Class(Class),
    /// Requests of every credential of one organization, by its plan.
    Org(Plan),
}

pub(crate) const PLANS: [Plan; 4] = [Plan::Starter, Plan::Growth, Plan::Scale, Plan::Pro];
/// Number of distinct buckets (their indices are dense, in check order).
pub(crate) const BUCKETS: usize = 2 + 4 + 6 + 4;

fn plan_index(plan: Plan) -> usize {
    match plan {
        Plan::Starter => 0,
        Plan::Growth => 1,
        Plan::Scale => 2,
        Plan::Pro => 3,
    }
}

impl Bucket {
    /// Dense index, in the order buckets are checked and listed in headers.
    pub(crate) fn index(self) -> usize {
        match self {
            Bucket::Ip => 0,
            Bucket::FailedAuth => 1,
            Bucket::Key(plan) => 2 + plan_index(plan),
            Bucket::Class(class) => 6 + class.index(),
            Bucket::Org(plan) => 12 + plan_index(plan),
        }
    }

    pub(crate) fn all() -> impl Iterator<Item = Bucket> {
        [Bucket::Ip, Bucket::FailedAuth]
            .into_iter()
            .chain(PLANS.map(Bucket::Key))
            .chain(Class::ALL.map(Bucket::Class))
            .chain(PLANS.map(Bucket::Org))
    }

    /// The name in `RateLimit-Policy` / `RateLimit` and in 429 messages.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Ip => "ip",
            Bucket::FailedAuth => "failed-auth",
            Bucket::Key(_) => "key",
            Bucket::Class(class) => class.as_str(),
            Bucket::Org(_) => "org",
        }
    }

    /// Whom the bucket counts, for messages.
    pub fn counted_per(self) -> &'static str {
        match self {
            Bucket::Ip => "client IP",
            Bucket::FailedAuth => "client IP (failed authentications)",
            Bucket::Key(_) | Bucket::Class(_) => "credential",
            Bucket::Org(_) => "organization",
        }
    }
}

/// What a bucket is counted by.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Subject<'a> {
    Ip(IpAddr),
    Id(&'a String),
}

/// The verdict of one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Admitted; `remaining` more would be admitted now; full again after `reset`.
    Admitted { remaining: u32, reset: Duration },
    /// Refused; a request would be admitted after `wait`; full again after `reset`.
    Refused { wait: Duration, reset: Duration },
}

/// Verdicts of the buckets of one check, in order, up to the first refusal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdicts {
    items: [Option<Verdict>; MAX_ITEMS],
    len: usize,
}

impl Verdicts {
    pub(crate) fn push(&mut self, verdict: Verdict) {
        if self.len < MAX_ITEMS {
            self.items[self.len] = Some(verdict);
            self.len += 1;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Verdict> + '_ {
        self.items[..self.len].iter().flatten().copied()
    }
}

/// A request refused by a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub bucket: Bucket,
    /// How long until a request would be admitted.
    pub wait: Duration,
    limit: u32,
    window_secs: u64,
    burst: u32,
}

impl Refusal {
    /// `Retry-After` in whole seconds: rounded up, never 0.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.wait)
    }

    /// A sentence naming the bucket, its quota and the wait.
    pub fn message(&self) -> String {
        format!(
            "rate limit exceeded: the `{}` bucket allows {} requests per {} s (burst {}) per {}; retry after {} s",
            self.bucket.name(),
            self.limit,
            self.window_secs,
            self.burst,
            self.bucket.counted_per(),
            self.retry_after_secs()
        )
    }
}

/// Whole seconds, rounded up, at least 1.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// The rate limiter of one instance.
pub struct Limits {
    enabled: bool,
    trust_forwarded_for: bool,
    specs: Specs,
    local: Local,
    redis: Option<RedisStore>,
    db: Db,
    plans: Cache<String, (Plan, Instant)>,
    /// IPs whose failed-authentication bucket refused, until when.
    blocked: Cache<IpAddr, Instant>,
    /// When the latest block in `blocked` ends, in ms after `started` (0: none ever):
    /// once past, no IP is blocked, and requests skip the lookup.
    blocked_until_ms: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("enabled", &self.enabled)
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(config: &LimitsConfig, db: Db) -> Result<Limits, ::redis::RedisError> {
        let specs = Specs::new(config);
        let redis = match (config.enabled(), config.redis_url.trim()) {
            (true, url) if !url.is_empty() => Some(RedisStore::new(url, &config.redis_key_prefix)?),
            _ => None,
        };
        Ok(Limits {
            enabled: config.enabled(),
            trust_forwarded_for: config.trust_forwarded_for,
            local: Local::new(&specs),
            specs,
            redis,
            db,
            plans: Cache::new(PLAN_CACHE_CAPACITY),
            blocked: Cache::new(BLOCKED_CAPACITY),
            blocked_until_ms: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether buckets are shared through Redis (when it answers).
    pub fn uses_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// With Redis: whether it answered the last attempt. `None` without Redis.
    pub fn redis_up(&self) -> Option<bool> {
        self.redis.as_ref().map(RedisStore::is_up)
    }

    /// Connects to Redis, when configured, so that the first requests are shared too.
    /// An unreachable Redis is not an error: the in-process buckets serve meanwhile.
    pub async fn connect(&self) {
        if let Some(redis) = &self.redis {
            redis.start().await;
        }
    }

    /// The client's IP: the peer address, or the last `X-Forwarded-For` entry when
    /// configured to trust it.
    pub fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            let forwarded = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .next_back();
            if forwarded.is_some() {
                return forwarded;
            }
        }
        req.remote_addr().as_socket_addr().map(|a| a.ip())
    }

    /// Runs `inner` as one request: the per-IP buckets first (answered by `refuse`
    /// when they refuse, before any credential work), then the rate-limit headers of
    /// whatever was decided during the request on the response.
    pub async fn serve<Fut>(
        &self,
        ip: Option<IpAddr>,
        refuse: impl FnOnce(&Refusal) -> poem::Response,
        inner: impl FnOnce() -> Fut,
    ) -> poem::Response
    where
        Fut: std::future::Future<Output = poem::Response>,
    {
        if !self.enabled {
            return inner().await;
        }
        context::scope(ip, async {
            let mut response = match self.gate(ip) {
                Err(refusal) => refuse(&refusal),
                Ok(()) => inner().await,
            };
            context::write_headers(&self.specs, response.headers_mut());
            response
        })
        .await
    }

    /// The all-requests IP bucket, and the block after too many failed authentications.
    fn gate(&self, ip: Option<IpAddr>) -> Result<(), Refusal> {
        let Some(ip) = ip else { return Ok(()) };
        let verdict = self.local.check(&self.specs, Bucket::Ip, Subject::Ip(ip));
        self.record(Bucket::Ip, verdict)?;
        if !self.any_blocked() {
            return Ok(());
        }
        if let Some(until) = self.blocked.get(&ip) {
            let now = Instant::now();
            if until > now {
                let wait = until - now;
                let reset = wait + self.specs.get(Bucket::FailedAuth).tau();
                return self.record(Bucket::FailedAuth, Verdict::Refused { wait, reset });
            }
            self.blocked.remove(&ip);
        }
        Ok(())
    }

    /// Whether some IP may still be blocked (a block recorded here has not ended yet).
    fn any_blocked(&self) -> bool {
        let until_ms = self.blocked_until_ms.load(Ordering::Relaxed);
        until_ms != 0 && self.started.elapsed().as_millis() < u128::from(until_ms)
    }

    /// Counts a failed authentication from the current request's IP. Refused when the
    /// IP has failed too often: the IP is then blocked until its bucket admits again.
    pub async fn note_auth_failure(&self) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        let Some(ip) = current_ip() else { return Ok(()) };
        let verdicts = self.check(&[(Bucket::FailedAuth, Subject::Ip(ip))]).await;
        let verdict = verdicts.iter().next().expect("one verdict");
        if let Verdict::Refused { wait, .. } = verdict {
            let until = Instant::now() + wait;
            self.blocked.insert(ip, until);
            // Rounded up, so that a block is never taken for over while it lasts.
            let until_ms = until.duration_since(self.started).as_millis().saturating_add(1);
            self.blocked_until_ms.fetch_max(u64::try_from(until_ms).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        self.record(Bucket::FailedAuth, verdict)
    }

    /// The buckets of an authenticated API request: the credential's, the endpoint
    /// class's (per credential) and the organization's, in that order.
    pub async fn check_principal(&self, principal: &Principal, class: Class) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        let plan = self.plan_of(&principal.org_id).await;
        let items = [
            (Bucket::Key(plan), Subject::Id(&principal.credential_id)),
            (Bucket::Class(class), Subject::Id(&principal.credential_id)),
            (Bucket::Org(plan), Subject::Id(&principal.org_id)),
        ];
        let verdicts = self.check(&items).await;
        self.record_all(&items, &verdicts)
    }

    /// The `auth` class bucket of an OAuth client that authenticated at the token,
    /// introspection or revocation endpoint.
    pub async fn check_client(&self, client_id: &String) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        let items = [(Bucket::Class(Class::Auth), Subject::Id(client_id))];
        let verdicts = self.check(&items).await;
        self.record_all(&items, &verdicts)
    }

    /// Checks `items` in order, in Redis when configured and answering, else here.
    async fn check(&self, items: &[(Bucket, Subject<'_>)]) -> Verdicts {
        if let Some(redis) = &self.redis {
            if let Some(verdicts) = redis.check(&self.specs, items).await {
                return verdicts;
            }
        }
        let mut verdicts = Verdicts::default();
        for &(bucket, subject) in items {
            let verdict = self.local.check(&self.specs, bucket, subject);
            verdicts.push(verdict);
            if matches!(verdict, Verdict::Refused { .. }) {
                break;
            }
        }
        verdicts
    }

    /// Notes the verdicts of `items` (each bucket's, in order, up to the first refusal)
    /// in one access to the request's context; the refusal, if any, is the error.
    fn record_all(&self, items: &[(Bucket, Subject<'_>)], verdicts: &Verdicts) -> Result<(), Refusal> {
        let mut checked = verdicts.iter();
        // Buckets after a refusal were not checked: only their policies apply.
        context::record_each(items.iter().map(|&(bucket, _)| (bucket, checked.next())));
        match items.iter().zip(verdicts.iter()).find(|(_, v)| matches!(v, Verdict::Refused { .. })) {
            Some((&(bucket, _), verdict)) => self.outcome(bucket, verdict),
            None => Ok(()),
        }
    }

    /// Notes a verdict for the response headers; a refusal becomes the error.
    fn record(&self, bucket: Bucket, verdict: Verdict) -> Result<(), Refusal> {
        context::record(bucket, verdict);
        self.outcome(bucket, verdict)
    }

    /// A refusal as the error (and counted), an admission as `Ok`.
    fn outcome(&self, bucket: Bucket, verdict: Verdict) -> Result<(), Refusal> {
        match verdict {
            Verdict::Admitted { .. } => Ok(()),
            Verdict::Refused { wait, .. } => {
                metrics::counter!("breadbox_rate_limited_total", "bucket" => bucket.name()).increment(1);
                let spec = self.specs.get(bucket);
                Err(Refusal { bucket, wait, limit: spec.limit, window_secs: spec.window_secs, burst: spec.burst })
            }
        }
    }

    /// The plan of an organization, from memory when read less than `PLAN_TTL` ago.
    async fn plan_of(&self, org_id: &str) -> Plan {
        let cached = self.plans.get(org_id);
        if let Some((plan, at)) = cached {
            if at.elapsed() < PLAN_TTL {
                return plan;
            }
        }
        match repo::orgs::get(self.db.pool(), org_id).await {
            Ok(Some(org)) => {
                let plan = org.plan.parse().unwrap_or(Plan::Starter);
                self.plans.insert(org_id.to_owned(), (plan, Instant::now()));
                plan
            }
            Ok(None) => Plan::Starter,
            Err(err) => {
                // Availability first: keep the last known plan, else the most generous.
                tracing::warn!(error = %err, "could not read an organization's plan");
                cached.map(|(plan, _)| plan).unwrap_or(Plan::Pro)
            }
        }
    }

    /// Forgets a cached plan, so that a change applies to the next request.
    pub fn forget_plan(&self, org_id: &str) {
        self.plans.remove(org_id);
    }

    /// Drops buckets that are full again (indistinguishable from new ones), so memory
    /// follows the number of recently active keys and IPs, not all ever seen.
    pub fn evict_idle(&self) {
        self.local.evict_idle();
        let now = Instant::now();
        self.blocked.retain(|_, until| *until > now);
    }

    /// Buckets held in memory (an estimate), for tests and metrics.
    pub fn local_len(&self) -> usize {
        self.local.len()
    }
}

#[cfg(test)]
mod tests;
