//! Buckets shared by every instance, in Redis: the same GCRA as `governor`, as one Lua
//! script (EVALSHA) that checks all buckets of a request in one round trip. When Redis
//! fails, `check` answers `None` and the caller uses the in-process buckets; Redis is
//! tried again, in the background, every `RETRY_EVERY`.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Script};

use super::{Bucket, Specs, Subject, Verdict, Verdicts};

/// How often an unreachable Redis is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for a connection, and for an answer, before falling back.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA over KEYS in order, stopping at the first refusal, exactly as `governor`:
/// a bucket's state is its theoretical arrival time `tat`; a request at `now` is
/// refused when `now < tat - tau`, else `tat` becomes `max(tat, now) + t`.
/// ARGV[1]: now in microseconds, or '' for the server's clock (one clock for every
/// instance); ARGV[2i], ARGV[2i+1]: `t` and `tau` of KEYS[i] in microseconds.
/// Returns, per bucket checked: admitted (1/0), remaining, µs until full, µs to wait.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local out = {}
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i])
  local tau = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key)) or now
  if now < tat - tau then
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = tat - now
    out[#out + 1] = tat - tau - now
    return out
  end
  local new = math.max(tat, now) + t
  local ttl = math.max(1, math.ceil((new - now) / 1000))
  redis.call('SET', key, string.format('%.0f', new), 'PX', string.format('%.0f', ttl))
  out[#out + 1] = 1
  out[#out + 1] = math.floor(math.min(now + tau + t - new, tau + t) / t)
  out[#out + 1] = new - now
  out[#out + 1] = 0
end
return out
";

pub(crate) struct RedisStore {
    link: Arc<Link>,
    prefix: String,
    script: Script,
}

/// The connection and what is known of Redis's health, shared with the background
/// reconnection.
struct Link {
    client: Client,
    conn: Mutex<Option<ConnectionManager>>,
    up: AtomicBool,
    connecting: AtomicBool,
    /// No attempt before this many µs after `epoch`.
    retry_at: AtomicU64,
    epoch: Instant,
}

impl Link {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// One connection attempt (the caller set `connecting`).
    async fn connect(&self) -> Option<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_number_of_retries(1);
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT * 2, self.client.get_connection_manager_with_config(config)).await;
        let conn = match attempt {
            Ok(Ok(conn)) => {
                *self.conn.lock() = Some(conn.clone());
                Some(conn)
            }
            Ok(Err(err)) => {
                self.mark_down(&err);
                None
            }
            Err(_) => {
                self.mark_down(&"connection timed out");
                None
            }
        };
        self.connecting.store(false, Ordering::Release);
        conn
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!("Redis answers again: rate limits are shared again");
            metrics::gauge!("breadbox_rate_limit_redis_up").set(1.0);
        }
    }

    fn mark_down(&self, err: &dyn Display) {
        *self.conn.lock() = None;
        self.retry_at.store(self.now_us() + RETRY_EVERY.as_micros() as u64, Ordering::Relaxed);
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %err, "Redis unreachable: rate limits fall back to in-process buckets until it answers");
            metrics::gauge!("breadbox_rate_limit_redis_up").set(0.0);
        }
    }
}

impl RedisStore {
    pub fn new(url: &str, prefix: &str) -> RedisResult<RedisStore> {
        let link = Link {
            client: Client::open(url)?,
            conn: Mutex::new(None),
            up: AtomicBool::new(true),
            connecting: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        Ok(RedisStore { link: Arc::new(link), prefix: prefix.trim_end_matches(':').to_owned(), script: Script::new(GCRA) })
    }

    /// Whether the last attempt reached Redis.
    pub fn is_up(&self) -> bool {
        self.link.up.load(Ordering::Relaxed)
    }

    /// Connects at start, so that the first requests are shared too.
    pub async fn start(&self) {
        if self.link.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.link.connect().await.is_some() {
            tracing::info!("rate limits shared through Redis");
            metrics::gauge!("breadbox_rate_limit_redis_up").set(1.0);
        }
    }

    fn key(&self, bucket: Bucket, subject: Subject<'_>) -> String {
        let subject = match subject {
            Subject::Ip(ip) => ip.to_string(),
            Subject::Id(id) => id.clone(),
        };
        match bucket {
            Bucket::Key(plan) | Bucket::Org(plan) => format!("{}:{}:{}:{subject}", self.prefix, bucket.name(), plan),
            _ => format!("{}:{}:{subject}", self.prefix, bucket.name()),
        }
    }

    /// The connection, or `None` while there is none: then, at most every
    /// `RETRY_EVERY`, a reconnection starts in the background (requests never wait
    /// for it).
    fn connection(&self) -> Option<ConnectionManager> {
        if let Some(conn) = self.link.conn.lock().clone() {
            return Some(conn);
        }
        let link = &self.link;
        if link.now_us() >= link.retry_at.load(Ordering::Relaxed) && !link.connecting.swap(true, Ordering::AcqRel) {
            let link = link.clone();
            tokio::spawn(async move { link.connect().await });
        }
        None
    }

    /// Checks `items` in Redis; `None` when Redis did not answer (the caller falls back).
    pub async fn check(&self, specs: &Specs, items: &[(Bucket, Subject<'_>)]) -> Option<Verdicts> {
        self.check_at(specs, items, None).await
    }

    /// As `check`, at a given time in µs instead of the server's clock (tests).
    pub async fn check_at(&self, specs: &Specs, items: &[(Bucket, Subject<'_>)], now_us: Option<u64>) -> Option<Verdicts> {
        let Some(mut conn) = self.connection() else {
            metrics::counter!("breadbox_rate_limit_redis_fallbacks_total").increment(1);
            return None;
        };
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now_us.map(|n| n.to_string()).unwrap_or_default());
        for &(bucket, subject) in items {
            let spec = specs.get(bucket);
            invocation.key(self.key(bucket, subject));
            invocation.arg(spec.t.as_micros() as u64).arg(spec.tau().as_micros() as u64);
        }
        let answer: RedisResult<Vec<i64>> = match tokio::time::timeout(RESPONSE_TIMEOUT * 2, invocation.invoke_async(&mut conn)).await {
            Ok(answer) => answer,
            Err(_) => Err((redis::ErrorKind::IoError, "timed out").into()),
        };
        match answer {
            Ok(values) if values.len() % 4 == 0 && !values.is_empty() => {
                self.link.mark_up();
                Some(verdicts(&values))
            }
            Ok(values) => {
                self.link.mark_down(&format!("unexpected script answer of {} values", values.len()));
                metrics::counter!("breadbox_rate_limit_redis_fallbacks_total").increment(1);
                None
            }
            Err(err) => {
                self.link.mark_down(&err);
                metrics::counter!("breadbox_rate_limit_redis_fallbacks_total").increment(1);
                None
            }
        }
    }
}

fn verdicts(values: &[i64]) -> Verdicts {
    let micros = |v: i64| Duration::from_micros(v.max(0) as u64);
    let mut out = Verdicts::default();
    for chunk in values.chunks_exact(4) {
        out.push(if chunk[0] == 1 {
            Verdict::Admitted { remaining: chunk[1].max(0) as u32, reset: micros(chunk[2]) }
        } else {
            Verdict::Refused { wait: micros(chunk[3]), reset: micros(chunk[2]) }
        });
    }
    out
}
