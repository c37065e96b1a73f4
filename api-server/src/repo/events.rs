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
