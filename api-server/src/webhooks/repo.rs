//! Queries of the webhook tables. Portable SQL, but for two differences by backend:
//! claiming rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL (`skip_locked`), and the
//! outbox's record of what was fanned out (`pending_events`, `mark_dispatched`).

use sqlx::{Any, AnyPool, FromRow, Transaction};

use breadbox_auth::db::Backend;

use super::endpoints::Endpoint;
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;

/// A row of `webhook_endpoints`, without its secrets.
#[derive(Debug, Clone, FromRow)]
pub struct EndpointRecord {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: String,
    pub enabled: i64,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub previous_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const ENDPOINT_COLUMNS: &str =
    "id, url, description, events, enabled, disabled_reason, failing_since, previous_expires_at, created_at, updated_at";

impl EndpointRecord {
    pub fn into_endpoint(self) -> Endpoint {
        let events = serde_json::from_str(&self.events).unwrap_or_else(|err| {
            tracing::error!(endpoint = %self.id, error = %err, "unreadable webhook events in database");
            Vec::new()
        });
        Endpoint {
            id: self.id,
            url: self.url,
            description: self.description,
            events,
            enabled: self.enabled != 0,
            disabled_reason: self.disabled_reason,
            failing_since: self.failing_since,
            previous_secret_expires_at: self.previous_expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn events_json(e: &Endpoint) -> String {
    serde_json::to_string(&e.events).unwrap_or_else(|_| "[]".to_owned())
}

pub async fn insert_endpoint(pool: &AnyPool, tenant: &Tenant, e: &Endpoint, secret: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, org_id, env, url, description, events, secret, enabled, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10)",
    )
    .bind(&e.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&e.url)
    .bind(&e.description)
    .bind(events_json(e))
    .bind(secret)
    .bind(i64::from(e.enabled))
    .bind(e.created_at)
    .bind(e.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get_endpoint(pool: &AnyPool, tenant: &Tenant, id: &str) -> sqlx::Result<Option<EndpointRecord>> {
    sqlx::query_as(&format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND org_id = $2 AND env = $3"))
        .bind(id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .fetch_optional(pool)
        .await
}

pub async fn list_endpoints(pool: &AnyPool, tenant: &Tenant, page: &PageRequest) -> sqlx::Result<Vec<EndpointRecord>> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
         WHERE org_id = $1 AND env = $2 AND ($3 IS NULL OR updated_at >= $3) AND (created_at, id) > ($4, $5) \
         ORDER BY created_at, id LIMIT $6"
    ))
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(page.updated_since)
    .bind(page.after.created_at)
    .bind(&page.after.id)
    .bind(page.fetch())
    .fetch_all(pool)
    .await
}

pub async fn update_endpoint(pool: &AnyPool, tenant: &Tenant, e: &Endpoint) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET url = $1, description = $2, events = $3, enabled = $4, disabled_reason = $5, \
         failing_since = $6, version = version + 1, updated_at = $7 WHERE id = $8 AND org_id = $9 AND env = $10",
    )
    .bind(&e.url)
    .bind(&e.description)
    .bind(events_json(e))
    .bind(i64::from(e.enabled))
    .bind(&e.disabled_reason)
    .bind(e.failing_since)
    .bind(e.updated_at)
    .bind(&e.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the endpoint with its messages and their attempts.
pub async fn delete_endpoint(pool: &AnyPool, tenant: &Tenant, id: &str) -> sqlx::Result<bool> {
    const OWNED: &str = "EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $1 AND org_id = $2 AND env = $3)";
    let mut tx = pool.begin().await?;
    for sql in [
        format!("DELETE FROM webhook_attempts WHERE endpoint_id = $1 AND {OWNED}"),
        format!("DELETE FROM webhook_messages WHERE endpoint_id = $1 AND {OWNED}"),
    ] {
        sqlx::query(&sql).bind(id).bind(&tenant.org_id).bind(tenant.env_str()).execute(&mut *tx).await?;
    }
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND org_id = $2 AND env = $3")
        .bind(id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

pub async fn rotate_secret(pool: &AnyPool, tenant: &Tenant, id: &str, secret: &str, previous_until: i64, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_expires_at = $1, secret = $2, \
         version = version + 1, updated_at = $3 WHERE id = $4 AND org_id = $5 AND env = $6",
    )
    .bind(previous_until)
    .bind(secret)
    .bind(now)
    .bind(id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores an event meant for one endpoint only (already dispatched) and its message.
#[allow(clippy::too_many_arguments)]
pub async fn insert_direct(
    pool: &AnyPool,
    tenant: &Tenant,
    event_id: &str,
    kind: &str,
    data: &serde_json::Value,
    now: i64,
    endpoint_id: &str,
    message_id: &str,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO events (id, org_id, env, type, data, created_at, dispatched_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
        .bind(event_id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(kind)
        .bind(data.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    insert_message(&mut tx, &tenant.org_id, tenant.env_str(), endpoint_id, event_id, message_id, now).await?;
    tx.commit().await
}

/// A message for `endpoint_id` of `event_id`, due now; nothing if it exists already.
pub async fn insert_message(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    env: &str,
    endpoint_id: &str,
    event_id: &str,
    message_id: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhook_messages (id, org_id, env, endpoint_id, event_id, status, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6) ON CONFLICT (endpoint_id, event_id) DO NOTHING",
    )
    .bind(message_id)
    .bind(org_id)
    .bind(env)
    .bind(endpoint_id)
    .bind(event_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `FOR UPDATE SKIP LOCKED` where the backend has it: concurrent instances each take
/// different rows. SQLite serialises writers, so it needs none.
pub fn skip_locked(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

/// An event the dispatcher has not fanned out yet.
#[derive(Debug, Clone, FromRow)]
pub struct PendingEvent {
    /// Its rowid on SQLite (the outbox cursor's unit); 0 on PostgreSQL.
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    pub env: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    /// Written for one endpoint with its message (a test event): nothing to fan out.
    pub direct: i64,
}

/// On SQLite, whether events were written after the outbox cursor: a read on the read
/// pool, so that an idle dispatcher does not take the write lock. Always true on
/// PostgreSQL, whose claim does not block writers.
pub async fn has_pending(pool: &AnyPool, backend: Backend) -> sqlx::Result<bool> {
    if backend == Backend::Postgres {
        return Ok(true);
    }
    let (newest, cursor): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT MAX(rowid) FROM events), (SELECT last_rowid FROM outbox_cursor WHERE id = 1)",
    )
    .fetch_one(pool)
    .await?;
    Ok(newest.unwrap_or(0) > cursor.unwrap_or(0))
}

/// Up to `limit` events not fanned out yet, oldest first, held for this transaction:
/// on PostgreSQL the undispatched rows, locked (`SKIP LOCKED`: each instance takes its
/// own); on SQLite the rows after the outbox cursor, once the cursor's row is written
/// so that this transaction holds the write lock before it reads (a transaction that
/// reads and then writes fails at once when another writer committed in between).
pub async fn pending_events(tx: &mut Transaction<'static, Any>, backend: Backend, limit: i64) -> sqlx::Result<Vec<PendingEvent>> {
    match backend {
        Backend::Postgres => {
            sqlx::query_as(
                "SELECT CAST(0 AS BIGINT) AS seq, id, org_id, env, type, CAST(0 AS BIGINT) AS direct FROM events WHERE dispatched_at IS NULL \
                 ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
            )
            .bind(limit)
            .fetch_all(&mut **tx)
            .await
        }
        Backend::Sqlite => {
            sqlx::query("UPDATE outbox_cursor SET last_rowid = last_rowid WHERE id = 1").execute(&mut **tx).await?;
            sqlx::query_as(
                "SELECT rowid AS seq, id, org_id, env, type, dispatched_at IS NOT NULL AS direct FROM events \
                 WHERE rowid > (SELECT last_rowid FROM outbox_cursor WHERE id = 1) ORDER BY rowid LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&mut **tx)
            .await
        }
    }
}

/// The enabled endpoints of a tenant: id and subscribed types (JSON).
pub async fn enabled_endpoints(tx: &mut Transaction<'static, Any>, org_id: &str, env: &str) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT id, events FROM webhook_endpoints WHERE org_id = $1 AND env = $2 AND enabled = 1")
        .bind(org_id)
        .bind(env)
        .fetch_all(&mut **tx)
        .await
}

/// Records `events` (as `pending_events` returned them) fanned out at `now`: on
/// PostgreSQL each is stamped, one statement per 500; on SQLite the cursor moves past
/// the last one.
pub async fn mark_dispatched(tx: &mut Transaction<'static, Any>, backend: Backend, events: &[PendingEvent], now: i64) -> sqlx::Result<()> {
    if backend == Backend::Sqlite {
        if let Some(last) = events.iter().map(|e| e.seq).max() {
            sqlx::query("UPDATE outbox_cursor SET last_rowid = $1 WHERE id = 1 AND last_rowid < $1")
                .bind(last)
                .execute(&mut **tx)
                .await?;
        }
        return Ok(());
    }
    for chunk in events.chunks(500) {
        let sql = format!(
            "UPDATE events SET dispatched_at = {} WHERE id IN {}",
            crate::repo::param(backend, 1),
            crate::repo::values_rows_after(backend, 1, 1, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(now);
        for event in chunk {
            query = query.bind(event.id.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
