//! The rate-limit decision of the request being answered, carried in a task-local
//! from the checks (middleware, `Auth` extractor, token endpoint) to the response
//! headers: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`, the
//! IETF `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-11)
//! and, on a refusal, `Retry-After`.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::LazyLock;

use poem::http::{header, HeaderMap, HeaderName, HeaderValue};

use super::{ceil_secs, Bucket, Specs, Verdict};

pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Buckets one request can pass at most.
const MAX_APPLIED: usize = 6;
/// Numbers below this have their header value made once (see [`number`]).
const SMALL_NUMBERS: u64 = 4096;
/// Room for the `RateLimit` field: the longest bucket name and two 20-digit numbers.
const FIELD_LEN: usize = 80;

/// `n` as a header value. The small numbers the rate-limit headers carry are made
/// once, as static bytes, so that a response clones them instead of allocating.
pub(crate) fn number(n: u64) -> HeaderValue {
    static SMALL: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
        (0..SMALL_NUMBERS).map(|n| HeaderValue::from_static(Box::leak(n.to_string().into_boxed_str()))).collect()
    });
    match usize::try_from(n).ok().and_then(|i| SMALL.get(i)) {
        Some(value) => value.clone(),
        None => HeaderValue::from(n),
    }
}

tokio::task_local! {
    /// Boxed: a task-local scope moves its value in and out on every poll of the
    /// request's future, and a `Context` is 300 bytes.
    static CURRENT: RefCell<Box<Context>>;
}

struct Context {
    ip: Option<IpAddr>,
    decision: Decision,
}

/// Every bucket a request passed (or was refused by), in check order, and the
/// policies that apply to it (also those of buckets not reached after a refusal).
#[derive(Clone, Copy, Debug, Default)]
pub struct Decision {
    applied: [Option<(Bucket, Verdict)>; MAX_APPLIED],
    /// Bit `i` set when the bucket of index `i` applies.
    policies: u32,
}

impl Decision {
    fn record(&mut self, bucket: Bucket, verdict: Verdict) {
        self.policies |= 1 << bucket.index();
        for slot in self.applied.iter_mut() {
            match slot {
                Some((b, v)) if *b == bucket => {
                    *v = verdict;
                    return;
                }
                None => {
                    *slot = Some((bucket, verdict));
                    return;
                }
                Some(_) => {}
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (Bucket, Verdict)> + '_ {
        self.applied.iter().flatten().copied()
    }

    /// The bucket that refused, else the one with the least remaining (the longer
    /// reset on a tie).
    fn deciding(&self) -> Option<(Bucket, Verdict)> {
        if let Some(refused) = self.iter().find(|(_, v)| matches!(v, Verdict::Refused { .. })) {
            return Some(refused);
        }
        self.iter().min_by(|(_, a), (_, b)| match (a, b) {
            (
                Verdict::Admitted { remaining: ra, reset: ta },
                Verdict::Admitted { remaining: rb, reset: tb },
            ) => ra.cmp(rb).then(tb.cmp(ta)),
            _ => std::cmp::Ordering::Equal,
        })
    }

}

/// Runs `fut` as one request from `ip`, collecting its decision.
pub(crate) async fn scope<F: std::future::Future>(ip: Option<IpAddr>, fut: F) -> F::Output {
    CURRENT.scope(RefCell::new(Box::new(Context { ip, decision: Decision::default() })), fut).await
}

/// The client IP of the request being answered, when rate limiting is on.
pub fn current_ip() -> Option<IpAddr> {
    CURRENT.try_with(|c| c.borrow().ip).ok().flatten()
}

pub(crate) fn record(bucket: Bucket, verdict: Verdict) {
    let _ = CURRENT.try_with(|c| c.borrow_mut().decision.record(bucket, verdict));
}

/// Notes each bucket's verdict, or (`None`) that it applies but was not checked (an
/// earlier one refused), in one access to the task-local.
pub(crate) fn record_each(entries: impl Iterator<Item = (Bucket, Option<Verdict>)>) {
    let _ = CURRENT.try_with(|c| {
        let decision = &mut c.borrow_mut().decision;
        for (bucket, verdict) in entries {
            match verdict {
                Some(verdict) => decision.record(bucket, verdict),
                None => decision.policies |= 1 << bucket.index(),
            }
        }
    });
}

/// Writes the headers of the current request's decision (nothing outside a request
/// or when no bucket applied).
pub(crate) fn write_headers(specs: &Specs, headers: &mut HeaderMap) {
    let deciding = CURRENT.try_with(|c| {
        let decision = &c.borrow().decision;
        decision.deciding().map(|deciding| (deciding, decision.policies))
    });
    let Ok(Some(((bucket, verdict), policies))) = deciding else { return };
    let spec = specs.get(bucket);
    let (remaining, reset) = match verdict {
        Verdict::Admitted { remaining, reset } => (u64::from(remaining), ceil_secs(reset)),
        Verdict::Refused { wait, reset } => {
            headers.insert(header::RETRY_AFTER, number(ceil_secs(wait)));
            (0, ceil_secs(reset))
        }
    };
    headers.reserve(6);
    headers.insert(X_RATELIMIT_LIMIT, spec.limit_header.clone());
    headers.insert(X_RATELIMIT_REMAINING, number(remaining));
    headers.insert(X_RATELIMIT_RESET, number(reset));
    headers.insert(RATELIMIT_POLICY, specs.policy_header(policies));
    if let Ok(value) = HeaderValue::from_bytes(&ratelimit_field(bucket.name(), remaining, reset)) {
        headers.insert(RATELIMIT, value);
    }
}

/// The `RateLimit` field, `"name";r=remaining;t=reset`, written into a fixed buffer
/// with `itoa` (through `fmt`, a tenth of the limiter's instructions per request).
fn ratelimit_field(name: &str, remaining: u64, reset: u64) -> FieldBuf {
    let mut field = FieldBuf::new();
    field.push(b"\"");
    field.push(name.as_bytes());
    field.push(b"\";r=");
    field.push_number(remaining);
    field.push(b";t=");
    field.push_number(reset);
    field
}

/// Room for one `RateLimit` field; bytes past `FIELD_LEN` are dropped (the longest
/// bucket name and two 20-digit numbers take 62).
struct FieldBuf {
    bytes: [u8; FIELD_LEN],
    len: usize,
}

impl FieldBuf {
    fn new() -> Self {
        FieldBuf { bytes: [0; FIELD_LEN], len: 0 }
    }

    fn push(&mut self, part: &[u8]) {
        let n = part.len().min(FIELD_LEN - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&part[..n]);
        self.len += n;
    }

    fn push_number(&mut self, n: u64) {
        self.push(itoa::Buffer::new().format(n).as_bytes());
    }
}

impl std::ops::Deref for FieldBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratelimit_field_is_written_as_fmt_would() {
        for (name, remaining, reset) in [("list", 42, 17), ("failed-auth", 0, 1), ("org", u64::MAX, u64::MAX), ("ip", 10, 0)] {
            let field = ratelimit_field(name, remaining, reset);
            assert_eq!(std::str::from_utf8(&field), Ok(format!("\"{name}\";r={remaining};t={reset}").as_str()));
        }
    }
}
