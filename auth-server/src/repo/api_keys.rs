use sqlx::{AnyPool, FromRow};

/// A row of `api_keys`. The key itself is never stored: only `key_hash` (SHA-256).
#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRecord {
    pub id: String,
    pub org_id: String,
    pub env: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub replaced_by: Option<String>,
}

const COLUMNS: &str = "id, org_id, env, name, prefix, key_hash, scopes, created_at, expires_at, \
                       revoked_at, last_used_at, replaced_by";

pub async fn insert(pool: &AnyPool, key: &ApiKeyRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, env, name, prefix, key_hash, scopes, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&key.id)
    .bind(&key.org_id)
    .bind(&key.env)
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(&key.key_hash)
    .bind(&key.scopes)
    .bind(key.created_at)
    .bind(key.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn find_by_hash(pool: &AnyPool, key_hash: &str) -> sqlx::Result<Option<ApiKeyRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"))
        .bind(key_hash)
        .fetch_optional(pool)
        .await
}

pub async fn get(pool: &AnyPool, id: &str) -> sqlx::Result<Option<ApiKeyRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list_for_org(pool: &AnyPool, org_id: &str) -> sqlx::Result<Vec<ApiKeyRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at, id"))
        .bind(org_id)
        .fetch_all(pool)
        .await
}

/// Marks a key revoked (first revocation wins). Returns whether it was active.
pub async fn revoke(pool: &AnyPool, id: &str, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a rotated key its end of life and names its successor.
pub async fn retire(pool: &AnyPool, id: &str, expires_at: i64, replaced_by: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE api_keys SET expires_at = $1, replaced_by = $2 WHERE id = $3")
        .bind(expires_at)
        .bind(replaced_by)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn touch(pool: &AnyPool, id: &str, at: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
        .bind(at)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
