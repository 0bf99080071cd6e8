//! The CSE's view of the App-ID Registry: signed profiles in a cache with a TTL, one registry query
//! for any number of concurrent misses of one App-ID, every answer's signature checked, and the
//! change feed followed all the time to drop stale entries, block suspended and revoked App-IDs at
//! once, and keep the TLS trust map's roots current.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use appid::api::ChangeKind;
use appid::profile::AuthMethod;
use appid::{KeySet, LookupResponse, Record, Status};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use onem2m::AppId;
use parking_lot::{Mutex, RwLock};
use registry::client::{ClientError, RegistryClient};
use rustls_pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use crate::tls::TrustMap;

/// How long "not registered" is remembered (negative answers are cached only briefly).
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// A change-feed page with more changes than this (a bulk import) only invalidates the cache;
/// the trust map learns about those App-IDs on their first handshake.
const MAX_REFRESH_PER_PAGE: usize = 256;
/// How long one long-poll of the change feed waits.
const FEED_WAIT: Duration = Duration::from_secs(25);

/// A verified registry answer, kept with the bytes and signature it came in.
#[derive(Debug, Clone)]
pub struct Answer {
    pub record: Option<Arc<Record>>,
    pub body: Bytes,
    pub signature: String,
}

impl Answer {
    pub fn registered(&self) -> bool {
        self.record.is_some()
    }
}

/// Why the registry gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It could not be asked (down, refusing, too slow, failing).
    Unreachable(String),
    /// Its answer was forged, truncated or otherwise not trustworthy.
    Untrusted(String),
}

/// The outcome of a lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A verified answer within its TTL (or just fetched).
    Fresh(Arc<Answer>),
    /// The registry gave no usable answer, for the reason given; this verified answer is older
    /// than the TTL but younger than the staleness bound.
    Stale(Arc<Answer>, Failure),
    /// The registry gave no usable answer, and nothing usable is cached.
    Failed(Failure),
}

#[derive(Debug, Clone)]
struct Entry {
    answer: Arc<Answer>,
    fetched: Instant,
}

/// What to do when an App-ID becomes suspended or revoked.
type BlockHook = Box<dyn Fn(AppId) + Send + Sync>;

type Fetch = Shared<BoxFuture<'static, Result<Arc<Answer>, Failure>>>;

/// Settings of the profile source.
#[derive(Debug, Clone)]
pub struct ProfilesConfig {
    pub ttl: Duration,
    pub max_stale: Duration,
    pub lookup_timeout: Duration,
}

/// Cached, verified profiles and the state the change feed keeps.
pub struct Profiles {
    client: RegistryClient,
    keys: RwLock<KeySet>,
    cfg: ProfilesConfig,
    entries: Mutex<HashMap<AppId, Entry>>,
    inflight: Mutex<HashMap<AppId, Fetch>>,
    /// App-IDs the feed or a lookup found suspended or revoked.
    blocked: RwLock<HashMap<AppId, Status>>,
    trust: Option<TrustMap>,
    queries: AtomicU64,
    /// The last change-feed sequence number handled.
    feed_seq: AtomicU64,
    /// Called with an App-ID that became suspended or revoked.
    on_block: Mutex<Option<BlockHook>>,
}

fn untrusted(e: impl std::fmt::Display) -> Failure {
    Failure::Untrusted(e.to_string())
}

impl Profiles {
    pub fn new(client: RegistryClient, keys: KeySet, cfg: ProfilesConfig, trust: Option<TrustMap>) -> Arc<Self> {
        Arc::new(Self {
            client,
            keys: RwLock::new(keys),
            cfg,
            entries: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            blocked: RwLock::new(HashMap::new()),
            trust,
            queries: AtomicU64::new(0),
            feed_seq: AtomicU64::new(0),
            on_block: Mutex::new(None),
        })
    }

    /// How many lookups were sent to the registry (misses and refreshes).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Registers the action to take when an App-ID becomes suspended or revoked.
    pub fn on_block(&self, f: impl Fn(AppId) + Send + Sync + 'static) {
        *self.on_block.lock() = Some(Box::new(f));
    }

    /// The status the feed or a lookup last reported for a blocked App-ID.
    pub fn blocked(&self, app_id: &AppId) -> Option<Status> {
        self.blocked.read().get(app_id).copied()
    }

    /// Verifies a signed answer kept from earlier (e.g. with a registered AE) and adopts it.
    pub fn adopt(&self, body: Bytes, signature: String) -> Result<Arc<Answer>, String> {
        let answer = self.verify(body, signature).map_err(|e| match e {
            Failure::Unreachable(m) | Failure::Untrusted(m) => m,
        })?;
        Ok(answer)
    }

    fn verify(&self, body: Bytes, signature: String) -> Result<Arc<Answer>, Failure> {
        self.keys.read().verify(&body, &signature).map_err(untrusted)?;
        let parsed: LookupResponse = serde_json::from_slice(&body).map_err(untrusted)?;
        if parsed.registered != parsed.record.is_some() {
            return Err(untrusted("an answer that is registered without a record, or the opposite"));
        }
        Ok(Arc::new(Answer { record: parsed.record.map(Arc::new), body, signature }))
    }

    /// The profile of `app_id`: from the cache within its TTL, else from the registry (concurrent
    /// misses share one query), else — when the registry cannot be asked — a stale cached answer.
    pub async fn lookup(self: &Arc<Self>, app_id: &AppId) -> Lookup {
        let cached = self.entries.lock().get(app_id).cloned();
        if let Some(e) = &cached {
            let ttl = if e.answer.registered() { self.cfg.ttl } else { NEGATIVE_TTL.min(self.cfg.ttl) };
            if e.fetched.elapsed() < ttl {
                return Lookup::Fresh(e.answer.clone());
            }
        }
        match self.fetch(app_id).await {
            Ok(a) => Lookup::Fresh(a),
            Err(e) => match cached.filter(|e| e.answer.registered() && e.fetched.elapsed() < self.cfg.max_stale) {
                Some(s) => Lookup::Stale(s.answer, e),
                None => Lookup::Failed(e),
            },
        }
    }

    /// One registry query per App-ID at a time.
    async fn fetch(self: &Arc<Self>, app_id: &AppId) -> Result<Arc<Answer>, Failure> {
        let fut = {
            let mut inflight = self.inflight.lock();
            match inflight.get(app_id) {
                Some(f) => f.clone(),
                None => {
                    let me = self.clone();
                    let id = app_id.clone();
                    let f: Fetch = async move {
                        let r = me.query(&id).await;
                        me.inflight.lock().remove(&id);
                        r
                    }
                    .boxed()
                    .shared();
                    inflight.insert(app_id.clone(), f.clone());
                    f
                }
            }
        };
        fut.await
    }

    async fn query(&self, app_id: &AppId) -> Result<Arc<Answer>, Failure> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let signed = match tokio::time::timeout(self.cfg.lookup_timeout, self.client.lookup(app_id, None)).await {
            Err(_) => return Err(Failure::Unreachable("the registry did not answer in time".into())),
            Ok(Err(ClientError::Transport(m))) => return Err(Failure::Unreachable(m)),
            Ok(Err(ClientError::Api { status, error })) if status >= 500 => {
                return Err(Failure::Unreachable(format!("the registry failed: {}", error.message)));
            }
            Ok(Err(e)) => return Err(untrusted(e)),
            Ok(Ok(s)) => s,
        };
        let answer = self.verify(signed.body, signed.signature)?;
        if answer.record.as_ref().is_some_and(|r| r.app_id != *app_id) {
            return Err(untrusted("the registry answered about another App-ID"));
        }
        self.learn(app_id, &answer);
        self.entries.lock().insert(app_id.clone(), Entry { answer: answer.clone(), fetched: Instant::now() });
        Ok(answer)
    }

    /// Updates the blocked set and the trust map from a verified answer.
    pub(crate) fn learn(&self, app_id: &AppId, answer: &Answer) {
        let status = answer.record.as_ref().map(|r| r.status);
        match status {
            Some(s @ (Status::Suspended | Status::Revoked)) => self.block(app_id, s),
            _ => {
                self.blocked.write().remove(app_id);
            }
        }
        if let Some(trust) = &self.trust {
            match answer.record.as_deref() {
                Some(r) if r.authentication.method == AuthMethod::X509 && r.status == Status::Active => {
                    let roots: Vec<CertificateDer<'static>> = r
                        .authentication
                        .roots
                        .iter()
                        .filter_map(|root| root.der().ok())
                        .map(CertificateDer::from)
                        .collect();
                    if let Err(e) = trust.update_one(app_id.clone(), roots) {
                        tracing::warn!(app_id = %app_id, error = %e, "cannot trust the App-ID's roots");
                    }
                }
                _ => {
                    trust.remove(app_id);
                }
            }
        }
    }

    fn block(&self, app_id: &AppId, status: Status) {
        let newly = self.blocked.write().insert(app_id.clone(), status).is_none();
        if newly && let Some(f) = self.on_block.lock().as_ref() {
            f(app_id.clone());
        }
    }

    /// Follows the change feed until cancelled, from `from` (a sequence number already seen) or,
    /// without it, from the registry's head when the feed is first reached.
    pub async fn follow(self: Arc<Self>, from: Option<u64>, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        let mut started = from.is_some();
        if let Some(seq) = from {
            self.feed_seq.store(seq, Ordering::Relaxed);
        }
        loop {
            let after = if started { Some(self.feed_seq.load(Ordering::Relaxed)) } else { None };
            let wait = if started { FEED_WAIT } else { Duration::ZERO };
            let page = tokio::select! {
                () = cancel.cancelled() => return,
                r = self.client.changes(after, wait) => r,
            };
            match page {
                Ok(page) => {
                    backoff = Duration::from_millis(200);
                    if after.is_some_and(|a| page.last < a) {
                        // The feed was reset: nothing cached can be trusted to be current.
                        self.entries.lock().clear();
                    }
                    if started {
                        self.apply_changes(&page.changes).await;
                    }
                    started = true;
                    self.feed_seq.store(page.last, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "change feed unavailable; retrying");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn apply_changes(self: &Arc<Self>, changes: &[appid::Change]) {
        let refresh = changes.len() <= MAX_REFRESH_PER_PAGE;
        let mut seen = HashSet::new();
        for ch in changes {
            let app_id = &ch.app_id;
            self.entries.lock().remove(app_id);
            match ch.status {
                Status::Suspended | Status::Revoked => self.block(app_id, ch.status),
                Status::Active => {
                    self.blocked.write().remove(app_id);
                }
            }
            let relevant = matches!(ch.kind, ChangeKind::Created | ChangeKind::Updated | ChangeKind::Status);
            if refresh && relevant && seen.insert(app_id.clone()) {
                // Fetch the new version: the trust map and the cache follow.
                let _ = self.fetch(app_id).await;
            }
        }
    }

    /// Fetches the App-IDs whose certificates a handshake could not check, until cancelled.
    pub async fn serve_trust_misses(self: Arc<Self>, cancel: CancellationToken) {
        let Some(trust) = self.trust.clone() else { return };
        loop {
            let missed = tokio::select! {
                () = cancel.cancelled() => return,
                m = trust.missed() => m,
            };
            for app_id in missed {
                let _ = self.fetch(&app_id).await;
            }
        }
    }

    /// Replaces the registry's keys (after a rotation was announced out of band).
    pub fn set_keys(&self, keys: KeySet) {
        *self.keys.write() = keys;
    }
}
