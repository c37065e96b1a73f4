//! Keyset pagination. Every list is ordered by `(created_at, id)`; a page asks for the
//! rows after a position and fetches one more than it returns to know whether another
//! page follows. The position travels as an opaque cursor: base64url of the position
//! and an HMAC-SHA256 tag binding it to the list and the caller's organization and
//! environment, with a key shared by every instance through the database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use sqlx::AnyPool;

use super::{DomainError, Tenant};
use crate::repo;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;

const CURSOR_VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// Longer cursors are refused before decoding (ids are short).
const MAX_CURSOR_LEN: usize = 512;
const KEY_NAME: &str = "cursor_hmac_key";

/// Where a page starts: after the row with this `(created_at, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub created_at: i64,
    pub id: String,
}

impl Position {
    /// Before every row.
    pub fn start() -> Position {
        Position { created_at: i64::MIN, id: String::new() }
    }
}

/// What a list request asks for, already validated.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// 1 to `MAX_LIMIT`.
    pub limit: u32,
    pub after: Position,
    /// Only rows with `updated_at >= updated_since` (Unix ms).
    pub updated_since: Option<i64>,
}

impl PageRequest {
    /// Rows to fetch: one more than the page, to learn whether more follow.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub limit: u32,
    /// The last row of this page when another page follows.
    pub next: Option<Position>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows in list order.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, position: impl Fn(&T) -> Position) -> Page<T> {
        let limit = request.limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(position)
        } else {
            None
        };
        Page { items: rows, limit: request.limit, next }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), limit: self.limit, next: self.next }
    }
}

/// The HMAC key of cursors.
pub struct CursorKey([u8; 32]);

impl CursorKey {
    /// Reads the shared key, creating it on the first start of the first instance.
    pub async fn load(pool: &AnyPool) -> Result<CursorKey, sqlx::Error> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        let stored = repo::secrets::get_or_create(pool, KEY_NAME, &hex::encode(fresh)).await?;
        let bytes = hex::decode(stored.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| sqlx::Error::Protocol(format!("server secret {KEY_NAME} is not 32 hex bytes")))?;
        Ok(CursorKey(bytes))
    }

    #[cfg(test)]
    fn fixed(byte: u8) -> CursorKey {
        CursorKey([byte; 32])
    }

    fn tag(&self, list: &str, tenant: &Tenant, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for part in [list.as_bytes(), tenant.org_id.as_bytes(), tenant.env_str().as_bytes()] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        mac.update(payload);
        mac
    }

    /// The cursor of `position` in `list` for `tenant`.
    pub fn encode(&self, list: &str, tenant: &Tenant, position: &Position) -> String {
        let mut bytes = Vec::with_capacity(1 + 8 + position.id.len() + TAG_LEN);
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(&position.created_at.to_be_bytes());
        bytes.extend_from_slice(position.id.as_bytes());
        let tag = self.tag(list, tenant, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position a cursor stands for, if we issued it for this list and tenant.
    pub fn decode(&self, list: &str, tenant: &Tenant, cursor: &str) -> Result<Position, DomainError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(DomainError::BadCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| DomainError::BadCursor)?;
        if bytes.len() < 1 + 8 + TAG_LEN || bytes[0] != CURSOR_VERSION {
            return Err(DomainError::BadCursor);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        self.tag(list, tenant, payload).verify_truncated_left(tag).map_err(|_| DomainError::BadCursor)?;
        let created_at = i64::from_be_bytes(payload[1..9].try_into().map_err(|_| DomainError::BadCursor)?);
        let id = String::from_utf8(payload[9..].to_vec()).map_err(|_| DomainError::BadCursor)?;
        Ok(Position { created_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breadbox_auth::Environment;

    fn tenant(org: &str) -> Tenant {
        Tenant { org_id: org.into(), env: Environment::Live }
    }

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let key = CursorKey::fixed(7);
        let at = Position { created_at: 1_700_000_000_123, id: "acc_abc".into() };
        let cursor = key.encode("accounts", &tenant("org_1"), &at);
        assert_eq!(key.decode("accounts", &tenant("org_1"), &cursor).ok(), Some(at.clone()));

        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        bytes[3] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(bytes);
        for (list, org, text) in [
            ("accounts", "org_1", altered.as_str()),
            ("deals", "org_1", cursor.as_str()),
            ("accounts", "org_2", cursor.as_str()),
            ("accounts", "org_1", "not a cursor!"),
            ("accounts", "org_1", ""),
        ] {
            assert!(key.decode(list, &tenant(org), text).is_err(), "{list} {org} {text}");
        }
        assert!(CursorKey::fixed(8).decode("accounts", &tenant("org_1"), &cursor).is_err());
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let request = PageRequest { limit: 2, after: Position::start(), updated_since: None };
        let at = |n: &i64| Position { created_at: *n, id: n.to_string() };
        let page = Page::from_rows(vec![1, 2, 3], &request, at);
        assert_eq!((page.items.clone(), page.next.map(|p| p.created_at)), (vec![1, 2], Some(2)));
        let last = Page::from_rows(vec![1, 2], &request, at);
        assert!(last.next.is_none());
    }
}
