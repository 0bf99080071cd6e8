//! What the TLS layer tells the CSE about an authenticated peer.

use onem2m::{AeId, AppId};
use pki::Fingerprint;
use pki::san::SanError;

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

/// Why a certificate chain gives no [`PeerIdentity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the peer presented no certificate")]
    NoCertificate,
    #[error(transparent)]
    Claims(#[from] SanError),
    #[error("App-ID {0} has no roots in the trust map")]
    UnknownAppId(AppId),
    #[error("the certificate does not chain to a current root of App-ID {0}")]
    NotTrusted(AppId),
}
