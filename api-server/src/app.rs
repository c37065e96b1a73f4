//! `Application`: the all-in-one server (authorization server + API on one port).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use futures::FutureExt;
use poem::listener::{Acceptor, AcceptorExt, BoxAcceptor, Listener, TcpListener};
use poem::{get, handler, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server};
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
        let crm = Arc::new(Crm::load(service.db().clone()).await?.with_webhook_targets(config.webhooks.targets()));
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
        let (audit, audit_writer) = crate::audit::channel(self.service.db());
        let audit_writer = audit_writer.spawn(stop_rx.clone());
        let expiry = crate::idempotency::spawn_expiry(self.service.db().writer().clone(), stop_rx.clone());
        let sweeps = sweeps(self.webhooks.sweep_every, self.webhooks.device_offline_after);
        let webhooks = crate::webhooks::spawn(self.crm.clone(), self.webhooks.clone(), sweeps, stop_rx);
        let endpoint = routes(self.service.clone(), self.crm.clone(), audit);
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
    // Parsed once for both: the routes' templates and which operations read a query.
    let document: serde_json::Value = serde_json::from_str(&spec).unwrap_or_default();
    let templates = Arc::new(crate::api::route_templates(&document));
    let api_router = crate::api::router(&document, &templates);
    let docs = api.swagger_ui();
    let rest = Route::new().at(SPEC_PATH, get(spec_endpoint).data(spec)).nest("/docs", docs);
    let rest = crate::ops::attach(breadbox_auth::http::attach(rest));
    let route = Dispatch { api: api_router, rest };
    let observe = Observe::new(service.clone(), audit, templates);
    let idempotency = Idempotency::new(service.clone());
    crate::compression::GzipResponses(CatchPanics(AppData { inner: route, service, crm }).with(idempotency).with(observe))
}

/// Puts the state that handlers read with `Data<&…>` in every request's data, in one
/// layer rather than one `.data(…)` per value (each layer moves the request into a
/// future of its own). Two values: with the parsed query the router adds, three fit the
/// map's first allocation, and a fourth made it grow on every request.
struct AppData<E> {
    inner: E,
    service: Arc<AuthService>,
    crm: Arc<Crm>,
}

// The layers below are plain functions returning the future of the layer under them,
// or a combinator over it, not `async fn`s: an `async fn`'s future holds the request
// and the inner future apart (rustc does not overlap them), so each layer about
// doubled the size of the request's future (5.9 KB at the top), and each layer above
// copies that future when it starts it.
impl<E: Endpoint> Endpoint for AppData<E> {
    type Output = E::Output;

    fn call(&self, mut req: Request) -> impl Future<Output = poem::Result<E::Output>> + Send {
        let data = req.extensions_mut();
        data.insert(self.service.clone());
        data.insert(self.crm.clone());
        self.inner.call(req)
    }
}

/// Answers a panic below it with a 500 envelope (`panic_response`), as poem's
/// `CatchPanic` with that handler does.
struct CatchPanics<E>(E);

impl<E: Endpoint> Endpoint for CatchPanics<E> {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        AssertUnwindSafe(self.0.call(req)).catch_unwind().map(|outcome| match outcome {
            Ok(result) => result.map(IntoResponse::into_response),
            Err(panic) => Ok(panic_response(panic)),
        })
    }
}

/// Sends the API's requests straight to the OpenAPI service and the others (OAuth
/// endpoints, the spec, the docs, operations) to a router: nested in one `Route`, each
/// API request went through two routers, a path rewrite and two more boxed futures.
struct Dispatch<A> {
    api: A,
    rest: Route,
}

/// Whether `path` belongs to the OpenAPI service (whose own router answers 404 and 405
/// for paths and methods it does not have, as the outer one would).
fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/v1/") && !path.starts_with("/api/v1/auth/") && path != SPEC_PATH
}

impl<A: Endpoint> Endpoint for Dispatch<A> {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        if is_api_path(req.uri().path()) {
            Either::Left(self.api.call(req).map(|outcome| outcome.map(IntoResponse::into_response)))
        } else {
            // Boxed: the router's requests (token endpoint, docs, operations) are not the
            // API's, and their future need not size the one every API request copies.
            Either::Right(Box::pin(self.rest.call(req)))
        }
    }
}

#[handler]
fn spec_endpoint(poem::web::Data(spec): poem::web::Data<&Arc<str>>) -> Response {
    Response::builder().content_type("application/json").body(spec.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[handler]
    fn panics() -> &'static str {
        panic!("a handler bug")
    }

    #[handler]
    fn answers() -> &'static str {
        "fine"
    }

    #[tokio::test]
    async fn a_panic_below_the_guard_is_a_500_envelope_and_other_answers_pass() {
        let guarded = CatchPanics(Route::new().at("/boom", get(panics)).at("/ok", get(answers)));
        let boom = guarded.call(Request::builder().uri_str("/boom").finish()).await.expect("an answer");
        assert_eq!(boom.status(), poem::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = serde_json::from_slice(&boom.into_body().into_vec().await.expect("body")).expect("json");
        assert_eq!(body["error"]["code"], "internal_error", "{body}");
        assert!(!body.to_string().contains("a handler bug"), "the panic message is not shown: {body}");
        let ok = guarded.call(Request::builder().uri_str("/ok").finish()).await.expect("an answer");
        assert_eq!(ok.status(), poem::http::StatusCode::OK);
        assert_eq!(ok.into_body().into_string().await.expect("body"), "fine");
        let missing = guarded.call(Request::builder().uri_str("/nowhere").finish()).await;
        assert_eq!(missing.err().map(|e| e.status()), Some(poem::http::StatusCode::NOT_FOUND));
    }

    #[test]
    fn api_paths_skip_the_router() {
        assert!(is_api_path("/api/v1/me"));
        assert!(is_api_path("/api/v1/accounts/acc_1"));
        assert!(is_api_path("/api/v1/no-such-thing"));
        assert!(!is_api_path(SPEC_PATH));
        assert!(!is_api_path(breadbox_auth::http::TOKEN_PATH));
        assert!(!is_api_path(breadbox_auth::http::INTROSPECT_PATH));
        assert!(!is_api_path("/api/v1"));
        assert!(!is_api_path("/healthz"));
        assert!(!is_api_path("/docs"));
    }
}
