//! The servers under load: a bare poem baseline and the real Breadbox application on
//! a fresh temp SQLite database, each with a stop switch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{get, handler, Response, Route, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use breadbox_api::config::ServeArgs;
use breadbox_api::webhooks::WebhookConfig;
use breadbox_api::Application;
use breadbox_auth::{AuthConfig, Environment, Plan, ScopeSet};

/// A server running on the server runtime until `stop` is called.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Asks the server to stop and waits for it (call on the server runtime).
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("server task panicked")?
    }
}

/// The constant body of the baseline.
const BASELINE_BODY: &str = r#"{"ok":true}"#;

#[handler]
fn baseline() -> Response {
    Response::builder().content_type("application/json").body(BASELINE_BODY)
}

/// Starts the bare poem server: one route, a constant JSON body, no middleware.
pub async fn start_baseline() -> anyhow::Result<Running> {
    serve(Route::new().at("/", get(baseline))).await
}

/// Serves `endpoint` on a free loopback port until `Running::stop`.
pub async fn serve<E: poem::Endpoint + 'static>(endpoint: E) -> anyhow::Result<Running> {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("the listener has no TCP address")?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(endpoint, stopped, Some(Duration::from_secs(2)))
            .await?;
        Ok(())
    });
    Ok(Running { addr, stop, task })
}

/// The Breadbox server with the credentials the scenarios present.
pub struct Breadbox {
    /// The running server.
    pub server: Running,
    /// The OAuth client's id.
    pub client_id: String,
    /// The OAuth client's secret.
    pub client_secret: String,
    /// A static API key of the same organization.
    pub api_key: String,
    /// The organization of the client and the key.
    pub org_id: String,
    /// The application's auth service (and through it, its database).
    pub service: std::sync::Arc<breadbox_auth::AuthService>,
}

/// How the rate limiter of a benchmarked server is set up.
#[derive(Debug, Clone)]
pub enum Limits {
    /// `--rate-limit off`, the documented benchmark switch: the request path alone.
    Off,
    /// Every bucket checked in process, with quotas scaled up so that one client's
    /// flood is admitted: the figures measure the limiter's cost, not its refusals.
    InProcess,
    /// The same, with the buckets in Redis at this URL.
    Redis(String),
}

/// Time scale and per-IP quota that keep a flood under every limit while checking it.
/// The tightest bucket, a Pro key's 120 a minute, then admits 400,000 requests a second
/// (`/me` has served up to 85,000 here) with a tolerance of 0.3 ms. The in-process
/// limiter decides a refusal again on a fresh clock reading (`local.rs`), so a thread
/// held off the CPU between reading the clock and taking its cell is not refused for
/// it; before that, a scale of 10^5 (0.6 ms) refused a few requests in a quarter of a
/// million, and 3·10^4 (60,000 a second) refused tens of thousands on session 12's
/// faster machine, where `/me` outran the bucket.
const LIMITER_TIME_SCALE: f64 = 2e5;

fn serve_args(data_dir: PathBuf, database_url: &str, limits: &Limits) -> ServeArgs {
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut config = AuthConfig::for_data_dir(data_dir);
    config.database_url = database_url.to_owned();
    match limits {
        Limits::Off => config.limits.rate_limit = breadbox_auth::limits::Switch::Off,
        Limits::InProcess | Limits::Redis(_) => {
            config.limits.rate_limit_time_scale = LIMITER_TIME_SCALE;
            config.limits.rate_limit_per_ip = u32::MAX / 2;
        }
    }
    if let Limits::Redis(url) = limits {
        config.limits.redis_url = url.clone();
        config.limits.redis_key_prefix = format!("breadbox-bench:{}", std::process::id());
    }
    let mut args = ServeArgs::for_tests(listen, config);
    // Production delivery settings, but for the loopback receiver of the webhook scenario.
    args.webhooks = WebhookConfig { allow_loopback: true, ..WebhookConfig::default() };
    args
}

/// Starts the real application on a fresh SQLite database under `data_dir`, then
/// creates an organization, an OAuth client and a static key with full access.
pub async fn start_breadbox(data_dir: PathBuf, limits: &Limits) -> anyhow::Result<Breadbox> {
    start(serve_args(data_dir, "", limits)).await
}

/// A schema of its own in the PostgreSQL database at `url`, dropped by `drop`.
pub struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    /// Creates `breadbox_bench_<pid>` (dropping a leftover of the same name first).
    pub async fn create(url: &str) -> anyhow::Result<PgSchema> {
        let schema = PgSchema { url: url.to_owned(), name: format!("breadbox_bench_{}", std::process::id()) };
        schema.execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.name)).await?;
        schema.execute(&format!("CREATE SCHEMA {}", schema.name)).await?;
        Ok(schema)
    }

    /// The database URL with the schema first on the search path.
    pub fn database_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.name)
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        self.execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)).await
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.context("connecting to PostgreSQL")?;
        sqlx::query(sql).execute(&mut conn).await.with_context(|| format!("running `{sql}`"))?;
        Ok(())
    }
}

/// Starts Breadbox (limits off) on `schema`.
pub async fn start_breadbox_on_postgres(data_dir: PathBuf, schema: &PgSchema) -> anyhow::Result<Breadbox> {
    start(serve_args(data_dir, &schema.database_url(), &Limits::Off)).await
}

async fn start(args: ServeArgs) -> anyhow::Result<Breadbox> {
    let app = Application::build(args).await.context("starting Breadbox")?;
    let addr: SocketAddr = ([127, 0, 0, 1], app.port()).into();
    let service = app.service().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let server = Running { addr, stop, task };
    let org = service.create_org("Bench org", Plan::Pro).await.context("creating the organization")?;
    let (client, secret) = service
        .create_client(&org.id, Environment::Live, ScopeSet::full_access(), "bench client")
        .await
        .context("creating the OAuth client")?;
    let (_, key) = service
        .create_key(&org.id, Environment::Live, ScopeSet::full_access(), "bench key")
        .await
        .context("creating the API key")?;
    Ok(Breadbox {
        server,
        client_id: client.id,
        client_secret: secret.expose().to_owned(),
        api_key: key.expose().to_owned(),
        org_id: org.id,
        service,
    })
}
