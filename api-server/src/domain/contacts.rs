//! Contacts: the people at the MSP's clients, each linked to any number of accounts with
//! a role per link. The links are part of the contact: an update may replace them.

use std::collections::{HashMap, HashSet};

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::events::{Event, EventType};
use super::paging::{Page, PageRequest, Position};
use super::validate::{self, Violations};
use super::{Crm, DomainError, Patch, Precondition, Tenant, Update};
use crate::repo;

pub(crate) const NAME_MAX: usize = 100;
pub(crate) const PHONE_MAX: usize = 50;
pub(crate) const TITLE_MAX: usize = 200;
pub(crate) const NOTES_MAX: usize = 10_000;
pub(crate) const LINKS_MAX: usize = 50;

named_enum!(
    /// What a contact is to an account.
    Role {
        Owner => "OWNER",
        DecisionMaker => "DECISION_MAKER",
        Billing => "BILLING",
        Technical => "TECHNICAL",
        EndUser => "END_USER",
        Other => "OTHER",
    }
);

/// A contact's relationship with one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLink {
    pub account_id: String,
    pub role: Role,
    pub linked_at: i64,
}

/// A person at a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    /// Lower-case, unique within the organization and environment.
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub notes: Option<String>,
    pub accounts: Vec<AccountLink>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(Contact);

/// A link as sent.
#[derive(Debug, Clone)]
pub struct LinkInput {
    pub account_id: String,
    pub role: String,
}

/// The fields a create or update sets; `accounts` replaces every link.
#[derive(Debug, Clone, Default)]
pub struct ContactChanges {
    pub first_name: Patch<String>,
    pub last_name: Patch<String>,
    pub email: Patch<String>,
    pub phone: Patch<String>,
    pub title: Patch<String>,
    pub notes: Patch<String>,
    pub accounts: Patch<Vec<LinkInput>>,
}

/// Filters of the contact list.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Only contacts linked to this account.
    pub account_id: Option<String>,
}

fn apply(contact: &mut Contact, changes: ContactChanges, v: &mut Violations) {
    validate::required_text(v, "firstName", changes.first_name, NAME_MAX, &mut contact.first_name);
    validate::required_text(v, "lastName", changes.last_name, NAME_MAX, &mut contact.last_name);
    match changes.email {
        Patch::Keep => {}
        Patch::Clear => contact.email = None,
        Patch::Set(text) if text.trim().is_empty() => contact.email = None,
        Patch::Set(text) => {
            if let Some(email) = validate::email(v, "email", &text) {
                contact.email = Some(email);
            }
        }
    }
    validate::optional_text(v, "phone", changes.phone, PHONE_MAX, &mut contact.phone);
    validate::optional_text(v, "title", changes.title, TITLE_MAX, &mut contact.title);
    validate::optional_text(v, "notes", changes.notes, NOTES_MAX, &mut contact.notes);
    match changes.accounts {
        Patch::Keep => {}
        Patch::Clear => v.add("accounts", "cannot be null; send [] to remove every link"),
        Patch::Set(inputs) => contact.accounts = links(v, inputs, &contact.accounts),
    }
}

/// The new set of links; a link kept from before keeps its `linked_at`.
fn links(v: &mut Violations, inputs: Vec<LinkInput>, before: &[AccountLink]) -> Vec<AccountLink> {
    if inputs.len() > LINKS_MAX {
        v.add("accounts", format!("must hold at most {LINKS_MAX} links"));
    }
    let now = now_ms();
    let mut seen = HashSet::new();
    let mut links = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let account_id = input.account_id.trim().to_owned();
        if account_id.is_empty() {
            v.add(format!("accounts[{i}].accountId"), "must not be empty");
        } else if !seen.insert(account_id.clone()) {
            v.add(format!("accounts[{i}].accountId"), "links the same account twice");
        }
        // A link with a wrong role stays in place (as OTHER, never saved: the request
        // fails) so that `accounts[i]` keeps naming the i-th link sent.
        let role = Role::parse(&input.role).unwrap_or_else(|| {
            v.add(format!("accounts[{i}].role"), format!("must be one of {}", Role::NAMES.join(", ")));
            Role::Other
        });
        let linked_at = before.iter().find(|l| l.account_id == account_id).map_or(now, |l| l.linked_at);
        links.push(AccountLink { account_id, role, linked_at });
    }
    links
}

/// Links in the order they are stored and shown: oldest first, then by account id.
fn sort_links(links: &mut [AccountLink]) {
    links.sort_by(|a, b| (a.linked_at, &a.account_id).cmp(&(b.linked_at, &b.account_id)));
}

/// Every linked account must belong to the same organization and environment.
async fn check_links(crm: &Crm, tenant: &Tenant, contact: &Contact, v: &mut Violations) -> Result<(), DomainError> {
    for (i, link) in contact.accounts.iter().enumerate() {
        if !link.account_id.is_empty() && !repo::accounts::exists(crm.pool(), tenant, &link.account_id).await? {
            v.add(format!("accounts[{i}].accountId"), format!("no account {} in this organization and environment", link.account_id));
        }
    }
    Ok(())
}

/// A duplicate e-mail as a 422 naming the contact that holds it.
async fn email_taken(crm: &Crm, tenant: &Tenant, contact: &Contact, err: sqlx::Error) -> DomainError {
    let holder = match &contact.email {
        Some(email) if breadbox_auth::db::is_unique_violation(&err) => {
            repo::contacts::find_by_email(crm.pool(), tenant, email).await.ok().flatten()
        }
        _ => None,
    };
    let issue = match holder {
        Some(id) => format!("is already used by contact {id}"),
        None => "is already used by another contact".to_owned(),
    };
    super::unique_to_invalid(err, "email", issue)
}

/// Contacts with their links, from rows in list order.
async fn with_links(crm: &Crm, tenant: &Tenant, rows: Vec<repo::contacts::ContactRecord>) -> Result<Vec<Contact>, DomainError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut links: HashMap<String, Vec<AccountLink>> = HashMap::new();
    for link in repo::contacts::links_of(crm.db(), tenant, &ids).await? {
        links.entry(link.contact_id.clone()).or_default().push(AccountLink::from(link));
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut contact = Contact::from(row);
            contact.accounts = links.remove(&contact.id).unwrap_or_default();
            contact
        })
        .collect())
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &ContactFilter, page: &PageRequest) -> Result<Page<Contact>, DomainError> {
    let rows = repo::contacts::list(crm.db(), tenant, filter, page).await?;
    let contacts = with_links(crm, tenant, rows).await?;
    Ok(Page::from_rows(contacts, page, |c: &Contact| Position { created_at: c.created_at, id: c.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<Contact, DomainError> {
    let row = repo::contacts::get(crm.db(), tenant, id).await?.ok_or(DomainError::NotFound("contact"))?;
    let mut contacts = with_links(crm, tenant, vec![row]).await?;
    contacts.pop().ok_or(DomainError::NotFound("contact"))
}

/// Creates a contact; `firstName` and `lastName` are required.
pub async fn create(crm: &Crm, tenant: &Tenant, changes: ContactChanges) -> Result<Contact, DomainError> {
    let mut v = Violations::default();
    for (field, patch) in [("firstName", &changes.first_name), ("lastName", &changes.last_name)] {
        if *patch == Patch::Keep {
            v.add(field, "is required");
        }
    }
    let now = now_ms();
    let mut contact = Contact {
        id: new_id("con"),
        first_name: String::new(),
        last_name: String::new(),
        email: None,
        phone: None,
        title: None,
        notes: None,
        accounts: Vec::new(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    apply(&mut contact, changes, &mut v);
    check_links(crm, tenant, &contact, &mut v).await?;
    v.finish(())?;
    sort_links(&mut contact.accounts);
    let events = [Event::of(EventType::ContactCreated, &contact)];
    match repo::contacts::insert(crm.writer(), crm.backend(), tenant, &contact, &events).await {
        Ok(()) => Ok(contact),
        Err(err) => Err(email_taken(crm, tenant, &contact, err).await),
    }
}

/// Applies a partial update; a change that alters nothing keeps the version.
pub async fn update(
    crm: &Crm,
    tenant: &Tenant,
    id: &str,
    changes: ContactChanges,
    precondition: &Precondition,
) -> Result<Contact, DomainError> {
    let mut update = Update::new("contact", precondition);
    loop {
        let current = get(crm, tenant, id).await?;
        let mut next = current.clone();
        let mut v = Violations::default();
        apply(&mut next, changes.clone(), &mut v);
        if next.accounts != current.accounts {
            check_links(crm, tenant, &next, &mut v).await?;
        }
        update.admit(&current, v)?;
        sort_links(&mut next.accounts);
        if next == current {
            return Ok(current);
        }
        Update::stamp(&current, &mut next);
        let links_changed = next.accounts != current.accounts;
        let events = [Event::of(EventType::ContactUpdated, &next)];
        match repo::contacts::update(crm.writer(), tenant, &next, current.version, links_changed, &events).await {
            Ok(true) => return Ok(next),
            Ok(false) => update.retry()?,
            Err(err) => return Err(email_taken(crm, tenant, &next, err).await),
        }
    }
}
