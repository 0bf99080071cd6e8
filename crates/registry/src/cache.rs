//! SignedBody answers, cached: a lookup or a GET of an unchanged record is served from memory without
//! reading the database or signing again.
//!
//! Entries are grouped by App-ID so that a change drops every answer about that App-ID at once. The
//! cache is bounded in bytes; when full, arbitrary entries are evicted. Each shard has a generation
//! counter: a reader notes it before reading the database and inserts only if no invalidation ran in
//! between, so a stale answer can never be cached after the change that made it stale.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use bytes::Bytes;
use http::HeaderValue;
use parking_lot::Mutex;

const SHARDS: usize = 16;
/// Most cached lookups (distinct `aeId`s) per App-ID.
const LOOKUPS_PER_APP: usize = 32;

/// A response body and its `Warden-Signature` header.
#[derive(Debug, Clone)]
pub struct SignedBody {
    pub body: Bytes,
    pub signature: HeaderValue,
    /// The record's version, for the `ETag` (0 when there is no record).
    pub version: u64,
    /// What the answer says, for metrics: `registered`, `unregistered`, `denied` or `record`.
    pub label: &'static str,
}

impl SignedBody {
    fn weight(&self) -> usize {
        self.body.len() + self.signature.len() + 64
    }
}

#[derive(Default)]
struct AppEntry {
    get: Option<SignedBody>,
    lookups: Vec<(Option<Box<str>>, SignedBody)>,
    bytes: usize,
    next_slot: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Box<str>, AppEntry>,
    bytes: usize,
    generation: u64,
}

/// A bounded cache of signed answers, keyed by App-ID and what else makes the answer differ.
pub(crate) struct SignedCache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    max_bytes_per_shard: usize,
}

/// Which answer about an App-ID.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind<'a> {
    /// `GET /v1/app-ids/{appId}`.
    Get,
    /// `POST /v1/lookup` with this `aeId`.
    Lookup(Option<&'a str>),
}

/// A shard's generation when a reader started; see the module doc.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl SignedCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            max_bytes_per_shard: max_bytes / SHARDS,
        }
    }

    fn shard(&self, app_id: &str) -> &Mutex<Shard> {
        let i = usize::try_from(self.hasher.hash_one(app_id) % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// The cached answer, or a ticket to insert one after reading the database.
    pub(crate) fn get(&self, app_id: &str, kind: Kind<'_>) -> Result<SignedBody, Ticket> {
        let shard = self.shard(app_id).lock();
        let hit = shard.map.get(app_id).and_then(|e| match kind {
            Kind::Get => e.get.clone(),
            Kind::Lookup(ae) => e.lookups.iter().find(|(k, _)| k.as_deref() == ae).map(|(_, s)| s.clone()),
        });
        hit.ok_or(Ticket(shard.generation))
    }

    /// Caches `signed` unless the App-ID changed since `ticket` was taken.
    pub(crate) fn insert(&self, app_id: &str, kind: Kind<'_>, signed: &SignedBody, ticket: Ticket) {
        if self.max_bytes_per_shard == 0 {
            return;
        }
        let mut guard = self.shard(app_id).lock();
        let shard = &mut *guard;
        if shard.generation != ticket.0 {
            return;
        }
        let weight = signed.weight();
        while shard.bytes + weight > self.max_bytes_per_shard {
            let Some(victim) = shard.map.keys().next().cloned() else { break };
            if let Some(e) = shard.map.remove(&victim) {
                shard.bytes -= e.bytes;
            }
        }
        let entry = shard.map.entry(app_id.into()).or_default();
        let old = match kind {
            Kind::Get => entry.get.replace(signed.clone()).map(|s| s.weight()),
            Kind::Lookup(ae) => {
                if let Some(slot) = entry.lookups.iter_mut().find(|(k, _)| k.as_deref() == ae) {
                    Some(std::mem::replace(&mut slot.1, signed.clone()).weight())
                } else if entry.lookups.len() < LOOKUPS_PER_APP {
                    entry.lookups.push((ae.map(Into::into), signed.clone()));
                    None
                } else {
                    let i = entry.next_slot % LOOKUPS_PER_APP;
                    entry.next_slot = entry.next_slot.wrapping_add(1);
                    let (_, old) = std::mem::replace(&mut entry.lookups[i], (ae.map(Into::into), signed.clone()));
                    Some(old.weight())
                }
            }
        };
        let old = old.unwrap_or(0);
        entry.bytes = (entry.bytes + weight).saturating_sub(old);
        shard.bytes = (shard.bytes + weight).saturating_sub(old);
    }

    /// Drops every answer about `app_id`.
    pub(crate) fn invalidate(&self, app_id: &str) {
        let mut shard = self.shard(app_id).lock();
        shard.generation += 1;
        if let Some(e) = shard.map.remove(app_id) {
            shard.bytes -= e.bytes.min(shard.bytes);
        }
    }

    /// Drops everything (after a key rotation).
    pub(crate) fn clear(&self) {
        for s in &self.shards {
            let mut s = s.lock();
            s.generation += 1;
            s.map.clear();
            s.bytes = 0;
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(n: usize) -> SignedBody {
        SignedBody {
            body: Bytes::from(vec![b'x'; n]),
            signature: HeaderValue::from_static("sig"),
            version: 1,
            label: "record",
        }
    }

    #[test]
    fn hit_miss_and_invalidate() {
        let c = SignedCache::new(1 << 20);
        let t = c.get("Ra.b.c", Kind::Get).unwrap_err();
        c.insert("Ra.b.c", Kind::Get, &signed(10), t);
        assert!(c.get("Ra.b.c", Kind::Get).is_ok());
        assert!(c.get("Ra.b.c", Kind::Lookup(None)).is_err());
        let t = c.get("Ra.b.c", Kind::Lookup(Some("C1"))).unwrap_err();
        c.insert("Ra.b.c", Kind::Lookup(Some("C1")), &signed(10), t);
        assert!(c.get("Ra.b.c", Kind::Lookup(Some("C1"))).is_ok());
        assert!(c.get("Ra.b.c", Kind::Lookup(Some("C2"))).is_err());
        c.invalidate("Ra.b.c");
        assert!(c.get("Ra.b.c", Kind::Get).is_err());
        assert!(c.get("Ra.b.c", Kind::Lookup(Some("C1"))).is_err());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn a_change_during_the_read_is_not_overwritten() {
        let c = SignedCache::new(1 << 20);
        let t = c.get("Ra.b.c", Kind::Get).unwrap_err();
        c.invalidate("Ra.b.c"); // the change commits while the reader reads the old record
        c.insert("Ra.b.c", Kind::Get, &signed(10), t);
        assert!(c.get("Ra.b.c", Kind::Get).is_err(), "the stale answer must not be cached");
        let t = c.get("Ra.b.c", Kind::Get).unwrap_err();
        c.clear();
        c.insert("Ra.b.c", Kind::Get, &signed(10), t);
        assert!(c.get("Ra.b.c", Kind::Get).is_err());
    }

    #[test]
    fn bounded_in_bytes() {
        let c = SignedCache::new(SHARDS * 10_000);
        for i in 0..2_000 {
            let id = format!("Ra.b.c{i}");
            let t = c.get(&id, Kind::Get).unwrap_err();
            c.insert(&id, Kind::Get, &signed(500), t);
        }
        assert!(c.bytes() <= SHARDS * 10_000, "{}", c.bytes());
        // many aeIds for one App-ID are capped too
        for i in 0..100 {
            let ae = format!("C{i}");
            let t = c.get("Rx.y.z", Kind::Lookup(Some(&ae))).unwrap_err();
            c.insert("Rx.y.z", Kind::Lookup(Some(&ae)), &signed(10), t);
        }
        assert!(c.get("Rx.y.z", Kind::Lookup(Some("C99"))).is_ok());
        assert!(c.get("Rx.y.z", Kind::Lookup(Some("C0"))).is_err());
    }
}
