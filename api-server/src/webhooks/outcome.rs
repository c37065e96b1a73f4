//! The delivery worker's queries: claiming due messages, reading what to send, and
//! recording an attempt with what follows it, in one transaction.

use sqlx::FromRow;

use breadbox_auth::secret::new_id;
use breadbox_auth::Environment;

use super::repo::skip_locked;
use crate::domain::events::{Event, EventType};
use crate::domain::{Crm, Tenant};
use crate::time::rfc3339;

/// Claims up to `limit` due messages until `lease_until`; returns their ids.
pub async fn claim_due(crm: &Crm, now: i64, lease_until: i64, limit: i64) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(&format!(
        "UPDATE webhook_messages SET next_attempt_at = $1 WHERE id IN (\
           SELECT id FROM webhook_messages WHERE status = 'pending' AND next_attempt_at <= $2 \
           ORDER BY next_attempt_at LIMIT $3{}) RETURNING id",
        skip_locked(crm.backend())
    ))
    .bind(lease_until)
    .bind(now)
    .bind(limit)
    .fetch_all(crm.writer())
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Everything one delivery needs.
#[derive(Debug, Clone, FromRow)]
pub struct Context {
    pub message_id: String,
    pub org_id: String,
    pub env: String,
    pub endpoint_id: String,
    pub attempts: i64,
    pub event_id: String,
    pub kind: String,
    pub data: String,
    pub created_at: i64,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<i64>,
    /// 1 when enabled.
    pub enabled: i64,
}

pub async fn context(crm: &Crm, message_id: &str) -> sqlx::Result<Option<Context>> {
    sqlx::query_as(
        "SELECT m.id AS message_id, m.org_id, m.env, m.endpoint_id, m.attempts, e.id AS event_id, e.type AS kind, e.data, \
         e.created_at, w.url, w.secret, w.previous_secret, w.previous_expires_at, w.enabled \
         FROM webhook_messages m JOIN events e ON e.id = m.event_id JOIN webhook_endpoints w ON w.id = m.endpoint_id \
         WHERE m.id = $1 AND m.status = 'pending'",
    )
    .bind(message_id)
    .fetch_optional(crm.pool())
    .await
}

/// One attempt as recorded.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub snippet: Option<String>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Settle {
    Delivered,
    Retry { at: i64 },
    /// Out of retries (or the endpoint is disabled).
    Failed,
    /// `410 Gone`: the endpoint is disabled at once.
    Gone,
}

impl Settle {
    pub fn name(self) -> &'static str {
        match self {
            Settle::Delivered => "delivered",
            Settle::Retry { .. } => "retry",
            Settle::Failed => "failed",
            Settle::Gone => "gone",
        }
    }
}

/// Records `attempt` (if one was made) and applies `settle` to the message and its
/// endpoint. `disable_after`: when a message fails for good, the endpoint is disabled
/// if it has been failing at least this long (ms).
pub async fn settle(crm: &Crm, ctx: &Context, attempt: Option<Attempt>, settle: Settle, now: i64, disable_after: Option<i64>) -> sqlx::Result<()> {
    let mut tx = crm.writer().begin().await?;
    let attempts = ctx.attempts + i64::from(attempt.is_some());
    if let Some(a) = &attempt {
        sqlx::query(
            "INSERT INTO webhook_attempts (id, message_id, endpoint_id, attempted_at, status_code, error, latency_ms, response_snippet, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(new_id("att"))
        .bind(&ctx.message_id)
        .bind(&ctx.endpoint_id)
        .bind(now - a.latency_ms)
        .bind(a.status)
        .bind(&a.error)
        .bind(a.latency_ms)
        .bind(&a.snippet)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let (status, next) = match settle {
        Settle::Delivered => ("delivered", None),
        Settle::Retry { at } => ("pending", Some(at)),
        Settle::Failed | Settle::Gone => ("failed", None),
    };
    sqlx::query("UPDATE webhook_messages SET status = $1, attempts = $2, next_attempt_at = $3, updated_at = $4 WHERE id = $5")
        .bind(status)
        .bind(attempts)
        .bind(next)
        .bind(now)
        .bind(&ctx.message_id)
        .execute(&mut *tx)
        .await?;
    if attempt.is_some() {
        let query = if settle == Settle::Delivered {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
        } else {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1) WHERE id = $2").bind(now)
        };
        query.bind(&ctx.endpoint_id).execute(&mut *tx).await?;
    }
    let disable = match settle {
        Settle::Gone => Some("the endpoint answered 410 Gone".to_owned()),
        Settle::Failed if attempt.is_some() => match disable_after {
            Some(after) => {
                let since: Option<(Option<i64>,)> = sqlx::query_as("SELECT failing_since FROM webhook_endpoints WHERE id = $1 AND enabled = 1")
                    .bind(&ctx.endpoint_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match since {
                    Some((Some(since),)) if now - since >= after => {
                        Some(format!("every delivery has failed since {}", rfc3339(since)))
                    }
                    _ => None,
                }
            }
            None => None,
        },
        _ => None,
    };
    if let Some(reason) = disable {
        disable_endpoint(&mut tx, ctx, &reason, now).await?;
    }
    tx.commit().await
}

/// Disables the endpoint, fails its pending messages and emits `notification.created`.
async fn disable_endpoint(tx: &mut sqlx::Transaction<'static, sqlx::Any>, ctx: &Context, reason: &str, now: i64) -> sqlx::Result<()> {
    let done = sqlx::query("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2 WHERE id = $3 AND enabled = 1")
        .bind(reason)
        .bind(now)
        .bind(&ctx.endpoint_id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    sqlx::query("UPDATE webhook_messages SET status = 'failed', next_attempt_at = NULL, updated_at = $1 WHERE endpoint_id = $2 AND status = 'pending'")
        .bind(now)
        .bind(&ctx.endpoint_id)
        .execute(&mut **tx)
        .await?;
    tracing::warn!(endpoint = %ctx.endpoint_id, reason, "webhook endpoint disabled");
    let env: Environment = match ctx.env.parse() {
        Ok(env) => env,
        Err(_) => return Ok(()),
    };
    let tenant = Tenant { org_id: ctx.org_id.clone(), env };
    let data = serde_json::json!({
        "id": new_id("ntf"),
        "type": "webhook_endpoint.disabled",
        "title": "Webhook endpoint disabled",
        "message": format!("Webhook endpoint {} ({}) was disabled: {reason}. Fix it, then enable it again.", ctx.endpoint_id, ctx.url),
        "endpointId": ctx.endpoint_id,
        "createdAt": rfc3339(now),
    });
    crate::repo::events::insert(tx, &tenant, &[Event::new(EventType::NotificationCreated, data)]).await
}
