//! `/api/v1/admin/contracts`: operators create contracts and record amendments
//! (`admin:write`). The CLI's `contract create` reads the same body.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Object, OpenApi};

use super::body::JsonBody;
use super::ranged::{Int, Items};
use super::text::{format, Text};
use super::contracts::{BillingPeriod, Contract, ContractStatus, ServiceCategory};
use super::security::{AdminWrite, Auth, Scopes};
use super::wire::{patch, precondition, Created, EnumText, IdempotencyKey, ListHeader, Required};
use super::ApiTags;
use crate::domain::contracts::{self as domain, AmendmentInput, NewContract};
use crate::domain::service_lines::LineInput;
use crate::domain::{Crm, Tenant, Versioned};
use crate::error::ApiError;

/// A contract's service lines, as many as the domain keeps.
type ServiceLines = Items<ServiceLineInput, 0, { crate::domain::service_lines::LINES_MAX }>;

/// A service line as sent.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceLineInput {
    pub category: Required<EnumText<ServiceCategory>>,
    /// 1–500 characters.
    pub description: Required<Text<{ crate::domain::service_lines::DESCRIPTION_MAX }, { format::NON_BLANK }>>,
    /// Units.
    pub quantity: Required<Int<0, { crate::domain::service_lines::QUANTITY_MAX }>>,
    /// Per unit and billing period, in the currency's minor unit.
    pub unit_price: Required<Int<0, { crate::domain::service_lines::UNIT_PRICE_MAX }>>,
    pub billing_period: Required<EnumText<BillingPeriod>>,
}

impl From<ServiceLineInput> for LineInput {
    fn from(l: ServiceLineInput) -> Self {
        LineInput {
            category: l.category.0.map(EnumText::into_string),
            description: l.description.0.map(String::from),
            quantity: l.quantity.0.map(i64::from),
            unit_price: l.unit_price.0.map(i64::from),
            billing_period: l.billing_period.0.map(EnumText::into_string),
        }
    }
}

fn line(category: &str, description: &str, quantity: i64, unit_price: i64, period: &str) -> ServiceLineInput {
    ServiceLineInput {
        category: Required(Some(category.into())),
        description: Required(Some(description.into())),
        quantity: Required(Some(Int(quantity))),
        unit_price: Required(Some(Int(unit_price))),
        billing_period: Required(Some(period.into())),
    }
}

/// A new contract. `status` defaults to `DRAFT`, `currency` to `USD`, `autoRenew` to
/// false; `endDate` may be left out for an open-ended contract.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateContract {
    /// An account (`acc_…`) of the same organization and environment.
    pub account_id: Required<Text>,
    /// 1–200 characters.
    pub name: Required<Text<{ crate::domain::contracts::NAME_MAX }, { format::NON_BLANK }>>,
    pub status: Option<EnumText<ContractStatus>>,
    /// `YYYY-MM-DD`.
    pub start_date: Required<Text<0, { format::DATE }>>,
    /// `YYYY-MM-DD`, the last day covered; not before `startDate`.
    pub end_date: Option<Text<0, { format::DATE }>>,
    pub auto_renew: Option<bool>,
    /// ISO 4217 code.
    pub currency: Option<Text>,
    pub notes: Option<Text<{ crate::domain::contracts::NOTES_MAX }>>,
    /// Up to 200 lines (an empty list is allowed).
    pub service_lines: Required<ServiceLines>,
}

impl Example for CreateContract {
    fn example() -> Self {
        CreateContract {
            account_id: Required(Some("acc_5Hq2vWZk3nR8yT1bC".into())),
            name: Required(Some("Managed IT 2024".into())),
            status: Some("ACTIVE".into()),
            start_date: Required(Some("2024-01-01".into())),
            end_date: Some("2024-12-31".into()),
            auto_renew: Some(true),
            currency: Some("USD".into()),
            notes: None,
            service_lines: Required(Some(Items(vec![
                line("MANAGED_SERVICES", "Per-user managed IT", 25, 9_900, "MONTHLY"),
                line("BACKUP", "Server backup", 1, 30_000, "QUARTERLY"),
            ]))),
        }
    }
}

impl From<CreateContract> for NewContract {
    fn from(b: CreateContract) -> Self {
        NewContract {
            account_id: b.account_id.0.map(String::from),
            name: b.name.0.map(String::from),
            status: b.status.map(EnumText::into_string),
            start_date: b.start_date.0.map(String::from),
            end_date: b.end_date.map(String::from),
            auto_renew: b.auto_renew,
            currency: b.currency.map(String::from),
            notes: b.notes.map(String::from),
            service_lines: b.service_lines.0.map(|lines| lines.into_iter().map(LineInput::from).collect()),
        }
    }
}

/// An amendment: what it is, when it takes effect, and the fields it changes (absent
/// fields stay; `null` clears `endDate` or `notes`). `serviceLines` replaces every line.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, example)]
pub struct AmendContract {
    /// `YYYY-MM-DD`.
    pub effective_date: Required<Text<0, { format::DATE }>>,
    /// 1–2,000 characters: what was agreed.
    pub description: Required<Text<{ crate::domain::contracts::DESCRIPTION_MAX }, { format::NON_BLANK }>>,
    /// 1–200 characters.
    pub name: MaybeUndefined<Text<{ crate::domain::contracts::NAME_MAX }, { format::NON_BLANK }>>,
    pub status: MaybeUndefined<EnumText<ContractStatus>>,
    #[oai(nullable)]
    pub end_date: MaybeUndefined<Text<0, { format::DATE }>>,
    pub auto_renew: MaybeUndefined<bool>,
    #[oai(nullable)]
    pub notes: MaybeUndefined<Text<{ crate::domain::contracts::NOTES_MAX }>>,
    pub service_lines: Option<ServiceLines>,
}

impl Example for AmendContract {
    fn example() -> Self {
        AmendContract {
            effective_date: Required(Some("2024-04-01".into())),
            description: Required(Some("Renewed for 2025 with five more seats".into())),
            name: MaybeUndefined::Undefined,
            status: MaybeUndefined::Undefined,
            end_date: MaybeUndefined::Value("2025-12-31".into()),
            auto_renew: MaybeUndefined::Undefined,
            notes: MaybeUndefined::Undefined,
            service_lines: Some(Items(vec![line("MANAGED_SERVICES", "Per-user managed IT", 30, 9_900, "MONTHLY")])),
        }
    }
}

impl From<AmendContract> for AmendmentInput {
    fn from(b: AmendContract) -> Self {
        AmendmentInput {
            effective_date: b.effective_date.0.map(String::from),
            description: b.description.0.map(String::from),
            name: patch(b.name, Into::into),
            status: patch(b.status, EnumText::into_string),
            end_date: patch(b.end_date, Into::into),
            auto_renew: patch(b.auto_renew, Into::into),
            notes: patch(b.notes, Into::into),
            service_lines: b.service_lines.map(|lines| lines.into_iter().map(LineInput::from).collect()),
        }
    }
}

pub struct AdminContractsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Contracts")]
impl AdminContractsApi {
    /// Create a contract (operators)
    ///
    /// Creates a contract with its service lines in the caller's organization and
    /// environment, and emits `contract.created`. Integrators read contracts; only
    /// operators (`admin:write`) create them.
    #[oai(path = "/admin/contracts", method = "post", operation_id = "create_contract")]
    async fn create_contract(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateContract>,
    ) -> Result<Created<Contract>, ApiError> {
        let detail = domain::create(crm, &Tenant::from(&auth.principal), body.0.into()).await?;
        let (location, tag) = (format!("/api/v1/contracts/{}", detail.contract.id), detail.contract.etag());
        Ok(Created::new(detail.into(), location, &tag))
    }

    /// Amend a contract (operators)
    ///
    /// Records an amendment and applies its changes: the contract gets a new version,
    /// the amendment lists what changed, and `contract.updated` is emitted. With
    /// `If-Match`, only if the contract is still at that version (412 otherwise).
    /// Answers 201 with the amended contract; `Location` is the contract.
    #[oai(path = "/admin/contracts/:id/amendments", method = "post", operation_id = "amend_contract")]
    async fn amend_contract(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        /// The contract id, `ctr_…`.
        id: Path<String>,
        /// An `ETag` of the contract: amend only that version.
        #[oai(name = "If-Match")]
        if_match: ListHeader,
        body: JsonBody<AmendContract>,
    ) -> Result<Created<Contract>, ApiError> {
        let precondition = precondition(if_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        let detail = domain::amend(crm, &tenant, &id, body.0.into(), &precondition, &auth.credential_id).await?;
        let (location, tag) = (format!("/api/v1/contracts/{}", detail.contract.id), detail.contract.etag());
        Ok(Created::new(detail.into(), location, &tag))
    }
}
