//! `contracts`, their `contract_lines` and `contract_amendments`.

use std::sync::LazyLock;

use serde_json::{json, Value};
use sqlx::{Any, AnyPool, FromRow, Transaction};

use breadbox_auth::db::Db;
use breadbox_auth::secret::new_id;

use crate::domain::contracts::{Amendment, Contract, ContractFilter, ContractStatus, FieldChange};
use crate::domain::events::Event;
use crate::domain::paging::PageRequest;
use crate::domain::service_lines::{BillingPeriod, ServiceCategory, ServiceLine, Totals};
use crate::domain::Tenant;
use crate::repo;

/// A row of `contracts`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct ContractRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub status: String,
    pub start_date: String,
    pub end_date: Option<String>,
    pub auto_renew: i64,
    pub currency: String,
    pub notes: Option<String>,
    pub monthly_recurring: i64,
    pub one_off: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `contract_lines`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
struct LineRecord {
    category: String,
    description: String,
    quantity: i64,
    unit_price: i64,
    billing_period: String,
}

/// A row of `contract_amendments`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
struct AmendmentRecord {
    id: String,
    contract_version: i64,
    effective_date: String,
    description: String,
    changes: String,
    created_by: String,
    created_at: i64,
}

pub(super) const COLUMNS: &str = "id, account_id, name, status, start_date, end_date, auto_renew, currency, notes, \
                       monthly_recurring, one_off, version, created_at, updated_at";

fn known<T>(value: Option<T>, what: &str, text: &str, fallback: T) -> T {
    value.unwrap_or_else(|| {
        tracing::error!(value = %text, "unknown {what} in database");
        fallback
    })
}

impl From<ContractRecord> for Contract {
    fn from(r: ContractRecord) -> Self {
        Contract {
            status: known(ContractStatus::parse(&r.status), "contract status", &r.status, ContractStatus::Draft),
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            start_date: r.start_date,
            end_date: r.end_date,
            auto_renew: r.auto_renew != 0,
            currency: r.currency,
            notes: r.notes,
            totals: Totals { monthly_recurring: r.monthly_recurring, one_off: r.one_off },
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<LineRecord> for ServiceLine {
    fn from(r: LineRecord) -> Self {
        ServiceLine {
            category: known(ServiceCategory::parse(&r.category), "service category", &r.category, ServiceCategory::Other),
            billing_period: known(BillingPeriod::parse(&r.billing_period), "billing period", &r.billing_period, BillingPeriod::Monthly),
            description: r.description,
            quantity: r.quantity,
            unit_price: r.unit_price,
        }
    }
}

fn changes_from_text(text: &str) -> Vec<FieldChange> {
    let parsed: Value = serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::error!(error = %e, "malformed amendment changes in database");
        Value::Null
    });
    parsed
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| FieldChange {
            field: c["field"].as_str().unwrap_or_default().to_owned(),
            from: c["from"].clone(),
            to: c["to"].clone(),
        })
        .collect()
}

fn changes_to_text(changes: &[FieldChange]) -> String {
    Value::Array(changes.iter().map(|c| json!({"field": c.field, "from": c.from, "to": c.to})).collect()).to_string()
}

impl From<AmendmentRecord> for Amendment {
    fn from(r: AmendmentRecord) -> Self {
        Amendment {
            changes: changes_from_text(&r.changes),
            id: r.id,
            contract_version: r.contract_version,
            effective_date: r.effective_date,
            description: r.description,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

async fn insert_lines(tx: &mut Transaction<'static, Any>, tenant: &Tenant, contract_id: &str, lines: &[ServiceLine]) -> sqlx::Result<()> {
    for (position, line) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO contract_lines (id, org_id, env, contract_id, position, category, description, quantity, \
             unit_price, billing_period) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id("csl"))
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(contract_id)
        .bind(position as i64)
        .bind(line.category.as_str())
        .bind(&line.description)
        .bind(line.quantity)
        .bind(line.unit_price)
        .bind(line.billing_period.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Inserts a contract, its lines and its `contract.created` event, atomically.
pub async fn insert(pool: &AnyPool, tenant: &Tenant, c: &Contract, lines: &[ServiceLine], event: &Event) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO contracts (id, org_id, env, account_id, name, status, start_date, end_date, auto_renew, currency, \
         notes, monthly_recurring, one_off, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&c.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&c.account_id)
    .bind(&c.name)
    .bind(c.status.as_str())
    .bind(&c.start_date)
    .bind(&c.end_date)
    .bind(i64::from(c.auto_renew))
    .bind(&c.currency)
    .bind(&c.notes)
    .bind(c.totals.monthly_recurring)
    .bind(c.totals.one_off)
    .bind(c.version)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(&mut *tx)
    .await?;
    insert_lines(&mut tx, tenant, &c.id, lines).await?;
    super::events::insert(&mut tx, tenant, std::slice::from_ref(event)).await?;
    tx.commit().await
}

/// Writes `c` if the stored version is still `expected`, replacing its lines when
/// `lines` is given, with the amendment and the `contract.updated` event; false when
/// another writer won.
pub async fn amend(
    pool: &AnyPool,
    tenant: &Tenant,
    c: &Contract,
    expected: i64,
    lines: Option<&[ServiceLine]>,
    amendment: &Amendment,
    event: &Event,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE contracts SET name = $1, status = $2, end_date = $3, auto_renew = $4, notes = $5, \
         monthly_recurring = $6, one_off = $7, version = $8, updated_at = $9 \
         WHERE id = $10 AND org_id = $11 AND env = $12 AND version = $13",
    )
    .bind(&c.name)
    .bind(c.status.as_str())
    .bind(&c.end_date)
    .bind(i64::from(c.auto_renew))
    .bind(&c.notes)
    .bind(c.totals.monthly_recurring)
    .bind(c.totals.one_off)
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
    if let Some(lines) = lines {
        sqlx::query("DELETE FROM contract_lines WHERE contract_id = $1 AND org_id = $2 AND env = $3")
            .bind(&c.id)
            .bind(&tenant.org_id)
            .bind(tenant.env_str())
            .execute(&mut *tx)
            .await?;
        insert_lines(&mut tx, tenant, &c.id, lines).await?;
    }
    sqlx::query(
        "INSERT INTO contract_amendments (id, org_id, env, contract_id, contract_version, effective_date, description, \
         changes, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&amendment.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&c.id)
    .bind(amendment.contract_version)
    .bind(&amendment.effective_date)
    .bind(&amendment.description)
    .bind(changes_to_text(&amendment.changes))
    .bind(&amendment.created_by)
    .bind(amendment.created_at)
    .execute(&mut *tx)
    .await?;
    super::events::insert(&mut tx, tenant, std::slice::from_ref(event)).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<ContractRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "contracts"));
    repo::by_id(db, &SQL, tenant, id).await
}

/// The lines of a contract, in the order given.
pub async fn lines(db: &Db, tenant: &Tenant, contract_id: &str) -> sqlx::Result<Vec<ServiceLine>> {
    let rows: Vec<LineRecord> = db
        .fetch_few(
            "SELECT category, description, quantity, unit_price, billing_period FROM contract_lines \
             WHERE contract_id = $1 AND org_id = $2 AND env = $3 ORDER BY position",
            &repo::keyed(contract_id, tenant),
        )
        .await?;
    Ok(rows.into_iter().map(ServiceLine::from).collect())
}

/// The amendments of a contract, oldest first.
pub async fn amendments(db: &Db, tenant: &Tenant, contract_id: &str) -> sqlx::Result<Vec<Amendment>> {
    let rows: Vec<AmendmentRecord> = db
        .fetch_few(
            "SELECT id, contract_version, effective_date, description, changes, created_by, created_at \
             FROM contract_amendments WHERE contract_id = $1 AND org_id = $2 AND env = $3 ORDER BY contract_version",
            &repo::keyed(contract_id, tenant),
        )
        .await?;
    Ok(rows.into_iter().map(Amendment::from).collect())
}

/// Up to `page.fetch()` contracts after `page.after`, in `(created_at, id)` order.
pub async fn list(db: &Db, tenant: &Tenant, filter: &ContractFilter, page: &PageRequest) -> sqlx::Result<Vec<ContractRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "contracts", &["status = {}", "account_id = {}"]));
    let filters = [filter.status.map(ContractStatus::as_str).into(), filter.account_id.as_deref().into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}

/// The service lines of the tenant's `ACTIVE` contracts, each with its contract's id,
/// account and currency; `account_id` narrows them to one account.
pub async fn active_lines(pool: &AnyPool, tenant: &Tenant, account_id: Option<&str>) -> sqlx::Result<Vec<ActiveLine>> {
    sqlx::query_as(
        "SELECT c.id AS contract_id, c.account_id, c.currency, l.category, l.description, l.quantity, l.unit_price, \
         l.billing_period FROM contracts c JOIN contract_lines l ON l.contract_id = c.id \
         WHERE c.org_id = $1 AND c.env = $2 AND c.status = 'ACTIVE' AND ($3 IS NULL OR c.account_id = $3) \
         ORDER BY c.created_at, c.id, l.position",
    )
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(account_id)
    .fetch_all(pool)
    .await
}

/// A service line of an active contract (see `active_lines`).
#[derive(Debug, Clone, FromRow)]
pub struct ActiveLine {
    pub contract_id: String,
    pub account_id: String,
    pub currency: String,
    category: String,
    description: String,
    quantity: i64,
    unit_price: i64,
    billing_period: String,
}

impl ActiveLine {
    pub fn line(&self) -> ServiceLine {
        ServiceLine::from(LineRecord {
            category: self.category.clone(),
            description: self.description.clone(),
            quantity: self.quantity,
            unit_price: self.unit_price,
            billing_period: self.billing_period.clone(),
        })
    }
}

/// An `ACTIVE` contract as the MRR report counts it.
#[derive(Debug, Clone, FromRow)]
pub struct ActiveContract {
    pub id: String,
    pub account_id: String,
    pub currency: String,
}

/// The tenant's `ACTIVE` contracts.
pub async fn active(pool: &AnyPool, tenant: &Tenant) -> sqlx::Result<Vec<ActiveContract>> {
    sqlx::query_as("SELECT id, account_id, currency FROM contracts WHERE org_id = $1 AND env = $2 AND status = 'ACTIVE'")
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .fetch_all(pool)
        .await
}
