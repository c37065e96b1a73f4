//! `/api/v1/compliance/…`: compliance items and the status of each framework, and the
//! operators' `/api/v1/admin/compliance-items` that write the items.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object, OpenApi};

use super::body::JsonBody;
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::paging::Listing;
use super::security::{AdminWrite, Auth, ComplianceRead, Scopes};
use super::memo;
use super::wire::{given, patch, precondition, Body, Created, EnumText, Fetched, IdempotencyKey, ListHeader, NoneMatch, Required, Tagged};
use super::ApiTags;
use crate::domain::compliance::{self as domain, ItemChanges, ItemFilter};
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::{List, Single};
use crate::error::ApiError;
use crate::time::rfc3339;

/// A compliance framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ComplianceFramework {
    #[oai(rename = "SOC2")]
    Soc2,
    #[oai(rename = "HIPAA")]
    Hipaa,
    #[oai(rename = "PCI_DSS")]
    PciDss,
    #[oai(rename = "CIS")]
    Cis,
    #[oai(rename = "NIST_CSF")]
    NistCsf,
    #[oai(rename = "ISO27001")]
    Iso27001,
}

impl From<ComplianceFramework> for domain::Framework {
    fn from(f: ComplianceFramework) -> Self {
        match f {
            ComplianceFramework::Soc2 => domain::Framework::Soc2,
            ComplianceFramework::Hipaa => domain::Framework::Hipaa,
            ComplianceFramework::PciDss => domain::Framework::PciDss,
            ComplianceFramework::Cis => domain::Framework::Cis,
            ComplianceFramework::NistCsf => domain::Framework::NistCsf,
            ComplianceFramework::Iso27001 => domain::Framework::Iso27001,
        }
    }
}

/// Where an account stands on one control. `NOT_APPLICABLE` items do not count
/// towards the percentage compliant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComplianceStatus {
    Compliant,
    NonCompliant,
    InProgress,
    NotApplicable,
}

impl From<ComplianceStatus> for domain::ItemStatus {
    fn from(s: ComplianceStatus) -> Self {
        match s {
            ComplianceStatus::Compliant => domain::ItemStatus::Compliant,
            ComplianceStatus::NonCompliant => domain::ItemStatus::NonCompliant,
            ComplianceStatus::InProgress => domain::ItemStatus::InProgress,
            ComplianceStatus::NotApplicable => domain::ItemStatus::NotApplicable,
        }
    }
}

/// One control of one framework at one account.
#[derive(Debug, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceItem {
    /// `cmp_…`
    pub id: String,
    /// `acc_…`
    pub account_id: String,
    pub framework: EnumText<ComplianceFramework>,
    /// The framework's identifier of the control, e.g. `CC6.1`.
    pub control_id: String,
    pub title: String,
    pub status: EnumText<ComplianceStatus>,
    #[oai(nullable)]
    pub evidence_notes: Option<String>,
    /// `YYYY-MM-DD`.
    #[oai(nullable)]
    pub due_date: Option<String>,
    #[oai(nullable)]
    pub last_reviewed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for ComplianceItem {
    fn example() -> Self {
        ComplianceItem {
            id: "cmp_3Tq8wLm2xR5vK9bZ".into(),
            account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            framework: "HIPAA".into(),
            control_id: "164.312(a)(1)".into(),
            title: "Access control: unique user identification".into(),
            status: "NON_COMPLIANT".into(),
            evidence_notes: Some("Shared front-desk login found at two sites".into()),
            due_date: Some("2024-09-30".into()),
            last_reviewed_at: Some("2024-06-12T14:00:00.000Z".into()),
            created_at: "2024-06-01T09:00:00.000Z".into(),
            updated_at: "2024-06-12T14:00:00.000Z".into(),
        }
    }
}

impl From<domain::ComplianceItem> for ComplianceItem {
    fn from(i: domain::ComplianceItem) -> Self {
        ComplianceItem {
            id: i.id,
            account_id: i.account_id,
            framework: i.framework.as_str().into(),
            control_id: i.control_id,
            title: i.title,
            status: i.status.as_str().into(),
            evidence_notes: i.evidence_notes,
            due_date: i.due_date,
            last_reviewed_at: i.last_reviewed_at.map(rfc3339),
            created_at: rfc3339(i.created_at),
            updated_at: rfc3339(i.updated_at),
        }
    }
}

/// The items of one framework by status.
#[derive(Debug, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct FrameworkStatus {
    pub framework: EnumText<ComplianceFramework>,
    pub total: i64,
    pub compliant: i64,
    pub non_compliant: i64,
    pub in_progress: i64,
    pub not_applicable: i64,
    /// `compliant / (total − notApplicable) × 100`, one decimal; null when no item
    /// applies.
    #[oai(nullable)]
    pub percent_compliant: Option<f64>,
}

/// The status of every framework, over all accounts or one.
#[derive(Debug, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct FrameworkSummary {
    /// The account asked for; null for all accounts.
    #[oai(nullable)]
    pub account_id: Option<String>,
    /// Every framework, in a fixed order, including those without items.
    pub frameworks: Vec<FrameworkStatus>,
}

/// A new compliance item. `status` defaults to `IN_PROGRESS`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateComplianceItem {
    /// An account (`acc_…`) of the same organization and environment.
    pub account_id: Required<Text>,
    pub framework: Required<EnumText<ComplianceFramework>>,
    /// 1–50 characters; unique per account and framework.
    pub control_id: Required<Text<{ crate::domain::compliance::CONTROL_MAX }, { format::NON_BLANK }>>,
    /// 1–300 characters.
    pub title: Required<Text<{ crate::domain::compliance::TITLE_MAX }, { format::NON_BLANK }>>,
    pub status: Option<EnumText<ComplianceStatus>>,
    pub evidence_notes: Option<Text<{ crate::domain::compliance::NOTES_MAX }>>,
    /// `YYYY-MM-DD`.
    pub due_date: Option<Text<0, { format::DATE }>>,
    /// RFC 3339, not in the future.
    pub last_reviewed_at: Option<Text<0, { format::DATE_TIME }>>,
}

impl Example for CreateComplianceItem {
    fn example() -> Self {
        CreateComplianceItem {
            account_id: Required(Some("acc_5Hq2vWZk3nR8yT1bC".into())),
            framework: Required(Some("HIPAA".into())),
            control_id: Required(Some("164.312(a)(1)".into())),
            title: Required(Some("Access control: unique user identification".into())),
            status: Some("NON_COMPLIANT".into()),
            evidence_notes: None,
            due_date: Some("2024-09-30".into()),
            last_reviewed_at: None,
        }
    }
}

impl From<CreateComplianceItem> for ItemChanges {
    fn from(b: CreateComplianceItem) -> Self {
        ItemChanges {
            account_id: given(b.account_id.0, Into::into),
            framework: given(b.framework.0, EnumText::into_string),
            control_id: given(b.control_id.0, Into::into),
            title: given(b.title.0, Into::into),
            status: given(b.status, EnumText::into_string),
            evidence_notes: given(b.evidence_notes, Into::into),
            due_date: given(b.due_date, Into::into),
            last_reviewed_at: given(b.last_reviewed_at, Into::into),
        }
    }
}

/// Changes to a compliance item: absent fields stay, `null` clears an optional field.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, example)]
pub struct UpdateComplianceItem {
    pub account_id: MaybeUndefined<Text>,
    pub framework: MaybeUndefined<EnumText<ComplianceFramework>>,
    pub control_id: MaybeUndefined<Text<{ crate::domain::compliance::CONTROL_MAX }, { format::NON_BLANK }>>,
    pub title: MaybeUndefined<Text<{ crate::domain::compliance::TITLE_MAX }, { format::NON_BLANK }>>,
    pub status: MaybeUndefined<EnumText<ComplianceStatus>>,
    #[oai(nullable)]
    pub evidence_notes: MaybeUndefined<Text<{ crate::domain::compliance::NOTES_MAX }>>,
    #[oai(nullable)]
    pub due_date: MaybeUndefined<Text<0, { format::DATE }>>,
    #[oai(nullable)]
    pub last_reviewed_at: MaybeUndefined<Text<0, { format::DATE_TIME }>>,
}

impl Example for UpdateComplianceItem {
    fn example() -> Self {
        UpdateComplianceItem {
            account_id: MaybeUndefined::Undefined,
            framework: MaybeUndefined::Undefined,
            control_id: MaybeUndefined::Undefined,
            title: MaybeUndefined::Undefined,
            status: MaybeUndefined::Value("COMPLIANT".into()),
            evidence_notes: MaybeUndefined::Value("Named accounts since 2024-07-01".into()),
            due_date: MaybeUndefined::Undefined,
            last_reviewed_at: MaybeUndefined::Value("2024-07-02T10:00:00Z".into()),
        }
    }
}

impl From<UpdateComplianceItem> for ItemChanges {
    fn from(b: UpdateComplianceItem) -> Self {
        ItemChanges {
            account_id: patch(b.account_id, Into::into),
            framework: patch(b.framework, EnumText::into_string),
            control_id: patch(b.control_id, Into::into),
            title: patch(b.title, Into::into),
            status: patch(b.status, EnumText::into_string),
            evidence_notes: patch(b.evidence_notes, Into::into),
            due_date: patch(b.due_date, Into::into),
            last_reviewed_at: patch(b.last_reviewed_at, Into::into),
        }
    }
}

fn tagged(item: domain::ComplianceItem) -> Tagged<ComplianceItem> {
    let tag = item.etag();
    Tagged::new(item.into(), &tag)
}

pub struct ComplianceApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Compliance")]
impl ComplianceApi {
    /// List compliance items
    ///
    /// Oldest first, a page at a time; filter by `accountId`, `framework` and `status`,
    /// and by `updatedSince` for incremental sync.
    #[oai(path = "/compliance/items", method = "get", operation_id = "list_compliance_items")]
    #[allow(clippy::too_many_arguments)]
    async fn list_compliance_items(
        &self,
        #[oai(scope = "Scopes::ComplianceRead")] auth: Auth<ComplianceRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only items of this account.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
        /// Only items of this framework.
        framework: Query<Option<ComplianceFramework>>,
        /// Only items in this status.
        status: Query<Option<ComplianceStatus>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only items changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<ComplianceItem>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "compliance_items", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = ItemFilter { account_id: account_id.0, framework: framework.0.map(Into::into), status: status.0.map(Into::into) };
        let items = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(items, ComplianceItem::from)))
    }

    /// Get a compliance item
    #[oai(path = "/compliance/items/:id", method = "get", operation_id = "get_compliance_item")]
    async fn get_compliance_item(
        &self,
        #[oai(scope = "Scopes::ComplianceRead")] auth: Auth<ComplianceRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The item id, `cmp_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<ComplianceItem>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "compliance item", &tenant, &id, &held, async { Ok(tagged(domain::get(crm, &tenant, &id).await?)) }).await
    }

    /// Framework status
    ///
    /// For every framework, how many items are in each status and the percentage
    /// compliant (`NOT_APPLICABLE` items left out), over all accounts or one
    /// (`accountId`; 404 if there is no such account).
    #[oai(path = "/compliance/frameworks", method = "get", operation_id = "get_compliance_frameworks")]
    async fn get_compliance_frameworks(
        &self,
        #[oai(scope = "Scopes::ComplianceRead")] auth: Auth<ComplianceRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only this account's items.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
    ) -> Result<Body<Single<FrameworkSummary>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let statuses = domain::frameworks(crm, &tenant, account_id.0.as_deref()).await?;
        let frameworks = statuses
            .into_iter()
            .map(|(framework, s)| FrameworkStatus {
                framework: framework.as_str().into(),
                total: s.total(),
                compliant: s.compliant,
                non_compliant: s.non_compliant,
                in_progress: s.in_progress,
                not_applicable: s.not_applicable,
                percent_compliant: s.percent_compliant(),
            })
            .collect();
        Ok(Body(Single::new(FrameworkSummary { account_id: account_id.0, frameworks })))
    }

    /// Create a compliance item
    ///
    /// For operators: one control of one framework at one account.
    #[oai(path = "/admin/compliance-items", method = "post", operation_id = "create_compliance_item")]
    async fn create_compliance_item(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateComplianceItem>,
    ) -> Result<Created<ComplianceItem>, ApiError> {
        let item = domain::create(crm, &Tenant::from(&auth.principal), body.0.into()).await?;
        let (location, tag) = (format!("/api/v1/compliance/items/{}", item.id), item.etag());
        Ok(Created::new(item.into(), location, &tag))
    }

    /// Update a compliance item
    ///
    /// For operators: a partial update. With `If-Match`, only if the item is still at
    /// that version (412 otherwise).
    #[oai(path = "/admin/compliance-items/:id", method = "patch", operation_id = "update_compliance_item")]
    async fn update_compliance_item(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The item id, `cmp_…`.
        id: Path<String>,
        /// An `ETag` of the item: update only that version.
        #[oai(name = "If-Match")]
        if_match: ListHeader,
        body: JsonBody<UpdateComplianceItem>,
    ) -> Result<Tagged<ComplianceItem>, ApiError> {
        let precondition = precondition(if_match.0.as_deref())?;
        let item = domain::update(crm, &Tenant::from(&auth.principal), &id, body.0.into(), &precondition).await?;
        Ok(tagged(item))
    }
}
