//! The quota of every bucket (seeds 000 and 001), scaled by the configured time scale,
//! with the header values that never change precomputed.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::RwLock;
use poem::http::HeaderValue;

use super::{Bucket, Class, LimitsConfig, BUCKETS};
use crate::principal::Plan;

/// One bucket's quota: `limit` requests per `window`, up to `burst` at once.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub bucket: Bucket,
    /// Requests per window (the policy's `q`).
    pub limit: u32,
    /// The window in seconds after scaling (the policy's `w`), at least 1.
    pub window_secs: u64,
    /// Requests admitted at once from a full bucket.
    pub burst: u32,
    /// GCRA emission interval: one request per `t` on average.
    pub t: Duration,
    /// `"list";q=100;w=60`
    pub policy: String,
    /// `X-RateLimit-Limit`: the bucket's capacity (its burst).
    pub limit_header: HeaderValue,
}

impl Spec {
    /// GCRA tolerance: how far ahead of now the bucket's theoretical arrival time may be.
    pub fn tau(&self) -> Duration {
        self.t * (self.burst - 1)
    }
}

/// The unscaled quota of `bucket`: (requests, window in seconds, burst).
fn quota(bucket: Bucket, config: &LimitsConfig) -> (u32, u64, u32) {
    match bucket {
        Bucket::Ip => (config.rate_limit_per_ip, 60, config.rate_limit_per_ip),
        Bucket::FailedAuth => (config.rate_limit_failed_auth, 60, config.rate_limit_failed_auth.saturating_mul(2)),
        // Seed 000: per key and org-wide, by plan; burst = the per-minute limit.
        Bucket::Key(plan) => {
            let limit = match plan {
                Plan::Starter => 30,
                Plan::Growth => 60,
                Plan::Scale | Plan::Pro => 120,
            };
            (limit, 60, limit)
        }
        Bucket::Org(plan) => {
            let limit = match plan {
                Plan::Starter => 60,
                Plan::Growth => 120,
                Plan::Scale => 240,
                Plan::Pro => 480,
            };
            (limit, 60, limit)
        }
        // Seed 001: per endpoint type, with bursts.
        Bucket::Class(class) => match class {
            Class::Auth => (10, 60, 20),
            Class::List => (100, 60, 200),
            Class::Detail => (200, 60, 400),
            Class::Write => (50, 60, 100),
            Class::Report => (10, 3600, 20),
            Class::Bulk => (5, 60, 10),
        },
    }
}

/// Every bucket's spec, indexed by `Bucket::index`.
#[derive(Debug)]
pub(crate) struct Specs {
    specs: Vec<Spec>,
    /// `RateLimit-Policy` values by set of buckets (bit `i`: bucket of index `i`);
    /// requests pass a handful of distinct sets, so this stays tiny.
    policies: RwLock<HashMap<u32, HeaderValue, foldhash::fast::RandomState>>,
}

impl Specs {
    pub fn new(config: &LimitsConfig) -> Specs {
        let scale = if config.rate_limit_time_scale.is_finite() && config.rate_limit_time_scale > 0.0 {
            config.rate_limit_time_scale
        } else {
            1.0
        };
        let specs: Vec<Spec> = Bucket::all()
            .map(|bucket| {
                let (limit, window, burst) = quota(bucket, config);
                let scaled = window as f64 / scale;
                // Whole microseconds, so that the in-process and Redis buckets agree exactly.
                let micros = (scaled / f64::from(limit) * 1e6).round().max(1.0);
                let t = Duration::from_micros(micros as u64);
                let window_secs = (scaled.round() as u64).max(1);
                Spec {
                    bucket,
                    limit,
                    window_secs,
                    burst: burst.max(1),
                    t,
                    policy: format!("\"{}\";q={limit};w={window_secs}", bucket.name()),
                    limit_header: super::context::number(u64::from(burst.max(1))),
                }
            })
            .collect();
        debug_assert_eq!(specs.len(), BUCKETS);
        debug_assert!(specs.iter().enumerate().all(|(i, s)| s.bucket.index() == i));
        Specs { specs, policies: RwLock::new(HashMap::default()) }
    }

    /// `RateLimit-Policy` for the buckets in `mask`, in index (= check) order.
    pub fn policy_header(&self, mask: u32) -> HeaderValue {
        if let Some(value) = self.policies.read().get(&mask) {
            return value.clone();
        }
        let joined = self
            .specs
            .iter()
            .filter(|s| mask & (1 << s.bucket.index()) != 0)
            .map(|s| s.policy.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // Static bytes (a handful of sets, made once), so each response's clone is free.
        let value = HeaderValue::from_static(Box::leak(joined.into_boxed_str()));
        self.policies.write().insert(mask, value.clone());
        value
    }

    pub fn get(&self, bucket: Bucket) -> &Spec {
        &self.specs[bucket.index()]
    }

    pub fn by_index(&self, index: usize) -> &Spec {
        &self.specs[index]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Spec> {
        self.specs.iter()
    }
}
