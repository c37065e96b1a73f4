//! Webhooks: endpoints, the fan-out of outbox events to them, signed delivery with
//! retries, and the scheduler of time-based sweeps.
//!
//! The flow: a write stores its events in `events` in its own transaction (the
//! outbox). `dispatch` turns each undispatched event into one `webhook_messages` row per
//! subscribed endpoint and stamps the event, in one transaction. `deliver` claims due
//! messages (a lease on `next_attempt_at`; `FOR UPDATE SKIP LOCKED` on PostgreSQL),
//! POSTs them signed, records the attempt and schedules the next one. Every step is a
//! committed row, so a killed process loses nothing: on restart the lapsed leases are
//! claimed again and the same event id is delivered.

pub mod deliver;
pub mod deliveries;
pub mod dispatch;
pub mod endpoints;
pub mod outcome;
pub mod repo;
pub mod scheduler;
pub mod signature;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::Crm;

/// How webhooks are delivered.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookConfig {
    /// Deliver webhooks from this instance (`false` leaves the outbox to other instances).
    #[arg(long = "webhook-delivery", env = "BREADBOX_WEBHOOK_DELIVERY", default_value_t = true, action = clap::ArgAction::Set)]
    pub delivery: bool,

    /// Deliveries in flight at once per instance.
    #[arg(long = "webhook-concurrency", env = "BREADBOX_WEBHOOK_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// How often an idle worker looks for new events and due retries, e.g. 200ms.
    #[arg(long = "webhook-poll", env = "BREADBOX_WEBHOOK_POLL", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub poll: Duration,

    /// Allow endpoint URLs on loopback addresses (127.0.0.0/8, ::1, `localhost`): local
    /// development and tests.
    #[arg(long = "webhook-allow-loopback", env = "BREADBOX_WEBHOOK_ALLOW_LOOPBACK", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_loopback: bool,

    /// Allow endpoint URLs on private, link-local and other non-public addresses
    /// (10/8, 192.168/16, 169.254/16, fc00::/7 …): a private deployment.
    #[arg(long = "webhook-allow-private", env = "BREADBOX_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private: bool,

    /// Multiplies every retry delay and `Retry-After` (0.001 turns 5 s into 5 ms). For
    /// tests only; 1 in production.
    #[arg(long = "webhook-time-scale", env = "BREADBOX_WEBHOOK_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,

    /// An endpoint whose deliveries have all failed for this long is disabled when a
    /// message runs out of retries, e.g. 72h.
    #[arg(long = "webhook-disable-after", env = "BREADBOX_WEBHOOK_DISABLE_AFTER", default_value = "72h", value_parser = humantime::parse_duration)]
    pub disable_after: Duration,

    /// How often the time-based events are looked for (contracts ending soon, devices
    /// offline or past end of life), e.g. 5m.
    #[arg(long = "webhook-sweep-every", env = "BREADBOX_WEBHOOK_SWEEP_EVERY", default_value = "5m", value_parser = humantime::parse_duration)]
    pub sweep_every: Duration,

    /// A device not seen by its RMM for this long is offline (`device.offline`), e.g. 24h.
    #[arg(long = "device-offline-after", env = "BREADBOX_DEVICE_OFFLINE_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub device_offline_after: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            delivery: true,
            concurrency: 32,
            poll: Duration::from_millis(200),
            allow_loopback: false,
            allow_private: false,
            time_scale: 1.0,
            disable_after: Duration::from_secs(72 * 3600),
            sweep_every: Duration::from_secs(300),
            device_offline_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl WebhookConfig {
    /// Settings for tests: loopback receivers, fast polling, a retry schedule of
    /// milliseconds, endpoints disabled as soon as a message fails for good.
    pub fn for_tests() -> WebhookConfig {
        WebhookConfig {
            allow_loopback: true,
            poll: Duration::from_millis(20),
            time_scale: 0.0001,
            disable_after: Duration::ZERO,
            sweep_every: Duration::from_secs(1),
            ..WebhookConfig::default()
        }
    }

    pub fn targets(&self) -> target::Policy {
        target::Policy { allow_loopback: self.allow_loopback, allow_private: self.allow_private }
    }
}

/// Starts the delivery worker and the scheduler; both stop when `stop` turns true.
pub fn spawn(crm: Arc<Crm>, config: WebhookConfig, sweeps: scheduler::Scheduler, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(sweeps.run(crm.clone(), stop.clone()))];
    if config.delivery {
        match deliver::Worker::new(crm, config) {
            Ok(worker) => tasks.push(tokio::spawn(worker.run(stop))),
            Err(err) => tracing::error!(error = %err, "webhook delivery not started: cannot build the HTTP client"),
        }
    }
    tasks
}
