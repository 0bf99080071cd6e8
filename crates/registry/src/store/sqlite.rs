//! The embedded store: SQLite (bundled) in WAL mode with `synchronous=NORMAL`, so an acknowledged
//! write survives a crash of the process.
//!
//! One writer thread owns the only write connection and runs write jobs one after the other, each in
//! its own `BEGIN IMMEDIATE` transaction; callers wait on a oneshot for the result. A small pool of
//! read-only connections serves reads: point reads run inline on the caller's task (they take
//! microseconds), scans (`list`, `changes`) on tokio's blocking pool. Statements are prepared once per
//! connection (`prepare_cached`). The schema is created and upgraded from `migrations/NNN_*.sql`,
//! recorded in a `schema_version` table.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use appid::{AppClass, Change, ChangeKind, Role, Status};
use bytes::Bytes;
use onem2m::{AppId, Timestamp};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::{
    Imported, KeyState, ListQuery, Modified, Mutation, Store, StoreError, StoreFuture, StoredKey, StoredRecord,
    StoredToken, join_denied, split_denied,
};

/// The migrations, in order. A database newer than the last one is refused.
const MIGRATIONS: &[(u32, &str)] = &[(1, include_str!("migrations/001_init.sql"))];

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {what} in the database"))
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

/// A read connection borrowed from the pool, returned on drop (even on a panic).
struct Reader {
    shared: Arc<Shared>,
    conn: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.shared.readers.lock().push(c);
        }
    }
}

impl std::ops::Deref for Reader {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Set in `reader()` and only taken in `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a Reader always holds a connection"))
    }
}

fn configure(conn: &Connection, writer: bool) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    if writer {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -65536)?; // 64 MiB
    } else {
        conn.pragma_update(None, "cache_size", -16384)?; // 16 MiB
        // Map up to 2 GiB of the file (SQLite's default ceiling): point reads then copy no pages.
        conn.pragma_update(None, "mmap_size", 2_147_418_112)?;
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: u32 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this build's {latest}"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version])?;
        tx.commit()?;
        tracing::info!(version, "registry database migrated");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with `readers` read connections.
    pub fn open(path: &Path, readers: usize) -> Result<Self, StoreError> {
        let readers = readers.max(1);
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&writer, true)?;
        migrate(&mut writer)?;
        let mut pool = Vec::with_capacity(readers);
        for _ in 0..readers {
            let c =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            configure(&c, false)?;
            pool.push(c);
        }
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("registry-sqlite-writer".into())
            .spawn(move || {
                // Runs until every sender is gone, i.e. the store is dropped.
                for job in rx {
                    // A panicking job rolls its transaction back (rusqlite's Drop) and must not
                    // take the writer down with it; its caller sees a closed channel.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut writer)));
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                writer: Mutex::new(tx),
                readers: Mutex::new(pool),
                permits: Arc::new(Semaphore::new(readers)),
            }),
        })
    }

    /// Runs `f` on the writer thread.
    fn write<T, F>(&self, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        let sent = self.shared.writer.lock().send(job);
        Box::pin(async move {
            sent.map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
            rx.await.map_err(|_| StoreError::Backend("the write failed unexpectedly".into()))?
        })
    }

    async fn reader(&self) -> Result<Reader, StoreError> {
        let permit = Arc::clone(&self.shared.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("the read pool is closed".into()))?;
        let conn = self.shared.readers.lock().pop();
        match conn {
            Some(conn) => Ok(Reader { shared: Arc::clone(&self.shared), conn: Some(conn), _permit: permit }),
            None => Err(StoreError::Backend("the read pool is empty".into())),
        }
    }

    /// Runs `f` with a read connection on the blocking pool (for scans).
    fn read_blocking<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Box::pin(async move {
            let reader = self.reader().await?;
            tokio::task::spawn_blocking(move || f(&reader))
                .await
                .map_err(|e| StoreError::Backend(format!("a read failed: {e}")))?
        })
    }
}

macro_rules! record_columns {
    () => {
        "app_id, version, status, class, app_type, name, record, denied"
    };
}
const RECORD_COLUMNS: &str = record_columns!();
const GET_RECORD: &str = concat!("SELECT ", record_columns!(), " FROM app_ids WHERE app_id = ?1");

fn record_from_row(row: &Row<'_>) -> Result<StoredRecord, StoreError> {
    let app_id: String = row.get(0)?;
    let version: i64 = row.get(1)?;
    let status: String = row.get(2)?;
    let class: String = row.get(3)?;
    let json: Vec<u8> = row.get(6)?;
    let denied: String = row.get(7)?;
    Ok(StoredRecord {
        app_id: AppId::parse(&app_id).map_err(|_| corrupt("App-ID"))?,
        version: u64::try_from(version).map_err(|_| corrupt("version"))?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status"))?,
        class: AppClass::parse(&class).ok_or_else(|| corrupt("class"))?,
        app_type: row.get(4)?,
        name: row.get(5)?,
        json: Bytes::from(json),
        denied: split_denied(&denied),
    })
}

fn change_from_row(row: &Row<'_>) -> Result<Change, StoreError> {
    let seq: i64 = row.get(0)?;
    let app_id: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let status: String = row.get(3)?;
    Ok(Change {
        seq: u64::try_from(seq).map_err(|_| corrupt("sequence number"))?,
        app_id: AppId::parse(&app_id).map_err(|_| corrupt("App-ID"))?,
        kind: ChangeKind::parse(&kind).ok_or_else(|| corrupt("change kind"))?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status"))?,
        at: Timestamp::from_micros(row.get(4)?),
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn append_change(
    tx: &rusqlite::Transaction<'_>,
    app_id: &AppId,
    kind: ChangeKind,
    status: Status,
    at: Timestamp,
    reason: Option<&str>,
) -> Result<Change, StoreError> {
    tx.prepare_cached("INSERT INTO changes (app_id, kind, status, at, reason) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![app_id.as_str(), kind.as_str(), status.as_str(), at.micros(), reason])?;
    let seq = u64::try_from(tx.last_insert_rowid()).map_err(|_| corrupt("sequence number"))?;
    Ok(Change { seq, app_id: app_id.clone(), kind, status, at })
}

/// What [`insert_records`] does with an App-ID that is registered already.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Refuse the whole batch.
    Conflict,
    /// Leave it if its stored JSON is the same, else refuse the whole batch.
    KeepIdentical,
}

/// Inserts `records` in the caller's transaction, each with its `created` change.
fn insert_records(
    tx: &rusqlite::Transaction<'_>,
    records: &[StoredRecord],
    at: Timestamp,
    existing: Existing,
) -> Result<Imported, StoreError> {
    let mut done = Imported { changes: Vec::with_capacity(records.len()), unchanged: 0 };
    let mut ins = tx.prepare_cached(
        "INSERT INTO app_ids (app_id, version, status, class, app_type, name, record, denied) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (app_id) DO NOTHING",
    )?;
    for r in records {
        let inserted = ins.execute(params![
            r.app_id.as_str(),
            i64_of(r.version),
            r.status.as_str(),
            r.class.as_str(),
            r.app_type,
            r.name,
            &r.json[..],
            join_denied(&r.denied),
        ])?;
        if inserted == 0 {
            let stored: Vec<u8> = tx
                .prepare_cached("SELECT record FROM app_ids WHERE app_id = ?1")?
                .query_row([r.app_id.as_str()], |row| row.get(0))?;
            if existing == Existing::KeepIdentical && stored == r.json[..] {
                done.unchanged += 1;
                continue;
            }
            return Err(StoreError::Conflict(r.app_id.clone()));
        }
        done.changes.push(append_change(tx, &r.app_id, ChangeKind::Created, r.status, at, None)?);
    }
    Ok(done)
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, app_id: &'a AppId) -> StoreFuture<'a, Option<StoredRecord>> {
        Box::pin(async move {
            let reader = self.reader().await?;
            let mut stmt = reader.prepare_cached(GET_RECORD)?;
            let mut rows = stmt.query([app_id.as_str()])?;
            match rows.next()? {
                Some(row) => Ok(Some(record_from_row(row)?)),
                None => Ok(None),
            }
        })
    }

    fn list(&self, query: ListQuery) -> StoreFuture<'_, Vec<StoredRecord>> {
        self.read_blocking(move |conn| {
            let mut sql = format!("SELECT {RECORD_COLUMNS} FROM app_ids WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut arg = |sql: &mut String, clause: &str, v: String| {
                args.push(v.into());
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(s) = query.status {
                arg(&mut sql, " AND status = ?", s.as_str().to_owned());
            }
            if let Some(c) = query.class {
                arg(&mut sql, " AND class = ?", c.as_str().to_owned());
            }
            if let Some(t) = query.app_type {
                arg(&mut sql, " AND app_type = ?", t);
            }
            if let Some(after) = query.after {
                arg(&mut sql, " AND app_id > ?", after);
            }
            if let Some(q) = query.q {
                let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                arg(
                    &mut sql,
                    " AND (app_id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR app_type LIKE ? ESCAPE '\\')",
                    format!("%{escaped}%"),
                );
            }
            sql.push_str(&format!(" ORDER BY app_id LIMIT {}", query.limit));
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(record_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn insert(&self, records: Vec<StoredRecord>, at: Timestamp) -> StoreFuture<'_, Vec<Change>> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let done = insert_records(&tx, &records, at, Existing::Conflict)?;
            tx.commit()?;
            Ok(done.changes)
        })
    }

    fn import(&self, records: Vec<StoredRecord>, at: Timestamp) -> StoreFuture<'_, Imported> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let done = insert_records(&tx, &records, at, Existing::KeepIdentical)?;
            tx.commit()?;
            Ok(done)
        })
    }

    fn modify<'a>(&'a self, app_id: &'a AppId, mutation: Mutation, at: Timestamp) -> StoreFuture<'a, Modified> {
        let app_id = app_id.clone();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let json: Option<Vec<u8>> = tx
                .prepare_cached("SELECT record FROM app_ids WHERE app_id = ?1")?
                .query_row([app_id.as_str()], |r| r.get(0))
                .optional()?;
            let json = json.ok_or(StoreError::NotFound)?;
            let current: appid::Record = serde_json::from_slice(&json)
                .map_err(|e| StoreError::Backend(format!("stored record is corrupt: {e}")))?;
            let reason = mutation.reason().map(str::to_owned);
            let Some((next, kind)) = mutation.apply(&current)? else {
                return Ok(Modified { record: StoredRecord::from_record(&current), change: None });
            };
            let stored = StoredRecord::from_record(&next);
            tx.prepare_cached(
                "UPDATE app_ids SET version = ?2, status = ?3, class = ?4, app_type = ?5, name = ?6, record = ?7, \
                 denied = ?8 WHERE app_id = ?1",
            )?
            .execute(params![
                app_id.as_str(),
                i64_of(stored.version),
                stored.status.as_str(),
                stored.class.as_str(),
                stored.app_type,
                stored.name,
                &stored.json[..],
                join_denied(&stored.denied),
            ])?;
            let change = append_change(&tx, &app_id, kind, stored.status, at, reason.as_deref())?;
            tx.commit()?;
            Ok(Modified { record: stored, change: Some(change) })
        })
    }

    fn changes(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<Change>> {
        self.read_blocking(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, app_id, kind, status, at FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![i64_of(after), limit])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(change_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn head(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let reader = self.reader().await?;
            let head: i64 =
                reader.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")?.query_row([], |r| r.get(0))?;
            u64::try_from(head).map_err(|_| corrupt("sequence number"))
        })
    }

    fn add_token(&self, token: StoredToken, at: Timestamp) -> StoreFuture<'_, ()> {
        self.write(move |conn| {
            conn.prepare_cached("INSERT INTO tokens (hash, role, label, created_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![&token.hash[..], token.role.as_str(), token.label, at.micros()])?;
            Ok(())
        })
    }

    fn tokens(&self) -> StoreFuture<'_, Vec<StoredToken>> {
        self.read_blocking(|conn| {
            let mut stmt = conn.prepare_cached("SELECT hash, role, label FROM tokens")?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let hash: Vec<u8> = row.get(0)?;
                let role: String = row.get(1)?;
                out.push(StoredToken {
                    hash: hash.try_into().map_err(|_| corrupt("token hash"))?,
                    role: Role::parse(&role).ok_or_else(|| corrupt("token role"))?,
                    label: row.get(2)?,
                });
            }
            Ok(out)
        })
    }

    fn keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        self.read_blocking(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT kid, seed, state, created_at FROM signing_keys WHERE state <> 'retired' ORDER BY kid",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let seed: Vec<u8> = row.get(1)?;
                let state: String = row.get(2)?;
                out.push(StoredKey {
                    kid: row.get(0)?,
                    seed: seed.try_into().map_err(|_| corrupt("signing key"))?,
                    state: KeyState::parse(&state).ok_or_else(|| corrupt("key state"))?,
                    created_at: Timestamp::from_micros(row.get(3)?),
                });
            }
            Ok(out)
        })
    }

    fn rotate_key(&self, key: StoredKey) -> StoreFuture<'_, ()> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("UPDATE signing_keys SET state = 'published' WHERE state = 'active'", [])?;
            tx.execute(
                "INSERT INTO signing_keys (kid, seed, state, created_at) VALUES (?1, ?2, 'active', ?3)",
                params![key.kid, &key.seed[..], key.created_at.micros()],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn retire_key<'a>(&'a self, kid: &'a str) -> StoreFuture<'a, ()> {
        let kid = kid.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let state: Option<String> =
                tx.query_row("SELECT state FROM signing_keys WHERE kid = ?1", [&kid], |r| r.get(0)).optional()?;
            match state.as_deref().and_then(KeyState::parse) {
                None | Some(KeyState::Retired) => {
                    return Err(StoreError::NoSuchEntry {
                        field: "kid",
                        message: format!("no published signing key {kid:?}"),
                    });
                }
                Some(KeyState::Active) => {
                    return Err(StoreError::Invalid(appid::FieldError::invalid(
                        "kid",
                        "the active key signs; rotate to a new key before retiring it",
                    )));
                }
                Some(KeyState::Published) => {}
            }
            tx.execute("UPDATE signing_keys SET state = 'retired', seed = zeroblob(32) WHERE kid = ?1", [&kid])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn key_count(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let reader = self.reader().await?;
            let n: i64 = reader.prepare_cached("SELECT COUNT(*) FROM signing_keys")?.query_row([], |r| r.get(0))?;
            u64::try_from(n).map_err(|_| corrupt("key count"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> StoredRecord {
        super::super::suite::record(id, "consumer")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        super::super::suite::run(|| {
            n += 1;
            let path = dir.path().join(format!("suite{n}.db"));
            async move { SqliteStore::open(&path, 2).unwrap() }
        })
        .await;
    }

    /// WAL, so that a write acknowledged after its commit survives a crash of the process.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_database_is_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let s = SqliteStore::open(&path, 1).unwrap();
        s.insert(vec![record("Rw.com.x.a")], Timestamp::from_secs(1)).await.unwrap();
        let other = Connection::open(&path).unwrap();
        let mode: String = other.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let reader = s.reader().await.unwrap();
        let mode: String = reader.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = s.write(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?)).await.unwrap();
        assert_eq!(sync, 1, "synchronous=NORMAL on the writer");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopens_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        {
            let s = SqliteStore::open(&path, 1).unwrap();
            s.insert(vec![record("Rv.com.x.a")], Timestamp::from_secs(1)).await.unwrap();
        }
        let s = SqliteStore::open(&path, 1).unwrap();
        assert!(s.get(&AppId::parse("Rv.com.x.a").unwrap()).await.unwrap().is_some());
        drop(s);
        let conn = Connection::open(&path).unwrap();
        conn.execute("INSERT INTO schema_version (version) VALUES (999)", []).unwrap();
        drop(conn);
        assert!(matches!(SqliteStore::open(&path, 1), Err(StoreError::Backend(m)) if m.contains("999")));
    }
}
