//! `contacts` and their links to accounts, `account_contacts`.

use std::sync::LazyLock;

use breadbox_auth::db::{Backend, Db, Param};
use sqlx::{Any, AnyPool, FromRow, Transaction};

use crate::domain::contacts::{AccountLink, Contact, ContactFilter, Role};
use crate::domain::events::Event;
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;
use crate::repo;

/// A row of `contacts`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct ContactRecord {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub notes: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `account_contacts`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct LinkRecord {
    pub contact_id: String,
    pub account_id: String,
    pub role: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, first_name, last_name, email, phone, title, notes, version, created_at, updated_at";

impl From<ContactRecord> for Contact {
    /// The contact without its links (see [`links_of`]).
    fn from(r: ContactRecord) -> Self {
        Contact {
            id: r.id,
            first_name: r.first_name,
            last_name: r.last_name,
            email: r.email,
            phone: r.phone,
            title: r.title,
            notes: r.notes,
            accounts: Vec::new(),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<LinkRecord> for AccountLink {
    fn from(r: LinkRecord) -> Self {
        // The CHECK constraint admits only known roles.
        let role = Role::parse(&r.role).unwrap_or_else(|| {
            tracing::error!(contact = %r.contact_id, role = %r.role, "unknown contact role in database");
            Role::Other
        });
        AccountLink { account_id: r.account_id, role, linked_at: r.created_at }
    }
}

async fn insert_links(tx: &mut Transaction<'static, Any>, tenant: &Tenant, c: &Contact) -> sqlx::Result<()> {
    for link in &c.accounts {
        sqlx::query(
            "INSERT INTO account_contacts (contact_id, account_id, org_id, env, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.id)
        .bind(&link.account_id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(link.role.as_str())
        .bind(link.linked_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Inserts the contact, its links and its events, atomically.
pub async fn insert(pool: &AnyPool, backend: Backend, tenant: &Tenant, c: &Contact, events: &[Event]) -> sqlx::Result<()> {
    let (sql, joined) = super::events::joined(
        backend,
        "INSERT INTO contacts (id, org_id, env, first_name, last_name, email, phone, title, notes, version, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        12,
        events,
    );
    let query = sqlx::query(&sql)
    .bind(&c.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&c.first_name)
    .bind(&c.last_name)
    .bind(&c.email)
    .bind(&c.phone)
    .bind(&c.title)
    .bind(&c.notes)
    .bind(c.version)
    .bind(c.created_at)
    .bind(c.updated_at);
    let (mut tx, _) = super::begin_with(pool, super::events::bind_joined(query, tenant, joined)).await?;
    insert_links(&mut tx, tenant, c).await?;
    tx.commit().await
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<ContactRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "contacts"));
    repo::by_id(db, &SQL, tenant, id).await
}

pub async fn exists(pool: &AnyPool, tenant: &Tenant, id: &str) -> sqlx::Result<bool> {
    super::exists_in(pool, "contacts", tenant, id).await
}

/// The id of the contact holding `email`, if any.
pub async fn find_by_email(pool: &AnyPool, tenant: &Tenant, email: &str) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM contacts WHERE org_id = $1 AND env = $2 AND email = $3")
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(email)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Up to `page.fetch()` contacts after `page.after`, in `(created_at, id)` order.
pub async fn list(
    db: &Db,
    tenant: &Tenant,
    filter: &ContactFilter,
    page: &PageRequest,
) -> sqlx::Result<Vec<ContactRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let linked = "EXISTS (SELECT 1 FROM account_contacts l WHERE l.contact_id = c.id AND l.account_id = {})";
        repo::page_sql(COLUMNS, "contacts c", &[linked])
    });
    let filters = [filter.account_id.as_deref().into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}

/// The links of the given contacts, oldest first.
pub async fn links_of(db: &Db, tenant: &Tenant, contact_ids: &[&str]) -> sqlx::Result<Vec<LinkRecord>> {
    if contact_ids.is_empty() {
        return Ok(Vec::new());
    }
    // One placeholder per id ($3, $4, …); the ids themselves are bound, never spliced.
    let placeholders: Vec<String> = (0..contact_ids.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "SELECT contact_id, account_id, role, created_at FROM account_contacts \
         WHERE org_id = $1 AND env = $2 AND contact_id IN ({}) ORDER BY created_at, account_id",
        placeholders.join(", ")
    );
    let mut params = vec![Param::from(&tenant.org_id), Param::from(tenant.env_str())];
    params.extend(contact_ids.iter().map(|id| Param::from(*id)));
    db.fetch_few(&sql, &params).await
}

/// Writes `c` and its events (and, when `links_changed`, replaces its links) if the
/// stored version is still `expected`; false when another writer won.
pub async fn update(
    pool: &AnyPool,
    tenant: &Tenant,
    c: &Contact,
    expected: i64,
    links_changed: bool,
    events: &[Event],
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE contacts SET first_name = $1, last_name = $2, email = $3, phone = $4, title = $5, notes = $6, \
         version = $7, updated_at = $8 WHERE id = $9 AND org_id = $10 AND env = $11 AND version = $12",
    )
    .bind(&c.first_name)
    .bind(&c.last_name)
    .bind(&c.email)
    .bind(&c.phone)
    .bind(&c.title)
    .bind(&c.notes)
    .bind(c.version)
    .bind(c.updated_at)
    .bind(&c.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(expected)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    if links_changed {
        sqlx::query("DELETE FROM account_contacts WHERE contact_id = $1 AND org_id = $2 AND env = $3")
            .bind(&c.id)
            .bind(&tenant.org_id)
            .bind(tenant.env_str())
            .execute(&mut *tx)
            .await?;
        insert_links(&mut tx, tenant, c).await?;
    }
    repo::events::insert(&mut tx, tenant, events).await?;
    tx.commit().await?;
    Ok(true)
}
