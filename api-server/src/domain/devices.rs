//! Devices: an account's machines as its RMM sees them, keyed by the RMM's agent id
//! (unique per tenant). Created and changed one at a time here, or 500 at a time by
//! the bulk upsert (`device_bulk`). `sweep` emits the time-based events: a device not
//! seen for a while goes `device.offline` once until it is seen again; a device that
//! reaches its end-of-life date goes `device.end_of_life` once per date. Retired
//! devices raise neither.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::events::{Event, EventType};
use super::paging::{Page, PageRequest, Position};
use super::validate::{self, Violations};
use super::{unique_to_invalid, Crm, DomainError, Patch, Precondition, Tenant, Update};
use crate::repo;
use crate::time::parse_rfc3339;

pub(crate) const AGENT_ID_MAX: usize = 200;
pub(crate) const HOSTNAME_MAX: usize = 255;
pub(crate) const TEXT_MAX: usize = 200;
/// How far ahead of our clock a reported `lastSeenAt` may be (RMM clocks drift).
const FUTURE_SKEW_MS: i64 = 24 * 3_600_000;
/// Devices handled per query of the sweep.
const SWEEP_BATCH: i64 = 200;

named_enum!(
    /// What kind of machine a device is.
    Kind {
        Workstation => "WORKSTATION",
        Server => "SERVER",
        Laptop => "LAPTOP",
        Network => "NETWORK",
        Mobile => "MOBILE",
        Other => "OTHER",
    }
);

/// A time-based condition the sweep reports once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Not seen for longer than the offline threshold.
    Offline,
    /// On or past its end-of-life date.
    EndOfLife,
}

named_enum!(
    /// Whether the MSP still manages the device; `RETIRED` ones raise no events.
    Status {
        Active => "ACTIVE",
        Inactive => "INACTIVE",
        Retired => "RETIRED",
    }
);

/// A device of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: String,
    pub account_id: String,
    /// The RMM's id of the agent, unique within the tenant.
    pub rmm_agent_id: String,
    pub hostname: String,
    pub kind: Kind,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// When the RMM last heard from the agent (Unix ms).
    pub last_seen_at: Option<i64>,
    pub warranty_expires_at: Option<i64>,
    /// `YYYY-MM-DD`.
    pub end_of_life_date: Option<String>,
    pub status: Status,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(Device);

impl Device {
    /// A device with no fields set yet, to apply a create to.
    pub(crate) fn blank(now: i64) -> Device {
        Device {
            id: new_id("dev"),
            account_id: String::new(),
            rmm_agent_id: String::new(),
            hostname: String::new(),
            kind: Kind::Other,
            os: None,
            os_version: None,
            serial_number: None,
            manufacturer: None,
            model: None,
            last_seen_at: None,
            warranty_expires_at: None,
            end_of_life_date: None,
            status: Status::Active,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The fields a create, update or bulk item sets.
#[derive(Debug, Clone, Default)]
pub struct DeviceChanges {
    pub account_id: Patch<String>,
    pub rmm_agent_id: Patch<String>,
    pub hostname: Patch<String>,
    pub kind: Patch<String>,
    pub os: Patch<String>,
    pub os_version: Patch<String>,
    pub serial_number: Patch<String>,
    pub manufacturer: Patch<String>,
    pub model: Patch<String>,
    /// RFC 3339.
    pub last_seen_at: Patch<String>,
    /// RFC 3339.
    pub warranty_expires_at: Patch<String>,
    /// `YYYY-MM-DD`.
    pub end_of_life_date: Patch<String>,
    pub status: Patch<String>,
}

impl DeviceChanges {
    /// Records every field a new device must have but `self` does not set.
    pub(crate) fn require_create_fields(&self, v: &mut Violations) {
        for (field, missing) in [
            ("accountId", self.account_id == Patch::Keep),
            ("rmmAgentId", self.rmm_agent_id == Patch::Keep),
            ("hostname", self.hostname == Patch::Keep),
        ] {
            if missing {
                v.add(field, "is required");
            }
        }
    }
}

/// Filters of the device list.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub account_id: Option<String>,
    pub kind: Option<Kind>,
    pub status: Option<Status>,
}

fn instant(v: &mut Violations, field: &str, patch: Patch<String>, now: i64, slot: &mut Option<i64>) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => *slot = None,
        Patch::Set(text) => match parse_rfc3339(text.trim()) {
            Some(ms) if field == "lastSeenAt" && ms > now + FUTURE_SKEW_MS => {
                v.add(field, "must not be more than a day in the future");
            }
            Some(ms) => *slot = Some(ms),
            None => v.add(field, "must be an RFC 3339 time such as 2024-05-01T12:00:00Z"),
        },
    }
}

/// Applies `changes` to `device`, recording each failing field in `v`.
pub(crate) fn apply(device: &mut Device, changes: DeviceChanges, now: i64, v: &mut Violations) {
    match changes.account_id {
        Patch::Keep => {}
        Patch::Clear => v.add("accountId", "is required and cannot be null"),
        Patch::Set(id) if id.trim().is_empty() => v.add("accountId", "must not be empty"),
        Patch::Set(id) => device.account_id = id.trim().to_owned(),
    }
    validate::required_text(v, "rmmAgentId", changes.rmm_agent_id, AGENT_ID_MAX, &mut device.rmm_agent_id);
    validate::required_text(v, "hostname", changes.hostname, HOSTNAME_MAX, &mut device.hostname);
    validate::required_enum(v, "kind", changes.kind, Kind::parse, Kind::NAMES, &mut device.kind);
    validate::optional_text(v, "os", changes.os, TEXT_MAX, &mut device.os);
    validate::optional_text(v, "osVersion", changes.os_version, TEXT_MAX, &mut device.os_version);
    validate::optional_text(v, "serialNumber", changes.serial_number, TEXT_MAX, &mut device.serial_number);
    validate::optional_text(v, "manufacturer", changes.manufacturer, TEXT_MAX, &mut device.manufacturer);
    validate::optional_text(v, "model", changes.model, TEXT_MAX, &mut device.model);
    instant(v, "lastSeenAt", changes.last_seen_at, now, &mut device.last_seen_at);
    instant(v, "warrantyExpiresAt", changes.warranty_expires_at, now, &mut device.warranty_expires_at);
    match changes.end_of_life_date {
        Patch::Keep => {}
        Patch::Clear => device.end_of_life_date = None,
        Patch::Set(text) => match date(&text) {
            Some(date) => device.end_of_life_date = Some(date),
            None => v.add("endOfLifeDate", "must be a date as YYYY-MM-DD"),
        },
    }
    validate::required_enum(v, "status", changes.status, Status::parse, Status::NAMES, &mut device.status);
}

fn date(text: &str) -> Option<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text.trim(), &format).ok().and_then(|d| d.format(&format).ok())
}

/// The UTC date of a Unix-ms instant, as `YYYY-MM-DD`.
fn utc_date(ms: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    at.date().format(&format).ok()
}

pub(crate) fn unknown_account(id: &str) -> String {
    format!("no account {id} in this organization and environment")
}

fn duplicate_agent(err: sqlx::Error) -> DomainError {
    unique_to_invalid(err, "rmmAgentId", "another device of this organization and environment has this rmmAgentId")
}

async fn check_account(crm: &Crm, tenant: &Tenant, device: &Device, v: &mut Violations) -> Result<(), DomainError> {
    if !device.account_id.is_empty() && !repo::accounts::exists(crm.pool(), tenant, &device.account_id).await? {
        v.add("accountId", unknown_account(&device.account_id));
    }
    Ok(())
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &DeviceFilter, page: &PageRequest) -> Result<Page<Device>, DomainError> {
    let rows = repo::devices::list(crm.db(), tenant, filter, page).await?;
    let devices = rows.into_iter().map(Device::from).collect();
    Ok(Page::from_rows(devices, page, |d: &Device| Position { created_at: d.created_at, id: d.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<Device, DomainError> {
    repo::devices::get(crm.db(), tenant, id).await?.map(Device::from).ok_or(DomainError::NotFound("device"))
}

/// Creates a device; `accountId`, `rmmAgentId` and `hostname` are required, `kind`
/// defaults to `OTHER` and `status` to `ACTIVE`. Emits `device.created`.
pub async fn create(crm: &Crm, tenant: &Tenant, changes: DeviceChanges) -> Result<Device, DomainError> {
    let mut v = Violations::default();
    changes.require_create_fields(&mut v);
    let now = now_ms();
    let mut device = Device::blank(now);
    apply(&mut device, changes, now, &mut v);
    check_account(crm, tenant, &device, &mut v).await?;
    v.finish(())?;
    let events = [Event::of(EventType::DeviceCreated, &device)];
    repo::devices::insert(crm.writer(), crm.backend(), tenant, &device, &events).await.map_err(duplicate_agent)?;
    Ok(device)
}

/// Applies a partial update; a change that alters nothing keeps the version and emits
/// nothing, any other emits `device.updated`.
pub async fn update(
    crm: &Crm,
    tenant: &Tenant,
    id: &str,
    changes: DeviceChanges,
    precondition: &Precondition,
) -> Result<Device, DomainError> {
    let mut update = Update::new("device", precondition);
    loop {
        let current = get(crm, tenant, id).await?;
        let mut next = current.clone();
        let mut v = Violations::default();
        apply(&mut next, changes.clone(), now_ms(), &mut v);
        if next.account_id != current.account_id {
            check_account(crm, tenant, &next, &mut v).await?;
        }
        update.admit(&current, v)?;
        if next == current {
            return Ok(current);
        }
        Update::stamp(&current, &mut next);
        let events = [Event::of(EventType::DeviceUpdated, &next)];
        if repo::devices::update(crm.writer(), tenant, &next, current.version, &events).await.map_err(duplicate_agent)? {
            return Ok(next);
        }
        update.retry()?;
    }
}

/// Emits the time-based device events of every tenant, each once per device and
/// condition: `device.offline` for a device last seen more than `offline_after_ms`
/// before `now_ms` (again only after it was seen since), `device.end_of_life` for one
/// whose end-of-life date is on or before `now_ms`'s UTC date (again only if the date
/// changes). Retired devices are skipped. Returns the number of events emitted. Safe
/// to run on several instances at once: each device's event is claimed by one.
pub async fn sweep(crm: &Crm, now_ms: i64, offline_after_ms: i64) -> Result<u64, DomainError> {
    let mut emitted = 0;
    let seen_before = now_ms.saturating_sub(offline_after_ms);
    loop {
        let due = repo::devices::offline_due(crm.pool(), seen_before, SWEEP_BATCH).await?;
        let count = due.len() as i64;
        emitted += claim_all(crm, due, Condition::Offline, now_ms).await?;
        if count < SWEEP_BATCH {
            break;
        }
    }
    let Some(today) = utc_date(now_ms) else {
        return Ok(emitted);
    };
    loop {
        let due = repo::devices::end_of_life_due(crm.pool(), &today, SWEEP_BATCH).await?;
        let count = due.len() as i64;
        emitted += claim_all(crm, due, Condition::EndOfLife, now_ms).await?;
        if count < SWEEP_BATCH {
            break;
        }
    }
    Ok(emitted)
}

async fn claim_all(
    crm: &Crm,
    due: Vec<repo::devices::DueDevice>,
    condition: Condition,
    now_ms: i64,
) -> Result<u64, DomainError> {
    let kind = match condition {
        Condition::Offline => EventType::DeviceOffline,
        Condition::EndOfLife => EventType::DeviceEndOfLife,
    };
    let mut claimed = 0;
    for due in due {
        let (tenant, device) = (due.tenant, Device::from(due.device));
        let event = Event::of(kind, &device);
        if repo::devices::claim(crm.writer(), &tenant, &device, condition, now_ms, &event).await? {
            claimed += 1;
        }
    }
    Ok(claimed)
}
