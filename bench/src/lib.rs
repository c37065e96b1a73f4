//! `breadbox-bench`: measures a bare poem server (the baseline), the token endpoint and
//! `GET /api/v1/me` (JWT and API key) with one load generator, in one process, and the
//! device sync (one bulk upsert of 500 devices against 500 single creates) and the
//! webhooks (the outbox's cost on a write, events delivered per second). The
//! servers and the generator each get their own tokio runtime, so every scenario is
//! measured the same way and the ratios to the baseline are fair; each targeted
//! scenario is measured in turn with the baseline it is compared with.

pub mod bulk;
pub mod crm;
pub mod load;
pub mod report;
pub mod servers;
pub mod webhooks;

use std::time::Duration;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::runtime::Runtime;

use breadbox_auth::http::TOKEN_PATH;

use load::{LoadShape, Scenario};
use report::Report;
use servers::{Breadbox, Limits};

/// The request of the `/me` scenarios.
pub const ME_PATH: &str = "/api/v1/me";
const FORM: &str = "application/x-www-form-urlencoded";
const TOKEN_BODY: &str = "grant_type=client_credentials";
/// Share of the baseline's requests per second the token endpoint must reach.
pub const TOKEN_TARGET: f64 = 0.30;
/// Share of the baseline's requests per second `GET /api/v1/me` must reach.
pub const ME_TARGET: f64 = 0.60;

/// The benchmark's options.
#[derive(Debug, Clone, Parser)]
#[command(name = "breadbox-bench", version, about = "Breadbox benchmark: baseline, token endpoint, /me")]
pub struct BenchArgs {
    /// Measured period per scenario: seconds ("5", "2.5") or a duration ("500ms").
    #[arg(long, env = "BREADBOX_BENCH_DURATION", default_value = "5", value_parser = parse_period)]
    pub duration: Duration,

    /// Unmeasured load before each scenario's measured period, same format.
    #[arg(long, env = "BREADBOX_BENCH_WARMUP", default_value = "1", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Concurrent keep-alive connections, one worker each.
    #[arg(long, env = "BREADBOX_BENCH_CONNECTIONS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: u16,

    /// Worker threads of the servers' runtime.
    #[arg(long, env = "BREADBOX_BENCH_SERVER_THREADS", default_value_t = 2)]
    pub server_threads: usize,

    /// Worker threads of the load generator's runtime.
    #[arg(long, env = "BREADBOX_BENCH_CLIENT_THREADS", default_value_t = 2)]
    pub client_threads: usize,

    /// Accounts seeded for the list scenarios (at least 200): page 1 is compared with the
    /// last page, page 10,000 with the default.
    #[arg(long, env = "BREADBOX_BENCH_ROWS", default_value_t = 1_000_000)]
    pub rows: u64,

    /// A PostgreSQL database (postgres://…) on which the outbox's cost is measured too,
    /// in a schema of its own dropped afterwards; without it only SQLite is measured.
    #[arg(long, env = "BREADBOX_BENCH_DATABASE_URL", default_value = "")]
    pub database_url: String,

    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,

    /// Redis for the "limits in Redis" scenario (e.g. redis://127.0.0.1:6379); without
    /// it that scenario is left out.
    #[arg(long, env = "REDIS_URL", default_value = "")]
    pub redis_url: String,
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let parsed = match raw.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err(format!("`{raw}` is not a non-negative number of seconds")),
        Err(_) => humantime::parse_duration(raw.trim()).map_err(|e| format!("`{raw}`: {e}")),
    }?;
    if parsed > Duration::from_secs(3600) {
        return Err(format!("`{raw}` is longer than an hour"));
    }
    Ok(parsed)
}

fn parse_period(raw: &str) -> Result<Duration, String> {
    match parse_duration(raw)? {
        Duration::ZERO => Err("the measured period must be longer than zero".to_owned()),
        period => Ok(period),
    }
}

/// A multi-threaded runtime of `threads` workers named `name` (the servers', the load
/// generator's).
pub fn runtime(name: &str, threads: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

/// Logs only warnings and errors (`RUST_LOG` overrides) so logging does not weigh on the figures.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Starts both servers, measures every scenario and stops the servers.
pub fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    init_logging();
    let servers = runtime("bench-server", args.server_threads)?;
    let client = runtime("bench-client", args.client_threads)?;
    let shape = LoadShape { connections: usize::from(args.connections), warmup: args.warmup, duration: args.duration };
    let data_dir = tempfile::Builder::new().prefix("breadbox-bench").tempdir().context("creating a temp data dir")?;

    let baseline = servers.block_on(servers::start_baseline()).context("starting the baseline")?;
    let breadbox = servers.block_on(servers::start_breadbox(data_dir.path().join("off"), &Limits::Off))?;
    let jwt = client.block_on(fetch_token(&breadbox))?;
    if !args.json {
        eprintln!("seeding {} accounts …", args.rows);
    }
    let seeded = servers.block_on(crm::seed_accounts(&breadbox.service, &breadbox.org_id, args.rows))?;
    client.block_on(check_deep_page(&breadbox, &seeded))?;
    let mut limited = vec![(LIMITED_IN_PROCESS, Limits::InProcess)];
    if !args.redis_url.is_empty() {
        limited.push((LIMITED_IN_REDIS, Limits::Redis(args.redis_url.clone())));
    }
    let mut limited_servers = Vec::new();
    for (pair, limits) in limited {
        let dir = data_dir.path().join(pair.on.0);
        limited_servers.push((pair, servers.block_on(servers::start_breadbox(dir, &limits))?));
    }

    // Each targeted scenario is measured in turn with the baseline, in interleaved
    // half-second slices, and compared with that baseline: on these machines bare
    // poem's figure drifts by a third within seconds, and a baseline measured once,
    // minutes (or even seconds) before, would count that drift.
    let base = Scenario::get(report::BASELINE_ID, baseline.addr, "/");
    let mut measured = Vec::new();
    let mut plan = scenarios(&breadbox, &jwt)?;
    plan.push(crm_detail(&breadbox, &seeded)?);
    for (label, target, scenario) in plan {
        let [base_outcome, outcome] = measure_in_turn(&client, args, shape, &[(BASELINE_LABEL, base.clone()), (label, scenario)]);
        measured.push((BASELINE_LABEL, None, base_outcome));
        measured.push((label, target, outcome));
    }
    // The detail GET again with no answer kept (`api::memo`): every request reads the
    // record from the database, as the first read of a record and every read after a
    // commit do. No target: the figure shows what the kept answers save.
    breadbox_api::api::memo::set_keeping(false);
    let detail_read = with_key(&breadbox, "detail_read", &seeded.detail)?;
    let [base_outcome, outcome] = measure_in_turn(&client, args, shape, &[(BASELINE_LABEL, base.clone()), (DETAIL_READ_LABEL, detail_read)]);
    breadbox_api::api::memo::set_keeping(true);
    measured.push((BASELINE_LABEL, None, base_outcome));
    measured.push((DETAIL_READ_LABEL, None, outcome));
    // Page 1 and the deep page are compared with each other, so they too are measured in turn.
    let pages = crm_pages(&breadbox, &seeded)?;
    let outcomes = measure_in_turn(&client, args, shape, &pages);
    for ((label, _), outcome) in pages.into_iter().zip(outcomes) {
        measured.push((label, None, outcome));
    }
    for (pair, server) in &limited_servers {
        let sides = [(pair.off.1, with_key(&breadbox, pair.off.0, ME_PATH)?), (pair.on.1, with_key(server, pair.on.0, ME_PATH)?)];
        let [off, on] = measure_in_turn(&client, args, shape, &sides);
        measured.push((pair.off.1, None, off));
        measured.push((pair.on.1, None, on));
    }

    if !args.json {
        eprintln!("measuring the device sync ({} devices, single creates then one bulk upsert) …", bulk::DEVICES);
    }
    let bulk = client.block_on(bulk::measure(&breadbox)).context("the device sync scenario")?;

    if !args.json {
        eprintln!(
            "measuring webhooks (a write with and without the outbox, then {} events to a local receiver) …",
            webhooks::EVENTS
        );
    }
    let (mut hooks, writes) = webhooks::measure(&servers, &client, &breadbox, shape).context("the webhook scenarios")?;
    let mut pg_writes = Vec::new();
    if !args.database_url.is_empty() {
        if !args.json {
            eprintln!("measuring the outbox on PostgreSQL …");
        }
        let schema = servers.block_on(servers::PgSchema::create(&args.database_url))?;
        let measured = servers
            .block_on(servers::start_breadbox_on_postgres(data_dir.path().join("postgres"), &schema))
            .and_then(|pg| {
                let measured = webhooks::outbox_cost(&client, &pg, "postgres", shape);
                servers.block_on(pg.server.stop()).context("stopping Breadbox on PostgreSQL")?;
                measured
            });
        servers.block_on(schema.drop())?;
        let (figures, outcomes) = measured.context("the outbox on PostgreSQL")?;
        hooks.outbox.push(figures);
        pg_writes = Vec::from(outcomes);
    }

    drop(client);
    servers.block_on(async {
        for (_, server) in limited_servers {
            server.server.stop().await.context("stopping Breadbox")?;
        }
        baseline.stop().await.context("stopping the baseline")?;
        breadbox.server.stop().await.context("stopping Breadbox")
    })?;
    let mut report = Report::new(shape, measured).with_rows(seeded.rows, seeded.deep_page_number);
    report.bulk = Some(bulk);
    report.webhooks = Some(hooks);
    report.add_writes(writes, ["POST /api/v1/accounts, outbox off", "POST /api/v1/accounts, outbox on"]);
    report.add_writes(pg_writes, ["POST /api/v1/accounts, outbox off (PostgreSQL)", "POST /api/v1/accounts, outbox on (PostgreSQL)"]);
    Ok(report)
}

/// A limiter scenario and the same request with limits off, measured in turn: ids and labels.
pub struct LimiterPair {
    pub off: (&'static str, &'static str),
    pub on: (&'static str, &'static str),
}

pub const LIMITED_IN_PROCESS: LimiterPair = LimiterPair {
    off: ("limits_memory_off", "GET /api/v1/me (X-API-Key), limits off (paired)"),
    on: ("limits_memory", "GET /api/v1/me (X-API-Key), limits in process"),
};
pub const LIMITED_IN_REDIS: LimiterPair = LimiterPair {
    off: ("limits_redis_off", "GET /api/v1/me (X-API-Key), limits off (paired)"),
    on: ("limits_redis", "GET /api/v1/me (X-API-Key), limits in Redis"),
};

/// Measures two scenarios in turn, in interleaved slices (`load::interleaved`).
fn measure_in_turn(client: &Runtime, args: &BenchArgs, shape: LoadShape, sides: &[(&str, Scenario); 2]) -> [load::Outcome; 2] {
    if !args.json {
        eprintln!("measuring {} and {}, interleaved …", sides[0].0, sides[1].0);
    }
    load::interleaved(|side, slice| load::measure(client, sides[side].1.clone(), slice), shape)
}

/// A GET of `path` on `breadbox` with its API key.
pub fn with_key(breadbox: &Breadbox, id: &'static str, path: &str) -> anyhow::Result<Scenario> {
    let key = HeaderValue::from_str(&breadbox.api_key).context("the API key is not a valid header value")?;
    Ok(Scenario::get(id, breadbox.server.addr, path).header(HeaderName::from_static("x-api-key"), key))
}

/// The detail GET of a seeded account, with the API key.
fn crm_detail(breadbox: &Breadbox, seeded: &crm::Seeded) -> anyhow::Result<(&'static str, Option<f64>, Scenario)> {
    Ok(("GET /api/v1/accounts/{id}", Some(crm::DETAIL_TARGET), with_key(breadbox, "detail", &seeded.detail)?))
}

/// Page 1 and the deep page of the seeded accounts, with the API key.
fn crm_pages(breadbox: &Breadbox, seeded: &crm::Seeded) -> anyhow::Result<[(&'static str, Scenario); 2]> {
    Ok([
        ("GET /api/v1/accounts, page 1", with_key(breadbox, "page_first", &seeded.first_page)?),
        ("GET /api/v1/accounts, deep page", with_key(breadbox, "page_deep", &seeded.deep_page)?),
    ])
}

/// The deep page must be the table's last full page, or the comparison means nothing.
async fn check_deep_page(breadbox: &Breadbox, seeded: &crm::Seeded) -> anyhow::Result<()> {
    let scenario = with_key(breadbox, "check", &seeded.deep_page)?;
    let mut sender = load::connect(scenario.addr).await.context("connecting to Breadbox")?;
    let (status, body) = load::exchange(&mut sender, &scenario).await.context("reading the deep page")?;
    let body: serde_json::Value = serde_json::from_slice(&body).context("the page is not JSON")?;
    let items = body["data"].as_array().map_or(0, Vec::len) as u64;
    let expected = crm::account_id(seeded.rows - crm::PAGE);
    if status != 200 || items != crm::PAGE || body["data"][0]["id"] != expected.as_str() {
        anyhow::bail!("page {} is not the last {} accounts: {status} {body}", seeded.deep_page_number, crm::PAGE);
    }
    Ok(())
}

/// The label of the baseline's rows.
const BASELINE_LABEL: &str = "baseline GET / (paired with the next row)";
/// The detail GET with no answer kept.
const DETAIL_READ_LABEL: &str = "GET /api/v1/accounts/{id}, read every time";

/// The request-path scenarios in report order, with their labels and targets.
fn scenarios(breadbox: &Breadbox, jwt: &str) -> anyhow::Result<Vec<(&'static str, Option<f64>, Scenario)>> {
    let addr = breadbox.server.addr;
    let bearer = HeaderValue::from_str(&format!("Bearer {jwt}")).context("the token is not a valid header value")?;
    Ok(vec![
        ("POST /api/v1/auth/token", Some(TOKEN_TARGET), token_scenario(breadbox)?),
        (
            "GET /api/v1/me (Bearer)",
            Some(ME_TARGET),
            Scenario::get("me_bearer", addr, ME_PATH).header(AUTHORIZATION, bearer),
        ),
        ("GET /api/v1/me (X-API-Key)", Some(ME_TARGET), with_key(breadbox, "me_api_key", ME_PATH)?),
    ])
}

/// Client credentials with `client_secret_basic`; the header is computed once.
pub fn token_scenario(breadbox: &Breadbox) -> anyhow::Result<Scenario> {
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined.
    const FORM_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let pair = format!(
        "{}:{}",
        utf8_percent_encode(&breadbox.client_id, FORM_ENCODE),
        utf8_percent_encode(&breadbox.client_secret, FORM_ENCODE)
    );
    let basic = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(pair)))
        .context("the Basic credentials are not a valid header value")?;
    Ok(Scenario::post("token", breadbox.server.addr, TOKEN_PATH, FORM, Bytes::from_static(TOKEN_BODY.as_bytes()))
        .header(AUTHORIZATION, basic))
}

/// Gets the one JWT the Bearer scenario presents, through the token endpoint.
async fn fetch_token(breadbox: &Breadbox) -> anyhow::Result<String> {
    let scenario = token_scenario(breadbox)?;
    let mut sender = load::connect(scenario.addr).await.context("connecting to Breadbox")?;
    let (status, body) = load::exchange(&mut sender, &scenario).await.context("requesting a token")?;
    if status != 200 {
        anyhow::bail!("the token endpoint answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let body: serde_json::Value = serde_json::from_slice(&body).context("the token response is not JSON")?;
    body["access_token"].as_str().map(str::to_owned).context("the token response has no access_token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_period("0").is_err());
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let args = BenchArgs::try_parse_from(["breadbox-bench"]).expect("defaults parse");
        assert_eq!(args.duration, Duration::from_secs(5));
        assert_eq!(args.warmup, Duration::from_secs(1));
        assert_eq!(args.connections, 32);
        assert!(BenchArgs::try_parse_from(["breadbox-bench", "--connections", "0"]).is_err());
    }
}
