//! `/api/v1/reconciliation`: seat and device counts from other tools compared with what
//! the contracts say.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use super::body::JsonBody;
use super::ranged::{Int, Items};
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::contracts::ServiceCategory;
use super::paging::Listing;
use super::security::{Auth, ReconciliationRead, ReconciliationWrite, Scopes};
use super::wire::{to_wire, Body, Created, EnumText, IdempotencyKey, Required};
use super::ApiTags;
use crate::domain::etag;
use crate::domain::events::Wire;
use crate::domain::reconciliation::{self as domain, CountInput, NewReport, ReconciliationFilter};
use crate::domain::{Crm, Tenant};
use crate::envelope::{List, Single};
use crate::error::ApiError;
use crate::time::rfc3339;

/// One service category of a report.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationLine {
    pub category: ServiceCategory,
    /// The quantities of this category's lines in the account's `ACTIVE` contracts.
    pub contracted: i64,
    pub reported: i64,
    /// `reported − contracted`: positive when more is in use than is contracted.
    pub variance: i64,
    /// `variance / contracted × 100`, to two decimals; null when nothing is contracted.
    #[oai(nullable)]
    pub variance_percent: Option<f64>,
    /// Whether `variance` is beyond the tolerance (any difference: 0 units).
    pub has_variance: bool,
}

/// A submitted count report and its comparison with the contracts, as of submission.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    /// `rec_…`
    pub id: String,
    /// `acc_…`
    pub account_id: String,
    /// The reporting tool, e.g. `NinjaOne` or `ConnectWise`.
    pub source: String,
    /// When the tool counted.
    pub reported_at: String,
    /// One per reported category.
    pub lines: Vec<ReconciliationLine>,
    /// Whether any line has a variance.
    pub has_variance: bool,
    /// The `ACTIVE` contracts compared against (`ctr_…`).
    pub contract_ids: Vec<String>,
    /// The API key or OAuth client that submitted the report.
    pub submitted_by: String,
    pub created_at: String,
    /// Records never change: equal to `createdAt`.
    pub updated_at: String,
}

impl Example for Reconciliation {
    fn example() -> Self {
        Reconciliation {
            id: "rec_6Tg2kLq8vNx3pW4sD".into(),
            account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            source: "NinjaOne".into(),
            reported_at: "2024-06-01T06:00:00.000Z".into(),
            lines: vec![ReconciliationLine {
                category: ServiceCategory::ManagedServices,
                contracted: 25,
                reported: 28,
                variance: 3,
                variance_percent: Some(12.0),
                has_variance: true,
            }],
            has_variance: true,
            contract_ids: vec!["ctr_3Fq8vLk2nW9xR4tYb".into()],
            submitted_by: "key_7Yc2mQ9vLx3pR8sT".into(),
            created_at: "2024-06-01T06:00:02.118Z".into(),
            updated_at: "2024-06-01T06:00:02.118Z".into(),
        }
    }
}

impl From<domain::Reconciliation> for Reconciliation {
    fn from(r: domain::Reconciliation) -> Self {
        Reconciliation {
            lines: r
                .lines
                .iter()
                .map(|l| ReconciliationLine {
                    category: l.category.into(),
                    contracted: l.contracted,
                    reported: l.reported,
                    variance: l.variance(),
                    variance_percent: l.variance_percent(),
                    has_variance: l.has_variance(),
                })
                .collect(),
            id: r.id,
            account_id: r.account_id,
            source: r.source,
            reported_at: rfc3339(r.reported_at),
            has_variance: r.has_variance,
            contract_ids: r.contract_ids,
            submitted_by: r.submitted_by,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.created_at),
        }
    }
}

impl Wire for domain::Reconciliation {
    fn wire(&self) -> Value {
        to_wire(Reconciliation::from(self.clone()))
    }
}

/// A count of one service category.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportedCount {
    /// Any category but `PROJECT`; each at most once per report.
    pub category: Required<EnumText<ServiceCategory>>,
    /// Seats or devices counted.
    pub quantity: Required<Int<0, { crate::domain::reconciliation::REPORTED_MAX }>>,
}

/// A count report from another tool.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct SubmitReport {
    /// An account (`acc_…`) of the same organization and environment.
    pub account_id: Required<Text>,
    /// The reporting tool, 1–100 characters.
    pub source: Required<Text<{ crate::domain::reconciliation::SOURCE_MAX }, { format::NON_BLANK }>>,
    /// RFC 3339, not in the future; defaults to now.
    pub reported_at: Option<Text<0, { format::DATE_TIME }>>,
    /// At least one; a category at most once.
    pub counts: Required<Items<ReportedCount, 1, { crate::domain::service_lines::ServiceCategory::RECURRING }>>,
}

impl Example for SubmitReport {
    fn example() -> Self {
        SubmitReport {
            account_id: Required(Some("acc_5Hq2vWZk3nR8yT1bC".into())),
            source: Required(Some("NinjaOne".into())),
            reported_at: Some("2024-06-01T06:00:00Z".into()),
            counts: Required(Some(Items(vec![ReportedCount {
                category: Required(Some("MANAGED_SERVICES".into())),
                quantity: Required(Some(Int(28))),
            }]))),
        }
    }
}

impl From<SubmitReport> for NewReport {
    fn from(b: SubmitReport) -> Self {
        NewReport {
            account_id: b.account_id.0.map(String::from),
            source: b.source.0.map(String::from),
            reported_at: b.reported_at.map(String::from),
            counts: b.counts.0.map(|counts| {
                counts
                    .into_iter()
                    .map(|c| CountInput { category: c.category.0.map(EnumText::into_string), quantity: c.quantity.0.map(i64::from) })
                    .collect()
            }),
        }
    }
}

pub struct ReconciliationApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Reconciliation")]
impl ReconciliationApi {
    /// List reconciliation records
    ///
    /// Oldest first, a page at a time; filter by `accountId` and `hasVariance`, and by
    /// `updatedSince`. A report: rate-limited as such (10 an hour per credential).
    #[oai(path = "/reconciliation", method = "get", operation_id = "list_reconciliations")]
    #[allow(clippy::too_many_arguments)]
    async fn list_reconciliations(
        &self,
        #[oai(scope = "Scopes::ReconciliationRead")] auth: Auth<ReconciliationRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only records of this account.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
        /// Only records with (true) or without (false) a variance.
        #[oai(name = "hasVariance")]
        has_variance: Query<Option<bool>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only records created at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<Reconciliation>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "reconciliation", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = ReconciliationFilter { account_id: account_id.0, has_variance: has_variance.0 };
        let records = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(records, Reconciliation::from)))
    }

    /// Submit a count report
    ///
    /// Compares the seats or devices a tool counted for an account, per service
    /// category, with the quantities of the account's `ACTIVE` contracts, and stores the
    /// result. Any difference is a variance (tolerance: 0 units) and emits
    /// `reconciliation.variance_detected`. Categories not counted are not compared.
    #[oai(path = "/reconciliation", method = "post", operation_id = "submit_reconciliation")]
    async fn submit_reconciliation(
        &self,
        #[oai(scope = "Scopes::ReconciliationWrite")] auth: Auth<ReconciliationWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<SubmitReport>,
    ) -> Result<Created<Reconciliation>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let record = domain::submit(crm, &tenant, body.0.into(), &auth.credential_id).await?;
        let (location, tag) = (format!("/api/v1/reconciliation/{}", record.id), etag(&record.id, 1));
        Ok(Created::new(record.into(), location, &tag))
    }

    /// Get a reconciliation record
    #[oai(path = "/reconciliation/:id", method = "get", operation_id = "get_reconciliation")]
    async fn get_reconciliation(
        &self,
        #[oai(scope = "Scopes::ReconciliationRead")] auth: Auth<ReconciliationRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The record id, `rec_…`.
        id: Path<String>,
    ) -> Result<Body<Single<Reconciliation>>, ApiError> {
        let record = domain::get(crm, &Tenant::from(&auth.principal), &id).await?;
        Ok(Body(Single::new(record.into())))
    }
}
