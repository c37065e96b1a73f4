//! `audit_log`: batched inserts from the writer task, and the caller's entries, newest
//! first.

use sqlx::{AnyPool, FromRow};

use breadbox_auth::db::{Backend, Param};

use crate::audit::{Call, Entry};
use crate::domain::audit::AuditFilter;
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;

/// A row of `audit_log`.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRecord {
    pub id: String,
    pub created_at: i64,
    pub request_id: String,
    pub org_id: Option<String>,
    pub env: Option<String>,
    pub credential_id: Option<String>,
    pub method: String,
    pub route: String,
    pub status: i64,
    pub latency_us: i64,
    pub client_ip: Option<String>,
}

const COLUMNS: &str =
    "id, created_at, request_id, org_id, env, credential_id, method, route, status, latency_us, client_ip";
const PER_ROW: usize = 11;

impl From<AuditRecord> for Entry {
    fn from(r: AuditRecord) -> Self {
        Entry {
            id: r.id,
            created_at: r.created_at,
            request_id: r.request_id,
            org_id: r.org_id,
            env: r.env.as_deref().and_then(|e| e.parse().ok()),
            credential_id: r.credential_id,
            method: r.method,
            route: r.route.into(),
            status: u16::try_from(r.status).unwrap_or(0),
            latency_us: r.latency_us,
            client_ip: r.client_ip,
        }
    }
}

/// The multi-row `INSERT` of `rows` entries.
fn insert_sql(backend: Backend, rows: usize) -> String {
    format!("INSERT INTO audit_log ({COLUMNS}) VALUES {}", super::values_rows(backend, rows, PER_ROW))
}

/// The values of `e` in `COLUMNS` order, for both writers. A call without a credential
/// has an empty organization and environment (key columns of SQLite's clustered table).
fn row(e: &Call) -> [Param<'_>; PER_ROW] {
    [
        Param::from(e.id.as_str()),
        Param::from(e.created_at),
        Param::from(e.request_id.as_str()),
        Param::from(e.principal.as_ref().map_or("", |p| p.org_id.as_str())),
        Param::from(e.principal.as_ref().map_or("", |p| p.env.as_str())),
        Param::from(e.principal.as_ref().map(|p| p.credential_id.as_str())),
        Param::from(e.method.as_str()),
        Param::from(&*e.route),
        Param::from(i64::from(e.status)),
        Param::from(e.latency_us),
        Param::from(e.client_ip.as_ref().map(|ip| ip.as_str())),
    ]
}

/// Stores `entries` in one transaction, with multi-row inserts of the few sizes of
/// `repo::in_statements` (prepared once per connection).
pub async fn insert(pool: &AnyPool, backend: Backend, entries: &[Call]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for chunk in super::in_statements(entries) {
        let sql = insert_sql(backend, chunk.len());
        let mut query = sqlx::query(&sql);
        for param in chunk.iter().flat_map(row) {
            query = match param {
                Param::Text(text) => query.bind(text),
                Param::Int(n) => query.bind(n),
            };
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// The audit writer's own SQLite connection (rusqlite), on the writer's thread.
///
/// Through sqlx every entry was eleven values converted to `Any` arguments, eight of
/// its strings copied again on the way to SQLite, and every statement a message to
/// the writer connection's thread and back: more CPU than the rows themselves (1.7 µs
/// an entry in the worker thread at 80,000 calls a second, and as much again in the
/// server's threads). Here a batch is bound straight into statements prepared once.
///
/// Nothing else writes the audit log's file (`Db::audit_path`), so its write lock,
/// taken for a batch at a time, holds up no API write.
pub struct SqliteWriter {
    /// Declared before `conn`, so that they are finalized before it closes.
    statements: Vec<(usize, Insert)>,
    conn: rusqlite::Connection,
}

impl SqliteWriter {
    /// Opens the audit log's database file (created and migrated by the server already).
    pub fn open(path: &std::path::Path) -> rusqlite::Result<SqliteWriter> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16384;")?;
        Ok(SqliteWriter { statements: Vec::new(), conn })
    }

    /// Stores `entries` in one transaction, as `insert` does.
    pub fn insert(&mut self, entries: &[Call]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for chunk in super::in_statements(entries) {
            let at = match self.statements.iter().position(|(rows, _)| *rows == chunk.len()) {
                Some(at) => at,
                None => {
                    let insert = Insert::prepare(&tx, &insert_sql(Backend::Sqlite, chunk.len()))?;
                    self.statements.push((chunk.len(), insert));
                    self.statements.len() - 1
                }
            };
            self.statements[at].1.execute(&tx, chunk.iter().flat_map(row))?;
        }
        tx.commit()
    }
}

/// An `INSERT` prepared through SQLite's C API, whose text values are bound without a
/// copy (`SQLITE_STATIC`): rusqlite copies every text it binds into memory of SQLite's
/// (`SQLITE_TRANSIENT`) and frees it when the statement goes back to its cache, and
/// for the audit writer that was two fifths of its instructions (callgrind: binding
/// 29 %, clearing the bindings 14 %, the inserts themselves 46 %).
struct Insert(std::ptr::NonNull<rusqlite::ffi::sqlite3_stmt>);

// SAFETY: the statement belongs to the writer's connection, which is `Send` and moves
// with it (both in `SqliteWriter`); neither is ever used from two threads at once.
unsafe impl Send for Insert {}

impl Insert {
    fn prepare(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<Insert> {
        use rusqlite::ffi;
        let len = std::os::raw::c_int::try_from(sql.len()).map_err(|_| too_big())?;
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        // SAFETY: `handle` is the open connection's; the text and its length are
        // valid for the call; SQLite writes the new statement (or null) into `stmt`.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                conn.handle(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as std::os::raw::c_uint,
                &raw mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(failure(conn, rc));
        }
        std::ptr::NonNull::new(stmt).map(Insert).ok_or_else(|| failure(conn, ffi::SQLITE_MISUSE))
    }

    /// Binds `values` to the parameters in order, runs the statement once, and leaves
    /// it reset with no bindings (no pointer into `values` outlives the call).
    fn execute<'a>(&mut self, conn: &rusqlite::Connection, values: impl Iterator<Item = Param<'a>>) -> rusqlite::Result<()> {
        use rusqlite::ffi;
        let stmt = self.0.as_ptr();
        let mut rc = ffi::SQLITE_OK;
        for (i, value) in values.enumerate() {
            let Ok(index) = std::os::raw::c_int::try_from(i + 1) else {
                rc = ffi::SQLITE_RANGE;
                break;
            };
            // SAFETY: `stmt` is a live statement of `conn`. A text is bound as
            // `SQLITE_STATIC`: it must stay valid until the statement is reset or
            // bound again, and it does: `values` borrow from the caller's entries for
            // the whole call, and the bindings are cleared below before returning.
            rc = unsafe {
                match value {
                    Param::Text(Some(text)) => match std::os::raw::c_int::try_from(text.len()) {
                        Ok(len) => ffi::sqlite3_bind_text(stmt, index, text.as_ptr().cast(), len, ffi::SQLITE_STATIC()),
                        Err(_) => ffi::SQLITE_TOOBIG,
                    },
                    Param::Int(Some(n)) => ffi::sqlite3_bind_int64(stmt, index, n),
                    Param::Text(None) | Param::Int(None) => ffi::sqlite3_bind_null(stmt, index),
                }
            };
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        if rc == ffi::SQLITE_OK {
            // SAFETY: as above; every parameter is bound.
            rc = match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_DONE => ffi::SQLITE_OK,
                other => other,
            };
        }
        let error = (rc != ffi::SQLITE_OK).then(|| failure(conn, rc));
        // SAFETY: as above. `reset` repeats the step's error code, already taken.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        error.map_or(Ok(()), Err)
    }
}

impl Drop for Insert {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized once, before its connection
        // closes (field order of `SqliteWriter`).
        unsafe {
            rusqlite::ffi::sqlite3_finalize(self.0.as_ptr());
        }
    }
}

/// The connection's error for the result code `rc`, with SQLite's message.
fn failure(conn: &rusqlite::Connection, rc: std::os::raw::c_int) -> rusqlite::Error {
    // SAFETY: `handle` is the open connection's; `sqlite3_errmsg` answers a
    // NUL-terminated string owned by SQLite, copied at once.
    let message = unsafe {
        let text = rusqlite::ffi::sqlite3_errmsg(conn.handle());
        (!text.is_null()).then(|| std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rc), message)
}

fn too_big() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG), None)
}

/// Up to `page.fetch()` entries of `tenant` before `page.after`, newest first.
pub async fn list(pool: &AnyPool, tenant: &Tenant, filter: &AuditFilter, page: &PageRequest) -> sqlx::Result<Vec<AuditRecord>> {
    // The start position (before every row in ascending order) is "after the newest"
    // when descending.
    let (before_at, before_id) = if page.after.created_at == i64::MIN && page.after.id.is_empty() {
        (i64::MAX, String::new())
    } else {
        (page.after.created_at, page.after.id.clone())
    };
    let since = match (filter.from, page.updated_since) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_log \
         WHERE org_id = $1 AND env = $2 \
           AND ($3 IS NULL OR credential_id = $3) \
           AND ($4 IS NULL OR status = $4) \
           AND ($5 IS NULL OR created_at >= $5) \
           AND ($6 IS NULL OR created_at < $6) \
           AND (created_at < $7 OR (created_at = $7 AND id < $8)) \
         ORDER BY created_at DESC, id DESC LIMIT $9"
    ))
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(filter.credential_id.as_deref())
    .bind(filter.status.map(i64::from))
    .bind(since)
    .bind(filter.to)
    .bind(before_at)
    .bind(before_id)
    .bind(page.fetch())
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use breadbox_auth::db::Db;

    use super::*;
    use breadbox_auth::Environment;

    fn entry(n: usize, org: Option<&str>) -> Call {
        Call {
            id: crate::inline::InlineStr::display(format_args!("aud_{n:027}")).expect("31 characters"),
            created_at: 1_795_000_000_000 + n as i64,
            request_id: crate::request_id::RequestId::parse(&format!("req_{n}")).expect("a request id"),
            principal: org.map(|org| {
                Arc::new(breadbox_auth::Principal {
                    org_id: org.to_owned(),
                    env: Environment::Live,
                    scopes: breadbox_auth::ScopeSet::default(),
                    credential_id: "key_1".to_owned(),
                    kind: breadbox_auth::CredentialKind::ApiKey,
                    token_id: None,
                })
            }),
            method: poem::http::Method::GET,
            route: Arc::from("/api/v1/me"),
            status: 200,
            latency_us: n as i64,
            client_ip: n.is_multiple_of(2).then(|| crate::inline::InlineStr::display("127.0.0.1").expect("fits")),
        }
    }

    #[tokio::test]
    async fn the_sqlite_writer_stores_every_entry_of_a_batch_as_the_pool_reads_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = Db::connect(None, dir.path(), 2).await.expect("a SQLite database");
        db.migrate().await.expect("migrations");
        let path = db.audit_path().expect("SQLite on a file");
        let mut writer = SqliteWriter::open(&path).expect("the writer's connection");

        // 231 rows: statements of 100, 100, 25, 5 and 1 rows; one call without a credential.
        let mut batch: Vec<Call> = (0..230).map(|n| entry(n, Some("org_a"))).collect();
        batch.push(entry(230, None));
        writer.insert(&batch).expect("the batch is stored");
        writer.insert(&[entry(231, Some("org_a"))]).expect("a second batch");

        let tenant = Tenant { org_id: "org_a".to_owned(), env: Environment::Live };
        let page = PageRequest { limit: 500, after: crate::domain::paging::Position::start(), updated_since: None };
        let listed = list(db.audit(), &tenant, &AuditFilter::default(), &page).await.expect("the list");
        assert_eq!(listed.len(), 231, "every entry of the tenant, none of the credential-less one");
        assert_eq!(listed[0].id, entry(231, None).id.as_str(), "newest first");
        let oldest = listed.last().expect("entries");
        assert_eq!((oldest.request_id.as_str(), oldest.latency_us), ("req_0", 0));
        assert_eq!(oldest.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(listed[1].client_ip, None, "entry 229 has no client IP");

        let anonymous: (String, String, Option<String>) =
            sqlx::query_as("SELECT org_id, env, credential_id FROM audit_log WHERE request_id = 'req_230'")
                .fetch_one(db.audit())
                .await
                .expect("the credential-less entry");
        assert_eq!(anonymous, (String::new(), String::new(), None));

        // A batch SQLite refuses (an entry already stored) is an error with SQLite's
        // message, stores none of its rows, and the writer goes on with the next.
        let refused = writer.insert(&[entry(232, Some("org_a")), entry(5, Some("org_a"))]);
        let message = format!("{:?}", refused.expect_err("a duplicate primary key"));
        assert!(message.contains("UNIQUE constraint failed"), "{message}");
        writer.insert(&[entry(233, Some("org_a"))]).expect("the next batch");
        let listed = list(db.audit(), &tenant, &AuditFilter::default(), &page).await.expect("the list");
        assert_eq!(listed.len(), 232, "the refused batch rolled back whole");
        assert_eq!(listed[0].id, entry(233, None).id.as_str());
        db.close().await;
    }
}
