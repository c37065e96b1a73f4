//! Detail answers kept while the database is unchanged.
//!
//! A detail GET answers what one record (and its children) holds, and nothing else: no
//! clock, no caller but the tenant. Integrators poll the same records all day, so most
//! detail GETs ask again for what nothing has changed since it was last written. On
//! SQLite the database says cheaply whether anything was committed since a moment
//! (`Db::version`: 48 bytes of the WAL index, which every commit of any process
//! rewrites), so each runtime thread keeps the JSON and `ETag` it last wrote for a
//! record, with the version taken before that record was read, and answers them again
//! while the version is the same. A version that moved empties the thread's memo:
//! every answer in it was written from an older state. The version is taken before the
//! read, so an answer is never older than its version says: at worst a commit between
//! the two leaves an answer that no later version can match.
//!
//! What is kept is exactly what the read would have written (the same JSON, the same
//! `ETag`): only the work is skipped (on the benchmark's detail GET, the SQLite read, the
//! row's decoding, the JSON and the `ETag`'s hash: in callgrind 57,200 → 29,700 of the
//! server's instructions for the request). Not on PostgreSQL, or SQLite in memory, which answer no
//! version: there every detail GET reads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use breadbox_auth::db::DataVersion;
use breadbox_auth::Environment;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use serde::Serialize;
use serde_json::value::RawValue;

use super::wire::{Body, Fetched, NoneMatch, Tagged};
use crate::domain::{Crm, Tenant};
use crate::error::ApiError;

/// Answers each thread keeps at most; a full memo starts over empty. About a
/// kilobyte each.
const ENTRIES_MAX: usize = 1_024;

/// One kept answer: whose it is, and what was written.
struct Entry {
    kind: &'static str,
    org_id: Box<str>,
    env: Environment,
    json: Arc<RawValue>,
    etag: String,
}

/// A thread's kept answers, all written at `version` or later.
#[derive(Default)]
struct Memo {
    version: Option<DataVersion>,
    entries: HashMap<Box<str>, Entry, foldhash::fast::RandomState>,
}

impl Memo {
    /// Empties the memo when the database has moved past its version.
    fn at(&mut self, version: DataVersion) {
        if self.version != Some(version) {
            self.entries.clear();
            self.version = Some(version);
        }
    }
}

/// Whether answers are kept (`set_keeping`).
static KEEPING: AtomicBool = AtomicBool::new(true);

/// Keeps answers (the default) or reads every detail GET from the database: a
/// process-wide knob that only the benchmark turns, to measure the read that a kept
/// answer saves.
pub fn set_keeping(on: bool) {
    KEEPING.store(on, Ordering::Relaxed);
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// The answer to a detail GET of the `kind` record `id` of `tenant` for a client
/// holding `held`: kept from an earlier read while the database is unchanged, else
/// `load`ed (the record and its `ETag`), written, and kept. `load` is not run when the
/// kept answer serves.
pub async fn fetch<T, L>(crm: &Crm, kind: &'static str, tenant: &Tenant, id: &str, held: &NoneMatch, load: L) -> Result<Fetched<T>, ApiError>
where
    T: ParseFromJSON + ToJSON + Serialize,
    L: Future<Output = Result<Tagged<T>, ApiError>>,
{
    let version = if KEEPING.load(Ordering::Relaxed) { crm.db().version() } else { None };
    if let Some(version) = version {
        if let Some((json, etag)) = kept(version, kind, tenant, id) {
            return Ok(Fetched::of(json, etag, held));
        }
    }
    let Tagged::Ok(Body(single), etag) = load.await?;
    let json: Arc<RawValue> = serde_json::value::to_raw_value(&single.data).map_err(|err| ApiError::internal(&err))?.into();
    #[cfg(debug_assertions)]
    super::wire::same_as_to_json(&single.data, json.get().as_bytes());
    if let Some(version) = version {
        keep(version, kind, tenant, id, &json, &etag);
    }
    Ok(Fetched::of(json, etag, held))
}

/// This thread's answer for the record, if one was written at `version`.
fn kept(version: DataVersion, kind: &'static str, tenant: &Tenant, id: &str) -> Option<(Arc<RawValue>, String)> {
    MEMO.with_borrow_mut(|memo| {
        memo.at(version);
        let entry = memo.entries.get(id)?;
        // Ids are unique across kinds and tenants; checked all the same, so that a path
        // naming another kind's record, or another tenant's, is answered by its read.
        let ours = entry.kind == kind && *entry.org_id == *tenant.org_id && entry.env == tenant.env;
        ours.then(|| (entry.json.clone(), entry.etag.clone()))
    })
}

/// Keeps an answer written from a read begun after the database was at `version`.
fn keep(version: DataVersion, kind: &'static str, tenant: &Tenant, id: &str, json: &Arc<RawValue>, etag: &str) {
    MEMO.with_borrow_mut(|memo| {
        if memo.version != Some(version) {
            // Another request on this thread saw another version since `kept` set this
            // one: this answer may be older than what the memo now holds.
            return;
        }
        if memo.entries.len() >= ENTRIES_MAX {
            memo.entries.clear();
        }
        let entry = Entry { kind, org_id: tenant.org_id.as_str().into(), env: tenant.env, json: json.clone(), etag: etag.to_owned() };
        memo.entries.insert(id.into(), entry);
    })
}
