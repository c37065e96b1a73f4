//! `idempotency_keys`: claimed when a POST with a key arrives, completed with the
//! response to replay, released when there is nothing worth replaying.

use sqlx::{AnyPool, FromRow};

/// A key's row as another request with the same key finds it.
#[derive(Debug, Clone, FromRow)]
pub struct KeyRecord {
    /// `running` or `done`.
    pub state: String,
    pub fingerprint: String,
    pub status: Option<i64>,
    /// JSON object of the replayed headers.
    pub headers: Option<String>,
    pub body: Option<String>,
    pub created_at: i64,
}

/// The outcome of claiming a key.
#[derive(Debug)]
pub enum Claim {
    /// This request holds the key now.
    Taken,
    /// Another request holds it, or completed with it.
    Held(KeyRecord),
}

/// Takes `key` of `credential_id` for a request arriving at `now`, unless another
/// request holds it. A row created before `expired_before`, or still running since
/// before `abandoned_before` (its process died), is replaced.
pub async fn claim(
    pool: &AnyPool,
    credential_id: &str,
    key: &str,
    now: i64,
    expired_before: i64,
    abandoned_before: i64,
) -> sqlx::Result<Claim> {
    for _ in 0..3 {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (credential_id, idem_key, state, fingerprint, created_at) \
             VALUES ($1, $2, 'running', '', $3) ON CONFLICT (credential_id, idem_key) DO NOTHING",
        )
        .bind(credential_id)
        .bind(key)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Taken);
        }
        let held: Option<KeyRecord> = sqlx::query_as(
            "SELECT state, fingerprint, status, headers, body, created_at FROM idempotency_keys \
             WHERE credential_id = $1 AND idem_key = $2",
        )
        .bind(credential_id)
        .bind(key)
        .fetch_optional(pool)
        .await?;
        let Some(held) = held else { continue };
        let stale = held.created_at < expired_before || (held.state == "running" && held.created_at < abandoned_before);
        if !stale {
            return Ok(Claim::Held(held));
        }
        sqlx::query("DELETE FROM idempotency_keys WHERE credential_id = $1 AND idem_key = $2 AND created_at = $3")
            .bind(credential_id)
            .bind(key)
            .bind(held.created_at)
            .execute(pool)
            .await?;
    }
    Err(sqlx::Error::Protocol("idempotency key claimed and released repeatedly".into()))
}

/// Stores the response of the request holding the key.
pub async fn complete(
    pool: &AnyPool,
    credential_id: &str,
    key: &str,
    fingerprint: &str,
    status: u16,
    headers: &str,
    body: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', fingerprint = $1, status = $2, headers = $3, body = $4 \
         WHERE credential_id = $5 AND idem_key = $6 AND state = 'running'",
    )
    .bind(fingerprint)
    .bind(i64::from(status))
    .bind(headers)
    .bind(body)
    .bind(credential_id)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Frees a key whose request produced nothing to replay.
pub async fn release(pool: &AnyPool, credential_id: &str, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE credential_id = $1 AND idem_key = $2 AND state = 'running'")
        .bind(credential_id)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes keys created before `before`; returns how many.
pub async fn expire(pool: &AnyPool, before: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(before).execute(pool).await?.rows_affected())
}
