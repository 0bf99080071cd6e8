//! Certificate authorities and the certificates they issue: vendor roots of trust and their device
//! certificates, and the CSE's server CA and HTTPS certificate. All keys are ECDSA P-256.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onem2m::{AeId, AppId};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Fingerprint, PkiError, san};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// X.520's upper bound for a common name.
const MAX_COMMON_NAME: usize = 64;

/// When a certificate is valid. Certificates are back-dated by an hour so that a peer whose clock is
/// a little behind still accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago until `days` days from now.
    pub fn days(days: u32) -> Self {
        let now = SystemTime::now();
        Self { not_before: now - Duration::from_secs(3600), not_after: now + DAY * days }
    }

    /// Ended yesterday (valid from 30 days ago until 1 day ago): a certificate for tests.
    pub fn expired() -> Self {
        let now = SystemTime::now();
        Self { not_before: now - DAY * 30, not_after: now - DAY }
    }

    /// Starts tomorrow: a certificate for tests.
    pub fn not_yet_valid() -> Self {
        let now = SystemTime::now();
        Self { not_before: now + DAY, not_after: now + DAY * 30 }
    }

    fn apply(&self, params: &mut CertificateParams) -> Result<(), PkiError> {
        if self.not_after <= self.not_before {
            return Err(PkiError::InvalidInput("a certificate's validity must end after it starts".into()));
        }
        params.not_before = to_offset(self.not_before)?;
        params.not_after = to_offset(self.not_after)?;
        Ok(())
    }
}

fn to_offset(t: SystemTime) -> Result<OffsetDateTime, PkiError> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    };
    // X.509 dates end at 9999-12-31 (GeneralizedTime); refuse anything the encoding cannot hold.
    secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .filter(|d| (0..=9999).contains(&d.year()))
        .ok_or_else(|| PkiError::InvalidInput("a certificate date is out of range".into()))
}

fn distinguished_name(common_name: &str) -> Result<DistinguishedName, PkiError> {
    let cn = common_name.trim();
    if cn.is_empty() || cn.chars().count() > MAX_COMMON_NAME {
        return Err(PkiError::InvalidInput(format!(
            "a common name must have 1 to {MAX_COMMON_NAME} characters; got {common_name:?}"
        )));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    Ok(dn)
}

fn new_key() -> Result<KeyPair, PkiError> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}

fn uri_san(uri: String) -> Result<SanType, PkiError> {
    Ok(SanType::URI(uri.try_into()?))
}

/// A DNS name as a server certificate may carry: dot-separated labels of letters, digits and inner
/// hyphens.
fn is_dns_name(s: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (1..=253).contains(&s.len()) && s.split('.').all(label_ok)
}

/// Parses a DER certificate completely or fails.
fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(PkiError::BadCertificate("not a well-formed X.509 certificate".into())),
    }
}

fn check_key_matches(cert: &X509Certificate<'_>, key: &KeyPair) -> Result<(), PkiError> {
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::KeyMismatch);
    }
    Ok(())
}

/// The certificates of a PEM text, in order.
fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::BadCertificate(format!("unreadable PEM: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::BadCertificate("no CERTIFICATE block in the PEM text".into()));
    }
    Ok(certs)
}

/// A certificate authority: a vendor's root of trust for its devices, or the CSE's server CA.
pub struct Root {
    cert: CertificateDer<'static>,
    cert_pem: String,
    subject: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Root {
    /// A new self-signed CA valid for ten years.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        Self::generate_with(common_name, Validity::days(3650))
    }

    /// A new self-signed CA with the given validity. It may sign end-entity certificates and one level
    /// of intermediate CAs (`pathLenConstraint` 1).
    pub fn generate_with(common_name: &str, validity: Validity) -> Result<Self, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity.apply(&mut params)?;
        let key = new_key()?;
        let cert = params.self_signed(&key)?;
        Self::assemble(cert.der().clone(), Issuer::new(params, key))
    }

    /// Loads a CA from its certificate and its PKCS#8 private key, both PEM. The certificate must be a
    /// CA certificate and the key must be its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let cert = certs_from_pem(cert_pem)?.swap_remove(0);
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::BadKey(e.to_string()))?;
        {
            let x509 = parse_x509(&cert)?;
            if !x509.is_ca() {
                return Err(PkiError::BadCertificate("not a CA certificate (basicConstraints CA:TRUE)".into()));
            }
            check_key_matches(&x509, &key)?;
        }
        let issuer = Issuer::from_ca_cert_der(&cert, key)?;
        Self::assemble(cert, issuer)
    }

    fn assemble(cert: CertificateDer<'static>, issuer: Issuer<'static, KeyPair>) -> Result<Self, PkiError> {
        let subject = parse_x509(&cert)?.subject().to_string();
        let cert_pem = pem_encode("CERTIFICATE", &cert);
        Ok(Self { cert, cert_pem, subject, issuer })
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PKCS#8 PEM. A secret: never log it.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The SHA-256 of the certificate's DER: what a registry profile lists in `authentication.roots`.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert)
    }

    /// The subject as text, e.g. `CN=Acme Device Root`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Issues a device certificate (ECDSA P-256, clientAuth) with a fresh key.
    pub fn issue_device(&self, spec: &DeviceSpec) -> Result<Identity, PkiError> {
        let mut sans = Vec::new();
        if let Some(app_id) = &spec.app_id {
            sans.push(uri_san(san::app_id_uri(app_id))?);
        }
        if let Some(ae_id) = &spec.ae_id {
            sans.push(uri_san(san::ae_id_uri(ae_id)?)?);
        }
        let default_cn;
        let cn = match (&spec.common_name, &spec.app_id) {
            (Some(cn), _) => cn.as_str(),
            (None, Some(app_id)) => {
                default_cn = app_id.as_str().chars().take(MAX_COMMON_NAME).collect::<String>();
                &default_cn
            }
            (None, None) => "Warden test device",
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(cn)?;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        spec.validity.apply(&mut params)?;
        self.sign(&params)
    }

    /// Issues a TLS server certificate (ECDSA P-256, serverAuth) for `names`: DNS names and IP
    /// addresses, the first of which is also the common name.
    pub fn issue_server(&self, names: &[&str], validity: Validity) -> Result<Identity, PkiError> {
        let Some(first) = names.first() else {
            return Err(PkiError::InvalidInput("a server certificate needs at least one name".into()));
        };
        let sans = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) if is_dns_name(n) => Ok(SanType::DnsName((*n).to_owned().try_into()?)),
                Err(_) => Err(PkiError::InvalidInput(format!("{n:?} is neither a DNS name nor an IP address"))),
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(first)?;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity.apply(&mut params)?;
        self.sign(&params)
    }

    fn sign(&self, params: &CertificateParams) -> Result<Identity, PkiError> {
        let key = new_key()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_pem = pem_encode("CERTIFICATE", cert.der());
        Ok(Identity { cert: cert.der().clone(), cert_pem, key_pem: key.serialize_pem() })
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Root").field("subject", &self.subject).field("sha256", &self.fingerprint()).finish()
    }
}

/// What goes into a device certificate.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// The App-ID SAN; `None` only for negative tests (a certificate without the claim).
    pub app_id: Option<AppId>,
    /// The AE-ID SAN, which must be an absolute AE-ID (`//<sp-id>/<stem>`).
    pub ae_id: Option<AeId>,
    pub validity: Validity,
    /// The subject's common name; by default the App-ID (cut to 64 characters).
    pub common_name: Option<String>,
}

impl DeviceSpec {
    /// A certificate for `app_id`, valid for a year.
    pub fn new(app_id: AppId) -> Self {
        Self { app_id: Some(app_id), ae_id: None, validity: Validity::days(365), common_name: None }
    }

    /// A certificate without any App-ID SAN (for tests of the refusal).
    pub fn without_app_id() -> Self {
        Self { app_id: None, ae_id: None, validity: Validity::days(365), common_name: None }
    }

    pub fn ae_id(mut self, ae_id: AeId) -> Self {
        self.ae_id = Some(ae_id);
        self
    }

    pub fn validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
    }

    pub fn common_name(mut self, common_name: impl Into<String>) -> Self {
        self.common_name = Some(common_name.into());
        self
    }
}

/// An end-entity certificate and its private key: a device's or a server's identity.
#[derive(Clone)]
pub struct Identity {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl Identity {
    /// Loads a certificate and its PKCS#8 private key, both PEM. `cert_pem` may hold a chain: the
    /// first certificate is the end entity, and the key must be its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let cert = certs_from_pem(cert_pem)?.swap_remove(0);
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::BadKey(e.to_string()))?;
        check_key_matches(&parse_x509(&cert)?, &key)?;
        Ok(Self { cert, cert_pem: cert_pem.to_owned(), key_pem: key.serialize_pem() })
    }

    /// The end-entity certificate.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate (chain) as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The whole chain, end entity first.
    pub fn cert_chain(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        certs_from_pem(&self.cert_pem)
    }

    /// The private key, PKCS#8 PEM. A secret: never log it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The private key, DER.
    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| PkiError::BadKey(e.to_string()))
    }

    /// The certificate followed by the key, the form HTTP clients such as reqwest take.
    pub fn pem_bundle(&self) -> String {
        let mut s = String::with_capacity(self.cert_pem.len() + self.key_pem.len() + 1);
        s.push_str(&self.cert_pem);
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&self.key_pem);
        s
    }

    /// The SHA-256 of the end-entity certificate's DER: the credential ID.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert)
    }

    /// The App-ID and AE-ID the certificate claims.
    pub fn claims(&self) -> Result<san::Claims, san::SanError> {
        san::claims(&self.cert)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("sha256", &self.fingerprint()).field("key", &"[elided]").finish()
    }
}

/// The names a CSE's HTTPS certificate carries by default.
pub const DEFAULT_SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The CSE's HTTPS identity: a CA that clients trust, and the server certificate it signed.
#[derive(Debug)]
pub struct ServerIdentity {
    pub ca: Root,
    pub leaf: Identity,
}

impl ServerIdentity {
    /// A new CA and a server certificate for `names`, valid for ten years and one year.
    pub fn generate(names: &[&str]) -> Result<Self, PkiError> {
        let ca = Root::generate("Warden demo server CA")?;
        let leaf = ca.issue_server(names, Validity::days(365))?;
        Ok(Self { ca, leaf })
    }

    /// A new identity for `localhost`, `127.0.0.1` and `::1`.
    pub fn localhost() -> Result<Self, PkiError> {
        Self::generate(DEFAULT_SERVER_NAMES)
    }
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * tag.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(tag);
    out.push_str("-----\n");
    // Base64 is ASCII, so every 64-byte chunk is valid UTF-8.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(tag);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{GeneralName, X509Certificate};

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        parse_x509(der).unwrap()
    }

    fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
        cert.subject_alternative_name()
            .unwrap()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::URI(u) => Some((*u).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn root_is_a_ca_and_round_trips_through_pem() {
        let root = Root::generate("Acme Device Root").unwrap();
        let x = parse(root.cert_der());
        assert!(x.is_ca());
        assert_eq!(x.subject().to_string(), "CN=Acme Device Root");
        assert_eq!(root.subject(), "CN=Acme Device Root");
        assert_eq!(x.subject(), x.issuer());
        assert_eq!(root.fingerprint(), Fingerprint::of(root.cert_der()));
        assert_eq!(root.cert_pem(), pem_encode("CERTIFICATE", root.cert_der()));
        let back = Root::from_pem(root.cert_pem(), &root.key_pem()).unwrap();
        assert_eq!(back.cert_der(), root.cert_der());
        assert_eq!(back.subject(), root.subject());
        // The reloaded root still issues certificates that name it as the issuer.
        let dev = back.issue_device(&DeviceSpec::new(AppId::parse("Nx").unwrap())).unwrap();
        assert_eq!(parse(dev.cert_der()).issuer().to_string(), "CN=Acme Device Root");
    }

    #[test]
    fn pem_matches_rcgen() {
        let key = new_key().unwrap();
        let cert = CertificateParams::new(vec!["x".to_owned()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(pem_encode("CERTIFICATE", cert.der()), cert.pem());
        for n in 0..5 {
            let der = vec![0xA5u8; 45 + n];
            let pem = pem_encode("CERTIFICATE", &der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), der.as_slice());
        }
    }

    #[test]
    fn from_pem_refuses_a_foreign_key_and_a_leaf() {
        let a = Root::generate("A").unwrap();
        let b = Root::generate("B").unwrap();
        assert!(matches!(Root::from_pem(a.cert_pem(), &b.key_pem()), Err(PkiError::KeyMismatch)));
        let leaf = a.issue_device(&DeviceSpec::new(AppId::parse("Nx").unwrap())).unwrap();
        assert!(matches!(Root::from_pem(leaf.cert_pem(), leaf.key_pem()), Err(PkiError::BadCertificate(_))));
        assert!(matches!(Root::from_pem("nothing", &a.key_pem()), Err(PkiError::BadCertificate(_))));
        assert!(matches!(Root::from_pem(a.cert_pem(), "nothing"), Err(PkiError::BadKey(_))));
        assert!(matches!(Identity::from_pem(leaf.cert_pem(), &a.key_pem()), Err(PkiError::KeyMismatch)));
        let again = Identity::from_pem(leaf.cert_pem(), leaf.key_pem()).unwrap();
        assert_eq!(again.fingerprint(), leaf.fingerprint());
    }

    #[test]
    fn device_certificate_carries_the_sans() {
        let root = Root::generate("Acme Device Root").unwrap();
        let app = AppId::parse("Racme01.com.acme.thermostat").unwrap();
        let ae = AeId::parse("//acme.example.com/Sdev0001").unwrap();
        let dev = root.issue_device(&DeviceSpec::new(app.clone()).ae_id(ae.clone())).unwrap();
        let x = parse(dev.cert_der());
        assert_eq!(
            uris(&x),
            vec!["urn:onem2m:app-id:Racme01.com.acme.thermostat".to_owned(), "//acme.example.com/Sdev0001".to_owned()]
        );
        assert!(!x.is_ca());
        assert_eq!(x.issuer().to_string(), "CN=Acme Device Root");
        assert_eq!(x.subject().to_string(), "CN=Racme01.com.acme.thermostat");
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let alg = &x.public_key().algorithm;
        assert_eq!(alg.algorithm.to_id_string(), "1.2.840.10045.2.1"); // id-ecPublicKey
        let curve = alg.parameters.as_ref().unwrap().as_oid().unwrap();
        assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7"); // prime256v1
        assert!(x.validity().is_valid());

        let claims = dev.claims().unwrap();
        assert_eq!(claims.app_id, app);
        assert_eq!(claims.ae_id_uri.as_deref(), Some("//acme.example.com/Sdev0001"));
        assert_eq!(claims.ae_id, Some(ae));
        assert_eq!(dev.fingerprint(), Fingerprint::of(dev.cert_der()));
        assert_eq!(dev.cert_chain().unwrap(), vec![dev.cert_der().clone()]);
        assert!(dev.key_der().is_ok());
        let bundle = dev.pem_bundle();
        assert!(bundle.starts_with("-----BEGIN CERTIFICATE-----") && bundle.contains("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn device_without_ae_id_or_app_id() {
        let root = Root::generate("R").unwrap();
        let dev = root.issue_device(&DeviceSpec::new(AppId::parse("NMyApp1Id").unwrap())).unwrap();
        let claims = dev.claims().unwrap();
        assert_eq!((claims.ae_id_uri, claims.ae_id), (None, None));
        let bare = root.issue_device(&DeviceSpec::without_app_id()).unwrap();
        assert_eq!(bare.claims(), Err(san::SanError::NoAppId));
        assert_eq!(parse(bare.cert_der()).subject().to_string(), "CN=Warden test device");
    }

    #[test]
    fn device_refuses_a_relative_ae_id() {
        let root = Root::generate("R").unwrap();
        let spec = DeviceSpec::new(AppId::parse("Nx").unwrap()).ae_id(AeId::parse("Sdev1").unwrap());
        assert!(matches!(root.issue_device(&spec), Err(PkiError::San(san::SanError::AeIdNotAbsolute(_)))));
    }

    #[test]
    fn validity_options() {
        let root = Root::generate("R").unwrap();
        let app = AppId::parse("Nx").unwrap();
        let expired = root.issue_device(&DeviceSpec::new(app.clone()).validity(Validity::expired())).unwrap();
        let v = parse(expired.cert_der()).validity().clone();
        assert!(!v.is_valid());
        assert!(v.not_after.timestamp() < OffsetDateTime::now_utc().unix_timestamp());
        let future = root.issue_device(&DeviceSpec::new(app.clone()).validity(Validity::not_yet_valid())).unwrap();
        assert!(
            parse(future.cert_der()).validity().not_before.timestamp() > OffsetDateTime::now_utc().unix_timestamp()
        );
        let ten = root.issue_device(&DeviceSpec::new(app.clone()).validity(Validity::days(10))).unwrap();
        let v = parse(ten.cert_der()).validity().clone();
        let span = v.not_after.timestamp() - v.not_before.timestamp();
        assert_eq!(span, 10 * 86400 + 3600);

        let backwards = Validity { not_before: SystemTime::now(), not_after: SystemTime::now() - DAY };
        assert!(matches!(
            root.issue_device(&DeviceSpec::new(app.clone()).validity(backwards)),
            Err(PkiError::InvalidInput(_))
        ));
        let far = Validity { not_before: SystemTime::now(), not_after: SystemTime::now() + DAY * 365 * 9000 };
        assert!(matches!(root.issue_device(&DeviceSpec::new(app).validity(far)), Err(PkiError::InvalidInput(_))));
    }

    #[test]
    fn common_names_are_bounded() {
        assert!(Root::generate("").is_err());
        assert!(Root::generate(&"x".repeat(65)).is_err());
        assert!(Root::generate(&"x".repeat(64)).is_ok());
        let root = Root::generate("R").unwrap();
        let long = AppId::parse(&format!("N{}", "a".repeat(200))).unwrap();
        let dev = root.issue_device(&DeviceSpec::new(long.clone())).unwrap();
        assert_eq!(dev.claims().unwrap().app_id, long);
    }

    #[test]
    fn server_identity_names_and_usage() {
        let id = ServerIdentity::localhost().unwrap();
        let x = parse(id.leaf.cert_der());
        let san = x.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => (*d).to_owned(),
                GeneralName::IPAddress(ip) => format!("ip{}", ip.len()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["localhost", "ip4", "ip16"]);
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        assert_eq!(x.issuer().to_string(), id.ca.subject());
        assert!(matches!(id.ca.issue_server(&[], Validity::days(1)), Err(PkiError::InvalidInput(_))));
        for bad in ["bad name", "", "a..b", "-a.example", "a_b.example", "ex\u{e4}mple.com"] {
            assert!(matches!(id.ca.issue_server(&[bad], Validity::days(1)), Err(PkiError::InvalidInput(_))), "{bad:?}");
        }
        assert!(id.ca.issue_server(&["cse.example.com", "10.0.0.1"], Validity::days(1)).is_ok());
    }

    #[test]
    fn debug_never_prints_keys() {
        let root = Root::generate("R").unwrap();
        let dev = root.issue_device(&DeviceSpec::new(AppId::parse("Nx").unwrap())).unwrap();
        let text = format!("{root:?} {dev:?}");
        assert!(!text.contains("PRIVATE"), "{text}");
        assert!(text.contains(&root.fingerprint().to_hex()));
    }
}
