//! `/api/v1/devices`: the device inventory an RMM pushes (the bulk upsert is in
//! `device_bulk`).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object, OpenApi};

use super::body::JsonBody;
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::paging::Listing;
use super::security::{Auth, DevicesRead, DevicesWrite, Scopes};
use super::memo;
use super::wire::{given, patch, precondition, to_wire, Body, Created, EnumText, Fetched, IdempotencyKey, ListHeader, NoneMatch, Required, Tagged};
use super::ApiTags;
use crate::domain::devices::{self as domain, DeviceChanges, DeviceFilter};
use crate::domain::events::Wire;
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::List;
use crate::error::ApiError;
use crate::time::rfc3339;

/// What kind of machine a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceKind {
    Workstation,
    Server,
    Laptop,
    Network,
    Mobile,
    Other,
}

impl From<domain::Kind> for DeviceKind {
    fn from(k: domain::Kind) -> Self {
        match k {
            domain::Kind::Workstation => DeviceKind::Workstation,
            domain::Kind::Server => DeviceKind::Server,
            domain::Kind::Laptop => DeviceKind::Laptop,
            domain::Kind::Network => DeviceKind::Network,
            domain::Kind::Mobile => DeviceKind::Mobile,
            domain::Kind::Other => DeviceKind::Other,
        }
    }
}

impl From<DeviceKind> for domain::Kind {
    fn from(k: DeviceKind) -> Self {
        match k {
            DeviceKind::Workstation => domain::Kind::Workstation,
            DeviceKind::Server => domain::Kind::Server,
            DeviceKind::Laptop => domain::Kind::Laptop,
            DeviceKind::Network => domain::Kind::Network,
            DeviceKind::Mobile => domain::Kind::Mobile,
            DeviceKind::Other => domain::Kind::Other,
        }
    }
}

/// Whether the MSP still manages a device. `RETIRED` devices raise no
/// `device.offline` or `device.end_of_life` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceStatus {
    Active,
    Inactive,
    Retired,
}

impl From<domain::Status> for DeviceStatus {
    fn from(s: domain::Status) -> Self {
        match s {
            domain::Status::Active => DeviceStatus::Active,
            domain::Status::Inactive => DeviceStatus::Inactive,
            domain::Status::Retired => DeviceStatus::Retired,
        }
    }
}

impl From<DeviceStatus> for domain::Status {
    fn from(s: DeviceStatus) -> Self {
        match s {
            DeviceStatus::Active => domain::Status::Active,
            DeviceStatus::Inactive => domain::Status::Inactive,
            DeviceStatus::Retired => domain::Status::Retired,
        }
    }
}

// Also `serde::Serialize`, to the same JSON (a test holds them equal): a bulk upsert
// writes up to 500 device events, whose data is then written straight to text rather
// than through a `serde_json::Value` each. (Not in the doc comment: that is the schema's
// description in the spec.)
/// A device of one account, as its RMM sees it.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// `dev_…`
    pub id: String,
    /// `acc_…`
    pub account_id: String,
    /// The RMM's id of the agent; unique among your devices.
    pub rmm_agent_id: String,
    pub hostname: String,
    pub kind: DeviceKind,
    #[oai(nullable)]
    pub os: Option<String>,
    #[oai(nullable)]
    pub os_version: Option<String>,
    #[oai(nullable)]
    pub serial_number: Option<String>,
    #[oai(nullable)]
    pub manufacturer: Option<String>,
    #[oai(nullable)]
    pub model: Option<String>,
    /// When the RMM last heard from the agent.
    #[oai(nullable)]
    pub last_seen_at: Option<String>,
    #[oai(nullable)]
    pub warranty_expires_at: Option<String>,
    /// `YYYY-MM-DD`: the vendor's end of support.
    #[oai(nullable)]
    pub end_of_life_date: Option<String>,
    pub status: DeviceStatus,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for Device {
    fn example() -> Self {
        Device {
            id: "dev_8Jt3kQ2wZr5mN7vB".into(),
            account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            rmm_agent_id: "ninja-4f1c9a2e".into(),
            hostname: "ACME-FS01".into(),
            kind: DeviceKind::Server,
            os: Some("Windows Server".into()),
            os_version: Some("2019 (1809)".into()),
            serial_number: Some("CZ2918XYZ".into()),
            manufacturer: Some("HPE".into()),
            model: Some("ProLiant DL380 Gen10".into()),
            last_seen_at: Some("2024-06-03T09:58:12Z".into()),
            warranty_expires_at: Some("2025-03-31T00:00:00Z".into()),
            end_of_life_date: Some("2029-01-09".into()),
            status: DeviceStatus::Active,
            created_at: "2024-01-15T08:30:00Z".into(),
            updated_at: "2024-06-03T09:58:12Z".into(),
        }
    }
}

impl From<domain::Device> for Device {
    fn from(d: domain::Device) -> Self {
        Device {
            id: d.id,
            account_id: d.account_id,
            rmm_agent_id: d.rmm_agent_id,
            hostname: d.hostname,
            kind: d.kind.into(),
            os: d.os,
            os_version: d.os_version,
            serial_number: d.serial_number,
            manufacturer: d.manufacturer,
            model: d.model,
            last_seen_at: d.last_seen_at.map(rfc3339),
            warranty_expires_at: d.warranty_expires_at.map(rfc3339),
            end_of_life_date: d.end_of_life_date,
            status: d.status.into(),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

impl Wire for domain::Device {
    fn wire(&self) -> serde_json::Value {
        to_wire(Device::from(self.clone()))
    }

    fn wire_text(&self) -> String {
        serde_json::to_string(&Device::from(self.clone())).unwrap_or_else(|_| self.wire().to_string())
    }
}

/// A new device. `kind` defaults to `OTHER`, `status` to `ACTIVE`. Also one item of a
/// bulk upsert, where the fields an item leaves out keep their stored values.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateDevice {
    /// An account (`acc_…`) of the same organization and environment.
    pub account_id: Required<Text>,
    /// The RMM's id of the agent, 1–200 characters; unique among your devices.
    pub rmm_agent_id: Required<Text<{ crate::domain::devices::AGENT_ID_MAX }, { format::NON_BLANK }>>,
    /// 1–255 characters.
    pub hostname: Required<Text<{ crate::domain::devices::HOSTNAME_MAX }, { format::NON_BLANK }>>,
    pub kind: Option<EnumText<DeviceKind>>,
    pub os: Option<Text<{ crate::domain::devices::TEXT_MAX }>>,
    pub os_version: Option<Text<{ crate::domain::devices::TEXT_MAX }>>,
    pub serial_number: Option<Text<{ crate::domain::devices::TEXT_MAX }>>,
    pub manufacturer: Option<Text<{ crate::domain::devices::TEXT_MAX }>>,
    pub model: Option<Text<{ crate::domain::devices::TEXT_MAX }>>,
    /// RFC 3339; at most a day ahead of the server's clock.
    pub last_seen_at: Option<Text<0, { format::DATE_TIME }>>,
    /// RFC 3339.
    pub warranty_expires_at: Option<Text<0, { format::DATE_TIME }>>,
    /// `YYYY-MM-DD`.
    pub end_of_life_date: Option<Text<0, { format::DATE }>>,
    pub status: Option<EnumText<DeviceStatus>>,
}

impl Example for CreateDevice {
    fn example() -> Self {
        CreateDevice {
            account_id: Required(Some("acc_5Hq2vWZk3nR8yT1bC".into())),
            rmm_agent_id: Required(Some("ninja-4f1c9a2e".into())),
            hostname: Required(Some("ACME-FS01".into())),
            kind: Some("SERVER".into()),
            os: Some("Windows Server".into()),
            os_version: Some("2019 (1809)".into()),
            serial_number: None,
            manufacturer: None,
            model: None,
            last_seen_at: Some("2024-06-03T09:58:12Z".into()),
            warranty_expires_at: None,
            end_of_life_date: Some("2029-01-09".into()),
            status: None,
        }
    }
}

impl From<CreateDevice> for DeviceChanges {
    fn from(b: CreateDevice) -> Self {
        DeviceChanges {
            account_id: given(b.account_id.0, Into::into),
            rmm_agent_id: given(b.rmm_agent_id.0, Into::into),
            hostname: given(b.hostname.0, Into::into),
            kind: given(b.kind, EnumText::into_string),
            os: given(b.os, Into::into),
            os_version: given(b.os_version, Into::into),
            serial_number: given(b.serial_number, Into::into),
            manufacturer: given(b.manufacturer, Into::into),
            model: given(b.model, Into::into),
            last_seen_at: given(b.last_seen_at, Into::into),
            warranty_expires_at: given(b.warranty_expires_at, Into::into),
            end_of_life_date: given(b.end_of_life_date, Into::into),
            status: given(b.status, EnumText::into_string),
        }
    }
}

/// Changes to a device: absent fields stay, `null` clears an optional field.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, example)]
pub struct UpdateDevice {
    pub account_id: MaybeUndefined<Text>,
    pub rmm_agent_id: MaybeUndefined<Text<{ crate::domain::devices::AGENT_ID_MAX }, { format::NON_BLANK }>>,
    pub hostname: MaybeUndefined<Text<{ crate::domain::devices::HOSTNAME_MAX }, { format::NON_BLANK }>>,
    pub kind: MaybeUndefined<EnumText<DeviceKind>>,
    #[oai(nullable)]
    pub os: MaybeUndefined<Text<{ crate::domain::devices::TEXT_MAX }>>,
    #[oai(nullable)]
    pub os_version: MaybeUndefined<Text<{ crate::domain::devices::TEXT_MAX }>>,
    #[oai(nullable)]
    pub serial_number: MaybeUndefined<Text<{ crate::domain::devices::TEXT_MAX }>>,
    #[oai(nullable)]
    pub manufacturer: MaybeUndefined<Text<{ crate::domain::devices::TEXT_MAX }>>,
    #[oai(nullable)]
    pub model: MaybeUndefined<Text<{ crate::domain::devices::TEXT_MAX }>>,
    #[oai(nullable)]
    pub last_seen_at: MaybeUndefined<Text<0, { format::DATE_TIME }>>,
    #[oai(nullable)]
    pub warranty_expires_at: MaybeUndefined<Text<0, { format::DATE_TIME }>>,
    #[oai(nullable)]
    pub end_of_life_date: MaybeUndefined<Text<0, { format::DATE }>>,
    pub status: MaybeUndefined<EnumText<DeviceStatus>>,
}

impl Example for UpdateDevice {
    fn example() -> Self {
        UpdateDevice {
            account_id: MaybeUndefined::Undefined,
            rmm_agent_id: MaybeUndefined::Undefined,
            hostname: MaybeUndefined::Undefined,
            kind: MaybeUndefined::Undefined,
            os: MaybeUndefined::Undefined,
            os_version: MaybeUndefined::Undefined,
            serial_number: MaybeUndefined::Undefined,
            manufacturer: MaybeUndefined::Undefined,
            model: MaybeUndefined::Undefined,
            last_seen_at: MaybeUndefined::Undefined,
            warranty_expires_at: MaybeUndefined::Undefined,
            end_of_life_date: MaybeUndefined::Value("2029-01-09".into()),
            status: MaybeUndefined::Value("RETIRED".into()),
        }
    }
}

impl From<UpdateDevice> for DeviceChanges {
    fn from(b: UpdateDevice) -> Self {
        DeviceChanges {
            account_id: patch(b.account_id, Into::into),
            rmm_agent_id: patch(b.rmm_agent_id, Into::into),
            hostname: patch(b.hostname, Into::into),
            kind: patch(b.kind, EnumText::into_string),
            os: patch(b.os, Into::into),
            os_version: patch(b.os_version, Into::into),
            serial_number: patch(b.serial_number, Into::into),
            manufacturer: patch(b.manufacturer, Into::into),
            model: patch(b.model, Into::into),
            last_seen_at: patch(b.last_seen_at, Into::into),
            warranty_expires_at: patch(b.warranty_expires_at, Into::into),
            end_of_life_date: patch(b.end_of_life_date, Into::into),
            status: patch(b.status, EnumText::into_string),
        }
    }
}

fn tagged(device: domain::Device) -> Tagged<Device> {
    let tag = device.etag();
    Tagged::new(device.into(), &tag)
}

pub struct DevicesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Devices")]
impl DevicesApi {
    /// List devices
    ///
    /// Oldest first, a page at a time; filter by `accountId`, `kind` and `status`, and
    /// by `updatedSince` for incremental sync.
    #[oai(path = "/devices", method = "get", operation_id = "list_devices")]
    #[allow(clippy::too_many_arguments)]
    async fn list_devices(
        &self,
        #[oai(scope = "Scopes::DevicesRead")] auth: Auth<DevicesRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only devices of this account.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
        /// Only devices of this kind.
        kind: Query<Option<DeviceKind>>,
        /// Only devices with this status.
        status: Query<Option<DeviceStatus>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only devices changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<Device>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "devices", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = DeviceFilter {
            account_id: account_id.0,
            kind: kind.0.map(Into::into),
            status: status.0.map(Into::into),
        };
        let devices = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(devices, Device::from)))
    }

    /// Create a device
    ///
    /// To push many devices at once, or to create-or-update by `rmmAgentId`, use the
    /// bulk upsert.
    #[oai(path = "/devices", method = "post", operation_id = "create_device")]
    async fn create_device(
        &self,
        #[oai(scope = "Scopes::DevicesWrite")] auth: Auth<DevicesWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateDevice>,
    ) -> Result<Created<Device>, ApiError> {
        let device = domain::create(crm, &Tenant::from(&auth.principal), body.0.into()).await?;
        let (location, tag) = (format!("/api/v1/devices/{}", device.id), device.etag());
        Ok(Created::new(device.into(), location, &tag))
    }

    /// Get a device
    #[oai(path = "/devices/:id", method = "get", operation_id = "get_device")]
    async fn get_device(
        &self,
        #[oai(scope = "Scopes::DevicesRead")] auth: Auth<DevicesRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The device id, `dev_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<Device>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "device", &tenant, &id, &held, async { Ok(tagged(domain::get(crm, &tenant, &id).await?)) }).await
    }

    /// Update a device
    ///
    /// A partial update. With `If-Match`, only if the device is still at that version
    /// (412 otherwise).
    #[oai(path = "/devices/:id", method = "patch", operation_id = "update_device")]
    async fn update_device(
        &self,
        #[oai(scope = "Scopes::DevicesWrite")] auth: Auth<DevicesWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The device id, `dev_…`.
        id: Path<String>,
        /// An `ETag` of the device: update only that version.
        #[oai(name = "If-Match")]
        if_match: ListHeader,
        body: JsonBody<UpdateDevice>,
    ) -> Result<Tagged<Device>, ApiError> {
        let precondition = precondition(if_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        Ok(tagged(domain::update(crm, &tenant, &id, body.0.into(), &precondition).await?))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    use super::*;

    /// The event data written directly is the JSON the API shows, absent fields included.
    #[test]
    fn device_events_carry_the_api_json() {
        let full = Device::example();
        // A new device as the domain makes it: every optional field absent.
        let bare = Device { status: DeviceStatus::Retired, ..Device::from(domain::Device::blank(0)) };
        assert!(bare.os.is_none() && bare.last_seen_at.is_none(), "{bare:?}");
        for device in [full, bare] {
            let direct = serde_json::to_value(&device).expect("serializes");
            assert_eq!(Some(direct), device.to_json(), "{device:?}");
        }
    }
}
