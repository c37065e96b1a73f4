//! `/api/v1/deals`: the sales pipeline, with stage history and won/lost outcomes.

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
use super::security::{Auth, DealsRead, DealsWrite, Scopes};
use super::memo;
use super::wire::{given, patch, precondition, to_wire, Body, Created, EnumText, Fetched, IdempotencyKey, ListHeader, NoneMatch, Required, Tagged};
use super::ApiTags;
use crate::domain::deals::{self as domain, DealChanges, DealDetail, DealFilter};
use crate::domain::events::Wire;
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::List;
use crate::error::ApiError;
use crate::time::rfc3339;

/// A pipeline stage. `WON` and `LOST` close the deal; moving out of them reopens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    Discovery,
    Assessment,
    Proposal,
    Negotiation,
    Won,
    Lost,
}

impl From<domain::Stage> for Stage {
    fn from(s: domain::Stage) -> Self {
        match s {
            domain::Stage::Discovery => Stage::Discovery,
            domain::Stage::Assessment => Stage::Assessment,
            domain::Stage::Proposal => Stage::Proposal,
            domain::Stage::Negotiation => Stage::Negotiation,
            domain::Stage::Won => Stage::Won,
            domain::Stage::Lost => Stage::Lost,
        }
    }
}

impl From<Stage> for domain::Stage {
    fn from(s: Stage) -> Self {
        match s {
            Stage::Discovery => domain::Stage::Discovery,
            Stage::Assessment => domain::Stage::Assessment,
            Stage::Proposal => domain::Stage::Proposal,
            Stage::Negotiation => domain::Stage::Negotiation,
            Stage::Won => domain::Stage::Won,
            Stage::Lost => domain::Stage::Lost,
        }
    }
}

/// One move of a deal between stages.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct StageChange {
    /// Absent for the stage the deal was created in.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_stage: Option<Stage>,
    pub to_stage: Stage,
    /// The outcome reason, when the change closed the deal.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The API key (`key_…`) or OAuth client that made the change.
    pub changed_by: String,
    pub changed_at: String,
}

/// A deal with one account.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Deal {
    /// `deal_…`
    pub id: String,
    /// `acc_…`
    pub account_id: String,
    pub name: String,
    pub stage: Stage,
    /// In the currency's minor unit (cents): 1250000 is 12,500.00.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// `YYYY-MM-DD`.
    #[oai(nullable)]
    pub expected_close_date: Option<String>,
    /// When the deal was won or lost; null while open.
    #[oai(nullable)]
    pub closed_at: Option<String>,
    /// Why the deal was won or lost (required for `LOST`); null while open.
    #[oai(nullable)]
    pub outcome_reason: Option<String>,
    #[oai(nullable)]
    pub notes: Option<String>,
    /// Every stage change, oldest first. On single deals only, not in lists.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_history: Option<Vec<StageChange>>,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for Deal {
    fn example() -> Self {
        Deal {
            id: "deal_2Rk9sLq4vXw7nB3cD".into(),
            account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            name: "Managed security upgrade".into(),
            stage: Stage::Lost,
            amount: 1_250_000,
            currency: "USD".into(),
            expected_close_date: Some("2024-07-31".into()),
            closed_at: Some("2024-07-02T16:20:45Z".into()),
            outcome_reason: Some("Chose a cheaper provider".into()),
            notes: None,
            stage_history: Some(vec![
                StageChange {
                    from_stage: None,
                    to_stage: Stage::Discovery,
                    reason: None,
                    changed_by: "key_7Yc2mQ9vLx3pR8sT".into(),
                    changed_at: "2024-06-03T10:00:00Z".into(),
                },
                StageChange {
                    from_stage: Some(Stage::Discovery),
                    to_stage: Stage::Lost,
                    reason: Some("Chose a cheaper provider".into()),
                    changed_by: "key_7Yc2mQ9vLx3pR8sT".into(),
                    changed_at: "2024-07-02T16:20:45Z".into(),
                },
            ]),
            created_at: "2024-06-03T10:00:00Z".into(),
            updated_at: "2024-07-02T16:20:45Z".into(),
        }
    }
}

impl From<domain::Deal> for Deal {
    fn from(d: domain::Deal) -> Self {
        Deal {
            id: d.id,
            account_id: d.account_id,
            name: d.name,
            stage: d.stage.into(),
            amount: d.amount,
            currency: d.currency,
            expected_close_date: d.expected_close_date,
            closed_at: d.closed_at.map(rfc3339),
            outcome_reason: d.outcome_reason,
            notes: d.notes,
            stage_history: None,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

impl Wire for DealDetail {
    fn wire(&self) -> serde_json::Value {
        to_wire(Deal::from(self.clone()))
    }
}

impl From<DealDetail> for Deal {
    fn from(detail: DealDetail) -> Self {
        let history = detail
            .history
            .into_iter()
            .map(|c| StageChange {
                from_stage: c.from.map(Into::into),
                to_stage: c.to.into(),
                reason: c.reason,
                changed_by: c.changed_by,
                changed_at: rfc3339(c.changed_at),
            })
            .collect();
        Deal { stage_history: Some(history), ..Deal::from(detail.deal) }
    }
}

/// A deal's amount, as the domain bounds it.
type Amount = Int<0, { crate::domain::deals::AMOUNT_MAX }>;

/// A new deal. `stage` defaults to `DISCOVERY`, `currency` to `USD`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateDeal {
    /// An account (`acc_…`) of the same organization and environment.
    pub account_id: Required<Text>,
    /// 1–200 characters.
    pub name: Required<Text<{ crate::domain::deals::NAME_MAX }, { format::NON_BLANK }>>,
    pub stage: Option<EnumText<Stage>>,
    /// In the currency's minor unit (cents).
    pub amount: Required<Amount>,
    /// ISO 4217 code.
    pub currency: Option<Text>,
    /// `YYYY-MM-DD`.
    pub expected_close_date: Option<Text<0, { format::DATE }>>,
    /// Required when `stage` is `LOST`; allowed only for `WON` and `LOST`.
    pub outcome_reason: Option<Text<{ crate::domain::deals::REASON_MAX }>>,
    pub notes: Option<Text<{ crate::domain::deals::NOTES_MAX }>>,
}

impl Example for CreateDeal {
    fn example() -> Self {
        CreateDeal {
            account_id: Required(Some("acc_5Hq2vWZk3nR8yT1bC".into())),
            name: Required(Some("Managed security upgrade".into())),
            stage: None,
            amount: Required(Some(Int(1_250_000))),
            currency: Some("USD".into()),
            expected_close_date: Some("2024-07-31".into()),
            outcome_reason: None,
            notes: None,
        }
    }
}

impl From<CreateDeal> for DealChanges {
    fn from(b: CreateDeal) -> Self {
        DealChanges {
            account_id: given(b.account_id.0, Into::into),
            name: given(b.name.0, Into::into),
            stage: given(b.stage, EnumText::into_string),
            amount: given(b.amount.0, Into::into),
            currency: given(b.currency, Into::into),
            expected_close_date: given(b.expected_close_date, Into::into),
            outcome_reason: given(b.outcome_reason, Into::into),
            notes: given(b.notes, Into::into),
        }
    }
}

/// Changes to a deal: absent fields stay, `null` clears an optional field. Moving to
/// `WON` or `LOST` closes the deal (`LOST` needs `outcomeReason`).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, example)]
pub struct UpdateDeal {
    pub account_id: MaybeUndefined<Text>,
    pub name: MaybeUndefined<Text<{ crate::domain::deals::NAME_MAX }, { format::NON_BLANK }>>,
    pub stage: MaybeUndefined<EnumText<Stage>>,
    pub amount: MaybeUndefined<Amount>,
    pub currency: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub expected_close_date: MaybeUndefined<Text<0, { format::DATE }>>,
    #[oai(nullable)]
    pub outcome_reason: MaybeUndefined<Text<{ crate::domain::deals::REASON_MAX }>>,
    #[oai(nullable)]
    pub notes: MaybeUndefined<Text<{ crate::domain::deals::NOTES_MAX }>>,
}

impl Example for UpdateDeal {
    fn example() -> Self {
        UpdateDeal {
            account_id: MaybeUndefined::Undefined,
            name: MaybeUndefined::Undefined,
            stage: MaybeUndefined::Value("LOST".into()),
            amount: MaybeUndefined::Undefined,
            currency: MaybeUndefined::Undefined,
            expected_close_date: MaybeUndefined::Undefined,
            outcome_reason: MaybeUndefined::Value("Chose a cheaper provider".into()),
            notes: MaybeUndefined::Undefined,
        }
    }
}

impl From<UpdateDeal> for DealChanges {
    fn from(b: UpdateDeal) -> Self {
        DealChanges {
            account_id: patch(b.account_id, Into::into),
            name: patch(b.name, Into::into),
            stage: patch(b.stage, EnumText::into_string),
            amount: patch(b.amount, Into::into),
            currency: patch(b.currency, Into::into),
            expected_close_date: patch(b.expected_close_date, Into::into),
            outcome_reason: patch(b.outcome_reason, Into::into),
            notes: patch(b.notes, Into::into),
        }
    }
}

fn tagged(detail: DealDetail) -> Tagged<Deal> {
    let tag = detail.deal.etag();
    Tagged::new(detail.into(), &tag)
}

pub struct DealsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Deals")]
impl DealsApi {
    /// List deals
    ///
    /// Oldest first, a page at a time, without their stage history; filter by `stage`
    /// and `accountId`, and by `updatedSince` for incremental sync.
    #[oai(path = "/deals", method = "get", operation_id = "list_deals")]
    #[allow(clippy::too_many_arguments)]
    async fn list_deals(
        &self,
        #[oai(scope = "Scopes::DealsRead")] auth: Auth<DealsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only deals in this stage.
        stage: Query<Option<Stage>>,
        /// Only deals of this account.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only deals changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<Deal>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "deals", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = DealFilter { stage: stage.0.map(Into::into), account_id: account_id.0 };
        let deals = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(deals, Deal::from)))
    }

    /// Create a deal
    #[oai(path = "/deals", method = "post", operation_id = "create_deal")]
    async fn create_deal(
        &self,
        #[oai(scope = "Scopes::DealsWrite")] auth: Auth<DealsWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateDeal>,
    ) -> Result<Created<Deal>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let detail = domain::create(crm, &tenant, body.0.into(), &auth.credential_id).await?;
        let (location, tag) = (format!("/api/v1/deals/{}", detail.deal.id), detail.deal.etag());
        Ok(Created::new(detail.into(), location, &tag))
    }

    /// Get a deal
    ///
    /// With its stage history.
    #[oai(path = "/deals/:id", method = "get", operation_id = "get_deal")]
    async fn get_deal(
        &self,
        #[oai(scope = "Scopes::DealsRead")] auth: Auth<DealsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The deal id, `deal_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<Deal>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "deal", &tenant, &id, &held, async { Ok(tagged(domain::get(crm, &tenant, &id).await?)) }).await
    }

    /// Update a deal
    ///
    /// A partial update, including stage changes and the won/lost outcome: `stage`
    /// `WON` or `LOST` closes the deal, `LOST` with an `outcomeReason`. Every stage
    /// change is added to the history. With `If-Match`, only if the deal is still at
    /// that version (412 otherwise).
    #[oai(path = "/deals/:id", method = "patch", operation_id = "update_deal")]
    async fn update_deal(
        &self,
        #[oai(scope = "Scopes::DealsWrite")] auth: Auth<DealsWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The deal id, `deal_…`.
        id: Path<String>,
        /// An `ETag` of the deal: update only that version.
        #[oai(name = "If-Match")]
        if_match: ListHeader,
        body: JsonBody<UpdateDeal>,
    ) -> Result<Tagged<Deal>, ApiError> {
        let precondition = precondition(if_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        let detail = domain::update(crm, &tenant, &id, body.0.into(), &precondition, &auth.credential_id).await?;
        Ok(tagged(detail))
    }
}
