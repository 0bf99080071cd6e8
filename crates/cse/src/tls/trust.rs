//! The trust map: for each App-ID, the roots its devices' certificates must chain to, kept in memory
//! so that identifying a client never waits on the network.
//!
//! Readers (one per connection) take a snapshot with a single atomic load (`ArcSwap`); writers build
//! the new verifiers first, then swap in a new map under a mutex, so readers never see a half-built
//! entry and writers never lose each other's updates. Every swap goes through `publish`, which also
//! advances a version counter, so that a connection whose certificate did not verify can tell whether
//! the map changed since it last tried ([`TrustMap::version`]).
//!
//! The chain is checked once per connection, after the handshake, against the map as it is then
//! ([`TrustMap::identify_connection`]): a resumed session is checked like a new one, so a session
//! resumed after its root was withdrawn, or after its certificate expired, gets no identity.
//!
//! A write copies the map's index (two pointers per App-ID; keys and verifiers are shared), which is
//! fine for the thousands of App-IDs a CSE sees. Load many App-IDs with one `set`, not one
//! `update_one` each, and forget many with one `remove_all` (a page of revocations).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use onem2m::AppId;
use parking_lot::Mutex;
use pki::Fingerprint;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, RootCertStore, ServerConnection};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::identity::ChainFailure;
use super::{IdentityError, PeerIdentity, UnverifiedPeer};

/// What a connection's client certificate proved.
#[derive(Debug, Clone)]
pub enum ClientIdentity {
    /// No certificate was presented.
    Anonymous,
    /// It verified.
    Verified(PeerIdentity),
    /// It was presented and did not verify.
    Unverified(UnverifiedPeer),
}

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
    /// Advanced twice by each swap.
    version: AtomicU64,
    writer: Mutex<()>,
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

    /// The root the chain ends in, checked (validity included) at `now`; or why it ends in none.
    fn root_of(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Fingerprint, ChainFailure> {
        let mut first_error = None;
        for (f, v) in &self.each {
            match v.verify_client_cert(end_entity, intermediates, now) {
                Ok(_) => return Ok(*f),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // With several roots, the combined verifier names the most telling failure (an expired
        // certificate that does chain to one of them, rather than "unknown issuer" from the others).
        let error = match (&self.all, self.each.len()) {
            (Some(all), 2..) => all.verify_client_cert(end_entity, intermediates, now).err(),
            _ => first_error,
        };
        Err(match error {
            None => ChainFailure::WrongRoot,
            Some(rustls::Error::InvalidCertificate(e)) => match e {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => ChainFailure::Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    ChainFailure::NotYetValid
                }
                CertificateError::UnknownIssuer | CertificateError::BadSignature => ChainFailure::WrongRoot,
                other => ChainFailure::Other(format!("{other:?}")),
            },
            Some(other) => ChainFailure::Other(other.to_string()),
        })
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
    /// An App-ID with an empty list is known to have no roots: its certificates are refused. Do not
    /// store entries for App-IDs the registry does not know: the claims come from unverified
    /// certificates, and the map would grow at an attacker's will.
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

    /// Forgets an App-ID: its certificates no longer verify. True if it was there.
    pub fn remove(&self, app_id: &AppId) -> bool {
        self.remove_all(std::slice::from_ref(app_id)) > 0
    }

    /// Forgets several App-IDs with one new map (a page of revocations copies the map once, not
    /// once per App-ID). How many were there.
    pub fn remove_all(&self, app_ids: &[AppId]) -> usize {
        let _w = self.inner.writer.lock();
        let current = self.inner.entries.load();
        let present: Vec<&AppId> = app_ids.iter().filter(|a| current.contains_key(*a)).collect();
        if present.is_empty() {
            return 0;
        }
        let mut map = HashMap::clone(&current);
        for app_id in &present {
            map.remove(*app_id);
        }
        self.publish(map);
        present.len()
    }

    /// Swaps in `map`. The caller holds the writer lock.
    fn publish(&self, map: HashMap<Arc<AppId>, Arc<AppRoots>>) {
        self.inner.version.fetch_add(1, Ordering::SeqCst);
        self.inner.entries.store(Arc::new(map));
        self.inner.version.fetch_add(1, Ordering::SeqCst);
    }

    /// The map's version: it changes with every update.
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

    /// Identifies the peer of a finished handshake from its certificate chain (end entity first):
    /// reads the claims and finds the root of the App-ID's current set that the chain ends in,
    /// checking the chain at `now`.
    pub fn identify(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Result<PeerIdentity, IdentityError> {
        let (leaf, intermediates) = chain.split_first().ok_or(IdentityError::NoCertificate)?;
        let claims = pki::san::claims(leaf)?;
        let entries = self.inner.entries.load();
        let entry = entries.get(&claims.app_id).ok_or_else(|| IdentityError::UnknownAppId(claims.app_id.clone()))?;
        let root = entry
            .root_of(leaf, intermediates, now)
            .map_err(|failure| IdentityError::NotTrusted { app_id: claims.app_id.clone(), failure })?;
        Ok(PeerIdentity {
            app_id: claims.app_id,
            ae_id_uri: claims.ae_id_uri,
            ae_id: claims.ae_id,
            cert_sha256: Fingerprint::of(leaf),
            root_sha256: root,
        })
    }

    /// Identifies the client of a finished handshake (full or resumed) against the map as it is now.
    /// A certificate that does not verify still gives a result: the chain, its claims and why.
    pub fn identify_connection(&self, conn: &ServerConnection, now: UnixTime) -> ClientIdentity {
        let Some(chain) = conn.peer_certificates().filter(|c| !c.is_empty()) else {
            return ClientIdentity::Anonymous;
        };
        self.identify_presented(chain, now)
    }

    /// [`TrustMap::identify`] of a presented chain, keeping what it claims when it does not verify.
    pub fn identify_presented(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> ClientIdentity {
        if chain.is_empty() {
            return ClientIdentity::Anonymous;
        }
        match self.identify(chain, now) {
            Ok(id) => ClientIdentity::Verified(id),
            Err(error) => {
                let claims = pki::san::claims(&chain[0]).ok();
                ClientIdentity::Unverified(UnverifiedPeer {
                    chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
                    app_id: claims.as_ref().map(|c| c.app_id.clone()),
                    ae_id_uri: claims.and_then(|c| c.ae_id_uri),
                    cert_sha256: Fingerprint::of(&chain[0]),
                    error,
                })
            }
        }
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
