//! Storage behind the registry: the [`Store`] trait and its backends.
//!
//! A store keeps the records, the change feed, the token hashes and the signing keys. Every change
//! is one transaction that also appends its entry to the change feed, so a reader never sees a
//! record without its change or the other way round. The rules of each change ([`Mutation::apply`])
//! are shared by all backends; a backend only provides the transaction around them.
//!
//! # Architecture invariant
//! Only the modules under `store` know SQL.

pub mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

use std::future::Future;
use std::pin::Pin;

use appid::{AppClass, Change, ChangeKind, Draft, FieldError, Record, Role, Status};
use bytes::Bytes;
use onem2m::{AppId, Timestamp};

pub use sqlite::SqliteStore;

/// What store calls return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such App-ID")]
    NotFound,
    #[error("{0} is already registered")]
    Conflict(AppId),
    #[error("the record is at version {current}")]
    VersionMismatch { current: u64 },
    #[error("{0}")]
    Invalid(FieldError),
    /// Something other than a record is not there: a deny entry (`field` `aeId`), a key (`kid`).
    #[error("{message}")]
    NoSuchEntry { field: &'static str, message: String },
    #[error("storage failure: {0}")]
    Backend(String),
}

/// A record as stored: its canonical JSON and copies of the fields that lookups and filters need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub app_id: AppId,
    pub version: u64,
    pub status: Status,
    pub class: AppClass,
    pub app_type: String,
    pub name: String,
    /// The record's canonical JSON ([`Record::to_json`]).
    pub json: Bytes,
    /// `devices.denied`.
    pub denied: Vec<String>,
}

impl StoredRecord {
    pub fn from_record(r: &Record) -> Self {
        Self {
            app_id: r.app_id.clone(),
            version: r.version,
            status: r.status,
            class: r.application.class,
            app_type: r.application.app_type.clone(),
            name: r.application.name.clone(),
            json: Bytes::from(r.to_json()),
            denied: r.devices.denied.clone(),
        }
    }

    /// The record, parsed from its JSON.
    pub fn record(&self) -> Result<Record, StoreError> {
        serde_json::from_slice(&self.json).map_err(|e| StoreError::Backend(format!("stored record is corrupt: {e}")))
    }
}

/// A filter over the records, ordered by App-ID, starting after `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub class: Option<AppClass>,
    pub app_type: Option<String>,
    pub status: Option<Status>,
    /// A case-insensitive substring of the App-ID, the application's name or its type.
    pub q: Option<String>,
    /// Only App-IDs greater than this one.
    pub after: Option<String>,
    pub limit: u32,
}

/// A change to one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// A new version of the profile. `if_version: None` replaces whatever version is current
    /// (`If-Match: *`).
    Replace { draft: Box<Draft>, if_version: Option<u64> },
    /// Suspend, revoke or reactivate.
    Status { status: Status, reason: String },
    /// Add a device deny entry.
    Deny { pattern: String, reason: String },
    /// Remove a device deny entry.
    Allow { pattern: String, reason: Option<String> },
}

impl Mutation {
    /// The record after this change, and what kind of change it was; `None` when it changes
    /// nothing (the status is already that, the entry is already there).
    pub fn apply(self, current: &Record) -> Result<Option<(Record, ChangeKind)>, StoreError> {
        match self {
            Mutation::Replace { draft, if_version } => {
                if let Some(v) = if_version
                    && v != current.version
                {
                    return Err(StoreError::VersionMismatch { current: current.version });
                }
                if let Some(v) = draft.version
                    && v != current.version
                {
                    return Err(StoreError::VersionMismatch { current: current.version });
                }
                let next = draft.into_replacement(current).map_err(StoreError::Invalid)?;
                Ok(Some((next, ChangeKind::Updated)))
            }
            Mutation::Status { status, .. } => {
                if status == current.status {
                    return Ok(None);
                }
                let mut next = current.clone();
                next.status = status;
                next.version += 1;
                Ok(Some((next, ChangeKind::Status)))
            }
            Mutation::Deny { pattern, .. } => {
                if current.devices.denied.contains(&pattern) {
                    return Ok(None);
                }
                if current.devices.denied.len() >= appid::profile::limits::PATTERNS {
                    return Err(StoreError::Invalid(FieldError::invalid("aeId", "the deny list is full")));
                }
                let mut next = current.clone();
                next.devices.denied.push(pattern);
                next.version += 1;
                Ok(Some((next, ChangeKind::DeviceDenied)))
            }
            Mutation::Allow { pattern, .. } => {
                let Some(i) = current.devices.denied.iter().position(|p| p == &pattern) else {
                    return Err(StoreError::NoSuchEntry {
                        field: "aeId",
                        message: format!("{pattern:?} is not on the deny list"),
                    });
                };
                let mut next = current.clone();
                next.devices.denied.remove(i);
                next.version += 1;
                Ok(Some((next, ChangeKind::DeviceAllowed)))
            }
        }
    }

    /// The audit reason, if the change has one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Mutation::Replace { .. } => None,
            Mutation::Status { reason, .. } | Mutation::Deny { reason, .. } => Some(reason),
            Mutation::Allow { reason, .. } => reason.as_deref(),
        }
    }
}

/// What [`Store::modify`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modified {
    /// The record after the call.
    pub record: StoredRecord,
    /// The change, or `None` if the call changed nothing.
    pub change: Option<Change>,
}

/// What [`Store::import`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Imported {
    /// One `created` change per record registered.
    pub changes: Vec<Change>,
    /// Records that were registered already, identical.
    pub unchanged: u64,
}

/// The state of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new answers.
    Active,
    /// No longer signs, still published so that cached answers verify.
    Published,
    /// Withdrawn; its secret is erased.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Published => "published",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [KeyState::Active, KeyState::Published, KeyState::Retired].into_iter().find(|k| k.as_str() == s)
    }
}

/// A signing key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub seed: [u8; 32],
    pub state: KeyState,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey").field("kid", &self.kid).field("state", &self.state).finish_non_exhaustive()
    }
}

/// A token hash and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub hash: [u8; 32],
    pub role: Role,
    pub label: String,
}

/// The registry's storage. Implementations: [`SqliteStore`] (embedded), PostgreSQL to follow; each
/// must pass the store suite (`store::suite`, run from the backend's own tests).
pub trait Store: Send + Sync + 'static {
    /// One record.
    fn get<'a>(&'a self, app_id: &'a AppId) -> StoreFuture<'a, Option<StoredRecord>>;

    /// Records matching `query`, in App-ID order, at most `query.limit`.
    fn list(&self, query: ListQuery) -> StoreFuture<'_, Vec<StoredRecord>>;

    /// Registers new records in one transaction, each with a `created` change: all or nothing.
    /// [`StoreError::Conflict`] names an App-ID that exists already. Returns the changes.
    fn insert(&self, records: Vec<StoredRecord>, at: Timestamp) -> StoreFuture<'_, Vec<Change>>;

    /// Registers the records of a bulk import in one transaction: each new one with a `created`
    /// change, in order; one that is registered already with exactly the same JSON is left as it is
    /// and counted as unchanged (so that importing the same file again converges); one registered
    /// with other content is [`StoreError::Conflict`], and then nothing is stored.
    fn import(&self, records: Vec<StoredRecord>, at: Timestamp) -> StoreFuture<'_, Imported>;

    /// Applies `mutation` to one record in one transaction with its change.
    fn modify<'a>(&'a self, app_id: &'a AppId, mutation: Mutation, at: Timestamp) -> StoreFuture<'a, Modified>;

    /// Up to `limit` changes with `seq > after`, oldest first.
    fn changes(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<Change>>;

    /// The highest sequence number (0 when the feed is empty).
    fn head(&self) -> StoreFuture<'_, u64>;

    /// Adds a token hash.
    fn add_token(&self, token: StoredToken, at: Timestamp) -> StoreFuture<'_, ()>;

    /// Every token hash.
    fn tokens(&self) -> StoreFuture<'_, Vec<StoredToken>>;

    /// Every signing key that is not retired.
    fn keys(&self) -> StoreFuture<'_, Vec<StoredKey>>;

    /// Makes `key` the active signing key, and the previously active one `published`, atomically.
    /// The kid must be new.
    fn rotate_key(&self, key: StoredKey) -> StoreFuture<'_, ()>;

    /// Retires a published key and erases its secret. The active key cannot be retired.
    fn retire_key<'a>(&'a self, kid: &'a str) -> StoreFuture<'a, ()>;

    /// How many signing keys were ever created (for naming the next).
    fn key_count(&self) -> StoreFuture<'_, u64>;
}

/// Parses the deny list column: one pattern per line.
pub(crate) fn split_denied(s: &str) -> Vec<String> {
    if s.is_empty() { Vec::new() } else { s.split('\n').map(str::to_owned).collect() }
}

/// The deny list column: patterns cannot contain a newline.
pub(crate) fn join_denied(d: &[String]) -> String {
    d.join("\n")
}
