//! `POST /api/v1/devices/bulk`: an RMM's sync, up to 500 devices per call, matched by
//! `rmmAgentId`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object, OpenApi};

use super::body::{first_mismatch, JsonBody};
use super::devices::CreateDevice;
use super::ranged::Items;
use super::security::{Auth, DevicesWrite, Scopes};
use super::wire::{Body, IdempotencyKey, Lenient};
use super::ApiTags;
use crate::domain::device_bulk::{self as domain, BulkItem, Outcome};
use crate::domain::{Crm, Tenant};
use crate::envelope::Single;
use crate::error::{field_of, ApiError};

/// A batch of devices to create or update.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkDevices {
    /// Devices, each as for a create. A device whose `rmmAgentId` you already have is
    /// updated with the fields the item sends (absent ones are kept); a new
    /// `rmmAgentId` creates a device. More than 500 is a 422: split larger batches.
    pub devices: Items<Lenient<CreateDevice>, 1, { crate::domain::device_bulk::MAX_ITEMS }>,
}

/// What the upsert did with a valid item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BulkOutcome {
    Created,
    Updated,
    Unchanged,
}

/// A stored item: the device it created or matched.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct BulkItemResult {
    /// The item's position in `devices`, from 0.
    pub index: u32,
    /// `dev_…`
    pub id: String,
    pub rmm_agent_id: String,
    pub outcome: BulkOutcome,
}

/// One failing field of a skipped item.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct BulkItemError {
    /// The item's position in `devices`, from 0.
    pub index: u32,
    /// The item's `rmmAgentId`, when it has a usable one.
    #[oai(nullable)]
    pub rmm_agent_id: Option<String>,
    /// The failing field; null when the item as a whole is malformed (not an object, a
    /// value of the wrong JSON type).
    #[oai(nullable)]
    pub field: Option<String>,
    pub issue: String,
}

/// The outcome of a bulk upsert. Valid items were stored together; each invalid one
/// was skipped and is listed in `errors`, one entry per failing field.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult {
    pub created: u32,
    pub updated: u32,
    /// Items that matched a device and changed nothing.
    pub unchanged: u32,
    /// Items skipped because of `errors`.
    pub failed: u32,
    /// Every stored item, in request order.
    pub items: Vec<BulkItemResult>,
    pub errors: Vec<BulkItemError>,
}

impl Example for BulkResult {
    fn example() -> Self {
        BulkResult {
            created: 1,
            updated: 1,
            unchanged: 0,
            failed: 1,
            items: vec![
                BulkItemResult {
                    index: 0,
                    id: "dev_8Jt3kQ2wZr5mN7vB".into(),
                    rmm_agent_id: "ninja-4f1c9a2e".into(),
                    outcome: BulkOutcome::Updated,
                },
                BulkItemResult {
                    index: 2,
                    id: "dev_3Pn7tY4hRw9qL2cK".into(),
                    rmm_agent_id: "ninja-77a0c3d1".into(),
                    outcome: BulkOutcome::Created,
                },
            ],
            errors: vec![BulkItemError {
                index: 1,
                rmm_agent_id: Some("ninja-0b9e55f4".into()),
                field: Some("hostname".into()),
                issue: "must not be empty".into(),
            }],
        }
    }
}

fn item(lenient: Lenient<CreateDevice>) -> BulkItem {
    match lenient.parsed {
        Ok(body) => BulkItem::Parsed(body.into()),
        Err(issue) => {
            let rmm_agent_id = lenient.raw.get("rmmAgentId").and_then(|v| v.as_str()).map(str::to_owned);
            // A value of the wrong type: poem-openapi's message names no field.
            if let Some((field, issue)) = first_mismatch::<CreateDevice>(&lenient.raw).filter(|(f, _)| f != "body") {
                return BulkItem::Malformed { rmm_agent_id, field: Some(field), issue };
            }
            let field = Some(field_of(&issue)).filter(|f| f != "body");
            BulkItem::Malformed { rmm_agent_id, field, issue }
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<domain::BulkResult> for BulkResult {
    fn from(r: domain::BulkResult) -> Self {
        BulkResult {
            created: count(r.created),
            updated: count(r.updated),
            unchanged: count(r.unchanged),
            failed: count(r.failed),
            items: r
                .items
                .into_iter()
                .map(|i| BulkItemResult {
                    index: count(i.index),
                    id: i.id,
                    rmm_agent_id: i.rmm_agent_id,
                    outcome: match i.outcome {
                        Outcome::Created => BulkOutcome::Created,
                        Outcome::Updated => BulkOutcome::Updated,
                        Outcome::Unchanged => BulkOutcome::Unchanged,
                    },
                })
                .collect(),
            errors: r
                .errors
                .into_iter()
                .map(|e| BulkItemError { index: count(e.index), rmm_agent_id: e.rmm_agent_id, field: e.field, issue: e.issue })
                .collect(),
        }
    }
}

pub struct DeviceBulkApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Devices")]
impl DeviceBulkApi {
    /// Upsert devices in bulk
    ///
    /// Creates or updates up to 500 devices by `rmmAgentId` in one call (0 or more than
    /// 500 is a 422). Invalid items are skipped and reported in `errors` (index,
    /// `rmmAgentId`, field, issue); the valid ones are stored together in one
    /// transaction, so a 200 means every item not in `errors` was stored. A stored
    /// `lastSeenAt` never moves back. Each device created or changed emits
    /// `device.created` or `device.updated`.
    #[oai(path = "/devices/bulk", method = "post", operation_id = "bulk_upsert_devices")]
    async fn bulk_upsert_devices(
        &self,
        #[oai(scope = "Scopes::DevicesWrite")] auth: Auth<DevicesWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<BulkDevices>,
    ) -> Result<Body<Single<BulkResult>>, ApiError> {
        let items = body.0.devices.into_iter().map(item).collect();
        let result = domain::upsert(crm, &Tenant::from(&auth.principal), items).await?;
        Ok(Body(Single::new(result.into())))
    }
}
