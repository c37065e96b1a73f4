//! One scenario alone, for profiling (`perf record -p` while it runs): `solo base|token|me|detail SECONDS`.
use std::time::Duration;

use breadbox_bench::load::{self, LoadShape, Scenario};
use breadbox_bench::{crm, servers};
use poem::http::{HeaderName, HeaderValue};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rt(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name(name).enable_all().build().expect("runtime")
}

fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "me".into());
    let secs: f64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let server_rt = rt("bench-server");
    let client_rt = rt("bench-client");
    let dir = tempfile::tempdir()?;
    let baseline = server_rt.block_on(servers::start_baseline())?;
    let bb = server_rt.block_on(servers::start_breadbox(dir.path().join("x"), &servers::Limits::Off))?;
    let key = HeaderValue::from_str(&bb.api_key)?;
    let x_api_key = HeaderName::from_static("x-api-key");
    let scenario = match which.as_str() {
        "base" => Scenario::get("base", baseline.addr, "/"),
        "me" => Scenario::get("me", bb.server.addr, "/api/v1/me").header(x_api_key, key),
        "token" => breadbox_bench::token_scenario(&bb)?,
        "detail" => {
            let seeded = server_rt.block_on(crm::seed_accounts(&bb.service, &bb.org_id, 2000))?;
            Scenario::get("detail", bb.server.addr, &seeded.detail).header(x_api_key, key)
        }
        other => anyhow::bail!("unknown scenario `{other}`: base, token, me or detail"),
    };
    eprintln!("flooding {which} for {secs} s (pid {})", std::process::id());
    let shape = LoadShape { connections: 32, warmup: Duration::from_secs(1), duration: Duration::from_secs_f64(secs) };
    let outcome = load::measure(&client_rt, scenario, shape);
    println!("{which}: {:.0} req/s", outcome.requests as f64 / outcome.duration.as_secs_f64());
    Ok(())
}
