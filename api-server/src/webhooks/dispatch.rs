//! Fan-out: each undispatched outbox event becomes one message per enabled endpoint of
//! its organization and environment that subscribes to its type, and the event is
//! recorded as dispatched (stamped on PostgreSQL; behind the outbox cursor on SQLite,
//! see `repo::pending_events`) — all in one transaction, so an event is fanned out
//! once. Messages are unique per (endpoint, event), so a repeated fan-out adds nothing.

use std::collections::HashMap;

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::repo;
use crate::domain::Crm;

/// Fans out up to `limit` events; returns how many.
pub async fn run_once(crm: &Crm, limit: i64) -> sqlx::Result<usize> {
    if !repo::has_pending(crm.pool(), crm.backend()).await? {
        return Ok(0);
    }
    let mut tx = crm.writer().begin().await?;
    let events = repo::pending_events(&mut tx, crm.backend(), limit).await?;
    if events.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let now = now_ms();
    // Per (organization, environment): each enabled endpoint's id and subscribed events.
    type Subscribed = Vec<(String, Vec<String>)>;
    let mut endpoints: HashMap<(String, String), Subscribed> = HashMap::new();
    for event in events.iter().filter(|e| e.direct == 0) {
        let key = (event.org_id.clone(), event.env.clone());
        if !endpoints.contains_key(&key) {
            let rows = repo::enabled_endpoints(&mut tx, &event.org_id, &event.env).await?;
            let parsed = rows
                .into_iter()
                .map(|(id, types)| (id, serde_json::from_str::<Vec<String>>(&types).unwrap_or_default()))
                .collect();
            endpoints.insert(key.clone(), parsed);
        }
        for (endpoint_id, types) in endpoints.get(&key).into_iter().flatten() {
            if types.iter().any(|t| t == "*" || *t == event.kind) {
                repo::insert_message(&mut tx, &event.org_id, &event.env, endpoint_id, &event.id, &new_id("msg"), now).await?;
            }
        }
    }
    repo::mark_dispatched(&mut tx, crm.backend(), &events, now).await?;
    tx.commit().await?;
    Ok(events.len())
}
