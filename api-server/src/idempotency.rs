//! `Idempotency-Key` on every POST under `/api/v1` (the OAuth endpoints aside). Keys
//! belong to a credential (API key id or OAuth client id, whatever token it holds) and
//! are kept 24 hours. The first request with a key claims it before its body is read;
//! its answer, unless a 5xx, 429 or 401 (nothing done, worth running again), is stored
//! and replayed to every later request with the same key and the same method, path and
//! body, with `Idempotent-Replayed: true`. The same key with another request is a 422
//! naming `Idempotency-Key`; while the first is still running, a 409 `conflict`.
//!
//! A request without a valid credential passes through untouched (the operation
//! answers 401), as does one without the header.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use futures::FutureExt;
use poem::http::{HeaderName, HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use sqlx::AnyPool;
use tokio::sync::watch;

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::sha256_hex;
use breadbox_auth::AuthService;

use crate::error::{ApiError, ErrorCode};
use crate::middleware::envelope_for;
use crate::repo::idempotency::{self as repo, Claim};

pub const HEADER: &str = "idempotency-key";
/// Set to `true` on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a key is kept.
pub const KEEP_MS: i64 = 24 * 60 * 60 * 1000;
/// A claim still running after this long belongs to a process that died.
const ABANDONED_MS: i64 = 10 * 60 * 1000;
pub(crate) const MAX_KEY_LEN: usize = 255;
/// The headers of an answer that are replayed with it.
const KEPT_HEADERS: &[&str] = &["content-type", "location", "etag"];
const EXPIRE_EVERY: Duration = Duration::from_secs(600);

/// The middleware; see the module documentation.
pub struct Idempotency {
    service: Arc<AuthService>,
}

impl Idempotency {
    pub fn new(service: Arc<AuthService>) -> Idempotency {
        Idempotency { service }
    }
}

impl<E: Endpoint> Middleware<E> for Idempotency {
    type Output = IdempotencyEndpoint<E>;
    fn transform(&self, inner: E) -> Self::Output {
        IdempotencyEndpoint { inner, service: self.service.clone() }
    }
}

pub struct IdempotencyEndpoint<E> {
    inner: E,
    service: Arc<AuthService>,
}

/// Whether a request of `method` on `path` takes a key.
fn applies(method: &Method, path: &str) -> bool {
    method == Method::POST && path.starts_with("/api/v1/") && !path.starts_with("/api/v1/auth/")
}

/// The key if it is 1–255 printable ASCII characters.
fn parse_key(value: &HeaderValue) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::bad_request("Idempotency-Key must be 1 to 255 printable ASCII characters"));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// What makes two requests with one key the same request.
fn fingerprint(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    let mut input = Vec::with_capacity(method.as_str().len() + path_and_query.len() + body.len() + 2);
    input.extend_from_slice(method.as_str().as_bytes());
    input.push(0);
    input.extend_from_slice(path_and_query.as_bytes());
    input.push(0);
    input.extend_from_slice(body);
    sha256_hex(&input)
}

/// Whether an answer is kept for replay: not when the request did nothing a retry
/// should not do again.
fn worth_keeping(status: StatusCode) -> bool {
    !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::UNAUTHORIZED)
}

/// A stored answer, replayed.
fn replay(held: repo::KeyRecord) -> Response {
    let status = held.status.and_then(|s| u16::try_from(s).ok()).and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status else {
        return ApiError::internal(&"stored idempotent response without a status").into_response();
    };
    let headers: BTreeMap<String, String> = held.headers.as_deref().and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default();
    let mut response = Response::builder().status(status).body(held.body.unwrap_or_default());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

impl<E: Endpoint> IdempotencyEndpoint<E> {
    /// The request, untouched, to the endpoint below: its future and a map, not an
    /// `async fn` of its own, whose future would hold that one and the request besides.
    fn pass(&self, req: Request) -> impl Future<Output = Result<Response>> + Send + '_ {
        self.inner.call(req).map(|outcome| outcome.map(IntoResponse::into_response))
    }

    /// Runs the request holding the key and keeps its answer (or frees the key).
    async fn run_holding(&self, mut req: Request, credential: &str, key: &str, print: String, body: Vec<u8>) -> Response {
        let pool = self.service.db().writer();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        req.set_body(body);
        let response = match self.inner.call(req).await {
            Ok(output) => output.into_response(),
            Err(err) => envelope_for(err, method.as_str(), &path),
        };
        if !worth_keeping(response.status()) {
            release(pool, credential, key).await;
            return response;
        }
        let (parts, body) = response.into_parts();
        let bytes = match body.into_bytes().await {
            Ok(bytes) => bytes,
            Err(err) => {
                release(pool, credential, key).await;
                return ApiError::internal(&err).into_response();
            }
        };
        let kept: BTreeMap<&str, &str> = KEPT_HEADERS
            .iter()
            .filter_map(|name| parts.headers.get(*name).and_then(|v| v.to_str().ok()).map(|v| (*name, v)))
            .collect();
        let stored = match (std::str::from_utf8(&bytes), serde_json::to_string(&kept)) {
            (Ok(text), Ok(headers)) => {
                repo::complete(pool, credential, key, &print, parts.status.as_u16(), &headers, text).await
            }
            _ => repo::release(pool, credential, key).await,
        };
        if let Err(err) = stored {
            tracing::warn!(error = %err, "could not store an idempotent response");
            release(pool, credential, key).await;
        }
        Response::from_parts(parts, Body::from(bytes))
    }

    /// A POST with an `Idempotency-Key` header.
    async fn keyed(&self, mut req: Request, value: HeaderValue) -> Result<Response> {
        let key = match parse_key(&value) {
            Ok(key) => key,
            Err(err) => return Ok(err.into_response()),
        };
        let authenticated = self.service.authenticate(req.headers()).await;
        let Ok(principal) = authenticated else {
            return self.pass(req).await;
        };
        crate::audit::note_principal(&principal);
        let credential = principal.credential_id.as_str();
        let pool = self.service.db().writer();
        let now = now_ms();
        let claim = match repo::claim(pool, credential, &key, now, now - KEEP_MS, now - ABANDONED_MS).await {
            Ok(claim) => claim,
            Err(err) => return Ok(ApiError::internal(&err).into_response()),
        };
        // Fingerprinted as decompressed: a retry compressed otherwise is the same request.
        let sent = req.take_body();
        let body = match crate::compression::read_body(req.headers(), sent).await {
            Ok(body) => body,
            Err(err) => {
                if matches!(claim, Claim::Taken) {
                    release(pool, credential, &key).await;
                }
                return Ok(err.into_response());
            }
        };
        crate::compression::mark_decoded(req.headers_mut());
        let path_and_query = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
        let print = fingerprint(req.method(), &path_and_query, &body);
        match claim {
            Claim::Taken => Ok(self.run_holding(req, credential, &key, print, body).await),
            Claim::Held(held) if held.state != "done" => Ok(ApiError::new(
                ErrorCode::Conflict,
                "a request with this Idempotency-Key is still being answered; retry later",
            )
            .into_response()),
            Claim::Held(held) if held.fingerprint != print => Ok(ApiError::field(
                "Idempotency-Key",
                "was already used with another request (method, path or body); use a new key",
            )
            .into_response()),
            Claim::Held(held) => Ok(replay(held)),
        }
    }
}

async fn release(pool: &AnyPool, credential: &str, key: &str) {
    if let Err(err) = repo::release(pool, credential, key).await {
        tracing::warn!(error = %err, "could not release an idempotency key");
    }
}

impl<E: Endpoint> Endpoint for IdempotencyEndpoint<E> {
    type Output = Response;

    // Not an `async fn`: its future would hold the request and the one below besides
    // (rustc lays the two out apart), and every layer above copies it whole.
    fn call(&self, req: Request) -> impl Future<Output = Result<Self::Output>> + Send {
        let value = if applies(req.method(), req.uri().path()) { req.headers().get(HEADER).cloned() } else { None };
        match value {
            None => Either::Left(self.pass(req)),
            // Boxed: the keyed path's database futures would otherwise size (and be
            // copied with) the future of every request.
            Some(value) => Either::Right(Box::pin(self.keyed(req, value))),
        }
    }
}

/// Deletes keys older than `KEEP_MS` every ten minutes until `shutdown` turns true.
pub fn spawn_expiry(pool: AnyPool, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = repo::expire(&pool, now_ms() - KEEP_MS).await {
                        tracing::warn!(error = %err, "could not expire idempotency keys");
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        let ok = |v: &str| parse_key(&HeaderValue::from_str(v).unwrap()).is_ok();
        assert!(ok("order-2024-0001"));
        assert!(ok(&"k".repeat(255)));
        assert!(!ok(&"k".repeat(256)));
        assert!(!ok(""));
        assert!(!ok("tab\there"));
        assert!(parse_key(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()).is_err());
    }

    #[test]
    fn a_fingerprint_covers_method_path_and_body() {
        let a = fingerprint(&Method::POST, "/api/v1/deals", b"{}");
        assert_eq!(a, fingerprint(&Method::POST, "/api/v1/deals", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/api/v1/accounts", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/api/v1/deals", b"{ }"));
    }
}
