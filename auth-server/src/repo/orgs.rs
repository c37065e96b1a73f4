use sqlx::{AnyPool, FromRow};

/// A row of `organizations`.
#[derive(Debug, Clone, FromRow)]
pub struct OrgRecord {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, plan, created_at, updated_at";

pub async fn insert(pool: &AnyPool, org: &OrgRecord) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO organizations (id, name, plan, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&org.id)
        .bind(&org.name)
        .bind(&org.plan)
        .bind(org.created_at)
        .bind(org.updated_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get(pool: &AnyPool, id: &str) -> sqlx::Result<Option<OrgRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM organizations WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list(pool: &AnyPool) -> sqlx::Result<Vec<OrgRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM organizations ORDER BY created_at, id"))
        .fetch_all(pool)
        .await
}

pub async fn count(pool: &AnyPool) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM organizations").fetch_one(pool).await?;
    Ok(n)
}

pub async fn set_plan(pool: &AnyPool, id: &str, plan: &str, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE organizations SET plan = $1, updated_at = $2 WHERE id = $3")
        .bind(plan)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
