//! The admission decision log: every decision, stored durably (SQLite, `decisions.db` beside the
//! resource tree) and readable with filters.

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

/// The log. Appends are rare (one per AE registration) and short; they run on the blocking pool.
#[derive(Clone)]
pub struct DecisionLog {
    conn: Arc<Mutex<Connection>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl DecisionLog {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
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
            CREATE INDEX IF NOT EXISTS decisions_app ON decisions(app_id, seq);",
        )
        .map_err(backend)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Appends a decision and returns its `seq`.
    pub async fn append(&self, d: Decision) -> Result<u64, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock();
            c.prepare_cached(
                "INSERT INTO decisions (at, ae_id, app_id, profile_version, outcome, rsc, reason, rule, message, mode)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                    d.mode
                ])
            })
            .map_err(backend)?;
            Ok(c.last_insert_rowid() as u64)
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
                    "SELECT seq, at, ae_id, app_id, profile_version, outcome, rsc, reason, rule, message, mode
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
}
