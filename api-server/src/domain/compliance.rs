//! Compliance items: one control of one framework at one account, with where the
//! account stands on it. Operators write them; integrations read them and the status of
//! each framework.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::paging::{Page, PageRequest, Position};
use super::validate::{self, Violations};
use super::{unique_to_invalid, Crm, DomainError, Patch, Precondition, Tenant, Update};
use crate::repo;

pub(crate) const CONTROL_MAX: usize = 50;
pub(crate) const TITLE_MAX: usize = 300;
pub(crate) const NOTES_MAX: usize = 10_000;

named_enum!(
    /// A compliance framework.
    Framework {
        Soc2 => "SOC2",
        Hipaa => "HIPAA",
        PciDss => "PCI_DSS",
        Cis => "CIS",
        NistCsf => "NIST_CSF",
        Iso27001 => "ISO27001",
    }
);

named_enum!(
    /// Where an account stands on one control.
    ItemStatus {
        Compliant => "COMPLIANT",
        NonCompliant => "NON_COMPLIANT",
        InProgress => "IN_PROGRESS",
        NotApplicable => "NOT_APPLICABLE",
    }
);

/// One control of one framework at one account.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceItem {
    pub id: String,
    pub account_id: String,
    pub framework: Framework,
    /// The framework's own identifier of the control, e.g. `CC6.1`.
    pub control_id: String,
    pub title: String,
    pub status: ItemStatus,
    pub evidence_notes: Option<String>,
    /// `YYYY-MM-DD`.
    pub due_date: Option<String>,
    pub last_reviewed_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(ComplianceItem);

/// The fields a create or update sets; enums arrive as text.
#[derive(Debug, Clone, Default)]
pub struct ItemChanges {
    pub account_id: Patch<String>,
    pub framework: Patch<String>,
    pub control_id: Patch<String>,
    pub title: Patch<String>,
    pub status: Patch<String>,
    pub evidence_notes: Patch<String>,
    pub due_date: Patch<String>,
    /// RFC 3339.
    pub last_reviewed_at: Patch<String>,
}

/// Filters of the item list and the framework status.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub account_id: Option<String>,
    pub framework: Option<Framework>,
    pub status: Option<ItemStatus>,
}

/// How many items of one framework are in each status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameworkStatus {
    pub compliant: i64,
    pub non_compliant: i64,
    pub in_progress: i64,
    pub not_applicable: i64,
}

impl FrameworkStatus {
    pub fn total(&self) -> i64 {
        self.compliant + self.non_compliant + self.in_progress + self.not_applicable
    }

    /// Compliant items among the applicable ones, in percent with one decimal; none
    /// when no item applies.
    pub fn percent_compliant(&self) -> Option<f64> {
        let applicable = self.total() - self.not_applicable;
        (applicable > 0).then(|| (self.compliant as f64 * 1000.0 / applicable as f64).round() / 10.0)
    }

    fn add(&mut self, status: ItemStatus, count: i64) {
        match status {
            ItemStatus::Compliant => self.compliant += count,
            ItemStatus::NonCompliant => self.non_compliant += count,
            ItemStatus::InProgress => self.in_progress += count,
            ItemStatus::NotApplicable => self.not_applicable += count,
        }
    }
}

/// A `YYYY-MM-DD` date, normalised.
pub(crate) fn date(v: &mut Violations, field: &str, patch: Patch<String>, slot: &mut Option<String>) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => *slot = None,
        Patch::Set(text) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            match time::Date::parse(text.trim(), &format) {
                Ok(date) => *slot = date.format(&format).ok(),
                Err(_) => v.add(field, "must be a date as YYYY-MM-DD"),
            }
        }
    }
}

fn apply(item: &mut ComplianceItem, changes: ItemChanges, v: &mut Violations) {
    match changes.account_id {
        Patch::Keep => {}
        Patch::Clear => v.add("accountId", "is required and cannot be null"),
        Patch::Set(id) if id.trim().is_empty() => v.add("accountId", "must not be empty"),
        Patch::Set(id) => item.account_id = id.trim().to_owned(),
    }
    validate::required_enum(v, "framework", changes.framework, Framework::parse, Framework::NAMES, &mut item.framework);
    validate::required_text(v, "controlId", changes.control_id, CONTROL_MAX, &mut item.control_id);
    validate::required_text(v, "title", changes.title, TITLE_MAX, &mut item.title);
    validate::required_enum(v, "status", changes.status, ItemStatus::parse, ItemStatus::NAMES, &mut item.status);
    validate::optional_text(v, "evidenceNotes", changes.evidence_notes, NOTES_MAX, &mut item.evidence_notes);
    date(v, "dueDate", changes.due_date, &mut item.due_date);
    match changes.last_reviewed_at {
        Patch::Keep => {}
        Patch::Clear => item.last_reviewed_at = None,
        Patch::Set(text) => match crate::time::parse_rfc3339(text.trim()) {
            Some(ms) if ms <= now_ms() + 60_000 => item.last_reviewed_at = Some(ms),
            Some(_) => v.add("lastReviewedAt", "must not be in the future"),
            None => v.add("lastReviewedAt", "must be an RFC 3339 time such as 2024-05-01T00:00:00Z"),
        },
    }
}

async fn check_account(crm: &Crm, tenant: &Tenant, account_id: &str, v: &mut Violations) -> Result<(), DomainError> {
    if !account_id.is_empty() && !repo::accounts::exists(crm.pool(), tenant, account_id).await? {
        v.add("accountId", format!("no account {account_id} in this organization and environment"));
    }
    Ok(())
}

fn duplicate(err: sqlx::Error) -> DomainError {
    unique_to_invalid(err, "controlId", "the account already has an item for this control of this framework")
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &ItemFilter, page: &PageRequest) -> Result<Page<ComplianceItem>, DomainError> {
    let rows = repo::compliance::list(crm.db(), tenant, filter, page).await?;
    let items = rows.into_iter().map(ComplianceItem::from).collect();
    Ok(Page::from_rows(items, page, |i: &ComplianceItem| Position { created_at: i.created_at, id: i.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<ComplianceItem, DomainError> {
    repo::compliance::get(crm.db(), tenant, id).await?.map(ComplianceItem::from).ok_or(DomainError::NotFound("compliance item"))
}

/// The status of every framework, in `Framework::NAMES` order (frameworks without
/// items too), over the tenant's items or one account's (which must exist).
pub async fn frameworks(crm: &Crm, tenant: &Tenant, account_id: Option<&str>) -> Result<Vec<(Framework, FrameworkStatus)>, DomainError> {
    if let Some(id) = account_id {
        if !repo::accounts::exists(crm.pool(), tenant, id).await? {
            return Err(DomainError::NotFound("account"));
        }
    }
    let counts = repo::compliance::counts(crm.pool(), tenant, account_id).await?;
    let mut all: Vec<(Framework, FrameworkStatus)> =
        Framework::NAMES.iter().filter_map(|n| Framework::parse(n)).map(|f| (f, FrameworkStatus::default())).collect();
    for (framework, status, count) in counts {
        if let (Some(framework), Some(status)) = (Framework::parse(&framework), ItemStatus::parse(&status)) {
            if let Some((_, entry)) = all.iter_mut().find(|(f, _)| *f == framework) {
                entry.add(status, count);
            }
        }
    }
    Ok(all)
}

/// Creates an item; every field but `evidenceNotes`, `dueDate` and `lastReviewedAt`
/// is required except `status`, which defaults to `IN_PROGRESS`.
pub async fn create(crm: &Crm, tenant: &Tenant, changes: ItemChanges) -> Result<ComplianceItem, DomainError> {
    let mut v = Violations::default();
    for (field, missing) in [
        ("accountId", changes.account_id == Patch::Keep),
        ("framework", changes.framework == Patch::Keep),
        ("controlId", changes.control_id == Patch::Keep),
        ("title", changes.title == Patch::Keep),
    ] {
        if missing {
            v.add(field, "is required");
        }
    }
    let now = now_ms();
    let mut item = ComplianceItem {
        id: new_id("cmp"),
        account_id: String::new(),
        framework: Framework::Soc2,
        control_id: String::new(),
        title: String::new(),
        status: ItemStatus::InProgress,
        evidence_notes: None,
        due_date: None,
        last_reviewed_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    apply(&mut item, changes, &mut v);
    check_account(crm, tenant, &item.account_id, &mut v).await?;
    v.finish(())?;
    repo::compliance::insert(crm.writer(), tenant, &item).await.map_err(duplicate)?;
    Ok(item)
}

/// Applies a partial update; a change that alters nothing keeps the version.
pub async fn update(
    crm: &Crm,
    tenant: &Tenant,
    id: &str,
    changes: ItemChanges,
    precondition: &Precondition,
) -> Result<ComplianceItem, DomainError> {
    let mut update = Update::new("compliance item", precondition);
    loop {
        let current = get(crm, tenant, id).await?;
        let mut next = current.clone();
        let mut v = Violations::default();
        apply(&mut next, changes.clone(), &mut v);
        if next.account_id != current.account_id {
            check_account(crm, tenant, &next.account_id, &mut v).await?;
        }
        update.admit(&current, v)?;
        if next == current {
            return Ok(current);
        }
        Update::stamp(&current, &mut next);
        if repo::compliance::update(crm.writer(), tenant, &next, current.version).await.map_err(duplicate)? {
            return Ok(next);
        }
        update.retry()?;
    }
}
