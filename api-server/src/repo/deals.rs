//! `deals` and their stage history, `deal_stage_changes`.

use std::sync::LazyLock;

use breadbox_auth::db::{Backend, Db};
use sqlx::{Any, AnyPool, FromRow, Transaction};

use breadbox_auth::secret::new_id;

use crate::domain::deals::{Deal, DealFilter, Stage, StageChange};
use crate::domain::events::Event;
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;
use crate::repo;

/// A row of `deals`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct DealRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub stage: String,
    pub amount: i64,
    pub currency: String,
    pub expected_close_date: Option<String>,
    pub closed_at: Option<i64>,
    pub outcome_reason: Option<String>,
    pub notes: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `deal_stage_changes`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct StageChangeRecord {
    pub deal_version: i64,
    pub from_stage: Option<String>,
    pub to_stage: String,
    pub reason: Option<String>,
    pub changed_by: String,
    pub changed_at: i64,
}

const COLUMNS: &str = "id, account_id, name, stage, amount, currency, expected_close_date, closed_at, \
                       outcome_reason, notes, version, created_at, updated_at";

/// A stage as stored; the CHECK constraint admits only known ones.
fn stage(text: &str) -> Stage {
    Stage::parse(text).unwrap_or_else(|| {
        tracing::error!(stage = %text, "unknown deal stage in database");
        Stage::Discovery
    })
}

impl From<DealRecord> for Deal {
    fn from(r: DealRecord) -> Self {
        Deal {
            stage: stage(&r.stage),
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            amount: r.amount,
            currency: r.currency,
            expected_close_date: r.expected_close_date,
            closed_at: r.closed_at,
            outcome_reason: r.outcome_reason,
            notes: r.notes,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<StageChangeRecord> for StageChange {
    fn from(r: StageChangeRecord) -> Self {
        StageChange {
            from: r.from_stage.as_deref().map(stage),
            to: stage(&r.to_stage),
            reason: r.reason,
            changed_by: r.changed_by,
            changed_at: r.changed_at,
            deal_version: r.deal_version,
        }
    }
}

async fn insert_change(
    tx: &mut Transaction<'static, Any>,
    tenant: &Tenant,
    deal_id: &str,
    change: &StageChange,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deal_stage_changes (id, org_id, env, deal_id, deal_version, from_stage, to_stage, reason, \
         changed_by, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_id("stg"))
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(deal_id)
    .bind(change.deal_version)
    .bind(change.from.map(Stage::as_str))
    .bind(change.to.as_str())
    .bind(&change.reason)
    .bind(&change.changed_by)
    .bind(change.changed_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts the deal, its first stage change and its events, atomically.
pub async fn insert(pool: &AnyPool, backend: Backend, tenant: &Tenant, d: &Deal, history: &[StageChange], events: &[Event]) -> sqlx::Result<()> {
    let (sql, joined) = super::events::joined(
        backend,
        "INSERT INTO deals (id, org_id, env, account_id, name, stage, amount, currency, expected_close_date, \
         closed_at, outcome_reason, notes, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        15,
        events,
    );
    let query = sqlx::query(&sql)
    .bind(&d.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&d.account_id)
    .bind(&d.name)
    .bind(d.stage.as_str())
    .bind(d.amount)
    .bind(&d.currency)
    .bind(&d.expected_close_date)
    .bind(d.closed_at)
    .bind(&d.outcome_reason)
    .bind(&d.notes)
    .bind(d.version)
    .bind(d.created_at)
    .bind(d.updated_at);
    let (mut tx, _) = super::begin_with(pool, super::events::bind_joined(query, tenant, joined)).await?;
    for change in history {
        insert_change(&mut tx, tenant, &d.id, change).await?;
    }
    tx.commit().await
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<DealRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "deals"));
    repo::by_id(db, &SQL, tenant, id).await
}

/// The stage changes of a deal, oldest first.
pub async fn history(db: &Db, tenant: &Tenant, deal_id: &str) -> sqlx::Result<Vec<StageChangeRecord>> {
    db.fetch_few(
        "SELECT deal_version, from_stage, to_stage, reason, changed_by, changed_at FROM deal_stage_changes \
         WHERE deal_id = $1 AND org_id = $2 AND env = $3 ORDER BY deal_version",
        &repo::keyed(deal_id, tenant),
    )
    .await
}

/// Up to `page.fetch()` deals after `page.after`, in `(created_at, id)` order.
pub async fn list(db: &Db, tenant: &Tenant, filter: &DealFilter, page: &PageRequest) -> sqlx::Result<Vec<DealRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "deals", &["stage = {}", "account_id = {}"]));
    let filters = [filter.stage.map(Stage::as_str).into(), filter.account_id.as_deref().into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}

/// Writes `d`, records `change` and stores `events` if the stored version is still
/// `expected`; false when another writer won.
pub async fn update(
    pool: &AnyPool,
    tenant: &Tenant,
    d: &Deal,
    expected: i64,
    change: Option<&StageChange>,
    events: &[Event],
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE deals SET account_id = $1, name = $2, stage = $3, amount = $4, currency = $5, \
         expected_close_date = $6, closed_at = $7, outcome_reason = $8, notes = $9, version = $10, updated_at = $11 \
         WHERE id = $12 AND org_id = $13 AND env = $14 AND version = $15",
    )
    .bind(&d.account_id)
    .bind(&d.name)
    .bind(d.stage.as_str())
    .bind(d.amount)
    .bind(&d.currency)
    .bind(&d.expected_close_date)
    .bind(d.closed_at)
    .bind(&d.outcome_reason)
    .bind(&d.notes)
    .bind(d.version)
    .bind(d.updated_at)
    .bind(&d.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(expected)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some(change) = change {
        insert_change(&mut tx, tenant, &d.id, change).await?;
    }
    repo::events::insert(&mut tx, tenant, events).await?;
    tx.commit().await?;
    Ok(true)
}
