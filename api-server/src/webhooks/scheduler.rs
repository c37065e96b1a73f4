//! Periodic sweeps that emit the time-based events (`contract.expiring_soon`,
//! `device.offline`, …). A sweep is an async function of the CRM and the current time
//! that stores its events in the outbox and returns how many it emitted; it must be
//! idempotent (emit once per record and threshold), because every instance runs it.
//!
//! Register sweeps in `sweeps()`; the application runs each at its period.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use breadbox_auth::db::now_ms;

use crate::domain::{Crm, DomainError};

type SweepFuture = Pin<Box<dyn Future<Output = Result<usize, DomainError>> + Send>>;
type SweepFn = Arc<dyn Fn(Arc<Crm>, i64) -> SweepFuture + Send + Sync>;

struct Sweep {
    name: &'static str,
    every: Duration,
    run: SweepFn,
}

/// The registered sweeps.
#[derive(Default)]
pub struct Scheduler {
    sweeps: Vec<Sweep>,
}

impl Scheduler {
    /// Adds a sweep run every `every` (and once shortly after start).
    pub fn every<F, Fut>(mut self, name: &'static str, every: Duration, sweep: F) -> Scheduler
    where
        F: Fn(Arc<Crm>, i64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<usize, DomainError>> + Send + 'static,
    {
        let run: SweepFn = Arc::new(move |crm, now| Box::pin(sweep(crm, now)));
        self.sweeps.push(Sweep { name, every, run });
        self
    }

    pub fn len(&self) -> usize {
        self.sweeps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sweeps.is_empty()
    }

    /// Runs every sweep at its period until `stop` turns true.
    pub async fn run(self, crm: Arc<Crm>, stop: watch::Receiver<bool>) {
        let tasks: Vec<_> = self
            .sweeps
            .into_iter()
            .map(|sweep| {
                let (crm, mut stop) = (crm.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(sweep.every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {}
                            _ = stop.changed() => break,
                        }
                        if *stop.borrow() {
                            break;
                        }
                        match (sweep.run)(crm.clone(), now_ms()).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(sweep = sweep.name, events = n, "sweep emitted events"),
                            Err(err) => tracing::warn!(sweep = sweep.name, error = %err, "sweep failed; next period retries"),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Every sweep of the server, each run every `every`: contracts ending within 60 and 30
/// days, and devices offline for `offline_after` or past their end of life.
pub fn sweeps(every: Duration, offline_after: Duration) -> Scheduler {
    let offline_after_ms = i64::try_from(offline_after.as_millis()).unwrap_or(i64::MAX);
    Scheduler::default()
        .every("contracts.expiring_soon", every, |crm, now| async move {
            crate::domain::contracts::sweep_expiring(&crm, now).await.map(|n| n as usize)
        })
        .every("devices.offline_and_end_of_life", every, move |crm, now| async move {
            crate::domain::devices::sweep(&crm, now, offline_after_ms).await.map(|n| n as usize)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_are_registered_by_name() {
        let s = Scheduler::default().every("noop", Duration::from_secs(60), |_crm, _now| async { Ok(0) });
        assert_eq!(s.len(), 1);
        assert_eq!(sweeps(Duration::from_secs(60), Duration::from_secs(3600)).len(), 2);
    }
}
