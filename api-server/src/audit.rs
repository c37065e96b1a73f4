//! The audit log's write side. `Observe` records one `Call` per call under `/api/v1`;
//! entries go through a bounded channel to one writer task that wakes every
//! `FLUSH_EVERY` (or when the channel is half full), takes everything queued and stores
//! it in transactions of up to `BATCH` entries, so a request never waits for the
//! database, nor wakes the writer. On SQLite on a file the writer is a thread of its
//! own with its own connection (`repo::audit::SqliteWriter`) to the audit log's own
//! file (`Db::audit_path`); on PostgreSQL a task
//! writing through the pool. When the channel is full an entry is dropped and
//! counted (`breadbox_audit_dropped_total`) rather than slowing the request. At
//! shutdown the writer drains the channel and flushes once more.
//!
//! Who called and which route answered is learnt during the request: the `Auth`
//! extractor notes them in a task-local `Caller` that `Observe` reads afterwards.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use poem::http::Method;
use sqlx::AnyPool;
use tokio::sync::{mpsc, watch, Notify};

use breadbox_auth::db::{Backend, Db};
use breadbox_auth::{Environment, Principal};

use crate::inline::InlineStr;
use crate::repo;
use crate::request_id::RequestId;

/// Entries waiting for the writer; beyond this they are dropped and counted. A tenth of
/// a second at 80,000 requests a second fills an eighth of it; the channel allocates as
/// it fills.
const CAPACITY: usize = 65_536;
/// Entries per transaction (written with multi-row inserts of at most 100 rows, 11
/// parameters each, far below both backends' limits).
const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// One call as recorded by `Observe`, on its way to the writer. Held inline where it
/// can be: each heap string of an entry was allocated by the request's thread and freed
/// by the writer's, the slower path of the allocator, on every call.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: InlineStr<ENTRY_ID_LEN>,
    /// Unix ms when the request arrived.
    pub created_at: i64,
    pub request_id: RequestId,
    /// Who called (organization, environment, credential), when authenticated.
    pub principal: Option<Arc<Principal>>,
    pub method: Method,
    /// The route as in the spec (`/api/v1/deals/{id}`), or the path when no route matched.
    pub route: Arc<str>,
    pub status: u16,
    pub latency_us: i64,
    pub client_ip: Option<InlineStr<IP_TEXT_MAX>>,
}

/// One recorded call, as read back.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    /// Unix ms when the request arrived.
    pub created_at: i64,
    pub request_id: String,
    pub org_id: Option<String>,
    pub env: Option<Environment>,
    pub credential_id: Option<String>,
    pub method: String,
    /// The route as in the spec (`/api/v1/deals/{id}`), or the path when no route matched.
    pub route: Arc<str>,
    pub status: u16,
    pub latency_us: i64,
    pub client_ip: Option<String>,
}

/// Characters of an entry id (`aud_` and 27 hex digits).
pub const ENTRY_ID_LEN: usize = 31;
/// The longest text of an IP address (an IPv4-mapped IPv6 one).
pub const IP_TEXT_MAX: usize = 45;

/// A new entry id: `aud_`, then the time in ms, a tag random per process and a counter,
/// in hex. One instance's ids grow with time, so the primary key's index is appended
/// to rather than written at random places; the tag keeps instances apart.
pub fn new_entry_id(now_ms: i64) -> InlineStr<ENTRY_ID_LEN> {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::LazyLock;
    static TAG: LazyLock<u32> = LazyLock::new(rand::random);
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    // Hex of the three fields' bytes: `format!` with three hex fields was 1.6 % of the
    // server's samples for `/me`. The same digits as
    // `format!("aud_{now_ms:011x}{tag:08x}{sequence:08x}")` for every time before the
    // year 2527: the time keeps its low 11 hex digits of 16.
    let mut fields = [0u8; 16];
    fields[..8].copy_from_slice(&u64::try_from(now_ms).unwrap_or(0).to_be_bytes());
    fields[8..12].copy_from_slice(&TAG.to_be_bytes());
    fields[12..].copy_from_slice(&sequence.to_be_bytes());
    let mut hex = [0u8; 32];
    breadbox_auth::secret::write_hex(&fields, &mut hex);
    let mut id = [0u8; ENTRY_ID_LEN];
    id[..4].copy_from_slice(b"aud_");
    id[4..].copy_from_slice(&hex[5..]);
    InlineStr::ascii(&id).unwrap_or_default()
}

/// What the request taught us about its caller.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The authenticated credential (shared with the credential cache).
    pub principal: Option<Arc<Principal>>,
    /// poem's pattern of the route that matched (`/api/v1/deals/:param0`).
    pub route: Option<Arc<str>>,
}

tokio::task_local! {
    static CALLER: RefCell<Caller>;
}

/// Runs `fut` (one request) and returns its output with what it noted of its caller.
pub async fn scope<F: std::future::Future>(fut: F) -> (F::Output, Caller) {
    CALLER
        .scope(RefCell::new(Caller::default()), async move {
            let output = fut.await;
            let caller = CALLER.with(|c| c.take());
            (output, caller)
        })
        .await
}

/// Notes the authenticated caller of the current request.
pub fn note_principal(principal: &Arc<Principal>) {
    let _ = CALLER.try_with(|c| c.borrow_mut().principal = Some(principal.clone()));
}

/// Notes the route pattern that matched the current request.
pub fn note_route(pattern: &Arc<str>) {
    let _ = CALLER.try_with(|c| c.borrow_mut().route = Some(pattern.clone()));
}

/// The sending side, held by the middleware.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Call>,
    /// Wakes the writer before its tick when the channel is half full.
    wake: Arc<Wake>,
}

/// How the writer is woken early: a task waits on `notify`, a thread parks.
#[derive(Default)]
struct Wake {
    notify: Notify,
    thread: OnceLock<std::thread::Thread>,
}

impl Wake {
    fn wake(&self) {
        self.notify.notify_one();
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

impl AuditLog {
    /// Queues `entry` without waiting; a full queue drops it and counts the drop.
    pub fn record(&self, entry: Call) {
        if self.tx.try_send(entry).is_err() {
            metrics::counter!("breadbox_audit_dropped_total").increment(1);
        }
        if self.tx.capacity() < CAPACITY / 2 {
            self.wake.wake();
        }
    }
}

/// The receiving side, run by `spawn`.
pub struct AuditWriter {
    rx: mpsc::Receiver<Call>,
    wake: Arc<Wake>,
    pool: AnyPool,
    backend: Backend,
    /// The audit log's SQLite file: written by a thread of the writer's own.
    sqlite_path: Option<PathBuf>,
}

/// A new log and its writer on `db`.
pub fn channel(db: &Db) -> (AuditLog, AuditWriter) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let wake = Arc::new(Wake::default());
    let writer = AuditWriter {
        rx,
        wake: wake.clone(),
        pool: db.writer().clone(),
        backend: db.backend(),
        sqlite_path: db.audit_path(),
    };
    (AuditLog { tx, wake }, writer)
}

impl AuditWriter {
    /// Writes until `shutdown` turns true (or every sender is gone), then drains what is
    /// queued and writes it before returning.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        match self.sqlite_path.clone() {
            Some(path) => self.spawn_thread(path, shutdown),
            None => self.spawn_task(shutdown),
        }
    }

    /// The SQLite writer: a blocking thread that parks between flushes.
    fn spawn_thread(mut self, path: PathBuf, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let (stopper, wake) = (stop.clone(), self.wake.clone());
        tokio::spawn(async move {
            let _ = shutdown.wait_for(|stopped| *stopped).await;
            stopper.store(true, Ordering::Release);
            wake.wake();
        });
        tokio::task::spawn_blocking(move || {
            let _ = self.wake.thread.set(std::thread::current());
            let mut writer = None;
            let mut buffer = Vec::with_capacity(BATCH);
            loop {
                let stopping = stop.load(Ordering::Acquire);
                let senders_gone = loop {
                    let queue = self.take_batch(&mut buffer);
                    write_direct(&mut writer, &path, &buffer);
                    buffer.clear();
                    if queue != Queue::Full {
                        break queue == Queue::Closed;
                    }
                };
                if stopping || senders_gone {
                    break;
                }
                std::thread::park_timeout(FLUSH_EVERY);
            }
        })
    }

    /// Moves queued entries into `buffer` until it holds `BATCH` or the queue is empty.
    fn take_batch(&mut self, buffer: &mut Vec<Call>) -> Queue {
        while buffer.len() < BATCH {
            match self.rx.try_recv() {
                Ok(entry) => buffer.push(entry),
                Err(mpsc::error::TryRecvError::Empty) => return Queue::Empty,
                Err(mpsc::error::TryRecvError::Disconnected) => return Queue::Closed,
            }
        }
        Queue::Full
    }

    /// The PostgreSQL writer (and SQLite in memory): a task writing through the pool.
    fn spawn_task(mut self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut buffer = Vec::with_capacity(BATCH);
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Not woken by each entry: under load that was a wake-up and a poll of
                // this task for every request or few.
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = self.wake.notify.notified() => false,
                    changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
                };
                let senders_gone = self.drain(&mut buffer).await;
                if stopping || senders_gone {
                    break;
                }
            }
        })
    }

    /// Writes everything queued; true when every sender is gone.
    async fn drain(&mut self, buffer: &mut Vec<Call>) -> bool {
        loop {
            let queue = self.take_batch(buffer);
            self.flush(buffer).await;
            if queue != Queue::Full {
                return queue == Queue::Closed;
            }
        }
    }

    async fn flush(&self, buffer: &mut Vec<Call>) {
        if buffer.is_empty() {
            return;
        }
        if let Err(err) = repo::audit::insert(&self.pool, self.backend, buffer).await {
            tracing::warn!(error = %err, entries = buffer.len(), "could not write audit entries");
            metrics::counter!("breadbox_audit_dropped_total").increment(buffer.len() as u64);
        }
        buffer.clear();
    }
}

/// What `take_batch` left in the queue.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    /// The batch is full; more may be queued.
    Full,
    Empty,
    /// Empty, and every sender is gone.
    Closed,
}

/// Stores `batch` through the writer thread's connection, opened on first use (and
/// again after a failure); a batch that cannot be stored is dropped and counted.
fn write_direct(writer: &mut Option<repo::audit::SqliteWriter>, path: &std::path::Path, batch: &[Call]) {
    if batch.is_empty() {
        return;
    }
    let written = match writer {
        Some(open) => open.insert(batch),
        None => repo::audit::SqliteWriter::open(path).and_then(|mut opened| {
            let written = opened.insert(batch);
            *writer = Some(opened);
            written
        }),
    };
    if let Err(err) = written {
        tracing::warn!(error = %err, entries = batch.len(), "could not write audit entries");
        metrics::counter!("breadbox_audit_dropped_total").increment(batch.len() as u64);
        *writer = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_time_tag_and_sequence_in_hex() {
        let now_ms = 1_795_000_000_123i64;
        let first = new_entry_id(now_ms).as_str().to_owned();
        let second = new_entry_id(now_ms).as_str().to_owned();
        assert_eq!(first.len(), 31);
        assert!(first.starts_with(&format!("aud_{now_ms:011x}")), "{first}");
        // Same tag, next sequence number: ids of one instance grow.
        assert_eq!(first[15..23], second[15..23]);
        let sequence = |id: &str| u32::from_str_radix(&id[23..], 16).expect("hex");
        assert!(sequence(&second) > sequence(&first));
        assert!(second > first);
        let tag = u32::from_str_radix(&first[15..23], 16).expect("hex");
        assert_eq!(first, format!("aud_{now_ms:011x}{tag:08x}{:08x}", sequence(&first)));
    }
}
