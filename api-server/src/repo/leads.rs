//! `leads`.

use std::sync::LazyLock;

use sqlx::{AnyPool, FromRow};

use breadbox_auth::db::Db;

use crate::domain::leads::{Industry, Lead, LeadFilter, Source, Status};
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;
use crate::repo;

/// A row of `leads`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct LeadRecord {
    pub id: String,
    pub company_name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub employee_count: Option<i64>,
    pub seat_estimate: Option<i64>,
    pub source: Option<String>,
    pub status: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub notes: Option<String>,
    pub icp_score: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, company_name, domain, industry, employee_count, seat_estimate, source, status, \
                       contact_name, contact_email, notes, icp_score, version, created_at, updated_at";

/// A name as stored; the CHECK constraints (status) and our writes (industry, source)
/// admit only known ones.
fn known<E>(what: &str, text: &str, parse: fn(&str) -> Option<E>) -> Option<E> {
    let value = parse(text);
    if value.is_none() {
        tracing::error!(value = %text, "unknown lead {what} in database");
    }
    value
}

impl From<LeadRecord> for Lead {
    fn from(r: LeadRecord) -> Self {
        Lead {
            industry: r.industry.as_deref().and_then(|t| known("industry", t, Industry::parse)),
            source: r.source.as_deref().and_then(|t| known("source", t, Source::parse)),
            status: known("status", &r.status, Status::parse).unwrap_or(Status::New),
            id: r.id,
            company_name: r.company_name,
            domain: r.domain,
            employee_count: r.employee_count,
            seat_estimate: r.seat_estimate,
            contact_name: r.contact_name,
            contact_email: r.contact_email,
            notes: r.notes,
            icp_score: r.icp_score,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn insert(pool: &AnyPool, tenant: &Tenant, l: &Lead) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO leads (id, org_id, env, company_name, domain, industry, employee_count, seat_estimate, source, \
         status, contact_name, contact_email, notes, icp_score, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&l.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&l.company_name)
    .bind(&l.domain)
    .bind(l.industry.map(Industry::as_str))
    .bind(l.employee_count)
    .bind(l.seat_estimate)
    .bind(l.source.map(Source::as_str))
    .bind(l.status.as_str())
    .bind(&l.contact_name)
    .bind(&l.contact_email)
    .bind(&l.notes)
    .bind(l.icp_score)
    .bind(l.version)
    .bind(l.created_at)
    .bind(l.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<LeadRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "leads"));
    repo::by_id(db, &SQL, tenant, id).await
}

/// Up to `page.fetch()` leads after `page.after`, in `(created_at, id)` order.
pub async fn list(db: &Db, tenant: &Tenant, filter: &LeadFilter, page: &PageRequest) -> sqlx::Result<Vec<LeadRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "leads", &["status = {}", "icp_score >= {}"]));
    let filters = [filter.status.map(Status::as_str).into(), filter.min_score.into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}

/// Writes `l` if the stored version is still `expected`; false when another writer won.
pub async fn update(pool: &AnyPool, tenant: &Tenant, l: &Lead, expected: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE leads SET company_name = $1, domain = $2, industry = $3, employee_count = $4, seat_estimate = $5, \
         source = $6, status = $7, contact_name = $8, contact_email = $9, notes = $10, icp_score = $11, \
         version = $12, updated_at = $13 \
         WHERE id = $14 AND org_id = $15 AND env = $16 AND version = $17",
    )
    .bind(&l.company_name)
    .bind(&l.domain)
    .bind(l.industry.map(Industry::as_str))
    .bind(l.employee_count)
    .bind(l.seat_estimate)
    .bind(l.source.map(Source::as_str))
    .bind(l.status.as_str())
    .bind(&l.contact_name)
    .bind(&l.contact_email)
    .bind(&l.notes)
    .bind(l.icp_score)
    .bind(l.version)
    .bind(l.updated_at)
    .bind(&l.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(expected)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
