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

use super::AnyQuery;

const INSERT: &str = "INSERT INTO events (id, org_id, env, type, data, created_at) VALUES";

/// Binds one event's six parameters, in `INSERT`'s column order.
fn bind_event<'q>(query: AnyQuery<'q>, tenant: &'q Tenant, event: &'q Event) -> AnyQuery<'q> {
    query
        .bind(&event.id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(event.kind.as_str())
        .bind(event.data.as_str())
        .bind(event.created_at)
}

/// Stores `events` of `tenant` as part of `tx`.
pub async fn insert(tx: &mut Transaction<'static, Any>, tenant: &Tenant, events: &[Event]) -> sqlx::Result<()> {
    if !recording() {
        return Ok(());
    }
    let sql = format!("{INSERT} {}", super::numbered_rows(0, 1, 6));
    for event in events {
        bind_event(sqlx::query(&sql), tenant, event).execute(&mut **tx).await?;
    }
    Ok(())
}

/// `sql`, one statement with the parameters `$1`…`$params`, joined with the insert of
/// `count` events, so that the change and its events reach the database in one round
/// trip (a round trip more per write was most of what the outbox cost): on PostgreSQL
/// a data-modifying `WITH` before the statement, on SQLite a second statement of the
/// same query. Returns the query and the events it stores (none while the outbox is
/// off): bind the statement's parameters, then those events with `bind_joined`. Only
/// for a statement whose affected-row count is not read (SQLite would add the events'
/// to it).
pub fn joined<'e>(backend: Backend, sql: &str, params: usize, events: &'e [Event]) -> (String, &'e [Event]) {
    if events.is_empty() || !recording() {
        return (sql.to_owned(), &[]);
    }
    let insert = format!("{INSERT} {}", super::numbered_rows(params, events.len(), 6));
    let sql = match backend {
        Backend::Postgres => format!("WITH outbox AS ({insert}) {sql}"),
        Backend::Sqlite => format!("{sql}; {insert}"),
    };
    (sql, events)
}

/// Binds the parameters of the events `joined` returned.
pub fn bind_joined<'q>(query: AnyQuery<'q>, tenant: &'q Tenant, events: &'q [Event]) -> AnyQuery<'q> {
    events.iter().fold(query, |query, event| bind_event(query, tenant, event))
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
        let sql = format!("{INSERT} {rows}");
        let query = chunk.iter().fold(sqlx::query(&sql), |query, event| bind_event(query, tenant, event));
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
