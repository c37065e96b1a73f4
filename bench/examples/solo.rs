//! One scenario alone, for profiling (`perf record -p` while it runs):
//! `solo base|token|me|me-limited|me-redis|detail|detail-read SECONDS [ROWS]` (ROWS:
//! accounts seeded for `detail`, default 2,000; the benchmark seeds 1,000,000;
//! `detail-read`: the same with no answer kept, every request read from the database). `solo pair SECONDS`
//! measures `/me` with limits off and in process in interleaved slices, as the
//! benchmark's limiter row does, and prints the limiter's cost; `solo pair-aa SECONDS`
//! does the same with limits off on both sides, so its "cost" is the measurement's own
//! spread.
use std::time::Duration;

use breadbox_bench::load::{self, LoadShape, Scenario};
use breadbox_bench::{crm, servers};

/// mimalloc, for what each allocation asks (`breadbox_api::alloc`).
#[global_allocator]
static GLOBAL: breadbox_api::alloc::Allocator = breadbox_api::alloc::Allocator;

fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "me".into());
    let secs: f64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let server_rt = breadbox_bench::runtime("bench-server", 2)?;
    let client_rt = breadbox_bench::runtime("bench-client", 2)?;
    let dir = tempfile::tempdir()?;
    if which == "pair" || which == "pair-aa" {
        let on = if which == "pair" { servers::Limits::InProcess } else { servers::Limits::Off };
        return pair(&server_rt, &client_rt, dir.path(), secs, &on);
    }
    let baseline = server_rt.block_on(servers::start_baseline())?;
    // `me-limited` and `me-redis`: `/me` with every bucket checked, in process or in
    // Redis (`REDIS_URL`, default the local one), as the benchmark's limiter scenarios.
    let limits = match which.as_str() {
        "me-limited" => servers::Limits::InProcess,
        "me-redis" => servers::Limits::Redis(std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())),
        _ => servers::Limits::Off,
    };
    let bb = server_rt.block_on(servers::start_breadbox(dir.path().join("x"), &limits))?;
    let scenario = match which.as_str() {
        "base" => Scenario::get("base", baseline.addr, "/"),
        "me" | "me-limited" | "me-redis" => breadbox_bench::with_key(&bb, "me", breadbox_bench::ME_PATH)?,
        "token" => breadbox_bench::token_scenario(&bb)?,
        "detail" | "detail-read" => {
            breadbox_api::api::memo::set_keeping(which == "detail");
            let rows: u64 = std::env::args().nth(3).and_then(|s| s.parse().ok()).unwrap_or(2000);
            let seeded = server_rt.block_on(crm::seed_accounts(&bb.service, &bb.org_id, rows))?;
            breadbox_bench::with_key(&bb, "detail", &seeded.detail)?
        }
        other => anyhow::bail!("unknown scenario `{other}`: base, token, me, me-limited, me-redis, detail, detail-read, pair or pair-aa"),
    };
    eprintln!("flooding {which} for {secs} s (pid {})", std::process::id());
    let shape = LoadShape { connections: 32, warmup: Duration::from_secs(1), duration: Duration::from_secs_f64(secs) };
    let outcome = load::measure(&client_rt, scenario, shape);
    println!("{which}: {:.0} req/s", outcome.requests_per_sec());
    Ok(())
}

/// `/me` with limits off and with `on`, measured in interleaved slices.
fn pair(
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    secs: f64,
    on_limits: &servers::Limits,
) -> anyhow::Result<()> {
    let off = server_rt.block_on(servers::start_breadbox(dir.join("off"), &servers::Limits::Off))?;
    let on = server_rt.block_on(servers::start_breadbox(dir.join("on"), on_limits))?;
    let sides = [breadbox_bench::with_key(&off, "me", breadbox_bench::ME_PATH)?, breadbox_bench::with_key(&on, "me", breadbox_bench::ME_PATH)?];
    eprintln!("flooding /me on two servers in turn, {secs} s each (pid {})", std::process::id());
    let shape = LoadShape { connections: 32, warmup: Duration::from_secs(1), duration: Duration::from_secs_f64(secs) };
    let [off, on] = load::interleaved(|side, slice| load::measure(client_rt, sides[side].clone(), slice), shape);
    let (off, on) = (off.requests_per_sec(), on.requests_per_sec());
    let second = if matches!(on_limits, servers::Limits::Off) { "limits off again" } else { "limits in process" };
    println!("limits off {off:.0} req/s, {second} {on:.0} req/s: cost {:.1} %", (1.0 - on / off) * 100.0);
    Ok(())
}
