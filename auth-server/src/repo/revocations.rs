use sqlx::{AnyPool, FromRow};

/// A row of the change feed every instance polls (see `crate::sync`).
#[derive(Debug, Clone, FromRow)]
pub struct RevocationRecord {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

pub async fn insert(pool: &AnyPool, row: &RevocationRecord) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO revocations (id, kind, subject, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&row.id)
        .bind(&row.kind)
        .bind(&row.subject)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn since(pool: &AnyPool, created_after: i64) -> sqlx::Result<Vec<RevocationRecord>> {
    sqlx::query_as(
        "SELECT id, kind, subject, created_at, expires_at FROM revocations WHERE created_at > $1 ORDER BY created_at",
    )
    .bind(created_after)
    .fetch_all(pool)
    .await
}

/// Revoked token ids that may still be presented (not yet expired).
pub async fn live_jtis(pool: &AnyPool, now: i64) -> sqlx::Result<Vec<RevocationRecord>> {
    sqlx::query_as(
        "SELECT id, kind, subject, created_at, expires_at FROM revocations WHERE kind = 'jti' AND expires_at > $1",
    )
    .bind(now)
    .fetch_all(pool)
    .await
}

pub async fn is_jti_revoked(pool: &AnyPool, jti: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM revocations WHERE kind = 'jti' AND subject = $1")
        .bind(jti)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}
