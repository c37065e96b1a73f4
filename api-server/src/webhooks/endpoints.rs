//! Webhook endpoints: what a valid one is and how it changes. Queries are in `repo`.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::repo::{self, EndpointRecord};
use super::signature::new_secret;
use super::target::Policy;
use crate::domain::events::EventType;
use crate::domain::paging::{Page, PageRequest, Position};
use crate::domain::validate::Violations;
use crate::domain::{Crm, DomainError, Patch, Tenant};

/// How long a rotated-out secret keeps signing alongside the new one.
pub const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;
/// The type of the event sent by "send a test event".
pub const TEST_EVENT: &str = "webhook.test";
const MAX_DESCRIPTION: usize = 500;

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// Event types, or `["*"]` for every type.
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why the server disabled it (410 Gone, failing for days); `None` if a user did.
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed, if the last one failed.
    pub failing_since: Option<i64>,
    /// Until when the previous secret still signs, after a rotation.
    pub previous_secret_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Endpoint {
    pub fn subscribes_to(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == kind)
    }
}

/// The fields a create or update sets.
#[derive(Debug, Default)]
pub struct EndpointChanges {
    pub url: Patch<String>,
    pub description: Patch<String>,
    pub events: Patch<Vec<String>>,
    pub enabled: Patch<bool>,
}

fn check_events(events: &[String], v: &mut Violations) {
    if events.is_empty() {
        v.add("events", "must list at least one event type, or \"*\" for all");
    }
    for (i, e) in events.iter().enumerate() {
        if e != "*" && EventType::parse(e).is_none() {
            v.add(format!("events[{i}]"), format!("`{e}` is not an event type; expected \"*\" or one of: {}", EventType::NAMES.join(", ")));
        }
    }
}

fn apply(endpoint: &mut Endpoint, changes: EndpointChanges, policy: &Policy, v: &mut Violations) {
    match changes.url {
        Patch::Set(url) => match policy.check_url(url.trim()) {
            Ok(parsed) => endpoint.url = parsed.to_string(),
            Err(issue) => v.add("url", issue),
        },
        Patch::Clear => v.add("url", "is required"),
        Patch::Keep => {}
    }
    match changes.description {
        Patch::Set(d) if d.chars().count() > MAX_DESCRIPTION => v.add("description", format!("must be at most {MAX_DESCRIPTION} characters")),
        Patch::Set(d) => endpoint.description = Some(d),
        Patch::Clear => endpoint.description = None,
        Patch::Keep => {}
    }
    match changes.events {
        Patch::Set(mut events) => {
            check_events(&events, v);
            events.dedup();
            endpoint.events = events;
        }
        Patch::Clear => v.add("events", "must list at least one event type, or \"*\" for all"),
        Patch::Keep => {}
    }
    match changes.enabled {
        Patch::Set(true) if !endpoint.enabled => {
            endpoint.enabled = true;
            endpoint.disabled_reason = None;
            endpoint.failing_since = None;
        }
        Patch::Set(false) if endpoint.enabled => {
            endpoint.enabled = false;
            endpoint.disabled_reason = None;
        }
        Patch::Clear => v.add("enabled", "must be true or false"),
        _ => {}
    }
}

/// Creates an endpoint; returns it with its signing secret (shown once).
pub async fn create(crm: &Crm, tenant: &Tenant, policy: &Policy, changes: EndpointChanges) -> Result<(Endpoint, String), DomainError> {
    let mut v = Violations::default();
    if changes.url == Patch::Keep {
        v.add("url", "is required");
    }
    if changes.events == Patch::Keep {
        v.add("events", "is required");
    }
    let now = now_ms();
    let mut endpoint = Endpoint {
        id: new_id("we"),
        url: String::new(),
        description: None,
        events: Vec::new(),
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        previous_secret_expires_at: None,
        created_at: now,
        updated_at: now,
    };
    apply(&mut endpoint, changes, policy, &mut v);
    v.finish(())?;
    let secret = new_secret();
    repo::insert_endpoint(crm.writer(), tenant, &endpoint, &secret).await?;
    Ok((endpoint, secret))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<Endpoint, DomainError> {
    repo::get_endpoint(crm.pool(), tenant, id).await?.map(EndpointRecord::into_endpoint).ok_or(DomainError::NotFound("webhook endpoint"))
}

pub async fn list(crm: &Crm, tenant: &Tenant, page: &PageRequest) -> Result<Page<Endpoint>, DomainError> {
    let rows = repo::list_endpoints(crm.pool(), tenant, page).await?;
    let endpoints = rows.into_iter().map(EndpointRecord::into_endpoint).collect();
    Ok(Page::from_rows(endpoints, page, |e: &Endpoint| Position { created_at: e.created_at, id: e.id.clone() }))
}

/// Applies `changes`; last writer wins (endpoints are admin settings, rarely edited
/// concurrently).
pub async fn update(crm: &Crm, tenant: &Tenant, policy: &Policy, id: &str, changes: EndpointChanges) -> Result<Endpoint, DomainError> {
    let mut endpoint = get(crm, tenant, id).await?;
    let mut v = Violations::default();
    apply(&mut endpoint, changes, policy, &mut v);
    v.finish(())?;
    endpoint.updated_at = now_ms().max(endpoint.updated_at);
    if !repo::update_endpoint(crm.writer(), tenant, &endpoint).await? {
        return Err(DomainError::NotFound("webhook endpoint"));
    }
    Ok(endpoint)
}

pub async fn delete(crm: &Crm, tenant: &Tenant, id: &str) -> Result<(), DomainError> {
    if repo::delete_endpoint(crm.writer(), tenant, id).await? {
        Ok(())
    } else {
        Err(DomainError::NotFound("webhook endpoint"))
    }
}

/// Gives the endpoint a new secret (returned, shown once); the current one keeps
/// signing alongside it for `ROTATION_GRACE_MS`.
pub async fn rotate_secret(crm: &Crm, tenant: &Tenant, id: &str) -> Result<(Endpoint, String), DomainError> {
    let secret = new_secret();
    let now = now_ms();
    if !repo::rotate_secret(crm.writer(), tenant, id, &secret, now + ROTATION_GRACE_MS, now).await? {
        return Err(DomainError::NotFound("webhook endpoint"));
    }
    Ok((get(crm, tenant, id).await?, secret))
}

/// Queues a `webhook.test` event for this endpoint only; returns the delivery's id.
pub async fn send_test(crm: &Crm, tenant: &Tenant, id: &str) -> Result<String, DomainError> {
    let endpoint = get(crm, tenant, id).await?;
    let data = serde_json::json!({ "endpointId": endpoint.id, "message": "A test event from Breadbox." });
    let now = now_ms();
    let message_id = new_id("msg");
    repo::insert_direct(crm.writer(), tenant, &new_id("evt"), TEST_EVENT, &data, now, &endpoint.id, &message_id).await?;
    Ok(message_id)
}
