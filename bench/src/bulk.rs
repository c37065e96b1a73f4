//! The device sync scenario: 500 devices pushed with one bulk upsert against the same
//! 500 pushed with single creates, one after another on one connection, as an RMM
//! integration without the bulk endpoint would. The single creates are 500 requests,
//! an average in themselves; one bulk call is one request, at the mercy of whatever
//! else the machine does in those milliseconds, so it is made `BULK_RUNS` times (each
//! with new agent ids, then each again as an update) and the median counts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::{json, Value};

use crate::load;
use crate::servers::Breadbox;

const JSON: &str = "application/json";
/// Devices per run, the most one bulk call takes.
pub const DEVICES: usize = 500;
/// How many times faster the bulk upsert must be.
pub const BULK_TARGET: f64 = 20.0;
/// Bulk calls of each kind (create, update); their median counts.
pub const BULK_RUNS: usize = 5;

/// The device sync figures.
#[derive(Debug, Clone, Serialize)]
pub struct BulkFigures {
    /// Devices pushed each way.
    pub devices: usize,
    /// Seconds for the single creates, one at a time.
    pub single_secs: f64,
    /// Seconds for one bulk upsert creating as many devices (median of `runs`).
    pub bulk_secs: f64,
    /// Seconds for the same bulk upsert again, every device updated (median of `runs`).
    pub bulk_update_secs: f64,
    /// Bulk calls of each kind measured.
    pub runs: usize,
    /// `single_secs / bulk_secs`.
    pub ratio: f64,
    pub target: f64,
    pub pass: bool,
}

struct Client {
    addr: SocketAddr,
    key: HeaderValue,
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
}

impl Client {
    async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let scenario = load::Scenario::post("devices", self.addr, path, JSON, Bytes::from(body.to_string()))
            .header(HeaderName::from_static("x-api-key"), self.key.clone());
        let (status, bytes) = load::exchange(&mut self.sender, &scenario).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn expect(&mut self, path: &str, body: &Value, status: u16) -> anyhow::Result<Value> {
        let (got, answer) = self.post(path, body).await?;
        if got != status {
            anyhow::bail!("POST {path} answered {got}: {answer}");
        }
        Ok(answer)
    }
}

fn fleet(account_id: &str, prefix: &str, hostname: &str) -> Vec<Value> {
    (0..DEVICES)
        .map(|i| json!({"accountId": account_id, "rmmAgentId": format!("{prefix}-{i}"), "hostname": format!("{hostname}-{i}"),
                        "kind": "WORKSTATION", "os": "Windows 11", "lastSeenAt": "2024-06-03T09:58:12Z"}))
        .collect()
}

/// Runs the scenario against `breadbox` (with limits off: 500 creates would exceed the
/// write class's quota).
pub async fn measure(breadbox: &Breadbox) -> anyhow::Result<BulkFigures> {
    let addr = breadbox.server.addr;
    let key = HeaderValue::from_str(&breadbox.api_key).context("the API key is not a valid header value")?;
    let sender = load::connect(addr).await.context("connecting to Breadbox")?;
    let mut client = Client { addr, key, sender };
    let account = client.expect("/api/v1/accounts", &json!({"name": "Bench devices"}), 201).await?;
    let account_id = account["data"]["id"].as_str().context("the account has no id")?.to_owned();

    let started = Instant::now();
    for device in fleet(&account_id, "single", "pc") {
        client.expect("/api/v1/devices", &device, 201).await?;
    }
    let single = started.elapsed();

    let mut creates = Vec::with_capacity(BULK_RUNS);
    let mut updates = Vec::with_capacity(BULK_RUNS);
    for run in 0..BULK_RUNS {
        let agents = format!("bulk{run}");
        let body = json!({ "devices": fleet(&account_id, &agents, "pc") });
        let started = Instant::now();
        let created = client.expect("/api/v1/devices/bulk", &body, 200).await?;
        creates.push(started.elapsed());
        check(&created, "created")?;
        let body = json!({ "devices": fleet(&account_id, &agents, "laptop") });
        let started = Instant::now();
        let updated = client.expect("/api/v1/devices/bulk", &body, 200).await?;
        updates.push(started.elapsed());
        check(&updated, "updated")?;
    }
    let (bulk, bulk_update) = (median(&mut creates), median(&mut updates));

    let ratio = single.as_secs_f64() / bulk.as_secs_f64().max(Duration::from_micros(1).as_secs_f64());
    Ok(BulkFigures {
        devices: DEVICES,
        single_secs: single.as_secs_f64(),
        bulk_secs: bulk.as_secs_f64(),
        bulk_update_secs: bulk_update.as_secs_f64(),
        runs: BULK_RUNS,
        ratio,
        target: BULK_TARGET,
        pass: ratio >= BULK_TARGET,
    })
}

/// The middle value (the upper one of an even count).
fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn check(answer: &Value, count: &str) -> anyhow::Result<()> {
    match answer["data"][count].as_u64() {
        Some(n) if n == DEVICES as u64 => Ok(()),
        _ => anyhow::bail!("the bulk upsert did not report {DEVICES} {count}: {answer}"),
    }
}
