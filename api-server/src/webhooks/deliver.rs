//! The delivery worker: fans new outbox events out to endpoints (`dispatch`), claims
//! due messages, POSTs each signed, records the attempt and settles what comes next.
//!
//! Outcomes: a 2xx delivers; `410 Gone` disables the endpoint at once; a `Retry-After`
//! on 429/503 sets the next attempt; anything else (another status, a timeout, a
//! refused connection) is retried on `SCHEDULE` with ±10 % jitter, then the message
//! fails — and an endpoint that has failed for `disable_after` is disabled, emitting
//! `notification.created`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use breadbox_auth::db::now_ms;

use super::outcome::{self, Attempt, Settle};
use super::target::GuardedResolver;
use super::{dispatch, signature, WebhookConfig};
use crate::domain::Crm;
use crate::time::rfc3339;

/// Delay before the retry after attempt n (n = 1, 2, …); after the last, the message
/// fails. About a day in all.
pub const SCHEDULE: [Duration; 8] = [
    Duration::from_secs(5),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(8 * 3600),
    Duration::from_secs(8 * 3600),
];
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed message is not claimed again before this, unless its attempt settles it.
const LEASE: Duration = Duration::from_secs(60);
/// `Retry-After` is honoured up to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
const SNIPPET_BYTES: usize = 1024;
const DISPATCH_BATCH: i64 = 500;

/// The body of every delivery.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: String,
    environment: &'a str,
    data: serde_json::Value,
}

pub struct Worker {
    crm: Arc<Crm>,
    config: WebhookConfig,
    http: reqwest::Client,
}

impl Worker {
    pub fn new(crm: Arc<Crm>, config: WebhookConfig) -> reqwest::Result<Worker> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { policy: config.targets() }))
            .user_agent(concat!("Breadbox-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Worker { crm, config, http })
    }

    /// Delivers until `stop` turns true, then lets the attempts in flight finish.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let concurrency = this.config.concurrency as usize;
        let slots = Arc::new(Semaphore::new(concurrency));
        while !*stop.borrow() {
            let dispatched = match dispatch::run_once(&this.crm, DISPATCH_BATCH).await {
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(error = %err, "webhook dispatch failed; retrying");
                    0
                }
            };
            let free = slots.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                let lease_until = now_ms() + LEASE.as_millis() as i64;
                outcome::claim_due(&this.crm, now_ms(), lease_until, free as i64).await.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "claiming webhook messages failed; retrying");
                    Vec::new()
                })
            };
            let idle = claimed.is_empty() && dispatched < DISPATCH_BATCH as usize;
            for message_id in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let worker = this.clone();
                tokio::spawn(async move {
                    worker.deliver(&message_id).await;
                    drop(permit);
                });
            }
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(this.config.poll) => {}
                    _ = stop.changed() => {}
                }
            } else if slots.available_permits() == 0 {
                // Every slot busy: go on as soon as one frees, not after a poll period.
                tokio::select! {
                    _ = slots.acquire() => {}
                    _ = stop.changed() => {}
                }
            }
        }
        let _ = tokio::time::timeout(TIMEOUT + Duration::from_secs(2), slots.acquire_many(concurrency as u32)).await;
    }

    async fn deliver(&self, message_id: &str) {
        if let Err(err) = self.try_deliver(message_id).await {
            // The lease lapses and the message is attempted again.
            tracing::warn!(message = message_id, error = %err, "webhook delivery could not be recorded");
        }
    }

    async fn try_deliver(&self, message_id: &str) -> sqlx::Result<()> {
        let Some(ctx) = outcome::context(&self.crm, message_id).await? else {
            return Ok(());
        };
        let now = now_ms();
        if ctx.enabled == 0 {
            return outcome::settle(&self.crm, &ctx, None, Settle::Failed, now, None).await;
        }
        let data = serde_json::from_str(&ctx.data).unwrap_or(serde_json::Value::Null);
        let payload = Payload { id: &ctx.event_id, kind: &ctx.kind, created_at: rfc3339(ctx.created_at), environment: &ctx.env, data };
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let timestamp = now / 1000;
        let mut secrets = vec![ctx.secret.as_str()];
        if let (Some(previous), Some(until)) = (&ctx.previous_secret, ctx.previous_expires_at) {
            if until > now {
                secrets.push(previous);
            }
        }
        let signed = signature::sign(&secrets, &ctx.event_id, timestamp, &body);
        let started = Instant::now();
        let attempt_result = match self.config.targets().check_url(&ctx.url) {
            Err(issue) => Err(format!("URL {issue}")),
            Ok(url) => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .header("x-msp-signature", &signed.msp)
                .header("webhook-id", &ctx.event_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", &signed.standard)
                .body(body)
                .send()
                .await
                .map_err(describe),
        };
        let (attempt, settle) = match attempt_result {
            Err(error) => {
                let latency = started.elapsed().as_millis() as i64;
                (Attempt { status: None, error: Some(error), latency_ms: latency, snippet: None }, self.retry(ctx.attempts + 1, None))
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = retry_after(&response);
                let snippet = snippet(response).await;
                let latency = started.elapsed().as_millis() as i64;
                let settle = match status {
                    200..=299 => Settle::Delivered,
                    410 => Settle::Gone,
                    429 | 503 => self.retry(ctx.attempts + 1, retry_after),
                    _ => self.retry(ctx.attempts + 1, None),
                };
                (Attempt { status: Some(i64::from(status)), error: None, latency_ms: latency, snippet }, settle)
            }
        };
        metrics::counter!("breadbox_webhook_attempts_total", "outcome" => settle.name()).increment(1);
        let disable_after = self.config.disable_after.as_millis() as i64;
        outcome::settle(&self.crm, &ctx, Some(attempt), settle, now_ms(), Some(disable_after)).await
    }

    /// What follows failed attempt number `attempt`.
    fn retry(&self, attempt: i64, retry_after: Option<Duration>) -> Settle {
        let scale = self.config.time_scale.max(0.0);
        let delay = match retry_after {
            Some(wait) => wait.min(MAX_RETRY_AFTER).mul_f64(scale),
            None => match SCHEDULE.get((attempt - 1).max(0) as usize) {
                None => return Settle::Failed,
                Some(base) => base.mul_f64(scale * rand::thread_rng().gen_range(0.9..1.1)),
            },
        };
        Settle::Retry { at: now_ms() + delay.as_millis() as i64 }
    }
}

/// A transport error in a few words, without internals of the client.
fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        format!("timed out after {} s", TIMEOUT.as_secs())
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text.chars().take(300).collect()
    }
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The first `SNIPPET_BYTES` of the response body, as text.
async fn snippet(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < SNIPPET_BYTES {
        match tokio::time::timeout(Duration::from_secs(2), response.chunk()).await {
            Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(SNIPPET_BYTES);
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
}
