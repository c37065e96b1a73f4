//! The CRM's rules: what a valid account, contact or deal is, how changes apply, who
//! may see what. No SQL here (queries live in `crate::repo`) and no wire types (those
//! live in `crate::api`). One error type serves every resource: their failures are the
//! same few kinds, and `crate::error` maps it to the API error once.

/// An enumeration of the domain whose values travel and are stored as fixed names:
/// the enum, its `NAMES`, `as_str` and `parse`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),*
        }

        impl $name {
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

/// `Versioned` for a record with `id`, `version` and `updated_at` fields.
macro_rules! versioned {
    ($name:ty) => {
        impl $crate::domain::Versioned for $name {
            fn id(&self) -> &str {
                &self.id
            }
            fn version(&self) -> i64 {
                self.version
            }
            fn updated_at(&self) -> i64 {
                self.updated_at
            }
            fn stamp(&mut self, version: i64, updated_at: i64) {
                self.version = version;
                self.updated_at = updated_at;
            }
        }
    };
}

pub mod accounts;
pub mod audit;
pub mod compliance;
pub mod contacts;
pub mod contracts;
pub mod deals;
pub mod device_bulk;
pub mod devices;
pub mod events;
pub mod health;
pub mod icp;
pub mod leads;
pub mod mrr;
pub mod onboarding;
pub mod paging;
pub mod reconciliation;
pub mod service_lines;
pub mod touchpoints;
pub mod validate;

use sqlx::AnyPool;

use breadbox_auth::db::{is_unique_violation, Db};
use breadbox_auth::{Environment, Principal};

use crate::webhooks::target::Policy;
use paging::CursorKey;
use validate::Violations;

/// The CRM's shared state: the database, the key that signs list cursors and which
/// webhook targets may be registered.
pub struct Crm {
    db: Db,
    cursors: CursorKey,
    webhook_targets: Policy,
}

impl Crm {
    /// Loads (creating on first start) the cursor key every instance shares. Webhook
    /// endpoints must be public until `with_webhook_targets` says otherwise.
    pub async fn load(db: Db) -> Result<Crm, sqlx::Error> {
        let cursors = CursorKey::load(db.pool()).await?;
        Ok(Crm { db, cursors, webhook_targets: Policy::default() })
    }

    /// The same, accepting the webhook targets `targets` allows (the server's settings).
    pub fn with_webhook_targets(self, targets: Policy) -> Crm {
        Crm { webhook_targets: targets, ..self }
    }

    /// Which webhook targets the API accepts. Held here rather than in each request's
    /// data: a fourth value there made the request's map of them grow (rehash) on every
    /// request, for the two operations that read it.
    pub fn webhook_targets(&self) -> &Policy {
        &self.webhook_targets
    }

    pub fn pool(&self) -> &AnyPool {
        self.db.pool()
    }

    /// The database, for its short reads (`Db::fetch_one_by_key`, `Db::fetch_few`).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The pool for writes: on SQLite one connection, so writers queue rather than sleep
    /// on SQLite's lock (see `breadbox_auth::db::Db`).
    pub fn writer(&self) -> &AnyPool {
        self.db.writer()
    }

    pub fn backend(&self) -> breadbox_auth::db::Backend {
        self.db.backend()
    }

    pub fn cursors(&self) -> &CursorKey {
        &self.cursors
    }
}

/// The partition every record lives in: the caller's organization and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub org_id: String,
    pub env: Environment,
}

impl Tenant {
    pub fn env_str(&self) -> &'static str {
        self.env.as_str()
    }
}

impl From<&Principal> for Tenant {
    fn from(p: &Principal) -> Self {
        Tenant { org_id: p.org_id.clone(), env: p.env }
    }
}

impl From<&std::sync::Arc<Principal>> for Tenant {
    fn from(p: &std::sync::Arc<Principal>) -> Self {
        Tenant::from(&**p)
    }
}

/// Why a CRM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// No such record in the caller's organization and environment.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// One entry per failing field.
    #[error("validation failed")]
    Invalid(Violations),
    /// `If-Match` named a version that is no longer current.
    #[error("the {0} has changed since the version in If-Match; get it again")]
    Stale(&'static str),
    /// The cursor was not issued by us for this list.
    #[error("the cursor is malformed, altered, or belongs to another list")]
    BadCursor,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// A change to one field: leave it, clear it, or set it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// `Set` for `Some`, `Keep` for `None`: the fields of a create body.
    pub fn from_option(value: Option<T>) -> Patch<T> {
        value.map_or(Patch::Keep, Patch::Set)
    }
}

/// What `If-Match` asks of the current version of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`: any version.
    #[default]
    None,
    /// `If-Match: *`: the record must exist.
    Exists,
    /// One of these entity tags (without quotes).
    OneOf(Vec<String>),
}

/// The entity tag of a record's version: opaque, changes with every update.
pub fn etag(id: &str, version: i64) -> String {
    use sha2::Digest;
    // The first 20 hex digits of the SHA-256 of `id:version`: its first 10 bytes. The
    // parts are hashed in turn rather than formatted into a string first.
    let digest = sha2::Sha256::new()
        .chain_update(id.as_bytes())
        .chain_update(b":")
        .chain_update(itoa::Buffer::new().format(version).as_bytes())
        .finalize();
    breadbox_auth::secret::to_hex(&digest[..10])
}

/// What every stored record carries for optimistic concurrency.
pub trait Versioned: Clone + PartialEq {
    fn id(&self) -> &str;
    fn version(&self) -> i64;
    fn updated_at(&self) -> i64;
    fn stamp(&mut self, version: i64, updated_at: i64);

    fn etag(&self) -> String {
        etag(self.id(), self.version())
    }
}

/// Concurrent writers of one record retried before giving up.
const UPDATE_ATTEMPTS: usize = 8;

/// One read-modify-write with optimistic concurrency: the caller loads the record,
/// `admit`s it against `If-Match`, computes the next state, `stamp`s it and saves it
/// only if the version is unchanged; on a lost race `retry` says whether to go again
/// (a caller who pinned a version gets 412 instead: the version they saw is gone).
pub(crate) struct Update<'a> {
    what: &'static str,
    precondition: &'a Precondition,
    attempt: usize,
}

impl<'a> Update<'a> {
    pub fn new(what: &'static str, precondition: &'a Precondition) -> Self {
        Update { what, precondition, attempt: 0 }
    }

    /// Whether a change to `current` that broke the rules `v` lists may go ahead: a 422
    /// when `v` holds any, whatever the `If-Match` (RFC 9110 §13.2.1: a precondition is
    /// ignored when the request would fail without it), else a 412 unless `current`
    /// meets the precondition.
    pub fn admit<T: Versioned>(&mut self, current: &T, v: Violations) -> Result<(), DomainError> {
        v.finish(())?;
        self.attempt += 1;
        match self.precondition {
            Precondition::OneOf(tags) if !tags.iter().any(|t| *t == current.etag()) => Err(self.stale()),
            _ => Ok(()),
        }
    }

    /// Gives `next` the version after `current` and a fresh `updated_at`.
    pub fn stamp<T: Versioned>(current: &T, next: &mut T) {
        next.stamp(current.version() + 1, breadbox_auth::db::now_ms().max(current.updated_at()));
    }

    pub fn retry(&self) -> Result<(), DomainError> {
        if matches!(self.precondition, Precondition::OneOf(_)) {
            Err(self.stale())
        } else if self.attempt >= UPDATE_ATTEMPTS {
            Err(DomainError::Db(sqlx::Error::Protocol(format!("{} updated concurrently too often", self.what))))
        } else {
            Ok(())
        }
    }

    fn stale(&self) -> DomainError {
        DomainError::Stale(self.what)
    }
}

/// A unique-constraint violation as a 422 on `field`, the same on both backends.
fn unique_to_invalid(err: sqlx::Error, field: &str, issue: impl Into<String>) -> DomainError {
    if is_unique_violation(&err) {
        let mut v = Violations::default();
        v.add(field, issue);
        DomainError::Invalid(v)
    } else {
        DomainError::Db(err)
    }
}

#[cfg(test)]
mod tests {
    use super::accounts::Lifecycle;
    use super::contacts::Role;
    use super::deals::Stage;
    use super::etag;

    #[test]
    fn an_etag_is_the_first_20_hex_digits_of_the_versions_sha256() {
        let whole = breadbox_auth::secret::sha256_hex(b"acc_0BCmhGZjf5QsVv4tYUd:7");
        assert_eq!(etag("acc_0BCmhGZjf5QsVv4tYUd", 7), whole[..20]);
        assert_ne!(etag("acc_0BCmhGZjf5QsVv4tYUd", 8), etag("acc_0BCmhGZjf5QsVv4tYUd", 7));
    }

    #[test]
    fn named_enums_round_trip_their_names() {
        for name in Lifecycle::NAMES {
            assert_eq!(Lifecycle::parse(name).map(Lifecycle::as_str), Some(*name));
        }
        for name in Role::NAMES {
            assert_eq!(Role::parse(name).map(Role::as_str), Some(*name));
        }
        for name in Stage::NAMES {
            assert_eq!(Stage::parse(name).map(Stage::as_str), Some(*name));
        }
        assert_eq!(Lifecycle::parse("lead"), None, "names are exact");
    }
}
