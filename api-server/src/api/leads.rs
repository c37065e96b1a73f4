//! `/api/v1/leads`: prospective clients with their ICP score.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object, OpenApi};

use super::body::JsonBody;
use super::ranged::Int;
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::paging::Listing;
use super::security::{Auth, LeadsRead, LeadsWrite, Scopes};
use super::memo;
use super::wire::{given, patch, precondition, Body, Created, EnumText, Fetched, IdempotencyKey, ListHeader, NoneMatch, Required, Tagged};
use super::ApiTags;
use crate::domain::icp::IcpBreakdown;
use crate::domain::leads::{self as domain, LeadChanges, LeadFilter};
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::List;
use crate::error::ApiError;
use crate::time::rfc3339;

/// Where a lead stands in qualification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LeadStatus {
    New,
    Contacted,
    Qualified,
    Disqualified,
    Converted,
}

impl From<LeadStatus> for domain::Status {
    fn from(s: LeadStatus) -> Self {
        match s {
            LeadStatus::New => domain::Status::New,
            LeadStatus::Contacted => domain::Status::Contacted,
            LeadStatus::Qualified => domain::Status::Qualified,
            LeadStatus::Disqualified => domain::Status::Disqualified,
            LeadStatus::Converted => domain::Status::Converted,
        }
    }
}

/// The lead's industry; regulated industries score highest (see `icpBreakdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LeadIndustry {
    Healthcare,
    Legal,
    FinancialServices,
    Accounting,
    Manufacturing,
    Construction,
    ProfessionalServices,
    RealEstate,
    Education,
    Nonprofit,
    Government,
    Retail,
    Hospitality,
    Technology,
    Other,
}

/// How the lead reached the MSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LeadSource {
    Referral,
    Partner,
    Inbound,
    Event,
    Outbound,
    Other,
}

/// The points of each factor of the ICP score; they add up to `icpScore`.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct IcpScoreBreakdown {
    /// 0–30: regulated industries 30, then 20, 10, 5; none 0.
    pub industry: i64,
    /// 0–25 by employees: 50–249 25; 10–49 or 250–999 15; 1–9 or 1000+ 5; none 0.
    pub company_size: i64,
    /// 0–25 by endpoints/seats: 50–249 25; 250+ 20; 10–49 15; 1–9 5; none 0.
    pub seat_estimate: i64,
    /// 0–15: REFERRAL 15, PARTNER 12, INBOUND 10, EVENT 8, OUTBOUND 5, OTHER 3; none 0.
    pub source: i64,
    /// 0–5: a contact e-mail 3, a company domain 2.
    pub contact: i64,
}

impl From<IcpBreakdown> for IcpScoreBreakdown {
    fn from(b: IcpBreakdown) -> Self {
        IcpScoreBreakdown {
            industry: b.industry,
            company_size: b.company_size,
            seat_estimate: b.seat_estimate,
            source: b.source,
            contact: b.contact,
        }
    }
}

/// A prospective client.
#[derive(Debug, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Lead {
    /// `lead_…`
    pub id: String,
    pub company_name: String,
    /// Lower-case DNS name.
    #[oai(nullable)]
    pub domain: Option<String>,
    #[oai(nullable)]
    pub industry: Option<EnumText<LeadIndustry>>,
    #[oai(nullable)]
    pub employee_count: Option<i64>,
    /// Endpoints or seats the MSP expects to manage.
    #[oai(nullable)]
    pub seat_estimate: Option<i64>,
    #[oai(nullable)]
    pub source: Option<EnumText<LeadSource>>,
    pub status: EnumText<LeadStatus>,
    #[oai(nullable)]
    pub contact_name: Option<String>,
    #[oai(nullable)]
    pub contact_email: Option<String>,
    #[oai(nullable)]
    pub notes: Option<String>,
    /// 0–100, computed by the server from the fields above on every change.
    pub icp_score: i64,
    /// How `icpScore` was reached.
    pub icp_breakdown: IcpScoreBreakdown,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for Lead {
    fn example() -> Self {
        Lead {
            id: "lead_8Kd2pQm5xZr7vB1cN".into(),
            company_name: "Northwind Dental Group".into(),
            domain: Some("northwinddental.com".into()),
            industry: Some("HEALTHCARE".into()),
            employee_count: Some(85),
            seat_estimate: Some(60),
            source: Some("REFERRAL".into()),
            status: "QUALIFIED".into(),
            contact_name: Some("Dana Whitfield".into()),
            contact_email: Some("dana@northwinddental.com".into()),
            notes: None,
            icp_score: 100,
            icp_breakdown: IcpScoreBreakdown { industry: 30, company_size: 25, seat_estimate: 25, source: 15, contact: 5 },
            created_at: "2024-06-03T10:00:00.000Z".into(),
            updated_at: "2024-06-05T08:12:30.000Z".into(),
        }
    }
}

impl From<domain::Lead> for Lead {
    fn from(l: domain::Lead) -> Self {
        let breakdown = l.icp().into();
        Lead {
            id: l.id,
            company_name: l.company_name,
            domain: l.domain,
            industry: l.industry.map(|i| i.as_str().into()),
            employee_count: l.employee_count,
            seat_estimate: l.seat_estimate,
            source: l.source.map(|s| s.as_str().into()),
            status: l.status.as_str().into(),
            contact_name: l.contact_name,
            contact_email: l.contact_email,
            notes: l.notes,
            icp_score: l.icp_score,
            icp_breakdown: breakdown,
            created_at: rfc3339(l.created_at),
            updated_at: rfc3339(l.updated_at),
        }
    }
}

/// Employees or seats, as the domain bounds them.
type Count = Int<0, { crate::domain::leads::COUNT_MAX }>;

/// A new lead. `status` defaults to `NEW`; the ICP score is computed, never sent.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateLead {
    /// 1–200 characters.
    pub company_name: Required<Text<{ crate::domain::leads::NAME_MAX }, { format::NON_BLANK }>>,
    /// A domain name such as `contoso.com`.
    pub domain: Option<Text<0, { format::DOMAIN }>>,
    pub industry: Option<EnumText<LeadIndustry>>,
    pub employee_count: Option<Count>,
    /// Endpoints or seats.
    pub seat_estimate: Option<Count>,
    pub source: Option<EnumText<LeadSource>>,
    pub status: Option<EnumText<LeadStatus>>,
    pub contact_name: Option<Text<{ crate::domain::leads::NAME_MAX }>>,
    /// An empty string clears it, as `null` does.
    pub contact_email: Option<Text<0, { format::EMAIL }>>,
    pub notes: Option<Text<{ crate::domain::leads::NOTES_MAX }>>,
}

impl Example for CreateLead {
    fn example() -> Self {
        CreateLead {
            company_name: Required(Some("Northwind Dental Group".into())),
            domain: Some("northwinddental.com".into()),
            industry: Some("HEALTHCARE".into()),
            employee_count: Some(Int(85)),
            seat_estimate: Some(Int(60)),
            source: Some("REFERRAL".into()),
            status: None,
            contact_name: Some("Dana Whitfield".into()),
            contact_email: Some("dana@northwinddental.com".into()),
            notes: None,
        }
    }
}

impl From<CreateLead> for LeadChanges {
    fn from(b: CreateLead) -> Self {
        LeadChanges {
            company_name: given(b.company_name.0, Into::into),
            domain: given(b.domain, Into::into),
            industry: given(b.industry, EnumText::into_string),
            employee_count: given(b.employee_count, Into::into),
            seat_estimate: given(b.seat_estimate, Into::into),
            source: given(b.source, EnumText::into_string),
            status: given(b.status, EnumText::into_string),
            contact_name: given(b.contact_name, Into::into),
            contact_email: given(b.contact_email, Into::into),
            notes: given(b.notes, Into::into),
        }
    }
}

/// Changes to a lead: absent fields stay, `null` clears an optional field. The ICP
/// score follows.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, example)]
pub struct UpdateLead {
    pub company_name: MaybeUndefined<Text<{ crate::domain::leads::NAME_MAX }, { format::NON_BLANK }>>,
    #[oai(nullable)]
    pub domain: MaybeUndefined<Text<0, { format::DOMAIN }>>,
    #[oai(nullable)]
    pub industry: MaybeUndefined<EnumText<LeadIndustry>>,
    #[oai(nullable)]
    pub employee_count: MaybeUndefined<Count>,
    #[oai(nullable)]
    pub seat_estimate: MaybeUndefined<Count>,
    #[oai(nullable)]
    pub source: MaybeUndefined<EnumText<LeadSource>>,
    pub status: MaybeUndefined<EnumText<LeadStatus>>,
    #[oai(nullable)]
    pub contact_name: MaybeUndefined<Text<{ crate::domain::leads::NAME_MAX }>>,
    /// An empty string clears it, as `null` does.
    #[oai(nullable)]
    pub contact_email: MaybeUndefined<Text<0, { format::EMAIL }>>,
    #[oai(nullable)]
    pub notes: MaybeUndefined<Text<{ crate::domain::leads::NOTES_MAX }>>,
}

impl Example for UpdateLead {
    fn example() -> Self {
        UpdateLead {
            company_name: MaybeUndefined::Undefined,
            domain: MaybeUndefined::Undefined,
            industry: MaybeUndefined::Undefined,
            employee_count: MaybeUndefined::Undefined,
            seat_estimate: MaybeUndefined::Value(Int(120)),
            source: MaybeUndefined::Undefined,
            status: MaybeUndefined::Value("CONTACTED".into()),
            contact_name: MaybeUndefined::Undefined,
            contact_email: MaybeUndefined::Undefined,
            notes: MaybeUndefined::Undefined,
        }
    }
}

impl From<UpdateLead> for LeadChanges {
    fn from(b: UpdateLead) -> Self {
        LeadChanges {
            company_name: patch(b.company_name, Into::into),
            domain: patch(b.domain, Into::into),
            industry: patch(b.industry, EnumText::into_string),
            employee_count: patch(b.employee_count, Into::into),
            seat_estimate: patch(b.seat_estimate, Into::into),
            source: patch(b.source, EnumText::into_string),
            status: patch(b.status, EnumText::into_string),
            contact_name: patch(b.contact_name, Into::into),
            contact_email: patch(b.contact_email, Into::into),
            notes: patch(b.notes, Into::into),
        }
    }
}

fn tagged(lead: domain::Lead) -> Tagged<Lead> {
    let tag = lead.etag();
    Tagged::new(lead.into(), &tag)
}

pub struct LeadsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Leads")]
impl LeadsApi {
    /// List leads
    ///
    /// Oldest first, a page at a time, each with its ICP score and breakdown; filter by
    /// `status`, by `minScore`, and by `updatedSince` for incremental sync.
    #[oai(path = "/leads", method = "get", operation_id = "list_leads")]
    #[allow(clippy::too_many_arguments)]
    async fn list_leads(
        &self,
        #[oai(scope = "Scopes::LeadsRead")] auth: Auth<LeadsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only leads in this status.
        status: Query<Option<LeadStatus>>,
        /// Only leads whose ICP score is at least this, 0 to 100.
        #[oai(name = "minScore")]
        min_score: Query<Option<i64>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only leads changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<Lead>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "leads", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = LeadFilter::new(status.0.map(Into::into), min_score.0)?;
        let leads = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(leads, Lead::from)))
    }

    /// Create a lead
    ///
    /// The ICP score is computed from the lead's fields.
    #[oai(path = "/leads", method = "post", operation_id = "create_lead")]
    async fn create_lead(
        &self,
        #[oai(scope = "Scopes::LeadsWrite")] auth: Auth<LeadsWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateLead>,
    ) -> Result<Created<Lead>, ApiError> {
        let lead = domain::create(crm, &Tenant::from(&auth.principal), body.0.into()).await?;
        let (location, tag) = (format!("/api/v1/leads/{}", lead.id), lead.etag());
        Ok(Created::new(lead.into(), location, &tag))
    }

    /// Get a lead
    ///
    /// With its ICP score and how it was reached.
    #[oai(path = "/leads/:id", method = "get", operation_id = "get_lead")]
    async fn get_lead(
        &self,
        #[oai(scope = "Scopes::LeadsRead")] auth: Auth<LeadsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The lead id, `lead_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<Lead>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "lead", &tenant, &id, &held, async { Ok(tagged(domain::get(crm, &tenant, &id).await?)) }).await
    }

    /// Update a lead
    ///
    /// A partial update; the ICP score is recomputed. With `If-Match`, only if the lead
    /// is still at that version (412 otherwise).
    #[oai(path = "/leads/:id", method = "patch", operation_id = "update_lead")]
    async fn update_lead(
        &self,
        #[oai(scope = "Scopes::LeadsWrite")] auth: Auth<LeadsWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The lead id, `lead_…`.
        id: Path<String>,
        /// An `ETag` of the lead: update only that version.
        #[oai(name = "If-Match")]
        if_match: ListHeader,
        body: JsonBody<UpdateLead>,
    ) -> Result<Tagged<Lead>, ApiError> {
        let precondition = precondition(if_match.0.as_deref())?;
        let lead = domain::update(crm, &Tenant::from(&auth.principal), &id, body.0.into(), &precondition).await?;
        Ok(tagged(lead))
    }
}
