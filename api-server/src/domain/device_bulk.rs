//! The bulk upsert of devices: up to `MAX_ITEMS` devices per call, matched to stored
//! ones by `rmmAgentId`. An item that fails validation is reported (index, agent id,
//! field, issue) and skipped; the valid items are written together in one
//! transaction, so the call either stores all of them or none. The database sees a
//! constant number of statements per batch: one read of the matching devices, one of
//! the named accounts, multi-row upserts and multi-row event inserts.

use std::collections::{HashMap, HashSet};

use breadbox_auth::db::now_ms;

use super::devices::{apply, unknown_account, Device};
use super::events::{Event, EventType};
use super::validate::Violations;
use super::{Crm, DomainError, Tenant, Update};
use crate::repo;

/// Items one call may carry.
pub const MAX_ITEMS: usize = 500;
/// Whole-batch retries when a concurrent writer changed one of its devices.
const ATTEMPTS: usize = 4;

/// One item as the API parsed it. Almost every item is `Parsed`, so the big variant
/// stays inline rather than in a box of its own per item.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum BulkItem {
    /// A well-formed item: the fields it sets (absent ones are kept on a stored device).
    Parsed(super::devices::DeviceChanges),
    /// An item the API could not read as a device (wrong JSON type, unknown field).
    Malformed { rmm_agent_id: Option<String>, field: Option<String>, issue: String },
}

/// What the upsert did with a valid item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// A valid item and the device it became.
#[derive(Debug, Clone)]
pub struct ItemResult {
    pub index: usize,
    pub id: String,
    pub rmm_agent_id: String,
    pub outcome: Outcome,
}

/// One failing field of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub index: usize,
    pub rmm_agent_id: Option<String>,
    /// None when the item as a whole is malformed.
    pub field: Option<String>,
    pub issue: String,
}

/// The answer of a bulk upsert.
#[derive(Debug, Clone, Default)]
pub struct BulkResult {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Items skipped because of `errors`.
    pub failed: usize,
    /// The valid items, in request order.
    pub items: Vec<ItemResult>,
    /// Every failing field of every skipped item, in request order.
    pub errors: Vec<ItemError>,
}

/// A valid item, checked against a blank device.
struct Candidate {
    index: usize,
    changes: super::devices::DeviceChanges,
    /// The item applied to a blank device: what it creates if the agent id is new.
    fresh: Device,
}

fn item_errors(index: usize, rmm_agent_id: Option<&str>, v: Violations) -> impl Iterator<Item = ItemError> + '_ {
    v.into_vec().into_iter().map(move |x| ItemError {
        index,
        rmm_agent_id: rmm_agent_id.map(str::to_owned),
        field: Some(x.field),
        issue: x.issue,
    })
}

/// Validates each item on its own and refuses repeated agent ids.
fn prepare(items: Vec<BulkItem>, now: i64, errors: &mut Vec<ItemError>) -> Vec<Candidate> {
    let mut first_at: HashMap<String, usize> = HashMap::new();
    let mut candidates = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let changes = match item {
            BulkItem::Parsed(changes) => changes,
            BulkItem::Malformed { rmm_agent_id, field, issue } => {
                errors.push(ItemError { index, rmm_agent_id, field, issue });
                continue;
            }
        };
        let mut v = Violations::default();
        changes.require_create_fields(&mut v);
        let mut fresh = Device::blank(now);
        apply(&mut fresh, changes.clone(), now, &mut v);
        let agent = Some(fresh.rmm_agent_id.as_str()).filter(|a| !a.is_empty());
        if let (true, Some(agent)) = (v.is_empty(), agent) {
            if let Some(first) = first_at.get(agent) {
                v.add("rmmAgentId", format!("appears more than once in this batch (first at index {first})"));
            }
        }
        if !v.is_empty() {
            errors.extend(item_errors(index, agent, v));
            continue;
        }
        first_at.insert(fresh.rmm_agent_id.clone(), index);
        candidates.push(Candidate { index, changes, fresh });
    }
    candidates
}

/// Upserts `items` by `rmmAgentId`: 1 to `MAX_ITEMS` of them, else the whole call is
/// refused. A new agent id creates a device (`accountId`, `rmmAgentId` and `hostname`
/// required, as for a create); a known one updates it with the fields sent. A stored
/// `lastSeenAt` never moves back (a late, stale batch does not age a device). Emits
/// `device.created` / `device.updated` for each device created or changed.
pub async fn upsert(crm: &Crm, tenant: &Tenant, items: Vec<BulkItem>) -> Result<BulkResult, DomainError> {
    if items.is_empty() || items.len() > MAX_ITEMS {
        let mut v = Violations::default();
        v.add("devices", format!("must hold 1 to {MAX_ITEMS} devices; got {} (split larger batches)", items.len()));
        return Err(DomainError::Invalid(v));
    }
    let mut invalid = Vec::new();
    let candidates = prepare(items, now_ms(), &mut invalid);
    let agent_ids: Vec<String> = candidates.iter().map(|c| c.fresh.rmm_agent_id.clone()).collect();
    let account_ids: Vec<String> = {
        let unique: HashSet<&String> = candidates.iter().map(|c| &c.fresh.account_id).collect();
        unique.into_iter().cloned().collect()
    };
    let known_accounts: HashSet<String> =
        repo::accounts::existing(crm.pool(), crm.backend(), tenant, &account_ids).await?.into_iter().collect();
    for attempt in 1..=ATTEMPTS {
        let stored: HashMap<String, Device> = repo::devices::by_agent_ids(crm.pool(), crm.backend(), tenant, &agent_ids)
            .await?
            .into_iter()
            .map(|r| (r.rmm_agent_id.clone(), Device::from(r)))
            .collect();
        let now = now_ms();
        let mut result = BulkResult { errors: invalid.clone(), ..BulkResult::default() };
        let (mut writes, mut events) = (Vec::new(), Vec::new());
        for c in &candidates {
            let (next, outcome) = match stored.get(&c.fresh.rmm_agent_id) {
                None => (c.fresh.clone(), Outcome::Created),
                Some(current) => {
                    let mut next = current.clone();
                    apply(&mut next, c.changes.clone(), now, &mut Violations::default());
                    if current.last_seen_at > next.last_seen_at {
                        next.last_seen_at = current.last_seen_at;
                    }
                    if next == *current {
                        (next, Outcome::Unchanged)
                    } else {
                        Update::stamp(current, &mut next);
                        (next, Outcome::Updated)
                    }
                }
            };
            if !known_accounts.contains(&next.account_id) {
                let mut v = Violations::default();
                v.add("accountId", unknown_account(&next.account_id));
                result.errors.extend(item_errors(c.index, Some(next.rmm_agent_id.as_str()), v));
                continue;
            }
            match outcome {
                Outcome::Created => result.created += 1,
                Outcome::Updated => result.updated += 1,
                Outcome::Unchanged => result.unchanged += 1,
            }
            let item = ItemResult { index: c.index, id: next.id.clone(), rmm_agent_id: next.rmm_agent_id.clone(), outcome };
            result.items.push(item);
            if outcome != Outcome::Unchanged {
                let kind = if outcome == Outcome::Created { EventType::DeviceCreated } else { EventType::DeviceUpdated };
                events.push(Event::of(kind, &next));
                writes.push(next);
            }
        }
        if writes.is_empty() || repo::devices::upsert_batch(crm.writer(), crm.backend(), tenant, &writes, &events).await? {
            result.errors.sort_by_key(|e| e.index);
            result.failed = result.errors.iter().map(|e| e.index).collect::<HashSet<_>>().len();
            return Ok(result);
        }
        tracing::debug!(attempt, "bulk device upsert lost a race; reading the batch again");
    }
    Err(DomainError::Db(sqlx::Error::Protocol("devices of the batch updated concurrently too often".to_owned())))
}
