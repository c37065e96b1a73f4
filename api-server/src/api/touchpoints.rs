//! `/api/v1/touchpoints`: calls, e-mails, meetings, tickets and QBRs logged by
//! external tools.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::body::JsonBody;
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::paging::Listing;
use super::security::{Auth, Scopes, TouchpointsRead, TouchpointsWrite};
use super::memo;
use super::wire::{etag_header, to_wire, Body, EnumText, Fetched, IdempotencyKey, ListHeader, NoneMatch, Required, Tagged};
use super::ApiTags;
use crate::domain::events::Wire;
use crate::domain::touchpoints::{self as domain, Logged, NewTouchpoint, TouchpointFilter};
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::{List, Single};
use crate::error::ApiError;
use crate::time::{parse_rfc3339, rfc3339};

/// The kind of interaction. A `QBR` (quarterly business review) carries its agenda
/// and outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TouchpointType {
    Call,
    Email,
    Meeting,
    Ticket,
    Qbr,
}

impl From<domain::TouchpointType> for TouchpointType {
    fn from(t: domain::TouchpointType) -> Self {
        match t {
            domain::TouchpointType::Call => TouchpointType::Call,
            domain::TouchpointType::Email => TouchpointType::Email,
            domain::TouchpointType::Meeting => TouchpointType::Meeting,
            domain::TouchpointType::Ticket => TouchpointType::Ticket,
            domain::TouchpointType::Qbr => TouchpointType::Qbr,
        }
    }
}

impl From<TouchpointType> for domain::TouchpointType {
    fn from(t: TouchpointType) -> Self {
        match t {
            TouchpointType::Call => domain::TouchpointType::Call,
            TouchpointType::Email => domain::TouchpointType::Email,
            TouchpointType::Meeting => domain::TouchpointType::Meeting,
            TouchpointType::Ticket => domain::TouchpointType::Ticket,
            TouchpointType::Qbr => domain::TouchpointType::Qbr,
        }
    }
}

/// One interaction with an account. Touchpoints are not edited once logged.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Touchpoint {
    /// `tp_…`
    pub id: String,
    /// `acc_…`
    pub account_id: String,
    /// The contact involved, `con_…`.
    #[oai(nullable)]
    pub contact_id: Option<String>,
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: TouchpointType,
    pub occurred_at: String,
    pub subject: String,
    #[oai(nullable)]
    pub summary: Option<String>,
    /// The tool that logged it, e.g. `halopsa`.
    #[oai(nullable)]
    pub source: Option<String>,
    /// Its id in `source`; one touchpoint per (source, externalId).
    #[oai(nullable)]
    pub external_id: Option<String>,
    /// The QBR's agenda; null for other types.
    #[oai(nullable)]
    pub agenda: Option<String>,
    /// The QBR's outcome; null for other types.
    #[oai(nullable)]
    pub outcome: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for Touchpoint {
    fn example() -> Self {
        Touchpoint {
            id: "tp_8Jd3kWq2nR5vX1cB".into(),
            account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            contact_id: Some("con_3Lp8vQ2xWk7nR4tY".into()),
            kind: TouchpointType::Qbr,
            occurred_at: "2024-07-02T15:00:00.000Z".into(),
            subject: "Q2 business review".into(),
            summary: Some("Reviewed SLA performance and the security roadmap.".into()),
            source: Some("halopsa".into()),
            external_id: Some("appt-20931".into()),
            agenda: Some("SLA review; backup tests; 2025 budget".into()),
            outcome: Some("Agreed to pilot MDR in Q3".into()),
            created_at: "2024-07-02T16:20:45.000Z".into(),
            updated_at: "2024-07-02T16:20:45.000Z".into(),
        }
    }
}

impl From<domain::Touchpoint> for Touchpoint {
    fn from(t: domain::Touchpoint) -> Self {
        Touchpoint {
            id: t.id,
            account_id: t.account_id,
            contact_id: t.contact_id,
            kind: t.kind.into(),
            occurred_at: rfc3339(t.occurred_at),
            subject: t.subject,
            summary: t.summary,
            source: t.source,
            external_id: t.external_id,
            agenda: t.agenda,
            outcome: t.outcome,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

impl Wire for domain::Touchpoint {
    fn wire(&self) -> serde_json::Value {
        to_wire(Touchpoint::from(self.clone()))
    }
}

/// A touchpoint to log. `agenda` and `outcome` are required for a `QBR` and refused
/// for other types.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateTouchpoint {
    /// An account (`acc_…`) of the same organization and environment.
    pub account_id: Required<Text>,
    /// A contact (`con_…`) of the same organization and environment.
    pub contact_id: Option<Text>,
    #[oai(rename = "type")]
    pub kind: Required<EnumText<TouchpointType>>,
    /// RFC 3339; at most 5 minutes in the future.
    pub occurred_at: Required<Text<0, { format::DATE_TIME }>>,
    /// 1–200 characters.
    pub subject: Required<Text<{ crate::domain::touchpoints::SUBJECT_MAX }, { format::NON_BLANK }>>,
    /// Up to 10,000 characters.
    pub summary: Option<Text<{ crate::domain::touchpoints::TEXT_MAX }>>,
    /// The logging tool, up to 64 characters; required with `externalId`.
    pub source: Option<Text<{ crate::domain::touchpoints::SOURCE_MAX }>>,
    /// The touchpoint's id in `source`, up to 200 characters. Logging the same
    /// (source, externalId) again returns the touchpoint already logged (200).
    pub external_id: Option<Text<{ crate::domain::touchpoints::EXTERNAL_ID_MAX }>>,
    /// QBRs only, up to 10,000 characters.
    pub agenda: Option<Text<{ crate::domain::touchpoints::TEXT_MAX }>>,
    /// QBRs only, up to 10,000 characters.
    pub outcome: Option<Text<{ crate::domain::touchpoints::TEXT_MAX }>>,
}

impl Example for CreateTouchpoint {
    fn example() -> Self {
        CreateTouchpoint {
            account_id: Required(Some("acc_5Hq2vWZk3nR8yT1bC".into())),
            contact_id: None,
            kind: Required(Some("CALL".into())),
            occurred_at: Required(Some("2024-07-02T15:00:00Z".into())),
            subject: Required(Some("Backup failure follow-up".into())),
            summary: Some("Walked the office manager through the restore test.".into()),
            source: Some("halopsa".into()),
            external_id: Some("call-88213".into()),
            agenda: None,
            outcome: None,
        }
    }
}

impl From<CreateTouchpoint> for NewTouchpoint {
    fn from(b: CreateTouchpoint) -> Self {
        NewTouchpoint {
            account_id: b.account_id.0.map(String::from),
            contact_id: b.contact_id.map(String::from),
            kind: b.kind.0.map(EnumText::into_string),
            occurred_at: b.occurred_at.0.map(|t| parse_rfc3339(t.trim()).ok_or(())),
            subject: b.subject.0.map(String::from),
            summary: b.summary.map(String::from),
            source: b.source.map(String::from),
            external_id: b.external_id.map(String::from),
            agenda: b.agenda.map(String::from),
            outcome: b.outcome.map(String::from),
        }
    }
}

/// A touchpoint logged now, or the one logged before with the same source and
/// external id.
#[derive(ApiResponse)]
pub enum LogResponse {
    /// Logged. `Location` is its URL.
    #[oai(status = 201)]
    Created(Body<Single<Touchpoint>>, #[oai(header = "Location")] String, #[oai(header = "ETag")] String),
    /// Already logged with this `source` and `externalId`: the stored touchpoint,
    /// unchanged.
    #[oai(status = 200)]
    Existing(Body<Single<Touchpoint>>, #[oai(header = "Location")] String, #[oai(header = "ETag")] String),
}

pub struct TouchpointsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Touchpoints")]
impl TouchpointsApi {
    /// List touchpoints
    ///
    /// Oldest logged first, a page at a time; filter by `accountId` and `type`, and by
    /// `updatedSince` for incremental sync.
    #[oai(path = "/touchpoints", method = "get", operation_id = "list_touchpoints")]
    #[allow(clippy::too_many_arguments)]
    async fn list_touchpoints(
        &self,
        #[oai(scope = "Scopes::TouchpointsRead")] auth: Auth<TouchpointsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only touchpoints with this account.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
        /// Only touchpoints of this type.
        #[oai(name = "type")]
        kind: Query<Option<TouchpointType>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only touchpoints changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<Touchpoint>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "touchpoints", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = TouchpointFilter { account_id: account_id.0, kind: kind.0.map(Into::into) };
        let items = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(items, Touchpoint::from)))
    }

    /// Log a touchpoint
    ///
    /// Records an interaction from an external tool and emits `touchpoint.created`.
    /// With `source` and `externalId`, sending the same touchpoint again is safe: the
    /// first one is returned with 200 and nothing new is logged.
    #[oai(path = "/touchpoints", method = "post", operation_id = "create_touchpoint")]
    async fn create_touchpoint(
        &self,
        #[oai(scope = "Scopes::TouchpointsWrite")] auth: Auth<TouchpointsWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateTouchpoint>,
    ) -> Result<LogResponse, ApiError> {
        let (touchpoint, logged) = domain::create(crm, &Tenant::from(&auth.principal), body.0.into()).await?;
        let location = format!("/api/v1/touchpoints/{}", touchpoint.id);
        let tag = etag_header(&touchpoint.etag());
        let data = Body(Single::new(touchpoint.into()));
        Ok(match logged {
            Logged::Created => LogResponse::Created(data, location, tag),
            Logged::Existing => LogResponse::Existing(data, location, tag),
        })
    }

    /// Get a touchpoint
    #[oai(path = "/touchpoints/:id", method = "get", operation_id = "get_touchpoint")]
    async fn get_touchpoint(
        &self,
        #[oai(scope = "Scopes::TouchpointsRead")] auth: Auth<TouchpointsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The touchpoint id, `tp_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<Touchpoint>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "touchpoint", &tenant, &id, &held, async {
            let touchpoint = domain::get(crm, &tenant, &id).await?;
            let tag = touchpoint.etag();
            Ok(Tagged::new(touchpoint.into(), &tag))
        })
        .await
    }
}
