//! The outbox, `events`: written only inside the transaction of the change that causes
//! the event.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{Any, Transaction};

use breadbox_auth::db::Backend;

use crate::domain::events::Event;
use crate::domain::Tenant;

/// Whether events are stored. Only the benchmark turns this off, to measure what the
/// outbox costs a write: without it no webhook is ever sent. No configuration reaches it.
static RECORDING: AtomicBool = AtomicBool::new(true);

/// Turns the outbox on or off for the whole process (the benchmark's switch).
pub fn set_recording(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Stores `events` of `tenant` as part of `tx`.
pub async fn insert(tx: &mut Transaction<'static, Any>, tenant: &Tenant, events: &[Event]) -> sqlx::Result<()> {
    if !recording() {
        return Ok(());
    }
    for event in events {
        sqlx::query("INSERT INTO events (id, org_id, env, type, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&event.id)
            .bind(&tenant.org_id)
            .bind(tenant.env_str())
            .bind(event.kind.as_str())
            .bind(event.data.to_string())
            .bind(event.created_at)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Events stored per statement by `insert_batch`: 6 parameters each.
const EVENTS_PER_STATEMENT: usize = 200;

/// As `insert`, with multi-row statements: for the many events of a bulk write.
pub async fn insert_batch(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    tenant: &Tenant,
    events: &[Event],
) -> sqlx::Result<()> {
    if !recording() {
        return Ok(());
    }
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let rows = super::values_rows(backend, chunk.len(), 6);
        let sql = format!("INSERT INTO events (id, org_id, env, type, data, created_at) VALUES {rows}");
        let mut query = sqlx::query(&sql);
        for event in chunk {
            query = query
                .bind(&event.id)
                .bind(&tenant.org_id)
                .bind(tenant.env_str())
                .bind(event.kind.as_str())
                .bind(event.data.to_string())
                .bind(event.created_at);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
