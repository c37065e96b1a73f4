//! `GET /api/v1/audit-log`: every call made in the caller's organization and
//! environment, newest first.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use super::params::{Limit, Time};
use super::paging::Listing;
use super::security::{AdminRead, Auth, Scopes};
use super::wire::Body;
use super::ApiTags;
use crate::audit::Entry;
use crate::domain::audit::{self as domain, AuditFilter};
use crate::domain::{Crm, Tenant};
use crate::envelope::List;
use crate::error::ApiError;
use crate::time::{parse_rfc3339, rfc3339};

/// One API call, as recorded when it was answered.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// `aud_…`
    pub id: String,
    /// When the request arrived.
    pub at: String,
    /// The request's `X-Request-Id`.
    pub request_id: String,
    /// The API key (`key_…`) or OAuth client (`cli_…`) that made the call.
    pub credential_id: String,
    pub method: String,
    /// The route that answered, as in this document, e.g. `/api/v1/deals/{id}`.
    pub route: String,
    /// The HTTP status of the response, refusals (403, 404, 429…) included.
    pub status: u16,
    /// Time spent answering, in milliseconds.
    pub latency_ms: f64,
    /// The client's IP address (the last `X-Forwarded-For` entry when the server trusts it).
    #[oai(nullable)]
    pub client_ip: Option<String>,
}

impl Example for AuditEntry {
    fn example() -> Self {
        AuditEntry {
            id: "aud_3hT9kQ2mXv7R".into(),
            at: "2024-07-02T16:20:45.123Z".into(),
            request_id: "req_8fK2mQ9vLx3pR8sTbC1d".into(),
            credential_id: "key_7Yc2mQ9vLx3pR8sT".into(),
            method: "PATCH".into(),
            route: "/api/v1/deals/{id}".into(),
            status: 200,
            latency_ms: 4.182,
            client_ip: Some("203.0.113.7".into()),
        }
    }
}

impl From<Entry> for AuditEntry {
    fn from(e: Entry) -> Self {
        AuditEntry {
            id: e.id,
            at: rfc3339(e.created_at),
            request_id: e.request_id,
            credential_id: e.credential_id.unwrap_or_default(),
            method: e.method,
            route: e.route.to_string(),
            status: e.status,
            latency_ms: e.latency_us as f64 / 1000.0,
            client_ip: e.client_ip,
        }
    }
}

/// An optional RFC 3339 query parameter as Unix ms; malformed is a 400 naming it.
fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            parse_rfc3339(text.trim())
                .ok_or_else(|| ApiError::bad_request(format!("`{name}` must be an RFC 3339 time such as 2024-05-01T00:00:00Z")))
        })
        .transpose()
}

pub struct AuditApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Audit")]
impl AuditApi {
    /// List the audit log
    ///
    /// Every call made with a credential of your organization and environment, refused
    /// ones included, **newest first**, a page at a time. Entries are written in
    /// batches and appear within about a second. Filter by `credentialId`, `status`
    /// and the time range `from` (inclusive) – `to` (exclusive); `updatedSince` is the
    /// same as `from` (entries never change).
    #[oai(path = "/audit-log", method = "get", operation_id = "list_audit_log")]
    #[allow(clippy::too_many_arguments)]
    async fn list_audit_log(
        &self,
        #[oai(scope = "Scopes::AdminRead")] auth: Auth<AdminRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only calls made with this API key or OAuth client.
        #[oai(name = "credentialId")]
        credential_id: Query<Option<String>>,
        /// Only calls answered with this HTTP status.
        status: Query<Option<i64>>,
        /// Only calls made at or after this RFC 3339 time.
        from: Query<Option<Time>>,
        /// Only calls made before this RFC 3339 time.
        to: Query<Option<Time>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only calls made at or after this RFC 3339 time (as `from`).
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<AuditEntry>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "audit-log", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let from = time_param("from", from.0.as_ref().map(|t| t.value.as_str()))?;
        let to = time_param("to", to.0.as_ref().map(|t| t.value.as_str()))?;
        let filter = AuditFilter::new(credential_id.0, status.0, from, to)?;
        let entries = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(entries, AuditEntry::from)))
    }
}
