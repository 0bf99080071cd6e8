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

/// The identification of a single-certificate chain: `Ok` or the failure's reason.
fn check(trust: &TrustMap, id: &Identity) -> Result<(), &'static str> {
    trust.identify(&[id.cert_der().clone()], UnixTime::now()).map(|_| ()).map_err(|e| e.reason())
}

/// What the handshake's verifier says of a certificate.
fn handshake_check(trust: &TrustMap, cert: &CertificateDer<'_>) -> Result<(), Error> {
    let v = AppIdClientVerifier { trust: trust.clone(), mandatory: true };
    v.verify_client_cert(cert, &[], UnixTime::now()).map(|_| ())
}

fn invalid(e: CertificateError) -> Result<(), Error> {
    Err(Error::InvalidCertificate(e))
}

#[test]
fn identification_accepts_the_right_root_only() {
    let f = fixture();
    assert_eq!(check(&f.trust, &device(&f.root_a, APP_A)), Ok(()));
    assert_eq!(check(&f.trust, &device(&f.root_b, APP_B)), Ok(()));
    // Claims A but is signed by B's root: B's root is no help, A's root does not sign it.
    assert_eq!(check(&f.trust, &device(&f.root_b, APP_A)), Err("wrong_root"));
}

#[test]
fn identification_names_expired_and_not_yet_valid() {
    let f = fixture();
    let expired = f.root_a.issue_device(&DeviceSpec::new(app(APP_A)).validity(Validity::expired())).unwrap();
    assert_eq!(check(&f.trust, &expired), Err("expired"));
    let early = f.root_a.issue_device(&DeviceSpec::new(app(APP_A)).validity(Validity::not_yet_valid())).unwrap();
    assert_eq!(check(&f.trust, &early), Err("not_yet_valid"));
    // With several roots, the expiry is still what is reported.
    f.trust.update_one(app(APP_A), vec![f.root_b.cert_der().clone(), f.root_a.cert_der().clone()]).unwrap();
    assert_eq!(check(&f.trust, &expired), Err("expired"));
    assert_eq!(check(&f.trust, &device(&Root::generate("X").unwrap(), APP_A)), Err("wrong_root"));
}

#[test]
fn missing_and_malformed_claims() {
    let f = fixture();
    let bare = f.root_a.issue_device(&DeviceSpec::without_app_id()).unwrap();
    assert_eq!(check(&f.trust, &bare), Err("no_app_id"));
    let server = ServerIdentity::localhost().unwrap();
    assert_eq!(check(&f.trust, &server.leaf), Err("no_app_id"), "a server certificate claims no App-ID");
    let stranger = Root::generate("Gamma Root").unwrap();
    assert_eq!(check(&f.trust, &device(&stranger, "Rgamma01.com.gamma.lock")), Err("unknown_app_id"));
    // The handshake lets all of these through (they are answered at the oneM2M layer), but not
    // something that is no certificate at all.
    for cert in [bare.cert_der(), server.leaf.cert_der(), device(&f.root_b, APP_A).cert_der()] {
        assert_eq!(handshake_check(&f.trust, cert), Ok(()));
    }
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    assert_eq!(handshake_check(&f.trust, &garbage), invalid(CertificateError::BadEncoding));
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

#[test]
fn empty_roots_verify_nothing() {
    let f = fixture();
    f.trust.update_one(app("Nnone"), Vec::new()).unwrap();
    let root = Root::generate("R").unwrap();
    assert_eq!(check(&f.trust, &device(&root, "Nnone")), Err("wrong_root"));
    assert_eq!(f.trust.root_fingerprints(&app("Nnone")), Some(vec![]));
}

#[test]
fn an_unverified_peer_keeps_its_claims_and_the_reason() {
    let f = fixture();
    let dev = f
        .root_b
        .issue_device(&DeviceSpec::new(app(APP_A)).ae_id(AeId::parse("//acme.example.com/Sdev9").unwrap()))
        .unwrap();
    let ClientIdentity::Unverified(u) = f.trust.identify_presented(&[dev.cert_der().clone()], UnixTime::now()) else {
        panic!("must not verify")
    };
    assert_eq!(u.app_id, Some(app(APP_A)));
    assert_eq!(u.ae_id_uri.as_deref(), Some("//acme.example.com/Sdev9"));
    assert_eq!(u.cert_sha256, dev.fingerprint());
    assert_eq!(u.error.reason(), "wrong_root");
    // Once the map trusts its root, the same chain verifies.
    f.trust.update_one(app(APP_A), vec![f.root_b.cert_der().clone()]).unwrap();
    assert!(matches!(f.trust.identify_presented(&u.chain, UnixTime::now()), ClientIdentity::Verified(_)));
    assert!(matches!(f.trust.identify_presented(&[], UnixTime::now()), ClientIdentity::Anonymous));
}

#[test]
fn trust_map_updates() {
    let f = fixture();
    assert_eq!(f.trust.len(), 2);
    assert!(f.trust.contains(&app(APP_A)));
    assert_eq!(f.trust.root_fingerprints(&app(APP_A)), Some(vec![f.root_a.fingerprint()]));

    // Rotate A to B's root: A's old devices fail, devices under the new root pass.
    f.trust.update_one(app(APP_A), vec![f.root_b.cert_der().clone()]).unwrap();
    assert_eq!(check(&f.trust, &device(&f.root_a, APP_A)), Err("wrong_root"));
    assert_eq!(check(&f.trust, &device(&f.root_b, APP_A)), Ok(()));

    // Both roots, listed twice: duplicates collapse, either root verifies.
    let both = vec![f.root_a.cert_der().clone(), f.root_b.cert_der().clone(), f.root_a.cert_der().clone()];
    f.trust.update_one(app(APP_A), both).unwrap();
    assert_eq!(f.trust.root_fingerprints(&app(APP_A)), Some(vec![f.root_a.fingerprint(), f.root_b.fingerprint()]));
    assert_eq!(check(&f.trust, &device(&f.root_a, APP_A)), Ok(()));
    assert_eq!(check(&f.trust, &device(&f.root_b, APP_A)), Ok(()));

    assert!(f.trust.remove(&app(APP_A)));
    assert!(!f.trust.remove(&app(APP_A)));
    assert_eq!(check(&f.trust, &device(&f.root_a, APP_A)), Err("unknown_app_id"));
    assert_eq!(f.trust.len(), 1);

    // A clone is the same map.
    let clone = f.trust.clone();
    clone.update_one(app(APP_A), vec![f.root_a.cert_der().clone()]).unwrap();
    assert!(f.trust.contains(&app(APP_A)));
    assert_eq!(format!("{:?}", f.trust), "TrustMap { app_ids: 2 }");

    // Several at once: one new map; App-IDs that are not there are skipped.
    for extra in ["Racme.com.acme.x1", "Racme.com.acme.x2"] {
        f.trust.update_one(app(extra), vec![f.root_a.cert_der().clone()]).unwrap();
    }
    let gone = [app("Racme.com.acme.x1"), app("Racme.com.acme.nothere"), app("Racme.com.acme.x2")];
    assert_eq!(f.trust.remove_all(&gone), 2);
    assert_eq!(f.trust.remove_all(&gone), 0);
    assert_eq!(f.trust.len(), 2);
    assert!(f.trust.contains(&app(APP_A)));
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
    assert_eq!(
        f.trust.identify(&[dev.cert_der().clone()], later),
        Err(IdentityError::NotTrusted { app_id: app(APP_A), failure: ChainFailure::Expired })
    );
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

    // A certificate under another root completes the handshake; the identification refuses it.
    let (client, _) = client_config(&server, Some(&device(&f.root_b, APP_A)), false);
    let (s, r) = connect(&cfg, &client);
    assert_eq!(r, Ok(()));
    let ClientIdentity::Unverified(u) = f.trust.identify_connection(&s, UnixTime::now()) else { panic!() };
    assert_eq!(u.error.reason(), "wrong_root");
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
    assert!(matches!(f.trust.identify_connection(&s, UnixTime::now()), ClientIdentity::Anonymous));
    // Under both, a presented certificate that does not verify gives an unverified peer.
    let (bad, _) = client_config(&server, Some(&device(&f.root_b, APP_A)), false);
    for cfg in [&optional, &required] {
        let (s, r) = connect(cfg, &bad);
        assert_eq!(r, Ok(()));
        assert!(matches!(f.trust.identify_connection(&s, UnixTime::now()), ClientIdentity::Unverified(_)));
    }
}

#[test]
fn a_resumed_session_is_identified_against_the_current_map() {
    let f = fixture();
    let (cfg, server) = server_config(&f.trust, ClientAuth::Required);
    let (client, _) = client_config(&server, Some(&device(&f.root_a, APP_A)), false);
    let (s, r) = connect(&cfg, &client);
    assert_eq!((r, s.handshake_kind()), (Ok(()), Some(HandshakeKind::Full)));

    // The client resumes its session; the identification checks the chain against the map as it
    // is now, and at the time given.
    let (s, r) = connect(&cfg, &client);
    assert_eq!((r, s.handshake_kind()), (Ok(()), Some(HandshakeKind::Resumed)));
    let ClientIdentity::Unverified(u) = f.trust.identify_connection(&s, far_future()) else { panic!() };
    assert_eq!(u.error.reason(), "expired");
    assert!(matches!(f.trust.identify_connection(&s, UnixTime::now()), ClientIdentity::Verified(_)));

    // The App-ID's root is withdrawn, then the session is resumed again.
    f.trust.remove(&app(APP_A));
    let (s, r) = connect(&cfg, &client);
    assert_eq!((r, s.handshake_kind()), (Ok(()), Some(HandshakeKind::Resumed)));
    let ClientIdentity::Unverified(u) = f.trust.identify_connection(&s, UnixTime::now()) else { panic!() };
    assert_eq!(u.error, IdentityError::UnknownAppId(app(APP_A)));
}

/// A time at which every certificate of these tests has expired.
fn far_future() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(4_000_000_000))
}

#[test]
fn a_fresh_handshake_is_identified_with_its_claims() {
    let f = fixture();
    let (cfg, server) = server_config(&f.trust, ClientAuth::Required);
    let dev =
        f.root_a.issue_device(&DeviceSpec::new(app(APP_A)).ae_id(AeId::parse("//sp.example/Sx").unwrap())).unwrap();
    let (client, _) = client_config(&server, Some(&dev), false);
    let (s, r) = connect(&cfg, &client);
    assert_eq!((r, s.handshake_kind()), (Ok(()), Some(HandshakeKind::Full)));
    let ClientIdentity::Verified(id) = f.trust.identify_connection(&s, UnixTime::now()) else { panic!() };
    assert_eq!((id.root_sha256, id.cert_sha256), (f.root_a.fingerprint(), dev.fingerprint()));
    assert_eq!(id.ae_id_uri.as_deref(), Some("//sp.example/Sx"));
}

#[test]
fn no_client_certificate_is_no_identity() {
    let f = fixture();
    let (cfg, server) = server_config(&f.trust, ClientAuth::Optional);
    let (anonymous, _) = client_config(&server, None, false);
    let (s, r) = connect(&cfg, &anonymous);
    assert_eq!(r, Ok(()));
    assert!(matches!(f.trust.identify_connection(&s, UnixTime::now()), ClientIdentity::Anonymous));
}
