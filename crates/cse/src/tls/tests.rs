//! Unit tests of the verifier, the trust map and the identification, with certificates made by the
//! `pki` crate at run time; the last ones run whole handshakes in memory (no sockets).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use onem2m::{AeId, AppId};
use parking_lot::Mutex;
use pki::{DeviceSpec, Fingerprint, Identity, Root, ServerIdentity, Validity};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, Error, HandshakeKind, ServerConnection, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::verifier::AppIdClientVerifier;
use super::*;

const APP_A: &str = "Racme01.com.acme.thermostat";
const APP_B: &str = "Rbeta01.com.beta.meter";

fn app(s: &str) -> AppId {
    AppId::parse(s).unwrap()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn device(root: &Root, app_id: &str) -> Identity {
    root.issue_device(&DeviceSpec::new(app(app_id))).unwrap()
}

struct Fixture {
    root_a: Root,
    root_b: Root,
    trust: TrustMap,
}

fn fixture() -> Fixture {
    let root_a = Root::generate("Acme Device Root").unwrap();
    let root_b = Root::generate("Beta Device Root").unwrap();
    let trust = TrustMap::with_provider(provider());
    trust
        .set(HashMap::from([
            (app(APP_A), vec![root_a.cert_der().clone()]),
            (app(APP_B), vec![root_b.cert_der().clone()]),
        ]))
        .unwrap();
    Fixture { root_a, root_b, trust }
}

fn check(trust: &TrustMap, id: &Identity) -> Result<(), Error> {
    let v = AppIdClientVerifier { trust: trust.clone(), mandatory: true };
    v.verify_client_cert(id.cert_der(), &[], UnixTime::now()).map(|_| ())
}

/// Misses are recorded synchronously by the verifier, so "nothing reported" can be checked without
/// waiting: `missed()` is not ready.
fn no_miss_reported(trust: &TrustMap) -> bool {
    futures_util::FutureExt::now_or_never(trust.missed()).is_none()
}

fn invalid(e: CertificateError) -> Result<(), Error> {
    Err(Error::InvalidCertificate(e))
}

#[test]
fn verifier_accepts_the_right_root_only() {
    let f = fixture();
    assert_eq!(check(&f.trust, &device(&f.root_a, APP_A)), Ok(()));
    assert_eq!(check(&f.trust, &device(&f.root_b, APP_B)), Ok(()));
    // Claims A but is signed by B's root: B's root is no help, A's root does not sign it.
    assert_eq!(check(&f.trust, &device(&f.root_b, APP_A)), invalid(CertificateError::UnknownIssuer));
}

#[test]
fn verifier_refuses_expired_and_not_yet_valid() {
    let f = fixture();
    let expired = f.root_a.issue_device(&DeviceSpec::new(app(APP_A)).validity(Validity::expired())).unwrap();
    assert!(matches!(
        check(&f.trust, &expired),
        Err(Error::InvalidCertificate(CertificateError::ExpiredContext { .. }))
    ));
    let early = f.root_a.issue_device(&DeviceSpec::new(app(APP_A)).validity(Validity::not_yet_valid())).unwrap();
    assert!(matches!(
        check(&f.trust, &early),
        Err(Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }))
    ));
}

#[test]
fn verifier_refuses_missing_and_malformed_claims() {
    let f = fixture();
    let bare = f.root_a.issue_device(&DeviceSpec::without_app_id()).unwrap();
    assert_eq!(check(&f.trust, &bare), invalid(CertificateError::ApplicationVerificationFailure));
    let v = AppIdClientVerifier { trust: f.trust.clone(), mandatory: true };
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    assert_eq!(
        v.verify_client_cert(&garbage, &[], UnixTime::now()).map(|_| ()),
        invalid(CertificateError::BadEncoding)
    );
    // A server certificate is signed by a CA but claims no App-ID.
    let server = ServerIdentity::localhost().unwrap();
    assert_eq!(check(&f.trust, &server.leaf), invalid(CertificateError::ApplicationVerificationFailure));
}

#[test]
fn verifier_never_advertises_roots() {
    let f = fixture();
    let required = AppIdClientVerifier { trust: f.trust.clone(), mandatory: true };
    let optional = AppIdClientVerifier { trust: f.trust, mandatory: false };
    assert!(required.root_hint_subjects().is_empty());
    assert!(required.offer_client_auth() && optional.offer_client_auth());
    assert!(required.client_auth_mandatory());
    assert!(!optional.client_auth_mandatory());
    assert!(required.supported_verify_schemes().contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
}

#[tokio::test]
async fn unknown_app_id_is_refused_and_reported_once() {
    let f = fixture();
    let stranger = Root::generate("Gamma Root").unwrap();
    let gamma = "Rgamma01.com.gamma.lock";
    for _ in 0..3 {
        assert_eq!(check(&f.trust, &device(&stranger, gamma)), invalid(CertificateError::UnknownIssuer));
    }
    let missed = tokio::time::timeout(Duration::from_secs(5), f.trust.missed()).await.unwrap();
    assert_eq!(missed, vec![app(gamma)]);

    // The refresher fetches the roots; the next handshake succeeds, and no miss is reported.
    f.trust.update_one(app(gamma), vec![stranger.cert_der().clone()]).unwrap();
    assert_eq!(check(&f.trust, &device(&stranger, gamma)), Ok(()));
    assert!(no_miss_reported(&f.trust));
}

#[tokio::test]
async fn misses_added_meanwhile_are_dropped_and_the_queue_is_bounded() {
    let f = fixture();
    let root = Root::generate("R").unwrap();
    let first = app("Nfirst");
    let _ = check(&f.trust, &device(&root, first.as_str()));
    f.trust.update_one(first.clone(), vec![root.cert_der().clone()]).unwrap();
    let _ = check(&f.trust, &device(&root, "Nsecond"));
    let got = tokio::time::timeout(Duration::from_secs(5), f.trust.missed()).await.unwrap();
    assert_eq!(got, vec![app("Nsecond")]);

    // Claims come from unverified certificates: the pending set never grows past its bound. The
    // verifier is bypassed here so that the test does not need a certificate per App-ID.
    for i in 0..(MAX_PENDING_MISSES + 50) {
        assert!(f.trust.lookup(&app(&format!("Nflood{i}"))).is_none());
    }
    let got = tokio::time::timeout(Duration::from_secs(5), f.trust.missed()).await.unwrap();
    assert_eq!(got.len(), MAX_PENDING_MISSES);
}

#[test]
fn empty_roots_refuse_without_a_miss() {
    let f = fixture();
    f.trust.update_one(app("Nnone"), Vec::new()).unwrap();
    let root = Root::generate("R").unwrap();
    assert_eq!(check(&f.trust, &device(&root, "Nnone")), invalid(CertificateError::UnknownIssuer));
    assert_eq!(f.trust.root_fingerprints(&app("Nnone")), Some(vec![]));
    assert!(no_miss_reported(&f.trust));
}

#[test]
fn trust_map_updates() {
    let f = fixture();
    assert_eq!(f.trust.len(), 2);
    assert!(f.trust.contains(&app(APP_A)));
    assert_eq!(f.trust.root_fingerprints(&app(APP_A)), Some(vec![f.root_a.fingerprint()]));

    // Rotate A to B's root: A's old devices fail, devices under the new root pass.
    f.trust.update_one(app(APP_A), vec![f.root_b.cert_der().clone()]).unwrap();
    assert_eq!(check(&f.trust, &device(&f.root_a, APP_A)), invalid(CertificateError::UnknownIssuer));
    assert_eq!(check(&f.trust, &device(&f.root_b, APP_A)), Ok(()));

    // Both roots, listed twice: duplicates collapse, either root verifies.
    let both = vec![f.root_a.cert_der().clone(), f.root_b.cert_der().clone(), f.root_a.cert_der().clone()];
    f.trust.update_one(app(APP_A), both).unwrap();
    assert_eq!(f.trust.root_fingerprints(&app(APP_A)), Some(vec![f.root_a.fingerprint(), f.root_b.fingerprint()]));
    assert_eq!(check(&f.trust, &device(&f.root_a, APP_A)), Ok(()));
    assert_eq!(check(&f.trust, &device(&f.root_b, APP_A)), Ok(()));

    assert!(f.trust.remove(&app(APP_A)));
    assert!(!f.trust.remove(&app(APP_A)));
    assert_eq!(check(&f.trust, &device(&f.root_a, APP_A)), invalid(CertificateError::UnknownIssuer));
    assert_eq!(f.trust.len(), 1);

    // A clone is the same map.
    let clone = f.trust.clone();
    clone.update_one(app(APP_A), vec![f.root_a.cert_der().clone()]).unwrap();
    assert!(f.trust.contains(&app(APP_A)));
    assert_eq!(format!("{:?}", f.trust), "TrustMap { app_ids: 2 }");
}

#[test]
fn bad_roots_leave_the_map_unchanged() {
    let f = fixture();
    let junk = CertificateDer::from(vec![1, 2, 3]);
    let err = f.trust.update_one(app(APP_A), vec![f.root_b.cert_der().clone(), junk.clone()]).unwrap_err();
    assert_eq!((err.app_id.as_str(), err.index), (APP_A, 1));
    assert_eq!(f.trust.root_fingerprints(&app(APP_A)), Some(vec![f.root_a.fingerprint()]));

    let err = f.trust.set(HashMap::from([(app("Nnew"), vec![junk])])).unwrap_err();
    assert_eq!(err.app_id, app("Nnew"));
    assert_eq!(f.trust.len(), 2, "a failed set keeps the old map");
    f.trust.set(HashMap::new()).unwrap();
    assert!(f.trust.is_empty());
}

#[test]
fn identify_names_the_root_and_the_claims() {
    let f = fixture();
    f.trust.update_one(app(APP_A), vec![f.root_b.cert_der().clone(), f.root_a.cert_der().clone()]).unwrap();
    let ae = AeId::parse("//acme.example.com/Sdev0001").unwrap();
    let dev = f.root_a.issue_device(&DeviceSpec::new(app(APP_A)).ae_id(ae.clone())).unwrap();
    let id = f.trust.identify(&[dev.cert_der().clone()], UnixTime::now()).unwrap();
    assert_eq!(
        id,
        PeerIdentity {
            app_id: app(APP_A),
            ae_id_uri: Some("//acme.example.com/Sdev0001".into()),
            ae_id: Some(ae),
            cert_sha256: dev.fingerprint(),
            root_sha256: f.root_a.fingerprint(),
        }
    );
    assert_eq!(id.cert_sha256, Fingerprint::of(dev.cert_der()));

    let other = device(&f.root_b, APP_A);
    assert_eq!(
        f.trust.identify(&[other.cert_der().clone()], UnixTime::now()).unwrap().root_sha256,
        f.root_b.fingerprint()
    );

    // The check is made again: a later time, a changed map or no certificate give no identity.
    let later = UnixTime::since_unix_epoch(Duration::from_secs(4_000_000_000));
    assert_eq!(f.trust.identify(&[dev.cert_der().clone()], later), Err(IdentityError::NotTrusted(app(APP_A))));
    f.trust.remove(&app(APP_A));
    assert_eq!(
        f.trust.identify(&[dev.cert_der().clone()], UnixTime::now()),
        Err(IdentityError::UnknownAppId(app(APP_A)))
    );
    assert_eq!(f.trust.identify(&[], UnixTime::now()), Err(IdentityError::NoCertificate));
}

#[test]
fn config_from_pem() {
    let f = fixture();
    let server = ServerIdentity::localhost().unwrap();
    let cfg = TlsConfig::new(
        server.leaf.cert_pem().as_bytes(),
        server.leaf.key_pem().as_bytes(),
        f.trust.clone(),
        ClientAuth::Required,
    )
    .unwrap();
    assert_eq!(cfg.server_config().alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(cfg.trust().len(), 2);
    let err = |r: Result<TlsConfig, TlsConfigError>| r.unwrap_err().to_string();
    let trust = || f.trust.clone();
    assert!(
        err(TlsConfig::new(b"", server.leaf.key_pem().as_bytes(), trust(), ClientAuth::Optional))
            .contains("certificate")
    );
    assert!(err(TlsConfig::new(server.leaf.cert_pem().as_bytes(), b"", trust(), ClientAuth::Optional)).contains("key"));
    let foreign_key = f.root_a.key_pem();
    assert!(
        TlsConfig::new(server.leaf.cert_pem().as_bytes(), foreign_key.as_bytes(), trust(), ClientAuth::Optional)
            .is_err()
    );
    let missing = Path::new("/nonexistent/cert.pem");
    assert!(
        err(TlsConfig::from_pem_files(missing, missing, trust(), ClientAuth::Optional))
            .contains("/nonexistent/cert.pem")
    );
}

// --- whole handshakes in memory -------------------------------------------------------------------

/// Presents a fixed certificate and records the CA names the server hinted.
#[derive(Debug)]
struct RecordingResolver {
    key: Option<Arc<CertifiedKey>>,
    hints: Mutex<Option<usize>>,
}

impl ResolvesClientCert for RecordingResolver {
    fn resolve(&self, hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        *self.hints.lock() = Some(hints.len());
        self.key.clone()
    }
    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

fn client_config(
    server: &ServerIdentity,
    device: Option<&Identity>,
    tls12: bool,
) -> (Arc<ClientConfig>, Arc<RecordingResolver>) {
    let provider = provider();
    let key = device.map(|d| {
        let signer = provider.key_provider.load_private_key(d.key_der().unwrap()).unwrap();
        Arc::new(CertifiedKey::new(d.cert_chain().unwrap(), signer))
    });
    let resolver = Arc::new(RecordingResolver { key, hints: Mutex::new(None) });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.ca.cert_der().clone()).unwrap();
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls12 { &[&rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(resolver.clone());
    (Arc::new(cfg), resolver)
}

/// Moves bytes between the two sides until neither has anything to send. The server's error, if
/// any, is the result.
fn run(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), Error> {
    for _ in 0..32 {
        let mut moved = false;
        while client.wants_write() {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
            }
            moved = true;
            server.process_new_packets()?;
        }
        while server.wants_write() {
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
            }
            moved = true;
            if client.process_new_packets().is_err() {
                return Ok(());
            }
        }
        if !moved {
            return Ok(());
        }
    }
    panic!("handshake did not settle");
}

fn connect(cfg: &TlsConfig, client: &Arc<ClientConfig>) -> (ServerConnection, Result<(), Error>) {
    let mut c = ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = ServerConnection::new(cfg.server_config().clone()).unwrap();
    let r = run(&mut c, &mut s);
    (s, r)
}

fn server_config(trust: &TrustMap, auth: ClientAuth) -> (TlsConfig, ServerIdentity) {
    let server = ServerIdentity::localhost().unwrap();
    let cfg = TlsConfig::new(server.leaf.cert_pem().as_bytes(), server.leaf.key_pem().as_bytes(), trust.clone(), auth)
        .unwrap();
    (cfg, server)
}

#[test]
fn handshakes_over_tls13_and_tls12_hint_no_roots() {
    let f = fixture();
    let (cfg, server) = server_config(&f.trust, ClientAuth::Required);
    let dev = device(&f.root_a, APP_A);
    for tls12 in [false, true] {
        let (client, resolver) = client_config(&server, Some(&dev), tls12);
        let (s, r) = connect(&cfg, &client);
        assert_eq!(r, Ok(()), "tls12={tls12}");
        assert!(!s.is_handshaking());
        let id = f.trust.identify(s.peer_certificates().unwrap(), UnixTime::now()).unwrap();
        assert_eq!((id.app_id, id.root_sha256), (app(APP_A), f.root_a.fingerprint()));
        assert_eq!(*resolver.hints.lock(), Some(0), "the CertificateRequest must list no CA names");
    }

    let (client, _) = client_config(&server, Some(&device(&f.root_b, APP_A)), false);
    let (_, r) = connect(&cfg, &client);
    assert_eq!(r, invalid(CertificateError::UnknownIssuer));
}

#[test]
fn optional_and_required_client_auth() {
    let f = fixture();
    let (required, server) = server_config(&f.trust, ClientAuth::Required);
    let (anonymous, _) = client_config(&server, None, false);
    let (_, r) = connect(&required, &anonymous);
    assert_eq!(r, Err(Error::NoCertificatesPresented));

    let optional = TlsConfig::new(
        server.leaf.cert_pem().as_bytes(),
        server.leaf.key_pem().as_bytes(),
        f.trust.clone(),
        ClientAuth::Optional,
    )
    .unwrap();
    let (s, r) = connect(&optional, &anonymous);
    assert_eq!(r, Ok(()));
    assert!(!s.is_handshaking());
    assert_eq!(s.peer_certificates(), None);
    // Optional still refuses a certificate that does not verify.
    let (bad, _) = client_config(&server, Some(&device(&f.root_b, APP_A)), false);
    assert_eq!(connect(&optional, &bad).1, invalid(CertificateError::UnknownIssuer));
}

#[test]
fn a_resumed_session_is_identified_against_the_current_map() {
    let f = fixture();
    let (cfg, server) = server_config(&f.trust, ClientAuth::Required);
    let (client, _) = client_config(&server, Some(&device(&f.root_a, APP_A)), false);
    let (s, r) = connect(&cfg, &client);
    assert_eq!((r, s.handshake_kind()), (Ok(()), Some(HandshakeKind::Full)));

    // The client resumes its session, so the verifier is not asked; the identification checks the
    // chain against the map as it is now.
    let before = f.trust.version();
    let (s, r) = connect(&cfg, &client);
    assert_eq!((r, s.handshake_kind()), (Ok(()), Some(HandshakeKind::Resumed)));
    assert_eq!(f.trust.identify_connection(&s, before, far_future()), Err(IdentityError::NotTrusted(app(APP_A))));
    assert!(f.trust.identify_connection(&s, before, UnixTime::now()).unwrap().is_some());

    // The App-ID's root is withdrawn, then the session is resumed again.
    f.trust.remove(&app(APP_A));
    let before = f.trust.version();
    let (s, r) = connect(&cfg, &client);
    assert_eq!((r, s.handshake_kind()), (Ok(()), Some(HandshakeKind::Resumed)));
    assert_eq!(f.trust.identify_connection(&s, before, UnixTime::now()), Err(IdentityError::UnknownAppId(app(APP_A))));
}

/// A time at which every certificate of these tests has expired: an identification that checks the
/// chain fails at it, one that relies on the handshake's check does not.
fn far_future() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(4_000_000_000))
}

#[test]
fn a_fresh_handshake_is_not_checked_twice_unless_the_map_changed() {
    let f = fixture();
    let (cfg, server) = server_config(&f.trust, ClientAuth::Required);
    let dev =
        f.root_a.issue_device(&DeviceSpec::new(app(APP_A)).ae_id(AeId::parse("//sp.example/Sx").unwrap())).unwrap();
    let (client, _) = client_config(&server, Some(&dev), false);
    let no_resumption = {
        let mut c = (*client).clone();
        c.resumption = rustls::client::Resumption::disabled();
        Arc::new(c)
    };

    // Unchanged map, one root: the handshake's check stands.
    let before = f.trust.version();
    let (s, r) = connect(&cfg, &no_resumption);
    assert_eq!((r, s.handshake_kind()), (Ok(()), Some(HandshakeKind::Full)));
    let id = f.trust.identify_connection(&s, before, far_future()).unwrap().unwrap();
    assert_eq!(id, f.trust.identify(s.peer_certificates().unwrap(), UnixTime::now()).unwrap());
    assert_eq!((id.root_sha256, id.cert_sha256), (f.root_a.fingerprint(), dev.fingerprint()));
    assert_eq!(id.ae_id_uri.as_deref(), Some("//sp.example/Sx"));

    // Any change of the map since the handshake began (even of another App-ID) means a second check.
    let before = f.trust.version();
    let (s, _) = connect(&cfg, &no_resumption);
    f.trust.update_one(app(APP_B), vec![f.root_b.cert_der().clone()]).unwrap();
    assert_ne!(f.trust.version(), before);
    assert_eq!(f.trust.identify_connection(&s, before, far_future()), Err(IdentityError::NotTrusted(app(APP_A))));
    assert!(f.trust.identify_connection(&s, before, UnixTime::now()).unwrap().is_some());

    // Several roots: the check finds which one, so it always runs.
    f.trust.update_one(app(APP_A), vec![f.root_b.cert_der().clone(), f.root_a.cert_der().clone()]).unwrap();
    let before = f.trust.version();
    let (s, _) = connect(&cfg, &no_resumption);
    assert_eq!(f.trust.identify_connection(&s, before, far_future()), Err(IdentityError::NotTrusted(app(APP_A))));
    let id = f.trust.identify_connection(&s, before, UnixTime::now()).unwrap().unwrap();
    assert_eq!(id.root_sha256, f.root_a.fingerprint());
}

#[test]
fn no_client_certificate_is_no_identity() {
    let f = fixture();
    let (cfg, server) = server_config(&f.trust, ClientAuth::Optional);
    let (anonymous, _) = client_config(&server, None, false);
    let before = f.trust.version();
    let (s, r) = connect(&cfg, &anonymous);
    assert_eq!(r, Ok(()));
    assert_eq!(f.trust.identify_connection(&s, before, UnixTime::now()), Ok(None));
}
