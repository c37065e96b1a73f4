//! The webhook scenarios: what the outbox costs a write endpoint (the same
//! `POST /api/v1/accounts` flood with the outbox off, then on), and how many events per
//! second reach a local receiver, from the write that causes them to the receiver's
//! 2xx, through the outbox, the fan-out and the signed delivery.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use poem::web::Data;
use poem::{handler, post, EndpointExt, Route};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use breadbox_auth::{Environment, ScopeSet};

use crate::load::{self, LoadShape, Outcome, Scenario};
use crate::servers::{Breadbox, Running};

const JSON: &str = "application/json";
const ACCOUNTS: &str = "/api/v1/accounts";
/// Events the delivery scenario sends.
pub const EVENTS: usize = 5_000;
/// Connections writing the events.
const WRITERS: usize = 16;
/// The name of every account the delivery scenario creates: the receiver counts only
/// these events, not those of earlier scenarios still being fanned out.
const MARK: &str = "Webhook bench";
/// The most the outbox may take off a write endpoint's throughput.
pub const OUTBOX_BUDGET: f64 = 0.15;
/// How long the delivery scenario waits for the last event.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(300);

/// What the outbox costs `POST /api/v1/accounts` on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxFigures {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Requests per second without the outbox.
    pub without_per_sec: f64,
    /// The same with the outbox: every account also stores its `account.created` event.
    pub with_per_sec: f64,
    /// `1 - with / without`.
    pub cost: f64,
    pub budget: f64,
    pub pass: bool,
}

/// The webhook figures.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookFigures {
    /// The outbox's cost on SQLite, then on PostgreSQL when the run had a database URL.
    pub outbox: Vec<OutboxFigures>,
    /// Events the delivery scenario caused.
    pub events: usize,
    /// Seconds the writes took.
    pub write_secs: f64,
    /// Seconds from the first write until the receiver had every event.
    pub delivered_secs: f64,
    /// `events / delivered_secs`.
    pub delivered_per_sec: f64,
    /// Deliveries of an event the receiver already had (0 in the normal path).
    pub duplicates: u64,
}

/// What the receiver has seen.
#[derive(Default)]
struct Received {
    ids: Mutex<HashSet<String>>,
    duplicates: AtomicU64,
}

impl Received {
    /// Notes `id`; false if it was already there.
    fn insert(&self, id: String) -> bool {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).insert(id)
    }

    fn count(&self) -> usize {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[handler]
fn receive(body: Bytes, seen: Data<&Arc<Received>>) -> poem::http::StatusCode {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return poem::http::StatusCode::BAD_REQUEST;
    };
    if event["data"]["name"] == MARK {
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        if !seen.insert(id) {
            seen.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
    poem::http::StatusCode::NO_CONTENT
}

/// A local webhook receiver answering 204 to every delivery.
struct Receiver {
    server: Running,
    seen: Arc<Received>,
}

async fn start_receiver() -> anyhow::Result<Receiver> {
    let seen = Arc::new(Received::default());
    let server = crate::servers::serve(Route::new().at("/hook", post(receive)).data(seen.clone())).await?;
    Ok(Receiver { server, seen })
}

fn write_scenario(breadbox: &Breadbox, name: &'static str) -> anyhow::Result<Scenario> {
    let key = HeaderValue::from_str(&breadbox.api_key).context("the API key is not a valid header value")?;
    let body = Bytes::from(json!({"name": "Outbox bench", "industry": "Logistics"}).to_string());
    Ok(Scenario::post(name, breadbox.server.addr, ACCOUNTS, JSON, body).header(HeaderName::from_static("x-api-key"), key))
}

/// The same `POST /api/v1/accounts` flood against `breadbox` (limits off) with the
/// outbox off and on, interleaved (`load::interleaved`), since the table grows and the
/// machine drifts while the floods run.
pub fn outbox_cost(client: &Runtime, breadbox: &Breadbox, backend: &'static str, shape: LoadShape) -> anyhow::Result<(OutboxFigures, [Outcome; 2])> {
    let sides = [write_scenario(breadbox, "write_no_outbox")?, write_scenario(breadbox, "write_outbox")?];
    let [without, with] = load::interleaved(
        |side, slice| {
            breadbox_api::repo::events::set_recording(side == 1);
            load::measure(client, sides[side].clone(), slice)
        },
        shape,
    );
    breadbox_api::repo::events::set_recording(true);
    let (off, on) = (without.requests_per_sec(), with.requests_per_sec());
    let cost = if off > 0.0 { 1.0 - on / off } else { 1.0 };
    let figures =
        OutboxFigures { backend, without_per_sec: off, with_per_sec: on, cost, budget: OUTBOX_BUDGET, pass: cost <= OUTBOX_BUDGET };
    Ok((figures, [without, with]))
}

/// The outbox's cost on `breadbox` (SQLite), then the delivery rate to a local receiver
/// (`servers` runs it, `client` the load).
pub fn measure(servers: &Runtime, client: &Runtime, breadbox: &Breadbox, shape: LoadShape) -> anyhow::Result<(WebhookFigures, Vec<Outcome>)> {
    let (outbox, writes) = outbox_cost(client, breadbox, "sqlite", shape)?;
    let receiver = servers.block_on(start_receiver()).context("starting the webhook receiver")?;
    let delivery = client.block_on(deliver(breadbox, &receiver));
    let duplicates = receiver.seen.duplicates.load(Ordering::Relaxed);
    servers.block_on(receiver.server.stop()).context("stopping the webhook receiver")?;
    let delivery = delivery?;
    let figures = WebhookFigures {
        outbox: vec![outbox],
        events: EVENTS,
        write_secs: delivery.write_secs,
        delivered_secs: delivery.delivered_secs,
        delivered_per_sec: EVENTS as f64 / delivery.delivered_secs,
        duplicates,
    };
    Ok((figures, Vec::from(writes)))
}

struct Delivery {
    write_secs: f64,
    delivered_secs: f64,
}

/// Subscribes the receiver, writes `EVENTS` accounts over `WRITERS` connections and
/// waits until the receiver has every `account.created`.
async fn deliver(breadbox: &Breadbox, receiver: &Receiver) -> anyhow::Result<Delivery> {
    let scopes = ScopeSet::parse("admin:write accounts:write").context("the bench scopes")?;
    let (_, admin_key) = breadbox
        .service
        .create_key(&breadbox.org_id, Environment::Live, scopes, "webhook bench")
        .await
        .context("creating the webhook admin key")?;
    let key = HeaderValue::from_str(admin_key.expose()).context("the admin key is not a valid header value")?;
    let addr = breadbox.server.addr;
    let post = |path: &str, body: Value| {
        Scenario::post("webhooks", addr, path, JSON, Bytes::from(body.to_string()))
            .header(HeaderName::from_static("x-api-key"), key.clone())
    };
    let mut sender = load::connect(addr).await.context("connecting to Breadbox")?;
    let subscribe = post("/api/v1/webhook-endpoints", json!({"url": format!("http://{}/hook", receiver.server.addr), "events": ["*"]}));
    let (status, body) = load::exchange(&mut sender, &subscribe).await.context("creating the webhook endpoint")?;
    if status != 201 {
        anyhow::bail!("creating the webhook endpoint answered {status}: {}", String::from_utf8_lossy(&body));
    }

    let create = Arc::new(post(ACCOUNTS, json!({"name": MARK})));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let create = create.clone();
            let count = EVENTS / WRITERS + usize::from(w < EVENTS % WRITERS);
            tokio::spawn(async move {
                let mut sender = load::connect(create.addr).await?;
                for _ in 0..count {
                    let (status, body) = load::exchange(&mut sender, &create).await?;
                    if status != 201 {
                        anyhow::bail!("POST {ACCOUNTS} answered {status}: {}", String::from_utf8_lossy(&body));
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.context("a writer panicked")??;
    }
    let write_secs = started.elapsed().as_secs_f64();
    loop {
        let received = receiver.seen.count();
        if received >= EVENTS {
            break;
        }
        if started.elapsed() > DELIVERY_DEADLINE {
            anyhow::bail!("only {received} of {EVENTS} events delivered after {} s", DELIVERY_DEADLINE.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Delivery { write_secs, delivered_secs: started.elapsed().as_secs_f64() })
}
