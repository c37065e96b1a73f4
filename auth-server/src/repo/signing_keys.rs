use sqlx::{AnyPool, FromRow};

/// A row of `signing_keys`: an Ed25519 key pair (PKCS#8 DER, base64) and its public half.
#[derive(Debug, Clone, FromRow)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub private_der: String,
    pub public_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// Keys still needed: the active one and retired ones whose tokens may not have expired.
pub async fn list_live(pool: &AnyPool, retired_after: i64) -> sqlx::Result<Vec<SigningKeyRecord>> {
    sqlx::query_as(
        "SELECT kid, alg, private_der, public_key, created_at, retired_at FROM signing_keys \
         WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC",
    )
    .bind(retired_after)
    .fetch_all(pool)
    .await
}

/// Inserts `key` and retires every other active key, atomically.
pub async fn rotate(pool: &AnyPool, key: &SigningKeyRecord) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, private_der, public_key, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(&key.private_der)
    .bind(&key.public_key)
    .bind(key.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
