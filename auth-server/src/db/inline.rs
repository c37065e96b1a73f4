//! Short SQLite reads on the calling thread.
//!
//! sqlx drives each SQLite connection from a thread of its own: a query is a message to
//! that thread and a wake-up back, and returning the connection to the pool is one more
//! round (sqlx pings every released connection). For a read of one row by its key those
//! trips cost several times the read: a detail GET spent half of the machine's CPU time
//! switching threads. `InlineReads` keeps SQLite connections of its own (rusqlite, the
//! same SQLite library as sqlx's) and runs a read on the thread that asks for it.
//!
//! Only reads whose cost is bounded by an index belong here (a row by its key, the few
//! rows of one parent): the caller's thread is a runtime worker, which must not be held
//! by a scan. The connections are `query_only`; in WAL mode a reader never waits for the
//! writer, and each read sees every transaction committed before it started.
//!
//! A connection keeps its read transaction open from one read to the next while nothing
//! has been committed in between, by any connection of any process. Beginning and ending
//! a read transaction takes a lock on the WAL's shared memory, a `fcntl` made under a
//! mutex every connection of the process shares; with two threads reading, they queued
//! on it, and slept, and woke each other (keeping the transaction took a detail GET's
//! server time from 24.2 to 20.3 µs). Whether anything was committed is what SQLite itself asks at the start
//! of every read transaction: whether the WAL index's header, the first 48 bytes of the
//! `-shm` file, which every commit rewrites (its frame count, change counter and
//! checksum; <https://www.sqlite.org/walformat.html>), is still the one it was. It is
//! read before the transaction begins, so a commit in between makes it look changed
//! and the next read begins afresh; never the other way round. The header is read where
//! SQLite reads it, in the connection's own mapping of the WAL index (`WalIndex`): no
//! system call per read, and no second handle on the `-shm` file, whose closing would
//! drop every lock the process holds on that file (POSIX record locks belong to the
//! process and go with the first handle closed), SQLite's own included. A snapshot kept open
//! holds back the checkpoint of what was written after it, and the WAL's start over, so
//! snapshots are kept only while the WAL is short (`SNAPSHOT_WAL_FRAMES_MAX`), and idle
//! connections give theirs up after `SNAPSHOT_IDLE_MAX` (`release_idle`, run by a
//! thread of its own).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, Statement};
use serde::de::DeserializeOwned;

/// Idle connections kept for reuse; more are closed when returned.
const IDLE_MAX: usize = 16;
/// Reads under way at once at most. Beyond that a read goes through sqlx's pool, which
/// bounds and queues its own connections: threads that `block_in_place` brings in
/// cannot open connections without end.
const BUSY_MAX: usize = 32;
/// Prepared statements each connection keeps.
const STATEMENTS: usize = 128;
/// How long a read may wait on a lock (in WAL mode only while another connection
/// recovers the log after a crash, or similar rare moments).
const BUSY_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long an idle connection keeps its snapshot before giving it up, so that the
/// checkpoint can move past it (checked every half of it).
const SNAPSHOT_IDLE_MAX: Duration = Duration::from_millis(200);
/// The WAL index header's first copy: what SQLite compares to know whether its snapshot
/// is current.
type WalHeader = [u8; 48];
/// Snapshots are kept only while the WAL holds fewer frames than this (SQLite's own
/// automatic checkpoint starts at 1,000). A kept snapshot holds a read lock, and the
/// writer starts the WAL over from its beginning only when no reader holds one: under
/// steady reads and writes, snapshots kept without this limit let the WAL grow without
/// end (1.5 GB in 40 s of a read and write flood); past it, reads take a transaction
/// each, as without snapshots, the checkpoint completes and the WAL starts over.
const SNAPSHOT_WAL_FRAMES_MAX: u32 = 1_000;

/// The number of frames in the WAL (`mxFrame`, in the machine's byte order).
fn wal_frames(header: &WalHeader) -> u32 {
    u32::from_ne_bytes([header[16], header[17], header[18], header[19]])
}

/// A value bound to a parameter of a read, on either backend. A NULL keeps its type:
/// PostgreSQL infers a parameter's type from it (`$5 IS NULL OR updated_at >= $5`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(Some(v))
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<Option<&'a String>> for Param<'a> {
    fn from(v: Option<&'a String>) -> Self {
        Param::Text(v.map(String::as_str))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Text(Some(text)) => ValueRef::Text(text.as_bytes()),
            Param::Int(Some(n)) => ValueRef::Integer(n),
            Param::Text(None) | Param::Int(None) => ValueRef::Null,
        }))
    }
}

/// Why an inline read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("SQLite read: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("SQLite read: a row does not fit its record: {0}")]
    Decode(#[from] serde_rusqlite::Error),
    #[error("SQLite read: the statement has parameter {0}, and {1} values were given")]
    Unbound(String, usize),
}

impl From<ReadError> for sqlx::Error {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Decode(err) => sqlx::Error::Decode(Box::new(err)),
            other => sqlx::Error::Protocol(other.to_string()),
        }
    }
}

/// The connections of one SQLite database file.
#[derive(Debug)]
pub struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Reader>>,
    busy: AtomicUsize,
    busy_max: usize,
    /// A connection kept open only for its mapping of the WAL index (`version`),
    /// opened at the first call; `None` inside when the file is not in WAL mode.
    watch: OnceLock<Option<Watch>>,
}

/// Which committed state of the database a read sees at the earliest: the WAL index
/// header, which every commit of any connection of any process rewrites (see the
/// module's documentation). Two equal versions mean nothing was committed between the
/// moments they were taken; a read begun after `version` answered sees that state or
/// a later one, never an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataVersion(WalHeader);

/// The connection behind `InlineReads::version` and its WAL index. It runs no
/// statement after the first, so it holds no snapshot back.
#[derive(Debug)]
struct Watch {
    index: WalIndex,
    /// Kept open so that its WAL index stays mapped; never used again (the mutex only
    /// makes `InlineReads` shareable between threads, as a `Connection` is not `Sync`).
    _conn: Mutex<Connection>,
}

/// An open connection and the column names of the statements it has run, by SQL:
/// `serde_rusqlite` reads them from the statement into new strings on every query
/// (2,600 instructions of a 67,000-instruction detail GET, in callgrind).
#[derive(Debug)]
struct Reader {
    conn: Connection,
    /// Keyed by SQL hashed with foldhash: SipHash over a statement's text was a few
    /// hundred instructions a read, twice.
    columns: HashMap<String, Vec<String>, foldhash::fast::RandomState>,
    /// The WAL index as this connection maps it, found after its first read (the
    /// connection maps it then, and keeps it mapped until it is closed).
    wal_index: Option<WalIndex>,
    /// The open read transaction: the WAL header read just before it began, and when.
    snapshot: Option<(WalHeader, Instant)>,
}

/// Size of a region of the WAL index, as SQLite maps it (`WALINDEX_PGSZ`).
const WAL_INDEX_REGION: i32 = 32_768;

/// The first region of a connection's WAL index, where SQLite's unix VFS mapped it
/// (shared memory over the `-shm` file), found through the VFS's own `xShmMap`.
#[derive(Debug)]
struct WalIndex(std::ptr::NonNull<u64>);

// SAFETY: the pointer is into a shared mapping that stays put while the connection
// that made it is open (SQLite unmaps the WAL index only when the connection closes
// or leaves WAL mode, and `query_only` connections cannot change the journal mode);
// a `WalIndex` lives in the same `Reader` as its connection and is only read through
// `&self`, on whichever thread holds the reader.
unsafe impl Send for WalIndex {}
// SAFETY: `header` only reads the shared mapping (volatile, word by word), which any
// number of threads may do at once; SQLite's own connections read it concurrently too.
unsafe impl Sync for WalIndex {}

impl WalIndex {
    /// The WAL index of `conn`, when the connection is in WAL mode and has mapped it
    /// (after its first read).
    fn of(conn: &Connection) -> Option<WalIndex> {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        let mut file: *mut rusqlite::ffi::sqlite3_file = std::ptr::null_mut();
        let mut region: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: `handle` is this open connection's; FILE_POINTER writes the main
        // database's `sqlite3_file` (owned by the connection) into `file`. `xShmMap`
        // is given the size SQLite maps regions with, and `bExtend` 0: it answers
        // region 0 as already mapped (or null), without creating or growing anything.
        unsafe {
            let rc = rusqlite::ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                rusqlite::ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast(),
            );
            if rc != rusqlite::ffi::SQLITE_OK || file.is_null() {
                return None;
            }
            let methods = (*file).pMethods;
            if methods.is_null() || (*methods).iVersion < 2 {
                return None;
            }
            let map = (*methods).xShmMap?;
            if map(file, 0, WAL_INDEX_REGION, 0, &raw mut region) != rusqlite::ffi::SQLITE_OK {
                return None;
            }
        }
        std::ptr::NonNull::new(region.cast::<u64>()).map(WalIndex)
    }

    /// The header's first copy now. Commits rewrite it in place (other processes too),
    /// so it is read word by word, volatile: a read that overlaps a commit may mix old
    /// and new words, which differ from the snapshot's header and so only start a new
    /// transaction.
    fn header(&self) -> WalHeader {
        let mut header = [0; 48];
        for (i, chunk) in header.chunks_exact_mut(8).enumerate() {
            // SAFETY: region 0 is 32 KiB, page-aligned and mapped while the connection
            // is open (see `Send` above); words 0–5 are its first 48 bytes.
            let word = unsafe { std::ptr::read_volatile(self.0.as_ptr().add(i)) };
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        std::sync::atomic::fence(Ordering::Acquire);
        header
    }
}

/// The right to run one read (see `BUSY_MAX`), given back when dropped.
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InlineReads {
    pub fn new(path: PathBuf) -> InlineReads {
        InlineReads::with_busy_max(path, BUSY_MAX)
    }

    /// `new`, with a thread that gives up idle connections' snapshots (`release_idle`)
    /// until the last `Arc` is dropped.
    pub fn shared(path: PathBuf) -> std::io::Result<Arc<InlineReads>> {
        let reads = Arc::new(InlineReads::new(path));
        let weak: Weak<InlineReads> = Arc::downgrade(&reads);
        std::thread::Builder::new().name("sqlite-snapshots".into()).spawn(move || loop {
            std::thread::sleep(SNAPSHOT_IDLE_MAX / 2);
            match weak.upgrade() {
                Some(reads) => reads.release_idle(SNAPSHOT_IDLE_MAX),
                None => return,
            }
        })?;
        Ok(reads)
    }

    /// Ends the read transactions that idle connections have kept for `age` or longer.
    /// A connection that cannot end its transaction is closed.
    pub fn release_idle(&self, age: Duration) {
        self.idle.lock().retain_mut(|reader| match reader.snapshot {
            Some((_, since)) if since.elapsed() >= age => reader.end_snapshot().is_ok(),
            _ => true,
        });
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn with_busy_max(path: PathBuf, busy_max: usize) -> InlineReads {
        InlineReads { path, idle: Mutex::new(Vec::new()), busy: AtomicUsize::new(0), busy_max, watch: OnceLock::new() }
    }

    /// The database's version now (`DataVersion`), or `None` when it cannot be known
    /// (the file is not in WAL mode, or could not be opened: then callers keep nothing
    /// from one read to the next). Reads 48 bytes of shared memory; no system call.
    pub fn version(&self) -> Option<DataVersion> {
        let watch = self
            .watch
            .get_or_init(|| {
                self.open_watch().unwrap_or_else(|err| {
                    // Decided once: detail answers are then read every time until a restart.
                    tracing::warn!(error = %err, "no database version: detail answers will not be kept");
                    None
                })
            })
            .as_ref()?;
        Some(DataVersion(watch.index.header()))
    }

    /// Opens the `version` connection: one read maps its WAL index, and its statement
    /// ends with that read (autocommit), so it keeps no snapshot.
    fn open_watch(&self) -> Result<Option<Watch>, ReadError> {
        let conn = self.open()?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get::<_, i64>(0))?;
        Ok(WalIndex::of(&conn).map(|index| Watch { index, _conn: Mutex::new(conn) }))
    }

    /// A slot for one read, or `None` when `BUSY_MAX` reads are under way (the caller
    /// then reads through sqlx).
    pub fn slot(&self) -> Option<Slot<'_>> {
        let mut busy = self.busy.load(Ordering::Acquire);
        loop {
            if busy >= self.busy_max {
                return None;
            }
            match self.busy.compare_exchange_weak(busy, busy + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Slot(&self.busy)),
                Err(now) => busy = now,
            }
        }
    }

    /// Up to `limit` rows of `sql` with `params`, each deserialized by column name.
    /// `$n` in `sql` takes `params[n - 1]` (as sqlx binds it); `?` takes the next in order.
    pub fn fetch<T: DeserializeOwned>(&self, _slot: &Slot<'_>, sql: &str, params: &[Param<'_>], limit: usize) -> Result<Vec<T>, ReadError> {
        let popped = self.idle.lock().pop();
        let mut reader = match popped {
            Some(reader) => reader,
            None => Reader { conn: self.open()?, columns: HashMap::default(), wal_index: None, snapshot: None },
        };
        let rows = reader.read(sql, params, limit)?;
        let mut idle = self.idle.lock();
        if idle.len() < IDLE_MAX {
            idle.push(reader);
        }
        Ok(rows)
    }

    fn open(&self) -> Result<Connection, ReadError> {
        // Read-write (never create), then `query_only`: a read-only open of a WAL
        // database fails in corner cases (no `-shm` yet) that a writable one handles.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // No memory map: a page read through the map is decoded on every read and then
        // dropped, one kept in the connection's cache stays decoded for as long as the
        // snapshot holds (the detail GET's `btreeInitPage` and WAL lookups went away).
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA mmap_size = 0; PRAGMA cache_size = -4096;")?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(conn)
    }
}

impl Reader {
    /// Runs one read, in the open read transaction when nothing has been committed since
    /// it began, in a new one otherwise. A connection whose read failed is closed, not
    /// reused.
    fn read<T: DeserializeOwned>(&mut self, sql: &str, params: &[Param<'_>], limit: usize) -> Result<Vec<T>, ReadError> {
        let header = self.wal_header().filter(|header| wal_frames(header) < SNAPSHOT_WAL_FRAMES_MAX);
        let current = matches!((&header, &self.snapshot), (Some(now), Some((then, _))) if now == then);
        if !current {
            self.end_snapshot()?;
            if let Some(header) = header {
                self.conn.prepare_cached("BEGIN")?.raw_execute()?;
                self.snapshot = Some((header, Instant::now()));
            }
        }
        let rows = self.query(sql, params, limit)?;
        if self.wal_index.is_none() {
            // Not in WAL mode: every read has a transaction of its own.
            self.wal_index = WalIndex::of(&self.conn);
        }
        Ok(rows)
    }

    /// The WAL index header now, or `None` when it cannot be read (then the read takes
    /// a transaction of its own).
    fn wal_header(&self) -> Option<WalHeader> {
        Some(self.wal_index.as_ref()?.header())
    }

    /// Ends the open read transaction, if any.
    fn end_snapshot(&mut self) -> Result<(), rusqlite::Error> {
        if self.snapshot.take().is_some() {
            self.conn.prepare_cached("ROLLBACK")?.raw_execute()?;
        }
        Ok(())
    }

    fn query<T: DeserializeOwned>(&mut self, sql: &str, params: &[Param<'_>], limit: usize) -> Result<Vec<T>, ReadError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        bind(&mut stmt, params)?;
        if !self.columns.contains_key(sql) {
            if self.columns.len() >= STATEMENTS {
                self.columns.clear();
            }
            self.columns.insert(sql.to_owned(), serde_rusqlite::columns_from_statement(&stmt));
        }
        let columns = &self.columns[sql];
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while out.len() < limit {
            match rows.next()? {
                Some(row) => out.push(serde_rusqlite::from_row_with_columns(row, columns)?),
                None => break,
            }
        }
        Ok(out)
    }
}

fn bind(stmt: &mut Statement<'_>, params: &[Param<'_>]) -> Result<(), ReadError> {
    for index in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(index);
        // `$n` is params[n - 1]; `?` (no name) the parameter at its position.
        let position = match name {
            Some(name) => name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
            None => Some(index),
        };
        let Some(value) = position.and_then(|n| n.checked_sub(1)).and_then(|n| params.get(n)) else {
            let name = name.map_or_else(|| format!("?{index}"), str::to_owned);
            return Err(ReadError::Unbound(name, params.len()));
        };
        stmt.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Item {
        id: String,
        n: Option<i64>,
        score: f64,
        flag: bool,
    }

    impl InlineReads {
        /// `fetch` with a slot of its own (tests read one at a time).
        fn read<T: DeserializeOwned>(&self, sql: &str, params: &[Param<'_>], limit: usize) -> Result<Vec<T>, ReadError> {
            let slot = self.slot().expect("a free slot");
            self.fetch(&slot, sql, params, limit)
        }
    }

    #[test]
    fn each_statement_keeps_its_own_column_names() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Renamed {
            key: String,
            count: Option<i64>,
        }
        let (_dir, reads) = database();
        // One connection runs all four reads: the second of each comes from its cache.
        for _ in 0..2 {
            let items: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items ORDER BY id", &[], 10).expect("items");
            let renamed: Vec<Renamed> = reads.read("SELECT id AS key, n AS count FROM items ORDER BY id", &[], 10).expect("renamed");
            assert_eq!(items.len(), renamed.len());
            assert!(!items.is_empty());
            for (item, renamed) in items.iter().zip(&renamed) {
                assert_eq!((&item.id, item.n), (&renamed.key, renamed.count));
            }
        }
        assert_eq!(reads.idle.lock().len(), 1);
    }

    #[test]
    fn reads_beyond_the_busy_limit_are_refused_a_slot_until_one_ends() {
        let (_dir, reads) = database();
        let reads = InlineReads::with_busy_max(reads.path.clone(), 2);
        let first = reads.slot().expect("first");
        let second = reads.slot().expect("second");
        assert!(reads.slot().is_none(), "a third read at once goes through sqlx");
        drop(first);
        let third = reads.slot().expect("a slot is free again");
        let rows: Vec<Item> = reads.fetch(&third, "SELECT id, n, score, flag FROM items", &[], 10).expect("read");
        assert_eq!(rows.len(), 3);
        drop((second, third));
        assert_eq!(reads.busy.load(Ordering::Acquire), 0);
    }

    fn database() -> (tempfile::TempDir, InlineReads) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let setup = Connection::open(&path).expect("open");
        setup
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE items (id TEXT PRIMARY KEY, org TEXT NOT NULL, n INTEGER, score REAL NOT NULL, flag INTEGER NOT NULL);
                 INSERT INTO items VALUES ('a', 'o1', 1, 0.5, 1), ('b', 'o1', NULL, 2, 0), ('c', 'o2', 3, 1.25, 0);",
            )
            .expect("setup");
        (dir, InlineReads::new(path))
    }

    #[test]
    fn numbered_parameters_bind_by_number_in_any_order_and_more_than_once() {
        let (_dir, reads) = database();
        let rows: Vec<Item> = reads
            .read("SELECT id, n, score, flag FROM items WHERE org = $2 AND ($1 IS NULL OR id = $1) ORDER BY id", &[Param::Text(None), "o1".into()], 10)
            .expect("read");
        assert_eq!(
            rows,
            vec![
                Item { id: "a".into(), n: Some(1), score: 0.5, flag: true },
                Item { id: "b".into(), n: None, score: 2.0, flag: false },
            ]
        );
        let one: Vec<Item> =
            reads.read("SELECT id, n, score, flag FROM items WHERE org = $2 AND ($1 IS NULL OR id = $1)", &["c".into(), "o2".into()], 10).expect("read");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].n, Some(3));
        let anonymous: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items WHERE org = ? AND n > ?", &["o1".into(), 0.into()], 10).expect("read");
        assert_eq!(anonymous.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn a_read_stops_at_its_limit_and_sees_what_was_committed_before_it() {
        let (dir, reads) = database();
        let rows: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items ORDER BY id", &[], 2).expect("read");
        assert_eq!(rows.len(), 2);
        let writer = Connection::open(dir.path().join("t.db")).expect("open");
        writer.execute("INSERT INTO items VALUES ('d', 'o1', 4, 0, 0)", []).expect("insert");
        let rows: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items WHERE id = $1", &["d".into()], 1).expect("read");
        assert_eq!(rows.first().map(|i| i.n), Some(Some(4)));
    }

    /// Whether the idle connection holds a read transaction open.
    fn holds_snapshot(reads: &InlineReads) -> bool {
        let idle = reads.idle.lock();
        assert_eq!(idle.len(), 1, "one connection did every read");
        assert_eq!(idle[0].snapshot.is_some(), !idle[0].conn.is_autocommit());
        idle[0].snapshot.is_some()
    }

    #[test]
    fn the_mapped_wal_index_header_is_the_shm_files_first_bytes() {
        use std::os::unix::fs::FileExt;
        let (dir, reads) = database();
        let _: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items", &[], 10).expect("read");
        let writer = Connection::open(dir.path().join("t.db")).expect("open");
        let shm = std::fs::File::open(dir.path().join("t.db-shm")).expect("the WAL index file");
        for i in 0..3 {
            writer.execute("INSERT INTO items VALUES (?1, 'o2', ?2, 0, 0)", rusqlite::params![format!("m{i}"), i]).expect("insert");
            let mut on_disk = [0; 48];
            shm.read_exact_at(&mut on_disk, 0).expect("48 bytes");
            let idle = reads.idle.lock();
            let mapped = idle[0].wal_header().expect("a connection in WAL mode maps its index");
            assert_eq!(mapped, on_disk, "after commit {i}");
            assert!(wal_frames(&mapped) > 0);
        }
        drop(shm);
    }

    #[test]
    fn the_version_holds_while_nothing_is_committed_and_moves_with_every_commit() {
        let (dir, reads) = database();
        let first = reads.version().expect("a WAL database has a version");
        let _: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items", &[], 10).expect("read");
        assert_eq!(reads.version(), Some(first), "reads commit nothing");
        let writer = Connection::open(dir.path().join("t.db")).expect("open");
        let mut seen = vec![first];
        for i in 0..50 {
            let sql = if i % 2 == 0 { "UPDATE items SET n = n + 1 WHERE id = 'a'" } else { "INSERT INTO items VALUES (?1, 'o9', 0, 0, 0)" };
            let id = format!("v{i}");
            writer.execute(sql, rusqlite::params_from_iter((i % 2 == 1).then_some(id))).expect("write");
            let now = reads.version().expect("version");
            assert!(!seen.contains(&now), "commit {i} gave a version seen before");
            seen.push(now);
        }
        // A checkpoint that starts the WAL over changes no data, and repeats no version.
        writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").expect("checkpoint");
        writer.execute("UPDATE items SET n = 0 WHERE id = 'a'", []).expect("write");
        assert!(!seen.contains(&reads.version().expect("version")));
    }

    #[test]
    fn a_database_not_in_wal_mode_has_no_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("r.db");
        Connection::open(&path).expect("open").execute_batch("CREATE TABLE t (x INTEGER);").expect("setup");
        assert_eq!(InlineReads::new(path).version(), None);
    }

    #[test]
    fn a_snapshot_serves_reads_until_any_connection_commits() {
        let (dir, reads) = database();
        let read_ids = || -> Vec<String> {
            let rows: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items ORDER BY id", &[], 1_000).expect("read");
            rows.into_iter().map(|i| i.id).collect()
        };
        assert_eq!(read_ids(), ["a", "b", "c"]);
        read_ids();
        assert!(holds_snapshot(&reads), "the second read keeps its transaction open");
        let writer = Connection::open(dir.path().join("t.db")).expect("open");
        for i in 0..200 {
            let id = format!("w{i:03}");
            writer.execute("INSERT INTO items VALUES (?1, 'o3', ?2, 0, 0)", rusqlite::params![id, i]).expect("insert");
            let ids = read_ids();
            assert_eq!(ids.len(), 4 + i, "the read after commit {i} sees it");
            assert_eq!(ids.last(), Some(&id));
            if i % 2 == 0 {
                writer.execute("DELETE FROM items WHERE id = 'gone'", []).expect("a commit that changes no row");
                writer.execute("UPDATE items SET n = n + 1 WHERE id = 'a'", []).expect("update");
                let a: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items WHERE id = 'a'", &[], 1).expect("read");
                assert_eq!(a[0].n, Some(2 + i as i64 / 2), "the read after update {i} sees it");
            }
        }
        assert!(holds_snapshot(&reads));
    }

    #[test]
    fn idle_snapshots_are_given_up_so_that_the_checkpoint_can_finish() {
        let (dir, reads) = database();
        for _ in 0..2 {
            let _: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items", &[], 10).expect("read");
        }
        assert!(holds_snapshot(&reads));
        let writer = Connection::open(dir.path().join("t.db")).expect("open");
        writer.busy_timeout(Duration::ZERO).expect("no waiting");
        writer.execute("INSERT INTO items VALUES ('d', 'o1', 4, 0, 0)", []).expect("insert");
        let checkpoint = || -> i64 { writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0)).expect("checkpoint") };
        assert_eq!(checkpoint(), 1, "a snapshot older than the insert holds the checkpoint back");
        reads.release_idle(Duration::from_secs(3_600));
        assert!(holds_snapshot(&reads), "a snapshot younger than the age given is kept");
        reads.release_idle(Duration::ZERO);
        assert!(!holds_snapshot(&reads));
        assert_eq!(checkpoint(), 0, "with the snapshot given up, the checkpoint completes");
        let all: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items", &[], 10).expect("read after release");
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn no_snapshot_is_kept_while_the_wal_is_long_so_that_it_can_start_over() {
        let (dir, reads) = database();
        let read = || {
            let _: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items", &[], 10).expect("read");
        };
        read();
        read();
        assert!(holds_snapshot(&reads));
        let writer = Connection::open(dir.path().join("t.db")).expect("open");
        writer.busy_timeout(Duration::ZERO).expect("no waiting");
        // No automatic checkpoint: the WAL keeps every frame until the one below.
        writer.execute_batch("PRAGMA synchronous = OFF; PRAGMA wal_autocheckpoint = 0;").expect("pragmas");
        for i in 0..SNAPSHOT_WAL_FRAMES_MAX {
            writer.execute("INSERT INTO items VALUES (?1, 'o4', ?2, 0, 0)", rusqlite::params![format!("x{i}"), i]).expect("insert");
        }
        read();
        assert!(!holds_snapshot(&reads), "a read over a WAL of {SNAPSHOT_WAL_FRAMES_MAX} frames or more keeps no snapshot");
        let checkpoint: (i64, i64, i64) =
            writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).expect("checkpoint");
        assert_eq!(checkpoint, (0, 0, 0), "the WAL is checkpointed and truncated at once");
        read();
        read();
        assert!(holds_snapshot(&reads), "with the WAL short again, snapshots are kept again");
    }

    #[test]
    fn the_releasing_thread_ends_with_the_last_reference() {
        let (dir, _) = database();
        let reads = InlineReads::shared(dir.path().join("t.db")).expect("shared");
        for _ in 0..2 {
            let slot = reads.slot().expect("slot");
            let _: Vec<Item> = reads.fetch(&slot, "SELECT id, n, score, flag FROM items", &[], 10).expect("read");
        }
        assert!(holds_snapshot(&reads));
        let deadline = Instant::now() + SNAPSHOT_IDLE_MAX * 20;
        while holds_snapshot(&reads) {
            assert!(Instant::now() < deadline, "the thread gave up the idle snapshot");
            std::thread::sleep(SNAPSHOT_IDLE_MAX / 4);
        }
        let weak = Arc::downgrade(&reads);
        drop(reads);
        assert!(weak.upgrade().is_none(), "the thread holds no strong reference between rounds");
    }

    #[test]
    fn missing_values_wrong_columns_and_writes_are_errors_and_later_reads_work() {
        let (_dir, reads) = database();
        let unbound = reads.read::<Item>("SELECT id, n, score, flag FROM items WHERE id = $2", &["a".into()], 1);
        assert!(matches!(unbound, Err(ReadError::Unbound(ref name, 1)) if name == "$2"), "{unbound:?}");
        let misfit = reads.read::<Item>("SELECT id FROM items", &[], 1);
        assert!(matches!(misfit, Err(ReadError::Decode(_))), "{misfit:?}");
        let write = reads.read::<Item>("DELETE FROM items RETURNING id, n, score, flag", &[], 10);
        assert!(matches!(write, Err(ReadError::Sqlite(_))), "{write:?}");
        let all: Vec<Item> = reads.read("SELECT id, n, score, flag FROM items", &[], 10).expect("read after errors");
        assert_eq!(all.len(), 3);
    }
}
