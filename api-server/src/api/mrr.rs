//! `/api/v1/mrr`: monthly recurring revenue from the active contracts.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use super::contracts::ServiceCategory;
use super::security::{Auth, MrrRead, Scopes};
use super::wire::Body;
use super::ApiTags;
use crate::domain::mrr::{self as domain, MrrSummary};
use crate::domain::{Crm, Tenant};
use crate::envelope::Single;
use crate::error::ApiError;
use crate::time::rfc3339;

/// The MRR of one service category.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct CategoryMrr {
    pub category: ServiceCategory,
    /// In the currency's minor unit.
    pub mrr: i64,
    /// Service lines counted.
    pub line_count: i64,
}

/// The MRR in one currency (amounts are never converted between currencies).
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct CurrencyMrr {
    /// ISO 4217 code.
    pub currency: String,
    /// In the currency's minor unit, rounded once from the exact sum (so it may differ
    /// by a unit from the sum of the rounded categories).
    pub mrr: i64,
    /// Twelve times `mrr`.
    pub arr: i64,
    /// Each recurring category with at least one line.
    pub by_category: Vec<CategoryMrr>,
    /// Active contracts in this currency.
    pub contract_count: i64,
    /// Distinct accounts holding them.
    pub account_count: i64,
}

/// Monthly recurring revenue of the caller's organization and environment.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Mrr {
    /// One entry per currency, by currency code; empty without active contracts.
    pub currencies: Vec<CurrencyMrr>,
    /// Active contracts, every currency.
    pub contract_count: i64,
    /// Distinct accounts with an active contract.
    pub account_count: i64,
    pub computed_at: String,
}

impl Example for Mrr {
    fn example() -> Self {
        Mrr {
            currencies: vec![CurrencyMrr {
                currency: "USD".into(),
                mrr: 257_500,
                arr: 3_090_000,
                by_category: vec![
                    CategoryMrr { category: ServiceCategory::ManagedServices, mrr: 247_500, line_count: 1 },
                    CategoryMrr { category: ServiceCategory::Backup, mrr: 10_000, line_count: 1 },
                ],
                contract_count: 1,
                account_count: 1,
            }],
            contract_count: 1,
            account_count: 1,
            computed_at: "2024-06-01T08:00:00.000Z".into(),
        }
    }
}

impl From<MrrSummary> for Mrr {
    fn from(s: MrrSummary) -> Self {
        Mrr {
            currencies: s
                .currencies
                .into_iter()
                .map(|c| CurrencyMrr {
                    currency: c.currency,
                    mrr: c.mrr,
                    arr: c.mrr.saturating_mul(12),
                    by_category: c
                        .by_category
                        .into_iter()
                        .map(|k| CategoryMrr { category: k.category.into(), mrr: k.mrr, line_count: k.lines })
                        .collect(),
                    contract_count: c.contracts,
                    account_count: c.accounts,
                })
                .collect(),
            contract_count: s.contracts,
            account_count: s.accounts,
            computed_at: rfc3339(s.computed_at),
        }
    }
}

pub struct MrrApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Mrr")]
impl MrrApi {
    /// Get the MRR summary
    ///
    /// Monthly recurring revenue of the organization and environment, per currency and
    /// service category, from the service lines of `ACTIVE` contracts: `quantity ×
    /// unitPrice` per line, in full for `MONTHLY` lines, divided by 3 for `QUARTERLY`
    /// and by 12 for `ANNUAL` ones; `PROJECT` lines are one-off and left out. Sums are
    /// exact and each figure is rounded once, half up, to a minor unit. A report:
    /// rate-limited as such (10 an hour per credential).
    #[oai(path = "/mrr", method = "get", operation_id = "get_mrr")]
    async fn get_mrr(
        &self,
        #[oai(scope = "Scopes::MrrRead")] auth: Auth<MrrRead>,
        Data(crm): Data<&Arc<Crm>>,
    ) -> Result<Body<Single<Mrr>>, ApiError> {
        let summary = domain::summary(crm, &Tenant::from(&auth.principal)).await?;
        Ok(Body(Single::new(summary.into())))
    }
}
