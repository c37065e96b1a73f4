//! Deliveries (messages) of an endpoint and their attempts, as the API shows them, and
//! re-sending one.

use sqlx::FromRow;

use breadbox_auth::db::now_ms;

use crate::domain::paging::{Page, PageRequest, Position};
use crate::domain::{Crm, DomainError, Tenant};

/// One event for one endpoint.
#[derive(Debug, Clone, FromRow)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One POST to the endpoint.
#[derive(Debug, Clone, FromRow)]
pub struct Attempt {
    pub id: String,
    pub attempted_at: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response_snippet: Option<String>,
    pub created_at: i64,
}

const DELIVERY_COLUMNS: &str = "m.id, m.endpoint_id, m.event_id, e.type AS event_type, m.status, m.attempts, \
     m.next_attempt_at, m.created_at, m.updated_at";

async fn endpoint_exists(crm: &Crm, tenant: &Tenant, endpoint_id: &str) -> Result<(), DomainError> {
    let found: Option<(String,)> = sqlx::query_as("SELECT id FROM webhook_endpoints WHERE id = $1 AND org_id = $2 AND env = $3")
        .bind(endpoint_id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .fetch_optional(crm.pool())
        .await?;
    found.map(|_| ()).ok_or(DomainError::NotFound("webhook endpoint"))
}

/// The endpoint's deliveries, oldest first, optionally only those in `status`.
pub async fn list(crm: &Crm, tenant: &Tenant, endpoint_id: &str, status: Option<&str>, page: &PageRequest) -> Result<Page<Delivery>, DomainError> {
    endpoint_exists(crm, tenant, endpoint_id).await?;
    let rows: Vec<Delivery> = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_messages m JOIN events e ON e.id = m.event_id \
         WHERE m.endpoint_id = $1 AND m.org_id = $2 AND m.env = $3 AND ($4 IS NULL OR m.status = $4) \
           AND ($5 IS NULL OR m.updated_at >= $5) AND (m.created_at, m.id) > ($6, $7) \
         ORDER BY m.created_at, m.id LIMIT $8"
    ))
    .bind(endpoint_id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(status)
    .bind(page.updated_since)
    .bind(page.after.created_at)
    .bind(&page.after.id)
    .bind(page.fetch())
    .fetch_all(crm.pool())
    .await?;
    Ok(Page::from_rows(rows, page, |d: &Delivery| Position { created_at: d.created_at, id: d.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, endpoint_id: &str, id: &str) -> Result<Delivery, DomainError> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_messages m JOIN events e ON e.id = m.event_id \
         WHERE m.id = $1 AND m.endpoint_id = $2 AND m.org_id = $3 AND m.env = $4"
    ))
    .bind(id)
    .bind(endpoint_id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .fetch_optional(crm.pool())
    .await?
    .ok_or(DomainError::NotFound("delivery"))
}

/// Every attempt of a delivery, oldest first.
pub async fn attempts(crm: &Crm, tenant: &Tenant, endpoint_id: &str, id: &str, page: &PageRequest) -> Result<Page<Attempt>, DomainError> {
    get(crm, tenant, endpoint_id, id).await?;
    let rows: Vec<Attempt> = sqlx::query_as(
        "SELECT id, attempted_at, status_code, error, latency_ms, response_snippet, created_at FROM webhook_attempts \
         WHERE message_id = $1 AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4",
    )
    .bind(id)
    .bind(page.after.created_at)
    .bind(&page.after.id)
    .bind(page.fetch())
    .fetch_all(crm.pool())
    .await?;
    Ok(Page::from_rows(rows, page, |a: &Attempt| Position { created_at: a.created_at, id: a.id.clone() }))
}

/// Queues a delivered or failed delivery again, with a fresh retry schedule and the
/// same event id. A delivery still pending is left as it is.
pub async fn resend(crm: &Crm, tenant: &Tenant, endpoint_id: &str, id: &str) -> Result<Delivery, DomainError> {
    let now = now_ms();
    sqlx::query(
        "UPDATE webhook_messages SET status = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1 \
         WHERE id = $2 AND endpoint_id = $3 AND org_id = $4 AND env = $5 AND status <> 'pending'",
    )
    .bind(now)
    .bind(id)
    .bind(endpoint_id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .execute(crm.writer())
    .await?;
    get(crm, tenant, endpoint_id, id).await
}
