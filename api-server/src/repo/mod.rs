//! Queries of the CRM. Portable SQL through sqlx's `Any` driver (`$n` placeholders work
//! on both backends), `FromRow` records, `From<Record>` for the domain types. Every
//! query of a CRM table names the caller's `org_id` and `env`.

pub mod accounts;
pub mod audit;
pub mod contacts;
pub mod deals;
pub mod events;
pub mod idempotency;
pub mod secrets;

use sqlx::AnyPool;

use crate::domain::Tenant;

/// Whether `table` holds the tenant's row `id`. `table` is one of our table names,
/// never input.
async fn exists_in(pool: &AnyPool, table: &'static str, tenant: &Tenant, id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as(&format!("SELECT id FROM {table} WHERE id = $1 AND org_id = $2 AND env = $3"))
        .bind(id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}
