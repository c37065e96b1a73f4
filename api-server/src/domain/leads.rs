//! Leads: companies the MSP may sell to, before they become accounts. Each carries an
//! ICP score (`super::icp`) that the server recomputes from its fields on every change;
//! callers never set it.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::icp::{self, IcpBreakdown};
use super::paging::{Page, PageRequest, Position};
use super::validate::{self, Violations};
use super::{Crm, DomainError, Patch, Precondition, Tenant, Update};
use crate::repo;

pub(crate) const NAME_MAX: usize = 200;
pub(crate) const NOTES_MAX: usize = 10_000;
pub(crate) const COUNT_MAX: i64 = 10_000_000;

named_enum!(
    /// Where a lead stands in qualification.
    Status {
        New => "NEW",
        Contacted => "CONTACTED",
        Qualified => "QUALIFIED",
        Disqualified => "DISQUALIFIED",
        Converted => "CONVERTED",
    }
);

named_enum!(
    /// The lead's industry, as the ICP score weighs it.
    Industry {
        Healthcare => "HEALTHCARE",
        Legal => "LEGAL",
        FinancialServices => "FINANCIAL_SERVICES",
        Accounting => "ACCOUNTING",
        Manufacturing => "MANUFACTURING",
        Construction => "CONSTRUCTION",
        ProfessionalServices => "PROFESSIONAL_SERVICES",
        RealEstate => "REAL_ESTATE",
        Education => "EDUCATION",
        Nonprofit => "NONPROFIT",
        Government => "GOVERNMENT",
        Retail => "RETAIL",
        Hospitality => "HOSPITALITY",
        Technology => "TECHNOLOGY",
        Other => "OTHER",
    }
);

named_enum!(
    /// How the lead reached the MSP.
    Source {
        Referral => "REFERRAL",
        Partner => "PARTNER",
        Inbound => "INBOUND",
        Event => "EVENT",
        Outbound => "OUTBOUND",
        Other => "OTHER",
    }
);

/// A prospective client.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub id: String,
    pub company_name: String,
    /// Lower-case DNS name.
    pub domain: Option<String>,
    pub industry: Option<Industry>,
    pub employee_count: Option<i64>,
    /// Endpoints or seats the MSP expects to manage.
    pub seat_estimate: Option<i64>,
    pub source: Option<Source>,
    pub status: Status,
    pub contact_name: Option<String>,
    /// Lower-cased.
    pub contact_email: Option<String>,
    pub notes: Option<String>,
    /// `icp::score(self).total()`, kept in step by `create` and `update`.
    pub icp_score: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(Lead);

impl Lead {
    pub fn icp(&self) -> IcpBreakdown {
        icp::score(self)
    }
}

/// The fields a create or update sets; enums arrive as text.
#[derive(Debug, Clone, Default)]
pub struct LeadChanges {
    pub company_name: Patch<String>,
    pub domain: Patch<String>,
    pub industry: Patch<String>,
    pub employee_count: Patch<i64>,
    pub seat_estimate: Patch<i64>,
    pub source: Patch<String>,
    pub status: Patch<String>,
    pub contact_name: Patch<String>,
    pub contact_email: Patch<String>,
    pub notes: Patch<String>,
}

/// Filters of the lead list.
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub status: Option<Status>,
    /// Only leads scoring at least this.
    pub min_score: Option<i64>,
}

impl LeadFilter {
    /// A filter with `min_score` checked to lie in 0–100.
    pub fn new(status: Option<Status>, min_score: Option<i64>) -> Result<LeadFilter, DomainError> {
        let mut v = Violations::default();
        if min_score.is_some_and(|n| !(0..=100).contains(&n)) {
            v.add("minScore", "must be between 0 and 100");
        }
        v.finish(LeadFilter { status, min_score })
    }
}

/// An optional enumerated field given as text; `null` clears it, and any text but one of
/// `allowed` (an empty one too: the spec lists the values) is refused.
fn optional_enum<E: Copy>(
    v: &mut Violations,
    field: &str,
    patch: Patch<String>,
    parse: fn(&str) -> Option<E>,
    allowed: &[&str],
    slot: &mut Option<E>,
) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => *slot = None,
        Patch::Set(text) => match parse(&text) {
            Some(value) => *slot = Some(value),
            None => v.add(field, format!("must be one of {}", allowed.join(", "))),
        },
    }
}

fn apply(lead: &mut Lead, changes: LeadChanges, v: &mut Violations) {
    validate::required_text(v, "companyName", changes.company_name, NAME_MAX, &mut lead.company_name);
    match changes.domain {
        Patch::Keep => {}
        Patch::Clear => lead.domain = None,
        Patch::Set(text) if text.trim().is_empty() => lead.domain = None,
        Patch::Set(text) => {
            if let Some(domain) = validate::domain_name(v, "domain", &text) {
                lead.domain = Some(domain);
            }
        }
    }
    optional_enum(v, "industry", changes.industry, Industry::parse, Industry::NAMES, &mut lead.industry);
    validate::optional_count(v, "employeeCount", changes.employee_count, COUNT_MAX, &mut lead.employee_count);
    validate::optional_count(v, "seatEstimate", changes.seat_estimate, COUNT_MAX, &mut lead.seat_estimate);
    optional_enum(v, "source", changes.source, Source::parse, Source::NAMES, &mut lead.source);
    validate::required_enum(v, "status", changes.status, Status::parse, Status::NAMES, &mut lead.status);
    validate::optional_text(v, "contactName", changes.contact_name, NAME_MAX, &mut lead.contact_name);
    match changes.contact_email {
        Patch::Keep => {}
        Patch::Clear => lead.contact_email = None,
        Patch::Set(text) if text.trim().is_empty() => lead.contact_email = None,
        Patch::Set(text) => {
            if let Some(email) = validate::email(v, "contactEmail", &text) {
                lead.contact_email = Some(email);
            }
        }
    }
    validate::optional_text(v, "notes", changes.notes, NOTES_MAX, &mut lead.notes);
    lead.icp_score = lead.icp().total();
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &LeadFilter, page: &PageRequest) -> Result<Page<Lead>, DomainError> {
    let rows = repo::leads::list(crm.db(), tenant, filter, page).await?;
    let leads = rows.into_iter().map(Lead::from).collect();
    Ok(Page::from_rows(leads, page, |l: &Lead| Position { created_at: l.created_at, id: l.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<Lead, DomainError> {
    repo::leads::get(crm.db(), tenant, id).await?.map(Lead::from).ok_or(DomainError::NotFound("lead"))
}

/// Creates a lead; `companyName` is required, `status` defaults to `NEW`.
pub async fn create(crm: &Crm, tenant: &Tenant, changes: LeadChanges) -> Result<Lead, DomainError> {
    let mut v = Violations::default();
    if changes.company_name == Patch::Keep {
        v.add("companyName", "is required");
    }
    let now = now_ms();
    let mut lead = Lead {
        id: new_id("lead"),
        company_name: String::new(),
        domain: None,
        industry: None,
        employee_count: None,
        seat_estimate: None,
        source: None,
        status: Status::New,
        contact_name: None,
        contact_email: None,
        notes: None,
        icp_score: 0,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    apply(&mut lead, changes, &mut v);
    v.finish(())?;
    repo::leads::insert(crm.writer(), tenant, &lead).await?;
    Ok(lead)
}

/// Applies a partial update and rescores the lead; a change that alters nothing keeps
/// the version.
pub async fn update(
    crm: &Crm,
    tenant: &Tenant,
    id: &str,
    changes: LeadChanges,
    precondition: &Precondition,
) -> Result<Lead, DomainError> {
    let mut update = Update::new("lead", precondition);
    loop {
        let current = get(crm, tenant, id).await?;
        let mut next = current.clone();
        let mut v = Violations::default();
        apply(&mut next, changes.clone(), &mut v);
        update.admit(&current, v)?;
        if next == current {
            return Ok(current);
        }
        Update::stamp(&current, &mut next);
        if repo::leads::update(crm.writer(), tenant, &next, current.version).await? {
            return Ok(next);
        }
        update.retry()?;
    }
}
