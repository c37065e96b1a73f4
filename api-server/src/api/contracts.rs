//! `/api/v1/contracts`: what each account buys, read-only for integrators (operators
//! create and amend contracts through `/api/v1/admin/contracts` or the CLI).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object, OpenApi};
use serde_json::Value;

use super::params::{Limit, Time};
use super::paging::Listing;
use super::security::{Auth, ContractsRead, Scopes};
use super::memo;
use super::wire::{to_wire, Body, Fetched, ListHeader, NoneMatch, Tagged};
use super::ApiTags;
use crate::domain::contracts::{self as domain, ContractDetail, ContractFilter};
use crate::domain::events::Wire;
use crate::domain::service_lines::{self as lines, Twelfths};
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::List;
use crate::error::ApiError;
use crate::time::rfc3339;

/// A wire enumeration mirroring a domain one, variant for variant.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident = $module:ident :: $domain:ident { $($variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
        #[oai(rename_all = "SCREAMING_SNAKE_CASE")]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($variant),*
        }

        impl From<$module::$domain> for $name {
            fn from(value: $module::$domain) -> Self {
                match value {
                    $($module::$domain::$variant => $name::$variant),*
                }
            }
        }

        impl From<$name> for $module::$domain {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => $module::$domain::$variant),*
                }
            }
        }
    };
}

wire_enum!(
    /// Where a contract stands. Only `ACTIVE` contracts count towards MRR and
    /// reconciliation.
    ContractStatus = domain::ContractStatus { Draft, Active, Expired, Cancelled }
);

wire_enum!(
    /// What a service line sells. `PROJECT` lines are one-off work: never part of MRR.
    ServiceCategory = lines::ServiceCategory { ManagedServices, Security, Backup, Cloud, Network, Voip, Project, Other }
);

wire_enum!(
    /// How often a service line is billed.
    BillingPeriod = lines::BillingPeriod { Monthly, Quarterly, Annual }
);

/// One service line of a contract.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ServiceLine {
    pub category: ServiceCategory,
    pub description: String,
    /// Seats, devices or other units.
    pub quantity: i64,
    /// Per unit and billing period, in the currency's minor unit (cents).
    pub unit_price: i64,
    pub billing_period: BillingPeriod,
    /// This line's share of monthly recurring revenue in minor units: `quantity ×
    /// unitPrice`, divided by 3 for quarterly and 12 for annual lines, rounded; 0 for
    /// `PROJECT` lines.
    pub monthly_recurring: i64,
}

impl From<lines::ServiceLine> for ServiceLine {
    fn from(l: lines::ServiceLine) -> Self {
        ServiceLine {
            monthly_recurring: Twelfths::of(&l).minor_units(),
            category: l.category.into(),
            description: l.description,
            quantity: l.quantity,
            unit_price: l.unit_price,
            billing_period: l.billing_period.into(),
        }
    }
}

/// One field an amendment changed.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// `name`, `status`, `endDate`, `autoRenew`, `notes` or `serviceLines`.
    pub field: String,
    /// The value before, as this API shows it (`serviceLines`: the lines without
    /// `monthlyRecurring`).
    pub from: Value,
    /// The value after.
    pub to: Value,
}

/// A recorded change to a contract.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct Amendment {
    /// `amd_…`
    pub id: String,
    /// `YYYY-MM-DD`: when the change takes effect commercially.
    pub effective_date: String,
    pub description: String,
    /// What changed; empty for an amendment that only records a note.
    pub changes: Vec<FieldChange>,
    /// The API key or OAuth client that recorded it, or `cli`.
    pub created_by: String,
    pub created_at: String,
}

impl From<domain::Amendment> for Amendment {
    fn from(a: domain::Amendment) -> Self {
        Amendment {
            id: a.id,
            effective_date: a.effective_date,
            description: a.description,
            changes: a.changes.into_iter().map(|c| FieldChange { field: c.field, from: c.from, to: c.to }).collect(),
            created_by: a.created_by,
            created_at: rfc3339(a.created_at),
        }
    }
}

/// The totals of a contract's current service lines, in minor units.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ContractTotals {
    /// Monthly recurring revenue: monthly lines in full, quarterly ones divided by 3,
    /// annual ones by 12, `PROJECT` lines left out; rounded once, half up.
    pub monthly_recurring: i64,
    /// Twelve times `monthlyRecurring`.
    pub annual_recurring: i64,
    /// The value of the `PROJECT` (one-off) lines.
    pub one_off: i64,
}

/// A contract of one account.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    /// `ctr_…`
    pub id: String,
    /// `acc_…`
    pub account_id: String,
    pub name: String,
    pub status: ContractStatus,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    /// `YYYY-MM-DD`, the last day covered; null for an open-ended contract.
    #[oai(nullable)]
    pub end_date: Option<String>,
    /// Whether the contract renews at its end date.
    pub auto_renew: bool,
    /// ISO 4217 code of every amount of the contract.
    pub currency: String,
    pub totals: ContractTotals,
    #[oai(nullable)]
    pub notes: Option<String>,
    /// On single contracts only, not in lists.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_lines: Option<Vec<ServiceLine>>,
    /// Oldest first. On single contracts only, not in lists.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amendments: Option<Vec<Amendment>>,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for Contract {
    fn example() -> Self {
        Contract {
            id: "ctr_3Fq8vLk2nW9xR4tYb".into(),
            account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            name: "Managed IT 2024".into(),
            status: ContractStatus::Active,
            start_date: "2024-01-01".into(),
            end_date: Some("2024-12-31".into()),
            auto_renew: true,
            currency: "USD".into(),
            totals: ContractTotals { monthly_recurring: 257_500, annual_recurring: 3_090_000, one_off: 0 },
            notes: None,
            service_lines: Some(vec![
                ServiceLine {
                    category: ServiceCategory::ManagedServices,
                    description: "Per-user managed IT".into(),
                    quantity: 25,
                    unit_price: 9_900,
                    billing_period: BillingPeriod::Monthly,
                    monthly_recurring: 247_500,
                },
                ServiceLine {
                    category: ServiceCategory::Backup,
                    description: "Server backup".into(),
                    quantity: 1,
                    unit_price: 30_000,
                    billing_period: BillingPeriod::Quarterly,
                    monthly_recurring: 10_000,
                },
            ]),
            amendments: Some(vec![Amendment {
                id: "amd_9Kd2mQ7vXp3rL8sT".into(),
                effective_date: "2024-04-01".into(),
                description: "Five more seats".into(),
                changes: vec![],
                created_by: "key_7Yc2mQ9vLx3pR8sT".into(),
                created_at: "2024-03-28T10:00:00.000Z".into(),
            }]),
            created_at: "2023-12-15T09:00:00.000Z".into(),
            updated_at: "2024-03-28T10:00:00.000Z".into(),
        }
    }
}

impl From<domain::Contract> for Contract {
    fn from(c: domain::Contract) -> Self {
        Contract {
            id: c.id,
            account_id: c.account_id,
            name: c.name,
            status: c.status.into(),
            start_date: c.start_date,
            end_date: c.end_date,
            auto_renew: c.auto_renew,
            currency: c.currency,
            totals: ContractTotals {
                monthly_recurring: c.totals.monthly_recurring,
                annual_recurring: c.totals.monthly_recurring.saturating_mul(12),
                one_off: c.totals.one_off,
            },
            notes: c.notes,
            service_lines: None,
            amendments: None,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

impl From<ContractDetail> for Contract {
    fn from(d: ContractDetail) -> Self {
        Contract {
            service_lines: Some(d.lines.into_iter().map(ServiceLine::from).collect()),
            amendments: Some(d.amendments.into_iter().map(Amendment::from).collect()),
            ..Contract::from(d.contract)
        }
    }
}

impl Wire for ContractDetail {
    fn wire(&self) -> Value {
        to_wire(Contract::from(self.clone()))
    }
}

pub fn tagged(detail: ContractDetail) -> Tagged<Contract> {
    let tag = detail.contract.etag();
    Tagged::new(detail.into(), &tag)
}

pub struct ContractsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Contracts")]
impl ContractsApi {
    /// List contracts
    ///
    /// Oldest first, a page at a time, with their totals but without service lines and
    /// amendments; filter by `accountId` and `status`, and by `updatedSince` for
    /// incremental sync. Read-only in v1: operators create and amend contracts.
    #[oai(path = "/contracts", method = "get", operation_id = "list_contracts")]
    #[allow(clippy::too_many_arguments)]
    async fn list_contracts(
        &self,
        #[oai(scope = "Scopes::ContractsRead")] auth: Auth<ContractsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only contracts of this account.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
        /// Only contracts with this status.
        status: Query<Option<ContractStatus>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only contracts changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<Contract>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "contracts", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = ContractFilter { account_id: account_id.0, status: status.0.map(Into::into) };
        let contracts = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(contracts, Contract::from)))
    }

    /// Get a contract
    ///
    /// With its service lines and amendments.
    #[oai(path = "/contracts/:id", method = "get", operation_id = "get_contract")]
    async fn get_contract(
        &self,
        #[oai(scope = "Scopes::ContractsRead")] auth: Auth<ContractsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The contract id, `ctr_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<Contract>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "contract", &tenant, &id, &held, async { Ok(tagged(domain::get(crm, &tenant, &id).await?)) }).await
    }
}
