//! Buckets shared by every instance, in Redis: the same GCRA as `governor`, as one Lua
//! script (EVALSHA) that checks all buckets of a request atomically, in one round trip.
//! Checks that arrive while a script call is in flight wait for the next one and go
//! together, one call for all of them (as a database's group commit): each check is
//! still decided atomically, as if alone, but Redis runs one script and answers one
//! reply for many requests. A bucket set in heavy use takes several admissions in one
//! check and hands them out here ([`super::leases`]). When Redis fails, `check` answers
//! `None` and the caller uses the in-process buckets; Redis is tried again, in the
//! background, every `RETRY_EVERY`.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Script};
use tokio::sync::{mpsc, oneshot};

use super::leases::{Ask, Identity, Keys, Leases, Took, LEASE_TTL};
use super::{Bucket, Specs, Subject, Verdict, Verdicts};

/// How often an unreachable Redis is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for a connection, and for an answer, before falling back.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// Most checks sent in one script call.
const MAX_BATCH: usize = 64;

/// GCRA, exactly as `governor`, for a batch of checks, each over its buckets in order
/// and stopping at its first refusal: a bucket's state is its theoretical arrival time
/// `tat`; a request at `now` is refused when `now < tat - tau`, else `tat` becomes
/// `max(tat, now) + t`. The batch reads every key with one MGET, decides in order on
/// the values in hand (a later check sees what an earlier one took), and writes each
/// changed key once at the end, with the expiry of its last change.
///
/// KEYS: the batch's distinct buckets. ARGV[1]: their number; then per key its `t` and
/// `tau` in µs; then the number of runs, and per run: now in µs ('' for the server's
/// clock, one clock for every instance), its mode, a count, how many buckets n, and the
/// n bucket indices into KEYS. Mode 0 is `count` consecutive checks of the same buckets
/// at the same time; mode 1 a lease ([`super::leases`]): up to `count` checks, stopping
/// at the first refusal (computed at once, as many checks cost as one); mode 2 gives
/// back `count` admissions of a lease that were not handed out (each bucket's `tat`
/// goes back by `count` intervals, never before now).
///
/// Returns an array: the server's clock if read (nil if not), then each key's `tat`
/// before the batch (nil for none), as integers. GCRA is deterministic, so the caller
/// replays the batch on those values ([`replay`]) and gets every verdict the script
/// reached without the script writing them: inside Redis, turning numbers into text,
/// reading arguments and interning them as Lua strings is what costs, and this is a
/// handful per batch instead of about twenty per check. Numbers go to `SET` and into
/// the answer as Lua numbers, which Redis writes exactly (integers below 2^53) in C:
/// with `string.format` for them a batch of 16 checks took 30–43 µs of Redis's CPU,
/// without it 24–32 (`redis-benchmark` on the same script and arguments).
const GCRA: &str = r"
local k = tonumber(ARGV[1])
local stored = redis.call('MGET', unpack(KEYS))
local tats, answer, ts, taus, last = {}, {}, {}, {}, {}
for i = 1, k do
  local tat = tonumber(stored[i])
  if tat and tat >= 0 and tat < 9007199254740992 then
    tats[i] = math.floor(tat)
    answer[i + 1] = tats[i]
  else
    answer[i + 1] = false
  end
  ts[i] = tonumber(ARGV[2 * i])
  taus[i] = tonumber(ARGV[2 * i + 1])
end
local a = 2 * k + 2
local clock
for _ = 1, tonumber(ARGV[a]) do
  local now = tonumber(ARGV[a + 1])
  if not now then
    if not clock then
      local time = redis.call('TIME')
      clock = tonumber(time[1]) * 1000000 + tonumber(time[2])
    end
    now = clock
  end
  local mode = tonumber(ARGV[a + 2])
  local count = tonumber(ARGV[a + 3])
  local n = tonumber(ARGV[a + 4])
  local run = {}
  for j = 1, n do
    run[j] = tonumber(ARGV[a + 4 + j])
  end
  a = a + 4 + n
  if mode == 2 then
    for j = 1, n do
      local i = run[j]
      if tats[i] then
        tats[i] = math.max(tats[i] - count * ts[i], now)
        last[i] = now
      end
    end
  elseif mode == 1 then
    -- The checks one by one, in closed form: bucket j admits checks 1..avail[j]; the
    -- lease gets the fewest, and when it is refused before `count`, the buckets before
    -- the first that ran out took one more in the refused check.
    local avail, least, first = {}, count, 0
    for j = 1, n do
      local i = run[j]
      local from = math.max(tats[i] or now, now)
      local a = 0
      if now >= (tats[i] or now) - taus[i] then
        a = math.floor((now + taus[i] - from) / ts[i]) + 1
      end
      avail[j] = a
      if a < least then
        least, first = a, j
      end
    end
    for j = 1, n do
      local i = run[j]
      local taken = least
      if first > 0 and j < first then
        taken = least + 1
      end
      if taken > 0 then
        tats[i] = math.max(tats[i] or now, now) + taken * ts[i]
        last[i] = now
      end
    end
  else
    for _ = 1, count do
      for j = 1, n do
        local i = run[j]
        local tat = tats[i] or now
        if now < tat - taus[i] then
          break
        end
        tats[i] = math.max(tat, now) + ts[i]
        last[i] = now
      end
    end
  end
end
for i, now in pairs(last) do
  local ttl = math.max(1, math.ceil((tats[i] - now) / 1000))
  redis.call('SET', KEYS[i], tats[i], 'PX', ttl)
end
answer[1] = clock or false
return answer
";

/// What a job asks of its buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One check.
    Check,
    /// Up to this many checks, stopping at the first refusal (a lease).
    Lease(u32),
    /// Gives back this many admissions of a lease.
    GiveBack(u32),
}

impl Mode {
    /// The script's mode and count.
    fn encoded(self) -> (u8, u32) {
        match self {
            Mode::Check => (0, 1),
            Mode::Lease(want) => (1, want),
            Mode::GiveBack(count) => (2, count),
        }
    }
}

/// One request's check (or a lease's return), waiting for the next script call.
struct Job {
    now_us: Option<u64>,
    /// Each bucket's key and its `t` and `tau` in microseconds.
    buckets: Keys,
    mode: Mode,
    reply: Reply,
}

/// Where a job's decision goes.
enum Reply {
    /// To the request waiting for it.
    Wait(oneshot::Sender<Option<Answer>>),
    /// Into the leases, as a lease asked for in the background at this time.
    Lease(Identity, Instant),
    /// Nowhere (a lease's return).
    None,
}

/// What the script decided for one job.
#[derive(Debug, Default, PartialEq, Eq)]
struct Decided {
    /// The verdicts of its first check.
    first: Verdicts,
    /// How many of its checks every bucket admitted.
    admitted: u32,
    /// The verdicts of the last of those (the first's when none).
    last: Verdicts,
}

/// A job's decision, with its buckets back (a lease keeps them to give back).
struct Answer {
    decided: Decided,
    buckets: Keys,
}

pub(crate) struct RedisStore {
    link: Arc<Link>,
    /// Each bucket's key up to its subject, by `Bucket::index` (`{prefix}:{name}:` and,
    /// for the plan's buckets, `{prefix}:{name}:{plan}:`): made once, since `format!`
    /// of three keys was 4,000 instructions a request.
    key_prefixes: Vec<String>,
    script: Arc<Script>,
    leases: Arc<Leases>,
    /// The queue of the task that sends checks in batches, started by the first check
    /// (inside the runtime that serves them).
    jobs: OnceLock<mpsc::UnboundedSender<Job>>,
}

/// The connection and what is known of Redis's health, shared with the background
/// reconnection.
struct Link {
    client: Client,
    conn: Mutex<Option<ConnectionManager>>,
    /// Whether `conn` holds a connection, read by every check without the lock (two
    /// server threads taking one lock on every request pass its cache line between
    /// cores); written under the lock.
    connected: AtomicBool,
    up: AtomicBool,
    connecting: AtomicBool,
    /// No attempt before this many µs after `epoch`.
    retry_at: AtomicU64,
    epoch: Instant,
    /// Script calls made (one per batch).
    calls: AtomicU64,
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
                let mut slot = self.conn.lock();
                *slot = Some(conn.clone());
                self.connected.store(true, Ordering::Release);
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
        let mut slot = self.conn.lock();
        *slot = None;
        self.connected.store(false, Ordering::Release);
        drop(slot);
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
            connected: AtomicBool::new(false),
            up: AtomicBool::new(true),
            connecting: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
            epoch: Instant::now(),
            calls: AtomicU64::new(0),
        };
        let prefix = prefix.trim_end_matches(':');
        let key_prefixes = Bucket::all()
            .map(|bucket| match bucket {
                Bucket::Key(plan) | Bucket::Org(plan) => format!("{prefix}:{}:{plan}:", bucket.name()),
                _ => format!("{prefix}:{}:", bucket.name()),
            })
            .collect();
        Ok(RedisStore {
            link: Arc::new(link),
            key_prefixes,
            script: Arc::new(Script::new(GCRA)),
            leases: Arc::new(Leases::new()),
            jobs: OnceLock::new(),
        })
    }

    /// Whether the last attempt reached Redis.
    pub fn is_up(&self) -> bool {
        self.link.up.load(Ordering::Relaxed)
    }

    /// Script calls made so far.
    #[cfg(test)]
    pub fn calls(&self) -> u64 {
        self.link.calls.load(Ordering::Relaxed)
    }

    /// A lease of `want` checks of `items` at `now_us`, straight to Redis (tests).
    #[cfg(test)]
    async fn lease_at(&self, specs: &Specs, items: &[(Bucket, Subject<'_>)], want: u32, now_us: u64) -> Option<Decided> {
        let (answer, answered) = oneshot::channel();
        let job = Job { now_us: Some(now_us), buckets: self.buckets(specs, items), mode: Mode::Lease(want), reply: Reply::Wait(answer) };
        self.queue().send(job).ok()?;
        answered.await.ok().flatten().map(|answer| answer.decided)
    }

    /// Admissions of `items` held in a lease here (tests).
    #[cfg(test)]
    pub fn leased(&self, items: &[(Bucket, Subject<'_>)]) -> Option<u32> {
        self.leases.left(items)
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
        use std::fmt::Write;
        let prefix = &self.key_prefixes[bucket.index()];
        // An address's text is at most 39 bytes (a full IPv6 one).
        let subject_len = match subject {
            Subject::Ip(_) => 39,
            Subject::Id(id) => id.len(),
        };
        let mut key = String::with_capacity(prefix.len() + subject_len);
        key.push_str(prefix);
        match subject {
            Subject::Ip(ip) => {
                let _ = write!(key, "{ip}");
            }
            Subject::Id(id) => key.push_str(id),
        }
        key
    }

    /// Checks `items` in Redis; `None` when Redis did not answer (the caller falls back).
    pub async fn check(&self, specs: &Specs, items: &[(Bucket, Subject<'_>)]) -> Option<Verdicts> {
        self.check_at(specs, items, None).await
    }

    /// As `check`, at a given time in µs instead of the server's clock (tests: without
    /// leases, each check goes to Redis).
    pub async fn check_at(&self, specs: &Specs, items: &[(Bucket, Subject<'_>)], now_us: Option<u64>) -> Option<Verdicts> {
        let deadline = tokio::time::Instant::now() + RESPONSE_TIMEOUT;
        let ask = match now_us {
            Some(_) => Ask { want: 1, give_back: None },
            None => loop {
                let now = Instant::now();
                match self.leases.take(items, now) {
                    Took::Held(verdicts, None) => return Some(verdicts),
                    Took::Held(verdicts, Some(want)) => {
                        let job = Job {
                            now_us: None,
                            buckets: self.buckets(specs, items),
                            mode: Mode::Lease(want),
                            reply: Reply::Lease(Identity::of(items), now),
                        };
                        if self.queue().send(job).is_err() {
                            self.leases.settle(items);
                        }
                        return Some(verdicts);
                    }
                    // For as long as asks are under way (a request that stopped at a
                    // refusal here while a lease came in would leave it unspent), but
                    // not past an answer's time: then a check of its own.
                    Took::Wait(answered) => {
                        if tokio::time::timeout_at(deadline, answered).await.is_err() {
                            break Ask { want: 1, give_back: None };
                        }
                    }
                    Took::Ask(ask) => break ask,
                }
            },
        };
        let now = Instant::now();
        // A lease asked for here: whatever becomes of the ask, the leases must hear.
        let leasing = now_us.is_none() && ask.want > 1;
        if !self.link.connected.load(Ordering::Acquire) {
            if leasing {
                self.leases.settle(items);
            }
            self.link.reconnect_soon();
            metrics::counter!("breadbox_rate_limit_redis_fallbacks_total").increment(1);
            return None;
        }
        let buckets = self.buckets(specs, items);
        let jobs = self.queue();
        if let Some((count, keys)) = ask.give_back {
            let _ = jobs.send(Job { now_us: None, buckets: keys, mode: Mode::GiveBack(count), reply: Reply::None });
        }
        let mode = if ask.want > 1 { Mode::Lease(ask.want) } else { Mode::Check };
        let (answer, answered) = oneshot::channel();
        let answer = match jobs.send(Job { now_us, buckets, mode, reply: Reply::Wait(answer) }) {
            Ok(()) => answered.await.ok().flatten(),
            Err(_) => None,
        };
        let Some(Answer { decided, buckets }) = answer else {
            if leasing {
                self.leases.settle(items);
            }
            metrics::counter!("breadbox_rate_limit_redis_fallbacks_total").increment(1);
            return None;
        };
        if now_us.is_none() {
            self.leases.grant(items, now, mode != Mode::Check, decided.admitted, 1, &decided.last, buckets);
        }
        Some(decided.first)
    }

    /// Each bucket's Redis key with its `t` and `tau` in µs.
    fn buckets(&self, specs: &Specs, items: &[(Bucket, Subject<'_>)]) -> Keys {
        items
            .iter()
            .map(|&(bucket, subject)| {
                let spec = specs.get(bucket);
                // At least 1 µs: a quota scaled beyond a million a second still divides.
                let t = (spec.t.as_micros() as u64).max(1);
                let tau = (spec.tau().as_micros() as u64).max(t * u64::from(spec.burst.saturating_sub(1)));
                (self.key(bucket, subject), t, tau)
            })
            .collect()
    }

    /// The queue of the batching task, started with the first job.
    fn queue(&self) -> &mpsc::UnboundedSender<Job> {
        self.jobs.get_or_init(|| {
            let (queue, jobs) = mpsc::unbounded_channel();
            tokio::spawn(send_batches(self.link.clone(), self.script.clone(), self.leases.clone(), jobs));
            queue
        })
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
///
/// Before a call the task yields once, so that requests already running on this
/// worker reach their checks and join the batch: a round trip is short (about 20 µs
/// of script in Redis), and without the yield session 12's batches held 2.7 checks on
/// average, each paying a seventh of a script call's fixed cost in Redis's CPU. With
/// nothing else to run the yield returns at once.
///
/// Every `LEASE_TTL` while leases are held, the task also gives back to Redis what the
/// expired ones did not hand out.
async fn send_batches(link: Arc<Link>, script: Arc<Script>, leases: Arc<Leases>, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut swept = Instant::now();
    loop {
        let received = tokio::select! {
            received = queue.recv_many(&mut jobs, MAX_BATCH) => Some(received),
            () = tokio::time::sleep(LEASE_TTL), if !leases.is_empty() => None,
        };
        if received == Some(0) {
            return;
        }
        if swept.elapsed() >= LEASE_TTL {
            swept = Instant::now();
            for (count, buckets) in leases.sweep(swept) {
                jobs.push(Job { now_us: None, buckets, mode: Mode::GiveBack(count), reply: Reply::None });
            }
        }
        if jobs.is_empty() {
            continue;
        }
        if jobs.len() < MAX_BATCH {
            tokio::task::yield_now().await;
            while jobs.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let mut decided = run_batch(&link, &script, &jobs).await.into_iter().flatten();
        let mut unclaimed = Vec::new();
        for job in jobs.drain(..) {
            let answer = decided.next();
            match job.reply {
                Reply::Wait(sender) => {
                    // A lease whose request went away meanwhile is given back whole.
                    if let Err(Some(Answer { decided, buckets })) = sender.send(answer.map(|decided| Answer { decided, buckets: job.buckets })) {
                        if matches!(job.mode, Mode::Lease(_)) && decided.admitted > 0 {
                            unclaimed.push(Job { now_us: job.now_us, buckets, mode: Mode::GiveBack(decided.admitted), reply: Reply::None });
                        }
                    }
                }
                Reply::Lease(identity, at) => match answer {
                    Some(decided) => leases.grant(&identity.items(), at, true, decided.admitted, 0, &decided.last, job.buckets),
                    None => leases.settle(&identity.items()),
                },
                Reply::None => {}
            }
        }
        jobs.append(&mut unclaimed);
    }
}

/// A batch as the script reads it: the distinct keys (with their `t` and `tau`) and,
/// job after job, the index of each bucket's key.
struct Encoded<'a> {
    keys: Vec<(&'a str, u64, u64)>,
    indices: Vec<usize>,
}

fn encode(jobs: &[Job]) -> Encoded<'_> {
    let mut keys: Vec<(&str, u64, u64)> = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize, foldhash::fast::RandomState> = Default::default();
    let mut indices = Vec::with_capacity(jobs.iter().map(|j| j.buckets.len()).sum());
    for job in jobs {
        for (key, t, tau) in &job.buckets {
            let index = *seen.entry(key.as_str()).or_insert_with(|| {
                keys.push((key.as_str(), *t, *tau));
                keys.len() - 1
            });
            indices.push(index);
        }
    }
    Encoded { keys, indices }
}

/// Consecutive single checks with the same time and the same bucket indices (every
/// other job alone), as (first job, number of jobs, offset of the first job's indices).
fn runs(jobs: &[Job], indices: &[usize]) -> Vec<(usize, usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    let mut offset = 0;
    for (i, job) in jobs.iter().enumerate() {
        let these = &indices[offset..offset + job.buckets.len()];
        match runs.last_mut() {
            Some((first, count, at))
                if job.mode == Mode::Check
                    && jobs[*first].mode == Mode::Check
                    && jobs[*first].now_us == job.now_us
                    && &indices[*at..*at + jobs[*first].buckets.len()] == these =>
            {
                *count += 1
            }
            _ => runs.push((i, 1, offset)),
        }
        offset += job.buckets.len();
    }
    runs
}

/// One script call for `jobs`: their decisions in order, or `None` when Redis failed.
async fn run_batch(link: &Arc<Link>, script: &Script, jobs: &[Job]) -> Option<Vec<Decided>> {
    let Some(mut conn) = link.conn.lock().clone() else {
        link.reconnect_soon();
        return None;
    };
    let encoded = encode(jobs);
    link.calls.fetch_add(1, Ordering::Relaxed);
    let mut invocation = script.prepare_invoke();
    invocation.arg(encoded.keys.len());
    for &(key, t, tau) in &encoded.keys {
        invocation.key(key).arg(t).arg(tau);
    }
    let runs = runs(jobs, &encoded.indices);
    invocation.arg(runs.len());
    for &(first, count, at) in &runs {
        let job = &jobs[first];
        let (mode, checks) = job.mode.encoded();
        let count = if job.mode == Mode::Check { count as u32 } else { checks };
        invocation.arg(job.now_us.map(|n| n.to_string()).unwrap_or_default()).arg(mode).arg(count).arg(job.buckets.len());
        for &index in &encoded.indices[at..at + job.buckets.len()] {
            invocation.arg(index + 1);
        }
    }
    let answer: RedisResult<Vec<Option<i64>>> = match tokio::time::timeout(RESPONSE_TIMEOUT * 2, invocation.invoke_async(&mut conn)).await {
        Ok(answer) => answer,
        Err(_) => Err((redis::ErrorKind::IoError, "timed out").into()),
    };
    let reply = match answer {
        Ok(reply) => reply,
        Err(err) => {
            link.mark_down(&err);
            return None;
        }
    };
    match replay(jobs, &encoded, &reply) {
        Some(verdicts) => {
            link.mark_up();
            Some(verdicts)
        }
        None => {
            link.mark_down(&format!("unexpected script answer for {} checks over {} keys", jobs.len(), encoded.keys.len()));
            None
        }
    }
}

/// Every job's decision, from the clock the script read and each key's `tat` before the
/// batch (`values`), by the script's own steps in the script's order; `None` unless
/// `values` has the shape the script promises.
fn replay(jobs: &[Job], encoded: &Encoded<'_>, values: &[Option<i64>]) -> Option<Vec<Decided>> {
    let (&clock, before) = values.split_first()?;
    if before.len() != encoded.keys.len() {
        return None;
    }
    let mut tats = before.to_vec();
    let mut out = Vec::with_capacity(jobs.len());
    let mut offset = 0;
    for job in jobs {
        let now = match job.now_us {
            Some(now) => i64::try_from(now).ok()?,
            None => clock?,
        };
        let indices = &encoded.indices[offset..offset + job.buckets.len()];
        offset += job.buckets.len();
        let mut decided = Decided::default();
        let checks = match job.mode {
            Mode::Check => 1,
            Mode::Lease(want) => want,
            Mode::GiveBack(count) => {
                for &index in indices {
                    let t = i64::try_from(encoded.keys[index].1).ok()?;
                    if let Some(tat) = tats[index] {
                        tats[index] = Some((tat - i64::from(count) * t).max(now));
                    }
                }
                out.push(decided);
                continue;
            }
        };
        for check in 0..checks {
            let verdicts = check_once(&mut tats, encoded, indices, now)?;
            let admitted = verdicts.iter().filter(|v| matches!(v, Verdict::Admitted { .. })).count() == indices.len();
            if check == 0 {
                decided.first = verdicts;
                decided.last = verdicts;
            }
            if !admitted {
                break;
            }
            decided.admitted += 1;
            decided.last = verdicts;
        }
        out.push(decided);
    }
    Some(out)
}

/// One check of the buckets `indices` at `now`, as the script steps it: each bucket in
/// order takes its interval, up to the first that refuses.
fn check_once(tats: &mut [Option<i64>], encoded: &Encoded<'_>, indices: &[usize], now: i64) -> Option<Verdicts> {
    let mut verdicts = Verdicts::default();
    for &index in indices {
        let (_, t, tau) = encoded.keys[index];
        let (t, tau) = (i64::try_from(t).ok()?, i64::try_from(tau).ok()?);
        let tat = tats[index].unwrap_or(now);
        if now < tat - tau {
            verdicts.push(Verdict::Refused { wait: micros(tat - tau - now), reset: micros(tat - now) });
            break;
        }
        let new = tat.max(now) + t;
        tats[index] = Some(new);
        let remaining = (now + tau + t - new).min(tau + t) / t;
        verdicts.push(Verdict::Admitted { remaining: u32::try_from(remaining).unwrap_or(u32::MAX), reset: micros(new - now) });
    }
    Some(verdicts)
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(value.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Plan;

    fn job(now_us: Option<u64>, buckets: &[(&str, u64, u64)]) -> Job {
        job_of(Mode::Check, now_us, buckets)
    }

    fn job_of(mode: Mode, now_us: Option<u64>, buckets: &[(&str, u64, u64)]) -> Job {
        Job { now_us, buckets: buckets.iter().map(|&(k, t, tau)| (k.to_owned(), t, tau)).collect(), mode, reply: Reply::None }
    }

    #[test]
    fn keys_name_prefix_bucket_plan_and_subject() {
        let store = RedisStore::new("redis://127.0.0.1:1", "pre:").expect("a valid url, not connected");
        let id = "key_abc".to_owned();
        let ip: std::net::IpAddr = "2001:db8::1".parse().expect("an address");
        for bucket in Bucket::all() {
            let expected = |subject: &str| match bucket {
                Bucket::Key(plan) | Bucket::Org(plan) => format!("pre:{}:{plan}:{subject}", bucket.name()),
                _ => format!("pre:{}:{subject}", bucket.name()),
            };
            assert_eq!(store.key(bucket, Subject::Id(&id)), expected("key_abc"));
            assert_eq!(store.key(bucket, Subject::Ip(ip)), expected("2001:db8::1"));
        }
        assert_eq!(store.key(Bucket::Org(Plan::Growth), Subject::Id(&id)), "pre:org:growth:key_abc");
    }

    #[test]
    fn keys_are_sent_once_and_identical_checks_as_one_run() {
        let (a, b) = (("a", 10, 20), ("b", 5, 0));
        let jobs = [job(None, &[a, b]), job(None, &[a, b]), job(Some(7), &[a, b]), job(Some(7), &[b]), job(Some(7), &[b])];
        let encoded = encode(&jobs);
        assert_eq!(encoded.keys, [a, b]);
        assert_eq!(encoded.indices, [0, 1, 0, 1, 0, 1, 1, 1]);
        assert_eq!(runs(&jobs, &encoded.indices), [(0, 2, 0), (2, 1, 4), (3, 2, 6)]);
    }

    #[test]
    fn leases_and_returns_are_runs_of_their_own() {
        let a = ("a", 10, 20);
        let jobs = [job(None, &[a]), job_of(Mode::Lease(4), None, &[a]), job_of(Mode::Lease(4), None, &[a]), job_of(Mode::GiveBack(2), None, &[a]), job(None, &[a]), job(None, &[a])];
        let encoded = encode(&jobs);
        assert_eq!(runs(&jobs, &encoded.indices), [(0, 1, 0), (1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 4)]);
    }

    #[test]
    fn a_lease_stops_at_its_first_refusal_and_a_return_gives_back() {
        // Key a: t 10, tau 40 (burst 5), empty; key b: t 10, tau 10 (burst 2), empty.
        let (a, b) = (("a", 10, 40), ("b", 10, 10));
        let jobs = [job_of(Mode::Lease(4), None, &[a, b]), job_of(Mode::GiveBack(1), None, &[a, b]), job(None, &[a]), job_of(Mode::Lease(8), None, &[a])];
        let encoded = encode(&jobs);
        let decided = replay(&jobs, &encoded, &[Some(1000), None, None]).expect("well formed");
        let admitted = |remaining, reset| Verdict::Admitted { remaining, reset: Duration::from_micros(reset) };
        let list = |v: &Verdicts| v.iter().collect::<Vec<_>>();
        // b admits two; the third check is refused by b and ends the lease (a keeps its
        // third interval, as the script leaves it).
        assert_eq!(decided[0].admitted, 2);
        assert_eq!(list(&decided[0].first), [admitted(4, 10), admitted(1, 10)]);
        assert_eq!(list(&decided[0].last), [admitted(3, 20), admitted(0, 20)]);
        // One given back: a 1030 → 1020, b 1020 → 1010.
        assert_eq!((decided[1].admitted, list(&decided[1].first)), (0, vec![]));
        assert_eq!(list(&decided[2].first), [admitted(2, 30)]);
        // a at 1030: two more fit (1040, 1050 ≤ 1000 + 40 + 10).
        assert_eq!((decided[3].admitted, list(&decided[3].last)), (2, vec![admitted(0, 50)]));
        assert!(matches!(decided[3].first.iter().next(), Some(Verdict::Admitted { remaining: 1, .. })));
    }

    /// The script's closed-form lease leaves in Redis what the replay's checks one by one
    /// decided: later checks, decided on what Redis stored, see exactly that.
    #[tokio::test]
    async fn the_script_leases_as_the_replay_checks() {
        let Some(url) = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
            eprintln!("TEST_REDIS_URL is not set: lease script skipped");
            return;
        };
        let specs = Specs::new(&super::super::LimitsConfig::default());
        let redis = RedisStore::new(&url, &format!("test:{}", uuid::Uuid::new_v4().simple())).expect("redis url");
        redis.start().await;
        let (key, org) = ("key_script".to_owned(), "org_script".to_owned());
        // Bulk: burst 10, one a 12 s; a Starter org: burst 60.
        let items = [(Bucket::Class(super::super::Class::Bulk), Subject::Id(&key)), (Bucket::Org(Plan::Starter), Subject::Id(&org))];
        let now: u64 = 1_700_000_000_000_000;
        let remaining = |v: &Verdicts| v.iter().map(|v| match v { Verdict::Admitted { remaining, .. } => remaining as i64, Verdict::Refused { .. } => -1 }).collect::<Vec<_>>();
        let lease = redis.lease_at(&specs, &items, 4, now).await.expect("Redis answers");
        assert_eq!((lease.admitted, remaining(&lease.first), remaining(&lease.last)), (4, vec![9, 59], vec![6, 56]));
        // Ten asked, six left in the bulk bucket: six, and the refused seventh check took
        // none (bulk is first and refused it).
        let lease = redis.lease_at(&specs, &items, 10, now).await.expect("Redis answers");
        assert_eq!((lease.admitted, remaining(&lease.last)), (6, vec![0, 50]));
        let after = redis.check_at(&specs, &items[1..], Some(now)).await.expect("Redis answers");
        assert_eq!(remaining(&after), [49], "the org gave ten, no more");
        // Buckets in the other order: the org (49 left) admits the refused check before
        // bulk (empty) refuses it, so the org gives one more than the lease got.
        let reversed = [items[1], items[0]];
        let lease = redis.lease_at(&specs, &reversed, 5, now).await.expect("Redis answers");
        assert_eq!((lease.admitted, remaining(&lease.first)), (0, vec![48, -1]));
        let after = redis.check_at(&specs, &items[1..], Some(now)).await.expect("Redis answers");
        assert_eq!(remaining(&after), [47]);
        // A lease whose request went away before its answer is given back whole.
        let (answer, answered) = oneshot::channel();
        let org_only = &items[1..];
        let job = Job { now_us: Some(now), buckets: redis.buckets(&specs, org_only), mode: Mode::Lease(5), reply: Reply::Wait(answer) };
        drop(answered);
        redis.queue().send(job).expect("the batching task runs");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Answered alone meanwhile; the give-back goes with the next batch, before this
        // check.
        let after = redis.check_at(&specs, org_only, Some(now)).await.expect("Redis answers");
        assert_eq!(remaining(&after), [46], "only this check taken: the five came back");
        // Twelve seconds later bulk admits one again.
        let lease = redis.lease_at(&specs, &items, 3, now + 12_000_000).await.expect("Redis answers");
        assert_eq!(lease.admitted, 1);
    }

    #[test]
    fn a_batch_is_replayed_as_the_script_decides_it() {
        // Key a: t 10, tau 20 (burst 3), empty; key b: t 100, tau 0 (burst 1), last
        // taken so that it admits again at 1000.
        let (a, b) = (("a", 10, 20), ("b", 100, 0));
        let jobs = [job(None, &[a]), job(None, &[a]), job(None, &[a]), job(None, &[a, b]), job(Some(1000), &[b, a])];
        let encoded = encode(&jobs);
        let verdicts = replay(&jobs, &encoded, &[Some(990), None, Some(1000)]).expect("well formed");
        let admitted = |remaining, reset| Verdict::Admitted { remaining, reset: Duration::from_micros(reset) };
        let refused = |wait, reset| Verdict::Refused { wait: Duration::from_micros(wait), reset: Duration::from_micros(reset) };
        let got: Vec<Vec<Verdict>> = verdicts.iter().map(|v| v.first.iter().collect()).collect();
        assert_eq!(
            got,
            [
                vec![admitted(2, 10)],
                vec![admitted(1, 20)],
                vec![admitted(0, 30)],
                // a's tat is 1020 > 990 + 20: refused before b is looked at.
                vec![refused(10, 30)],
                vec![admitted(0, 100), admitted(0, 30)],
            ]
        );
        assert!(replay(&jobs, &encoded, &[Some(990), None]).is_none(), "a key's value missing");
        assert!(replay(&jobs, &encoded, &[None, None, Some(1000)]).is_none(), "no clock for checks that need it");
        assert!(replay(&jobs[4..], &encode(&jobs[4..]), &[None, Some(1000), None]).is_some(), "no clock needed");
    }
}
