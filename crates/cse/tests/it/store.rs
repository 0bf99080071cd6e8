//! The real SQLite store behind switches, for the tests that need a store to misbehave or to be
//! watched: reads by structured name that fail (`/healthz` answers 503), acknowledgements that come
//! late (the write is committed, only the answer is slow: a disk that takes its time to sync), and
//! a count of the resources reads examined.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cse::resource::Resource;
use cse::store::decisions::{Decision, DecisionFilter};
use cse::store::sqlite::Durability;
use cse::store::{DiscoveryPage, DiscoveryQuery, SqliteStore, Store, StoreError, StoreFuture, Tx, TxOutcome};
use onem2m::{ResourceType, Timestamp};

/// How late a slow acknowledgement is.
pub(crate) const SLOW_ACK: Duration = Duration::from_millis(1500);

pub(crate) struct TestStore {
    inner: SqliteStore,
    /// Reads by structured name fail with a backend error.
    pub(crate) broken_reads: AtomicBool,
    /// Every transaction is answered [`SLOW_ACK`] after it committed.
    pub(crate) slow_acks: AtomicBool,
    /// Resources examined by reads: those returned, and for discovery what the store examined.
    pub(crate) examined: AtomicUsize,
}

impl TestStore {
    pub(crate) fn open(dir: &std::path::Path) -> Self {
        Self {
            inner: SqliteStore::open(dir, Durability::Process).unwrap(),
            broken_reads: false.into(),
            slow_acks: false.into(),
            examined: 0.into(),
        }
    }

    /// The resources examined since the last call.
    pub(crate) fn take_examined(&self) -> usize {
        self.examined.swap(0, Ordering::SeqCst)
    }

    fn count<'a, T: 'a>(&'a self, f: StoreFuture<'a, T>, n: impl Fn(&T) -> usize + Send + 'a) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let out = f.await?;
            self.examined.fetch_add(n(&out), Ordering::SeqCst);
            Ok(out)
        })
    }
}

impl Store for TestStore {
    fn get<'a>(&'a self, ri: &'a str) -> StoreFuture<'a, Option<Resource>> {
        self.inner.get(ri)
    }
    fn get_by_srn<'a>(&'a self, srn: &'a str) -> StoreFuture<'a, Option<Resource>> {
        if self.broken_reads.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Backend("disk I/O error".into())) });
        }
        self.inner.get_by_srn(srn)
    }
    fn get_many<'a>(&'a self, ris: &'a [String]) -> StoreFuture<'a, Vec<Resource>> {
        self.count(self.inner.get_many(ris), Vec::len)
    }
    fn children<'a>(&'a self, pi: &'a str, ty: Option<ResourceType>, limit: usize) -> StoreFuture<'a, Vec<Resource>> {
        self.count(self.inner.children(pi, ty, limit), Vec::len)
    }
    fn newest_or_oldest<'a>(
        &'a self,
        pi: &'a str,
        ty: ResourceType,
        latest: bool,
    ) -> StoreFuture<'a, Option<Resource>> {
        self.inner.newest_or_oldest(pi, ty, latest)
    }
    fn discover<'a>(&'a self, q: &'a DiscoveryQuery) -> StoreFuture<'a, DiscoveryPage> {
        self.count(self.inner.discover(q), |p| p.examined.max(p.resources.len()))
    }
    fn children_of<'a>(&'a self, pis: &'a [String], limit_each: usize) -> StoreFuture<'a, Vec<Resource>> {
        self.count(self.inner.children_of(pis, limit_each), Vec::len)
    }
    fn expired<'a>(&'a self, now: Timestamp, limit: usize) -> StoreFuture<'a, Vec<String>> {
        self.inner.expired(now, limit)
    }
    fn aged_instances<'a>(&'a self, now: Timestamp, limit: usize) -> StoreFuture<'a, Vec<String>> {
        self.inner.aged_instances(now, limit)
    }
    fn apply(&self, tx: Tx) -> StoreFuture<'_, TxOutcome> {
        Box::pin(async move {
            let out = self.inner.apply(tx).await;
            if self.slow_acks.load(Ordering::SeqCst) {
                tokio::time::sleep(SLOW_ACK).await;
            }
            out
        })
    }
    fn clear(&self) -> StoreFuture<'_, ()> {
        self.inner.clear()
    }
    fn decisions<'a>(&'a self, f: &'a DecisionFilter) -> StoreFuture<'a, Vec<Decision>> {
        self.inner.decisions(f)
    }
    fn answer<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<(Vec<u8>, String)>> {
        self.inner.answer(key)
    }
    fn state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<i64>> {
        self.inner.state(key)
    }
}
