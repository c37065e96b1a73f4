//! `devices`. Writes store their events in the same transaction. The bulk upsert writes
//! a batch with multi-row `INSERT … ON CONFLICT (org_id, env, rmm_agent_id) DO UPDATE`
//! statements (the same text on both backends), each row guarded by its version.

use std::sync::LazyLock;

use sqlx::{Any, AnyPool, FromRow, Transaction};

use breadbox_auth::db::{Backend, Db};
use breadbox_auth::Environment;

use crate::domain::devices::{Condition, Device, DeviceFilter, Kind, Status};
use crate::domain::events::Event;
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;
use crate::repo;

/// A row of `devices`, without the sweep's bookkeeping.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct DeviceRecord {
    pub id: String,
    pub account_id: String,
    pub rmm_agent_id: String,
    pub hostname: String,
    pub kind: String,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub last_seen_at: Option<i64>,
    pub warranty_expires_at: Option<i64>,
    pub end_of_life_date: Option<String>,
    pub status: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A device the sweep found due, with its tenant.
#[derive(Debug, Clone)]
pub struct DueDevice {
    pub tenant: Tenant,
    pub device: DeviceRecord,
}

#[derive(Debug, FromRow)]
struct DueRecord {
    org_id: String,
    env: String,
    #[sqlx(flatten)]
    device: DeviceRecord,
}

const COLUMNS: &str = "id, account_id, rmm_agent_id, hostname, kind, os, os_version, serial_number, manufacturer, \
                       model, last_seen_at, warranty_expires_at, end_of_life_date, status, version, created_at, updated_at";

/// The columns an insert writes, in bind order (`bind_row`).
const INSERT_COLUMNS: &str = "id, org_id, env, account_id, rmm_agent_id, hostname, kind, os, os_version, serial_number, \
                              manufacturer, model, last_seen_at, warranty_expires_at, end_of_life_date, status, version, \
                              created_at, updated_at";
const INSERT_WIDTH: usize = 19;

/// Rows per multi-row statement: 19 parameters each. Larger statements cost more to
/// prepare than they save (a bulk call of 500 ran slower as one statement than as five).
const ROWS_PER_STATEMENT: usize = 100;

/// The sweep's flags as an update leaves them: `offline_notified_at` is cleared by a
/// newer `last_seen_at`, `end_of_life_notified_at` by another end-of-life date. `new`
/// names the incoming values (`excluded` in an upsert, parameters in an update).
fn flag_resets(last_seen: &str, end_of_life: &str) -> String {
    format!(
        "offline_notified_at = CASE WHEN {last_seen} > devices.last_seen_at THEN NULL ELSE devices.offline_notified_at END, \
         end_of_life_notified_at = CASE WHEN {end_of_life} = devices.end_of_life_date \
         THEN devices.end_of_life_notified_at END"
    )
}

/// A value stored by us; the CHECK constraints admit only known ones.
fn kind(text: &str) -> Kind {
    Kind::parse(text).unwrap_or_else(|| {
        tracing::error!(kind = %text, "unknown device kind in database");
        Kind::Other
    })
}

fn status(text: &str) -> Status {
    Status::parse(text).unwrap_or_else(|| {
        tracing::error!(status = %text, "unknown device status in database");
        Status::Active
    })
}

impl From<DeviceRecord> for Device {
    fn from(r: DeviceRecord) -> Self {
        Device {
            kind: kind(&r.kind),
            status: status(&r.status),
            id: r.id,
            account_id: r.account_id,
            rmm_agent_id: r.rmm_agent_id,
            hostname: r.hostname,
            os: r.os,
            os_version: r.os_version,
            serial_number: r.serial_number,
            manufacturer: r.manufacturer,
            model: r.model,
            last_seen_at: r.last_seen_at,
            warranty_expires_at: r.warranty_expires_at,
            end_of_life_date: r.end_of_life_date,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

use super::AnyQuery as Query;

fn bind_row<'q>(query: Query<'q>, tenant: &'q Tenant, d: &'q Device) -> Query<'q> {
    query
        .bind(&d.id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(&d.account_id)
        .bind(&d.rmm_agent_id)
        .bind(&d.hostname)
        .bind(d.kind.as_str())
        .bind(&d.os)
        .bind(&d.os_version)
        .bind(&d.serial_number)
        .bind(&d.manufacturer)
        .bind(&d.model)
        .bind(d.last_seen_at)
        .bind(d.warranty_expires_at)
        .bind(&d.end_of_life_date)
        .bind(d.status.as_str())
        .bind(d.version)
        .bind(d.created_at)
        .bind(d.updated_at)
}

/// Inserts the device and its events, atomically.
pub async fn insert(pool: &AnyPool, backend: Backend, tenant: &Tenant, d: &Device, events: &[Event]) -> sqlx::Result<()> {
    let sql = format!("INSERT INTO devices ({INSERT_COLUMNS}) VALUES {}", super::numbered_rows(0, 1, INSERT_WIDTH));
    let (sql, joined) = super::events::joined(backend, &sql, INSERT_WIDTH, events);
    let query = super::events::bind_joined(bind_row(sqlx::query(&sql), tenant, d), tenant, joined);
    let (tx, _) = super::begin_with(pool, query).await?;
    tx.commit().await
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<DeviceRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "devices"));
    repo::by_id(db, &SQL, tenant, id).await
}

/// Up to `page.fetch()` devices after `page.after`, in `(created_at, id)` order.
pub async fn list(db: &Db, tenant: &Tenant, filter: &DeviceFilter, page: &PageRequest) -> sqlx::Result<Vec<DeviceRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "devices", &["account_id = {}", "kind = {}", "status = {}"]));
    let filters = [filter.account_id.as_deref().into(), filter.kind.map(Kind::as_str).into(), filter.status.map(Status::as_str).into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}

/// Writes `d` and its events if the stored version is still `expected`; false when
/// another writer won.
pub async fn update(pool: &AnyPool, tenant: &Tenant, d: &Device, expected: i64, events: &[Event]) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let sql = format!(
        "UPDATE devices SET account_id = $1, rmm_agent_id = $2, hostname = $3, kind = $4, os = $5, os_version = $6, \
         serial_number = $7, manufacturer = $8, model = $9, last_seen_at = $10, warranty_expires_at = $11, \
         end_of_life_date = $12, status = $13, version = $14, updated_at = $15, {} \
         WHERE id = $16 AND org_id = $17 AND env = $18 AND version = $19",
        flag_resets("$10", "$12")
    );
    let done = sqlx::query(&sql)
        .bind(&d.account_id)
        .bind(&d.rmm_agent_id)
        .bind(&d.hostname)
        .bind(d.kind.as_str())
        .bind(&d.os)
        .bind(&d.os_version)
        .bind(&d.serial_number)
        .bind(&d.manufacturer)
        .bind(&d.model)
        .bind(d.last_seen_at)
        .bind(d.warranty_expires_at)
        .bind(&d.end_of_life_date)
        .bind(d.status.as_str())
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
    super::events::insert(&mut tx, tenant, events).await?;
    tx.commit().await?;
    Ok(true)
}

/// The tenant's devices with any of these agent ids, in one query.
pub async fn by_agent_ids(
    pool: &AnyPool,
    backend: Backend,
    tenant: &Tenant,
    agent_ids: &[String],
) -> sqlx::Result<Vec<DeviceRecord>> {
    if agent_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE {}", super::tenant_and_in(backend, "rmm_agent_id", agent_ids.len()));
    let mut query = sqlx::query_as(&sql).bind(&tenant.org_id).bind(tenant.env_str());
    for id in agent_ids {
        query = query.bind(id);
    }
    query.fetch_all(pool).await
}

/// Writes a batch of new and changed devices (a changed one at `version - 1` before)
/// and their events in one transaction. False, with nothing written, when any row lost
/// a race: a device changed since it was read, or one of the new agent ids was taken.
pub async fn upsert_batch(
    pool: &AnyPool,
    backend: Backend,
    tenant: &Tenant,
    devices: &[Device],
    events: &[Event],
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let set = "account_id = excluded.account_id, hostname = excluded.hostname, kind = excluded.kind, os = excluded.os, \
               os_version = excluded.os_version, serial_number = excluded.serial_number, \
               manufacturer = excluded.manufacturer, model = excluded.model, last_seen_at = excluded.last_seen_at, \
               warranty_expires_at = excluded.warranty_expires_at, end_of_life_date = excluded.end_of_life_date, \
               status = excluded.status, version = excluded.version, updated_at = excluded.updated_at";
    for chunk in devices.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO devices ({INSERT_COLUMNS}) VALUES {} \
             ON CONFLICT (org_id, env, rmm_agent_id) DO UPDATE SET {set}, {} \
             WHERE devices.id = excluded.id AND devices.version = excluded.version - 1",
            super::values_rows(backend, chunk.len(), INSERT_WIDTH),
            flag_resets("excluded.last_seen_at", "excluded.end_of_life_date"),
        );
        let mut query = sqlx::query(&sql);
        for d in chunk {
            query = bind_row(query, tenant, d);
        }
        let done = query.execute(&mut *tx).await?;
        if done.rows_affected() != chunk.len() as u64 {
            tx.rollback().await?;
            return Ok(false);
        }
    }
    super::events::insert_batch(&mut tx, backend, tenant, events).await?;
    tx.commit().await?;
    Ok(true)
}

fn due(rows: Vec<DueRecord>) -> Vec<DueDevice> {
    rows.into_iter()
        .filter_map(|r| match r.env.parse::<Environment>() {
            Ok(env) => Some(DueDevice { tenant: Tenant { org_id: r.org_id, env }, device: r.device }),
            Err(err) => {
                tracing::error!(device = %r.device.id, error = %err, "device with an unknown environment");
                None
            }
        })
        .collect()
}

/// Up to `limit` devices of any tenant last seen before `seen_before` and not yet
/// reported offline since.
pub async fn offline_due(pool: &AnyPool, seen_before: i64, limit: i64) -> sqlx::Result<Vec<DueDevice>> {
    let rows = sqlx::query_as(&format!(
        "SELECT org_id, env, {COLUMNS} FROM devices \
         WHERE offline_notified_at IS NULL AND last_seen_at < $1 AND status <> 'RETIRED' \
         ORDER BY last_seen_at, id LIMIT $2"
    ))
    .bind(seen_before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(due(rows))
}

/// Up to `limit` devices of any tenant whose end-of-life date is on or before `today`
/// (`YYYY-MM-DD`) and not yet reported for that date.
pub async fn end_of_life_due(pool: &AnyPool, today: &str, limit: i64) -> sqlx::Result<Vec<DueDevice>> {
    let rows = sqlx::query_as(&format!(
        "SELECT org_id, env, {COLUMNS} FROM devices \
         WHERE end_of_life_notified_at IS NULL AND end_of_life_date <= $1 AND status <> 'RETIRED' \
         ORDER BY end_of_life_date, id LIMIT $2"
    ))
    .bind(today)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(due(rows))
}

/// Marks `condition` reported for `d` and stores `event`, in one transaction, if `d`
/// is still as read and not yet reported (another sweeper may have been first).
pub async fn claim(pool: &AnyPool, tenant: &Tenant, d: &Device, condition: Condition, now: i64, event: &Event) -> sqlx::Result<bool> {
    let sql = match condition {
        Condition::Offline => {
            "UPDATE devices SET offline_notified_at = $1 WHERE id = $2 AND org_id = $3 AND env = $4 \
             AND version = $5 AND offline_notified_at IS NULL"
        }
        Condition::EndOfLife => {
            "UPDATE devices SET end_of_life_notified_at = $1 WHERE id = $2 AND org_id = $3 AND env = $4 \
             AND version = $5 AND end_of_life_notified_at IS NULL"
        }
    };
    let mut tx: Transaction<'static, Any> = pool.begin().await?;
    let done = sqlx::query(sql)
        .bind(now)
        .bind(&d.id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(d.version)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    super::events::insert(&mut tx, tenant, std::slice::from_ref(event)).await?;
    tx.commit().await?;
    Ok(true)
}
