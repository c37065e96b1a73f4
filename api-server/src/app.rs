//! `Application`: the all-in-one server (authorization server + API on one port).

use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, AcceptorExt, BoxAcceptor, Listener, TcpListener};
use poem::middleware::CatchPanic;
use poem::{get, handler, EndpointExt, Response, Route, Server};
use tokio::sync::watch;

use breadbox_auth::app::shutdown_signal;
use breadbox_auth::AuthService;

use crate::api::{openapi_service, SPEC_PATH};
use crate::audit::AuditLog;
use crate::idempotency::Idempotency;
use crate::config::ServeArgs;
use crate::domain::Crm;
use crate::middleware::{panic_response, Observe};
use crate::webhooks::scheduler::sweeps;
use crate::webhooks::WebhookConfig;

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    service: Arc<AuthService>,
    crm: Arc<Crm>,
    webhooks: WebhookConfig,
    acceptor: BoxAcceptor,
}

impl Application {
    /// Binds the listener (port 0 picks a free one), opens and migrates the database.
    pub async fn build(config: ServeArgs) -> anyhow::Result<Application> {
        let acceptor = TcpListener::bind(config.listen).into_acceptor().await?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().map(|a| a.port()))
            .unwrap_or(config.listen.port());
        let default_issuer = format!("http://{}:{port}", config.listen.ip());
        let service = AuthService::start(config.common.auth.clone(), default_issuer).await?;
        let crm = Arc::new(Crm::load(service.db().clone()).await?);
        crate::ops::metrics_handle();
        Ok(Application { port, service, crm, webhooks: config.webhooks, acceptor: acceptor.boxed() })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn service(&self) -> &Arc<AuthService> {
        &self.service
    }

    /// Serves until `stop` resolves, then drains requests and flushes background work.
    pub async fn run_until<F>(self, stop: F) -> anyhow::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop_tx, stop_rx) = watch::channel(false);
        let background = self.service.spawn_background(stop_rx.clone());
        let (audit, audit_writer) = crate::audit::channel(self.service.db().writer().clone(), self.service.db().backend());
        let audit_writer = audit_writer.spawn(stop_rx.clone());
        let expiry = crate::idempotency::spawn_expiry(self.service.db().writer().clone(), stop_rx.clone());
        let sweeps = sweeps(self.webhooks.sweep_every, self.webhooks.device_offline_after);
        let webhooks = crate::webhooks::spawn(self.crm.clone(), self.webhooks.clone(), sweeps, stop_rx);
        let endpoint = routes(self.service.clone(), self.crm.clone(), audit).data(self.webhooks.targets());
        tracing::info!(port = self.port, issuer = self.service.issuer(), "breadbox listening");
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(endpoint, stop, Some(Duration::from_secs(10)))
            .await?;
        let _ = stop_tx.send(true);
        let _ = background.await;
        let _ = audit_writer.await;
        let _ = expiry.await;
        for task in webhooks {
            let _ = task.await;
        }
        self.service.db().close().await;
        tracing::info!("breadbox stopped");
        Ok(())
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Every route of the all-in-one server; `audit` receives an entry per API call.
pub fn routes(service: Arc<AuthService>, crm: Arc<Crm>, audit: AuditLog) -> impl poem::Endpoint<Output = Response> {
    let api = openapi_service("/");
    let spec = Arc::<str>::from(crate::api::spec_of(&api));
    let templates = Arc::new(crate::api::route_templates(&spec));
    let docs = api.swagger_ui();
    let route = Route::new().nest("/", api).at(SPEC_PATH, get(spec_endpoint).data(spec)).nest("/docs", docs);
    let route = crate::ops::attach(breadbox_auth::http::attach(route));
    let observe = Observe::new(service.clone(), audit, templates);
    let idempotency = Idempotency::new(service.clone());
    route
        .data(service)
        .data(crm)
        .with(CatchPanic::new().with_handler(panic_response))
        .with(idempotency)
        .with(observe)
}

#[handler]
fn spec_endpoint(poem::web::Data(spec): poem::web::Data<&Arc<str>>) -> Response {
    Response::builder().content_type("application/json").body(spec.to_string())
}
