//! In-process buckets: one keyed `governor` limiter per bucket (per plan, per class).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::{Bucket, Spec, Specs, Subject, Verdict};

/// Buckets hashed with foldhash (randomly seeded per map) rather than SipHash: three
/// to four lookups per request, keyed by ids this server made and by peer addresses.
type Hasher = foldhash::fast::RandomState;
type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K, Hasher>, C, StateInformationMiddleware>;

/// Buckets counted by IP come first in `Bucket::index` order.
const IP_BUCKETS: usize = 2;

pub(crate) struct Local<C: Clock = DefaultClock> {
    by_ip: Vec<Keyed<IpAddr, C>>,
    by_id: Vec<Keyed<String, C>>,
    clock: C,
}

fn quota(spec: &Spec) -> Quota {
    let burst = NonZeroU32::new(spec.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(spec.t).expect("a positive emission interval").allow_burst(burst)
}

fn keyed<K: std::hash::Hash + Eq + Clone, C: Clock>(spec: &Spec, clock: C) -> Keyed<K, C> {
    RateLimiter::dashmap_with_clock_and_hasher(quota(spec), clock, Hasher::default()).with_middleware()
}

impl Local<DefaultClock> {
    pub fn new(specs: &Specs) -> Self {
        Self::with_clock(specs, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Local<C> {
    pub fn with_clock(specs: &Specs, clock: C) -> Self {
        let mut by_ip = Vec::new();
        let mut by_id = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            if index < IP_BUCKETS {
                by_ip.push(keyed(spec, clock.clone()));
            } else {
                by_id.push(keyed(spec, clock.clone()));
            }
        }
        debug_assert!(matches!(specs.by_index(IP_BUCKETS - 1).bucket, Bucket::FailedAuth));
        Local { by_ip, by_id, clock }
    }

    /// Takes one request from `bucket` for `subject`.
    pub fn check(&self, specs: &Specs, bucket: Bucket, subject: Subject<'_>) -> Verdict {
        let index = bucket.index();
        let spec = specs.by_index(index);
        let take = || match subject {
            Subject::Ip(ip) if index < IP_BUCKETS => self.by_ip[index].check_key(&ip),
            Subject::Id(id) if index >= IP_BUCKETS => self.by_id[index - IP_BUCKETS].check_key(id),
            _ => unreachable!("bucket {bucket:?} is not counted by {subject:?}"),
        };
        // A refusal is decided once more on a fresh reading of the clock: `governor`
        // reads it before taking the cell, and a thread held off the CPU in between
        // (while others took cells at later times) was refused for the time it lost.
        // A refusal changes no state, so the second decision is the bucket's own.
        let outcome = take().or_else(|_| take());
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Full again once the `burst - remaining` cells taken have drained.
                Verdict::Admitted { remaining, reset: spec.t * spec.burst.saturating_sub(remaining) }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Verdict::Refused { wait, reset: wait + spec.tau() }
            }
        }
    }

    /// Drops every bucket that is full again.
    pub fn evict_idle(&self) {
        for limiter in &self.by_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in &self.by_id {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    pub fn len(&self) -> usize {
        self.by_ip.iter().map(|l| l.len()).sum::<usize>() + self.by_id.iter().map(|l| l.len()).sum::<usize>()
    }
}
