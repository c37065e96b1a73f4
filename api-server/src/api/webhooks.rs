//! `/api/v1/webhook-endpoints`: where the organization's events are sent, the
//! deliveries to each endpoint and every attempt. Managing endpoints needs
//! `admin:write`; reading them `admin:read`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::body::JsonBody;
use super::text::{texts, Text};
use super::params::{Limit, Time};
use super::ranged::{Items, UNBOUNDED};
use super::paging::Listing;
use super::security::{AdminRead, AdminWrite, Auth, Scopes};
use super::wire::{given, patch, Body, IdempotencyKey, Required};
use super::ApiTags;
use crate::domain::{Crm, Tenant};
use crate::envelope::{List, Single};
use crate::error::ApiError;
use crate::time::rfc3339;
use crate::webhooks::deliveries::{self, Attempt, Delivery};
use crate::webhooks::endpoints::{self as domain, Endpoint, EndpointChanges};

/// A URL that receives the organization's events of one environment.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpoint {
    /// `we_…`
    pub id: String,
    /// Where events are POSTed (http or https).
    pub url: String,
    #[oai(nullable)]
    pub description: Option<String>,
    /// The event types sent, or `["*"]` for every type.
    pub events: Vec<String>,
    /// Disabled endpoints receive nothing.
    pub enabled: bool,
    /// Why the server disabled the endpoint (410 Gone, failing for days).
    #[oai(nullable)]
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed; `null` while deliveries succeed.
    #[oai(nullable)]
    pub failing_since: Option<String>,
    /// After a rotation: until when the previous secret also signs deliveries.
    #[oai(nullable)]
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for WebhookEndpoint {
    fn example() -> Self {
        WebhookEndpoint {
            id: "we_3kTz8QmW1pLx7vR2c".into(),
            url: "https://hooks.example.com/breadbox".into(),
            description: Some("PSA sync".into()),
            events: vec!["deal.closed_won".into(), "account.created".into()],
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            previous_secret_expires_at: None,
            created_at: "2024-05-01T09:30:00.000Z".into(),
            updated_at: "2024-05-01T09:30:00.000Z".into(),
        }
    }
}

impl From<Endpoint> for WebhookEndpoint {
    fn from(e: Endpoint) -> Self {
        WebhookEndpoint {
            id: e.id,
            url: e.url,
            description: e.description,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(rfc3339),
            previous_secret_expires_at: e.previous_secret_expires_at.map(rfc3339),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// An endpoint with its signing secret: shown on creation and rotation only.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointWithSecret {
    /// `whsec_…`: verifies `X-MSP-Signature` and `webhook-signature`. Store it now: it
    /// cannot be retrieved again.
    pub secret: String,
    pub endpoint: WebhookEndpoint,
}

/// A new endpoint.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateWebhookEndpoint {
    /// An http(s) URL on a public address.
    pub url: Required<Text>,
    /// Event types to send, or `["*"]` for every type.
    pub events: Required<Items<Text, 1, UNBOUNDED>>,
    /// At most 500 characters.
    pub description: Option<Text>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

impl Example for CreateWebhookEndpoint {
    fn example() -> Self {
        CreateWebhookEndpoint {
            url: Required(Some("https://hooks.example.com/breadbox".into())),
            events: Required(Some(Items(vec!["*".into()]))),
            description: Some("PSA sync".into()),
            enabled: None,
        }
    }
}

/// Changes to an endpoint: absent fields stay as they are. `enabled: true` re-enables
/// an endpoint the server disabled.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookEndpoint {
    pub url: MaybeUndefined<Text>,
    pub events: MaybeUndefined<Items<Text, 1, UNBOUNDED>>,
    #[oai(nullable)]
    pub description: MaybeUndefined<Text>,
    pub enabled: MaybeUndefined<bool>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet; `nextAttemptAt` says when it is tried.
    Pending,
    /// An attempt got a 2xx.
    Delivered,
    /// Out of retries, or the endpoint was disabled. Can be re-sent.
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// One event sent to one endpoint.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// `msg_…`
    pub id: String,
    pub endpoint_id: String,
    /// The event's `id` (`evt_…`): the same in every attempt, and `webhook-id`.
    pub event_id: String,
    pub event_type: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i64,
    #[oai(nullable)]
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Delivery> for WebhookDelivery {
    fn from(d: Delivery) -> Self {
        let next = if d.status == "pending" { d.next_attempt_at.map(rfc3339) } else { None };
        WebhookDelivery {
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: next,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// One POST of a delivery.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct WebhookAttempt {
    /// `att_…`
    pub id: String,
    pub attempted_at: String,
    /// The HTTP status answered; `null` when no answer came (see `error`).
    #[oai(nullable)]
    pub status_code: Option<i64>,
    /// Why no answer came: timeout, connection refused, refused address…
    #[oai(nullable)]
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The first kilobyte of the response body.
    #[oai(nullable)]
    pub response_snippet: Option<String>,
}

impl From<Attempt> for WebhookAttempt {
    fn from(a: Attempt) -> Self {
        WebhookAttempt {
            id: a.id,
            attempted_at: rfc3339(a.attempted_at),
            status_code: a.status_code,
            error: a.error,
            latency_ms: a.latency_ms,
            response_snippet: a.response_snippet,
        }
    }
}

/// A test event was queued.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct TestEventQueued {
    /// The delivery (`msg_…`) of the `webhook.test` event; follow it under `deliveries`.
    pub delivery_id: String,
}

/// Answers without a body.
#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted, with its deliveries and their attempts.
    #[oai(status = 204)]
    NoContent,
}

pub struct WebhooksApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// List webhook endpoints
    #[oai(path = "/webhook-endpoints", method = "get", operation_id = "list_webhook_endpoints")]
    async fn list_webhook_endpoints(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only endpoints changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<WebhookEndpoint>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "webhook_endpoints", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        Ok(Body(listing.respond(domain::list(crm, &tenant, &page).await?, WebhookEndpoint::from)))
    }

    /// Create a webhook endpoint
    ///
    /// The answer holds the signing secret, shown this once.
    #[oai(path = "/webhook-endpoints", method = "post", operation_id = "create_webhook_endpoint")]
    async fn create_webhook_endpoint(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateWebhookEndpoint>,
    ) -> Result<Created, ApiError> {
        let b = body.0;
        let changes = EndpointChanges {
            url: given(b.url.0, Into::into),
            events: given(b.events.0, texts),
            description: given(b.description, Into::into),
            enabled: given(b.enabled, Into::into),
        };
        let (endpoint, secret) = domain::create(crm, &Tenant::from(&auth.principal), crm.webhook_targets(), changes).await?;
        let location = format!("/api/v1/webhook-endpoints/{}", endpoint.id);
        Ok(Created::Created(Body(Single::new(WebhookEndpointWithSecret { secret, endpoint: endpoint.into() })), location))
    }

    /// Get a webhook endpoint
    #[oai(path = "/webhook-endpoints/:id", method = "get", operation_id = "get_webhook_endpoint")]
    async fn get_webhook_endpoint(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The endpoint id, `we_…`.
        id: Path<String>,
    ) -> Result<Body<Single<WebhookEndpoint>>, ApiError> {
        Ok(Body(Single::new(domain::get(crm, &Tenant::from(&auth.principal), &id).await?.into())))
    }

    /// Update a webhook endpoint
    ///
    /// Change its URL, events or description, or disable and enable it.
    #[oai(path = "/webhook-endpoints/:id", method = "patch", operation_id = "update_webhook_endpoint")]
    async fn update_webhook_endpoint(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The endpoint id, `we_…`.
        id: Path<String>,
        body: JsonBody<UpdateWebhookEndpoint>,
    ) -> Result<Body<Single<WebhookEndpoint>>, ApiError> {
        let b = body.0;
        let changes = EndpointChanges {
            url: patch(b.url, Into::into),
            events: patch(b.events, texts),
            description: patch(b.description, Into::into),
            enabled: patch(b.enabled, Into::into),
        };
        let endpoint = domain::update(crm, &Tenant::from(&auth.principal), crm.webhook_targets(), &id, changes).await?;
        Ok(Body(Single::new(endpoint.into())))
    }

    /// Delete a webhook endpoint
    #[oai(path = "/webhook-endpoints/:id", method = "delete", operation_id = "delete_webhook_endpoint")]
    async fn delete_webhook_endpoint(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The endpoint id, `we_…`.
        id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        domain::delete(crm, &Tenant::from(&auth.principal), &id).await?;
        Ok(Deleted::NoContent)
    }

    /// Rotate an endpoint's signing secret
    ///
    /// Returns the new secret, shown this once. For 24 hours deliveries carry a
    /// signature by the previous secret too, so receivers can switch without a gap.
    #[oai(path = "/webhook-endpoints/:id/rotate-secret", method = "post", operation_id = "rotate_webhook_secret")]
    async fn rotate_webhook_secret(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        /// The endpoint id, `we_…`.
        id: Path<String>,
    ) -> Result<Body<Single<WebhookEndpointWithSecret>>, ApiError> {
        let (endpoint, secret) = domain::rotate_secret(crm, &Tenant::from(&auth.principal), &id).await?;
        Ok(Body(Single::new(WebhookEndpointWithSecret { secret, endpoint: endpoint.into() })))
    }

    /// Send a test event
    ///
    /// Queues a `webhook.test` event for this endpoint only, signed and retried like
    /// any other.
    #[oai(path = "/webhook-endpoints/:id/test", method = "post", operation_id = "send_webhook_test")]
    async fn send_webhook_test(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        /// The endpoint id, `we_…`.
        id: Path<String>,
    ) -> Result<Body<Single<TestEventQueued>>, ApiError> {
        let delivery_id = domain::send_test(crm, &Tenant::from(&auth.principal), &id).await?;
        Ok(Body(Single::new(TestEventQueued { delivery_id })))
    }

    /// List an endpoint's deliveries
    ///
    /// One per event sent to the endpoint, oldest first.
    #[oai(path = "/webhook-endpoints/:id/deliveries", method = "get", operation_id = "list_webhook_deliveries")]
    #[allow(clippy::too_many_arguments)]
    async fn list_webhook_deliveries(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The endpoint id, `we_…`.
        id: Path<String>,
        /// Only deliveries in this state.
        status: Query<Option<DeliveryStatus>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only deliveries changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<WebhookDelivery>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "webhook_deliveries", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let found = deliveries::list(crm, &tenant, &id, status.0.map(DeliveryStatus::as_str), &page).await?;
        Ok(Body(listing.respond(found, WebhookDelivery::from)))
    }

    /// List a delivery's attempts
    ///
    /// Every POST made for the delivery: status, latency, the start of the response.
    #[oai(path = "/webhook-endpoints/:id/deliveries/:delivery_id/attempts", method = "get", operation_id = "list_webhook_attempts")]
    async fn list_webhook_attempts(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The endpoint id, `we_…`.
        id: Path<String>,
        /// The delivery id, `msg_…`.
        delivery_id: Path<String>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Body<List<WebhookAttempt>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "webhook_attempts", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), None)?;
        let found = deliveries::attempts(crm, &tenant, &id, &delivery_id, &page).await?;
        Ok(Body(listing.respond(found, WebhookAttempt::from)))
    }

    /// Re-send a delivery
    ///
    /// Queues a failed (or delivered) delivery again with a fresh retry schedule; the
    /// event keeps its id. A pending delivery is left as it is.
    #[oai(path = "/webhook-endpoints/:id/deliveries/:delivery_id/resend", method = "post", operation_id = "resend_webhook_delivery")]
    async fn resend_webhook_delivery(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        /// The endpoint id, `we_…`.
        id: Path<String>,
        /// The delivery id, `msg_…`.
        delivery_id: Path<String>,
    ) -> Result<Body<Single<WebhookDelivery>>, ApiError> {
        let delivery = deliveries::resend(crm, &Tenant::from(&auth.principal), &id, &delivery_id).await?;
        Ok(Body(Single::new(delivery.into())))
    }
}

/// An endpoint just created.
#[derive(ApiResponse)]
pub enum Created {
    /// Created. `Location` is its URL. The body holds the secret, shown this once.
    #[oai(status = 201)]
    Created(Body<Single<WebhookEndpointWithSecret>>, #[oai(header = "Location")] String),
}
