//! The CSE's view of the App-ID Registry: signed profiles in a cache with a TTL, one registry query
//! for any number of concurrent misses of one App-ID, every answer's signature checked, and the
//! change feed followed all the time to drop stale entries, block suspended and revoked App-IDs at
//! once, and keep the TLS trust map's roots current. The feed's position is kept in the CSE's store,
//! so that a change made while the CSE was down is applied when it starts again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use appid::profile::AuthMethod;
use appid::{KeySet, LookupResponse, Record, Status};
use bytes::Bytes;
use futures_util::future::{BoxFuture, Shared};
use futures_util::{FutureExt, StreamExt};
use onem2m::AppId;
use parking_lot::{Mutex, RwLock};
use registry::client::{ClientError, RegistryClient};
use rustls_pki_types::CertificateDer;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::decisions::DecisionLog;
use crate::tls::TrustMap;

/// A change-feed page with more changes than this (a bulk import) only invalidates the cache and
/// applies the statuses it carries; the profiles are fetched again when they are next needed.
const MAX_REFRESH_PER_PAGE: usize = 256;
/// Registry queries a change-feed page or a re-check sends at once.
const REFRESH_CONCURRENCY: usize = 8;
/// How long one long-poll of the change feed waits.
const FEED_WAIT: Duration = Duration::from_secs(25);

/// A verified registry answer, kept with the bytes and signature it came in.
#[derive(Debug)]
pub struct Answer {
    pub record: Option<Arc<Record>>,
    pub body: Bytes,
    pub signature: String,
    /// The SHA-256 of the body (hex): the key under which the store keeps it once for all the AEs
    /// admitted on it.
    pub key: String,
    /// Known to be kept in the store already (then AE transactions need not write it again).
    pub kept: AtomicBool,
}

impl Answer {
    pub fn registered(&self) -> bool {
        self.record.is_some()
    }
}

/// Why the registry gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It could not be asked (down, refusing connections, too slow, failing with a 5xx).
    Unreachable(String),
    /// Its answer was forged, truncated or otherwise not trustworthy.
    Untrusted(String),
    /// It refused our token (401, 403): the CSE is misconfigured.
    Auth(String),
    /// It refused the request itself (another 4xx, e.g. a registry URL that points elsewhere).
    Rejected(String),
}

impl Failure {
    /// The decision-log reason of a refusal caused by this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "registry_unreachable",
            Failure::Untrusted(_) => "bad_signature",
            Failure::Auth(_) => "registry_auth",
            Failure::Rejected(_) => "registry_error",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Unreachable(m) | Failure::Untrusted(m) | Failure::Auth(m) | Failure::Rejected(m) => m,
        }
    }
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

/// The most answers the cache keeps unless told otherwise. Every App-ID a registration claims is
/// looked up, and "not registered" is remembered too: without a bound, clients claiming made-up
/// App-IDs would grow the cache for as long as the CSE runs.
pub const MAX_CACHED: usize = 100_000;

/// Settings of the profile source.
#[derive(Debug, Clone)]
pub struct ProfilesConfig {
    pub ttl: Duration,
    /// How long "not registered" is remembered.
    pub negative_ttl: Duration,
    pub max_stale: Duration,
    pub lookup_timeout: Duration,
    /// The most answers cached ([`MAX_CACHED`]); see [`Profiles::remember`].
    pub max_entries: usize,
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
    /// App-IDs the CSE has AEs of: checked again when the feed was reset.
    watched: RwLock<HashSet<AppId>>,
    trust: Option<TrustMap>,
    queries: AtomicU64,
    /// Lookups that found a query for their App-ID in flight and waited for it.
    joined: AtomicU64,
    /// The last change-feed sequence number handled.
    feed_seq: AtomicU64,
    /// Whether the changes made since the stored feed position (or since the restored App-IDs
    /// were last checked) have been applied.
    caught_up: AtomicBool,
    /// A configuration failure was logged (reset by the next good answer).
    warned: AtomicBool,
    /// Where the feed position is kept.
    store: Option<DecisionLog>,
    /// Called with an App-ID that became suspended or revoked.
    on_block: Mutex<Option<BlockHook>>,
}

fn untrusted(e: impl std::fmt::Display) -> Failure {
    Failure::Untrusted(e.to_string())
}

/// The message of a lookup that timed out.
pub(crate) const TIMED_OUT: &str = "the registry did not answer in time";

/// Sorts a registry client error into the failure it means for admission.
fn classify(e: ClientError) -> Failure {
    match e {
        ClientError::Transport(m) => Failure::Unreachable(m),
        ClientError::Api { status, error } if status >= 500 || status == 429 => {
            Failure::Unreachable(format!("the registry answered {status}: {}", error.message))
        }
        ClientError::Api { status: status @ (401 | 403), error } => Failure::Auth(format!(
            "the registry refused the CSE's token ({status}: {}); check admission.token or WARDEN_TOKEN",
            error.message
        )),
        ClientError::Api { status, error } => {
            Failure::Rejected(format!("the registry refused the lookup ({status}: {})", error.message))
        }
        ClientError::Url(u) => Failure::Rejected(format!("the registry URL {u:?} is not usable")),
        e @ ClientError::Protocol(_) => untrusted(e),
    }
}

impl Profiles {
    pub fn new(
        client: RegistryClient,
        keys: KeySet,
        cfg: ProfilesConfig,
        trust: Option<TrustMap>,
        store: Option<DecisionLog>,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            keys: RwLock::new(keys),
            cfg,
            entries: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            blocked: RwLock::new(HashMap::new()),
            watched: RwLock::new(HashSet::new()),
            trust,
            queries: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            feed_seq: AtomicU64::new(0),
            caught_up: AtomicBool::new(false),
            warned: AtomicBool::new(false),
            store,
            on_block: Mutex::new(None),
        })
    }

    /// How many lookups were sent to the registry (misses and refreshes).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// How many lookups waited for a query of another lookup instead of sending their own.
    pub fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    /// The last change-feed position handled.
    pub fn feed_seq(&self) -> u64 {
        self.feed_seq.load(Ordering::Relaxed)
    }

    /// Whether what changed while the CSE was down has been applied (see [`Profiles::catch_up`]).
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// The trust map this source keeps current, if any.
    pub fn trust(&self) -> Option<&TrustMap> {
        self.trust.as_ref()
    }

    /// Registers the action to take when an App-ID becomes suspended or revoked.
    pub fn on_block(&self, f: impl Fn(AppId) + Send + Sync + 'static) {
        *self.on_block.lock() = Some(Box::new(f));
    }

    /// The status the feed or a lookup last reported for a blocked App-ID.
    pub fn blocked(&self, app_id: &AppId) -> Option<Status> {
        self.blocked.read().get(app_id).copied()
    }

    /// Notes that the CSE has AEs of `app_id`.
    pub fn watch(&self, app_id: &AppId) {
        if !self.watched.read().contains(app_id) {
            self.watched.write().insert(app_id.clone());
        }
    }

    /// Verifies a signed answer kept from earlier (e.g. with a registered AE) and adopts it.
    pub fn adopt(&self, body: Bytes, signature: String) -> Result<Arc<Answer>, String> {
        self.verify(body, signature).map_err(|e| e.message().to_owned())
    }

    fn verify(&self, body: Bytes, signature: String) -> Result<Arc<Answer>, Failure> {
        self.keys.read().verify(&body, &signature).map_err(untrusted)?;
        let parsed: LookupResponse = serde_json::from_slice(&body).map_err(untrusted)?;
        if parsed.registered != parsed.record.is_some() {
            return Err(untrusted("an answer that is registered without a record, or the opposite"));
        }
        let key = pki::Fingerprint::of(&body).to_hex();
        Ok(Arc::new(Answer { record: parsed.record.map(Arc::new), body, signature, key, kept: Default::default() }))
    }

    /// The profile of `app_id`: from the cache within its TTL, else from the registry (concurrent
    /// misses share one query), else — when the registry cannot be asked — a stale cached answer.
    pub async fn lookup(self: &Arc<Self>, app_id: &AppId) -> Lookup {
        let cached = self.entries.lock().get(app_id).cloned();
        if let Some(e) = &cached {
            let ttl = if e.answer.registered() { self.cfg.ttl } else { self.cfg.negative_ttl.min(self.cfg.ttl) };
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
                Some(f) => {
                    self.joined.fetch_add(1, Ordering::Relaxed);
                    f.clone()
                }
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
        let result = match tokio::time::timeout(self.cfg.lookup_timeout, self.client.lookup(app_id, None)).await {
            Err(_) => Err(Failure::Unreachable(TIMED_OUT.into())),
            Ok(Err(e)) => Err(classify(e)),
            Ok(Ok(s)) => self.verify(s.body, s.signature).and_then(|a| {
                if a.record.as_ref().is_some_and(|r| r.app_id != *app_id) {
                    Err(untrusted("the registry answered about another App-ID"))
                } else {
                    Ok(a)
                }
            }),
        };
        match &result {
            Ok(answer) => {
                self.warned.store(false, Ordering::Relaxed);
                self.learn(app_id, answer);
                self.remember(app_id, answer);
            }
            Err(f @ (Failure::Auth(_) | Failure::Rejected(_))) => {
                // A configuration error: every lookup fails alike, so say it loudly, once.
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::error!(reason = f.reason(), "{}", f.message());
                }
            }
            Err(_) => {}
        }
        result
    }

    /// Caches `answer`. Past [`ProfilesConfig::max_entries`], the answers no lookup may use any more
    /// go first ("not registered" past its TTL, a profile past both its TTL and `max_stale`), then
    /// the oldest, down to nine tenths of the bound, so that one trim serves many insertions.
    fn remember(&self, app_id: &AppId, answer: &Arc<Answer>) {
        let mut entries = self.entries.lock();
        entries.insert(app_id.clone(), Entry { answer: answer.clone(), fetched: Instant::now() });
        let max = self.cfg.max_entries.max(1);
        if entries.len() <= max {
            return;
        }
        let (ttl, negative, stale) = (self.cfg.ttl, self.cfg.negative_ttl.min(self.cfg.ttl), self.cfg.max_stale);
        entries.retain(|_, e| e.fetched.elapsed() < if e.answer.registered() { ttl.max(stale) } else { negative });
        let keep = max - max / 10;
        if entries.len() > keep {
            let mut times: Vec<Instant> = entries.values().map(|e| e.fetched).collect();
            let newest_dropped = *times.select_nth_unstable(entries.len() - keep - 1).1;
            entries.retain(|k, e| e.fetched > newest_dropped || k == app_id);
        }
    }

    /// How many answers are cached.
    pub fn cached(&self) -> usize {
        self.entries.lock().len()
    }

    /// Updates the blocked set and the trust map from a verified answer.
    pub(crate) fn learn(&self, app_id: &AppId, answer: &Answer) {
        match answer.record.as_ref().map(|r| r.status) {
            Some(s @ (Status::Suspended | Status::Revoked)) => self.block(app_id, s),
            _ => {
                self.blocked.write().remove(app_id);
            }
        }
        self.learn_roots(app_id, answer.record.as_deref());
    }

    /// Puts an active x509 record's roots into the trust map (and takes anything else out).
    pub(crate) fn learn_roots(&self, app_id: &AppId, record: Option<&Record>) {
        let Some(trust) = &self.trust else { return };
        match record {
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

    fn block(&self, app_id: &AppId, status: Status) {
        let newly = self.blocked.write().insert(app_id.clone(), status).is_none();
        if newly && let Some(f) = self.on_block.lock().as_ref() {
            f(app_id.clone());
        }
    }

    /// The feed position kept in the store, if any.
    pub async fn stored_feed_seq(&self) -> Option<u64> {
        let store = self.store.as_ref()?;
        match store.feed_seq().await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the stored change-feed position");
                None
            }
        }
    }

    async fn save_feed_seq(&self, seq: u64) {
        let old = self.feed_seq.swap(seq, Ordering::Relaxed);
        if old != seq
            && let Some(store) = &self.store
            && let Err(e) = store.set_feed_seq(seq).await
        {
            tracing::warn!(error = %e, "cannot store the change-feed position");
        }
    }

    /// Applies what changed while the CSE was not following the feed, before it serves: the
    /// changes after `from` (the stored position), then — and without a position, only — a fresh
    /// lookup of every watched App-ID (a revocation applied before a restart is not in the changes
    /// after the stored position). Gives up after `deadline`; [`Profiles::caught_up`] tells
    /// whether it finished (the follower finishes it later otherwise).
    pub async fn catch_up(self: &Arc<Self>, from: Option<u64>, deadline: Duration) -> bool {
        let work = async {
            // Without a position, the head to store once the watched App-IDs are looked up.
            let head = match from {
                Some(mut after) => loop {
                    let page = self.client.changes(Some(after), Duration::ZERO).await.map_err(classify)?;
                    if page.last < after {
                        self.reset().await;
                        self.save_feed_seq(page.last).await;
                        return Ok::<(), Failure>(());
                    }
                    self.apply_changes(&page.changes).await;
                    self.save_feed_seq(page.last).await;
                    if page.changes.is_empty() {
                        break None;
                    }
                    after = page.last;
                },
                None => Some(self.client.changes(None, Duration::ZERO).await.map_err(classify)?.last),
            };
            // What the feed said before the stored position (a revocation applied before a
            // restart, say) is known only to the registry now: the restored App-IDs are looked up
            // again.
            let ids: Vec<AppId> = self.watched.read().iter().cloned().collect();
            if let Some(f) = self.refresh_all(ids).await.into_iter().next() {
                return Err(f);
            }
            if let Some(head) = head {
                self.save_feed_seq(head).await;
            }
            Ok(())
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(Ok(())) => {
                self.caught_up.store(true, Ordering::Release);
                true
            }
            Ok(Err(f)) => {
                tracing::warn!(
                    reason = f.reason(),
                    error = f.message(),
                    "cannot catch up with the registry's changes yet"
                );
                false
            }
            Err(_) => {
                tracing::warn!("catching up with the registry's changes takes too long; the follower goes on");
                false
            }
        }
    }

    /// Fetches every App-ID given, a few at a time; the failures.
    async fn refresh_all(self: &Arc<Self>, ids: Vec<AppId>) -> Vec<Failure> {
        futures_util::stream::iter(ids)
            .map(|id| {
                let me = self.clone();
                async move { me.fetch(&id).await.err() }
            })
            .buffer_unordered(REFRESH_CONCURRENCY)
            .filter_map(|r| async move { r })
            .collect()
            .await
    }

    /// The feed was reset (the registry's history is new): nothing cached can be trusted to be
    /// current. Every App-ID the CSE knows is fetched again.
    async fn reset(self: &Arc<Self>) {
        tracing::warn!("the registry's change feed was reset; checking every known App-ID again");
        let mut ids: HashSet<AppId> = self.entries.lock().drain().map(|(k, _)| k).collect();
        ids.extend(self.watched.read().iter().cloned());
        ids.extend(self.blocked.read().keys().cloned());
        self.refresh_all(ids.into_iter().collect()).await;
    }

    /// Follows the change feed until cancelled. A catch-up ([`Profiles::catch_up`] from `from`)
    /// that has not finished is finished first, retried with a backoff; then the feed is followed
    /// from the position reached, which is stored after every page.
    pub async fn follow(self: Arc<Self>, from: Option<u64>, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        // A catch-up that did not finish before the CSE served is finished first.
        while !self.caught_up() {
            let done = tokio::select! {
                () = cancel.cancelled() => return,
                done = self.catch_up(from, FEED_WAIT) => done,
            };
            if done {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        backoff = Duration::from_millis(200);
        loop {
            let after = self.feed_seq.load(Ordering::Relaxed);
            let page = tokio::select! {
                () = cancel.cancelled() => return,
                r = self.client.changes(Some(after), FEED_WAIT) => r,
            };
            match page {
                Ok(page) => {
                    backoff = Duration::from_millis(200);
                    if page.last < after {
                        self.reset().await;
                    } else {
                        self.apply_changes(&page.changes).await;
                    }
                    self.save_feed_seq(page.last).await;
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

    /// Applies a page of changes: first every status the page carries (so a revocation anywhere in
    /// the page blocks at once), then the new versions of the App-IDs that are active, fetched a
    /// few at a time.
    async fn apply_changes(self: &Arc<Self>, changes: &[appid::Change]) {
        let mut last: HashMap<&AppId, Status> = HashMap::new();
        for ch in changes {
            last.insert(&ch.app_id, ch.status);
        }
        {
            let mut entries = self.entries.lock();
            for app_id in last.keys() {
                entries.remove(*app_id);
            }
        }
        let mut refresh = Vec::new();
        let mut untrusted = Vec::new();
        for (app_id, status) in &last {
            match status {
                Status::Suspended | Status::Revoked => {
                    self.block(app_id, *status);
                    untrusted.push((*app_id).clone());
                }
                Status::Active => {
                    self.blocked.write().remove(*app_id);
                    refresh.push((*app_id).clone());
                }
            }
        }
        if let Some(t) = &self.trust {
            t.remove_all(&untrusted);
        }
        if changes.len() <= MAX_REFRESH_PER_PAGE {
            // The new versions: the trust map and the cache follow.
            self.refresh_all(refresh).await;
        }
    }

    /// Replaces the registry's keys (after a rotation was announced out of band).
    pub fn set_keys(&self, keys: KeySet) {
        *self.keys.write() = keys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use appid::{Draft, Role};
    use registry::{Registry, RegistryConfig};

    /// The real registry on 127.0.0.1:0, and profiles that ask it.
    struct Fixture {
        registry: Arc<Registry>,
        profiles: Arc<Profiles>,
        stop: CancellationToken,
        _dir: tempfile::TempDir,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    fn draft(app_id: &str, status: &str) -> Draft {
        serde_json::from_value(serde_json::json!({
            "appId": app_id, "status": status,
            "registrant": {"name": "T"},
            "application": {"type": "t", "class": "consumer", "name": "T"},
            "security": {"keyStorage": "software", "tlsVersions": ["1.3"], "firmwareSigned": true},
            "authentication": {"method": "none", "roots": [], "aeIdInCertificate": false},
            "communications": {"class": "periodic", "periodSeconds": 60, "bindings": ["http"]},
            "dataModel": {"containers": []},
            "dataPrivacy": {"category": "personal", "sharing": "none", "allowedRecipients": []},
        }))
        .unwrap()
    }

    async fn fixture(cfg: ProfilesConfig, store: Option<DecisionLog>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(RegistryConfig::new(dir.path())).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let (r, s) = (registry.clone(), stop.clone());
        tokio::spawn(async move { r.serve(listener, async move { s.cancelled().await }).await });
        let token = registry.mint_token(Role::Read).await.unwrap().token;
        let client = RegistryClient::new(&url, Some(token)).unwrap();
        let profiles = Profiles::new(client, registry.key_set(), cfg, None, store);
        Fixture { registry, profiles, stop, _dir: dir }
    }

    fn cfg(ttl: u64, negative: u64) -> ProfilesConfig {
        ProfilesConfig {
            ttl: Duration::from_secs(ttl),
            negative_ttl: Duration::from_secs(negative),
            max_stale: Duration::from_secs(3600),
            lookup_timeout: Duration::from_secs(10),
            max_entries: MAX_CACHED,
        }
    }

    fn id(s: &str) -> AppId {
        AppId::parse(s).unwrap()
    }

    fn fresh(l: Lookup) -> Arc<Answer> {
        match l {
            Lookup::Fresh(a) => a,
            other => panic!("not fresh: {other:?}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn entries_expire_after_the_ttl() {
        let f = fixture(cfg(60, 10), None).await;
        f.registry.create(draft("Racme.com.acme.one", "active")).await.unwrap();
        let app = id("Racme.com.acme.one");
        assert!(fresh(f.profiles.lookup(&app).await).registered());
        assert_eq!(f.profiles.queries(), 1);
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(59)).await;
        fresh(f.profiles.lookup(&app).await);
        assert_eq!(f.profiles.queries(), 1, "within the TTL nobody is asked");
        tokio::time::advance(Duration::from_secs(2)).await;
        tokio::time::resume();
        fresh(f.profiles.lookup(&app).await);
        assert_eq!(f.profiles.queries(), 2, "after the TTL the registry is asked again");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_cache_keeps_at_most_its_bound_and_drops_the_oldest() {
        let f = fixture(ProfilesConfig { max_entries: 10, ..cfg(300, 300) }, None).await;
        let made_up = |i: usize| id(&format!("Rnobody.org.none.app{i}"));
        for i in 0..25 {
            assert!(!fresh(f.profiles.lookup(&made_up(i)).await).registered());
            assert!(f.profiles.cached() <= 10, "{} cached", f.profiles.cached());
        }
        let q = f.profiles.queries();
        fresh(f.profiles.lookup(&made_up(24)).await);
        assert_eq!(f.profiles.queries(), q, "the newest is cached");
        fresh(f.profiles.lookup(&made_up(0)).await);
        assert_eq!(f.profiles.queries(), q + 1, "the oldest was dropped");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_no_lookup_may_use_go_before_older_ones_that_may_be_used() {
        let f = fixture(ProfilesConfig { max_entries: 10, ..cfg(300, 5) }, None).await;
        f.registry.create(draft("Racme.com.acme.one", "active")).await.unwrap();
        let app = id("Racme.com.acme.one");
        assert!(fresh(f.profiles.lookup(&app).await).registered());
        for i in 0..30 {
            // A second apart (the lookups themselves run on the real clock).
            tokio::time::pause();
            tokio::time::advance(Duration::from_secs(1)).await;
            tokio::time::resume();
            fresh(f.profiles.lookup(&id(&format!("Rnobody.org.none.app{i}"))).await);
            assert!(f.profiles.cached() <= 10, "{} cached", f.profiles.cached());
        }
        let q = f.profiles.queries();
        assert!(fresh(f.profiles.lookup(&app).await).registered());
        assert_eq!(f.profiles.queries(), q, "the profile, the oldest entry but within its TTL, was kept");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn negative_answers_have_their_own_ttl() {
        let f = fixture(cfg(300, 5), None).await;
        let app = id("Rnobody.org.none.app");
        assert!(!fresh(f.profiles.lookup(&app).await).registered());
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!fresh(f.profiles.lookup(&app).await).registered());
        assert_eq!(f.profiles.queries(), 1, "remembered for the negative TTL");
        // Registered meanwhile: found once the negative TTL is over.
        tokio::time::resume();
        f.registry.create(draft("Rnobody.org.none.app", "active")).await.unwrap();
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(2)).await;
        tokio::time::resume();
        assert!(fresh(f.profiles.lookup(&app).await).registered());
        assert_eq!(f.profiles.queries(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_misses_share_one_query() {
        let f = fixture(cfg(60, 10), None).await;
        f.registry.create(draft("Racme.com.acme.two", "active")).await.unwrap();
        let app = id("Racme.com.acme.two");
        // join_all polls every lookup once before any can finish: all but the first find the
        // first one's query in flight.
        let all = futures_util::future::join_all((0..16).map(|_| f.profiles.lookup(&app))).await;
        assert!(all.into_iter().all(|l| fresh(l).registered()));
        assert_eq!((f.profiles.queries(), f.profiles.joined()), (1, 15));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_feed_reset_drops_the_cache_and_checks_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(dir.path(), Default::default()).unwrap();
        let log = DecisionLog::new(Arc::new(store));
        let f = fixture(cfg(300, 10), Some(log.clone())).await;
        f.registry.create(draft("Racme.com.acme.three", "active")).await.unwrap();
        let app = id("Racme.com.acme.three");
        fresh(f.profiles.lookup(&app).await);
        f.profiles.watch(&app);
        // A stored position beyond the registry's head: its history was replaced.
        assert!(f.profiles.catch_up(Some(1000), Duration::from_secs(10)).await);
        assert_eq!(f.profiles.queries(), 2, "the known App-ID was fetched again");
        let head = f.registry.changes(None, Duration::ZERO, 1).await.unwrap().last;
        assert_eq!(f.profiles.feed_seq(), head);
        assert_eq!(log.feed_seq().await.unwrap(), Some(head), "the new position is stored");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn catching_up_applies_a_revocation_made_meanwhile() {
        let f = fixture(cfg(300, 10), None).await;
        f.registry.create(draft("Racme.com.acme.four", "active")).await.unwrap();
        let app = id("Racme.com.acme.four");
        let from = f.registry.changes(None, Duration::ZERO, 1).await.unwrap().last;
        f.registry.set_status(&app, Status::Revoked, "gone".into()).await.unwrap();
        assert_eq!(f.profiles.blocked(&app), None);
        assert!(f.profiles.catch_up(Some(from), Duration::from_secs(10)).await);
        assert_eq!(f.profiles.blocked(&app), Some(Status::Revoked));
        assert!(f.profiles.caught_up());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_revocation_in_a_page_blocks_before_any_refresh() {
        // A registry that accepts connections and never answers: every refresh hangs until its
        // timeout. The statuses the page carries are applied first anyway.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = RegistryClient::new(&format!("http://{}", silent.local_addr().unwrap()), None).unwrap();
        let profiles = Profiles::new(client, KeySet::new(), cfg(60, 10), None, None);
        let at = onem2m::Timestamp::from_micros(0);
        let change = |n: u64, app: &str, status: Status| appid::Change {
            seq: n,
            app_id: id(app),
            kind: appid::api::ChangeKind::Status,
            status,
            at,
        };
        let page: Vec<appid::Change> = (0..6)
            .map(|i| change(i, &format!("Racme.com.acme.a{i}"), Status::Active))
            .chain([change(7, "Racme.com.acme.bad", Status::Revoked)])
            .collect();
        let p = profiles.clone();
        let applying = tokio::spawn(async move { p.apply_changes(&page).await });
        let all_asked = async {
            while profiles.queries() < 6 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), all_asked).await.expect("the six refreshes start at once");
        assert_eq!(profiles.blocked(&id("Racme.com.acme.bad")), Some(Status::Revoked));
        assert!(!applying.is_finished(), "the refreshes are still pending, all at once");
        applying.abort();
    }

    #[test]
    fn registry_errors_are_classified() {
        let api = |status| ClientError::Api {
            status,
            error: appid::api::ApiError { error: "x".into(), message: "m".into(), field: None },
        };
        assert_eq!(classify(api(401)).reason(), "registry_auth");
        assert_eq!(classify(api(403)).reason(), "registry_auth");
        assert_eq!(classify(api(404)).reason(), "registry_error");
        assert_eq!(classify(api(400)).reason(), "registry_error");
        assert_eq!(classify(api(500)).reason(), "registry_unreachable");
        assert_eq!(classify(api(503)).reason(), "registry_unreachable");
        assert_eq!(classify(api(429)).reason(), "registry_unreachable");
        assert_eq!(classify(ClientError::Transport("down".into())).reason(), "registry_unreachable");
        assert_eq!(classify(ClientError::Protocol("cut".into())).reason(), "bad_signature");
    }
}
