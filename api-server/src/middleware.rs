//! The outermost layer of every request: a request id, the per-IP rate limits (before
//! any other work), the error envelope for failures raised outside handlers (unknown
//! route, wrong method, panics), the rate-limit headers, metrics, and the audit log
//! entry of every call under `/api/v1`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OperationId;
use tracing::Instrument;

use breadbox_auth::limits::Refusal;
use breadbox_auth::AuthService;

use crate::audit::{AuditLog, Call, Caller};
use crate::inline::InlineStr;
use crate::error::{ErrorBody, ErrorCode, ErrorDetail, Rejected};
use crate::request_id::{self, current_request_id, new_request_id, RequestId};

/// Request id + rate limits + envelope + metrics + audit log.
pub struct Observe {
    service: Arc<AuthService>,
    audit: AuditLog,
    templates: Arc<HashMap<String, Arc<str>>>,
}

impl Observe {
    /// `templates`: the spec's route of each operation by poem's pattern
    /// (`crate::api::route_templates`).
    pub fn new(service: Arc<AuthService>, audit: AuditLog, templates: Arc<HashMap<String, Arc<str>>>) -> Observe {
        Observe { service, audit, templates }
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, inner: E) -> Self::Output {
        ObserveEndpoint { inner, service: self.service.clone(), audit: self.audit.clone(), templates: self.templates.clone() }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
    service: Arc<AuthService>,
    audit: AuditLog,
    templates: Arc<HashMap<String, Arc<str>>>,
}

/// A 429 from the per-IP buckets: the OAuth error shape on the OAuth endpoints, the
/// envelope elsewhere.
fn refused(path: &str, refusal: &Refusal) -> Response {
    if path.starts_with("/api/v1/auth/") {
        breadbox_auth::http::rate_limited_response(refusal)
    } else {
        crate::error::ApiError::rate_limited(refusal).into_response()
    }
}

/// An envelope response for `code`, outside any handler.
pub fn error_response(code: ErrorCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: message.into(),
            request_id: current_request_id(),
            reason: None,
            details: None,
        },
    };
    let json = poem_openapi::types::ToJSON::to_json_string(&body);
    Response::builder().status(code.status()).content_type("application/json; charset=utf-8").body(json)
}

/// The 405 envelope for `method` on `path`.
pub(crate) fn method_not_allowed(method: &str, path: &str) -> Response {
    error_response(ErrorCode::MethodNotAllowed, format!("{method} is not supported on {path}"))
}

/// The envelope response of an error raised anywhere below the middleware.
pub(crate) fn envelope_for(err: poem::Error, method: &str, path: &str) -> Response {
    if err.is_from_response() {
        // An `ApiError` a handler returned: already an envelope.
        return err.into_response();
    }
    let err = match err.downcast::<Rejected>() {
        Ok(rejected) => return rejected.0.into_response(),
        Err(err) => err,
    };
    if let Some(api_error) = crate::error::from_parse_error(&err) {
        return api_error.into_response();
    }
    let status = err.status();
    let code = ErrorCode::for_status(status);
    match status {
        StatusCode::NOT_FOUND => error_response(code, format!("no route for {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => {
            // The API router sends its own 405 with `Allow`; this is the OAuth routes'.
            let mut response = method_not_allowed(method, path);
            if let Some(allow) = breadbox_auth::http::allowed_methods(path) {
                response.headers_mut().insert(poem::http::header::ALLOW, poem::http::HeaderValue::from_static(allow));
            }
            response
        }
        s if s.is_server_error() => {
            tracing::error!(error = %err, "request failed");
            error_response(ErrorCode::InternalError, "unexpected server error; retry with backoff")
        }
        _ => error_response(code, err.to_string()),
    }
}

/// The label of a route in metrics: the operation id, or a fixed name.
fn route_label(response: &Response, path: &str) -> &'static str {
    if let Some(op) = response.data::<OperationId>() {
        return op.0;
    }
    match path {
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        crate::api::SPEC_PATH => crate::api::SPEC_PATH,
        breadbox_auth::http::TOKEN_PATH => breadbox_auth::http::TOKEN_PATH,
        breadbox_auth::http::INTROSPECT_PATH => breadbox_auth::http::INTROSPECT_PATH,
        breadbox_auth::http::REVOKE_PATH => breadbox_auth::http::REVOKE_PATH,
        breadbox_auth::http::METADATA_PATH => breadbox_auth::http::METADATA_PATH,
        breadbox_auth::http::JWKS_PATH => breadbox_auth::http::JWKS_PATH,
        p if p.starts_with("/docs") => "/docs",
        _ => "unmatched",
    }
}

/// The request counter and latency histogram of one (route, status).
type RouteHandles = (metrics::Counter, metrics::Histogram);

thread_local! {
    /// Metric handles per (route, status), registered once per thread: looking a
    /// labelled metric up in the recorder on every request allocated and hashed its
    /// labels each time, and one map shared by the server's threads behind a lock
    /// passed the lock's cache line between the cores on every request (1.5 % of the
    /// server's samples for the detail GET). Each thread's handles are the recorder's
    /// same metrics.
    static ROUTE_METRICS: std::cell::RefCell<HashMap<(&'static str, u16), RouteHandles, foldhash::fast::RandomState>> =
        std::cell::RefCell::default();
}

/// Counts a request of `route` answered with `status` after `seconds`.
fn record_route_metrics(route: &'static str, status: u16, seconds: f64) {
    ROUTE_METRICS.with_borrow_mut(|handles| {
        let (counter, histogram) = handles.entry((route, status)).or_insert_with(|| {
            (
                metrics::counter!("breadbox_http_requests_total", "route" => route, "status" => status.to_string()),
                metrics::histogram!("breadbox_http_request_duration_seconds", "route" => route),
            )
        });
        counter.increment(1);
        histogram.record(seconds);
    });
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let arrived_ms = breadbox_auth::db::now_ms();
        let id = new_request_id();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
        let limits = self.service.limits();
        let ip = limits.client_ip(&req);
        let (method_ref, path_ref) = (&method, path.as_str());
        let inner = || async move {
            // Boxed where it is made: every wrapper below (the task-local scopes, the
            // span, the limiter) would otherwise hold the whole request's future (6 KB
            // here) by value, and holding it in a future passed to another doubles it
            // (the work future below measured 26.7 KB, copied on every request; 3 KB now).
            match Box::pin(self.inner.call(req)).await {
                Ok(output) => output.into_response(),
                Err(err) => envelope_for(err, method_ref.as_str(), path_ref),
            }
        };
        // Boxed once here, so that the task-local scopes around it (and every layer
        // above) move a pointer rather than the whole request's future.
        let work = Box::pin(limits.serve(ip, |refusal| refused(path_ref, refusal), inner).instrument(span));
        let (outcome, caller) = crate::audit::scope(request_id::scope(id, work)).await;
        let mut response = outcome;
        if let Ok(value) = HeaderValue::from_str(id.as_str()) {
            response.headers_mut().insert(request_id::HEADER, value);
        }
        if path.starts_with("/api/v1/") && path != crate::api::SPEC_PATH {
            // An organization's data (or a credential's): no cache along the way, nor
            // the browser running Swagger UI, keeps a copy.
            response.headers_mut().entry(poem::http::header::CACHE_CONTROL).or_insert(NO_STORE);
        }
        let status = response.status().as_u16();
        let route = route_label(&response, &path);
        let elapsed = started.elapsed();
        tracing::debug!(request_id = %id, %method, %path, status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request");
        if path.starts_with("/api/v1/") {
            let mut caller = caller;
            if let Some(template) = caller.route.as_deref().and_then(|r| self.templates.get(r)) {
                caller.route = Some(template.clone());
            }
            self.audit.record(audit_entry(caller, id, arrived_ms, method, &path, route, status, elapsed, ip));
        }
        let elapsed = elapsed.as_secs_f64();
        record_route_metrics(route, status, elapsed);
        Ok(response)
    }
}

/// Longest path kept in the audit log for a request that matched no route.
const MAX_UNMATCHED_PATH: usize = 256;

/// The audit entry of an answered request.
#[allow(clippy::too_many_arguments)]
fn audit_entry(
    caller: Caller,
    request_id: RequestId,
    arrived_ms: i64,
    method: Method,
    path: &str,
    label: &'static str,
    status: u16,
    elapsed: std::time::Duration,
    ip: Option<std::net::IpAddr>,
) -> Call {
    let route = caller.route.unwrap_or_else(|| {
        if label == "unmatched" || !label.starts_with('/') {
            let mut end = path.len().min(MAX_UNMATCHED_PATH);
            while !path.is_char_boundary(end) {
                end -= 1;
            }
            Arc::from(&path[..end])
        } else {
            Arc::from(label)
        }
    });
    Call {
        id: crate::audit::new_entry_id(arrived_ms),
        created_at: arrived_ms,
        request_id,
        principal: caller.principal,
        method,
        route,
        status,
        latency_us: i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX),
        client_ip: ip.and_then(InlineStr::display),
    }
}

/// Answers a panic with a 500 envelope (the panic itself is logged by the hook).
pub fn panic_response(_panic: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("handler panicked");
    error_response(ErrorCode::InternalError, "unexpected server error; retry with backoff")
}
