//! Monthly recurring revenue of an organization and environment, from the service
//! lines of its `ACTIVE` contracts: a monthly line counts in full, a quarterly one for
//! a third, an annual one for a twelfth; `PROJECT` lines are one-off and never count.
//! Sums are kept exact (in twelfths of a minor unit) and rounded half up once per
//! figure. Currencies are never converted: each has its own summary.

use std::collections::{BTreeMap, BTreeSet};

use breadbox_auth::db::now_ms;

use super::service_lines::{ServiceCategory, Twelfths};
use super::{Crm, DomainError, Tenant};
use crate::repo;

/// The MRR of one service category in one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryMrr {
    pub category: ServiceCategory,
    pub mrr: i64,
    /// Service lines counted.
    pub lines: i64,
}

/// The MRR in one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrencyMrr {
    pub currency: String,
    pub mrr: i64,
    /// Recurring categories with at least one line, in the order of `ServiceCategory`.
    pub by_category: Vec<CategoryMrr>,
    pub contracts: i64,
    pub accounts: i64,
}

/// The MRR summary of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct MrrSummary {
    /// One entry per currency of an active contract, by currency code.
    pub currencies: Vec<CurrencyMrr>,
    /// Active contracts and the distinct accounts holding them, all currencies.
    pub contracts: i64,
    pub accounts: i64,
    pub computed_at: i64,
}

#[derive(Default)]
struct Sums {
    total: Twelfths,
    categories: BTreeMap<usize, (Twelfths, i64)>,
    contracts: BTreeSet<String>,
    accounts: BTreeSet<String>,
}

pub async fn summary(crm: &Crm, tenant: &Tenant) -> Result<MrrSummary, DomainError> {
    let mut by_currency: BTreeMap<String, Sums> = BTreeMap::new();
    for contract in repo::contracts::active(crm.pool(), tenant).await? {
        let sums = by_currency.entry(contract.currency).or_default();
        sums.contracts.insert(contract.id);
        sums.accounts.insert(contract.account_id);
    }
    for row in repo::contracts::active_lines(crm.pool(), tenant, None).await? {
        let line = row.line();
        if !line.category.is_recurring() {
            continue;
        }
        let sums = by_currency.entry(row.currency).or_default();
        let share = Twelfths::of(&line);
        sums.total.add(share);
        let rank = ServiceCategory::NAMES.iter().position(|n| *n == line.category.as_str()).unwrap_or(usize::MAX);
        let entry = sums.categories.entry(rank).or_default();
        entry.0.add(share);
        entry.1 += 1;
    }
    let (mut contracts, mut accounts) = (0, BTreeSet::new());
    let currencies = by_currency
        .into_iter()
        .map(|(currency, sums)| {
            contracts += sums.contracts.len() as i64;
            accounts.extend(sums.accounts.iter().cloned());
            CurrencyMrr {
                currency,
                mrr: sums.total.minor_units(),
                by_category: sums
                    .categories
                    .into_iter()
                    .filter_map(|(rank, (mrr, lines))| {
                        let category = ServiceCategory::parse(ServiceCategory::NAMES.get(rank)?)?;
                        Some(CategoryMrr { category, mrr: mrr.minor_units(), lines })
                    })
                    .collect(),
                contracts: sums.contracts.len() as i64,
                accounts: sums.accounts.len() as i64,
            }
        })
        .collect();
    Ok(MrrSummary { currencies, contracts, accounts: accounts.len() as i64, computed_at: now_ms() })
}
