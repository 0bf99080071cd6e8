//! The CSE's TLS layer: the security association of TS-0003 §8.2 with certificates (DESIGN.md §8).
//!
//! - [`TrustMap`]: App-ID → roots, in memory, swapped atomically when the registry's profiles change.
//! - The client-certificate verifier (private): asks for a certificate, lets rustls check the proof
//!   of possession of its key, and leaves the chain to the identification. It never advertises CA
//!   names and never waits on the network.
//! - [`TrustMap::identify_connection`], once per connection after the handshake (full or resumed):
//!   picks the roots by the App-ID the certificate claims and checks the chain with a
//!   `WebPkiClientVerifier` built for them. The result is a [`PeerIdentity`] (the App-ID, AE-ID,
//!   credential fingerprint and root of a verified client) or an [`UnverifiedPeer`] (the claims and
//!   why they did not verify: another root, expired, an App-ID the map does not know yet, no App-ID).
//!   An unverified peer is still served, so that it gets a oneM2M answer with its reason: every
//!   request over it is refused with 4106, except an AE registration, at which admission may learn
//!   the App-ID's roots from the registry's signed profile and check the chain again.
//! - [`TlsConfig`]: the rustls server configuration (TLS 1.3 and 1.2, ALPN `h2` and `http/1.1`, client
//!   certificates [`ClientAuth::Optional`] or [`ClientAuth::Required`]) together with its trust map.
//!
//! # Architecture invariant
//! No oneM2M logic here: this layer proves who the peer is. Whether that identity may register or
//! act (App-ID = `api`, AE-ID = originator, root among the profile's roots) is the admission code's
//! decision, made per request from [`crate::net::Peer`].
//!
//! # Not yet
//! - Certificate revocation lists (`WebPkiClientVerifier` takes them; they would travel with the
//!   roots in the trust map).
//! - rustls has no CBC suites, so TS-0003's mandatory `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256` is
//!   replaced by the AEAD ECDHE-ECDSA suites (TLS 1.2) and TLS 1.3.
//!
//! Intermediate CAs that a client sends are used by the chain check; the dev PKI does not issue any.

mod identity;
mod trust;
mod verifier;

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use identity::{ChainFailure, IdentityError, PeerIdentity, UnverifiedPeer};
pub use trust::{ClientIdentity, TrustError, TrustMap, TrustVersion};

/// Whether a TLS client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Asked for but not required: a client without one is served with no [`PeerIdentity`] (an AE
    /// whose profile needs no certificate). A certificate that is presented must still verify: one
    /// that does not is answered 4106 at the oneM2M layer.
    Optional,
    /// A handshake without a client certificate fails. One that is presented but does not verify
    /// is treated as with `Optional`: the connection is made and every request is answered 4106
    /// with the reason (so the device and the decision log learn why).
    Required,
}

/// Why a TLS server configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("the server certificate PEM is unusable: {0}")]
    Certificate(String),
    #[error("the server private key PEM is unusable: {0}")]
    Key(String),
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The CSE's TLS server: the rustls configuration and the trust map its verifier reads.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    trust: TrustMap,
}

impl TlsConfig {
    /// Builds the server configuration from the server's certificate chain (PEM, end entity first)
    /// and its private key (PEM), using the trust map's crypto provider.
    pub fn new(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        trust: TrustMap,
        client_auth: ClientAuth,
    ) -> Result<Self, TlsConfigError> {
        let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsConfigError::Certificate(e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsConfigError::Certificate("no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsConfigError::Key(e.to_string()))?;
        let verifier =
            verifier::AppIdClientVerifier { trust: trust.clone(), mandatory: client_auth == ClientAuth::Required };
        let mut server = ServerConfig::builder_with_provider(trust.provider().clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(certs, key)?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self { server: Arc::new(server), trust })
    }

    /// [`TlsConfig::new`] from PEM files.
    pub fn from_pem_files(
        cert_chain: &Path,
        key: &Path,
        trust: TrustMap,
        client_auth: ClientAuth,
    ) -> Result<Self, TlsConfigError> {
        let read = |p: &Path| std::fs::read(p).map_err(|source| TlsConfigError::Io { path: p.to_owned(), source });
        Self::new(&read(cert_chain)?, &read(key)?, trust, client_auth)
    }

    /// The rustls configuration, for an acceptor (`cse::net` uses it; so can other bindings).
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }

    pub fn trust(&self) -> &TrustMap {
        &self.trust
    }
}

#[cfg(test)]
mod tests;
