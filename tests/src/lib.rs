//! `spawn_app()`: a real Breadbox server on a free port, on a fresh database (a temp
//! SQLite file, or a PostgreSQL schema dropped afterwards), with typed helpers.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use serde_json::Value;
use tokio::sync::oneshot;

use breadbox_api::config::ServeArgs;
use breadbox_api::Application;
use breadbox_auth::{AuthConfig, AuthService, Environment, Plan, Scope, ScopeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub service: Arc<AuthService>,
    pub backend: Backend,
    /// An organization created for the test, with an admin key.
    pub org_id: String,
    /// A live key with every scope and `admin:write`.
    pub admin_key: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
    pg_schema: Option<String>,
    pub auth_config: AuthConfig,
}

/// A created OAuth client with its secret.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

fn test_database_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

/// Starts a server on `backend`, or returns `None` when PostgreSQL is not configured.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// As `spawn_app`, with the settings adjusted by `configure` first (rate limits…).
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut AuthConfig)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut auth = AuthConfig::for_data_dir(dir.path().to_path_buf());
    auth.revocation_poll_ms = 100;
    auth.db_max_connections = 5;
    // Limits on, as in production, but refilling so fast that no ordinary test trips
    // them (tests of the limits themselves choose their own scale). Not much faster: a
    // bucket's tolerance shrinks with the scale, and below a few milliseconds a request
    // the scheduler holds up between reading the clock and taking its cell is refused.
    auth.limits.rate_limit_time_scale = 1000.0;
    configure(&mut auth);
    let mut pg_schema = None;
    if backend == Backend::Postgres {
        let url = test_database_url()?;
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        admin_execute(&url, &format!("CREATE SCHEMA {schema}")).await;
        let sep = if url.contains('?') { '&' } else { '?' };
        auth.database_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        pg_schema = Some(schema);
    }
    Some(start(auth, dir, pg_schema, backend).await)
}

async fn start(auth: AuthConfig, dir: tempfile::TempDir, pg_schema: Option<String>, backend: Backend) -> TestApp {
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let app = Application::build(ServeArgs::for_tests(listen, auth.clone())).await.expect("server starts");
    let port = app.port();
    let service = app.service().clone();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    let org = service.create_org("Test org", Plan::Pro).await.expect("org");
    let mut scopes = ScopeSet::full_access();
    scopes.insert(Scope::AdminWrite);
    let (_, key) = service.create_key(&org.id, Environment::Live, scopes, "test admin").await.expect("key");
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        port,
        http: reqwest::Client::new(),
        service,
        backend,
        org_id: org.id,
        admin_key: key.expose().to_owned(),
        stop: Some(stop_tx),
        server: Some(server),
        _dir: dir,
        pg_schema,
        auth_config: auth,
    }
}

async fn admin_execute(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("TEST_DATABASE_URL is set but PostgreSQL is unreachable");
    sqlx::query(sql).execute(&mut conn).await.expect("admin statement");
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Stops the server and drops its PostgreSQL schema.
    pub async fn cleanup(mut self) {
        self.stop().await;
        if let (Some(schema), Some(url)) = (self.pg_schema.take(), test_database_url()) {
            admin_execute(&url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
        }
    }

    /// Starts a second server on the same database (another instance of a scale-out).
    /// Like any scale-out deployment, the instances share one configured issuer.
    pub async fn spawn_peer(&self) -> Peer {
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let mut config = self.auth_config.clone();
        config.issuer = self.service.issuer().to_owned();
        let app = Application::build(ServeArgs::for_tests(listen, config)).await.expect("peer starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stop_rx.await;
        }));
        Peer { base, stop: Some(stop_tx), server: Some(server) }
    }

    /// The data directory of the SQLite database.
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }

    /// Creates an OAuth client in the test organization.
    pub async fn client(&self, env: Environment, scopes: &str) -> TestClient {
        let set = ScopeSet::parse(scopes).expect("scopes");
        let (info, secret) = self.service.create_client(&self.org_id, env, set, "test client").await.expect("client");
        TestClient { id: info.id, secret: secret.expose().to_owned() }
    }

    /// Creates a static key in the test organization.
    pub async fn key(&self, env: Environment, scopes: &str) -> (String, String) {
        let set = ScopeSet::parse(scopes).expect("scopes");
        let (info, key) = self.service.create_key(&self.org_id, env, set, "test key").await.expect("key");
        (info.id, key.expose().to_owned())
    }

    /// Gets a token with `client_secret_post` in a form body.
    pub async fn token(&self, client: &TestClient, scope: Option<&str>) -> String {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_str()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self.http.post(self.url("/api/v1/auth/token")).form(&form).send().await.expect("token request");
        assert_eq!(response.status(), 200, "token request failed");
        let body: Value = response.json().await.expect("token json");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// GET with `Authorization: Bearer`.
    pub async fn get_bearer(&self, path: &str, bearer: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).bearer_auth(bearer).send().await.expect("request");
        read(response).await
    }

    /// GET with `X-API-Key`.
    pub async fn get_key(&self, path: &str, key: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).header("X-API-Key", key).send().await.expect("request");
        read(response).await
    }

    /// POST JSON with `X-API-Key`.
    pub async fn post_key(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let response = self.http.post(self.url(path)).header("X-API-Key", key).json(body).send().await.expect("request");
        read(response).await
    }
}

/// A second server instance sharing the test's database.
pub struct Peer {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Peer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

/// Status and JSON body (Null when the body is not JSON).
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Runs one test body against a fresh server on `backend`, cleaning up even on failure.
pub async fn run(backend: Backend, body: impl FnOnce(TestAppHandle) -> Pin<Box<dyn Future<Output = ()> + Send>>) {
    run_with(backend, |_| {}, body).await
}

/// As `run`, on a server whose settings `configure` adjusted.
pub async fn run_with(
    backend: Backend,
    configure: impl FnOnce(&mut AuthConfig),
    body: impl FnOnce(TestAppHandle) -> Pin<Box<dyn Future<Output = ()> + Send>>,
) {
    let Some(app) = spawn_app_with(backend, configure).await else {
        eprintln!("TEST_DATABASE_URL is not set: PostgreSQL variant skipped");
        return;
    };
    let handle = TestAppHandle(Arc::new(tokio::sync::Mutex::new(Some(app))));
    let outcome = std::panic::AssertUnwindSafe(body(handle.clone())).catch_unwind().await;
    if let Some(app) = handle.0.lock().await.take() {
        app.cleanup().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Shared ownership of the app, so that it is cleaned up after a panicking test body.
#[derive(Clone)]
pub struct TestAppHandle(Arc<tokio::sync::Mutex<Option<TestApp>>>);

impl TestAppHandle {
    /// Borrows the app for the body of a test.
    pub async fn app(&self) -> tokio::sync::MappedMutexGuard<'_, TestApp> {
        tokio::sync::MutexGuard::map(self.0.lock().await, |a| a.as_mut().expect("app is running"))
    }
}

/// Declares `async fn $name(app: &mut TestApp)` as a test on SQLite and on PostgreSQL;
/// after `with CONFIGURE;`, on servers whose settings `CONFIGURE` adjusted (as `run_with`).
#[macro_export]
macro_rules! both_backends {
    (with $configure:expr; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                // `$configure` names something of the calling module.
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::run_with($crate::Backend::Sqlite, $configure, |h| Box::pin(async move {
                        let mut app = h.app().await;
                        super::$name(&mut app).await;
                    })).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::run_with($crate::Backend::Postgres, $configure, |h| Box::pin(async move {
                        let mut app = h.app().await;
                        super::$name(&mut app).await;
                    })).await;
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $crate::both_backends!(with |_| {}; $($name),*);
    };
}

/// A response as tests inspect it: status, JSON body (Null when not JSON), headers.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// Reads `response` whole.
    pub async fn of(response: reqwest::Response) -> Answer {
        let headers = response.headers().clone();
        let (status, body) = read(response).await;
        Answer { status, body, headers }
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

impl TestApp {
    /// Any request with `X-API-Key`, an optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path)).header("X-API-Key", key);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Answer::of(request.send().await.expect("request")).await
    }
}
