//! Persistence of the resource tree behind one trait, so that the embedded SQLite backend and a
//! PostgreSQL backend can serve the same CSE and pass the same test suite.
//!
//! # Architecture invariant
//! Only this module knows SQL. The core describes *what* changes ([`Write`]); a backend applies a
//! transaction ([`Tx`]) atomically — all of it or nothing — and keeps the derived data right: a
//! container's `cni`, `cbs` and `st`, the `mni`/`mbs` quotas (oldest instances go first), and the
//! removal of whole subtrees. A write is acknowledged only once it is durable against a crash of the
//! process.

pub mod decisions;
pub mod sqlite;
#[cfg(test)]
mod suite;

use std::future::Future;
use std::pin::Pin;

use onem2m::{ResourceType, Timestamp};

use crate::resource::Resource;
use decisions::{Decision, DecisionFilter};

pub use sqlite::SqliteStore;

/// A boxed future of a store call.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A resource with this resource ID exists already.
    #[error("resource ID {0} exists already")]
    DuplicateRi(String),
    /// A sibling with this resource name exists already.
    #[error("a resource named {0} exists already under this parent")]
    DuplicateName(String),
    /// The resource to change or the parent to add to is gone.
    #[error("resource {0} not found")]
    NotFound(String),
    /// The backend failed; the transaction was not applied.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// One change of a transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Add a resource; its parent must exist.
    Create(Resource),
    /// Add a contentInstance to its parent container: the container's `cni`, `cbs`, `st` and `lt`
    /// follow, and the oldest instances are removed while `mni` or `mbs` is exceeded.
    CreateInstance(Resource),
    /// Replace a resource's attributes; `st` is incremented. The resource ID, type, parent and
    /// name never change.
    Update(Resource),
    /// Remove a resource and everything below it. The parent container's counters follow.
    Delete(String),
    /// Count a notification of subscription `sub` against its expiration counter: the count goes up
    /// by one unless it has reached `limit` (or the subscription is gone). The result is in
    /// [`TxOutcome::counted`]. In the transaction of the event it notifies of, so that the count
    /// survives a restart exactly.
    CountNotification { sub: String, limit: u64 },
    /// Append an entry to the admission decision log; the store numbers it (its `seq`, in
    /// [`TxOutcome::decisions`]) unless it has a number already (an import of an older log).
    Decision(Decision),
    /// Remove the decision-log entries numbered `seq` or less.
    TrimDecisions(u64),
    /// Keep a signed registry answer once, under `key` (a digest of its body): the AEs admitted on
    /// it refer to it by that key. Nothing happens when it is kept already.
    Answer { key: String, body: Vec<u8>, signature: String },
    /// Set one of the CSE's own named values (the change-feed position admission applied).
    SetState { key: String, value: i64 },
}

/// Writes applied together, atomically.
#[derive(Debug, Clone, Default)]
pub struct Tx {
    pub writes: Vec<Write>,
}

impl Tx {
    pub fn one(w: Write) -> Self {
        Self { writes: vec![w] }
    }
}

/// What a transaction removed that the CSE must act on.
#[derive(Debug, Clone, Default)]
pub struct TxOutcome {
    /// Every subscription removed (with its attributes): their subscribers get a deletion notice.
    pub removed_subscriptions: Vec<Resource>,
    /// Resource IDs of removed access control policies, to drop from caches.
    pub removed_acps: Vec<String>,
    /// Resource IDs of removed AEs, to drop their bindings.
    pub removed_aes: Vec<String>,
    /// How many resources were removed in all.
    pub removed: u64,
    /// For each [`Write::CountNotification`]: the subscription and its count after this
    /// notification, or `None` when it had reached its limit or is gone (nothing may be sent).
    pub counted: Vec<(String, Option<u64>)>,
    /// For each [`Write::Decision`]: its `seq`.
    pub decisions: Vec<u64>,
}

/// What discovery looks for below a resource. Conditions on indexed columns are evaluated by the
/// backend; the core applies the others to what comes back.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryQuery {
    /// The structured name of the resource searched below (not itself a result).
    pub root_srn: String,
    /// At most this many levels below the root (1 = children).
    pub max_level: Option<u32>,
    /// Only these types, if not empty.
    pub types: Vec<u16>,
    pub created_before: Option<Timestamp>,
    pub created_after: Option<Timestamp>,
    pub modified_since: Option<Timestamp>,
    pub unmodified_since: Option<Timestamp>,
    pub expire_before: Option<Timestamp>,
    pub expire_after: Option<Timestamp>,
    /// Only candidates after this one: the `next` of the page before.
    pub after: Option<DiscoveryCursor>,
    /// Skip this many of the candidates that meet the conditions above.
    pub offset: usize,
    /// At most this many candidates (in creation order). Bounds memory.
    pub limit: usize,
    /// When set, at most this many resources of the subtree (within `max_level`, after `after`)
    /// are examined, whatever the other conditions: bounds the work of a page when few resources
    /// meet them. A page cut by it says where to continue (`next`).
    pub scan_limit: Option<usize>,
}

/// A position in the creation order of discovery candidates, to continue a scan from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryCursor(pub i64);

/// One page of discovery candidates.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryPage {
    pub resources: Vec<Resource>,
    /// The position of each resource, in the same order: a scan continued from one starts after it.
    pub positions: Vec<DiscoveryCursor>,
    /// Where the next page starts when this one is full or its `scan_limit` was reached (more
    /// candidates may follow); `None` when the scan is complete.
    pub next: Option<DiscoveryCursor>,
    /// How many resources of the subtree the page examined (with `scan_limit`; else how many it
    /// returned).
    pub examined: usize,
    /// How many candidates that meet the conditions `offset` skipped: `offset`, unless the
    /// `scan_limit` came first.
    pub skipped: usize,
}

/// The resource tree's storage.
pub trait Store: Send + Sync + 'static {
    /// A resource by its resource ID.
    fn get<'a>(&'a self, ri: &'a str) -> StoreFuture<'a, Option<Resource>>;

    /// A resource by its structured name (`cse-in/ae/cnt`).
    fn get_by_srn<'a>(&'a self, srn: &'a str) -> StoreFuture<'a, Option<Resource>>;

    /// The resources with these IDs that exist, in any order.
    fn get_many<'a>(&'a self, ris: &'a [String]) -> StoreFuture<'a, Vec<Resource>>;

    /// Direct children, optionally of one type, in creation order, at most `limit`.
    fn children<'a>(&'a self, pi: &'a str, ty: Option<ResourceType>, limit: usize) -> StoreFuture<'a, Vec<Resource>>;

    /// The newest (`latest = true`) or oldest child of a type: the `la` and `ol` virtual resources.
    fn newest_or_oldest<'a>(&'a self, pi: &'a str, ty: ResourceType, latest: bool)
    -> StoreFuture<'a, Option<Resource>>;

    /// Candidates for discovery, in creation order, one page at a time.
    fn discover<'a>(&'a self, q: &'a DiscoveryQuery) -> StoreFuture<'a, DiscoveryPage>;

    /// The direct children of each of these resources, at most `limit_each` of each (the oldest),
    /// in one call: child attribute filters look at them.
    fn children_of<'a>(&'a self, pis: &'a [String], limit_each: usize) -> StoreFuture<'a, Vec<Resource>>;

    /// Resource IDs whose `et` is before `now`, oldest first, at most `limit`.
    fn expired<'a>(&'a self, now: Timestamp, limit: usize) -> StoreFuture<'a, Vec<String>>;

    /// Resource IDs of contentInstances older than their container's `mia`, at most `limit`.
    fn aged_instances<'a>(&'a self, now: Timestamp, limit: usize) -> StoreFuture<'a, Vec<String>>;

    /// Applies a transaction atomically and durably.
    fn apply(&self, tx: Tx) -> StoreFuture<'_, TxOutcome>;

    /// Removes every resource (the Upper Tester's `Reset`). The decision log and the kept answers
    /// stay.
    fn clear(&self) -> StoreFuture<'_, ()>;

    /// The newest decision-log entries that match, newest first.
    fn decisions<'a>(&'a self, f: &'a DecisionFilter) -> StoreFuture<'a, Vec<Decision>>;

    /// A signed answer kept by [`Write::Answer`]: its body and signature.
    fn answer<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<(Vec<u8>, String)>>;

    /// A value set by [`Write::SetState`].
    fn state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<i64>>;
}
