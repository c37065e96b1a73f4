//! The outbox, `events`: written only inside the transaction of the change that causes
//! the event.

use sqlx::{Any, Transaction};

use crate::domain::events::Event;
use crate::domain::Tenant;

/// Stores `events` of `tenant` as part of `tx`.
pub async fn insert(tx: &mut Transaction<'static, Any>, tenant: &Tenant, events: &[Event]) -> sqlx::Result<()> {
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
pub async fn insert_batch(tx: &mut Transaction<'static, Any>, tenant: &Tenant, events: &[Event]) -> sqlx::Result<()> {
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|r| {
                let n = r * 6;
                format!("(${}, ${}, ${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4, n + 5, n + 6)
            })
            .collect();
        let sql = format!("INSERT INTO events (id, org_id, env, type, data, created_at) VALUES {}", rows.join(", "));
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
