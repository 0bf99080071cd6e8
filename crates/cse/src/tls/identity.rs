//! What the TLS layer tells the CSE about a peer's client certificate.

use std::sync::Arc;

use onem2m::{AeId, AppId};
use pki::Fingerprint;
use pki::san::SanError;
use rustls_pki_types::CertificateDer;

/// The identity a client proved during the TLS handshake: the claims of its certificate, which
/// chained to one of its App-ID's roots. Computed once per connection, after the handshake, and
/// attached to every request on that connection (see [`crate::net::Peer`]).
///
/// Nothing here says the claims match the request: the admission code compares `app_id` with the
/// AE's `api` and the AE-ID with `X-M2M-Origin`, and `root_sha256` with the profile's roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The App-ID of the certificate's `urn:onem2m:app-id:` SAN.
    pub app_id: AppId,
    /// The AE-ID URI SAN (`//<sp-id>/<stem>`) exactly as the certificate carries it.
    pub ae_id_uri: Option<String>,
    /// The same, parsed; `None` when absent or not a valid absolute AE-ID.
    pub ae_id: Option<AeId>,
    /// SHA-256 of the client certificate's DER: the Credential-ID of the security association.
    pub cert_sha256: Fingerprint,
    /// SHA-256 of the root of the App-ID's set that the chain ended in.
    pub root_sha256: Fingerprint,
}

/// How a chain failed against an App-ID's roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFailure {
    /// It does not end in one of the roots.
    WrongRoot,
    Expired,
    NotYetValid,
    /// Anything else (key usage, a bad signature in the chain, ...).
    Other(String),
}

/// Why a certificate chain gives no [`PeerIdentity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the peer presented no certificate")]
    NoCertificate,
    #[error(transparent)]
    Claims(#[from] SanError),
    #[error("the App-ID {0} has no roots in the trust map")]
    UnknownAppId(AppId),
    #[error("the certificate does not chain to a root of App-ID {app_id}{}", match .failure {
        ChainFailure::WrongRoot => String::new(),
        ChainFailure::Expired => " (it has expired)".to_owned(),
        ChainFailure::NotYetValid => " (it is not valid yet)".to_owned(),
        ChainFailure::Other(m) => format!(" ({m})"),
    })]
    NotTrusted { app_id: AppId, failure: ChainFailure },
}

impl IdentityError {
    /// A stable label for the decision log and metrics: `no_app_id`, `bad_certificate`,
    /// `unknown_app_id`, `wrong_root`, `expired`, `not_yet_valid`.
    pub fn reason(&self) -> &'static str {
        match self {
            IdentityError::NoCertificate | IdentityError::Claims(SanError::BadCertificate) => "bad_certificate",
            IdentityError::Claims(_) => "no_app_id",
            IdentityError::UnknownAppId(_) => "unknown_app_id",
            IdentityError::NotTrusted { failure, .. } => match failure {
                ChainFailure::WrongRoot => "wrong_root",
                ChainFailure::Expired => "expired",
                ChainFailure::NotYetValid => "not_yet_valid",
                ChainFailure::Other(_) => "bad_certificate",
            },
        }
    }
}

/// A client certificate that was presented but did not verify against the trust map when the
/// connection was identified: the connection is served, but it proves nothing except that the
/// client holds the certificate's key. Every request over it is refused (4106) with the reason,
/// except an AE registration, which may resolve an App-ID the map did not know yet from the
/// registry's signed profile ([`crate::tls::TrustMap::identify`] on `chain`, once the map learned
/// the roots).
#[derive(Debug, Clone)]
pub struct UnverifiedPeer {
    /// The chain as presented, end entity first.
    pub chain: Arc<[CertificateDer<'static>]>,
    /// The App-ID the certificate claims (unverified), when it claims one.
    pub app_id: Option<AppId>,
    /// The AE-ID URI it claims (unverified).
    pub ae_id_uri: Option<String>,
    /// SHA-256 of the certificate (the key's possession was proved by the handshake).
    pub cert_sha256: Fingerprint,
    /// Why it did not verify.
    pub error: IdentityError,
}
