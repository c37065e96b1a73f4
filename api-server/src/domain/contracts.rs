//! Contracts: what an account buys, as service lines, for a period. Operators create
//! them and amend them (an amendment is the only way a contract changes, and it records
//! what it changed); integrators read them. `sweep_expiring` warns before the end date.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;
use serde_json::{json, Value};

use super::events::{Event, EventType};
use super::paging::{Page, PageRequest, Position};
use super::service_lines::{parse_lines, LineInput, ServiceLine, Totals};
use super::validate::{self, Violations};
use super::{Crm, DomainError, Patch, Precondition, Tenant, Update};
use crate::repo;

pub(crate) const NAME_MAX: usize = 200;
pub(crate) const NOTES_MAX: usize = 10_000;
pub(crate) const DESCRIPTION_MAX: usize = 2_000;
/// Days before the end date at which `contract.expiring_soon` is sent, once each.
pub const EXPIRY_THRESHOLDS: [i64; 2] = [60, 30];

named_enum!(
    /// Where a contract stands. Only `ACTIVE` contracts count towards MRR and
    /// reconciliation.
    ContractStatus {
        Draft => "DRAFT",
        Active => "ACTIVE",
        Expired => "EXPIRED",
        Cancelled => "CANCELLED",
    }
);

/// A contract without its lines and amendments (as lists show it).
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub status: ContractStatus,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    /// `YYYY-MM-DD`, the last day covered; none for an open-ended contract.
    pub end_date: Option<String>,
    pub auto_renew: bool,
    /// ISO 4217 code, upper case.
    pub currency: String,
    pub notes: Option<String>,
    pub totals: Totals,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(Contract);

/// One field an amendment changed, with its values before and after as the API shows
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

/// A recorded change to a contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Amendment {
    pub id: String,
    /// The contract's version this amendment produced.
    pub contract_version: i64,
    /// `YYYY-MM-DD`, when the change takes effect commercially.
    pub effective_date: String,
    pub description: String,
    pub changes: Vec<FieldChange>,
    /// The API key or OAuth client (or `cli`) that made it.
    pub created_by: String,
    pub created_at: i64,
}

/// A contract with its service lines and amendments.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractDetail {
    pub contract: Contract,
    pub lines: Vec<ServiceLine>,
    pub amendments: Vec<Amendment>,
}

/// A contract as sent by an operator; every field is checked by `create`.
#[derive(Debug, Clone, Default)]
pub struct NewContract {
    pub account_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub auto_renew: Option<bool>,
    pub currency: Option<String>,
    pub notes: Option<String>,
    pub service_lines: Option<Vec<LineInput>>,
}

/// An amendment as sent: what it says and the fields it changes (`serviceLines`
/// replaces every line).
#[derive(Debug, Clone, Default)]
pub struct AmendmentInput {
    pub effective_date: Option<String>,
    pub description: Option<String>,
    pub name: Patch<String>,
    pub status: Patch<String>,
    pub end_date: Patch<String>,
    pub auto_renew: Patch<bool>,
    pub notes: Patch<String>,
    pub service_lines: Option<Vec<LineInput>>,
}

/// Filters of the contract list.
#[derive(Debug, Clone, Default)]
pub struct ContractFilter {
    pub account_id: Option<String>,
    pub status: Option<ContractStatus>,
}

fn currency(v: &mut Violations, code: &str) -> Option<String> {
    let code = code.trim();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Some(code.to_ascii_uppercase())
    } else {
        v.add("currency", "must be a three-letter ISO 4217 code such as USD");
        None
    }
}

fn check_period(contract: &Contract, v: &mut Violations) {
    if contract.end_date.as_deref().is_some_and(|end| end < contract.start_date.as_str()) {
        v.add("endDate", "must not be before startDate");
    }
}

async fn check_account(crm: &Crm, tenant: &Tenant, account_id: &str, v: &mut Violations) -> Result<(), DomainError> {
    if !account_id.is_empty() && !repo::accounts::exists(crm.pool(), tenant, account_id).await? {
        v.add("accountId", format!("no account {account_id} in this organization and environment"));
    }
    Ok(())
}

/// Creates a contract; `accountId`, `name`, `startDate` and `serviceLines` are
/// required, `status` defaults to `DRAFT`, `currency` to `USD`, `autoRenew` to false.
/// Emits `contract.created` in the same transaction.
pub async fn create(crm: &Crm, tenant: &Tenant, input: NewContract) -> Result<ContractDetail, DomainError> {
    let mut v = Violations::default();
    let now = now_ms();
    let mut contract = Contract {
        id: new_id("ctr"),
        account_id: String::new(),
        name: String::new(),
        status: ContractStatus::Draft,
        start_date: String::new(),
        end_date: None,
        auto_renew: input.auto_renew.unwrap_or(false),
        currency: "USD".to_owned(),
        notes: None,
        totals: Totals::default(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    match input.account_id.as_deref().map(str::trim) {
        None => v.add("accountId", "is required"),
        Some("") => v.add("accountId", "must not be empty"),
        Some(id) => contract.account_id = id.to_owned(),
    }
    match input.name {
        None => v.add("name", "is required"),
        Some(name) => validate::required_text(&mut v, "name", Patch::Set(name), NAME_MAX, &mut contract.name),
    }
    if let Some(status) = input.status {
        let (parse, names) = (ContractStatus::parse, ContractStatus::NAMES);
        validate::required_enum(&mut v, "status", Patch::Set(status), parse, names, &mut contract.status);
    }
    match input.start_date {
        None => v.add("startDate", "is required"),
        Some(text) => contract.start_date = validate::date(&mut v, "startDate", &text).unwrap_or_default(),
    }
    if let Some(text) = input.end_date {
        contract.end_date = validate::date(&mut v, "endDate", &text);
    }
    if let Some(code) = input.currency {
        contract.currency = currency(&mut v, &code).unwrap_or_default();
    }
    validate::optional_text(&mut v, "notes", Patch::from_option(input.notes), NOTES_MAX, &mut contract.notes);
    let lines = match input.service_lines {
        None => {
            v.add("serviceLines", "is required");
            Vec::new()
        }
        Some(inputs) => parse_lines(&mut v, inputs),
    };
    if !contract.start_date.is_empty() {
        check_period(&contract, &mut v);
    }
    check_account(crm, tenant, &contract.account_id, &mut v).await?;
    v.finish(())?;
    contract.totals = Totals::of(&lines);
    let detail = ContractDetail { contract, lines, amendments: Vec::new() };
    let event = Event::of(EventType::ContractCreated, &detail);
    repo::contracts::insert(crm.writer(), tenant, &detail.contract, &detail.lines, &event).await?;
    Ok(detail)
}

fn lines_value(lines: &[ServiceLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                json!({
                    "category": l.category.as_str(),
                    "description": l.description,
                    "quantity": l.quantity,
                    "unitPrice": l.unit_price,
                    "billingPeriod": l.billing_period.as_str(),
                })
            })
            .collect(),
    )
}

/// Applies the fields of an amendment to `next`, returning the new lines (if replaced)
/// and what changed.
fn apply(
    current: &ContractDetail,
    next: &mut Contract,
    input: &AmendmentInput,
    v: &mut Violations,
) -> (Option<Vec<ServiceLine>>, Vec<FieldChange>) {
    validate::required_text(v, "name", input.name.clone(), NAME_MAX, &mut next.name);
    let (parse, names) = (ContractStatus::parse, ContractStatus::NAMES);
    validate::required_enum(v, "status", input.status.clone(), parse, names, &mut next.status);
    match &input.end_date {
        Patch::Keep => {}
        Patch::Clear => next.end_date = None,
        Patch::Set(text) => next.end_date = validate::date(v, "endDate", text).or(next.end_date.take()),
    }
    match input.auto_renew {
        Patch::Keep => {}
        Patch::Clear => v.add("autoRenew", "cannot be null"),
        Patch::Set(flag) => next.auto_renew = flag,
    }
    validate::optional_text(v, "notes", input.notes.clone(), NOTES_MAX, &mut next.notes);
    check_period(next, v);
    let lines = input.service_lines.clone().map(|inputs| parse_lines(v, inputs));

    let before = &current.contract;
    let mut changes = Vec::new();
    let mut note = |field: &str, from: Value, to: Value| {
        if from != to {
            changes.push(FieldChange { field: field.to_owned(), from, to });
        }
    };
    note("name", json!(before.name), json!(next.name));
    note("status", json!(before.status.as_str()), json!(next.status.as_str()));
    note("endDate", json!(before.end_date), json!(next.end_date));
    note("autoRenew", json!(before.auto_renew), json!(next.auto_renew));
    note("notes", json!(before.notes), json!(next.notes));
    if let Some(lines) = &lines {
        note("serviceLines", lines_value(&current.lines), lines_value(lines));
    }
    (lines, changes)
}

/// Records an amendment: applies its changes (a new version of the contract), keeps
/// what changed, and emits `contract.updated` in the same transaction. With `If-Match`,
/// only if the contract is still at that version.
pub async fn amend(
    crm: &Crm,
    tenant: &Tenant,
    id: &str,
    input: AmendmentInput,
    precondition: &Precondition,
    actor: &str,
) -> Result<ContractDetail, DomainError> {
    let mut update = Update::new("contract", precondition);
    loop {
        let current = get(crm, tenant, id).await?;
        let mut v = Violations::default();
        let effective_date = match &input.effective_date {
            None => {
                v.add("effectiveDate", "is required");
                None
            }
            Some(text) => validate::date(&mut v, "effectiveDate", text),
        };
        let description = match &input.description {
            None => {
                v.add("description", "is required");
                None
            }
            Some(text) => validate::text(&mut v, "description", text, DESCRIPTION_MAX),
        };
        let mut next = current.contract.clone();
        let (lines, changes) = apply(&current, &mut next, &input, &mut v);
        update.admit(&current.contract, v)?;
        let lines = lines.unwrap_or_else(|| current.lines.clone());
        next.totals = Totals::of(&lines);
        Update::stamp(&current.contract, &mut next);
        let amendment = Amendment {
            id: new_id("amd"),
            contract_version: next.version,
            effective_date: effective_date.unwrap_or_default(),
            description: description.unwrap_or_default(),
            changes,
            created_by: actor.to_owned(),
            created_at: next.updated_at,
        };
        let lines_changed = lines != current.lines;
        let mut amendments = current.amendments.clone();
        amendments.push(amendment.clone());
        let detail = ContractDetail { contract: next, lines, amendments };
        let event = Event::of(EventType::ContractUpdated, &detail);
        let replaced = lines_changed.then_some(detail.lines.as_slice());
        let expected = current.contract.version;
        let saved = repo::contracts::amend(crm.writer(), tenant, &detail.contract, expected, replaced, &amendment, &event).await?;
        if saved {
            return Ok(detail);
        }
        update.retry()?;
    }
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &ContractFilter, page: &PageRequest) -> Result<Page<Contract>, DomainError> {
    let rows = repo::contracts::list(crm.db(), tenant, filter, page).await?;
    let contracts = rows.into_iter().map(Contract::from).collect();
    Ok(Page::from_rows(contracts, page, |c: &Contract| Position { created_at: c.created_at, id: c.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<ContractDetail, DomainError> {
    let contract = repo::contracts::get(crm.db(), tenant, id).await?.map(Contract::from).ok_or(DomainError::NotFound("contract"))?;
    let lines = repo::contracts::lines(crm.db(), tenant, id).await?;
    let amendments = repo::contracts::amendments(crm.db(), tenant, id).await?;
    Ok(ContractDetail { contract, lines, amendments })
}

fn parse_date(text: &str) -> Option<time::Date> {
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// Emits `contract.expiring_soon` for every `ACTIVE` contract of every organization
/// whose end date is at most 60, then at most 30 days after the UTC date of `now_ms`,
/// once per contract, threshold and end date (an amendment that moves the end date
/// arms the thresholds again). A contract first seen inside both thresholds gets one
/// event, for 30 days. Returns the number of events emitted. Safe to run from several
/// instances at once: the notice table lets one of them win.
pub async fn sweep_expiring(crm: &Crm, now_ms: i64) -> Result<u64, DomainError> {
    let today = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .map_err(|e| DomainError::Db(sqlx::Error::Protocol(format!("time out of range: {e}"))))?
        .date();
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let widest = EXPIRY_THRESHOLDS.iter().copied().max().unwrap_or(0);
    let horizon = today.saturating_add(time::Duration::days(widest));
    let (from, to) = (today.format(&format), horizon.format(&format));
    let (Ok(from), Ok(to)) = (from, to) else {
        return Ok(0);
    };
    let mut emitted = 0;
    for (tenant, record) in repo::contract_expiry::ending_between(crm.pool(), &from, &to).await? {
        let contract = Contract::from(record);
        let Some(end) = contract.end_date.as_deref().and_then(parse_date) else {
            continue;
        };
        let days_left = (end - today).whole_days();
        let end_date = end.format(&format).unwrap_or_default();
        let sent = repo::contract_expiry::notices_sent(crm.pool(), &contract.id, &end_date).await?;
        let due: Vec<i64> = EXPIRY_THRESHOLDS.iter().copied().filter(|t| days_left <= *t && !sent.contains(t)).collect();
        if due.is_empty() {
            continue;
        }
        let detail = get(crm, &tenant, &contract.id).await?;
        let event = Event::of(EventType::ContractExpiringSoon, &detail);
        if repo::contract_expiry::record_notices(crm.writer(), &tenant, &contract.id, &due, &end_date, &event).await? {
            emitted += 1;
        }
    }
    Ok(emitted)
}
