//! Buckets shared by every instance, in Redis: the same GCRA as `governor`, as one Lua
//! script (EVALSHA) that checks all buckets of a request atomically, in one round trip.
//! Checks that arrive while a script call is in flight wait for the next one and go
//! together, one call for all of them (as a database's group commit): each check is
//! still decided atomically, as if alone, but Redis runs one script and answers one
//! reply for many requests. When Redis fails, `check` answers `None` and the caller
//! uses the in-process buckets; Redis is tried again, in the background, every
//! `RETRY_EVERY`.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Script};
use tokio::sync::{mpsc, oneshot};

use super::{Bucket, Specs, Subject, Verdict, Verdicts, MAX_ITEMS};

/// How often an unreachable Redis is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for a connection, and for an answer, before falling back.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// Most checks sent in one script call.
const MAX_BATCH: usize = 64;

/// GCRA, exactly as `governor`, for a batch of checks, each over its KEYS in order and
/// stopping at its first refusal: a bucket's state is its theoretical arrival time
/// `tat`; a request at `now` is refused when `now < tat - tau`, else `tat` becomes
/// `max(tat, now) + t`. The batch reads every key with one MGET, decides in order on
/// the values in hand (a later check sees what an earlier one took), and writes each
/// changed key once at the end, with the expiry of its last change: inside Redis each
/// `redis.call` costs far more than the arithmetic, so this is what makes it cheap.
/// ARGV[1]: the number of checks; then per check: now in microseconds ('' for the
/// server's clock, one clock for every instance), its number of keys n, and n pairs
/// `t`, `tau` in microseconds. KEYS: every check's keys, in order.
/// Returns one string of integers separated by spaces (a single bulk reply is parsed far
/// faster than an array of integer replies), per check: the number of buckets checked,
/// then per bucket checked: admitted (1/0), remaining, µs until full, µs to wait.
const GCRA: &str = r"
local stored = redis.call('MGET', unpack(KEYS))
local tats = {}
for i, key in ipairs(KEYS) do
  if tats[key] == nil then
    tats[key] = tonumber(stored[i]) or false
  end
end
local ttls = {}
local changed = {}
local clock
local out = {}
local a = 2
local k = 1
for _ = 1, tonumber(ARGV[1]) do
  local now = tonumber(ARGV[a])
  if not now then
    if not clock then
      local time = redis.call('TIME')
      clock = tonumber(time[1]) * 1000000 + tonumber(time[2])
    end
    now = clock
  end
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  local count = #out + 1
  out[count] = 0
  local refused = false
  for _ = 1, n do
    if not refused then
      local key = KEYS[k]
      local t = tonumber(ARGV[a])
      local tau = tonumber(ARGV[a + 1])
      local tat = tats[key] or now
      out[count] = out[count] + 1
      if now < tat - tau then
        refused = true
        out[#out + 1] = 0
        out[#out + 1] = 0
        out[#out + 1] = tat - now
        out[#out + 1] = tat - tau - now
      else
        local new = math.max(tat, now) + t
        tats[key] = new
        if not ttls[key] then
          changed[#changed + 1] = key
        end
        ttls[key] = math.max(1, math.ceil((new - now) / 1000))
        out[#out + 1] = 1
        out[#out + 1] = math.floor(math.min(now + tau + t - new, tau + t) / t)
        out[#out + 1] = new - now
        out[#out + 1] = 0
      end
    end
    k = k + 1
    a = a + 2
  end
end
for _, key in ipairs(changed) do
  redis.call('SET', key, string.format('%.0f', tats[key]), 'PX', string.format('%.0f', ttls[key]))
end
return table.concat(out, ' ')
";

/// One request's check, waiting for the next script call.
struct Job {
    now_us: Option<u64>,
    /// Each bucket's key and its `t` and `tau` in microseconds.
    buckets: Vec<(String, u64, u64)>,
    answer: oneshot::Sender<Option<Verdicts>>,
}

pub(crate) struct RedisStore {
    link: Arc<Link>,
    prefix: String,
    script: Arc<Script>,
    /// The queue of the task that sends checks in batches, started by the first check
    /// (inside the runtime that serves them).
    jobs: OnceLock<mpsc::UnboundedSender<Job>>,
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
        Ok(RedisStore {
            link: Arc::new(link),
            prefix: prefix.trim_end_matches(':').to_owned(),
            script: Arc::new(Script::new(GCRA)),
            jobs: OnceLock::new(),
        })
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

    /// Checks `items` in Redis; `None` when Redis did not answer (the caller falls back).
    pub async fn check(&self, specs: &Specs, items: &[(Bucket, Subject<'_>)]) -> Option<Verdicts> {
        self.check_at(specs, items, None).await
    }

    /// As `check`, at a given time in µs instead of the server's clock (tests).
    pub async fn check_at(&self, specs: &Specs, items: &[(Bucket, Subject<'_>)], now_us: Option<u64>) -> Option<Verdicts> {
        if self.link.conn.lock().is_none() {
            self.link.reconnect_soon();
            metrics::counter!("breadbox_rate_limit_redis_fallbacks_total").increment(1);
            return None;
        }
        let buckets = items
            .iter()
            .map(|&(bucket, subject)| {
                let spec = specs.get(bucket);
                (self.key(bucket, subject), spec.t.as_micros() as u64, spec.tau().as_micros() as u64)
            })
            .collect();
        let (answer, answered) = oneshot::channel();
        let jobs = self.jobs.get_or_init(|| {
            let (queue, jobs) = mpsc::unbounded_channel();
            tokio::spawn(send_batches(self.link.clone(), self.script.clone(), jobs));
            queue
        });
        let verdicts = match jobs.send(Job { now_us, buckets, answer }) {
            Ok(()) => answered.await.ok().flatten(),
            Err(_) => None,
        };
        if verdicts.is_none() {
            metrics::counter!("breadbox_rate_limit_redis_fallbacks_total").increment(1);
        }
        verdicts
    }
}

impl Link {
    /// Starts a reconnection in the background, at most every `RETRY_EVERY` (requests
    /// never wait for it).
    fn reconnect_soon(self: &Arc<Self>) {
        if self.now_us() >= self.retry_at.load(Ordering::Relaxed) && !self.connecting.swap(true, Ordering::AcqRel) {
            let link = self.clone();
            tokio::spawn(async move { link.connect().await });
        }
    }
}

/// Sends the queued checks, up to `MAX_BATCH` per script call, one call at a time:
/// checks arriving during a call wait for its answer and go together in the next, so
/// batches grow with load. (With 4 calls pipelined on the connection batches held 4–6
/// checks; one at a time they hold about 15, and the limiter's cost in back-to-back
/// quick benchmark runs fell from 47–50 % to 39–41 %.) Ends when the store is dropped.
async fn send_batches(link: Arc<Link>, script: Arc<Script>, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut answers = run_batch(&link, &script, &jobs).await.into_iter().flatten();
        for job in jobs.drain(..) {
            let _ = job.answer.send(answers.next());
        }
    }
}

/// One script call for `jobs`: their verdicts in order, or `None` when Redis failed.
async fn run_batch(link: &Arc<Link>, script: &Script, jobs: &[Job]) -> Option<Vec<Verdicts>> {
    let Some(mut conn) = link.conn.lock().clone() else {
        link.reconnect_soon();
        return None;
    };
    let mut invocation = script.prepare_invoke();
    invocation.arg(jobs.len());
    for job in jobs {
        invocation.arg(job.now_us.map(|n| n.to_string()).unwrap_or_default()).arg(job.buckets.len());
        for (key, t, tau) in &job.buckets {
            invocation.key(key).arg(t).arg(tau);
        }
    }
    let answer: RedisResult<Vec<u8>> = match tokio::time::timeout(RESPONSE_TIMEOUT * 2, invocation.invoke_async(&mut conn)).await {
        Ok(answer) => answer,
        Err(_) => Err((redis::ErrorKind::IoError, "timed out").into()),
    };
    let values = match answer.map(|reply| integers(&reply)) {
        Ok(Some(values)) => values,
        Ok(None) => {
            link.mark_down(&"the script's answer is not a list of integers");
            return None;
        }
        Err(err) => {
            link.mark_down(&err);
            return None;
        }
    };
    match split(&values, jobs) {
        Some(verdicts) => {
            link.mark_up();
            Some(verdicts)
        }
        None => {
            link.mark_down(&format!("unexpected script answer of {} values for {} checks", values.len(), jobs.len()));
            None
        }
    }
}

/// The integers of the script's answer (Lua writes whole numbers below 10^14 without an
/// exponent, and the script's are microseconds of at most a bucket's window); `None`
/// when a word is not one.
fn integers(reply: &[u8]) -> Option<Vec<i64>> {
    let text = std::str::from_utf8(reply).ok()?;
    text.split_ascii_whitespace().map(|word| word.parse().ok()).collect()
}

/// The script's flat answer cut into each job's verdicts; `None` unless it has the
/// shape the script promises (every check answered, with 1 to n buckets).
fn split(values: &[i64], jobs: &[Job]) -> Option<Vec<Verdicts>> {
    let mut out = Vec::with_capacity(jobs.len());
    let mut rest = values;
    for job in jobs {
        let (&count, tail) = rest.split_first()?;
        let count = usize::try_from(count).ok().filter(|&c| c >= 1 && c <= job.buckets.len().min(MAX_ITEMS))?;
        let (these, tail) = (tail.get(..count * 4)?, tail.get(count * 4..)?);
        out.push(verdicts(these));
        rest = tail;
    }
    rest.is_empty().then_some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(buckets: usize) -> Job {
        let (answer, _) = oneshot::channel();
        Job { now_us: None, buckets: (0..buckets).map(|i| (format!("k{i}"), 1, 1)).collect(), answer }
    }

    #[test]
    fn the_answer_is_read_as_integers_or_refused() {
        assert_eq!(integers(b"3 1 5 10 0 -2"), Some(vec![3, 1, 5, 10, 0, -2]));
        assert_eq!(integers(b""), Some(vec![]));
        assert_eq!(integers(b"1 1e+15"), None, "an exponent");
        assert_eq!(integers(b"1 2.5"), None, "a fraction");
        assert_eq!(integers(b"1 x"), None);
        assert_eq!(integers(&[0xff, b'1']), None, "not text");
    }

    #[test]
    fn a_batch_answer_is_cut_per_check_and_refused_when_malformed() {
        let jobs = [job(3), job(2)];
        // The first check passed all three buckets; the second was refused by its first.
        let values = [3, 1, 5, 10, 0, 1, 4, 20, 0, 1, 3, 30, 0, 1, 0, 0, 70, 40];
        let verdicts = split(&values, &jobs).expect("well formed");
        assert_eq!(verdicts.len(), 2);
        assert_eq!(verdicts[0].iter().count(), 3);
        assert_eq!(
            verdicts[1].iter().collect::<Vec<_>>(),
            [Verdict::Refused { wait: Duration::from_micros(40), reset: Duration::from_micros(70) }]
        );
        assert!(split(&values[..values.len() - 1], &jobs).is_none(), "a short answer");
        assert!(split(&[values.as_slice(), &[0]].concat(), &jobs).is_none(), "a long answer");
        assert!(split(&[0], &jobs[..1]).is_none(), "a check with no bucket");
        assert!(split(&[4, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0], &jobs[..1]).is_none(), "more buckets than keys");
    }
}
