//! The embedded backend: SQLite (bundled) in WAL mode.
//!
//! One writer thread owns the write connection and applies transactions in arrival order. It takes
//! every transaction waiting in its queue into one SQLite transaction (group commit), and answers
//! them all after the commit; one failing transaction does not undo the others (see `run_group`).
//! With `synchronous=NORMAL` a commit is in the WAL before it is acknowledged, so it survives a
//! crash of the process; `Durability::Full` also survives a power loss.
//!
//! Reads run on a small pool of read connections. Point reads are short and run on the caller's
//! task; discovery, which may scan many rows, runs on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use onem2m::{ResourceType, Timestamp};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::decisions::{Decision, DecisionFilter};
use super::{DiscoveryCursor, DiscoveryPage, DiscoveryQuery, Store, StoreError, StoreFuture, Tx, TxOutcome, Write};
use crate::resource::Resource;

/// How far an acknowledged write is guaranteed to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A crash of the process (WAL with `synchronous=NORMAL`).
    #[default]
    Process,
    /// A crash of the machine (`synchronous=FULL`: an fsync per commit).
    Full,
}

const MIGRATION_1: &str = "
CREATE TABLE resources (
    seq     INTEGER PRIMARY KEY,
    ri      TEXT    NOT NULL UNIQUE,
    pi      TEXT    NOT NULL,
    ty      INTEGER NOT NULL,
    srn     TEXT    NOT NULL UNIQUE,
    ct      INTEGER NOT NULL,
    lt      INTEGER NOT NULL,
    et      INTEGER NOT NULL,
    st      INTEGER NOT NULL DEFAULT 0,
    creator TEXT    NOT NULL,
    cs      INTEGER NOT NULL DEFAULT 0,
    cni     INTEGER NOT NULL DEFAULT 0,
    cbs     INTEGER NOT NULL DEFAULT 0,
    mni     INTEGER,
    mbs     INTEGER,
    mia     INTEGER,
    attrs   BLOB    NOT NULL,
    meta    TEXT
);
CREATE INDEX resources_children ON resources(pi, ty);
CREATE INDEX resources_expiry ON resources(et);
CREATE INDEX resources_mia ON resources(mia) WHERE mia IS NOT NULL;
";
/// A container's newest and oldest instance (`la`, `ol`) as pointers, so that reading them is two
/// unique lookups: a query ordered by `seq` on the children index is recompiled at every execution.
const MIGRATION_2: &str = "
ALTER TABLE resources ADD COLUMN la INTEGER;
ALTER TABLE resources ADD COLUMN ol INTEGER;
UPDATE resources SET
    la = (SELECT max(i.seq) FROM resources i WHERE i.pi = resources.ri AND i.ty = 4),
    ol = (SELECT min(i.seq) FROM resources i WHERE i.pi = resources.ri AND i.ty = 4)
WHERE ty = 3;
";

/// How many notifications each subscription has sent, for its expiration counter (`exc`).
const MIGRATION_3: &str = "ALTER TABLE resources ADD COLUMN sent INTEGER NOT NULL DEFAULT 0;";

/// When each contentInstance becomes older than its container's `mia` (µs; NULL without one), with
/// an index, so that the sweeper finds aged instances without scanning every instance.
const MIGRATION_4: &str = "
ALTER TABLE resources ADD COLUMN aged INTEGER;
UPDATE resources SET aged = ct + (SELECT c.mia FROM resources c WHERE c.ri = resources.pi) * 1000000
WHERE ty = 4 AND pi IN (SELECT ri FROM resources WHERE mia IS NOT NULL);
CREATE INDEX resources_aged ON resources(aged) WHERE aged IS NOT NULL;
";

/// The admission decision log, the signed answers admitted AEs refer to, and the CSE's own named
/// values (the change-feed position), in the resource tree's database: an AE and the decision that
/// admitted it are written in one transaction. (Before, the log had a database of its own,
/// `decisions.db`, which [`SqliteStore::open`] imports once.)
const MIGRATION_5: &str = "
CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    ae_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    profile_version INTEGER,
    outcome TEXT NOT NULL,
    rsc INTEGER NOT NULL,
    reason TEXT NOT NULL,
    rule TEXT,
    message TEXT NOT NULL,
    mode TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT 'registration',
    count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX decisions_app ON decisions(app_id, seq);
CREATE TABLE answers (key TEXT PRIMARY KEY, body BLOB NOT NULL, signature TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE state (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

/// The kept answers in the order they came, with their keys (SHA-256 digests, in no order) in an
/// index of their own: an answer is about 2 KB, and a table ordered by digest put each new one on a
/// page of its own choosing, so that with many App-IDs every admission of a new one read and wrote
/// back a random page of a table larger than the cache.
const MIGRATION_6: &str = "
CREATE TABLE answers_in_order (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    signature TEXT NOT NULL
);
INSERT INTO answers_in_order (key, body, signature) SELECT key, body, signature FROM answers;
DROP TABLE answers;
ALTER TABLE answers_in_order RENAME TO answers;
";

/// The schema's versions, in order: version `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: [&str; 6] = [MIGRATION_1, MIGRATION_2, MIGRATION_3, MIGRATION_4, MIGRATION_5, MIGRATION_6];

/// The decision log's columns, as a macro so that the insert's SQL is one literal (no string is
/// built per decision).
macro_rules! decision_columns {
    () => {
        "seq, at, ae_id, app_id, profile_version, outcome, rsc, reason, rule, message, mode, stage, count"
    };
}
const DECISION_COLUMNS: &str = decision_columns!();

const COLUMNS: &str = "ty, srn, creator, lt, st, cni, cbs, attrs, meta";
/// The largest group of transactions committed together.
const MAX_GROUP: usize = 512;
/// Transactions waiting for the writer; senders wait when it is full.
const QUEUE: usize = 4096;

enum Job {
    Tx(Vec<Prepared>, oneshot::Sender<Result<TxOutcome, StoreError>>),
    Clear(oneshot::Sender<Result<(), StoreError>>),
}

/// A resource encoded for its row, by the caller: the writer thread, through which every write
/// passes, only runs SQL.
struct Encoded {
    ri: String,
    pi: String,
    ty: u16,
    srn: String,
    rn: String,
    ct: i64,
    lt: i64,
    et: i64,
    creator: String,
    cs: i64,
    mni: Option<i64>,
    mbs: Option<i64>,
    mia: Option<i64>,
    attrs: Vec<u8>,
    meta: Option<String>,
}

impl Encoded {
    fn encode(r: &Resource) -> Result<Self, StoreError> {
        Ok(Self {
            ri: r.ri().to_owned(),
            pi: r.pi().to_owned(),
            ty: r.ty.num(),
            srn: r.srn.clone(),
            rn: r.rn().to_owned(),
            ct: r.ct().micros(),
            lt: r.lt().micros(),
            et: r.et().micros(),
            creator: r.creator.clone(),
            cs: r.content_size() as i64,
            mni: quota(r, "mni"),
            mbs: quota(r, "mbs"),
            mia: quota(r, "mia"),
            attrs: serde_json::to_vec(&r.attrs).map_err(backend)?,
            meta: r.meta.as_ref().map(Value::to_string),
        })
    }

    fn is_container(&self) -> bool {
        self.ty == ResourceType::Container.num()
    }
}

/// A write, ready for the writer thread.
enum Prepared {
    Create(Encoded),
    CreateInstance(Encoded),
    Update(Encoded),
    Delete(String),
    Count(String, i64),
    Decision(Decision),
    TrimDecisions(i64),
    Answer { key: String, body: Vec<u8>, signature: String },
    SetState(String, i64),
}

fn prepare(tx: Tx) -> Result<Vec<Prepared>, StoreError> {
    tx.writes
        .into_iter()
        .map(|w| {
            Ok(match w {
                Write::Create(r) => Prepared::Create(Encoded::encode(&r)?),
                Write::CreateInstance(r) => Prepared::CreateInstance(Encoded::encode(&r)?),
                Write::Update(r) => Prepared::Update(Encoded::encode(&r)?),
                Write::Delete(ri) => Prepared::Delete(ri),
                Write::CountNotification { sub, limit } => {
                    Prepared::Count(sub, i64::try_from(limit).unwrap_or(i64::MAX))
                }
                Write::Decision(d) => Prepared::Decision(d),
                Write::TrimDecisions(seq) => Prepared::TrimDecisions(i64::try_from(seq).unwrap_or(i64::MAX)),
                Write::Answer { key, body, signature } => Prepared::Answer { key, body, signature },
                Write::SetState { key, value } => Prepared::SetState(key, value),
            })
        })
        .collect()
}

/// How often the WAL is copied into the database, off the writer thread.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// How long the WAL grows (in pages) before the checkpoint thread has it start over. Starting over
/// holds the writer back for a moment (the last frames are copied and both files synced while no
/// one commits): the longer the WAL, the rarer that pause. Reads do not get slower with a long WAL
/// that is copied all the time (a reader only looks among the frames not yet copied).
const WAL_RESTART_PAGES: i64 = 16 * 1024;

/// What the WAL file is cut back to when it starts over, if it grew longer: above what it reaches
/// between two restarts (a page is 4 KB plus a 24-byte frame header), so that it is not cut and
/// grown again every time (each cut frees, and on some disks discards, its blocks while the writer
/// waits).
const WAL_SIZE_LIMIT: i64 = 2 * WAL_RESTART_PAGES * (4096 + 24);

/// Copies what it can of the WAL into the database without waiting. When the WAL has grown past
/// `restart_pages`, it then takes the writer's lock, copies the few frames committed meanwhile,
/// syncs, and waits for the readers of old frames, so that the writer's next transaction starts
/// the WAL over. The writer never checkpoints itself: its commits never wait for a sync.
fn checkpoint(c: &Connection, restart_pages: i64) -> rusqlite::Result<()> {
    let (_busy, log): (i64, i64) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if log > restart_pages {
        c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// How long a busy connection keeps trying, [`BUSY_SLEEP`] apart, before it gives up.
const BUSY_FOR: std::time::Duration = std::time::Duration::from_secs(5);
const BUSY_SLEEP: std::time::Duration = std::time::Duration::from_micros(200);
const BUSY_RETRIES: i32 = (BUSY_FOR.as_micros() / BUSY_SLEEP.as_micros()) as i32;

/// Waits a short moment and tries again, for up to [`BUSY_FOR`]. (SQLite's own busy timeout sleeps 1, 2,
/// 5, 10 ms and longer between tries: a writer held back for 3 ms by a restart of the WAL would
/// wait 8.)
fn busy(retries: i32) -> bool {
    std::thread::sleep(BUSY_SLEEP);
    retries < BUSY_RETRIES
}

struct Inner {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    writer: mpsc::Sender<Job>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_handler(Some(busy))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -16_000)?; // 16 MB
    // The writer's savepoints journal in memory, not in a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database `cse.db` in `dir`, and starts the writer thread.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| backend(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("cse.db");
        let conn = open_connection(&path).map_err(backend)?;
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(backend)?;
        // Only the checkpoint thread checkpoints (see `checkpoint`).
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(backend)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(backend)?;
        migrate(&conn).map_err(backend)?;
        import_decision_log(&conn, dir)?;
        let checkpointer = open_connection(&path).map_err(backend)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("cse-store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(backend)?;
        let inner = Arc::new(Inner { path, readers: Mutex::new(Vec::new()) });
        let alive = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("cse-store-checkpoint".into())
            .spawn(move || {
                // Until the store is dropped: copy committed pages into the database.
                while alive.strong_count() > 0 {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if let Err(e) = checkpoint(&checkpointer, WAL_RESTART_PAGES) {
                        tracing::warn!(error = %e, "checkpoint failed");
                    }
                }
            })
            .map_err(backend)?;
        Ok(Self { inner, writer: tx })
    }
}

impl Inner {
    /// Runs `f` on a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.readers.lock().pop();
        let conn = match conn {
            Some(c) => c,
            None => open_connection(&self.path).map_err(backend)?,
        };
        let out = f(&conn).map_err(backend);
        let mut pool = self.readers.lock();
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let v: Option<i64> = conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?;
    let v = v.unwrap_or(0);
    for (n, m) in (1..).zip(MIGRATIONS).skip_while(|(n, _)| *n <= v) {
        conn.execute_batch(&format!("BEGIN; {m} INSERT INTO schema_version VALUES ({n}); COMMIT;"))?;
    }
    Ok(())
}

fn row_to_resource(row: &rusqlite::Row<'_>) -> rusqlite::Result<Resource> {
    let ty: u16 = row.get(0)?;
    let srn: String = row.get(1)?;
    let creator: String = row.get(2)?;
    let lt: i64 = row.get(3)?;
    let st: i64 = row.get(4)?;
    let cni: i64 = row.get(5)?;
    let cbs: i64 = row.get(6)?;
    let blob: Vec<u8> = row.get(7)?;
    let meta: Option<String> = row.get(8)?;
    let bad = |what: &str| rusqlite::Error::InvalidColumnType(7, what.to_owned(), rusqlite::types::Type::Blob);
    let ty = ResourceType::from_num(i64::from(ty)).ok_or_else(|| bad("resource type"))?;
    let mut attrs: Map<String, Value> = serde_json::from_slice(&blob).map_err(|_| bad("attributes"))?;
    // Columns the writer changes without rewriting the attributes.
    attrs.insert("lt".into(), Value::String(Timestamp::from_micros(lt).to_string()));
    if attrs.contains_key("st") {
        attrs.insert("st".into(), Value::from(st));
    }
    if ty == ResourceType::Container {
        attrs.insert("cni".into(), Value::from(cni));
        attrs.insert("cbs".into(), Value::from(cbs));
    }
    let meta = match meta {
        Some(m) => Some(serde_json::from_str(&m).map_err(|_| bad("metadata"))?),
        None => None,
    };
    Ok(Resource { ty, srn, creator, attrs, meta })
}

fn query_one(conn: &Connection, sql: &str, key: &str) -> rusqlite::Result<Option<Resource>> {
    conn.prepare_cached(sql)?.query_row([key], row_to_resource).optional()
}

/// The upper bound of the `srn` range of everything below `srn`: `srn + '0'` (`'0'` follows `'/'`).
fn subtree_range(srn: &str) -> (String, String) {
    (format!("{srn}/"), format!("{srn}0"))
}

impl SqliteStore {
    /// A read that may scan many rows, on the blocking pool.
    fn read_blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.read(f))
                .await
                .map_err(|e| backend(format!("{what} task failed: {e}")))?
        })
    }
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, ri: &'a str) -> StoreFuture<'a, Option<Resource>> {
        Box::pin(async move {
            self.inner.read(|c| query_one(c, &format!("SELECT {COLUMNS} FROM resources WHERE ri = ?1"), ri))
        })
    }

    fn get_by_srn<'a>(&'a self, srn: &'a str) -> StoreFuture<'a, Option<Resource>> {
        Box::pin(async move {
            self.inner.read(|c| query_one(c, &format!("SELECT {COLUMNS} FROM resources WHERE srn = ?1"), srn))
        })
    }

    fn get_many<'a>(&'a self, ris: &'a [String]) -> StoreFuture<'a, Vec<Resource>> {
        Box::pin(async move {
            self.inner.read(|c| {
                let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM resources WHERE ri = ?1"))?;
                let mut out = Vec::with_capacity(ris.len());
                for ri in ris {
                    if let Some(r) = stmt.query_row([ri], row_to_resource).optional()? {
                        out.push(r);
                    }
                }
                Ok(out)
            })
        })
    }

    fn children<'a>(&'a self, pi: &'a str, ty: Option<ResourceType>, limit: usize) -> StoreFuture<'a, Vec<Resource>> {
        Box::pin(async move {
            self.inner.read(|c| {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                match ty {
                    Some(ty) => {
                        let mut stmt = c.prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM resources WHERE pi = ?1 AND ty = ?2 ORDER BY seq LIMIT ?3"
                        ))?;
                        stmt.query_map(params![pi, ty.num(), limit], row_to_resource)?.collect()
                    }
                    None => {
                        let mut stmt = c.prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM resources WHERE pi = ?1 ORDER BY seq LIMIT ?2"
                        ))?;
                        stmt.query_map(params![pi, limit], row_to_resource)?.collect()
                    }
                }
            })
        })
    }

    fn newest_or_oldest<'a>(
        &'a self,
        pi: &'a str,
        ty: ResourceType,
        latest: bool,
    ) -> StoreFuture<'a, Option<Resource>> {
        Box::pin(async move {
            let sql = match (ty, latest) {
                (ResourceType::ContentInstance, true) => {
                    format!("SELECT {COLUMNS} FROM resources WHERE seq = (SELECT la FROM resources WHERE ri = ?1)")
                }
                (ResourceType::ContentInstance, false) => {
                    format!("SELECT {COLUMNS} FROM resources WHERE seq = (SELECT ol FROM resources WHERE ri = ?1)")
                }
                (_, true) => format!(
                    "SELECT {COLUMNS} FROM resources WHERE pi = ?1 AND ty = {} ORDER BY seq DESC LIMIT 1",
                    ty.num()
                ),
                (_, false) => {
                    format!("SELECT {COLUMNS} FROM resources WHERE pi = ?1 AND ty = {} ORDER BY seq LIMIT 1", ty.num())
                }
            };
            self.inner.read(|c| c.prepare_cached(&sql)?.query_row([pi], row_to_resource).optional())
        })
    }

    fn discover<'a>(&'a self, q: &'a DiscoveryQuery) -> StoreFuture<'a, DiscoveryPage> {
        let q = q.clone();
        self.read_blocking("discovery", move |c| discover(c, &q))
    }

    fn children_of<'a>(&'a self, pis: &'a [String], limit_each: usize) -> StoreFuture<'a, Vec<Resource>> {
        Box::pin(async move {
            self.inner.read(|c| {
                let mut stmt =
                    c.prepare_cached(&format!("SELECT {COLUMNS} FROM resources WHERE pi = ?1 ORDER BY seq LIMIT ?2"))?;
                let limit = i64::try_from(limit_each).unwrap_or(i64::MAX);
                let mut out = Vec::new();
                for pi in pis {
                    for r in stmt.query_map(params![pi, limit], row_to_resource)? {
                        out.push(r?);
                    }
                }
                Ok(out)
            })
        })
    }

    fn expired<'a>(&'a self, now: Timestamp, limit: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.inner.read(|c| {
                let mut stmt = c.prepare_cached("SELECT ri FROM resources WHERE et < ?1 ORDER BY et LIMIT ?2")?;
                stmt.query_map(params![now.micros(), limit as i64], |r| r.get(0))?.collect()
            })
        })
    }

    fn aged_instances<'a>(&'a self, now: Timestamp, limit: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.inner.read(|c| {
                let mut stmt = c.prepare_cached("SELECT ri FROM resources WHERE aged < ?1 ORDER BY aged LIMIT ?2")?;
                stmt.query_map(params![now.micros(), limit as i64], |r| r.get(0))?.collect()
            })
        })
    }

    fn apply(&self, tx: Tx) -> StoreFuture<'_, TxOutcome> {
        Box::pin(async move {
            let prepared = prepare(tx)?;
            let (reply, rx) = oneshot::channel();
            self.writer.send(Job::Tx(prepared, reply)).await.map_err(|_| backend("the store is closed"))?;
            rx.await.map_err(|_| backend("the store writer stopped"))?
        })
    }

    fn clear(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.writer.send(Job::Clear(reply)).await.map_err(|_| backend("the store is closed"))?;
            rx.await.map_err(|_| backend("the store writer stopped"))?
        })
    }

    fn decisions<'a>(&'a self, f: &'a DecisionFilter) -> StoreFuture<'a, Vec<Decision>> {
        let f = f.clone();
        self.read_blocking("decision query", move |c| query_decisions(c, &f))
    }

    fn answer<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<(Vec<u8>, String)>> {
        Box::pin(async move {
            self.inner.read(|c| {
                c.prepare_cached("SELECT body, signature FROM answers WHERE key = ?1")?
                    .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
        })
    }

    fn state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<i64>> {
        Box::pin(async move {
            self.inner.read(|c| {
                c.prepare_cached("SELECT value FROM state WHERE key = ?1")?.query_row([key], |r| r.get(0)).optional()
            })
        })
    }
}

fn discover(c: &Connection, q: &DiscoveryQuery) -> rusqlite::Result<DiscoveryPage> {
    use rusqlite::types::Value as Sql;
    // What places a resource in the scan: the subtree, the level, the cursor.
    let (lo, hi) = subtree_range(&q.root_srn);
    let mut scope = "srn >= ?1 AND srn < ?2".to_owned();
    let mut args: Vec<Sql> = vec![Sql::Text(lo), Sql::Text(hi)];
    fn cond(args: &mut Vec<Sql>, sql: &mut String, clause: &str, v: Sql) {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    }
    if let Some(lvl) = q.max_level {
        let depth = q.root_srn.matches('/').count() as i64 + i64::from(lvl);
        cond(&mut args, &mut scope, "length(srn) - length(replace(srn, '/', '')) <=", Sql::Integer(depth));
    }
    if let Some(DiscoveryCursor(seq)) = q.after {
        cond(&mut args, &mut scope, "seq >", Sql::Integer(seq));
    }
    let scope_args = args.len();
    // With a scan limit, only the first resources in scope are looked at; the conditions apply
    // to those.
    let (mut sql, scanned) = match q.scan_limit {
        Some(n) => {
            let scanned = format!(
                "SELECT seq FROM resources WHERE {scope} ORDER BY seq LIMIT {}",
                i64::try_from(n).unwrap_or(i64::MAX)
            );
            (format!("SELECT {COLUMNS}, seq FROM resources WHERE seq IN ({scanned})"), Some(scanned))
        }
        None => (format!("SELECT {COLUMNS}, seq FROM resources WHERE {scope}"), None),
    };
    let t = |ts: Timestamp| Sql::Integer(ts.micros());
    if let Some(x) = q.created_before {
        cond(&mut args, &mut sql, "ct <", t(x));
    }
    if let Some(x) = q.created_after {
        cond(&mut args, &mut sql, "ct >", t(x));
    }
    if let Some(x) = q.modified_since {
        cond(&mut args, &mut sql, "lt >", t(x));
    }
    if let Some(x) = q.unmodified_since {
        cond(&mut args, &mut sql, "lt <", t(x));
    }
    if let Some(x) = q.expire_before {
        cond(&mut args, &mut sql, "et <", t(x));
    }
    if let Some(x) = q.expire_after {
        cond(&mut args, &mut sql, "et >", t(x));
    }
    if !q.types.is_empty() {
        let list = q.types.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        sql.push_str(&format!(" AND ty IN ({list})"));
    }
    let conditions = sql.clone();
    args.push(Sql::Integer(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(" ORDER BY seq LIMIT ?{}", args.len()));
    args.push(Sql::Integer(i64::try_from(q.offset).unwrap_or(i64::MAX)));
    sql.push_str(&format!(" OFFSET ?{}", args.len()));
    let mut stmt = c.prepare(&sql)?;
    let mut page = DiscoveryPage::default();
    for row in stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |row| Ok((row_to_resource(row)?, row.get::<_, i64>(9)?)))?
    {
        let (r, seq) = row?;
        page.resources.push(r);
        page.positions.push(DiscoveryCursor(seq));
    }
    page.skipped = q.offset;
    page.examined = page.resources.len();
    if page.resources.len() >= q.limit {
        page.next = page.positions.last().copied();
    }
    if let (Some(scanned), Some(n)) = (scanned, q.scan_limit) {
        let (examined, last): (i64, Option<i64>) = c.query_row(
            &format!("SELECT count(*), max(seq) FROM ({scanned})"),
            rusqlite::params_from_iter(&args[..scope_args]),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        page.examined = usize::try_from(examined).unwrap_or(usize::MAX);
        if page.next.is_none() && page.examined >= n {
            page.next = last.map(DiscoveryCursor);
        }
    }
    if page.resources.is_empty() && q.offset > 0 {
        // The scope may have ended before the offset: count what it skipped.
        let matched: i64 = c.query_row(
            &format!("SELECT count(*) FROM ({conditions})"),
            rusqlite::params_from_iter(&args[..args.len() - 2]),
            |r| r.get(0),
        )?;
        page.skipped = usize::try_from(matched).unwrap_or(usize::MAX).min(q.offset);
    }
    Ok(page)
}

// ---- the writer ----

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_group(&mut conn, &mut batch);
    }
}

type JobResult = Result<Option<TxOutcome>, StoreError>;

fn run_job(c: &Connection, job: &Job) -> JobResult {
    match job {
        Job::Tx(tx, _) => apply_tx(c, tx).map(Some),
        Job::Clear(_) => c.execute_batch("DELETE FROM resources").map_err(backend).map(|()| None),
    }
}

fn exec(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop)
}

/// Ends the open transaction, if there is one: after some failures (a full disk, an I/O error)
/// SQLite has rolled it back already, and a second ROLLBACK would fail in place of the error that
/// caused it.
fn rollback(c: &Connection) -> rusqlite::Result<()> {
    if c.is_autocommit() { Ok(()) } else { exec(c, "ROLLBACK") }
}

/// Applies a group of jobs in one SQLite transaction and answers each.
///
/// A job that fails must not undo the others. Jobs rarely fail, so the group first runs without
/// savepoints (a savepoint copies every page a job changes); if a job fails, the whole group is
/// rolled back and run again with each job in a savepoint of its own.
fn run_group(conn: &mut Connection, batch: &mut Vec<Job>) {
    let begin = |conn: &Connection| exec(conn, "BEGIN IMMEDIATE");
    let fail_all = |batch: &mut Vec<Job>, e: StoreError| {
        for job in batch.drain(..) {
            answer(job, Err(e.clone()));
        }
    };
    if let Err(e) = begin(conn) {
        return fail_all(batch, backend(e));
    }
    let mut results: Vec<JobResult> = Vec::with_capacity(batch.len());
    for job in batch.iter() {
        match run_job(conn, job) {
            Ok(r) => results.push(Ok(r)),
            Err(_) => {
                results.clear();
                break;
            }
        }
    }
    if results.len() < batch.len() {
        if let Err(e) = rollback(conn).and_then(|()| begin(conn)) {
            return fail_all(batch, backend(e));
        }
        results.extend(batch.iter().map(|job| in_savepoint(conn, |c| run_job(c, job))));
    }
    if let Err(e) = exec(conn, "COMMIT") {
        let _ = rollback(conn);
        return fail_all(batch, backend(format!("commit failed: {e}")));
    }
    for (job, r) in batch.drain(..).zip(results) {
        answer(job, r);
    }
}

fn answer(job: Job, r: JobResult) {
    match job {
        Job::Tx(_, reply) => {
            let _ = reply.send(r.map(Option::unwrap_or_default));
        }
        Job::Clear(reply) => {
            let _ = reply.send(r.map(|_| ()));
        }
    }
}

/// Runs `f` in a savepoint of the group's transaction: undone alone if it fails. The savepoint
/// statements are prepared once (a group runs thousands of them a second).
fn in_savepoint<T>(c: &Connection, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
    let run = |sql: &str| exec(c, sql).map_err(backend);
    run("SAVEPOINT tx")?;
    match f(c) {
        Ok(v) => {
            run("RELEASE tx")?;
            Ok(v)
        }
        Err(e) => {
            run("ROLLBACK TO tx")?;
            run("RELEASE tx")?;
            Err(e)
        }
    }
}

fn apply_tx(c: &Connection, tx: &[Prepared]) -> Result<TxOutcome, StoreError> {
    let mut out = TxOutcome::default();
    for (i, w) in tx.iter().enumerate() {
        match w {
            Prepared::Create(r) => {
                // A parent created earlier in this transaction exists (an AE's privacy policy).
                let made_here = tx[..i].iter().any(|p| matches!(p, Prepared::Create(q) if q.ri == r.pi));
                if !made_here && !parent_exists(c, &r.pi)? {
                    return Err(StoreError::NotFound(r.pi.clone()));
                }
                insert(c, r)?
            }
            Prepared::CreateInstance(r) => create_instance(c, r, &mut out)?,
            Prepared::Update(r) => update(c, r, &mut out)?,
            Prepared::Delete(ri) => delete(c, ri, &mut out)?,
            Prepared::Count(sub, limit) => {
                let sent: Option<i64> = c
                    .prepare_cached(
                        "UPDATE resources SET sent = sent + 1 WHERE ri = ?1 AND ty = 23 AND sent < ?2 RETURNING sent",
                    )
                    .and_then(|mut s| s.query_row(params![sub, limit], |r| r.get(0)).optional())
                    .map_err(backend)?;
                out.counted.push((sub.clone(), sent.map(|n| n as u64)));
            }
            Prepared::Decision(d) => out.decisions.push(insert_decision(c, d)?),
            Prepared::TrimDecisions(seq) => {
                c.prepare_cached("DELETE FROM decisions WHERE seq <= ?1")
                    .and_then(|mut s| s.execute([seq]))
                    .map_err(backend)?;
            }
            Prepared::Answer { key, body, signature } => {
                c.prepare_cached("INSERT OR IGNORE INTO answers (key, body, signature) VALUES (?1, ?2, ?3)")
                    .and_then(|mut s| s.execute(params![key, body, signature]))
                    .map_err(backend)?;
            }
            Prepared::SetState(key, value) => {
                c.prepare_cached(
                    "INSERT INTO state (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut s| s.execute(params![key, value]))
                .map_err(backend)?;
            }
        }
    }
    Ok(out)
}

/// Appends a decision (numbered by SQLite unless it has a number) and gives its `seq`.
fn insert_decision(c: &Connection, d: &Decision) -> Result<u64, StoreError> {
    c.prepare_cached(concat!(
        "INSERT INTO decisions (",
        decision_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            (d.seq > 0).then_some(d.seq as i64),
            d.at,
            d.ae_id,
            d.app_id,
            d.profile_version.map(|v| v as i64),
            d.outcome,
            d.rsc,
            d.reason,
            d.rule,
            d.message,
            d.mode,
            d.stage,
            d.count as i64
        ])
    })
    .map_err(backend)?;
    Ok(c.last_insert_rowid() as u64)
}

fn row_to_decision(r: &rusqlite::Row<'_>) -> rusqlite::Result<Decision> {
    Ok(Decision {
        seq: r.get::<_, i64>(0)? as u64,
        at: r.get(1)?,
        ae_id: r.get(2)?,
        app_id: r.get(3)?,
        profile_version: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        outcome: r.get(5)?,
        rsc: r.get(6)?,
        reason: r.get(7)?,
        rule: r.get(8)?,
        message: r.get(9)?,
        mode: r.get(10)?,
        stage: r.get(11)?,
        count: r.get::<_, i64>(12)? as u64,
    })
}

fn query_decisions(c: &Connection, f: &DecisionFilter) -> rusqlite::Result<Vec<Decision>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {DECISION_COLUMNS} FROM decisions
         WHERE (?1 IS NULL OR app_id = ?1) AND (?2 IS NULL OR ae_id = ?2)
           AND (?3 IS NULL OR outcome = ?3) AND (?4 IS NULL OR seq < ?4)
         ORDER BY seq DESC LIMIT ?5"
    ))?;
    let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
    stmt.query_map(params![f.app_id, f.ae_id, f.outcome, f.before.map(|b| b as i64), limit], row_to_decision)?.collect()
}

/// Moves the entries and the feed position of a decision log of its own (`decisions.db`, before
/// schema 5) into the store, in one transaction, and renames the old file: it is read once.
fn import_decision_log(conn: &Connection, dir: &Path) -> Result<(), StoreError> {
    let old = dir.join("decisions.db");
    if !old.exists() {
        return Ok(());
    }
    let path = old.to_str().ok_or_else(|| backend("the data directory's path is not UTF-8"))?;
    conn.execute("ATTACH DATABASE ?1 AS old", [path]).map_err(backend)?;
    // The first logs had neither `stage` nor `count`.
    let has = |col: &str| -> bool {
        conn.query_row("SELECT COUNT(*) FROM pragma_table_info('decisions', 'old') WHERE name = ?1", [col], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok_and(|n| n > 0)
    };
    let stage = if has("stage") { "stage" } else { "'registration'" };
    let count = if has("count") { "count" } else { "1" };
    let copied = conn.execute_batch(&format!(
        "BEGIN;
         INSERT OR IGNORE INTO decisions ({DECISION_COLUMNS})
             SELECT seq, at, ae_id, app_id, profile_version, outcome, rsc, reason, rule, message, mode, {stage}, {count}
             FROM old.decisions;
         INSERT OR IGNORE INTO state (key, value) SELECT key, value FROM old.admission_state;
         COMMIT;"
    ));
    if copied.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn.execute_batch("DETACH DATABASE old").map_err(backend)?;
    copied.map_err(|e| backend(format!("cannot import {}: {e}", old.display())))?;
    std::fs::rename(&old, dir.join("decisions.db.imported")).map_err(backend)?;
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("decisions.db{ext}")));
    }
    Ok(())
}

fn parent_exists(c: &Connection, pi: &str) -> Result<bool, StoreError> {
    if pi.is_empty() {
        return Ok(true); // the CSEBase
    }
    c.prepare_cached("SELECT 1 FROM resources WHERE ri = ?1").and_then(|mut s| s.exists([pi])).map_err(backend)
}

fn quota(r: &Resource, name: &str) -> Option<i64> {
    if r.ty == ResourceType::Container { r.get_u64(name).and_then(|v| i64::try_from(v).ok()) } else { None }
}

fn insert(c: &Connection, r: &Encoded) -> Result<(), StoreError> {
    let res = c
        .prepare_cached(
            "INSERT INTO resources (ri, pi, ty, srn, ct, lt, et, creator, cs, mni, mbs, mia, attrs, meta)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .and_then(|mut s| {
            s.execute(params![
                r.ri, r.pi, r.ty, r.srn, r.ct, r.lt, r.et, r.creator, r.cs, r.mni, r.mbs, r.mia, r.attrs, r.meta
            ])
        });
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, Some(msg))) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            if msg.contains("resources.ri") {
                Err(StoreError::DuplicateRi(r.ri.clone()))
            } else {
                Err(StoreError::DuplicateName(r.rn.clone()))
            }
        }
        Err(e) => Err(backend(e)),
    }
}

fn create_instance(c: &Connection, r: &Encoded, out: &mut TxOutcome) -> Result<(), StoreError> {
    insert(c, r)?;
    let seq = c.last_insert_rowid();
    // The container's counters follow; no row means the container is gone (the savepoint undoes
    // the insert).
    let counters: Option<(Counters, Option<i64>)> = c
        .prepare_cached(
            "UPDATE resources SET cni = cni + 1, cbs = cbs + ?1, st = st + 1, lt = ?2, la = ?3, ol = coalesce(ol, ?3)
             WHERE ri = ?4 RETURNING cni, cbs, mni, mbs, mia",
        )
        .and_then(|mut s| {
            s.query_row(params![r.cs, r.ct, seq, r.pi], |x| {
                Ok(((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?), x.get(4)?))
            })
            .optional()
        })
        .map_err(backend)?;
    let Some((counters, mia)) = counters else { return Err(StoreError::NotFound(r.pi.clone())) };
    if let Some(mia) = mia {
        c.prepare_cached("UPDATE resources SET aged = ?1 WHERE seq = ?2")
            .and_then(|mut s| s.execute(params![aged_at(r.ct, mia), seq]))
            .map_err(backend)?;
    }
    trim(c, &r.pi, counters, out)
}

/// Sets a container's `la` and `ol` pointers from its instances (after instances were removed).
fn repoint(c: &Connection, container: &str) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE resources SET
            la = (SELECT max(seq) FROM resources WHERE pi = ?1 AND ty = 4),
            ol = (SELECT min(seq) FROM resources WHERE pi = ?1 AND ty = 4)
         WHERE ri = ?1",
    )
    .and_then(|mut s| s.execute([container]))
    .map_err(backend)?;
    Ok(())
}

/// Removes the oldest instances of container `ri` while it is over its `mni` or `mbs`.
fn enforce_quotas(c: &Connection, ri: &str, out: &mut TxOutcome) -> Result<(), StoreError> {
    let counters = c
        .prepare_cached("SELECT cni, cbs, mni, mbs FROM resources WHERE ri = ?1")
        .and_then(|mut s| s.query_row([ri], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))))
        .map_err(backend)?;
    trim(c, ri, counters, out)
}

/// A container's `cni`, `cbs`, `mni` and `mbs`.
type Counters = (i64, i64, Option<i64>, Option<i64>);

/// Given a container's counters and quotas, removes its oldest instances while it is over them.
fn trim(
    c: &Connection,
    ri: &str,
    (mut cni, mut cbs, mni, mbs): Counters,
    out: &mut TxOutcome,
) -> Result<(), StoreError> {
    let over = |cni: i64, cbs: i64| mni.is_some_and(|m| cni > m) || mbs.is_some_and(|m| cbs > m);
    if !over(cni, cbs) {
        return Ok(());
    }
    let mut oldest = c
        .prepare_cached("SELECT seq, cs FROM resources WHERE pi = ?1 AND ty = 4 ORDER BY seq LIMIT 64")
        .map_err(backend)?;
    let mut del = c.prepare_cached("DELETE FROM resources WHERE seq = ?1").map_err(backend)?;
    while over(cni, cbs) {
        let rows: Vec<(i64, i64)> =
            oldest.query_map([ri], |r| Ok((r.get(0)?, r.get(1)?))).and_then(Iterator::collect).map_err(backend)?;
        if rows.is_empty() {
            break;
        }
        for (seq, cs) in rows {
            if !over(cni, cbs) {
                break;
            }
            del.execute([seq]).map_err(backend)?;
            cni -= 1;
            cbs -= cs;
            out.removed += 1;
        }
    }
    c.prepare_cached("UPDATE resources SET cni = ?1, cbs = ?2 WHERE ri = ?3")
        .and_then(|mut s| s.execute(params![cni, cbs, ri]))
        .map_err(backend)?;
    repoint(c, ri)
}

/// When an instance created at `ct` (µs) becomes older than `mia` seconds.
fn aged_at(ct: i64, mia: i64) -> i64 {
    ct.saturating_add(mia.saturating_mul(1_000_000))
}

fn update(c: &Connection, r: &Encoded, out: &mut TxOutcome) -> Result<(), StoreError> {
    // A container's new `mia` moves the instances' ageing times (only when it changes: the
    // instances may be many).
    let old_mia: Option<Option<i64>> = if r.is_container() {
        c.prepare_cached("SELECT mia FROM resources WHERE ri = ?1")
            .and_then(|mut s| s.query_row([&r.ri], |x| x.get(0)).optional())
            .map_err(backend)?
    } else {
        None
    };
    if old_mia.is_some_and(|old| old != r.mia) {
        c.prepare_cached(
            "UPDATE resources SET aged = CASE WHEN ?1 IS NULL THEN NULL ELSE ct + ?1 * 1000000 END
             WHERE pi = ?2 AND ty = 4",
        )
        .and_then(|mut s| s.execute(params![r.mia, r.ri]))
        .map_err(backend)?;
    }
    let n = c
        .prepare_cached(
            "UPDATE resources SET attrs = ?1, lt = ?2, et = ?3, st = st + 1, mni = ?4, mbs = ?5, mia = ?6,
             meta = ?7 WHERE ri = ?8",
        )
        .and_then(|mut s| s.execute(params![r.attrs, r.lt, r.et, r.mni, r.mbs, r.mia, r.meta, r.ri]))
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(r.ri.clone()));
    }
    if r.is_container() {
        enforce_quotas(c, &r.ri, out)?;
    }
    Ok(())
}

fn delete(c: &Connection, ri: &str, out: &mut TxOutcome) -> Result<(), StoreError> {
    let found: Option<(String, String, i64, i64)> = c
        .prepare_cached("SELECT srn, pi, ty, cs FROM resources WHERE ri = ?1")
        .and_then(|mut s| s.query_row([ri], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional())
        .map_err(backend)?;
    let Some((srn, pi, ty, cs)) = found else {
        return Err(StoreError::NotFound(ri.to_owned()));
    };
    let (lo, hi) = subtree_range(&srn);
    // What the CSE must act on: subscriptions (deletion notices), ACPs and AEs (caches).
    {
        let mut stmt = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM resources WHERE (srn = ?1 OR (srn >= ?2 AND srn < ?3)) AND ty IN (1, 2, 23)"
            ))
            .map_err(backend)?;
        let rows = stmt.query_map(params![srn, lo, hi], row_to_resource).map_err(backend)?;
        for r in rows {
            let r = r.map_err(backend)?;
            match r.ty {
                ResourceType::Subscription => out.removed_subscriptions.push(r),
                ResourceType::AccessControlPolicy => out.removed_acps.push(r.ri().to_owned()),
                _ => out.removed_aes.push(r.ri().to_owned()),
            }
        }
    }
    let n = c
        .prepare_cached("DELETE FROM resources WHERE srn = ?1 OR (srn >= ?2 AND srn < ?3)")
        .and_then(|mut s| s.execute(params![srn, lo, hi]))
        .map_err(backend)?;
    out.removed += n as u64;
    if ty == i64::from(ResourceType::ContentInstance.num()) {
        c.prepare_cached("UPDATE resources SET cni = max(cni - 1, 0), cbs = max(cbs - ?1, 0) WHERE ri = ?2")
            .and_then(|mut s| s.execute(params![cs, pi]))
            .map_err(backend)?;
        repoint(c, &pi)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept answers of a database of schema 5 (ordered by key) are there after the move to
    /// schema 6 (in the order they came).
    #[tokio::test]
    async fn kept_answers_survive_the_move_to_their_own_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = open_connection(&dir.path().join("cse.db")).unwrap();
            c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)").unwrap();
            for (n, m) in (1..).zip(&MIGRATIONS[..5]) {
                c.execute_batch(&format!("{m} INSERT INTO schema_version VALUES ({n});")).unwrap();
            }
            c.execute("INSERT INTO answers VALUES ('k1', x'7b7d', 'sig1'), ('k0', x'5b5d', 'sig0')", []).unwrap();
        }
        let store = SqliteStore::open(dir.path(), Durability::Process).unwrap();
        assert_eq!(store.answer("k1").await.unwrap(), Some((b"{}".to_vec(), "sig1".to_owned())));
        assert_eq!(store.answer("k0").await.unwrap(), Some((b"[]".to_vec(), "sig0".to_owned())));
        assert_eq!(store.answer("k2").await.unwrap(), None);
    }

    /// A group in which one transaction fails halfway: it is undone alone (its first write too),
    /// the others are committed, and each is answered with its own result.
    #[test]
    fn a_failing_transaction_in_a_group_fails_alone() {
        use super::super::suite::res;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_connection(&dir.path().join("cse.db")).unwrap();
        migrate(&conn).unwrap();
        let ae = |ri: &str, rn: &str| {
            Write::Create(res(ResourceType::Ae, ri, "", &format!("cse-in/{rn}"), serde_json::json!({})))
        };
        let mut batch = Vec::new();
        let mut replies = Vec::new();
        for writes in [vec![ae("C1", "a")], vec![ae("C2", "b"), ae("C3", "a")], vec![ae("C4", "c")]] {
            let (tx, rx) = oneshot::channel();
            batch.push(Job::Tx(prepare(Tx { writes }).unwrap(), tx));
            replies.push(rx);
        }
        run_group(&mut conn, &mut batch);
        let got: Vec<_> = replies.into_iter().map(|mut rx| rx.try_recv().unwrap().map(drop)).collect();
        assert_eq!(got, vec![Ok(()), Err(StoreError::DuplicateName("a".into())), Ok(())]);
        let ris: Vec<String> = conn
            .prepare("SELECT ri FROM resources ORDER BY ri")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ris, ["C1", "C4"]);
    }

    #[tokio::test]
    async fn sqlite_passes_the_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Process).unwrap();
        super::super::suite::run(&store).await;
    }

    /// The checkpoint thread's work: what the WAL holds is copied into the database file (the
    /// writer here never checkpoints), and the WAL is then started over.
    #[test]
    fn checkpoints_copy_the_wal_and_start_it_over_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = open_connection(&path).unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap(); // only `checkpoint` copies
        writer.execute_batch("CREATE TABLE t (v BLOB)").unwrap();
        let write = |n: usize| {
            for _ in 0..n {
                writer.execute("INSERT INTO t VALUES (zeroblob(4000))", []).unwrap();
            }
        };
        write(200);
        let db_size = || std::fs::metadata(&path).unwrap().len();
        let before = db_size();
        let other = open_connection(&path).unwrap();
        let wal_frames = |c: &Connection| -> i64 {
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)).unwrap()
        };
        checkpoint(&other, WAL_RESTART_PAGES).unwrap();
        assert!(db_size() > before + 100 * 4096, "the pages were copied: {before} -> {}", db_size());
        // Past the limit (here: any WAL) it also waits for readers, and there are none: it returns,
        // and the next write starts the WAL over.
        write(1);
        checkpoint(&other, 0).unwrap();
        write(1);
        assert!(wal_frames(&other) < 10, "the WAL started over");
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
            super::super::suite::seed(&store).await;
        }
        let store = SqliteStore::open(dir.path(), Durability::Process).unwrap();
        assert!(store.get_by_srn("cse-in/ae1").await.unwrap().is_some());
    }
}
