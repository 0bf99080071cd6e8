//! The subjectAltName conventions of Warden's device certificates (DESIGN.md §8), in one place.
//!
//! - The App-ID is a URI SAN `urn:onem2m:app-id:<App-ID>` ([`APP_ID_URI_PREFIX`]). TS-0003 defines no
//!   extension for the App-ID, so this encoding is Warden's choice. The prefix is matched without
//!   regard to ASCII case (RFC 8141 makes the scheme and the namespace case-insensitive); the App-ID
//!   itself is case-sensitive and must parse as an [`AppId`].
//! - The AE-ID, when the certificate carries one, is a URI SAN holding the absolute AE-ID,
//!   `//<sp-id>/<S-stem>` or `//<sp-id>/<cse-id>/<C-stem>` (TS-0003 §8.1.2.5, the AE-ID certificate).
//!   Every URI SAN that starts with `//` is taken as the AE-ID claim.
//! - Other SANs (DNS names, other URIs) are ignored.
//!
//! A certificate with no App-ID SAN, with more than one, or with more than one AE-ID SAN makes no
//! usable claim: [`claims`] refuses it rather than pick one.

use onem2m::{AeId, AppId, IdError};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The prefix of the App-ID URI SAN.
pub const APP_ID_URI_PREFIX: &str = "urn:onem2m:app-id:";

/// The App-ID URI SAN for `app_id`: `urn:onem2m:app-id:<App-ID>`.
pub fn app_id_uri(app_id: &AppId) -> String {
    format!("{APP_ID_URI_PREFIX}{app_id}")
}

/// Reads a URI SAN as an App-ID claim: `None` when the URI is not an App-ID URI at all, `Some(Err)`
/// when it is one but the App-ID after the prefix is malformed.
pub fn parse_app_id_uri(uri: &str) -> Option<Result<AppId, IdError>> {
    let prefix = uri.get(..APP_ID_URI_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(APP_ID_URI_PREFIX) {
        return None;
    }
    Some(AppId::parse(&uri[APP_ID_URI_PREFIX.len()..]))
}

/// True for a URI SAN that claims an AE-ID (the absolute form starts with `//`).
pub fn is_ae_id_uri(uri: &str) -> bool {
    uri.starts_with("//")
}

/// The AE-ID URI SAN for `ae_id`, which must be absolute (`//<sp-id>/...`).
pub fn ae_id_uri(ae_id: &AeId) -> Result<String, SanError> {
    match ae_id {
        AeId::Absolute { .. } => Ok(ae_id.to_string()),
        _ => Err(SanError::AeIdNotAbsolute(ae_id.to_string())),
    }
}

/// What a certificate claims about its subject, read from its SANs. Nothing here is verified: the
/// claim becomes trustworthy only once the chain verifies against the App-ID's own roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub app_id: AppId,
    /// The AE-ID URI SAN exactly as the certificate carries it.
    pub ae_id_uri: Option<String>,
    /// The same, parsed; `None` when there is no AE-ID SAN or it is not a valid absolute AE-ID.
    pub ae_id: Option<AeId>,
}

/// Why a certificate makes no usable claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SanError {
    #[error("not a well-formed X.509 certificate")]
    BadCertificate,
    #[error("the certificate's subjectAltName extension is malformed or repeated")]
    BadSan,
    #[error("the certificate carries no App-ID SAN ({APP_ID_URI_PREFIX}<App-ID>)")]
    NoAppId,
    #[error("the certificate carries more than one App-ID SAN")]
    SeveralAppIds,
    #[error("the certificate's App-ID SAN is malformed: {0}")]
    BadAppId(IdError),
    #[error("the certificate carries more than one AE-ID SAN")]
    SeveralAeIds,
    #[error("an AE-ID SAN must be the absolute AE-ID //<sp-id>/...; got {0:?}")]
    AeIdNotAbsolute(String),
}

/// Reads the App-ID and AE-ID claims from a DER certificate's SANs.
pub fn claims(cert_der: &[u8]) -> Result<Claims, SanError> {
    let (rest, cert) = X509Certificate::from_der(cert_der).map_err(|_| SanError::BadCertificate)?;
    if !rest.is_empty() {
        return Err(SanError::BadCertificate);
    }
    let san = cert.subject_alternative_name().map_err(|_| SanError::BadSan)?.ok_or(SanError::NoAppId)?;
    let mut app_id = None;
    let mut ae_id_uri: Option<&str> = None;
    for name in &san.value.general_names {
        let GeneralName::URI(uri) = name else { continue };
        if let Some(parsed) = parse_app_id_uri(uri) {
            let parsed = parsed.map_err(SanError::BadAppId)?;
            if app_id.replace(parsed).is_some() {
                return Err(SanError::SeveralAppIds);
            }
        } else if is_ae_id_uri(uri) && ae_id_uri.replace(uri).is_some() {
            return Err(SanError::SeveralAeIds);
        }
    }
    let app_id = app_id.ok_or(SanError::NoAppId)?;
    let ae_id = ae_id_uri.and_then(|u| AeId::parse(u).ok()).filter(|a| matches!(a, AeId::Absolute { .. }));
    Ok(Claims { app_id, ae_id_uri: ae_id_uri.map(str::to_owned), ae_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_id_uri_round_trips() {
        let id = AppId::parse("Racme01.com.acme.thermostat").unwrap();
        let uri = app_id_uri(&id);
        assert_eq!(uri, "urn:onem2m:app-id:Racme01.com.acme.thermostat");
        assert_eq!(parse_app_id_uri(&uri), Some(Ok(id.clone())));
        assert_eq!(parse_app_id_uri("URN:oneM2M:App-ID:Racme01.com.acme.thermostat"), Some(Ok(id)));
    }

    #[test]
    fn app_id_uri_table() {
        assert_eq!(parse_app_id_uri("urn:onem2m:app-id:NMyApp1Id").unwrap().unwrap().as_str(), "NMyApp1Id");
        assert!(parse_app_id_uri("urn:onem2m:app-id:").unwrap().is_err());
        assert!(parse_app_id_uri("urn:onem2m:app-id:Xbad").unwrap().is_err());
        assert!(parse_app_id_uri("urn:onem2m:app-id:Rtoo.short").unwrap().is_err());
        assert!(parse_app_id_uri("urn:onem2m:app-id:Nwith space").unwrap().is_err());
        assert_eq!(parse_app_id_uri("urn:onem2m:app-idNx"), None);
        assert_eq!(parse_app_id_uri("urn:x-example:app-id:Nx"), None);
        assert_eq!(parse_app_id_uri("//acme.example.com/Sdev"), None);
        assert_eq!(parse_app_id_uri(""), None);
        // A multi-byte character where the prefix ends must not panic.
        assert_eq!(parse_app_id_uri("urn:onem2m:app-iä"), None);
    }

    #[test]
    fn ae_id_uri_needs_the_absolute_form() {
        let abs = AeId::parse("//acme.example.com/Sdev1").unwrap();
        assert_eq!(ae_id_uri(&abs).unwrap(), "//acme.example.com/Sdev1");
        let c = AeId::parse("//acme.example.com/id-in/Cdev1").unwrap();
        assert_eq!(ae_id_uri(&c).unwrap(), "//acme.example.com/id-in/Cdev1");
        for rel in ["Sdev1", "/Sdev1", "/id-in/Cdev1"] {
            let id = AeId::parse(rel).unwrap();
            assert_eq!(ae_id_uri(&id), Err(SanError::AeIdNotAbsolute(rel.to_owned())));
        }
        assert!(is_ae_id_uri("//acme.example.com/Sdev1"));
        assert!(!is_ae_id_uri("/Sdev1"));
    }

    /// A self-signed certificate whose SANs are the given URIs (and a DNS name, which is ignored).
    fn cert_with_uris(uris: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["device.example".to_owned()]).unwrap();
        for u in uris {
            params.subject_alt_names.push(rcgen::SanType::URI((*u).to_owned().try_into().unwrap()));
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn claims_table() {
        const APP: &str = "urn:onem2m:app-id:Racme01.com.acme.thermostat";
        let ok = claims(&cert_with_uris(&["spiffe://x/y", APP, "//acme.example.com/Sdev1"])).unwrap();
        assert_eq!(ok.app_id.as_str(), "Racme01.com.acme.thermostat");
        assert_eq!(ok.ae_id_uri.as_deref(), Some("//acme.example.com/Sdev1"));
        assert_eq!(ok.ae_id, Some(AeId::parse("//acme.example.com/Sdev1").unwrap()));

        // An AE-ID URI that does not parse is kept raw.
        let raw = claims(&cert_with_uris(&[APP, "//acme.example.com/Xnot-a-stem"])).unwrap();
        assert_eq!(raw.ae_id_uri.as_deref(), Some("//acme.example.com/Xnot-a-stem"));
        assert_eq!(raw.ae_id, None);

        assert_eq!(claims(&cert_with_uris(&[])), Err(SanError::NoAppId));
        assert_eq!(claims(&cert_with_uris(&["//acme.example.com/Sdev1"])), Err(SanError::NoAppId));
        assert_eq!(claims(&cert_with_uris(&[APP, APP])), Err(SanError::SeveralAppIds));
        assert_eq!(claims(&cert_with_uris(&[APP, "urn:onem2m:app-id:Nother"])), Err(SanError::SeveralAppIds));
        assert!(matches!(claims(&cert_with_uris(&["urn:onem2m:app-id:bad"])), Err(SanError::BadAppId(_))));
        assert_eq!(claims(&cert_with_uris(&[APP, "//a.example/S1", "//a.example/S2"])), Err(SanError::SeveralAeIds));

        // No SAN extension at all.
        let key = rcgen::KeyPair::generate().unwrap();
        let bare = rcgen::CertificateParams::default().self_signed(&key).unwrap();
        assert_eq!(claims(bare.der()), Err(SanError::NoAppId));

        // Trailing bytes after the certificate.
        let mut trailing = cert_with_uris(&[APP]);
        trailing.push(0);
        assert_eq!(claims(&trailing), Err(SanError::BadCertificate));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(claims(b""), Err(SanError::BadCertificate));
        assert_eq!(claims(b"\x30\x03\x02\x01\x00"), Err(SanError::BadCertificate));
    }
}
