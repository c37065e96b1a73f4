//! The database: SQLite (embedded default) or PostgreSQL, through sqlx's `Any` driver
//! so that one portable SQL text serves both; short SQLite reads run on the calling
//! thread instead (`inline`).

mod inline;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor, FromRow};

use inline::InlineReads;
pub use inline::{DataVersion, Param, ReadError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");
/// The audit log's own file on SQLite (`audit_file`).
static SQLITE_AUDIT_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite-audit");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool on either backend, and the pool that writes go through.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// SQLite: one connection of its own, so that writers queue here, in order and
    /// without sleeping, instead of meeting SQLite's lock, whose busy handler sleeps
    /// (1, 2, 5 … 100 ms) until it is free. PostgreSQL: `pool`.
    writer: AnyPool,
    backend: Backend,
    /// SQLite on a file: connections for `fetch_one_by_key`, `fetch_few` and `fetch_list`.
    inline: Option<Arc<InlineReads>>,
    /// The audit log's database: on SQLite on a file, a file of its own (`audit_file`);
    /// otherwise `pool`.
    audit: AnyPool,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL `{0}`: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot start the thread that ends idle SQLite snapshots: {0}")]
    Thread(#[source] std::io::Error),
}

impl Db {
    /// Connects to `url`, or to `<data_dir>/breadbox.db` when no URL is given, creating
    /// the directory and the file as needed.
    pub async fn connect(url: Option<&str>, data_dir: &Path, max_connections: u32) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let url = match url {
            Some(url) if !url.is_empty() => url.to_owned(),
            _ => {
                std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
                    path: data_dir.display().to_string(),
                    source,
                })?;
                format!("sqlite://{}?mode=rwc", data_dir.join("breadbox.db").display())
            }
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(redact_url(&url)));
        };
        let options = logged(AnyConnectOptions::from_str(&url).map_err(DbError::Connect)?);
        let pool_options = |max_connections: u32| {
            AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                // A ping before every checkout catches a PostgreSQL connection the
                // network dropped. A SQLite connection is a file handle that cannot go
                // stale, and its ping is one more trip to its worker thread per query.
                .test_before_acquire(backend == Backend::Postgres)
                .after_connect(
                move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                             PRAGMA mmap_size = 268435456; PRAGMA cache_size = -16384;",
                        )
                        .await?;
                    }
                    Ok(())
                })
                },
            )
        };
        let pool = pool_options(max_connections).connect_with(options.clone()).await.map_err(DbError::Connect)?;
        let writer = match backend {
            Backend::Sqlite => pool_options(1).connect_with(options).await.map_err(DbError::Connect)?,
            Backend::Postgres => pool.clone(),
        };
        let file = match backend {
            Backend::Sqlite => sqlite_file(&url),
            Backend::Postgres => None,
        };
        let audit = match &file {
            Some(path) => {
                let file = SqliteConnectOptions::new().filename(audit_file(path)).create_if_missing(true);
                let options = logged(AnyConnectOptions::from_url(&file.to_url_lossy()).map_err(DbError::Connect)?);
                pool_options(2).connect_with(options).await.map_err(DbError::Connect)?
            }
            None => pool.clone(),
        };
        let inline = file.map(InlineReads::shared).transpose().map_err(DbError::Thread)?;
        Ok(Db { pool, writer, backend, inline, audit })
    }

    /// The database's version now (`inline::DataVersion`): on SQLite on a file in WAL
    /// mode, what tells a caller that nothing was committed since it last asked;
    /// `None` otherwise (PostgreSQL, SQLite in memory), where no such answer is cheap.
    pub fn version(&self) -> Option<DataVersion> {
        self.inline.as_deref()?.version()
    }

    /// The inline reads and a slot for one, when this is SQLite on a file and fewer
    /// than `inline::BUSY_MAX` of them are under way; otherwise reads go through sqlx.
    fn inline_slot(&self) -> Option<(&InlineReads, inline::Slot<'_>)> {
        let inline = self.inline.as_deref()?;
        Some((inline, inline.slot()?))
    }

    /// The row of `sql`, a read of at most one row through an index (by primary key
    /// or another unique key): on SQLite run on the calling thread (see `inline`),
    /// on PostgreSQL through the pool. `$n` takes `params[n - 1]`.
    pub async fn fetch_one_by_key<T>(&self, sql: &str, params: &[Param<'_>]) -> sqlx::Result<Option<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + DeserializeOwned + Send + Unpin,
    {
        if let Some((inline, slot)) = self.inline_slot() {
            return Ok(inline.fetch(&slot, sql, params, 1)?.pop());
        }
        bind_all(sqlx::query_as(sql), params).fetch_optional(&self.pool).await
    }

    /// The rows of `sql`, a read whose cost the data decides (a page of a list, whose
    /// filters may pass over many rows before `LIMIT` is reached): on SQLite run on the
    /// calling thread after it has handed its other tasks to another runtime thread
    /// (`block_in_place`; on a single-threaded runtime, inline), on PostgreSQL through
    /// the pool. One hand-over instead of sqlx's trip per row and per statement.
    pub async fn fetch_list<T>(&self, sql: &str, params: &[Param<'_>]) -> sqlx::Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + DeserializeOwned + Send + Unpin,
    {
        if let Some((inline, slot)) = self.inline_slot() {
            let read = || inline.fetch(&slot, sql, params, usize::MAX);
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            return Ok(if multi_thread { tokio::task::block_in_place(read) } else { read() }?);
        }
        bind_all(sqlx::query_as(sql), params).fetch_all(&self.pool).await
    }

    /// The rows of `sql`, a read whose cost an index bounds (the lines of one
    /// contract, the links of one contact): as `fetch_one_by_key`, all rows.
    pub async fn fetch_few<T>(&self, sql: &str, params: &[Param<'_>]) -> sqlx::Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + DeserializeOwned + Send + Unpin,
    {
        if let Some((inline, slot)) = self.inline_slot() {
            return Ok(inline.fetch(&slot, sql, params, usize::MAX)?);
        }
        bind_all(sqlx::query_as(sql), params).fetch_all(&self.pool).await
    }

    /// Applies every migration; on SQLite on a file also those of the audit log's file,
    /// and moves into it the entries that an earlier version kept in the main file.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        if let Some(path) = self.sqlite_path() {
            SQLITE_AUDIT_MIGRATIONS.run(&self.audit).await?;
            self.move_audit_entries(path).await.map_err(|err| DbError::Migrate(err.into()))?;
        }
        Ok(())
    }

    /// Copies the main file's audit entries into the audit log's file, then deletes from
    /// the main file those the audit file holds: a crash in between leaves them in both,
    /// and the next start copies again, skipping those already there (same key), and
    /// deletes them. An entry that an older server on the same file writes meanwhile
    /// stays for the next start.
    async fn move_audit_entries(&self, main_file: &Path) -> sqlx::Result<()> {
        let any: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM audit_log LIMIT 1").fetch_optional(&self.pool).await?;
        if any.is_none() {
            return Ok(());
        }
        const COLUMNS: &str =
            "org_id, env, created_at, id, request_id, credential_id, method, route, status, latency_us, client_ip";
        let mut conn = self.audit.acquire().await?;
        sqlx::query("ATTACH DATABASE $1 AS moved")
            .bind(main_file.to_string_lossy().into_owned())
            .execute(&mut *conn)
            .await?;
        let copy = format!("INSERT OR IGNORE INTO main.audit_log ({COLUMNS}) SELECT {COLUMNS} FROM moved.audit_log");
        let delete = "DELETE FROM moved.audit_log AS old WHERE EXISTS (SELECT 1 FROM main.audit_log AS kept \
                      WHERE kept.org_id = old.org_id AND kept.env = old.env \
                        AND kept.created_at = old.created_at AND kept.id = old.id)";
        let moved = async {
            let copied = sqlx::query(&copy).execute(&mut *conn).await?.rows_affected();
            let deleted = sqlx::query(delete).execute(&mut *conn).await?.rows_affected();
            Ok::<_, sqlx::Error>((copied, deleted))
        }
        .await;
        sqlx::query("DETACH DATABASE moved").execute(&mut *conn).await?;
        let (copied, deleted) = moved?;
        tracing::info!(copied, deleted, "moved the audit log into its own file");
        Ok(())
    }

    /// Whether the database answers and every known migration is applied (on SQLite on
    /// a file, the audit log's file's too).
    pub async fn ready(&self) -> bool {
        let (expected, audit_expected) = match self.backend {
            Backend::Sqlite => (SQLITE_MIGRATIONS.iter().count(), SQLITE_AUDIT_MIGRATIONS.iter().count()),
            Backend::Postgres => (POSTGRES_MIGRATIONS.iter().count(), 0),
        };
        if !migrations_applied(&self.pool, expected).await {
            return false;
        }
        self.sqlite_path().is_none() || migrations_applied(&self.audit, audit_expected).await
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for writes (on SQLite a single connection; see `Db`).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// The audit log's pool (see `Db::audit`).
    pub fn audit(&self) -> &AnyPool {
        &self.audit
    }

    /// The audit log's own SQLite file, when this is SQLite on a file.
    pub fn audit_path(&self) -> Option<std::path::PathBuf> {
        self.sqlite_path().map(audit_file)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database file, when this is SQLite on a file.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.inline.as_deref().map(InlineReads::path)
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
        self.audit.close().await;
    }
}

/// `options` with statements logged at trace level, and those slower than 500 ms as
/// warnings.
fn logged(options: AnyConnectOptions) -> AnyConnectOptions {
    options
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500))
}

/// Whether at least `expected` migrations have been applied successfully to `pool`'s
/// database.
async fn migrations_applied(pool: &AnyPool, expected: usize) -> bool {
    let applied: Result<(i64,), _> =
        sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE").fetch_one(pool).await;
    matches!(applied, Ok((n,)) if usize::try_from(n).is_ok_and(|n| n >= expected))
}

/// Binds `params` in order to a query of the `Any` driver.
fn bind_all<'q, T>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Any, T, sqlx::any::AnyArguments<'q>>,
    params: &[Param<'q>],
) -> sqlx::query::QueryAs<'q, sqlx::Any, T, sqlx::any::AnyArguments<'q>> {
    for param in params {
        query = match *param {
            Param::Text(text) => query.bind(text),
            Param::Int(n) => query.bind(n),
        };
    }
    query
}

/// The file of a SQLite URL, or `None` for an in-memory database (which another
/// connection could not open).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// The audit log's file beside the SQLite file `main` (`breadbox.db` →
/// `breadbox.audit.db`).
fn audit_file(main: &Path) -> std::path::PathBuf {
    main.with_extension("audit.db")
}

/// A database URL with its password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// Whether an sqlx error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: &str = "INSERT INTO audit_log \
        (org_id, env, created_at, id, request_id, credential_id, method, route, status, latency_us, client_ip) \
        VALUES ('org_a', 'live', $1, $2, 'req_1', 'key_1', 'GET', '/api/v1/me', 200, 7, NULL)";

    async fn ids(pool: &AnyPool) -> Vec<String> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM audit_log ORDER BY id").fetch_all(pool).await.expect("the audit log");
        rows.into_iter().map(|(id,)| id).collect()
    }

    #[tokio::test]
    async fn the_audit_log_has_a_file_of_its_own_and_entries_of_the_main_file_move_there() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = Db::connect(None, dir.path(), 2).await.expect("a SQLite database");
        db.migrate().await.expect("migrations");
        assert_eq!(db.audit_path(), Some(dir.path().join("breadbox.audit.db")));
        assert!(db.ready().await, "both files migrated");

        // Entries an earlier version wrote into the main file, one of which a start
        // that crashed between copying and deleting had already copied.
        for (at, id) in [(1, "aud_1"), (2, "aud_2")] {
            sqlx::query(INSERT).bind(at).bind(id).execute(db.writer()).await.expect("an old entry");
        }
        sqlx::query(INSERT).bind(2).bind("aud_2").execute(db.audit()).await.expect("a copied entry");
        sqlx::query(INSERT).bind(3).bind("aud_3").execute(db.audit()).await.expect("a new entry");
        db.close().await;

        let db = Db::connect(None, dir.path(), 2).await.expect("the same database again");
        db.migrate().await.expect("migrations, and the move");
        assert_eq!(ids(db.audit()).await, ["aud_1", "aud_2", "aud_3"], "each entry once, in the audit file");
        assert!(ids(db.pool()).await.is_empty(), "none left in the main file");
        db.migrate().await.expect("migrating again moves nothing");
        assert_eq!(ids(db.audit()).await.len(), 3);
        db.close().await;
    }

    #[tokio::test]
    async fn an_in_memory_database_keeps_its_audit_log_in_its_own_pool() {
        let db = Db::connect(Some("sqlite::memory:"), Path::new("."), 1).await.expect("an in-memory database");
        db.migrate().await.expect("migrations");
        assert_eq!(db.audit_path(), None);
        sqlx::query(INSERT).bind(1).bind("aud_1").execute(db.audit()).await.expect("an entry");
        assert_eq!(ids(db.pool()).await, ["aud_1"], "the audit pool is the main pool");
    }

    #[test]
    fn the_audit_file_sits_beside_the_main_file() {
        assert_eq!(audit_file(Path::new("/data/breadbox.db")), Path::new("/data/breadbox.audit.db"));
        assert_eq!(audit_file(Path::new("/data/crm")), Path::new("/data/crm.audit.db"));
    }
}
