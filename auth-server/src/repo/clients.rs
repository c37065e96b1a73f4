use sqlx::{AnyPool, FromRow};

/// A row of `oauth_clients`. The secret is stored only as an argon2id PHC string.
#[derive(Debug, Clone, FromRow)]
pub struct ClientRecord {
    pub id: String,
    pub org_id: String,
    pub env: String,
    pub name: String,
    pub secret_hash: String,
    pub secret_version: i64,
    pub scopes: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str =
    "id, org_id, env, name, secret_hash, secret_version, scopes, created_at, disabled_at, last_used_at";

pub async fn insert(pool: &AnyPool, client: &ClientRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO oauth_clients (id, org_id, env, name, secret_hash, secret_version, scopes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&client.id)
    .bind(&client.org_id)
    .bind(&client.env)
    .bind(&client.name)
    .bind(&client.secret_hash)
    .bind(client.secret_version)
    .bind(&client.scopes)
    .bind(client.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(pool: &AnyPool, id: &str) -> sqlx::Result<Option<ClientRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM oauth_clients WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list_for_org(pool: &AnyPool, org_id: &str) -> sqlx::Result<Vec<ClientRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM oauth_clients WHERE org_id = $1 ORDER BY created_at, id"))
        .bind(org_id)
        .fetch_all(pool)
        .await
}

pub async fn set_secret(pool: &AnyPool, id: &str, secret_hash: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE oauth_clients SET secret_hash = $1, secret_version = secret_version + 1 WHERE id = $2",
    )
    .bind(secret_hash)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn disable(pool: &AnyPool, id: &str, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE oauth_clients SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn touch(pool: &AnyPool, id: &str, at: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE oauth_clients SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
        .bind(at)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
