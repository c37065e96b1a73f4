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
pub use inline::{Param, ReadError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

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
        let options = AnyConnectOptions::from_str(&url)
            .map_err(DbError::Connect)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
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
        let inline = match backend {
            Backend::Sqlite => sqlite_file(&url).map(InlineReads::shared).transpose().map_err(DbError::Thread)?,
            Backend::Postgres => None,
        };
        Ok(Db { pool, writer, backend, inline })
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

    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Whether the database answers and every known migration is applied.
    pub async fn ready(&self) -> bool {
        let expected = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.iter().count() as i64,
            Backend::Postgres => POSTGRES_MIGRATIONS.iter().count() as i64,
        };
        let applied: Result<(i64,), _> =
            sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await;
        matches!(applied, Ok((n,)) if n >= expected)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for writes (on SQLite a single connection; see `Db`).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
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
    }
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
