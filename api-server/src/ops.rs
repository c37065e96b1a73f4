//! Operational endpoints: liveness, readiness and Prometheus metrics.

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{get, handler, Response, Route};

use breadbox_auth::AuthService;

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide metrics recorder once.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Adds the operational routes (they read `Arc<AuthService>` from request data).
pub fn attach(route: Route) -> Route {
    route.at("/healthz", get(healthz)).at("/readyz", get(readyz)).at("/metrics", get(metrics))
}

fn json(status: StatusCode, body: &'static str) -> Response {
    Response::builder().status(status).content_type("application/json").body(body)
}

/// The process is up.
#[handler]
fn healthz() -> Response {
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// The database answers and every migration is applied.
#[handler]
async fn readyz(Data(service): Data<&Arc<AuthService>>) -> Response {
    if service.db().ready().await {
        json(StatusCode::OK, r#"{"status":"ready"}"#)
    } else {
        json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"unavailable"}"#)
    }
}

#[handler]
fn metrics(Data(service): Data<&Arc<AuthService>>) -> Response {
    let mut text = metrics_handle().map(|h| h.render()).unwrap_or_default();
    text.push_str("# HELP breadbox_auth_key_db_lookups_total Static keys resolved from the database (cache misses) by this instance.\n");
    text.push_str("# TYPE breadbox_auth_key_db_lookups_total counter\n");
    text.push_str(&format!("breadbox_auth_key_db_lookups_total {}\n", service.key_db_lookups()));
    Response::builder().content_type("text/plain; version=0.0.4").body(text)
}
