//! Touchpoints: calls, e-mails, meetings, tickets and QBRs with an account, logged by
//! external tools. A touchpoint is a record of something that happened, so it is
//! written once and not edited. A tool that sends `source` and `externalId` may send
//! the same touchpoint again: the first one stays and is returned.

use breadbox_auth::db::{is_unique_violation, now_ms};
use breadbox_auth::secret::new_id;

use super::events::{Event, EventType};
use super::health::FUTURE_SKEW_MS;
use super::paging::{Page, PageRequest, Position};
use super::validate::{self, Violations};
use super::{Crm, DomainError, Patch, Tenant};
use crate::repo;

pub(crate) const SUBJECT_MAX: usize = 200;
pub(crate) const TEXT_MAX: usize = 10_000;
pub(crate) const SOURCE_MAX: usize = 64;
pub(crate) const EXTERNAL_ID_MAX: usize = 200;

named_enum!(
    /// What kind of interaction it was.
    TouchpointType {
        Call => "CALL",
        Email => "EMAIL",
        Meeting => "MEETING",
        Ticket => "TICKET",
        Qbr => "QBR",
    }
);

/// One interaction with an account.
#[derive(Debug, Clone, PartialEq)]
pub struct Touchpoint {
    pub id: String,
    pub account_id: String,
    pub contact_id: Option<String>,
    pub kind: TouchpointType,
    pub occurred_at: i64,
    pub subject: String,
    pub summary: Option<String>,
    pub source: Option<String>,
    pub external_id: Option<String>,
    /// QBRs only.
    pub agenda: Option<String>,
    /// QBRs only.
    pub outcome: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(Touchpoint);

/// A touchpoint as logged, before validation.
#[derive(Debug, Clone, Default)]
pub struct NewTouchpoint {
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub kind: Option<String>,
    /// Parsed by the caller from RFC 3339 (`Err` when the text is not a time).
    pub occurred_at: Option<Result<i64, ()>>,
    pub subject: Option<String>,
    pub summary: Option<String>,
    pub source: Option<String>,
    pub external_id: Option<String>,
    pub agenda: Option<String>,
    pub outcome: Option<String>,
}

/// Filters of the touchpoint list.
#[derive(Debug, Clone, Default)]
pub struct TouchpointFilter {
    pub account_id: Option<String>,
    pub kind: Option<TouchpointType>,
}

/// Whether `create` stored a new touchpoint or found the one with the same
/// `source` and `externalId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    Created,
    Existing,
}

fn optional(v: &mut Violations, field: &str, value: Option<String>, max: usize) -> Option<String> {
    let mut slot = None;
    validate::optional_text(v, field, Patch::from_option(value), max, &mut slot);
    slot
}

fn required(v: &mut Violations, field: &str, value: Option<String>, max: usize) -> String {
    match value {
        None => {
            v.add(field, "is required");
            String::new()
        }
        Some(text) => validate::text(v, field, &text, max).unwrap_or_default(),
    }
}

fn check(input: NewTouchpoint, now: i64, v: &mut Violations) -> Touchpoint {
    let account_id = required(v, "accountId", input.account_id, 100);
    let contact_id = optional(v, "contactId", input.contact_id, 100);
    let kind = match input.kind {
        None => {
            v.add("type", "is required");
            None
        }
        Some(text) => TouchpointType::parse(&text).or_else(|| {
            v.add("type", format!("must be one of {}", TouchpointType::NAMES.join(", ")));
            None
        }),
    };
    let occurred_at = match input.occurred_at {
        None => {
            v.add("occurredAt", "is required");
            0
        }
        Some(Err(())) => {
            v.add("occurredAt", "must be an RFC 3339 time such as 2024-05-01T09:30:00Z");
            0
        }
        Some(Ok(ms)) if ms > now + FUTURE_SKEW_MS => {
            v.add("occurredAt", "must not be in the future (5 minutes of clock skew are allowed)");
            0
        }
        Some(Ok(ms)) => ms,
    };
    let subject = required(v, "subject", input.subject, SUBJECT_MAX);
    let summary = optional(v, "summary", input.summary, TEXT_MAX);
    let source = optional(v, "source", input.source, SOURCE_MAX);
    let external_id = optional(v, "externalId", input.external_id, EXTERNAL_ID_MAX);
    if external_id.is_some() && source.is_none() {
        v.add("externalId", "requires source: an external id is unique within its source");
    }
    let agenda = optional(v, "agenda", input.agenda, TEXT_MAX);
    let outcome = optional(v, "outcome", input.outcome, TEXT_MAX);
    let qbr = kind == Some(TouchpointType::Qbr);
    for (field, value) in [("agenda", &agenda), ("outcome", &outcome)] {
        match (qbr, value.is_some()) {
            (true, false) => v.add(field, "is required for a QBR"),
            (false, true) if kind.is_some() => v.add(field, "is allowed only for a QBR"),
            _ => {}
        }
    }
    Touchpoint {
        id: new_id("tp"),
        account_id,
        contact_id,
        kind: kind.unwrap_or(TouchpointType::Call),
        occurred_at,
        subject,
        summary,
        source,
        external_id,
        agenda,
        outcome,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &TouchpointFilter, page: &PageRequest) -> Result<Page<Touchpoint>, DomainError> {
    let rows = repo::touchpoints::list(crm.db(), tenant, filter, page).await?;
    let items = rows.into_iter().map(Touchpoint::from).collect();
    Ok(Page::from_rows(items, page, |t: &Touchpoint| Position { created_at: t.created_at, id: t.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<Touchpoint, DomainError> {
    repo::touchpoints::get(crm.db(), tenant, id).await?.map(Touchpoint::from).ok_or(DomainError::NotFound("touchpoint"))
}

async fn existing(crm: &Crm, tenant: &Tenant, t: &Touchpoint) -> Result<Option<Touchpoint>, DomainError> {
    match (&t.source, &t.external_id) {
        (Some(source), Some(external_id)) => {
            Ok(repo::touchpoints::by_external_id(crm.pool(), tenant, source, external_id).await?.map(Touchpoint::from))
        }
        _ => Ok(None),
    }
}

/// Logs a touchpoint with its `touchpoint.created` event, or returns the one already
/// logged with the same `source` and `externalId`.
pub async fn create(crm: &Crm, tenant: &Tenant, input: NewTouchpoint) -> Result<(Touchpoint, Logged), DomainError> {
    let mut v = Violations::default();
    let touchpoint = check(input, now_ms(), &mut v);
    if !touchpoint.account_id.is_empty() && !repo::accounts::exists(crm.pool(), tenant, &touchpoint.account_id).await? {
        v.add("accountId", format!("no account {} in this organization and environment", touchpoint.account_id));
    }
    if let Some(contact) = &touchpoint.contact_id {
        if !repo::contacts::exists(crm.pool(), tenant, contact).await? {
            v.add("contactId", format!("no contact {contact} in this organization and environment"));
        }
    }
    v.finish(())?;
    if let Some(found) = existing(crm, tenant, &touchpoint).await? {
        return Ok((found, Logged::Existing));
    }
    let event = Event::of(EventType::TouchpointCreated, &touchpoint);
    match repo::touchpoints::insert(crm.writer(), crm.backend(), tenant, &touchpoint, &event).await {
        Ok(()) => Ok((touchpoint, Logged::Created)),
        // Another request logged the same external id first.
        Err(err) if is_unique_violation(&err) => match existing(crm, tenant, &touchpoint).await? {
            Some(found) => Ok((found, Logged::Existing)),
            None => Err(DomainError::Db(err)),
        },
        Err(err) => Err(DomainError::Db(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(input: NewTouchpoint) -> Vec<String> {
        let mut v = Violations::default();
        check(input, 1_000_000_000_000, &mut v);
        v.into_vec().into_iter().map(|x| x.field).collect()
    }

    #[test]
    fn agenda_and_outcome_belong_to_qbrs() {
        let base = NewTouchpoint {
            account_id: Some("acc_1".into()),
            occurred_at: Some(Ok(0)),
            subject: Some("Review".into()),
            ..NewTouchpoint::default()
        };
        let qbr = NewTouchpoint { kind: Some("QBR".into()), ..base.clone() };
        assert_eq!(fields(qbr.clone()), ["agenda", "outcome"]);
        let full = NewTouchpoint { agenda: Some("Roadmap".into()), outcome: Some("Renewal".into()), ..qbr };
        assert!(fields(full.clone()).is_empty());
        let call = NewTouchpoint { kind: Some("CALL".into()), ..full };
        assert_eq!(fields(call), ["agenda", "outcome"]);
        let orphan = NewTouchpoint { kind: Some("EMAIL".into()), external_id: Some("x".into()), ..base };
        assert_eq!(fields(orphan), ["externalId"]);
    }
}
