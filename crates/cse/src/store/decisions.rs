//! The admission decision log: every decision, stored durably (SQLite, `decisions.db` beside the
//! resource tree) and readable with filters. The log keeps at most a configured number of entries
//! (the oldest go first), so that no client can fill the disk with refusals. The same database keeps
//! the position of the registry's change feed that admission has applied.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// One admission decision (DESIGN.md §7 step 9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Its place in the log, from 1.
    #[serde(default)]
    pub seq: u64,
    /// When, as a oneM2M timestamp.
    pub at: String,
    pub ae_id: String,
    pub app_id: String,
    /// The profile version decided on, when there was a profile.
    pub profile_version: Option<u64>,
    /// `admitted` or `rejected`.
    pub outcome: String,
    pub rsc: u16,
    /// A stable reason label (`admitted`, `revoked`, `rule`, ...).
    pub reason: String,
    /// The policy rule that decided, if one did.
    pub rule: Option<String>,
    /// The human-readable reason.
    pub message: String,
    /// `enforce` or `audit`.
    pub mode: String,
    /// `registration` (an AE CREATE) or `request` (a later request of an admitted AE, or one over
    /// a certificate that did not verify).
    #[serde(default = "registration")]
    pub stage: String,
    /// How many refusals this entry stands for: itself and those of the same kind that were only
    /// counted since the previous entry of that kind (see `admission::RefusalLog`).
    #[serde(default = "one")]
    pub count: u64,
}

fn registration() -> String {
    "registration".into()
}

fn one() -> u64 {
    1
}

/// Filters of a query; all optional.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    pub app_id: Option<String>,
    pub ae_id: Option<String>,
    pub outcome: Option<String>,
    /// Only decisions with a smaller `seq` (for paging backwards).
    pub before: Option<u64>,
    pub limit: usize,
}

/// The most entries kept unless told otherwise.
pub const DEFAULT_MAX_ENTRIES: u64 = 500_000;
/// Old entries are trimmed every this many appends.
const TRIM_EVERY: u64 = 1000;

/// The log. Appends are short; they run on the blocking pool.
#[derive(Clone)]
pub struct DecisionLog {
    conn: Arc<Mutex<Connection>>,
    max_entries: u64,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl DecisionLog {
    /// Opens the log in `dir`, keeping [`DEFAULT_MAX_ENTRIES`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, DEFAULT_MAX_ENTRIES)
    }

    /// Opens the log in `dir`, keeping the newest `max_entries` (at least 1).
    pub fn open_with(dir: &Path, max_entries: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let conn = Connection::open(dir.join("decisions.db")).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(backend)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS decisions (
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
                mode TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS decisions_app ON decisions(app_id, seq);
            CREATE TABLE IF NOT EXISTS admission_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(backend)?;
        // Columns added after the first release of the table.
        let has = |col: &str| -> Result<bool, StoreError> {
            let n: i64 = conn
                .query_row("SELECT COUNT(*) FROM pragma_table_info('decisions') WHERE name = ?1", [col], |r| r.get(0))
                .map_err(backend)?;
            Ok(n > 0)
        };
        if !has("stage")? {
            conn.execute_batch("ALTER TABLE decisions ADD COLUMN stage TEXT NOT NULL DEFAULT 'registration'")
                .map_err(backend)?;
        }
        if !has("count")? {
            conn.execute_batch("ALTER TABLE decisions ADD COLUMN count INTEGER NOT NULL DEFAULT 1").map_err(backend)?;
        }
        Ok(Self { conn: Arc::new(Mutex::new(conn)), max_entries: max_entries.max(1) })
    }

    /// The change-feed position stored by [`DecisionLog::set_feed_seq`].
    pub async fn feed_seq(&self) -> Result<Option<u64>, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock();
            let v: Option<i64> = c
                .query_row("SELECT value FROM admission_state WHERE key = 'feed_seq'", [], |r| r.get(0))
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                .map_err(backend)?;
            Ok(v.map(|v| v as u64))
        })
        .await
        .map_err(backend)?
    }

    /// Stores the change-feed position that admission has applied.
    pub async fn set_feed_seq(&self, seq: u64) -> Result<(), StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock();
            c.execute(
                "INSERT INTO admission_state (key, value) VALUES ('feed_seq', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [seq as i64],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
        .map_err(backend)?
    }

    /// Appends a decision and returns its `seq`. Every [`TRIM_EVERY`] appends, the entries beyond
    /// the newest `max_entries` are removed.
    pub async fn append(&self, d: Decision) -> Result<u64, StoreError> {
        let conn = self.conn.clone();
        let max = self.max_entries;
        tokio::task::spawn_blocking(move || {
            let c = conn.lock();
            c.prepare_cached(
                "INSERT INTO decisions (at, ae_id, app_id, profile_version, outcome, rsc, reason, rule, message, mode,
                                        stage, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .and_then(|mut s| {
                s.execute(params![
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
            let seq = c.last_insert_rowid() as u64;
            if seq.is_multiple_of(TRIM_EVERY.min(max)) && seq > max {
                c.prepare_cached("DELETE FROM decisions WHERE seq <= ?1")
                    .and_then(|mut s| s.execute([(seq - max) as i64]))
                    .map_err(backend)?;
            }
            Ok(seq)
        })
        .await
        .map_err(backend)?
    }

    /// The newest decisions that match, newest first.
    pub async fn query(&self, f: DecisionFilter) -> Result<Vec<Decision>, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock();
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, at, ae_id, app_id, profile_version, outcome, rsc, reason, rule, message, mode,
                            stage, count
                     FROM decisions
                     WHERE (?1 IS NULL OR app_id = ?1) AND (?2 IS NULL OR ae_id = ?2)
                       AND (?3 IS NULL OR outcome = ?3) AND (?4 IS NULL OR seq < ?4)
                     ORDER BY seq DESC LIMIT ?5",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![f.app_id, f.ae_id, f.outcome, f.before.map(|b| b as i64), f.limit as i64], |r| {
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
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
        .map_err(backend)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(app: &str, outcome: &str) -> Decision {
        Decision {
            seq: 0,
            at: "20260101T000000,000000".into(),
            ae_id: "Cx".into(),
            app_id: app.into(),
            profile_version: Some(1),
            outcome: outcome.into(),
            rsc: 4126,
            reason: "revoked".into(),
            rule: None,
            message: "m".into(),
            mode: "enforce".into(),
            stage: "registration".into(),
            count: 1,
        }
    }

    #[tokio::test]
    async fn append_query_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path()).unwrap();
        assert_eq!(log.append(d("Ra.b.c", "rejected")).await.unwrap(), 1);
        log.append(d("Ra.b.c", "admitted")).await.unwrap();
        log.append(d("Rx.y.z", "rejected")).await.unwrap();
        let all = log.query(DecisionFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![3, 2, 1]);
        let f = DecisionFilter {
            app_id: Some("Ra.b.c".into()),
            outcome: Some("rejected".into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(log.query(f).await.unwrap().len(), 1);
        let page = DecisionFilter { before: Some(3), limit: 1, ..Default::default() };
        assert_eq!(log.query(page).await.unwrap()[0].seq, 2);
        drop(log);
        let log = DecisionLog::open(dir.path()).unwrap();
        assert_eq!(log.query(DecisionFilter { limit: 10, ..Default::default() }).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn the_log_keeps_the_newest_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open_with(dir.path(), 10).unwrap();
        for _ in 0..35 {
            log.append(d("Ra.b.c", "rejected")).await.unwrap();
        }
        let all = log.query(DecisionFilter { limit: 1000, ..Default::default() }).await.unwrap();
        assert!(all.len() <= 19, "{} entries kept", all.len());
        assert_eq!(all[0].seq, 35, "the newest stay");
        assert!(all.iter().all(|d| d.seq > 35 - 19));
    }

    #[tokio::test]
    async fn the_feed_position_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path()).unwrap();
        assert_eq!(log.feed_seq().await.unwrap(), None);
        log.set_feed_seq(7).await.unwrap();
        log.set_feed_seq(42).await.unwrap();
        drop(log);
        let log = DecisionLog::open(dir.path()).unwrap();
        assert_eq!(log.feed_seq().await.unwrap(), Some(42));
    }
}
