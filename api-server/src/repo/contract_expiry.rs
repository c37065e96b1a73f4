//! `contract_expiry_notices`: which `contract.expiring_soon` notices were sent, and
//! the contracts (of every organization) the sweep looks at.

use sqlx::{AnyPool, FromRow};

use breadbox_auth::db::{is_unique_violation, now_ms};
use breadbox_auth::Environment;

use super::contracts::{ContractRecord, COLUMNS};
use crate::domain::events::Event;
use crate::domain::Tenant;

/// A row of `contracts` with its partition, for work across organizations.
#[derive(Debug, Clone, FromRow)]
struct PartitionedRecord {
    org_id: String,
    env: String,
    #[sqlx(flatten)]
    contract: ContractRecord,
}

/// `ACTIVE` contracts of every organization whose end date lies in `from..=to`
/// (`YYYY-MM-DD`), with their partition.
pub async fn ending_between(pool: &AnyPool, from: &str, to: &str) -> sqlx::Result<Vec<(Tenant, ContractRecord)>> {
    let rows: Vec<PartitionedRecord> = sqlx::query_as(&format!(
        "SELECT org_id, env, {COLUMNS} FROM contracts \
         WHERE status = 'ACTIVE' AND end_date >= $1 AND end_date <= $2 ORDER BY end_date, id"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let env: Environment = r.env.parse().ok()?;
            Some((Tenant { org_id: r.org_id, env }, r.contract))
        })
        .collect())
}

/// The thresholds already notified for a contract ending on `end_date`.
pub async fn notices_sent(pool: &AnyPool, contract_id: &str, end_date: &str) -> sqlx::Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT threshold_days FROM contract_expiry_notices WHERE contract_id = $1 AND end_date = $2")
        .bind(contract_id)
        .bind(end_date)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

/// Records `thresholds` as notified and stores `event`, atomically; false (and nothing
/// stored) when another sweep recorded one of them first.
pub async fn record_notices(
    pool: &AnyPool,
    tenant: &Tenant,
    contract_id: &str,
    thresholds: &[i64],
    end_date: &str,
    event: &Event,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    for threshold in thresholds {
        let inserted = sqlx::query(
            "INSERT INTO contract_expiry_notices (contract_id, threshold_days, end_date, sent_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(contract_id)
        .bind(threshold)
        .bind(end_date)
        .bind(now_ms())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => {
                tx.rollback().await?;
                return Ok(false);
            }
            Err(err) => return Err(err),
        }
    }
    super::events::insert(&mut tx, tenant, std::slice::from_ref(event)).await?;
    tx.commit().await?;
    Ok(true)
}
