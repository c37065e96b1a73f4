//! Deals: the sales pipeline of one account. A deal moves through stages and closes as
//! `WON` or `LOST` (a lost deal says why); every stage change is kept in its history,
//! with who made it. A closed deal may be reopened: that is a stage change too.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::events::{Event, EventType};
use super::paging::{Page, PageRequest, Position};
use super::validate::{self, Violations};
use super::{Crm, DomainError, Patch, Precondition, Tenant, Update};
use crate::repo;

pub(crate) const NAME_MAX: usize = 200;
pub(crate) const REASON_MAX: usize = 1_000;
pub(crate) const NOTES_MAX: usize = 10_000;
/// A trillion in major units, in minor units: far above any real deal.
pub(crate) const AMOUNT_MAX: i64 = 100_000_000_000_000;

named_enum!(
    /// A pipeline stage; `WON` and `LOST` close the deal.
    Stage {
        Discovery => "DISCOVERY",
        Assessment => "ASSESSMENT",
        Proposal => "PROPOSAL",
        Negotiation => "NEGOTIATION",
        Won => "WON",
        Lost => "LOST",
    }
);

impl Stage {
    pub fn is_closed(self) -> bool {
        matches!(self, Stage::Won | Stage::Lost)
    }
}

/// A deal with one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub stage: Stage,
    /// In minor units of `currency` (cents).
    pub amount: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// `YYYY-MM-DD`.
    pub expected_close_date: Option<String>,
    /// When the deal entered `WON` or `LOST`; none while open.
    pub closed_at: Option<i64>,
    /// Why it was won or lost; required for `LOST`, none while open.
    pub outcome_reason: Option<String>,
    pub notes: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(Deal);

/// One move of a deal between stages (`from` is none for the stage it was created in).
#[derive(Debug, Clone, PartialEq)]
pub struct StageChange {
    pub from: Option<Stage>,
    pub to: Stage,
    /// The outcome reason given when the change closed the deal.
    pub reason: Option<String>,
    /// The credential (API key or OAuth client id) that made the change.
    pub changed_by: String,
    pub changed_at: i64,
    /// The deal version this change produced.
    pub deal_version: i64,
}

/// A deal with its stage history, oldest change first.
#[derive(Debug, Clone)]
pub struct DealDetail {
    pub deal: Deal,
    pub history: Vec<StageChange>,
}

/// The fields a create or update sets.
#[derive(Debug, Clone, Default)]
pub struct DealChanges {
    pub account_id: Patch<String>,
    pub name: Patch<String>,
    pub stage: Patch<String>,
    pub amount: Patch<i64>,
    pub currency: Patch<String>,
    pub expected_close_date: Patch<String>,
    pub outcome_reason: Patch<String>,
    pub notes: Patch<String>,
}

/// Filters of the deal list.
#[derive(Debug, Clone, Default)]
pub struct DealFilter {
    pub stage: Option<Stage>,
    pub account_id: Option<String>,
}

fn apply(deal: &mut Deal, changes: DealChanges, v: &mut Violations) {
    match changes.account_id {
        Patch::Keep => {}
        Patch::Clear => v.add("accountId", "is required and cannot be null"),
        Patch::Set(id) if id.trim().is_empty() => v.add("accountId", "must not be empty"),
        Patch::Set(id) => deal.account_id = id.trim().to_owned(),
    }
    validate::required_text(v, "name", changes.name, NAME_MAX, &mut deal.name);
    validate::required_enum(v, "stage", changes.stage, Stage::parse, Stage::NAMES, &mut deal.stage);
    match changes.amount {
        Patch::Keep => {}
        Patch::Clear => v.add("amount", "is required and cannot be null"),
        Patch::Set(n) if !(0..=AMOUNT_MAX).contains(&n) => v.add("amount", format!("must be between 0 and {AMOUNT_MAX}")),
        Patch::Set(n) => deal.amount = n,
    }
    match changes.currency {
        Patch::Keep => {}
        Patch::Clear => v.add("currency", "is required and cannot be null"),
        Patch::Set(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            deal.currency = code.to_ascii_uppercase();
        }
        Patch::Set(_) => v.add("currency", "must be a three-letter ISO 4217 code such as USD"),
    }
    match changes.expected_close_date {
        Patch::Keep => {}
        Patch::Clear => deal.expected_close_date = None,
        Patch::Set(text) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            match time::Date::parse(text.trim(), &format) {
                Ok(date) => deal.expected_close_date = date.format(&format).ok(),
                Err(_) => v.add("expectedCloseDate", "must be a date as YYYY-MM-DD"),
            }
        }
    }
    validate::optional_text(v, "outcomeReason", changes.outcome_reason, REASON_MAX, &mut deal.outcome_reason);
    validate::optional_text(v, "notes", changes.notes, NOTES_MAX, &mut deal.notes);
}

/// The rules of stages, applied after the fields: entering `WON`/`LOST` closes the deal,
/// leaving them reopens it; a stage change drops the old outcome reason unless a new one
/// is sent (refused while open); `LOST` needs a reason. Returns the stage change, if
/// any, as part of the deal's next `version`.
fn settle(
    before: Option<&Deal>,
    deal: &mut Deal,
    reason_sent: bool,
    actor: &str,
    version: i64,
    v: &mut Violations,
) -> Option<StageChange> {
    let from = before.map(|b| b.stage);
    let moved = from != Some(deal.stage);
    if moved {
        deal.closed_at = deal.stage.is_closed().then(now_ms);
        if !reason_sent {
            // The old outcome's reason does not carry over to a reopened deal or
            // to the other outcome.
            deal.outcome_reason = None;
        }
    }
    if !deal.stage.is_closed() && deal.outcome_reason.is_some() {
        v.add("outcomeReason", "only a WON or LOST deal has an outcome reason");
    }
    if deal.stage == Stage::Lost && deal.outcome_reason.is_none() {
        v.add("outcomeReason", "is required when the stage is LOST");
    }
    moved.then(|| StageChange {
        from,
        to: deal.stage,
        reason: deal.outcome_reason.clone().filter(|_| deal.stage.is_closed()),
        changed_by: actor.to_owned(),
        changed_at: deal.closed_at.unwrap_or_else(now_ms),
        deal_version: version,
    })
}

async fn check_account(crm: &Crm, tenant: &Tenant, deal: &Deal, v: &mut Violations) -> Result<(), DomainError> {
    if !deal.account_id.is_empty() && !repo::accounts::exists(crm.pool(), tenant, &deal.account_id).await? {
        v.add("accountId", format!("no account {} in this organization and environment", deal.account_id));
    }
    Ok(())
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &DealFilter, page: &PageRequest) -> Result<Page<Deal>, DomainError> {
    let rows = repo::deals::list(crm.db(), tenant, filter, page).await?;
    let deals = rows.into_iter().map(Deal::from).collect();
    Ok(Page::from_rows(deals, page, |d: &Deal| Position { created_at: d.created_at, id: d.id.clone() }))
}

async fn get_deal(crm: &Crm, tenant: &Tenant, id: &str) -> Result<Deal, DomainError> {
    repo::deals::get(crm.db(), tenant, id).await?.map(Deal::from).ok_or(DomainError::NotFound("deal"))
}

async fn with_history(crm: &Crm, tenant: &Tenant, deal: Deal) -> Result<DealDetail, DomainError> {
    let history = repo::deals::history(crm.db(), tenant, &deal.id).await?;
    Ok(DealDetail { deal, history: history.into_iter().map(StageChange::from).collect() })
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<DealDetail, DomainError> {
    let deal = get_deal(crm, tenant, id).await?;
    with_history(crm, tenant, deal).await
}

/// Creates a deal; `accountId`, `name` and `amount` are required, `stage` defaults to
/// `DISCOVERY` and `currency` to `USD`. `actor` is the calling credential.
pub async fn create(crm: &Crm, tenant: &Tenant, changes: DealChanges, actor: &str) -> Result<DealDetail, DomainError> {
    let mut v = Violations::default();
    for (field, missing) in [
        ("accountId", changes.account_id == Patch::Keep),
        ("name", changes.name == Patch::Keep),
        ("amount", changes.amount == Patch::Keep),
    ] {
        if missing {
            v.add(field, "is required");
        }
    }
    let reason_sent = matches!(changes.outcome_reason, Patch::Set(_));
    let now = now_ms();
    let mut deal = Deal {
        id: new_id("deal"),
        account_id: String::new(),
        name: String::new(),
        stage: Stage::Discovery,
        amount: 0,
        currency: "USD".to_owned(),
        expected_close_date: None,
        closed_at: None,
        outcome_reason: None,
        notes: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    apply(&mut deal, changes, &mut v);
    let change = settle(None, &mut deal, reason_sent, actor, 1, &mut v);
    check_account(crm, tenant, &deal, &mut v).await?;
    v.finish(())?;
    let detail = DealDetail { deal, history: change.into_iter().collect() };
    let events = [Event::of(EventType::DealCreated, &detail)];
    repo::deals::insert(crm.writer(), crm.backend(), tenant, &detail.deal, &detail.history, &events).await?;
    Ok(detail)
}

/// The events of an update from `before` to `after`: `deal.stage_changed` for any move
/// between stages, plus `deal.closed_won`/`deal.closed_lost` when it closes the deal.
fn events_of_update(before: &Deal, after: &DealDetail) -> Vec<Event> {
    let stage = after.deal.stage;
    if stage == before.stage {
        return Vec::new();
    }
    let mut events = vec![Event::of(EventType::DealStageChanged, after)];
    match stage {
        Stage::Won => events.push(Event::of(EventType::DealClosedWon, after)),
        Stage::Lost => events.push(Event::of(EventType::DealClosedLost, after)),
        _ => {}
    }
    events
}

/// Applies a partial update (a stage change is recorded in the history); a change that
/// alters nothing keeps the version.
pub async fn update(
    crm: &Crm,
    tenant: &Tenant,
    id: &str,
    changes: DealChanges,
    precondition: &Precondition,
    actor: &str,
) -> Result<DealDetail, DomainError> {
    let reason_sent = matches!(changes.outcome_reason, Patch::Set(_));
    let mut update = Update::new("deal", precondition);
    loop {
        let current = get_deal(crm, tenant, id).await?;
        let mut next = current.clone();
        let mut v = Violations::default();
        apply(&mut next, changes.clone(), &mut v);
        let change = settle(Some(&current), &mut next, reason_sent, actor, current.version + 1, &mut v);
        if next.account_id != current.account_id {
            check_account(crm, tenant, &next, &mut v).await?;
        }
        update.admit(&current, v)?;
        if next == current {
            return with_history(crm, tenant, current).await;
        }
        Update::stamp(&current, &mut next);
        let mut detail = with_history(crm, tenant, next).await?;
        detail.history.extend(change.clone());
        let events = events_of_update(&current, &detail);
        if repo::deals::update(crm.writer(), tenant, &detail.deal, current.version, change.as_ref(), &events).await? {
            return Ok(detail);
        }
        update.retry()?;
    }
}
