//! Reconciliation: a seat or device count reported by a tool (an RMM, a PSA) for an
//! account, compared per service category with the quantities of the account's
//! `ACTIVE` contracts, and kept as it was at submission. Any difference (a tolerance of
//! zero units) is a variance and emits `reconciliation.variance_detected`.

use std::collections::BTreeMap;

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::events::{Event, EventType};
use super::paging::{Page, PageRequest, Position};
use super::service_lines::ServiceCategory;
use super::validate::{self, Violations};
use super::{Crm, DomainError, Tenant};
use crate::repo;
use crate::time::parse_rfc3339;

pub(crate) const SOURCE_MAX: usize = 100;
pub const REPORTED_MAX: i64 = 10_000_000;
/// How far in the future `reportedAt` may lie (clock skew of the reporting tool).
const FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// Differences of at most this many units are not a variance.
pub const TOLERANCE_UNITS: i64 = 0;

/// One category of a report: contracted against reported.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconciliationLine {
    pub category: ServiceCategory,
    /// Sum of the quantities of the category's lines in the account's active contracts.
    pub contracted: i64,
    pub reported: i64,
}

impl ReconciliationLine {
    /// `reported − contracted`: positive when the client uses more than it pays for.
    pub fn variance(&self) -> i64 {
        self.reported - self.contracted
    }

    /// The variance as a percentage of the contracted quantity, to two decimals; none
    /// when nothing is contracted.
    pub fn variance_percent(&self) -> Option<f64> {
        (self.contracted != 0).then(|| (self.variance() as f64 * 10_000.0 / self.contracted as f64).round() / 100.0)
    }

    pub fn has_variance(&self) -> bool {
        self.variance().abs() > TOLERANCE_UNITS
    }
}

/// A stored reconciliation record.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciliation {
    pub id: String,
    pub account_id: String,
    pub source: String,
    pub reported_at: i64,
    /// One per reported category, in the order of `ServiceCategory`.
    pub lines: Vec<ReconciliationLine>,
    pub has_variance: bool,
    /// The active contracts compared against.
    pub contract_ids: Vec<String>,
    /// The API key or OAuth client that submitted it.
    pub submitted_by: String,
    pub created_at: i64,
}

/// One count as sent.
#[derive(Debug, Clone, Default)]
pub struct CountInput {
    pub category: Option<String>,
    pub quantity: Option<i64>,
}

/// A report as sent.
#[derive(Debug, Clone, Default)]
pub struct NewReport {
    pub account_id: Option<String>,
    pub source: Option<String>,
    /// RFC 3339; defaults to the time of submission.
    pub reported_at: Option<String>,
    pub counts: Option<Vec<CountInput>>,
}

/// Filters of the reconciliation list.
#[derive(Debug, Clone, Default)]
pub struct ReconciliationFilter {
    pub account_id: Option<String>,
    pub has_variance: Option<bool>,
}

fn parse_counts(v: &mut Violations, counts: Option<Vec<CountInput>>) -> BTreeMap<usize, (ServiceCategory, i64)> {
    let mut parsed = BTreeMap::new();
    let counts = match counts {
        None => {
            v.add("counts", "is required");
            return parsed;
        }
        Some(c) if c.is_empty() => {
            v.add("counts", "must count at least one service category");
            return parsed;
        }
        Some(c) => c,
    };
    let recurring: Vec<&str> = ServiceCategory::NAMES.iter().copied().filter(|n| *n != "PROJECT").collect();
    for (i, count) in counts.into_iter().enumerate() {
        let field = |name: &str| format!("counts[{i}].{name}");
        let category = match count.category.as_deref().map(str::trim) {
            None => {
                v.add(field("category"), "is required");
                None
            }
            Some(text) => match ServiceCategory::parse(text).filter(|c| c.is_recurring()) {
                Some(c) => Some(c),
                None => {
                    v.add(field("category"), format!("must be one of {} (PROJECT lines are one-off)", recurring.join(", ")));
                    None
                }
            },
        };
        let quantity = match count.quantity {
            None => {
                v.add(field("quantity"), "is required");
                None
            }
            Some(n) if (0..=REPORTED_MAX).contains(&n) => Some(n),
            Some(_) => {
                v.add(field("quantity"), format!("must be between 0 and {REPORTED_MAX}"));
                None
            }
        };
        if let (Some(category), Some(quantity)) = (category, quantity) {
            let rank = ServiceCategory::NAMES.iter().position(|n| *n == category.as_str()).unwrap_or(usize::MAX);
            if parsed.insert(rank, (category, quantity)).is_some() {
                v.add(field("category"), format!("{} is counted twice", category.as_str()));
            }
        }
    }
    parsed
}

/// Compares a report with the account's active contracts and stores the result, with
/// `reconciliation.variance_detected` in the same transaction when any category differs.
pub async fn submit(crm: &Crm, tenant: &Tenant, input: NewReport, actor: &str) -> Result<Reconciliation, DomainError> {
    let mut v = Violations::default();
    let now = now_ms();
    let account_id = match input.account_id.as_deref().map(str::trim) {
        None => {
            v.add("accountId", "is required");
            String::new()
        }
        Some("") => {
            v.add("accountId", "must not be empty");
            String::new()
        }
        Some(id) => id.to_owned(),
    };
    let source = match input.source {
        None => {
            v.add("source", "is required");
            None
        }
        Some(text) => validate::text(&mut v, "source", &text, SOURCE_MAX),
    };
    let reported_at = match input.reported_at {
        None => now,
        Some(text) => match parse_rfc3339(text.trim()) {
            Some(at) if at <= now + FUTURE_SKEW_MS => at,
            Some(_) => {
                v.add("reportedAt", "must not be in the future");
                now
            }
            None => {
                v.add("reportedAt", "must be an RFC 3339 time such as 2024-05-01T00:00:00Z");
                now
            }
        },
    };
    let counts = parse_counts(&mut v, input.counts);
    if !account_id.is_empty() && !repo::accounts::exists(crm.pool(), tenant, &account_id).await? {
        v.add("accountId", format!("no account {account_id} in this organization and environment"));
    }
    v.finish(())?;

    let mut contracted: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut contract_ids: Vec<String> = Vec::new();
    for row in repo::contracts::active_lines(crm.pool(), tenant, Some(&account_id)).await? {
        let line = row.line();
        if !contract_ids.contains(&row.contract_id) {
            contract_ids.push(row.contract_id.clone());
        }
        *contracted.entry(line.category.as_str()).or_default() += line.quantity;
    }
    let lines: Vec<ReconciliationLine> = counts
        .into_values()
        .map(|(category, reported)| ReconciliationLine {
            category,
            contracted: contracted.get(category.as_str()).copied().unwrap_or(0),
            reported,
        })
        .collect();
    let record = Reconciliation {
        id: new_id("rec"),
        account_id,
        source: source.unwrap_or_default(),
        reported_at,
        has_variance: lines.iter().any(ReconciliationLine::has_variance),
        lines,
        contract_ids,
        submitted_by: actor.to_owned(),
        created_at: now,
    };
    let event = record.has_variance.then(|| Event::of(EventType::ReconciliationVarianceDetected, &record));
    repo::reconciliation::insert(crm.writer(), tenant, &record, event.as_ref()).await?;
    Ok(record)
}

pub async fn list(
    crm: &Crm,
    tenant: &Tenant,
    filter: &ReconciliationFilter,
    page: &PageRequest,
) -> Result<Page<Reconciliation>, DomainError> {
    let rows = repo::reconciliation::list(crm.db(), tenant, filter, page).await?;
    Ok(Page::from_rows(rows, page, |r: &Reconciliation| Position { created_at: r.created_at, id: r.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<Reconciliation, DomainError> {
    repo::reconciliation::get(crm.db(), tenant, id).await?.ok_or(DomainError::NotFound("reconciliation record"))
}
