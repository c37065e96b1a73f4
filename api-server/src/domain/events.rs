//! Webhook events: what changed, as the API shows it. A write that causes an event
//! builds it here and hands it to its repo function, which stores it in the outbox
//! (`events`) in the same transaction as the change; delivery happens later, from the
//! outbox, so an event exists exactly when its change committed.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

named_enum!(
    /// Every event type of the product document.
    EventType {
        AccountCreated => "account.created",
        AccountUpdated => "account.updated",
        AccountDeleted => "account.deleted",
        ContactCreated => "contact.created",
        ContactUpdated => "contact.updated",
        ContractCreated => "contract.created",
        ContractUpdated => "contract.updated",
        ContractExpiringSoon => "contract.expiring_soon",
        DealCreated => "deal.created",
        DealStageChanged => "deal.stage_changed",
        DealClosedWon => "deal.closed_won",
        DealClosedLost => "deal.closed_lost",
        HealthScoreChanged => "health_score.changed",
        HealthScoreAlert => "health_score.alert",
        TouchpointCreated => "touchpoint.created",
        DeviceCreated => "device.created",
        DeviceUpdated => "device.updated",
        DeviceOffline => "device.offline",
        DeviceEndOfLife => "device.end_of_life",
        ReconciliationVarianceDetected => "reconciliation.variance_detected",
        NotificationCreated => "notification.created",
    }
);

/// A domain value as the API returns it: the `data` of its events. Implemented by the
/// API layer for the domain types it shows, so the domain can freeze the wire shape of
/// a change without knowing the wire types.
pub trait Wire {
    fn wire(&self) -> serde_json::Value;

    /// `wire()` as JSON text; a type may write it directly, to the same JSON.
    fn wire_text(&self) -> String {
        self.wire().to_string()
    }
}

/// One event, ready for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_…`: stable across delivery attempts, so receivers can deduplicate.
    pub id: String,
    pub kind: EventType,
    /// The data as JSON text, written when the event is made: before the change's
    /// transaction starts, so that the one writer of SQLite is not held while it is.
    pub data: String,
    pub created_at: i64,
}

impl Event {
    pub fn new(kind: EventType, data: serde_json::Value) -> Event {
        Event::with_text(kind, data.to_string())
    }

    /// An event whose data is `value` as the API shows it.
    pub fn of(kind: EventType, value: &impl Wire) -> Event {
        Event::with_text(kind, value.wire_text())
    }

    fn with_text(kind: EventType, data: String) -> Event {
        Event { id: new_id("evt"), kind, data, created_at: now_ms() }
    }
}
