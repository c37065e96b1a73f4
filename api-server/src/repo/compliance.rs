//! `compliance_items`.

use std::sync::LazyLock;

use sqlx::{AnyPool, FromRow};

use breadbox_auth::db::Db;

use crate::domain::compliance::{ComplianceItem, Framework, ItemFilter, ItemStatus};
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;
use crate::repo;

/// A row of `compliance_items`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct ItemRecord {
    pub id: String,
    pub account_id: String,
    pub framework: String,
    pub control_id: String,
    pub title: String,
    pub status: String,
    pub evidence_notes: Option<String>,
    pub due_date: Option<String>,
    pub last_reviewed_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, framework, control_id, title, status, evidence_notes, due_date, \
                       last_reviewed_at, version, created_at, updated_at";

impl From<ItemRecord> for ComplianceItem {
    fn from(r: ItemRecord) -> Self {
        // The CHECK constraints admit only known names.
        let framework = Framework::parse(&r.framework).unwrap_or_else(|| {
            tracing::error!(framework = %r.framework, "unknown compliance framework in database");
            Framework::Soc2
        });
        let status = ItemStatus::parse(&r.status).unwrap_or_else(|| {
            tracing::error!(status = %r.status, "unknown compliance status in database");
            ItemStatus::InProgress
        });
        ComplianceItem {
            id: r.id,
            account_id: r.account_id,
            framework,
            control_id: r.control_id,
            title: r.title,
            status,
            evidence_notes: r.evidence_notes,
            due_date: r.due_date,
            last_reviewed_at: r.last_reviewed_at,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn insert(pool: &AnyPool, tenant: &Tenant, i: &ComplianceItem) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO compliance_items (id, org_id, env, account_id, framework, control_id, title, status, \
         evidence_notes, due_date, last_reviewed_at, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&i.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&i.account_id)
    .bind(i.framework.as_str())
    .bind(&i.control_id)
    .bind(&i.title)
    .bind(i.status.as_str())
    .bind(&i.evidence_notes)
    .bind(&i.due_date)
    .bind(i.last_reviewed_at)
    .bind(i.version)
    .bind(i.created_at)
    .bind(i.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<ItemRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "compliance_items"));
    repo::by_id(db, &SQL, tenant, id).await
}

/// Up to `page.fetch()` items after `page.after`, in `(created_at, id)` order.
pub async fn list(db: &Db, tenant: &Tenant, filter: &ItemFilter, page: &PageRequest) -> sqlx::Result<Vec<ItemRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "compliance_items", &["account_id = {}", "framework = {}", "status = {}"]));
    let filters = [filter.account_id.as_deref().into(), filter.framework.map(Framework::as_str).into(), filter.status.map(ItemStatus::as_str).into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}

/// `(framework, status, count)` over the tenant's items, or one account's.
pub async fn counts(pool: &AnyPool, tenant: &Tenant, account_id: Option<&str>) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT framework, status, COUNT(*) FROM compliance_items \
         WHERE org_id = $1 AND env = $2 AND ($3 IS NULL OR account_id = $3) \
         GROUP BY framework, status",
    )
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(account_id)
    .fetch_all(pool)
    .await
}

/// Writes `i` if the stored version is still `expected`; false when another writer won.
pub async fn update(pool: &AnyPool, tenant: &Tenant, i: &ComplianceItem, expected: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE compliance_items SET account_id = $1, framework = $2, control_id = $3, title = $4, status = $5, \
         evidence_notes = $6, due_date = $7, last_reviewed_at = $8, version = $9, updated_at = $10 \
         WHERE id = $11 AND org_id = $12 AND env = $13 AND version = $14",
    )
    .bind(&i.account_id)
    .bind(i.framework.as_str())
    .bind(&i.control_id)
    .bind(&i.title)
    .bind(i.status.as_str())
    .bind(&i.evidence_notes)
    .bind(&i.due_date)
    .bind(i.last_reviewed_at)
    .bind(i.version)
    .bind(i.updated_at)
    .bind(&i.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(expected)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
