//! The client-certificate verifier: per-App-ID roots, chosen by the certificate's own claim.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::TrustMap;

/// Reads the App-ID claimed in the client certificate's SAN, takes that App-ID's roots from the
/// [`TrustMap`] and lets a `WebPkiClientVerifier` built for exactly those roots check the chain
/// (signatures, validity at `now`, clientAuth usage). Trusting the unverified claim to pick the roots
/// is safe: a certificate that claims App-ID A verifies only if it chains to one of A's roots.
///
/// Refused: a certificate without exactly one well-formed App-ID SAN (`access_denied`), an App-ID not
/// in the map (`unknown_ca`; the map records the miss for its refresher), and any chain failure,
/// such as another App-ID's root or an expired certificate.
#[derive(Debug)]
pub(crate) struct AppIdClientVerifier {
    pub(crate) trust: TrustMap,
    pub(crate) mandatory: bool,
}

impl ClientCertVerifier for AppIdClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// Never advertise CA names: the list would tell anonymous clients every vendor the CSE trusts.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let claims = pki::san::claims(end_entity).map_err(|e| {
            tracing::debug!(error = %e, "client certificate refused: no usable App-ID claim");
            Error::InvalidCertificate(match e {
                pki::san::SanError::BadCertificate => CertificateError::BadEncoding,
                _ => CertificateError::ApplicationVerificationFailure,
            })
        })?;
        let Some(roots) = self.trust.lookup(&claims.app_id) else {
            tracing::debug!(app_id = %claims.app_id, "client certificate refused: App-ID not in the trust map");
            return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        };
        roots.verify(end_entity, intermediates, now).map_err(|e| {
            tracing::debug!(app_id = %claims.app_id, error = %e, "client certificate refused");
            e
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.trust.provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.trust.provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust.provider().signature_verification_algorithms.supported_schemes()
    }
}
