//! `audit_log`: batched inserts from the writer task, and the caller's entries, newest
//! first.

use sqlx::{AnyPool, FromRow};

use breadbox_auth::db::Backend;
use breadbox_auth::Environment;

use crate::audit::Entry;
use crate::domain::audit::AuditFilter;
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;

/// A row of `audit_log`.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRecord {
    pub id: String,
    pub created_at: i64,
    pub request_id: String,
    pub org_id: Option<String>,
    pub env: Option<String>,
    pub credential_id: Option<String>,
    pub method: String,
    pub route: String,
    pub status: i64,
    pub latency_us: i64,
    pub client_ip: Option<String>,
}

const COLUMNS: &str =
    "id, created_at, request_id, org_id, env, credential_id, method, route, status, latency_us, client_ip";
const PER_ROW: usize = 11;

impl From<AuditRecord> for Entry {
    fn from(r: AuditRecord) -> Self {
        Entry {
            id: r.id,
            created_at: r.created_at,
            request_id: r.request_id,
            org_id: r.org_id,
            env: r.env.as_deref().and_then(|e| e.parse().ok()),
            credential_id: r.credential_id,
            method: r.method,
            route: r.route.into(),
            status: u16::try_from(r.status).unwrap_or(0),
            latency_us: r.latency_us,
            client_ip: r.client_ip,
        }
    }
}

/// Stores `entries` in one transaction, with multi-row inserts of the few sizes of
/// `repo::in_statements` (prepared once per connection). A call without a credential
/// has an empty organization and environment (key columns of SQLite's clustered table).
pub async fn insert(pool: &AnyPool, backend: Backend, entries: &[Entry]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for chunk in super::in_statements(entries) {
        let sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES {}", super::values_rows(backend, chunk.len(), PER_ROW));
        let mut query = sqlx::query(&sql);
        for e in chunk {
            query = query
                .bind(e.id.as_str())
                .bind(e.created_at)
                .bind(e.request_id.as_str())
                .bind(e.org_id.as_deref().unwrap_or(""))
                .bind(e.env.map_or("", Environment::as_str))
                .bind(e.credential_id.as_deref())
                .bind(e.method.as_str())
                .bind(&*e.route)
                .bind(i64::from(e.status))
                .bind(e.latency_us)
                .bind(e.client_ip.as_deref());
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Up to `page.fetch()` entries of `tenant` before `page.after`, newest first.
pub async fn list(pool: &AnyPool, tenant: &Tenant, filter: &AuditFilter, page: &PageRequest) -> sqlx::Result<Vec<AuditRecord>> {
    // The start position (before every row in ascending order) is "after the newest"
    // when descending.
    let (before_at, before_id) = if page.after.created_at == i64::MIN && page.after.id.is_empty() {
        (i64::MAX, String::new())
    } else {
        (page.after.created_at, page.after.id.clone())
    };
    let since = match (filter.from, page.updated_since) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_log \
         WHERE org_id = $1 AND env = $2 \
           AND ($3 IS NULL OR credential_id = $3) \
           AND ($4 IS NULL OR status = $4) \
           AND ($5 IS NULL OR created_at >= $5) \
           AND ($6 IS NULL OR created_at < $6) \
           AND (created_at < $7 OR (created_at = $7 AND id < $8)) \
         ORDER BY created_at DESC, id DESC LIMIT $9"
    ))
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(filter.credential_id.as_deref())
    .bind(filter.status.map(i64::from))
    .bind(since)
    .bind(filter.to)
    .bind(before_at)
    .bind(before_id)
    .bind(page.fetch())
    .fetch_all(pool)
    .await
}
