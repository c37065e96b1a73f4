//! `reconciliations`: submitted reports with their comparison, frozen at submission.

use std::sync::LazyLock;

use serde_json::{json, Value};
use sqlx::{AnyPool, FromRow};

use breadbox_auth::db::Db;

use crate::domain::events::Event;
use crate::domain::paging::PageRequest;
use crate::domain::reconciliation::{Reconciliation, ReconciliationFilter, ReconciliationLine};
use crate::domain::service_lines::ServiceCategory;
use crate::domain::Tenant;
use crate::repo;

/// A row of `reconciliations`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
struct ReconciliationRecord {
    id: String,
    account_id: String,
    source: String,
    reported_at: i64,
    has_variance: i64,
    lines: String,
    contract_ids: String,
    submitted_by: String,
    created_at: i64,
}

const COLUMNS: &str = "id, account_id, source, reported_at, has_variance, lines, contract_ids, submitted_by, created_at";

fn json_array(text: &str, what: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        _ => {
            tracing::error!("malformed reconciliation {what} in database");
            Vec::new()
        }
    }
}

impl From<ReconciliationRecord> for Reconciliation {
    fn from(r: ReconciliationRecord) -> Self {
        let lines = json_array(&r.lines, "lines")
            .iter()
            .filter_map(|l| {
                Some(ReconciliationLine {
                    category: ServiceCategory::parse(l["category"].as_str()?)?,
                    contracted: l["contracted"].as_i64()?,
                    reported: l["reported"].as_i64()?,
                })
            })
            .collect();
        let contract_ids = json_array(&r.contract_ids, "contract ids")
            .iter()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect();
        Reconciliation {
            id: r.id,
            account_id: r.account_id,
            source: r.source,
            reported_at: r.reported_at,
            lines,
            has_variance: r.has_variance != 0,
            contract_ids,
            submitted_by: r.submitted_by,
            created_at: r.created_at,
        }
    }
}

/// Stores a record and, when given, its event, atomically.
pub async fn insert(pool: &AnyPool, tenant: &Tenant, r: &Reconciliation, event: Option<&Event>) -> sqlx::Result<()> {
    let lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| json!({"category": l.category.as_str(), "contracted": l.contracted, "reported": l.reported}))
        .collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO reconciliations (id, org_id, env, account_id, source, reported_at, has_variance, lines, contract_ids, \
         submitted_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&r.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&r.account_id)
    .bind(&r.source)
    .bind(r.reported_at)
    .bind(i64::from(r.has_variance))
    .bind(Value::Array(lines).to_string())
    .bind(json!(r.contract_ids).to_string())
    .bind(&r.submitted_by)
    .bind(r.created_at)
    .bind(r.created_at)
    .execute(&mut *tx)
    .await?;
    if let Some(event) = event {
        super::events::insert(&mut tx, tenant, std::slice::from_ref(event)).await?;
    }
    tx.commit().await
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<Reconciliation>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "reconciliations"));
    let row: Option<ReconciliationRecord> = repo::by_id(db, &SQL, tenant, id).await?;
    Ok(row.map(Reconciliation::from))
}

/// Up to `page.fetch()` records after `page.after`, in `(created_at, id)` order.
pub async fn list(
    db: &Db,
    tenant: &Tenant,
    filter: &ReconciliationFilter,
    page: &PageRequest,
) -> sqlx::Result<Vec<Reconciliation>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "reconciliations", &["account_id = {}", "has_variance = {}"]));
    let filters = [filter.account_id.as_deref().into(), filter.has_variance.map(i64::from).into()];
    let rows: Vec<ReconciliationRecord> = db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await?;
    Ok(rows.into_iter().map(Reconciliation::from).collect())
}
