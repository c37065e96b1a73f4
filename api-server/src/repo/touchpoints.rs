//! `touchpoints`.

use std::sync::LazyLock;

use breadbox_auth::db::{Backend, Db};
use sqlx::{AnyPool, FromRow};

use crate::domain::events::Event;
use crate::domain::paging::PageRequest;
use crate::domain::touchpoints::{Touchpoint, TouchpointFilter, TouchpointType};
use crate::domain::Tenant;
use crate::repo;

/// A row of `touchpoints`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct TouchpointRecord {
    pub id: String,
    pub account_id: String,
    pub contact_id: Option<String>,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: i64,
    pub subject: String,
    pub summary: Option<String>,
    pub source: Option<String>,
    pub external_id: Option<String>,
    pub agenda: Option<String>,
    pub outcome: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, contact_id, type, occurred_at, subject, summary, source, external_id, \
                       agenda, outcome, version, created_at, updated_at";

impl From<TouchpointRecord> for Touchpoint {
    fn from(r: TouchpointRecord) -> Self {
        Touchpoint {
            // The CHECK constraint admits only known types.
            kind: TouchpointType::parse(&r.kind).unwrap_or_else(|| {
                tracing::error!(kind = %r.kind, "unknown touchpoint type in database");
                TouchpointType::Call
            }),
            id: r.id,
            account_id: r.account_id,
            contact_id: r.contact_id,
            occurred_at: r.occurred_at,
            subject: r.subject,
            summary: r.summary,
            source: r.source,
            external_id: r.external_id,
            agenda: r.agenda,
            outcome: r.outcome,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Inserts the touchpoint and its event, atomically.
pub async fn insert(pool: &AnyPool, backend: Backend, tenant: &Tenant, t: &Touchpoint, event: &Event) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let insert = format!(
        "INSERT INTO touchpoints (org_id, env, {COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    );
    let (sql, joined) = super::events::joined(backend, &insert, 16, std::slice::from_ref(event));
    let query = sqlx::query(&sql)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&t.id)
    .bind(&t.account_id)
    .bind(&t.contact_id)
    .bind(t.kind.as_str())
    .bind(t.occurred_at)
    .bind(&t.subject)
    .bind(&t.summary)
    .bind(&t.source)
    .bind(&t.external_id)
    .bind(&t.agenda)
    .bind(&t.outcome)
    .bind(t.version)
    .bind(t.created_at)
    .bind(t.updated_at);
    super::events::bind_joined(query, tenant, joined).execute(&mut *tx).await?;
    tx.commit().await
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<TouchpointRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "touchpoints"));
    repo::by_id(db, &SQL, tenant, id).await
}

/// The touchpoint a tool logged as `external_id` in `source`, if any.
pub async fn by_external_id(pool: &AnyPool, tenant: &Tenant, source: &str, external_id: &str) -> sqlx::Result<Option<TouchpointRecord>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM touchpoints WHERE org_id = $1 AND env = $2 AND source = $3 AND external_id = $4"
    ))
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(source)
    .bind(external_id)
    .fetch_optional(pool)
    .await
}

/// Up to `page.fetch()` touchpoints after `page.after`, in `(created_at, id)` order.
pub async fn list(db: &Db, tenant: &Tenant, filter: &TouchpointFilter, page: &PageRequest) -> sqlx::Result<Vec<TouchpointRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "touchpoints", &["account_id = {}", "type = {}"]));
    let filters = [filter.account_id.as_deref().into(), filter.kind.map(TouchpointType::as_str).into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}
