//! `accounts`. Sites are stored as a JSON array in `sites`: they are few, always read
//! with their account and replaced as a whole.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, FromRow};

use breadbox_auth::db::{Backend, Db};

use crate::domain::accounts::{Account, AccountFilter, Lifecycle, Site};
use crate::domain::events::Event;
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;
use crate::repo;

/// A row of `accounts`.
#[derive(Debug, Clone, FromRow, Deserialize)]
pub struct AccountRecord {
    pub id: String,
    pub name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub lifecycle: String,
    pub sites: String,
    pub primary_contact_id: Option<String>,
    pub seats: Option<i64>,
    pub notes: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One element of the `sites` JSON array.
#[derive(Debug, Serialize, Deserialize)]
struct SiteJson {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

const COLUMNS: &str =
    "id, name, domain, industry, lifecycle, sites, primary_contact_id, seats, notes, version, created_at, updated_at";

impl From<AccountRecord> for Account {
    fn from(r: AccountRecord) -> Self {
        // The CHECK constraint admits only known lifecycles and only this module writes
        // `sites`, so neither fallback is reached unless the row was edited by hand.
        let lifecycle = Lifecycle::parse(&r.lifecycle).unwrap_or_else(|| {
            tracing::error!(account = %r.id, lifecycle = %r.lifecycle, "unknown lifecycle in database");
            Lifecycle::Lead
        });
        let sites: Vec<SiteJson> = serde_json::from_str(&r.sites).unwrap_or_else(|err| {
            tracing::error!(account = %r.id, error = %err, "unreadable sites in database");
            Vec::new()
        });
        Account {
            id: r.id,
            name: r.name,
            domain: r.domain,
            industry: r.industry,
            lifecycle,
            sites: sites.into_iter().map(|s| Site { name: s.name, address: s.address }).collect(),
            primary_contact_id: r.primary_contact_id,
            seats: r.seats,
            notes: r.notes,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn sites_json(account: &Account) -> String {
    let sites: Vec<SiteJson> =
        account.sites.iter().map(|s| SiteJson { name: s.name.clone(), address: s.address.clone() }).collect();
    serde_json::to_string(&sites).unwrap_or_else(|_| "[]".to_owned())
}

/// Inserts the account and its events, atomically.
pub async fn insert(pool: &AnyPool, backend: Backend, tenant: &Tenant, a: &Account, events: &[Event]) -> sqlx::Result<()> {
    let (sql, joined) = repo::events::joined(
        backend,
        "INSERT INTO accounts (id, org_id, env, name, domain, industry, lifecycle, sites, primary_contact_id, \
         seats, notes, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        14,
        events,
    );
    let query = sqlx::query(&sql)
    .bind(&a.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&a.name)
    .bind(&a.domain)
    .bind(&a.industry)
    .bind(a.lifecycle.as_str())
    .bind(sites_json(a))
    .bind(&a.primary_contact_id)
    .bind(a.seats)
    .bind(&a.notes)
    .bind(a.version)
    .bind(a.created_at)
    .bind(a.updated_at);
    let (tx, _) = repo::begin_with(pool, repo::events::bind_joined(query, tenant, joined)).await?;
    tx.commit().await
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<AccountRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "accounts"));
    repo::by_id(db, &SQL, tenant, id).await
}

pub async fn exists(pool: &AnyPool, tenant: &Tenant, id: &str) -> sqlx::Result<bool> {
    super::exists_in(pool, "accounts", tenant, id).await
}

/// Which of `ids` are the tenant's accounts, in one query.
pub async fn existing(pool: &AnyPool, backend: Backend, tenant: &Tenant, ids: &[String]) -> sqlx::Result<Vec<String>> {
    super::existing_in(pool, backend, "accounts", tenant, ids).await
}

/// The id of the account holding `domain`, if any.
pub async fn find_by_domain(pool: &AnyPool, tenant: &Tenant, domain: &str) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM accounts WHERE org_id = $1 AND env = $2 AND domain = $3")
            .bind(&tenant.org_id)
            .bind(tenant.env_str())
            .bind(domain)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(id,)| id))
}

/// Up to `page.fetch()` accounts after `page.after`, in `(created_at, id)` order.
pub async fn list(
    db: &Db,
    tenant: &Tenant,
    filter: &AccountFilter,
    page: &PageRequest,
) -> sqlx::Result<Vec<AccountRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "accounts", &["lifecycle = {}", "industry = {}"]));
    let filters = [filter.lifecycle.map(Lifecycle::as_str).into(), filter.industry.as_deref().into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}

/// Writes `a` and its events if the stored version is still `expected`; false when
/// another writer won.
pub async fn update(pool: &AnyPool, tenant: &Tenant, a: &Account, expected: i64, events: &[Event]) -> sqlx::Result<bool> {
    let query = sqlx::query(
        "UPDATE accounts SET name = $1, domain = $2, industry = $3, lifecycle = $4, sites = $5, \
         primary_contact_id = $6, seats = $7, notes = $8, version = $9, updated_at = $10 \
         WHERE id = $11 AND org_id = $12 AND env = $13 AND version = $14",
    )
    .bind(&a.name)
    .bind(&a.domain)
    .bind(&a.industry)
    .bind(a.lifecycle.as_str())
    .bind(sites_json(a))
    .bind(&a.primary_contact_id)
    .bind(a.seats)
    .bind(&a.notes)
    .bind(a.version)
    .bind(a.updated_at)
    .bind(&a.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(expected);
    let (mut tx, done) = repo::begin_with(pool, query).await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    repo::events::insert(&mut tx, tenant, events).await?;
    tx.commit().await?;
    Ok(true)
}
