//! The client-certificate verifier of the handshake.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::TrustMap;

/// Asks for a client certificate and lets rustls check that the client holds its key (the
/// CertificateVerify signature), but does not judge the chain: that is done once the handshake is
/// over, against the trust map ([`TrustMap::identify_connection`]), so that a certificate from a
/// wrong root, an expired one or one of an App-ID the map does not know yet gets a oneM2M answer
/// with its reason (4106) and a decision-log entry instead of a bare TLS alert. The handshake never
/// waits on the network and never advertises CA names.
///
/// Refused here: only a certificate that is not a well-formed X.509 certificate (nothing could be
/// said about it later either).
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
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Err(pki::san::SanError::BadCertificate) = pki::san::claims(end_entity) {
            tracing::debug!("client certificate refused: not a well-formed certificate");
            return Err(Error::InvalidCertificate(CertificateError::BadEncoding));
        }
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
