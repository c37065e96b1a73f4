//! The results: a table for people, JSON for scripts, and the targets each scenario
//! is held to (a share of the bare baseline's requests per second).

use serde::Serialize;

use crate::bulk::BulkFigures;
use crate::load::{LoadShape, Outcome};
use crate::webhooks::WebhookFigures;

/// The id of the bare poem baseline's outcomes.
pub const BASELINE_ID: &str = "baseline";

/// One measured scenario, with its ratio to the baseline and its target.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Short id: `baseline`, `token`, `me_bearer`, `me_api_key`.
    pub id: &'static str,
    /// What was requested, e.g. `GET /api/v1/me (Bearer)`.
    pub label: &'static str,
    /// Successful responses in the measured period.
    pub requests: u64,
    /// Successful responses per second.
    pub requests_per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Non-200 responses and transport errors (warm-up included).
    pub errors: u64,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
    /// Requests per second as a share of the baseline's (1.0 for the baseline).
    pub ratio: f64,
    /// The baseline's requests per second this row is compared with: the nearest
    /// baseline row above it, measured in turn with it.
    pub baseline_per_sec: f64,
    /// The smallest acceptable `ratio`, when the scenario has a target.
    pub target: Option<f64>,
    /// Whether `ratio` meets `target`.
    pub pass: Option<bool>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Concurrent connections per scenario.
    pub connections: usize,
    /// Warm-up per scenario, seconds.
    pub warmup_secs: f64,
    /// Measured period per scenario, seconds.
    pub duration_secs: f64,
    /// The baseline first, then the Breadbox scenarios.
    pub scenarios: Vec<Row>,
    /// Accounts in the table the list scenarios page through.
    pub seeded_rows: u64,
    /// The number of the deep page compared with page 1.
    pub deep_page: u64,
    /// The device sync: one bulk upsert against as many single creates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkFigures>,
    /// The outbox's cost on a write and the delivery rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<WebhookFigures>,
}

/// The row of `outcome`, compared with the baseline's `baseline` requests per second.
fn row(baseline: f64, label: &'static str, target: Option<f64>, outcome: Outcome) -> Row {
    let rps = outcome.requests_per_sec();
    let ratio = if baseline > 0.0 { rps / baseline } else { 0.0 };
    Row {
        id: outcome.name,
        label,
        requests: outcome.requests,
        requests_per_sec: rps,
        p50_ms: outcome.latency_ms(0.50),
        p99_ms: outcome.latency_ms(0.99),
        errors: outcome.errors,
        error_samples: outcome.error_samples,
        ratio,
        baseline_per_sec: baseline,
        target,
        pass: target.map(|t| ratio >= t),
    }
}

impl Report {
    /// Builds the report: each outcome is compared with the nearest baseline (id
    /// `baseline`) before it, the one measured in turn with it.
    pub fn new(shape: LoadShape, measured: Vec<(&'static str, Option<f64>, Outcome)>) -> Report {
        let mut baseline = 0.0;
        let scenarios = measured
            .into_iter()
            .map(|(label, target, outcome)| {
                if outcome.name == BASELINE_ID {
                    baseline = outcome.requests_per_sec();
                }
                row(baseline, label, target, outcome)
            })
            .collect();
        Report {
            connections: shape.connections,
            warmup_secs: shape.warmup.as_secs_f64(),
            duration_secs: shape.duration.as_secs_f64(),
            scenarios,
            seeded_rows: 0,
            deep_page: 0,
            bulk: None,
            webhooks: None,
        }
    }

    /// Adds the write floods of the webhook scenarios (without, then with the outbox).
    pub fn add_writes(&mut self, writes: Vec<Outcome>, labels: [&'static str; 2]) {
        let baseline = self.scenarios.iter().rev().find(|row| row.id == BASELINE_ID).map_or(0.0, |row| row.requests_per_sec);
        for (outcome, label) in writes.into_iter().zip(labels) {
            self.scenarios.push(row(baseline, label, None, outcome));
        }
    }

    /// Records the size of the paged table and which page was the deep one.
    pub fn with_rows(mut self, rows: u64, deep_page: u64) -> Report {
        self.seeded_rows = rows;
        self.deep_page = deep_page;
        self
    }

    fn rate(&self, id: &str) -> Option<f64> {
        self.scenarios.iter().find(|row| row.id == id).map(|row| row.requests_per_sec)
    }

    /// How many times a request for the deep page costs a request for page 1
    /// (1.0 = the same).
    pub fn deep_page_cost(&self) -> Option<f64> {
        let (first, deep) = (self.rate("page_first")?, self.rate("page_deep")?);
        (deep > 0.0).then(|| first / deep)
    }

    /// The throughput the limiter scenario `pair.on` loses against the same request with
    /// limits off measured alongside it (0.05 = 5 % fewer requests per second).
    pub fn limiter_cost(&self, pair: &crate::LimiterPair) -> Option<f64> {
        let (off, on) = (self.rate(pair.off.0)?, self.rate(pair.on.0)?);
        (off > 0.0).then(|| 1.0 - on / off)
    }

    /// Whether any scenario saw a non-200 response or a transport error.
    pub fn had_errors(&self) -> bool {
        self.scenarios.iter().any(|row| row.errors > 0)
    }

    /// Prints the report to stdout: JSON, or the table followed by error samples.
    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string_pretty(self) {
                Ok(text) => println!("{text}"),
                Err(err) => eprintln!("breadbox-bench: cannot encode the report: {err}"),
            }
        } else {
            print!("{}", self.table());
        }
    }

    /// The human-readable table, targets and any error samples.
    pub fn table(&self) -> String {
        let mut out = format!(
            "Breadbox benchmark: {} connections, {}s warm-up + {}s measured per scenario\n\n",
            self.connections, self.warmup_secs, self.duration_secs
        );
        out.push_str(&format!(
            "{:<46} {:>10} {:>9} {:>9} {:>7} {:>9} {:>7}  {}\n",
            "scenario", "req/s", "p50 ms", "p99 ms", "errors", "vs base", "target", "result"
        ));
        for row in &self.scenarios {
            let target = row.target.map(|t| format!("≥{:.0}%", t * 100.0)).unwrap_or_else(|| "-".into());
            let result = match (row.pass, row.errors) {
                (_, errors) if errors > 0 => "ERRORS",
                (Some(true), _) => "PASS",
                (Some(false), _) => "FAIL",
                (None, _) => "-",
            };
            out.push_str(&format!(
                "{:<46} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>8.1}% {:>7}  {}\n",
                row.label,
                row.requests_per_sec,
                row.p50_ms,
                row.p99_ms,
                row.errors,
                row.ratio * 100.0,
                target,
                result
            ));
        }
        out.push_str(
            "\nTargets: token endpoint ≥ 30% of the baseline's req/s; /me ≥ 60%; detail GET ≥ 50%. \
             Each row is compared with the baseline row above it, measured in turn with it.\n",
        );
        if let Some(cost) = self.deep_page_cost() {
            let verdict = if cost <= crate::crm::DEEP_PAGE_BUDGET { "PASS" } else { "FAIL" };
            out.push_str(&format!(
                "Page {} of {} accounts costs {:.2}× page 1 (target ≤ {:.1}×)  {verdict}\n",
                self.deep_page,
                self.seeded_rows,
                cost,
                crate::crm::DEEP_PAGE_BUDGET
            ));
        }
        for (pair, name, budget) in [
            (&crate::LIMITED_IN_PROCESS, "in-process limiter", 0.05),
            (&crate::LIMITED_IN_REDIS, "Redis limiter", 0.25),
        ] {
            if let Some(cost) = self.limiter_cost(pair) {
                let verdict = if cost <= budget { "PASS" } else { "FAIL" };
                out.push_str(&format!(
                    "Cost of the {name}: {:.1}% of /me (X-API-Key) throughput (target ≤ {:.0}%)  {verdict}\n",
                    cost * 100.0,
                    budget * 100.0
                ));
            }
        }
        if let Some(b) = &self.bulk {
            out.push_str(&format!(
                "Device sync, {} devices: single creates {:.3}s, one bulk upsert {:.3}s (again, all updated: {:.3}s; \
                 medians of {}): {:.1}x faster (target ≥ {:.0}x)  {}\n",
                b.devices,
                b.single_secs,
                b.bulk_secs,
                b.bulk_update_secs,
                b.runs,
                b.ratio,
                b.target,
                if b.pass { "PASS" } else { "FAIL" }
            ));
        }
        if let Some(w) = &self.webhooks {
            for o in &w.outbox {
                out.push_str(&format!(
                    "Outbox cost on POST /api/v1/accounts, {}: {:.0} → {:.0} req/s, {:.1}% (target ≤ {:.0}%)  {}\n",
                    o.backend,
                    o.without_per_sec,
                    o.with_per_sec,
                    o.cost * 100.0,
                    o.budget * 100.0,
                    if o.pass { "PASS" } else { "FAIL" }
                ));
            }
            out.push_str(&format!(
                "Webhooks: {} events written in {:.2}s, all delivered to a local receiver after {:.2}s: \
                 {:.0} events/s end to end ({} duplicates)\n",
                w.events, w.write_secs, w.delivered_secs, w.delivered_per_sec, w.duplicates
            ));
        }
        for row in self.scenarios.iter().filter(|row| row.errors > 0) {
            out.push_str(&format!("\n{} had {} errors; first ones:\n", row.label, row.errors));
            for sample in &row.error_samples {
                out.push_str(&format!("  {sample}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hdrhistogram::Histogram;

    use super::*;

    fn outcome(name: &'static str, requests: u64, errors: u64) -> Outcome {
        let mut latency_us = Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        latency_us.saturating_record(1_000);
        Outcome { name, requests, duration: Duration::from_secs(2), latency_us, errors, error_samples: Vec::new() }
    }

    #[test]
    fn ratios_and_targets_compare_with_the_baseline() {
        let shape = LoadShape { connections: 4, warmup: Duration::ZERO, duration: Duration::from_secs(2) };
        let report = Report::new(
            shape,
            vec![
                ("base", None, outcome("baseline", 1000, 0)),
                ("token", Some(0.30), outcome("token", 250, 0)),
                ("me", Some(0.60), outcome("me", 700, 1)),
                ("base", None, outcome("baseline", 2000, 0)),
                ("me", Some(0.60), outcome("me", 1100, 0)),
            ],
        );
        let rows = &report.scenarios;
        assert_eq!(rows[0].requests_per_sec, 500.0);
        assert_eq!(rows[0].pass, None);
        assert_eq!(rows[1].pass, Some(false));
        assert_eq!(rows[2].pass, Some(true));
        // Compared with the baseline measured with it (1000 req/s), not the first.
        assert_eq!(rows[4].baseline_per_sec, 1000.0);
        assert_eq!(rows[4].ratio, 0.55);
        assert_eq!(rows[4].pass, Some(false));
        assert!(report.had_errors());
        assert!(report.table().contains("ERRORS"));
    }
}
