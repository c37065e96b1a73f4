//! The revocation feed: every change that other instances must honour (a revoked
//! token, key or client, a rotated signing key) is a row in `revocations`; each
//! instance polls it, so a revocation takes effect everywhere within one poll
//! interval. Also flushes last-used times in batches instead of writing per request.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::db::now_ms;
use crate::repo::{self, revocations::RevocationRecord};
use crate::secret::new_id;
use crate::service::AuthService;

/// Rows may commit slightly out of `created_at` order; each poll re-reads this far back.
const FEED_OVERLAP_MS: i64 = 5_000;
/// How often last-used times are written.
const LAST_USED_FLUSH: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    Jti,
    ApiKey,
    Client,
    SigningKeys,
}

impl FeedKind {
    fn as_str(self) -> &'static str {
        match self {
            FeedKind::Jti => "jti",
            FeedKind::ApiKey => "api_key",
            FeedKind::Client => "client",
            FeedKind::SigningKeys => "signing_keys",
        }
    }
}

impl AuthService {
    /// Writes a feed row and applies it here at once.
    pub(crate) async fn publish(&self, kind: FeedKind, subject: &str, expires_at: Option<i64>) -> sqlx::Result<()> {
        let row = RevocationRecord {
            id: new_id("rev"),
            kind: kind.as_str().to_owned(),
            subject: subject.to_owned(),
            created_at: now_ms(),
            expires_at,
        };
        repo::revocations::insert(self.db.pool(), &row).await?;
        self.apply(&row).await;
        Ok(())
    }

    /// Loads what must be known before serving: live revoked jtis and disabled clients.
    pub(crate) async fn load_revocation_state(&self) -> sqlx::Result<()> {
        let jtis = repo::revocations::live_jtis(self.db.pool(), now_ms()).await?;
        let disabled: Vec<(String,)> = sqlx::query_as("SELECT id FROM oauth_clients WHERE disabled_at IS NOT NULL")
            .fetch_all(self.db.pool())
            .await?;
        {
            let mut revoked = self.revoked_jtis.write();
            for row in jtis {
                revoked.insert(row.subject, row.expires_at.unwrap_or(i64::MAX));
            }
        }
        self.disabled_clients.write().extend(disabled.into_iter().map(|(id,)| id));
        Ok(())
    }

    async fn apply(&self, row: &RevocationRecord) {
        match row.kind.as_str() {
            "jti" => {
                self.revoked_jtis.write().insert(row.subject.clone(), row.expires_at.unwrap_or(i64::MAX));
            }
            "api_key" => {
                let id = row.subject.as_str();
                self.key_cache.retain(|_, entry| entry.id != id);
            }
            "client" => {
                self.client_cache.remove(&row.subject);
                match repo::clients::get(self.db.pool(), &row.subject).await {
                    Ok(Some(client)) if client.disabled_at.is_some() => {
                        self.disabled_clients.write().insert(client.id);
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "could not reload a changed client"),
                }
            }
            "signing_keys" => {
                if let Err(err) = self.reload_signing_keys().await {
                    tracing::error!(error = %err, "could not reload signing keys");
                }
            }
            other => tracing::warn!(kind = other, "unknown revocation feed entry"),
        }
    }

    /// Reads feed rows newer than the last poll (with overlap) and applies them.
    pub async fn poll_feed(&self) -> sqlx::Result<usize> {
        let since = *self.feed_watermark.lock() - FEED_OVERLAP_MS;
        let rows = repo::revocations::since(self.db.pool(), since).await?;
        let mut newest = since + FEED_OVERLAP_MS;
        for row in &rows {
            self.apply(row).await;
            newest = newest.max(row.created_at);
        }
        *self.feed_watermark.lock() = newest;
        let now = now_ms();
        self.revoked_jtis.write().retain(|_, exp| *exp > now);
        Ok(rows.len())
    }

    /// Writes the last-used times recorded in the caches since the previous flush
    /// (an entry evicted in between loses at most one flush interval of last use).
    pub async fn flush_last_used(&self) {
        fn pending(last_used: &AtomicI64, flushed: &AtomicI64) -> Option<i64> {
            let used = last_used.load(Ordering::Relaxed);
            (used > flushed.swap(used, Ordering::Relaxed)).then_some(used)
        }
        let keys: Vec<(String, i64)> = self
            .key_cache
            .iter()
            .filter_map(|(_, entry)| pending(&entry.last_used, &entry.flushed).map(|at| (entry.id.clone(), at)))
            .collect();
        let clients: Vec<(String, i64)> = self
            .client_cache
            .iter()
            .filter_map(|(_, entry)| pending(&entry.last_used, &entry.flushed).map(|at| (entry.id.clone(), at)))
            .collect();
        for (id, at) in keys {
            if let Err(err) = repo::api_keys::touch(self.db.pool(), &id, at).await {
                tracing::warn!(error = %err, "could not record key last use");
            }
        }
        for (id, at) in clients {
            if let Err(err) = repo::clients::touch(self.db.pool(), &id, at).await {
                tracing::warn!(error = %err, "could not record client last use");
            }
        }
    }

    /// Runs the feed poller, the last-used flusher and the eviction of idle rate-limit
    /// buckets until `shutdown` turns true, then flushes once more.
    pub fn spawn_background(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(service.config.revocation_poll());
            let mut flush = tokio::time::interval_at(tokio::time::Instant::now() + LAST_USED_FLUSH, LAST_USED_FLUSH);
            let mut evict = tokio::time::interval(crate::limits::EVICT_EVERY);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            evict.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = poll.tick() => {
                        if let Err(err) = service.poll_feed().await {
                            tracing::warn!(error = %err, "revocation feed poll failed");
                        }
                    }
                    _ = flush.tick() => service.flush_last_used().await,
                    _ = evict.tick() => service.limits.evict_idle(),
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            break;
                        }
                    }
                }
            }
            service.flush_last_used().await;
        })
    }
}
