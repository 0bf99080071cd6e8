//! The trust map: for each App-ID, the roots its devices' certificates must chain to, kept in memory
//! so that a handshake never waits on the network.
//!
//! Readers (one per handshake) take a snapshot with a single atomic load (`ArcSwap`); writers build
//! the new verifiers first, then swap in a new map under a mutex, so readers never see a half-built
//! entry and writers never lose each other's updates. Every swap goes through `publish`, which also
//! advances a version counter (odd while a swap is under way), so that a connection can tell whether
//! the map changed since its handshake began ([`TrustMap::identify_connection`]).
//!
//! A write copies the map's index (two pointers per App-ID; keys and verifiers are shared), which is
//! fine for the thousands of App-IDs a CSE sees. Load many App-IDs with one `set`, not one
//! `update_one` each.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use arc_swap::ArcSwap;
use onem2m::AppId;
use parking_lot::Mutex;
use pki::Fingerprint;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{HandshakeKind, RootCertStore, ServerConnection};
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::sync::Notify;

use super::{IdentityError, PeerIdentity};

/// At most this many distinct missing App-IDs wait for the refresher; more are dropped (the claims
/// come from unverified certificates, so their number is the attacker's choice).
pub const MAX_PENDING_MISSES: usize = 1024;

/// Why roots could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("root {index} of App-ID {app_id} is not a usable trust anchor: {reason}")]
pub struct TrustError {
    pub app_id: AppId,
    /// The position of the bad certificate in the list given.
    pub index: usize,
    pub reason: String,
}

/// App-ID → roots, shared by the TLS verifier, the post-handshake identification and the refresher
/// that keeps it up to date. Cheap to clone (all clones are the same map).
#[derive(Clone)]
pub struct TrustMap {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<CryptoProvider>,
    /// Keys are shared so that copying the index for a write does not copy the App-IDs.
    entries: ArcSwap<HashMap<Arc<AppId>, Arc<AppRoots>>>,
    /// Even when no swap is under way; advanced twice by each one.
    version: AtomicU64,
    writer: Mutex<()>,
    misses: Mutex<HashSet<AppId>>,
    miss_signal: Notify,
}

/// The roots of one App-ID, with their verifiers built once.
pub(crate) struct AppRoots {
    /// Verifies against all the roots at once; `None` when the App-ID has no roots.
    all: Option<Arc<dyn ClientCertVerifier>>,
    /// One verifier per root, to learn which root a chain ends in.
    each: Vec<(Fingerprint, Arc<dyn ClientCertVerifier>)>,
}

impl AppRoots {
    fn build(
        app_id: &AppId,
        certs: Vec<CertificateDer<'static>>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TrustError> {
        let mut each: Vec<(Fingerprint, Arc<dyn ClientCertVerifier>)> = Vec::with_capacity(certs.len());
        let mut all_roots = RootCertStore::empty();
        for (index, cert) in certs.into_iter().enumerate() {
            let bad = |reason: String| TrustError { app_id: app_id.clone(), index, reason };
            let fingerprint = Fingerprint::of(&cert);
            if each.iter().any(|(f, _)| *f == fingerprint) {
                continue;
            }
            let mut one = RootCertStore::empty();
            one.add(cert).map_err(|e| bad(e.to_string()))?;
            all_roots.roots.extend(one.roots.iter().cloned());
            each.push((fingerprint, verifier(one, provider).map_err(bad)?));
        }
        let all = match each.len() {
            0 => None,
            1 => Some(each[0].1.clone()),
            _ => Some(verifier(all_roots, provider).map_err(|reason| TrustError {
                app_id: app_id.clone(),
                index: 0,
                reason,
            })?),
        };
        Ok(Self { all, each })
    }

    /// Checks the chain against all of the App-ID's roots (the handshake's check).
    pub(crate) fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        match &self.all {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now).map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
        }
    }

    /// The root the chain ends in, checking it again (validity included) at `now`.
    fn root_of(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Option<Fingerprint> {
        self.each.iter().find(|(_, v)| v.verify_client_cert(end_entity, intermediates, now).is_ok()).map(|(f, _)| *f)
    }
}

/// A chain verifier for one set of roots. It never advertises their names (the wrapping verifier
/// answers `root_hint_subjects` anyway; clearing them here also saves the copies).
fn verifier(store: RootCertStore, provider: &Arc<CryptoProvider>) -> Result<Arc<dyn ClientCertVerifier>, String> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .clear_root_hint_subjects()
        .build()
        .map_err(|e| e.to_string())
}

impl TrustMap {
    /// An empty map using the process's default rustls crypto provider, or aws-lc-rs when none is
    /// installed.
    pub fn new() -> Self {
        let provider = CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        Self::with_provider(provider)
    }

    /// An empty map that verifies with `provider`.
    pub fn with_provider(provider: Arc<CryptoProvider>) -> Self {
        Self {
            inner: Arc::new(Inner {
                provider,
                entries: ArcSwap::from_pointee(HashMap::new()),
                version: AtomicU64::new(0),
                writer: Mutex::new(()),
                misses: Mutex::new(HashSet::new()),
                miss_signal: Notify::new(),
            }),
        }
    }

    /// The crypto provider of the verifiers (the TLS server configuration uses it too).
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.inner.provider
    }

    /// Replaces the whole map. All or nothing: if any root is unusable, the map is left as it was and
    /// the error names the App-ID and the root.
    ///
    /// An App-ID with an empty list is known to have no roots: its certificates are refused without
    /// asking the refresher for it. Do not store such entries for App-IDs the registry does not know:
    /// the claims come from unverified certificates, and the map would grow at an attacker's will.
    pub fn set(&self, roots: HashMap<AppId, Vec<CertificateDer<'static>>>) -> Result<(), TrustError> {
        let mut built = HashMap::with_capacity(roots.len());
        for (app_id, certs) in roots {
            let entry = AppRoots::build(&app_id, certs, &self.inner.provider)?;
            built.insert(Arc::new(app_id), Arc::new(entry));
        }
        let _w = self.inner.writer.lock();
        self.publish(built);
        Ok(())
    }

    /// Sets one App-ID's roots (see [`TrustMap::set`] about empty lists). On error the map is unchanged.
    pub fn update_one(&self, app_id: AppId, roots: Vec<CertificateDer<'static>>) -> Result<(), TrustError> {
        let entry = Arc::new(AppRoots::build(&app_id, roots, &self.inner.provider)?);
        let _w = self.inner.writer.lock();
        let mut map = HashMap::clone(&self.inner.entries.load());
        map.insert(Arc::new(app_id), entry);
        self.publish(map);
        Ok(())
    }

    /// Forgets an App-ID: its certificates are refused, and asked for again. True if it was there.
    pub fn remove(&self, app_id: &AppId) -> bool {
        let _w = self.inner.writer.lock();
        let current = self.inner.entries.load();
        if !current.contains_key(app_id) {
            return false;
        }
        let mut map = HashMap::clone(&current);
        map.remove(app_id);
        self.publish(map);
        true
    }

    /// Swaps in `map`. The caller holds the writer lock. The version is odd while the swap is under
    /// way, so a reader that sees the same even version before and after its reads knows that no
    /// swap happened in between.
    fn publish(&self, map: HashMap<Arc<AppId>, Arc<AppRoots>>) {
        self.inner.version.fetch_add(1, Ordering::SeqCst);
        self.inner.entries.store(Arc::new(map));
        self.inner.version.fetch_add(1, Ordering::SeqCst);
    }

    /// The map's version, to pass to [`TrustMap::identify_connection`]: read it before the handshake.
    pub fn version(&self) -> TrustVersion {
        TrustVersion(self.inner.version.load(Ordering::SeqCst))
    }

    pub fn contains(&self, app_id: &AppId) -> bool {
        self.inner.entries.load().contains_key(app_id)
    }

    pub fn len(&self) -> usize {
        self.inner.entries.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fingerprints of an App-ID's roots, in the order given; `None` if the App-ID is not in the map.
    pub fn root_fingerprints(&self, app_id: &AppId) -> Option<Vec<Fingerprint>> {
        self.inner.entries.load().get(app_id).map(|e| e.each.iter().map(|(f, _)| *f).collect())
    }

    /// Waits until a handshake claimed an App-ID that is not in the map, then returns every such
    /// App-ID seen since the last call (deduplicated, at most [`MAX_PENDING_MISSES`], without those
    /// added meanwhile). Meant for one refresher task, which fetches their roots and calls
    /// [`TrustMap::update_one`]; the refused clients retry. Cancel-safe.
    pub async fn missed(&self) -> Vec<AppId> {
        loop {
            self.inner.miss_signal.notified().await;
            let pending = std::mem::take(&mut *self.inner.misses.lock());
            let entries = self.inner.entries.load();
            let missing: Vec<AppId> = pending.into_iter().filter(|a| !entries.contains_key(a)).collect();
            if !missing.is_empty() {
                return missing;
            }
        }
    }

    /// The entry for a handshake; a miss is recorded for the refresher.
    pub(crate) fn lookup(&self, app_id: &AppId) -> Option<Arc<AppRoots>> {
        let found = self.inner.entries.load().get(app_id).cloned();
        if found.is_none() {
            self.record_miss(app_id);
        }
        found
    }

    fn record_miss(&self, app_id: &AppId) {
        let mut misses = self.inner.misses.lock();
        if misses.contains(app_id) {
            return;
        }
        if misses.len() >= MAX_PENDING_MISSES {
            tracing::debug!(%app_id, "too many missing App-IDs pending; not queued for a refresh");
            return;
        }
        misses.insert(app_id.clone());
        drop(misses);
        self.inner.miss_signal.notify_one();
    }

    /// Identifies the peer of a finished handshake from its certificate chain (end entity first):
    /// reads the claims and finds the root of the App-ID's current set that the chain ends in,
    /// checking the chain again at `now`. The second check is what makes resumed sessions safe: a
    /// session resumed after its root was removed, or after its certificate expired, gets no identity.
    pub fn identify(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Result<PeerIdentity, IdentityError> {
        self.identify_chain(chain, now, None)
    }

    /// Identifies the client of a finished handshake, as [`TrustMap::identify`] does, but without
    /// checking the chain a second time when that check would only repeat the handshake's: the
    /// handshake was a full one (not resumed), the App-ID has a single root, and the map has not
    /// changed since `before` (read before the handshake began), so the verifier checked this chain
    /// against exactly these roots moments ago. `Ok(None)`: the client sent no certificate.
    pub fn identify_connection(
        &self,
        conn: &ServerConnection,
        before: TrustVersion,
        now: UnixTime,
    ) -> Result<Option<PeerIdentity>, IdentityError> {
        let Some(chain) = conn.peer_certificates().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let full =
            matches!(conn.handshake_kind(), Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest));
        self.identify_chain(chain, now, full.then_some(before)).map(Some)
    }

    /// `verified_since`: the chain passed the verifier after the map had this version.
    fn identify_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
        verified_since: Option<TrustVersion>,
    ) -> Result<PeerIdentity, IdentityError> {
        let (leaf, intermediates) = chain.split_first().ok_or(IdentityError::NoCertificate)?;
        let claims = pki::san::claims(leaf)?;
        let entries = self.inner.entries.load();
        let entry = entries.get(&claims.app_id).ok_or_else(|| IdentityError::UnknownAppId(claims.app_id.clone()))?;
        // Orders the map read above before the version read below: an unchanged, even version means
        // no swap happened between the handshake's verification and this read.
        fence(Ordering::SeqCst);
        let unchanged =
            verified_since.is_some_and(|v| v.0 % 2 == 0 && self.inner.version.load(Ordering::SeqCst) == v.0);
        let root = match entry.each.as_slice() {
            [(only, _)] if unchanged => *only,
            _ => entry
                .root_of(leaf, intermediates, now)
                .ok_or_else(|| IdentityError::NotTrusted(claims.app_id.clone()))?,
        };
        Ok(PeerIdentity {
            app_id: claims.app_id,
            ae_id_uri: claims.ae_id_uri,
            ae_id: claims.ae_id,
            cert_sha256: Fingerprint::of(leaf),
            root_sha256: root,
        })
    }
}

/// A point in the trust map's history ([`TrustMap::version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustVersion(u64);

impl Default for TrustMap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TrustMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustMap").field("app_ids", &self.len()).finish()
    }
}
