//! Accounts: the MSP's clients, with their sites, seats and lifecycle. Deleting one is a
//! soft delete: it becomes `CHURNED` and stays readable.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::events::{Event, EventType};
use super::paging::{Page, PageRequest, Position};
use super::validate::{self, Violations};
use super::{Crm, DomainError, Patch, Precondition, Tenant, Update};
use crate::repo;

pub(crate) const NAME_MAX: usize = 200;
pub(crate) const INDUSTRY_MAX: usize = 100;
pub(crate) const NOTES_MAX: usize = 10_000;
pub(crate) const SITES_MAX: usize = 100;
pub(crate) const SITE_NAME_MAX: usize = 200;
pub(crate) const ADDRESS_MAX: usize = 1_000;
pub(crate) const SEATS_MAX: i64 = 10_000_000;

named_enum!(
    /// Where an account stands with the MSP.
    Lifecycle {
        Lead => "LEAD",
        Onboarding => "ONBOARDING",
        Active => "ACTIVE",
        AtRisk => "AT_RISK",
        Churned => "CHURNED",
    }
);

/// A location of the client the MSP serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub name: String,
    pub address: Option<String>,
}

/// A client of the MSP.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: String,
    pub name: String,
    /// Lower-case DNS name, unique within the organization and environment.
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub lifecycle: Lifecycle,
    pub sites: Vec<Site>,
    pub primary_contact_id: Option<String>,
    pub seats: Option<i64>,
    pub notes: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(Account);

/// A site as sent.
#[derive(Debug, Clone)]
pub struct SiteInput {
    pub name: String,
    pub address: Option<String>,
}

/// The fields a create or update sets. Text enums arrive as text so that a wrong value
/// is reported with every other failing field.
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub name: Patch<String>,
    pub domain: Patch<String>,
    pub industry: Patch<String>,
    pub lifecycle: Patch<String>,
    pub sites: Patch<Vec<SiteInput>>,
    pub primary_contact_id: Patch<String>,
    pub seats: Patch<i64>,
    pub notes: Patch<String>,
}

/// Filters of the account list.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub lifecycle: Option<Lifecycle>,
    /// Exact match.
    pub industry: Option<String>,
}

fn sites(v: &mut Violations, inputs: Vec<SiteInput>) -> Vec<Site> {
    if inputs.len() > SITES_MAX {
        v.add("sites", format!("must hold at most {SITES_MAX} sites"));
    }
    let mut sites = Vec::with_capacity(inputs.len());
    for (i, site) in inputs.into_iter().enumerate() {
        let name = validate::text(v, &format!("sites[{i}].name"), &site.name, SITE_NAME_MAX);
        let mut address = None;
        validate::optional_text(v, &format!("sites[{i}].address"), Patch::from_option(site.address), ADDRESS_MAX, &mut address);
        if let Some(name) = name {
            sites.push(Site { name, address });
        }
    }
    sites
}

/// Applies `changes` field by field, recording every failure.
fn apply(account: &mut Account, changes: AccountChanges, v: &mut Violations) {
    validate::required_text(v, "name", changes.name, NAME_MAX, &mut account.name);
    match changes.domain {
        Patch::Keep => {}
        Patch::Clear => account.domain = None,
        Patch::Set(text) if text.trim().is_empty() => account.domain = None,
        Patch::Set(text) => {
            if let Some(domain) = validate::domain_name(v, "domain", &text) {
                account.domain = Some(domain);
            }
        }
    }
    validate::optional_text(v, "industry", changes.industry, INDUSTRY_MAX, &mut account.industry);
    validate::required_enum(v, "lifecycle", changes.lifecycle, Lifecycle::parse, Lifecycle::NAMES, &mut account.lifecycle);
    match changes.sites {
        Patch::Keep => {}
        Patch::Clear => account.sites.clear(),
        Patch::Set(inputs) => account.sites = sites(v, inputs),
    }
    match changes.primary_contact_id {
        Patch::Keep => {}
        Patch::Clear => account.primary_contact_id = None,
        Patch::Set(id) if id.trim().is_empty() => account.primary_contact_id = None,
        Patch::Set(id) => account.primary_contact_id = Some(id.trim().to_owned()),
    }
    validate::optional_count(v, "seats", changes.seats, SEATS_MAX, &mut account.seats);
    validate::optional_text(v, "notes", changes.notes, NOTES_MAX, &mut account.notes);
}

/// The primary contact must be a contact of the same organization and environment.
async fn check_primary_contact(crm: &Crm, tenant: &Tenant, account: &Account, v: &mut Violations) -> Result<(), DomainError> {
    if let Some(id) = &account.primary_contact_id {
        if !repo::contacts::exists(crm.pool(), tenant, id).await? {
            v.add("primaryContactId", format!("no contact {id} in this organization and environment"));
        }
    }
    Ok(())
}

/// A duplicate domain as a 422 naming the account that holds it.
async fn domain_taken(crm: &Crm, tenant: &Tenant, account: &Account, err: sqlx::Error) -> DomainError {
    let holder = match &account.domain {
        Some(domain) if breadbox_auth::db::is_unique_violation(&err) => {
            repo::accounts::find_by_domain(crm.pool(), tenant, domain).await.ok().flatten()
        }
        _ => None,
    };
    let issue = match holder {
        Some(id) => format!("is already used by account {id}"),
        None => "is already used by another account".to_owned(),
    };
    super::unique_to_invalid(err, "domain", issue)
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &AccountFilter, page: &PageRequest) -> Result<Page<Account>, DomainError> {
    let rows = repo::accounts::list(crm.db(), tenant, filter, page).await?;
    let accounts = rows.into_iter().map(Account::from).collect();
    Ok(Page::from_rows(accounts, page, |a: &Account| Position { created_at: a.created_at, id: a.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<Account, DomainError> {
    repo::accounts::get(crm.db(), tenant, id).await?.map(Account::from).ok_or(DomainError::NotFound("account"))
}

/// Creates an account; `name` is required, `lifecycle` defaults to `LEAD`.
pub async fn create(crm: &Crm, tenant: &Tenant, changes: AccountChanges) -> Result<Account, DomainError> {
    let mut v = Violations::default();
    if changes.name == Patch::Keep {
        v.add("name", "is required");
    }
    let now = now_ms();
    let mut account = Account {
        id: new_id("acc"),
        name: String::new(),
        domain: None,
        industry: None,
        lifecycle: Lifecycle::Lead,
        sites: Vec::new(),
        primary_contact_id: None,
        seats: None,
        notes: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    apply(&mut account, changes, &mut v);
    check_primary_contact(crm, tenant, &account, &mut v).await?;
    v.finish(())?;
    let events = [Event::of(EventType::AccountCreated, &account)];
    match repo::accounts::insert(crm.writer(), crm.backend(), tenant, &account, &events).await {
        Ok(()) => Ok(account),
        Err(err) => Err(domain_taken(crm, tenant, &account, err).await),
    }
}

/// Applies a partial update; a change that alters nothing keeps the version.
pub async fn update(
    crm: &Crm,
    tenant: &Tenant,
    id: &str,
    changes: AccountChanges,
    precondition: &Precondition,
) -> Result<Account, DomainError> {
    let mut update = Update::new("account", precondition);
    loop {
        let current = get(crm, tenant, id).await?;
        let mut next = current.clone();
        let mut v = Violations::default();
        apply(&mut next, changes.clone(), &mut v);
        if next.primary_contact_id != current.primary_contact_id {
            check_primary_contact(crm, tenant, &next, &mut v).await?;
        }
        update.admit(&current, v)?;
        if next == current {
            return Ok(current);
        }
        Update::stamp(&current, &mut next);
        let churned = next.lifecycle == Lifecycle::Churned && current.lifecycle != Lifecycle::Churned;
        let kind = if churned { EventType::AccountDeleted } else { EventType::AccountUpdated };
        let events = [Event::of(kind, &next)];
        match repo::accounts::update(crm.writer(), tenant, &next, current.version, &events).await {
            Ok(true) => return Ok(next),
            Ok(false) => update.retry()?,
            Err(err) => return Err(domain_taken(crm, tenant, &next, err).await),
        }
    }
}

/// Soft delete: the account becomes `CHURNED` and stays readable. Repeating it is harmless.
pub async fn delete(crm: &Crm, tenant: &Tenant, id: &str, precondition: &Precondition) -> Result<Account, DomainError> {
    let churn = AccountChanges { lifecycle: Patch::Set(Lifecycle::Churned.as_str().to_owned()), ..Default::default() };
    update(crm, tenant, id, churn, precondition).await
}
