//! The audit log's write side. `Observe` records one `Entry` per call under `/api/v1`;
//! entries go through a bounded channel to one writer task that stores them with
//! multi-row inserts every `FLUSH_EVERY` or `BATCH` entries, so a request never waits
//! for the database. When the channel is full an entry is dropped and counted
//! (`breadbox_audit_dropped_total`) rather than slowing the request. At shutdown the
//! writer drains the channel and flushes once more.
//!
//! Who called and which route answered is learnt during the request: the `Auth`
//! extractor notes them in a task-local `Caller` that `Observe` reads afterwards.

use std::cell::RefCell;
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{mpsc, watch};

use breadbox_auth::db::Backend;
use breadbox_auth::{Environment, Principal};

use crate::repo;

/// Entries waiting for the writer; beyond this they are dropped and counted.
const CAPACITY: usize = 16_384;
/// Entries per multi-row insert (11 parameters each, far below both backends' limits).
pub const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// One recorded call.
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
    pub route: String,
    pub status: u16,
    pub latency_us: i64,
    pub client_ip: Option<String>,
}

/// A new entry id: `aud_`, then the time in ms, a tag random per process and a counter,
/// in hex. One instance's ids grow with time, so the primary key's index is appended
/// to rather than written at random places; the tag keeps instances apart.
pub fn new_entry_id(now_ms: i64) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::LazyLock;
    static TAG: LazyLock<u32> = LazyLock::new(rand::random);
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("aud_{now_ms:011x}{:08x}{sequence:08x}", *TAG)
}

/// What the request taught us about its caller.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub org_id: Option<String>,
    pub env: Option<Environment>,
    pub credential_id: Option<String>,
    pub route: Option<String>,
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
pub fn note_principal(principal: &Principal) {
    let _ = CALLER.try_with(|c| {
        let mut c = c.borrow_mut();
        c.org_id = Some(principal.org_id.clone());
        c.env = Some(principal.env);
        c.credential_id = Some(principal.credential_id.clone());
    });
}

/// Notes the route template that matched the current request.
pub fn note_route(template: &str) {
    let _ = CALLER.try_with(|c| c.borrow_mut().route = Some(template.to_owned()));
}

/// The sending side, held by the middleware.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Entry>,
}

impl AuditLog {
    /// Queues `entry` without waiting; a full queue drops it and counts the drop.
    pub fn record(&self, entry: Entry) {
        if self.tx.try_send(entry).is_err() {
            metrics::counter!("breadbox_audit_dropped_total").increment(1);
        }
    }
}

/// The receiving side, run by `spawn`.
pub struct AuditWriter {
    rx: mpsc::Receiver<Entry>,
    pool: AnyPool,
    backend: Backend,
}

/// A new log and its writer on `pool`, a database of `backend`.
pub fn channel(pool: AnyPool, backend: Backend) -> (AuditLog, AuditWriter) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    (AuditLog { tx }, AuditWriter { rx, pool, backend })
}

impl AuditWriter {
    /// Writes until `shutdown` turns true (or every sender is gone), then drains what is
    /// queued and writes it before returning.
    pub fn spawn(mut self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut buffer = Vec::with_capacity(BATCH);
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    entry = self.rx.recv() => match entry {
                        Some(entry) => {
                            buffer.push(entry);
                            if buffer.len() >= BATCH {
                                self.flush(&mut buffer).await;
                            }
                        }
                        None => break,
                    },
                    _ = tick.tick() => self.flush(&mut buffer).await,
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            break;
                        }
                    }
                }
            }
            while let Ok(entry) = self.rx.try_recv() {
                buffer.push(entry);
                if buffer.len() >= BATCH {
                    self.flush(&mut buffer).await;
                }
            }
            self.flush(&mut buffer).await;
        })
    }

    async fn flush(&self, buffer: &mut Vec<Entry>) {
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
