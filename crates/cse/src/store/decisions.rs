//! The admission decision log: every decision, stored durably in the resource store (so that an
//! admission is written with its AE, atomically) and readable with filters. The log keeps at most a
//! configured number of entries (the oldest go first), so that no client can fill the disk with
//! refusals. The store also keeps the position of the registry's change feed that admission has
//! applied.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, Tx, TxOutcome, Write};

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
/// The longest AE-ID and App-ID kept in an entry, in characters (longer ones are cut, marked `…`).
const MAX_ID_CHARS: usize = 256;
/// The longest message kept in an entry, in characters.
const MAX_MESSAGE_CHARS: usize = 1024;

/// Cuts `s` to at most `max` characters, the last of them `…` when something was cut.
pub(crate) fn cut(s: &mut String, max: usize) {
    if let Some((at, _)) = s.char_indices().nth(max) {
        let keep = s[..at].char_indices().nth(max - 1).map_or(at, |(i, _)| i);
        s.truncate(keep);
        s.push('…');
    }
}

/// The key of the change-feed position in the store's named values.
const FEED_SEQ: &str = "feed_seq";

/// The log, kept in the resource store: an admission is appended in the transaction that stores its
/// AE ([`DecisionLog::entry`]), a refusal on its own ([`DecisionLog::append`]). Cheap to clone.
#[derive(Clone)]
pub struct DecisionLog {
    store: Arc<dyn Store>,
    max_entries: u64,
}

impl DecisionLog {
    /// The log of `store`, keeping [`DEFAULT_MAX_ENTRIES`].
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_max(store, DEFAULT_MAX_ENTRIES)
    }

    /// The log of `store`, keeping the newest `max_entries` (at least 1).
    pub fn with_max(store: Arc<dyn Store>, max_entries: u64) -> Self {
        Self { store, max_entries: max_entries.max(1) }
    }

    /// The change-feed position stored by [`DecisionLog::set_feed_seq`].
    pub async fn feed_seq(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.store.state(FEED_SEQ).await?.map(|v| v as u64))
    }

    /// Stores the change-feed position that admission has applied.
    pub async fn set_feed_seq(&self, seq: u64) -> Result<(), StoreError> {
        let value = i64::try_from(seq).unwrap_or(i64::MAX);
        self.store.apply(Tx::one(Write::SetState { key: FEED_SEQ.into(), value })).await.map(drop)
    }

    /// The write that appends `d`, for a transaction of the caller's; give its outcome to
    /// [`DecisionLog::appended`]. What a client chose (its AE-ID, the App-ID it claimed, and the
    /// message that may quote them) is cut to a bounded length.
    pub fn entry(mut d: Decision) -> Write {
        cut(&mut d.ae_id, MAX_ID_CHARS);
        cut(&mut d.app_id, MAX_ID_CHARS);
        cut(&mut d.message, MAX_MESSAGE_CHARS);
        Write::Decision(d)
    }

    /// Appends a decision on its own and returns its `seq`.
    pub async fn append(&self, d: Decision) -> Result<u64, StoreError> {
        let out = self.store.apply(Tx::one(Self::entry(d))).await?;
        let seq = out.decisions.first().copied().unwrap_or_default();
        self.appended(&out).await;
        Ok(seq)
    }

    /// After a transaction that appended decisions: every [`TRIM_EVERY`] appends, the entries
    /// beyond the newest `max_entries` are removed.
    pub async fn appended(&self, out: &TxOutcome) {
        let max = self.max_entries;
        for &seq in &out.decisions {
            if seq.is_multiple_of(TRIM_EVERY.min(max))
                && seq > max
                && let Err(e) = self.store.apply(Tx::one(Write::TrimDecisions(seq - max))).await
            {
                tracing::warn!(error = %e, "cannot trim the decision log");
            }
        }
    }

    /// The newest decisions that match, newest first.
    pub async fn query(&self, f: DecisionFilter) -> Result<Vec<Decision>, StoreError> {
        self.store.decisions(&f).await
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

    fn open(dir: &std::path::Path, max: u64) -> DecisionLog {
        let store = crate::store::SqliteStore::open(dir, Default::default()).unwrap();
        DecisionLog::with_max(Arc::new(store), max)
    }

    #[tokio::test]
    async fn append_query_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), DEFAULT_MAX_ENTRIES);
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
        let log = open(dir.path(), DEFAULT_MAX_ENTRIES);
        assert_eq!(log.query(DecisionFilter { limit: 10, ..Default::default() }).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn the_log_keeps_the_newest_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 10);
        for _ in 0..35 {
            log.append(d("Ra.b.c", "rejected")).await.unwrap();
        }
        let all = log.query(DecisionFilter { limit: 1000, ..Default::default() }).await.unwrap();
        assert!(all.len() <= 19, "{} entries kept", all.len());
        assert_eq!(all[0].seq, 35, "the newest stay");
        assert!(all.iter().all(|d| d.seq > 35 - 19));
    }

    #[tokio::test]
    async fn what_a_client_chose_is_kept_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), DEFAULT_MAX_ENTRIES);
        let mut big = d(&"R".repeat(100_000), "rejected");
        big.ae_id = "C".repeat(10_000);
        big.message = format!("the App-ID {} is not registered", "é".repeat(5000));
        log.append(big).await.unwrap();
        log.append(d("Ra.b.c", "rejected")).await.unwrap();
        let all = log.query(DecisionFilter { limit: 10, ..Default::default() }).await.unwrap();
        let got = &all[1];
        assert_eq!((got.app_id.chars().count(), got.ae_id.chars().count()), (MAX_ID_CHARS, MAX_ID_CHARS));
        assert!(got.app_id.ends_with('…') && got.app_id.starts_with("RRR"));
        assert_eq!(got.message.chars().count(), MAX_MESSAGE_CHARS);
        assert_eq!(all[0].app_id, "Ra.b.c", "short ones are kept whole");
    }

    #[test]
    fn cut_keeps_whole_characters() {
        for (s, max, want) in [("abc", 3, "abc"), ("abcd", 3, "ab…"), ("ééé", 2, "é…"), ("", 1, "")] {
            let mut s = s.to_owned();
            cut(&mut s, max);
            assert_eq!(s, want);
        }
    }

    /// A data directory of an earlier version: the log in `decisions.db` of its own, from before
    /// `stage` and `count`, with a feed position.
    #[tokio::test]
    async fn a_log_of_its_own_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = rusqlite::Connection::open(dir.path().join("decisions.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE decisions (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, ae_id TEXT NOT NULL,
                    app_id TEXT NOT NULL, profile_version INTEGER, outcome TEXT NOT NULL, rsc INTEGER NOT NULL,
                    reason TEXT NOT NULL, rule TEXT, message TEXT NOT NULL, mode TEXT NOT NULL);
                 CREATE TABLE admission_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO decisions VALUES (7, '20260101T000000,000000', 'Cold', 'Ra.b.c', 2, 'rejected', 4126,
                    'revoked', NULL, 'revoked', 'enforce');
                 INSERT INTO admission_state VALUES ('feed_seq', 41);",
            )
            .unwrap();
        }
        let log = open(dir.path(), DEFAULT_MAX_ENTRIES);
        let all = log.query(DecisionFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].seq, all[0].ae_id.as_str(), all[0].stage.as_str(), all[0].count),
            (7, "Cold", "registration", 1)
        );
        assert_eq!(log.feed_seq().await.unwrap(), Some(41));
        assert_eq!(log.append(d("Ra.b.c", "admitted")).await.unwrap(), 8, "numbering goes on");
        assert!(!dir.path().join("decisions.db").exists() && dir.path().join("decisions.db.imported").exists());
        drop(log);
        let log = open(dir.path(), DEFAULT_MAX_ENTRIES);
        assert_eq!(log.query(DecisionFilter { limit: 10, ..Default::default() }).await.unwrap().len(), 2, "once");
    }

    #[tokio::test]
    async fn the_feed_position_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), DEFAULT_MAX_ENTRIES);
        assert_eq!(log.feed_seq().await.unwrap(), None);
        log.set_feed_seq(7).await.unwrap();
        log.set_feed_seq(42).await.unwrap();
        drop(log);
        let log = open(dir.path(), DEFAULT_MAX_ENTRIES);
        assert_eq!(log.feed_seq().await.unwrap(), Some(42));
    }
}
